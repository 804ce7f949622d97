//! W3C trace context at the edges, and the OpenTelemetry side of a `tracing` span.
//!
//! The two edges use these: the proxy joins a client's `traceparent` ([`join`]), the origin
//! client passes its own on ([`inject`]). Everything here is a no-op on a span that no
//! OpenTelemetry layer records (tracing off), so callers need no checks of their own.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, Status, TraceContextExt, TraceFlags};
use opentelemetry::{Context, Key, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

use super::logs::TraceIds;

/// Makes `span` a continuation of `parent` (a client's trace) or the root of a new trace, and
/// starts it. Log lines written inside `span` then carry its trace and span ids. Returns whether
/// the span is recorded.
pub(crate) fn join(span: &Span, parent: Option<SpanContext>) -> bool {
    if span.is_disabled() {
        return false;
    }
    if let Some(parent) = parent {
        // Fails only if the span has no OpenTelemetry layer or was already started; it is then
        // simply a root, or already joined.
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
    start(span)
}

/// Starts `span` under its current parent and tags it for the log lines written inside it.
/// Returns whether it is recorded.
pub(crate) fn start(span: &Span) -> bool {
    let Some(span_context) = span_context(span) else {
        return false;
    };
    let sampled = span_context.is_sampled();
    span.with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<Registry>() else {
            return;
        };
        if let Some(data) = registry.span(id) {
            data.extensions_mut().insert(TraceIds {
                trace_id: span_context.trace_id(),
                span_id: span_context.span_id(),
            });
        }
    });
    sampled
}

/// Writes `context` into `headers` as `traceparent` (and `tracestate`, if it has one), replacing
/// what was there.
///
/// Formatted by hand: it runs on every request a sampler dropped, hits included, and the
/// propagator's `format!` and string round trips would allocate several times per request.
pub(crate) fn write(context: &SpanContext, headers: &mut HeaderMap) {
    let ids = TraceIds {
        trace_id: context.trace_id(),
        span_id: context.span_id(),
    };
    headers.insert(TRACEPARENT, traceparent(&ids, context.trace_flags()));
    let state = context.trace_state().header();
    match HeaderValue::try_from(state) {
        Ok(state) if !state.is_empty() => {
            headers.insert(TRACESTATE, state);
        }
        _ => {
            headers.remove(TRACESTATE);
        }
    }
}

/// The W3C trace context header naming the parent span.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The W3C trace context header carrying vendor state along a trace.
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Writes `ids` into `headers` as an unsampled `traceparent`, replacing what was there; the
/// client's `tracestate`, if any, passes on as it came.
pub(crate) fn write_unsampled(ids: &TraceIds, headers: &mut HeaderMap) {
    headers.insert(TRACEPARENT, traceparent(ids, TraceFlags::NOT_SAMPLED));
}

/// `00-<trace id>-<span id>-<flags>`, version 00 of the W3C format.
fn traceparent(ids: &TraceIds, flags: TraceFlags) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b'-'; 55];
    let mut at = 0;
    let mut put = |bytes: &[u8], text: &mut [u8; 55]| {
        for byte in bytes {
            text[at] = HEX[usize::from(byte >> 4)];
            text[at + 1] = HEX[usize::from(byte & 0x0f)];
            at += 2;
        }
        at += 1;
    };
    put(&[0], &mut text);
    put(&ids.trace_id.to_bytes(), &mut text);
    put(&ids.span_id.to_bytes(), &mut text);
    put(&[flags.to_u8()], &mut text);
    HeaderValue::from_bytes(&text).expect("hex digits and dashes are a valid header value")
}

/// Writes `span`'s context into `headers` as `traceparent` (and `tracestate`), replacing what
/// was there, so the next hop continues this trace with `span` as the parent. Leaves `headers`
/// alone for a span no layer records: what the request already carries passes through.
pub(crate) fn inject(span: &Span, headers: &mut HeaderMap) {
    if let Some(context) = span_context(span) {
        write(&context, headers);
    }
}

/// The OpenTelemetry span context of `span`, if it is recorded.
pub(crate) fn span_context(span: &Span) -> Option<SpanContext> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Adds a link from `span` to `target` (e.g. from a waiting request to the load it waited on).
pub(crate) fn link(span: &Span, target: &Span) {
    if let Some(target) = span_context(target) {
        span.add_link(target);
    }
}

/// Sets one attribute on `span`.
pub(crate) fn set(span: &Span, key: &'static str, value: impl Into<Value>) {
    span.set_attribute(Key::from_static_str(key), value);
}

/// Marks `span` as failed, with a low-cardinality `error.type`.
pub(crate) fn fail(span: &Span, error_type: impl Into<Value>) {
    set(span, "error.type", error_type);
    span.set_status(Status::error(""));
}

/// The context of the span a request continues, for tests and tools: `None` when the headers
/// carry no valid `traceparent`.
pub(crate) fn incoming(headers: &HeaderMap) -> Option<SpanContext> {
    let context: Context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Reads propagation fields from request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_read_and_a_malformed_one_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let context = incoming(&headers).expect("valid");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(context.is_sampled());
        headers.insert("traceparent", HeaderValue::from_static("00-zz-01"));
        assert!(incoming(&headers).is_none());
    }

    #[test]
    fn a_written_context_reads_back() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        let context = incoming(&headers).expect("valid");
        let mut written = HeaderMap::new();
        write(&context, &mut written);
        assert_eq!(written["traceparent"], headers["traceparent"]);
    }

    #[test]
    fn a_sampled_context_with_state_reads_back_and_an_empty_state_is_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        headers.insert("tracestate", HeaderValue::from_static("vendor=a1,other=b2"));
        let context = incoming(&headers).expect("valid");
        let mut written = HeaderMap::new();
        write(&context, &mut written);
        assert_eq!(written["traceparent"], headers["traceparent"]);
        assert_eq!(written["tracestate"], "vendor=a1,other=b2");

        headers.remove("tracestate");
        let stateless = incoming(&headers).expect("valid");
        write(&stateless, &mut written);
        assert!(written.get("tracestate").is_none());
    }

    #[test]
    fn spans_nobody_records_are_left_alone() {
        let span = Span::none();
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("client's"));
        assert!(!join(&span, incoming(&headers)));
        inject(&span, &mut headers);
        assert_eq!(headers["traceparent"], "client's");
        assert!(span_context(&span).is_none());
    }
}
