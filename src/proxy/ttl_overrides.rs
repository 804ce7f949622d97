//! Freshness the operator sets for the URLs under a path prefix (`--ttl-overrides`), for origins
//! whose caching fields cannot be changed: nginx's per-location `proxy_cache_valid`, or a
//! Varnish `beresp.ttl` set for some URLs.
//!
//! The written form is a list of rules separated by `;`, each `PREFIX=DURATION` or
//! `PREFIX=DURATION,force`, e.g. `/api/=30s; /static/=1d,force`. A rule without `force` gives
//! the freshness only to responses the origin gave none (as `--default-ttl` does for every
//! URL); with `force` it replaces the origin's `max-age`, `s-maxage` and `Expires` too. The
//! longest matching prefix decides, so the order of the rules does not matter.
//!
#![doc = include_str!("../../docs/freshness.md")]

use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::http::policy::PolicySettings;

/// The word that marks a rule as replacing the origin's explicit freshness.
const FORCE: &str = "force";

/// One rule: the URLs whose path starts with `prefix` are fresh for `ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlOverride {
    /// Compared with the request's path and query as the client sent them (no decoding), as
    /// purges by prefix are.
    pub prefix: String,
    /// The freshness lifetime given, counted like `max-age` (the response's `Age` counts
    /// against it).
    pub ttl: Duration,
    /// Whether `ttl` replaces the origin's explicit freshness too, rather than standing in
    /// only where the origin gave none.
    pub force: bool,
}

/// Every rule, as one value the cache reads, so the whole set can be replaced at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TtlOverrides {
    /// Longest prefix first, so the first match is the most specific one.
    rules: Vec<TtlOverride>,
}

/// Why a `--ttl-overrides` value was refused; each names the rule at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TtlOverridesError {
    /// A rule has no `=` between its prefix and its duration.
    #[error("rule {0:?} is not PREFIX=DURATION[,force] (e.g. /api/=30s or /static/=1d,force)")]
    Malformed(String),
    /// A prefix is not a path.
    #[error("rule {0:?}: the prefix must be a path starting with \"/\"")]
    NotAPath(String),
    /// A duration did not parse.
    #[error("rule {rule:?}: {reason} (a duration such as 30s, 5m or 1h 30m)")]
    Duration {
        /// The rule as written.
        rule: String,
        /// What the duration parser said.
        reason: String,
    },
    /// Something other than `force` follows the duration.
    #[error("rule {0:?}: only \"force\" may follow the duration")]
    UnknownOption(String),
    /// Two rules have the same prefix.
    #[error("prefix {0:?} is given twice")]
    Duplicate(String),
}

// === impl TtlOverrides ===

impl TtlOverrides {
    /// The rule for a request with this path and query: the one with the longest matching
    /// prefix.
    pub fn for_path(&self, path_and_query: &str) -> Option<&TtlOverride> {
        self.rules
            .iter()
            .find(|rule| path_and_query.starts_with(&rule.prefix))
    }

    /// `settings` for a request with this path and query: with its rule's freshness, if a rule
    /// matches. A forcing rule is the default too, for what forced freshness leaves alone: a
    /// response marked `public` with a status not heuristically cacheable.
    pub fn settings_for(&self, settings: &PolicySettings, path_and_query: &str) -> PolicySettings {
        let mut settings = settings.clone();
        if let Some(rule) = self.for_path(path_and_query) {
            settings.default_ttl = Some(rule.ttl);
            if rule.force {
                settings.forced_ttl = Some(rule.ttl);
            }
        }
        settings
    }
}

impl FromStr for TtlOverrides {
    type Err = TtlOverridesError;

    /// Parses the written form (module docs); empty, or `none`, is no rule at all.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "none" {
            return Ok(Self::default());
        }
        let mut rules: Vec<TtlOverride> = Vec::new();
        for written in text
            .split(';')
            .map(str::trim)
            .filter(|rule| !rule.is_empty())
        {
            let rule = parse_rule(written)?;
            if rules.iter().any(|known| known.prefix == rule.prefix) {
                return Err(TtlOverridesError::Duplicate(rule.prefix));
            }
            rules.push(rule);
        }
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.prefix.len()));
        Ok(Self { rules })
    }
}

