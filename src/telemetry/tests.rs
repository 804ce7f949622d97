//! The whole subscriber: log lines of a traced request carry its ids, in text and JSON, and an
//! untraced request's lines do not.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::Request;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

use super::*;
use crate::proxy::trace::RequestTrace;

/// Discards every span.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// Collects what the log layer writes.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lines").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Runs one request's worth of logging (the access line inside the server span) through the
/// subscriber built for `format` and `tracing`, and returns the access line.
fn access_line(format: LogFormat, tracing: &Tracing) -> String {
    let lines = Lines::default();
    let config = LogConfig {
        format,
        level: "info,sidecache::access=debug".to_owned(),
    };
    let writer = lines.clone();
    let subscriber =
        subscriber_writing_to(&config, tracing, None, move || writer.clone()).expect("subscriber");
    tracing::subscriber::with_default(subscriber, || {
        let request = Request::get("/page")
            .header("host", "example.com")
            .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        let client: SocketAddr = "127.0.0.1:5555".parse().expect("address");
        let trace = if tracing.is_enabled() {
            RequestTrace::open(&parts, client)
        } else {
            RequestTrace::off()
        };
        trace
            .span()
            .in_scope(|| tracing::debug!(target: "sidecache::access", status = 200, "request"));
    });
    let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
    text.lines()
        .find(|line| line.contains("sidecache::access"))
        .unwrap_or_else(|| panic!("no access line in {text:?}"))
        .to_owned()
}

fn traced() -> Tracing {
    Tracing::from_provider(
        SdkTracerProvider::builder()
            .with_simple_exporter(Discard)
            .build(),
    )
}

#[test]
fn a_traced_requests_access_line_carries_its_trace_id_in_text_and_json() {
    let tracing = traced();
    let text = access_line(LogFormat::Text, &tracing);
    assert!(
        text.contains(&format!("trace_id={TRACE_ID} span_id=")),
        "{text}"
    );

    let json = access_line(LogFormat::Json, &tracing);
    let object: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    assert_eq!(object["trace_id"], TRACE_ID, "{json}");
    let span_id = object["span_id"].as_str().expect("span_id");
    assert_eq!(span_id.len(), 16);
    assert_ne!(span_id, "00f067aa0ba902b7", "the server span's own id");
    assert_eq!(object["target"], "sidecache::access");
}

#[test]
fn an_untraced_requests_access_line_has_no_ids() {
    let tracing = Tracing::disabled();
    for format in [LogFormat::Text, LogFormat::Json] {
        let line = access_line(format, &tracing);
        assert!(!line.contains("trace_id"), "{line}");
    }
}

#[test]
fn an_unsampled_request_opens_no_child_spans() {
    let tracing = traced();
    let subscriber = subscriber_writing_to(
        &LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        },
        &tracing,
        None,
        io::sink,
    )
    .expect("subscriber");
    tracing::subscriber::with_default(subscriber, || {
        let open = |flags: &str| {
            let (parts, ()) = Request::get("/")
                .header(
                    "traceparent",
                    format!("00-{TRACE_ID}-00f067aa0ba902b7-{flags}"),
                )
                .body(())
                .expect("request")
                .into_parts();
            RequestTrace::open(&parts, "127.0.0.1:1".parse().expect("address"))
        };
        let unsampled = open("00");
        assert!(!unsampled.span().is_disabled());
        unsampled.span().in_scope(|| {
            let child = tracing::debug_span!("child");
            assert!(
                crate::telemetry::context::span_context(&child).is_none(),
                "not recorded"
            );
            // Every layer turns it away (the registry still holds it), and what is opened
            // inside it, e.g. in a task it runs, likewise.
            child.in_scope(|| {
                let grandchild = tracing::debug_span!("grandchild");
                assert!(crate::telemetry::context::span_context(&grandchild).is_none());
                // Propagation still carries the request's unsampled context.
                let mut headers = http::HeaderMap::new();
                crate::telemetry::context::inject(&grandchild, &mut headers);
                let traceparent = headers["traceparent"].to_str().expect("ascii");
                assert!(
                    traceparent.starts_with(&format!("00-{TRACE_ID}-")),
                    "{traceparent}"
                );
                assert!(traceparent.ends_with("-00"), "{traceparent}");
            });
        });
        let sampled = open("01");
        sampled.span().in_scope(|| {
            let child = tracing::debug_span!("child");
            assert!(crate::telemetry::context::span_context(&child).is_some());
        });
    });
}
