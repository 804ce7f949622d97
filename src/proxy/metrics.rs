//! What the proxy counts: requests and their latency by cache result, responses by status
//! class, coalesced waiters, refused stores, invalidations.
//!
//! Recorded in two places only: the end-of-request hook ([`ProxyMetrics::record_request`]) and
//! the components' own callbacks (store admission, invalidation). Business code returns facts;
//! it does not count.

use std::time::Duration;

use http::StatusCode;
use prometheus::{Histogram, IntCounter};

use super::cache_status::CacheResult;
use super::decision::NotStored;
use super::status_class::StatusClass;
use crate::cache::outcome::WaitResult;
use crate::metrics::{self, Registry, Result};

/// The proxy's metric set, with every label value resolved up front.
#[derive(Clone)]
pub struct ProxyMetrics {
    /// `sidecache_requests_total{cache_result}`, indexed by [`CacheResult`].
    requests: Vec<IntCounter>,
    /// `sidecache_request_duration_seconds{cache_result}`, indexed by [`CacheResult`].
    durations: Vec<Histogram>,
    /// `sidecache_responses_total{code_class}`, indexed by [`StatusClass`]. A counter of its
    /// own rather than a label on `sidecache_requests_total`: a second label there would replace
    /// every existing series, and the dashboards and alerts built on them.
    responses: Vec<IntCounter>,
    /// `sidecache_coalesce_waiters_total{outcome}`, indexed by [`WaitResult`].
    waiters: Vec<IntCounter>,
    /// `sidecache_store_refused_total{reason}`, indexed by [`NotStored::index`].
    refused: Vec<IntCounter>,
    /// `sidecache_invalidations_total`.
    invalidations: IntCounter,
}

impl ProxyMetrics {
    /// Registers the proxy's metrics in `registry`.
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register(registry: &Registry) -> Result<Self> {
        let results: Vec<_> = CacheResult::ALL.iter().map(|r| r.as_str()).collect();
        let classes: Vec<_> = StatusClass::ALL.iter().map(|c| c.as_str()).collect();
        let waits: Vec<_> = WaitResult::ALL.iter().map(|w| w.as_str()).collect();
        let reasons: Vec<_> = NotStored::all().map(NotStored::as_str).collect();
        Ok(Self {
            requests: metrics::counters(
                registry,
                "sidecache_requests_total",
                "Proxied requests answered, by how the cache answered them.",
                "cache_result",
                &results,
            )?,
            durations: metrics::histograms(
                registry,
                "sidecache_request_duration_seconds",
                "Time from a request's head arriving to its response head being ready, by cache result.",
                "cache_result",
                &results,
            )?,
            responses: metrics::counters(
                registry,
                "sidecache_responses_total",
                "Proxied requests answered, by the class of the response's status code (1xx to 5xx).",
                "code_class",
                &classes,
            )?,
            waiters: metrics::counters(
                registry,
                "sidecache_coalesce_waiters_total",
                "Requests that waited for another request's origin load, by how the wait ended.",
                "outcome",
                &waits,
            )?,
            refused: metrics::counters(
                registry,
                "sidecache_store_refused_total",
                "Origin responses not stored, by reason.",
                "reason",
                &reasons,
            )?,
            invalidations: metrics::counter(
                registry,
                "sidecache_invalidations_total",
                "Stored URLs removed by purges and by unsafe-method invalidation (manual misses).",
            )?,
        })
    }

    /// The end-of-request hook's record: one request answered with `status` and `result` after
    /// `elapsed`, having waited on another request's load with `waited`.
    pub fn record_request(
        &self,
        status: StatusCode,
        result: CacheResult,
        elapsed: Duration,
        waited: Option<WaitResult>,
    ) {
        self.requests[result as usize].inc();
        self.responses[StatusClass::of(status) as usize].inc();
        self.durations[result as usize].observe(elapsed.as_secs_f64());
        if let Some(waited) = waited {
            self.waiters[waited as usize].inc();
        }
    }

    /// An origin response that was not stored.
    pub fn record_refused(&self, reason: NotStored) {
        self.refused[reason.index()].inc();
    }

    /// Stored URLs removed by an invalidation.
    pub fn record_invalidations(&self, removed: usize) {
        self.invalidations.inc_by(removed as u64);
    }
}