/// One `PREFIX=DURATION[,force]`. The last `=` ends the prefix: a duration never holds one,
/// a path may.
fn parse_rule(written: &str) -> Result<TtlOverride, TtlOverridesError> {
    let (prefix, spec) = written
        .rsplit_once('=')
        .ok_or_else(|| TtlOverridesError::Malformed(written.to_owned()))?;
    let prefix = prefix.trim();
    if !prefix.starts_with('/') {
        return Err(TtlOverridesError::NotAPath(written.to_owned()));
    }
    let (duration, force) = match spec.split_once(',') {
        Some((duration, option)) if option.trim().eq_ignore_ascii_case(FORCE) => (duration, true),
        Some(_) => return Err(TtlOverridesError::UnknownOption(written.to_owned())),
        None => (spec, false),
    };
    let ttl =
        crate::duration::parse_duration(duration).map_err(|error| TtlOverridesError::Duration {
            rule: written.to_owned(),
            reason: error.to_string(),
        })?;
    Ok(TtlOverride {
        prefix: prefix.to_owned(),
        ttl,
        force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TtlOverrides, TtlOverridesError> {
        text.parse()
    }

    fn rule(prefix: &str, secs: u64, force: bool) -> TtlOverride {
        TtlOverride {
            prefix: prefix.to_owned(),
            ttl: Duration::from_secs(secs),
            force,
        }
    }

    #[test]
    fn rules_are_read_with_their_duration_and_force() {
        let overrides =
            parse(" /api/=30s ; /static/=1h 30m,force;/a=b/=2m, FORCE ;").expect("valid");
        assert_eq!(
            overrides.for_path("/api/users?page=2"),
            Some(&rule("/api/", 30, false))
        );
        assert_eq!(
            overrides.for_path("/static/app.js"),
            Some(&rule("/static/", 5400, true))
        );
        // The last `=` ends the prefix.
        assert_eq!(
            overrides.for_path("/a=b/c"),
            Some(&rule("/a=b/", 120, true))
        );
        assert_eq!(overrides.for_path("/other"), None);
        assert_eq!(overrides.for_path("/ap"), None);
    }

    #[test]
    fn nothing_none_and_blank_are_no_rules() {
        for text in ["", "none", " none ", " ; ;"] {
            assert_eq!(parse(text), Ok(TtlOverrides::default()), "{text:?}");
        }
    }

    #[test]
    fn the_longest_prefix_wins_whatever_the_order() {
        for text in ["/=1s; /api/=2s; /api/v2/=3s", "/api/v2/=3s; /=1s; /api/=2s"] {
            let overrides = parse(text).expect("valid");
            let ttl = |path| overrides.for_path(path).map(|rule| rule.ttl.as_secs());
            assert_eq!(ttl("/api/v2/x"), Some(3), "{text}");
            assert_eq!(ttl("/api/v1/x"), Some(2), "{text}");
            assert_eq!(ttl("/index.html"), Some(1), "{text}");
        }
    }

    #[test]
    fn bad_rules_are_refused_naming_the_rule() {
        let cases = [
            (
                "/api/30s",
                "rule \"/api/30s\" is not PREFIX=DURATION[,force]",
            ),
            (
                "api/=30s",
                "rule \"api/=30s\": the prefix must be a path starting with \"/\"",
            ),
            ("=30s", "the prefix must be a path"),
            ("/api/=soon", "rule \"/api/=soon\": "),
            ("/api/=-5s", "a duration such as 30s"),
            ("/api/=", "a duration such as 30s"),
            (
                "/api/=30s,forever",
                "rule \"/api/=30s,forever\": only \"force\" may follow",
            ),
            ("/api/=30s,force,force", "only \"force\" may follow"),
            ("/api/=1s; /api/=2s", "prefix \"/api/\" is given twice"),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_rule_sets_the_default_and_a_forcing_rule_the_forced_freshness_too() {
        let overrides = parse("/soft/=10s; /hard/=20s,force").expect("valid");
        let base = PolicySettings {
            default_ttl: Some(Duration::from_secs(5)),
            ..PolicySettings::default()
        };
        let soft = overrides.settings_for(&base, "/soft/x");
        assert_eq!(
            (soft.default_ttl, soft.forced_ttl),
            (Some(Duration::from_secs(10)), None)
        );
        let hard = overrides.settings_for(&base, "/hard/x");
        let twenty = Some(Duration::from_secs(20));
        assert_eq!((hard.default_ttl, hard.forced_ttl), (twenty, twenty));
        let other = overrides.settings_for(&base, "/other");
        assert_eq!(
            (other.default_ttl, other.forced_ttl),
            (Some(Duration::from_secs(5)), None)
        );
        assert_eq!(other.max_heuristic_freshness, base.max_heuristic_freshness);
    }
}
