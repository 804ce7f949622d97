//! The server span: one per proxied request, opened by the outermost wrapper and completed by the
//! end-of-request hook from the facts it already has.
//!
//! It continues the client's W3C trace (`traceparent` / `tracestate`), so the sampler follows the
//! client's decision, and carries the HTTP semantic-convention attributes plus `cache.result`.
//! The sampler is applied before any span is opened: a dropped request opens none (see
//! [`crate::telemetry::sampling`]); with tracing off no span is opened at all.

use std::net::SocketAddr;

use http::request::Parts;
use http::{StatusCode, header};
use opentelemetry::trace::{SpanContext, TraceId};
use tracing::Span;

use super::cache_status::CacheResult;
use super::request::CarriedFields;
use crate::telemetry::context;
use crate::telemetry::logs::TraceIds;
use crate::telemetry::sampling::{self, RequestSampler};
use crate::telemetry::semconv::{method_name, protocol_version, split_authority};

/// A request's server span.
#[derive(Debug)]
pub(crate) struct RequestTrace {
    span: Span,
    /// Whether the span is sampled: only then are attributes worth computing.
    sampled: bool,
    /// For a request the sampler dropped: the ids it logs and passes on (no span holds them).
    unsampled: Option<TraceIds>,
}

// === impl RequestTrace ===

impl RequestTrace {
    /// No span (tracing off).
    pub(crate) fn off() -> Self {
        Self {
            span: Span::none(),
            sampled: false,
            unsampled: None,
        }
    }

    /// Applies `sampler` to the request `parts` from `client`, continuing the client's trace if
    /// it sent one (`carried` tells whether its fields hold a `traceparent`). A kept request
    /// opens its server span; a dropped one opens none and only takes its own ids to log and to
    /// pass on, unsampled, should it reach the origin ([`unsampled_ids`](Self::unsampled_ids)).
    pub(crate) fn open(
        parts: &Parts,
        carried: CarriedFields,
        client: SocketAddr,
        sampler: &RequestSampler,
    ) -> Self {
        let parent = if carried.trace_context {
            context::incoming(&parts.headers)
        } else {
            None
        };
        let decision = sampler.decide(parent.as_ref());
        if !decision.sampled {
            return Self {
                unsampled: Some(decision.unsampled_ids()),
                ..Self::off()
            };
        }
        let span = tracing::info_span!(
            "request",
            otel.kind = "server",
            otel.name = method_name(&parts.method)
        );
        // Kept although the client's trace was not (a sampler that ignores the parent's flag):
        // recorded as a sampled continuation of it.
        let parent = parent.map(|parent| {
            SpanContext::new(
                parent.trace_id(),
                parent.span_id(),
                parent.trace_flags().with_sampled(true),
                true,
                parent.trace_state().clone(),
            )
        });
        let sampled =
            sampling::with_root_trace_id(decision.trace_id, || context::join(&span, parent));
        if sampled {
            request_attributes(&span, parts, client);
        }
        Self {
            span,
            sampled,
            unsampled: None,
        }
    }

    /// For a request the sampler dropped: the ids its log lines carry and its origin request
    /// passes on (a kept request's come from its spans).
    pub(crate) fn unsampled_ids(&self) -> Option<TraceIds> {
        self.unsampled
    }

    /// The request's trace id, if tracing is on: its span's, or (dropped by the sampler) the
    /// one it passes on.
    pub(crate) fn trace_id(&self) -> Option<TraceId> {
        match self.unsampled {
            Some(ids) => Some(ids.trace_id),
            None => context::span_context(&self.span).map(|context| context.trace_id()),
        }
    }

    /// The span the request runs in.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records how the request was answered: the status, the cache result, `error.type` for
    /// a server error, and a link to the load the request waited on, if it was coalesced.
    pub(crate) fn finish(&self, status: StatusCode, result: CacheResult, leader: Option<&Span>) {
        if !self.sampled {
            return;
        }
        let span = &self.span;
        context::set(
            span,
            "http.response.status_code",
            i64::from(status.as_u16()),
        );
        context::set(span, "cache.result", result.as_str());
        if status.is_server_error() {
            // Semantic conventions: a server span fails on 5xx only, typed by its status code.
            context::fail(span, status.as_str().to_owned());
        }
        if let Some(leader) = leader {
            context::link(span, leader);
        }
    }

    /// Records that the request was dropped before its answer, ended as `end` says: no status,
    /// and the span fails with `end` as its `error.type`, as a request that got no response does.
    pub(crate) fn finish_unanswered(&self, end: &'static str) {
        if self.sampled {
            context::fail(&self.span, end);
        }
    }
}

/// The semantic-convention attributes of the request itself.
fn request_attributes(span: &Span, parts: &Parts, client: SocketAddr) {
    let method = method_name(&parts.method);
    context::set(span, "http.request.method", method);
    if method == "_OTHER" {
        context::set(
            span,
            "http.request.method_original",
            parts.method.as_str().to_owned(),
        );
    }
    context::set(span, "url.path", parts.uri.path().to_owned());
    if let Some(query) = parts.uri.query() {
        context::set(span, "url.query", query.to_owned());
    }
    // The proxy port is cleartext HTTP.
    context::set(span, "url.scheme", "http");
    let authority = parts.uri.authority().map(|a| a.as_str()).or_else(|| {
        parts
            .headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
    });
    if let Some((host, port)) = authority.map(split_authority) {
        context::set(span, "server.address", host.to_owned());
        if let Some(port) = port {
            context::set(span, "server.port", i64::from(port));
        }
    }
    if let Some(version) = protocol_version(parts.version) {
        context::set(span, "network.protocol.version", version);
    }
    context::set(span, "client.address", client.ip().to_string());
    context::set(span, "client.port", i64::from(client.port()));
    if let Some(agent) = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
    {
        context::set(span, "user_agent.original", agent.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_off_opens_no_span() {
        let trace = RequestTrace::off();
        assert!(trace.span().is_disabled());
        trace.finish(StatusCode::OK, CacheResult::Hit, None);
    }
}
