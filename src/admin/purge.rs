//! `POST /purge`: what a purge call asks to remove, the removal, and its log line.

use http::{Response, StatusCode};

use super::query;
use super::{json, text_owned};
use crate::body::Body;
use crate::http::host_match::HostMatch;
use crate::proxy::purge::Purger;

/// What a purge call asks to remove.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PurgeTarget {
    /// One path (with its query), on the hosts matched.
    Url { host: HostMatch, path: String },
    /// Every path starting with the prefix, on the hosts matched.
    Prefix { host: HostMatch, prefix: String },
}

// === impl PurgeTarget ===

impl PurgeTarget {
    /// The target `query` names (read as [`query`] says), or what is wrong with it.
    pub(super) fn parse(query: &str) -> Result<Self, String> {
        let mut url = None;
        let mut prefix = None;
        let mut host = HostMatch::Any;
        for (name, value) in query::parameters(query) {
            match &*name {
                "url" => url = Some(path_value("url", &value)?),
                "prefix" => prefix = Some(path_value("prefix", &value)?),
                "host" => host = query::host(&value)?,
                _ => {
                    return Err(format!(
                        "unknown parameter {name:?}: give url=PATH or prefix=PATH, and optionally host=HOST\n"
                    ));
                }
            }
        }
        match (url, prefix) {
            (Some(path), None) => Ok(Self::Url { host, path }),
            (None, Some(prefix)) => Ok(Self::Prefix { host, prefix }),
            (Some(_), Some(_)) => Err("give either url= or prefix=, not both\n".into()),
            (None, None) => Err("give url=/path?query or prefix=/path\n".into()),
        }
    }

    /// Removes what the target names with `purger`; returns how many stored URLs went, after
    /// logging what went.
    pub(super) async fn purge(&self, purger: &Purger) -> usize {
        let purged = match self {
            Self::Url { host, path } => purger.purge_url(host, path).await,
            Self::Prefix { host, prefix } => purger.purge_prefix(host, prefix).await,
        };
        self.log(purged);
        purged
    }

    /// The purge's line: what it named and how many stored URLs went.
    fn log(&self, purged: usize) {
        match self {
            Self::Url { host, path } => tracing::info!(url = %path, %host, purged, "purge"),
            Self::Prefix { host, prefix } => {
                tracing::info!(prefix = %prefix, %host, purged, "purge");
            }
        }
    }
}

/// `POST /purge?…`: removes what the query names, answering `{"purged": N}`.
pub(super) async fn handle(purger: &Purger, query: &str) -> Response<Body> {
    match PurgeTarget::parse(query) {
        Ok(target) => {
            let purged = target.purge(purger).await;
            json(StatusCode::OK, format!("{{\"purged\":{purged}}}\n"))
        }
        Err(message) => text_owned(StatusCode::BAD_REQUEST, message),
    }
}

/// The value of the path parameter `name`, which must be a path (with its query) as a client
/// sends it.
pub(super) fn path_value(name: &str, value: &str) -> Result<String, String> {
    if value.starts_with('/') {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{name}= takes a path and query as a client sends them, starting with / \
             ({name}=/a?b=1), not {value:?}; give the host with host=\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::CapturedLog;

    #[test]
    fn purge_targets_are_parsed_and_bad_ones_rejected() {
        let any_port = |host: &str| HostMatch::AnyPort(host.into());
        let cases = [
            (
                "url=%2Fa%3Fb%3D1&host=Example.com",
                PurgeTarget::Url {
                    host: any_port("example.com"),
                    path: "/a?b=1".into(),
                },
            ),
            (
                "url=/a?b=1&c=2&host=x.example:8080",
                PurgeTarget::Url {
                    host: HostMatch::Exact("x.example:8080".into()),
                    path: "/a?b=1&c=2".into(),
                },
            ),
            (
                "prefix=/static/",
                PurgeTarget::Prefix {
                    host: HostMatch::Any,
                    prefix: "/static/".into(),
                },
            ),
            (
                "prefix=/&host=X.example:443",
                PurgeTarget::Prefix {
                    host: HostMatch::Exact("x.example".into()),
                    prefix: "/".into(),
                },
            ),
        ];
        for (query, target) in cases {
            assert_eq!(PurgeTarget::parse(query), Ok(target), "{query}");
        }
        for (bad, says) in [
            ("", "give url="),
            ("url=/a&prefix=/b", "not both"),
            ("url=a", "not \"a\""),
            ("url=http://x.example/a", "give the host with host="),
            ("nope=1", "unknown parameter \"nope\""),
            ("url=/a&host=", "host=\"\""),
            ("prefix=/&host=a%20b", "host=\"a b\""),
        ] {
            let error = PurgeTarget::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }

    #[test]
    fn a_purge_line_names_its_target_and_count() {
        let (captured, _guard) = CapturedLog::on_this_thread();

        let url = PurgeTarget::parse("url=/a?b=1&c=2&host=x.example").expect("url");
        url.log(1);
        let prefix = PurgeTarget::parse("prefix=/p/").expect("prefix");
        prefix.log(12);

        let text = captured.text();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with("purge url=/a?b=1&c=2 host=x.example:* purged=1"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("purge prefix=/p/ host=* purged=12"),
            "{}",
            lines[1]
        );
    }
}
