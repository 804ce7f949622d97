//! Which hosts an administrative call (a purge, a listing of the store) applies to, matched
//! against the hosts of cache keys.
//!
//! A cache key's host keeps the port a client sent unless it is a default one (see
//! [`key`](super::key)): clients of a sidecache on port 8080 are stored under `svc:8080`. So a
//! host given without a port means that host on every port, and one given with a port means
//! exactly that port (`:80` and `:443` being the keys without a port).

use std::fmt;

use super::key::{CacheKey, KeyError};

/// The hosts a call applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Every host.
    Any,
    /// One host name or address on every port: `x.example` matches `x.example` and
    /// `x.example:8080`.
    AnyPort(String),
    /// One normalised host and port, as a key holds it: `x.example:8080`, or `x.example` for
    /// the default ports.
    Exact(String),
}

// === impl HostMatch ===

impl HostMatch {
    /// The match `text` (`uri-host [ ":" port ]`, as a `Host` header carries it) asks for: with
    /// a port (even an empty one), that port only; without, every port.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidHost`] when `text` is not a host a request could carry.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let normalized = CacheKey::normalize_host(text)?;
        // A valid host has a colon outside an IP-literal's brackets only before its port.
        let after_literal = text.rfind(']').map_or(text, |end| &text[end + 1..]);
        Ok(if after_literal.contains(':') {
            Self::Exact(normalized)
        } else {
            Self::AnyPort(normalized)
        })
    }

    /// Whether a key with the (normalised) host `key_host` is one this match applies to.
    pub fn matches(&self, key_host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(host) => key_host == host,
            Self::AnyPort(host) => key_host
                .strip_prefix(host.as_str())
                .is_some_and(|port| port.is_empty() || port.starts_with(':')),
        }
    }
}

impl fmt::Display for HostMatch {
    /// `*` for every host, `x.example:*` for every port of one, else the host as keys hold it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::AnyPort(host) => write!(f, "{host}:*"),
            Self::Exact(host) => f.write_str(host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_a_port_matches_it_on_every_port_and_a_port_only_itself() {
        let cases = [
            ("X.Example", "x.example", true),
            ("x.example", "x.example:8080", true),
            ("x.example", "x.example.org", false),
            ("x.example", "y.example", false),
            ("x.example:8080", "x.example:8080", true),
            ("x.example:8080", "x.example", false),
            ("x.example:80", "x.example", true),
            ("x.example:443", "x.example", true),
            ("x.example:", "x.example", true),
            ("x.example:80", "x.example:8080", false),
            ("[::1]", "[::1]:8080", true),
            ("[::1]", "[::1]", true),
            ("[::1]:8080", "[::1]", false),
            ("[::1]:443", "[::1]", true),
        ];
        for (given, key_host, matches) in cases {
            let host = HostMatch::parse(given).expect(given);
            assert_eq!(host.matches(key_host), matches, "{given} vs {key_host}");
        }
        assert!(HostMatch::Any.matches("anything:1"));
    }

    #[test]
    fn hosts_no_request_could_carry_are_refused() {
        for bad in [
            "",
            "x example",
            "x.example:8o",
            "x/example",
            "us@x.example",
            "[::1",
        ] {
            assert_eq!(HostMatch::parse(bad), Err(KeyError::InvalidHost), "{bad:?}");
        }
    }

    #[test]
    fn each_match_says_what_it_matches() {
        let shown = |text: &str| HostMatch::parse(text).expect(text).to_string();
        assert_eq!(shown("X.example"), "x.example:*");
        assert_eq!(shown("x.example:443"), "x.example");
        assert_eq!(shown("x.example:8080"), "x.example:8080");
        assert_eq!(HostMatch::Any.to_string(), "*");
    }
}
