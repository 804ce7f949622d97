//! The record phase: the end-of-request hook, run once for every request, errors included. It
//! is the one place requests are counted, logged and their span completed, all from the request's
//! [`Decision`](super::decision::Decision); or, for a request dropped before its answer, from how
//! it ended (the server counts those ends, with every other).

use std::sync::Arc;
use std::time::Instant;

use http::{Method, Response};

use super::metrics::ProxyMetrics;
use super::request_counts::RequestCounts;
use super::respond::Answered;
use super::trace::RequestTrace;
use crate::body::Body;
use crate::http::key::CacheKey;
use crate::server::RequestEnd;
use crate::stats::Stats;
use crate::telemetry::logs;

/// The log target of the access line (one line per request, at debug).
pub(crate) const ACCESS_LOG: &str = "sidecache::access";

/// What is kept about a request, from its head's arrival to its record.
pub(crate) struct RequestCtx {
    /// When the request head arrived.
    pub started: Instant,
    /// Its server span (a no-op when tracing is off).
    pub trace: RequestTrace,
    /// Its method, for the access line.
    pub method: Method,
    /// The request target for the access line; `None` when access lines are not logged, so a
    /// request pays for the copy only when it is written out.
    pub logged_uri: Option<http::Uri>,
    /// The cache key, only when requests are counted per key.
    pub counted_key: Option<CacheKey>,
}

/// Where requests are recorded: the metrics, the stats window and the per-key counts.
pub(crate) struct Recorder {
    pub metrics: ProxyMetrics,
    pub stats: Arc<Stats>,
    /// When set, every request with a cache key adds 1 to its counter.
    pub request_counts: Option<RequestCounts>,
}

// === impl Recorder ===

impl Recorder {
    /// Records the request of `ctx` as `answered` says, and hands its response back.
    pub(crate) fn record(&self, ctx: &RequestCtx, answered: Answered) -> Response<Body> {
        let Answered {
            response,
            decision,
            leader,
        } = answered;
        let _entered = ctx.trace.span().enter();
        let elapsed = ctx.started.elapsed();
        let result = decision.result();
        self.metrics
            .record_request(response.status(), result, elapsed, decision.waited());
        self.stats.record(result.stat_outcome(), elapsed);
        ctx.trace.finish(response.status(), result, leader.as_ref());
        if let (Some(counts), Some(key)) = (&self.request_counts, &ctx.counted_key) {
            counts.record(key);
        }
        if let Some(uri) = &ctx.logged_uri {
            let access_line = || {
                tracing::debug!(
                    target: ACCESS_LOG,
                    method = %ctx.method,
                    path = uri.path(),
                    status = response.status().as_u16(),
                    cache_result = result.as_str(),
                    elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                    "request"
                );
            };
            write_access_line(ctx, access_line);
        }
        response
    }

    /// Records the request of `ctx`, dropped before its answer because it ended as `end`: its
    /// span fails with that `error.type`, and its access line says so in place of a status.
    pub(crate) fn record_unanswered(&self, ctx: &RequestCtx, end: RequestEnd) {
        ctx.trace.finish_unanswered(end.as_str());
        let Some(uri) = &ctx.logged_uri else { return };
        let _entered = ctx.trace.span().enter();
        let access_line = || {
            tracing::debug!(
                target: ACCESS_LOG,
                method = %ctx.method,
                path = uri.path(),
                ended = end.as_str(),
                elapsed_us = u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "request unanswered"
            );
        };
        write_access_line(ctx, access_line);
    }
}

/// Writes the access line of `ctx`'s request with `line`.
fn write_access_line(ctx: &RequestCtx, line: impl FnOnce()) {
    match ctx.trace.unsampled_ids() {
        // A request the sampler dropped has no span to carry its ids to the line.
        Some(ids) => logs::with_ids(ids, line),
        None => line(),
    }
}
