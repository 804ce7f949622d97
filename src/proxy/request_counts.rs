//! Per-cache-key request counts (`--writebehind-count-requests`): the name a request is counted
//! under, and the increment.

use std::sync::Arc;

use crate::http::key::CacheKey;
use crate::writebehind::{IncrementSource, REQUEST_COUNTER_PREFIX, WriteBehind};

/// Counts requests per cache key in write-behind counters.
pub struct RequestCounts {
    counters: Arc<WriteBehind>,
    /// Whether the query string is part of the name (`--writebehind-count-query`). Off by
    /// default: a query can carry a secret (a password-reset link) into the sink and the admin
    /// port, and one random query per request would make every request a name of its own.
    with_query: bool,
}

// === impl RequestCounts ===

impl RequestCounts {
    /// Counts into `counters`, keeping the query string in the name when `with_query` is set.
    pub fn new(counters: Arc<WriteBehind>, with_query: bool) -> Self {
        Self {
            counters,
            with_query,
        }
    }

    /// The counter a request for `key` is counted in: [`REQUEST_COUNTER_PREFIX`], the host and
    /// the path, and the query too when it is kept.
    pub fn name(&self, key: &CacheKey) -> String {
        let text = key.as_str();
        let counted = if self.with_query {
            text
        } else {
            // The query starts at the first '?' after the host (a host has none).
            text.find('?').map_or(text, |query| &text[..query])
        };
        format!("{REQUEST_COUNTER_PREFIX}{counted}")
    }

    /// Adds one request for `key`. A refused increment (the cap of names, a name too long to
    /// store, shutdown) is dropped; the counters count the refusal.
    pub fn record(&self, key: &CacheKey) {
        let _ = self
            .counters
            .increment(IncrementSource::Request, &self.name(key), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Registry;
    use crate::writebehind::sqlite::SqliteSink;
    use crate::writebehind::{WriteBehindMetrics, WriteBehindSettings};

    fn counts(with_query: bool) -> RequestCounts {
        let sink = SqliteSink::open(std::path::Path::new(":memory:")).expect("sink");
        let counters = WriteBehind::new(
            Arc::new(sink),
            "memory".into(),
            WriteBehindSettings {
                interval: std::time::Duration::from_secs(1),
                max_pending_keys: 10,
                recovery_file: None,
            },
            WriteBehindMetrics::register(&Registry::new()).expect("metrics"),
        )
        .expect("counters");
        RequestCounts::new(Arc::new(counters), with_query)
    }

    #[test]
    fn names_keep_the_query_only_when_asked() {
        let (without, with) = (counts(false), counts(true));
        for (path, short) in [
            ("/a?b=1&c=2", "requests:x.example/a"),
            ("/a?", "requests:x.example/a"),
            ("/a", "requests:x.example/a"),
            ("/a/b?c?d", "requests:x.example/a/b"),
        ] {
            let key = CacheKey::new("X.Example:80", path);
            assert_eq!(without.name(&key), short, "{path}");
            assert_eq!(
                with.name(&key),
                format!("requests:x.example{path}"),
                "{path}"
            );
        }
    }
}
