//! [`Summary`]: the effective configuration in a few lines, as `--check-config` prints it.

use std::fmt;

use super::{Config, Invocation};
use crate::byte_size::ByteSize;

/// The settings an operator checks first, one per line, with secrets left out: the admin token
/// is only said to be set, and passwords and user information are not shown.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'a> {
    invocation: &'a Invocation,
}

// === impl Invocation ===

impl Invocation {
    /// The configuration in a few lines, secrets redacted (see [`Summary`]).
    pub fn summary(&self) -> Summary<'_> {
        Summary { invocation: self }
    }
}

// === impl Summary ===

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Invocation { config, file, .. } = self.invocation;
        let Config {
            proxy,
            origin,
            cache,
            admin,
            log,
            tracing,
            writebehind,
            shutdown_grace,
            ..
        } = config;
        match file {
            Some(path) => writeln!(f, "config file:    {}", path.display())?,
            None => writeln!(f, "config file:    none")?,
        }
        writeln!(f, "listen:         {}", proxy.listen)?;
        match &origin.url {
            Some(url) => writeln!(f, "origin:         {}", WithoutUserInfo(url))?,
            None => writeln!(f, "origin:         none (the embedded demo)")?,
        }
        let token = if admin.token.is_some() {
            "token set"
        } else {
            "no token"
        };
        writeln!(f, "admin-listen:   {} ({token})", admin.listen)?;
        writeln!(
            f,
            "cache-capacity: {} (objects up to {})",
            ByteSize(cache.capacity_bytes),
            ByteSize(cache.max_object_bytes)
        )?;
        writeln!(
            f,
            "log-level:      {} ({})",
            log.level,
            format!("{:?}", log.format).to_lowercase()
        )?;
        match &tracing.otlp_endpoint {
            Some(endpoint) => writeln!(f, "otlp-endpoint:  {}", WithoutUserInfo(endpoint))?,
            None => writeln!(f, "otlp-endpoint:  none (tracing off)")?,
        }
        writeln!(f, "writebehind:    {}", writebehind.sink)?;
        write!(
            f,
            "shutdown-grace: {}",
            humantime::format_duration(*shutdown_grace)
        )
    }
}

/// A URL shown without the `user:password@` part a user may have put in it.
struct WithoutUserInfo<'a>(&'a http::Uri);

impl fmt::Display for WithoutUserInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.0;
        if let Some(scheme) = uri.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(authority) = uri.authority() {
            let host_and_port = authority
                .as_str()
                .rsplit_once('@')
                .map_or(authority.as_str(), |(_, rest)| rest);
            f.write_str(host_and_port)?;
        }
        if let Some(path_and_query) = uri.path_and_query() {
            // `Uri` gives "/" for an absolute URL written without a path.
            if uri.authority().is_none() || path_and_query.as_str() != "/" {
                write!(f, "{path_and_query}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn summary_of(args: &[&str], vars: &[(&str, &str)]) -> String {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let args = std::iter::once("sidecache").chain(args.iter().copied());
        Invocation::load_from(args, &env)
            .expect("a valid configuration")
            .summary()
            .to_string()
    }

    #[test]
    fn the_summary_shows_the_effective_values() {
        let text = summary_of(
            &["--listen", "0.0.0.0:8080", "--cache-capacity", "64MiB"],
            &[("SIDECACHE_ORIGIN", "http://svc:9000")],
        );
        assert!(text.contains("listen:         0.0.0.0:8080"), "{text}");
        assert!(text.contains("origin:         http://svc:9000\n"), "{text}");
        assert!(text.contains("cache-capacity: 64MiB"), "{text}");
        assert!(
            text.contains("admin-listen:   127.0.0.1:8081 (no token)"),
            "{text}"
        );
        assert!(text.contains("config file:    none"), "{text}");
    }

    #[test]
    fn the_summary_never_shows_secrets() {
        let text = summary_of(
            &[
                "--origin",
                "http://user:origin-secret@svc:9000",
                "--writebehind-sink",
                "postgres://counter:sink-secret@db/counts",
            ],
            &[("SIDECACHE_ADMIN_TOKEN", "admin-secret")],
        );
        for secret in ["origin-secret", "sink-secret", "admin-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("origin:         http://svc:9000"), "{text}");
        assert!(text.contains("(token set)"), "{text}");
    }
}
