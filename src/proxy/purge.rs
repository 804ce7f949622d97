//! Removing stored URLs: the admin port's purges, and the invalidation that follows a successful
//! unsafe request (RFC 9111 §4.4). Every removal of a stored response is counted as a manual
//! miss; the parts of representations that go with them are removed too, uncounted.

use std::sync::Arc;

use http::HeaderMap;
use http::header;

use super::HttpCache;
use super::metrics::ProxyMetrics;
use super::part_store::PartStore;
use crate::http::host_match::HostMatch;
use crate::http::key::{CacheKey, same_origin_key};
use crate::stats::Stats;

/// Removes stored URLs from the cache. Cloning is cheap; clones share
/// the cache and the counters.
#[derive(Clone)]
pub struct Purger {
    cache: HttpCache,
    parts: PartStore,
    metrics: ProxyMetrics,
    stats: Arc<Stats>,
}

// === impl Purger ===

impl Purger {
    /// Removes from `cache` and `parts`, counting into `metrics` and `stats`.
    pub(crate) fn new(
        cache: HttpCache,
        parts: PartStore,
        metrics: ProxyMetrics,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            cache,
            parts,
            metrics,
            stats,
        }
    }

    /// Removes one URL (every variant) on the hosts `host` matches; returns how many stored
    /// URLs went. Counted as manual misses. One host and port is one key; any other match walks
    /// the store.
    pub async fn purge_url(&self, host: &HostMatch, path_and_query: &str) -> usize {
        let removed = match host {
            HostMatch::Exact(host) => self.invalidate(&CacheKey::new(host, path_and_query)),
            _ => {
                let (host, path) = (host.clone(), path_and_query.to_owned());
                self.invalidate_matching(move |key| {
                    key.path_and_query() == path && host.matches(key.host())
                })
                .await
            }
        };
        self.record(removed);
        removed
    }

    /// Removes every URL whose path starts with `prefix` on the hosts `host` matches; returns
    /// how many stored URLs went. Counted as manual misses.
    pub async fn purge_prefix(&self, host: &HostMatch, prefix: &str) -> usize {
        let (host, prefix) = (host.clone(), prefix.to_owned());
        let removed = self
            .invalidate_matching(move |key| {
                key.path_and_query().starts_with(&prefix) && host.matches(key.host())
            })
            .await;
        self.record(removed);
        removed
    }

    /// After a non-error answer to an unsafe request for `key` (RFC 9111 §4.4): removes `key` and
    /// the same-origin URIs the answer's `Location` and `Content-Location` name.
    pub(crate) fn after_unsafe(&self, key: &CacheKey, response: &HeaderMap) {
        let mut removed = self.invalidate(key);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let target = response
                .get(&name)
                .and_then(|value| value.to_str().ok())
                .and_then(|reference| same_origin_key(key, reference));
            if let Some(target) = target {
                removed += self.invalidate(&target);
            }
        }
        self.record(removed);
    }

    /// Removes `key`'s stored responses and parts; 1 when a stored response went, else 0.
    fn invalidate(&self, key: &CacheKey) -> usize {
        // Parts first: a whole response combined from parts is stored only if no removal of
        // parts came after its parts were asked for (see `partial`).
        self.parts.remove(key);
        usize::from(self.cache.invalidate(key))
    }

    /// Removes the stored responses and parts of every URL that `matches`; returns how many
    /// stored responses went. Parts first, as in [`invalidate`](Self::invalidate).
    async fn invalidate_matching(
        &self,
        matches: impl Fn(&CacheKey) -> bool + Clone + Send + Sync + 'static,
    ) -> usize {
        self.parts.remove_matching(matches.clone());
        self.cache.invalidate_matching(matches).await
    }

    fn record(&self, removed: usize) {
        self.metrics.record_invalidations(removed);
        self.stats.record_manual_misses(removed);
    }
}
