//! The record phase: the end-of-request hook, run once for every request, errors included. It
//! is the one place requests are counted, logged and their span completed, all from the request's
//! [`Decision`](super::decision::Decision); or, for a request dropped before its answer, from how
//! it ended (the server counts those ends, with every other).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Response};

use super::access_log::{AccessLine, AccessLogFormat, AccessRequest};
use super::cache_status::CACHE_STATUS;
use super::metrics::ProxyMetrics;
use super::request_counts::RequestCounts;
use super::respond::Answered;
use super::trace::RequestTrace;
use crate::body::Body;
use crate::http::key::CacheKey;
use crate::server::{OnBodyEnd, RequestEnd};
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
    /// What the `--access-log` line needs from the request head; `None` when it is off (boxed,
    /// so a request without it carries one pointer).
    pub access: Option<Box<AccessRequest>>,
    /// How long the answer waited on the origin, or on the load it shared; `None` for an
    /// answer given at once, and when there is no access line to carry it.
    pub upstream: Option<Duration>,
}

/// Where requests are recorded: the metrics, the stats window and the per-key counts.
pub(crate) struct Recorder {
    pub metrics: ProxyMetrics,
    pub stats: Arc<Stats>,
    /// When set, every request with a cache key adds 1 to its counter.
    pub request_counts: Option<RequestCounts>,
    /// Whether and how each request writes an access line (`--access-log`).
    pub access_log: AccessLogFormat,
}

// === impl Recorder ===

impl Recorder {
    /// Records the request of `ctx` as `answered` says, and hands its response back.
    pub(crate) fn record(&self, ctx: &mut RequestCtx, answered: Answered) -> Response<Body> {
        let Answered {
            mut response,
            decision,
            leader,
        } = answered;
        if let Some(request) = ctx.access.take() {
            // Written when the body is over, so it carries the bytes sent and the whole time.
            let line = self.access_line(ctx, request, &response);
            response
                .extensions_mut()
                .insert(OnBodyEnd::new(move |end, sent| line.write(end, sent)));
        }
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
    pub(crate) fn record_unanswered(&self, ctx: &mut RequestCtx, end: RequestEnd) {
        ctx.trace.finish_unanswered(end.as_str());
        if let Some(request) = ctx.access.take() {
            self.unanswered_line(ctx, request).write(end, 0);
        }
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

// === impl Recorder (access lines) ===

impl Recorder {
    /// The access line of `ctx`'s request, answered with `response`.
    fn access_line(
        &self,
        ctx: &RequestCtx,
        request: Box<AccessRequest>,
        response: &Response<Body>,
    ) -> AccessLine {
        AccessLine {
            status: Some(response.status()),
            cache_status: response.headers().get(CACHE_STATUS).cloned(),
            ..self.unanswered_line(ctx, request)
        }
    }

    /// The access line of `ctx`'s request, dropped before its answer.
    fn unanswered_line(&self, ctx: &RequestCtx, request: Box<AccessRequest>) -> AccessLine {
        AccessLine {
            format: self.access_log,
            request: *request,
            started: ctx.started,
            status: None,
            cache_status: None,
            upstream: ctx.upstream,
            trace_id: ctx.trace.trace_id(),
        }
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
