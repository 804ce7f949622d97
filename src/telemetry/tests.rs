//! The whole subscriber: log lines of a traced request carry its ids, in text and JSON, and an
//! untraced request's lines do not.

use std::io;
use std::net::SocketAddr;

use http::Request;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::*;
use crate::proxy::request::CarriedFields;
use crate::proxy::trace::RequestTrace;
use crate::testing::CapturedLog;

/// Discards every span.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Runs one request's worth of logging (the access line inside the server span) through the
/// subscriber built for `format` and `tracing`, and returns the access line.
fn access_line(format: LogFormat, tracing: &Tracing, flags: &str) -> String {
    let lines = CapturedLog::default();
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
            .header(
                "traceparent",
                format!("00-{TRACE_ID}-00f067aa0ba902b7-{flags}"),
            )
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        let client: SocketAddr = "127.0.0.1:5555".parse().expect("address");
        let trace = match tracing.request_sampler() {
            Some(sampler) => {
                RequestTrace::open(&parts, CarriedFields::of(&parts.headers), client, &sampler)
            }
            None => RequestTrace::off(),
        };
        // As the end-of-request hook writes it.
        let write = || {
            trace
                .span()
                .in_scope(|| tracing::debug!(target: "sidecache::access", status = 200, "request"))
        };
        match trace.unsampled_ids() {
            Some(ids) => logs::with_ids(ids, write),
            None => write(),
        }
    });
    let text = lines.text();
    text.lines()
        .find(|line| line.contains("sidecache::access"))
        .unwrap_or_else(|| panic!("no access line in {text:?}"))
        .to_owned()
}

/// Runs `f` under the subscriber for `tracing`, its log lines discarded.
fn with_lines_discarded<R>(tracing: &Tracing, f: impl FnOnce() -> R) -> R {
    let config = LogConfig {
        format: LogFormat::Text,
        level: "info".to_owned(),
    };
    let subscriber = subscriber_writing_to(&config, tracing, None, io::sink).expect("subscriber");
    tracing::subscriber::with_default(subscriber, f)
}

/// The trace of a request continuing the client's trace [`TRACE_ID`] with `flags`.
fn open_continuing(sampler: &sampling::RequestSampler, flags: &str) -> RequestTrace {
    let (parts, ()) = Request::get("/")
        .header(
            "traceparent",
            format!("00-{TRACE_ID}-00f067aa0ba902b7-{flags}"),
        )
        .body(())
        .expect("request")
        .into_parts();
    let client = "127.0.0.1:1".parse().expect("address");
    RequestTrace::open(&parts, CarriedFields::of(&parts.headers), client, sampler)
}

fn traced() -> Tracing {
    Tracing::with_exporter(Discard, SamplerKind::ParentbasedAlwaysOn, None)
}

#[test]
fn a_traced_requests_access_line_carries_its_trace_id_in_text_and_json() {
    let tracing = traced();
    let text = access_line(LogFormat::Text, &tracing, "01");
    assert!(
        text.contains(&format!("trace_id={TRACE_ID} span_id=")),
        "{text}"
    );

    let json = access_line(LogFormat::Json, &tracing, "01");
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
        let line = access_line(format, &tracing, "01");
        assert!(!line.contains("trace_id"), "{line}");
    }
}

#[test]
fn an_unsampled_requests_access_line_carries_the_trace_it_passes_on() {
    let tracing = traced();
    for format in [LogFormat::Text, LogFormat::Json] {
        let line = access_line(format, &tracing, "00");
        assert!(line.contains(TRACE_ID), "{line}");
        assert!(
            !line.contains("00f067aa0ba902b7"),
            "its own span id, not the client's: {line}"
        );
    }
}

#[test]
fn an_unsampled_request_opens_no_span_and_passes_its_trace_on() {
    let tracing = traced();
    let sampler = tracing.request_sampler().expect("tracing on");
    with_lines_discarded(&tracing, || {
        let open = |flags: &str| open_continuing(&sampler, flags);
        let unsampled = open("00");
        assert!(unsampled.span().is_none(), "no span at all");
        assert!(!crate::spans::in_span());
        // The request goes on as an unsampled continuation of the client's trace, with its own
        // span id.
        let passed_on = unsampled.unsampled_ids().expect("ids to pass on");
        assert_eq!(passed_on.trace_id.to_string(), TRACE_ID);
        assert_ne!(passed_on.span_id.to_string(), "00f067aa0ba902b7");

        let sampled = open("01");
        assert!(
            sampled.unsampled_ids().is_none(),
            "its spans pass the trace on"
        );
        sampled.span().in_scope(|| {
            assert!(crate::spans::in_span());
            let child = tracing::debug_span!("child");
            assert!(crate::telemetry::context::span_context(&child).is_some());
        });
    });
}

/// The lines each preset lets through, of one event per kind (a dependency's info line,
/// sidecache's own info line, an access line, a dependency's debug line).
fn lines_through(level: &str) -> Vec<&'static str> {
    let lines = CapturedLog::default();
    let config = LogConfig {
        format: LogFormat::Text,
        level: level.to_owned(),
    };
    let writer = lines.clone();
    let subscriber =
        subscriber_writing_to(&config, &Tracing::disabled(), None, move || writer.clone())
            .expect("subscriber");
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "hyper::proto", "dependency info");
        tracing::info!(target: "sidecache::app", "sidecache listening");
        tracing::debug!(target: "sidecache::access", "request");
        tracing::debug!(target: "h2::codec", "dependency debug");
    });
    let text = lines.text();
    [
        "dependency info",
        "sidecache listening",
        "request",
        "dependency debug",
    ]
    .into_iter()
    .filter(|message| text.contains(message))
    .collect()
}

#[test]
fn log_presets_let_through_what_they_promise() {
    assert_eq!(lines_through("prod"), ["sidecache listening"]);
    assert_eq!(
        lines_through("development"),
        ["dependency info", "sidecache listening", "request"]
    );
    assert_eq!(
        lines_through("debug"),
        [
            "dependency info",
            "sidecache listening",
            "request",
            "dependency debug"
        ]
    );
    // Anything else is an EnvFilter as before.
    assert_eq!(lines_through("warn,sidecache::access=debug"), ["request"]);
}

/// One `enabled!` question, asked as the request path asks it.
type Question = fn() -> bool;

/// A span opened right after tracing asked the subscriber about something it turned down still
/// reaches the span layer. tracing asks whenever a callsite is not cached as "always": for the
/// access line's `enabled!` check when only the log lines want it (`development`), and for a
/// callsite every layer here turns down while another subscriber wants it (another test's, or
/// any while a callsite registers on two threads at once). Per-layer filters pass their answer
/// to the span's creation through a thread-local, so a span cached as "always" would read the
/// previous question's answer and be dropped (tokio-rs/tracing#2519).
#[test]
fn a_span_opened_after_a_turned_down_question_reaches_the_span_layer() {
    // Takes everything while it lives, so no callsite is "never" for every subscriber.
    let _another_subscriber = tracing::Dispatch::new(tracing_subscriber::registry());
    for level in ["info", "development"] {
        let tracing = traced();
        let config = LogConfig {
            format: LogFormat::Text,
            level: level.to_owned(),
        };
        let subscriber =
            subscriber_writing_to(&config, &tracing, None, io::sink).expect("subscriber");
        let sampler = tracing.request_sampler().expect("tracing on");
        tracing::subscriber::with_default(subscriber, || {
            let (parts, ()) = Request::get("/")
                .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
                .body(())
                .expect("request")
                .into_parts();
            let client = "127.0.0.1:1".parse().expect("address");
            let request =
                RequestTrace::open(&parts, CarriedFields::of(&parts.headers), client, &sampler);
            request.span().in_scope(|| {
                let questions: [(&str, Question); 2] = [
                    (
                        "the access line",
                        || tracing::enabled!(target: "sidecache::access", tracing::Level::DEBUG),
                    ),
                    (
                        "a dependency's trace line",
                        || tracing::enabled!(target: "h2::codec", tracing::Level::TRACE),
                    ),
                ];
                for (question, ask) in questions {
                    ask();
                    let child = tracing::debug_span!("cache lookup");
                    assert!(
                        crate::telemetry::context::span_context(&child).is_some(),
                        "at level {level}, the span after asking about {question} was dropped"
                    );
                }
            });
        });
    }
}

/// The same for log lines, with tracing on or off: a line written right after a question every
/// layer turned down is still written.
#[test]
fn a_line_written_after_a_turned_down_question_is_written() {
    let _another_subscriber = tracing::Dispatch::new(tracing_subscriber::registry());
    for tracing in [Tracing::disabled(), traced()] {
        let lines = CapturedLog::default();
        let config = LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        };
        let writer = lines.clone();
        let subscriber = subscriber_writing_to(&config, &tracing, None, move || writer.clone())
            .expect("subscriber");
        tracing::subscriber::with_default(subscriber, || {
            tracing::enabled!(target: "h2::codec", tracing::Level::TRACE);
            tracing::info!(target: "sidecache::app", "still written");
        });
        let text = lines.text();
        assert!(
            text.contains("still written"),
            "tracing on: {}: {text:?}",
            tracing.is_enabled()
        );
    }
}

/// A new trace is decided on the id it is recorded under, or passed on under when dropped, so a
/// service downstream that samples by the same ratio (the SDK's own `TraceIdRatioBased`)
/// decides every one of them alike.
#[test]
fn a_new_trace_is_recorded_under_the_id_its_sampling_was_decided_on() {
    use opentelemetry::trace::SpanKind;
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};

    let half = Ratio::new(0.5).expect("ratio");
    let tracing = Tracing::with_exporter(Discard, SamplerKind::TraceIdRatio, Some(half));
    let config = LogConfig {
        format: LogFormat::Text,
        level: "info".to_owned(),
    };
    let subscriber = subscriber_writing_to(&config, &tracing, None, io::sink).expect("subscriber");
    let sampler = tracing.request_sampler().expect("tracing on");
    let downstream = Sampler::TraceIdRatioBased(half.get());
    let downstream_keeps = |trace_id| {
        let result = downstream.should_sample(None, trace_id, "GET", &SpanKind::Server, &[], &[]);
        result.decision == SamplingDecision::RecordAndSample
    };
    let (mut kept, mut dropped) = (0, 0);
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..200 {
            let (parts, ()) = Request::get("/").body(()).expect("request").into_parts();
            let client = "127.0.0.1:1".parse().expect("address");
            let request = RequestTrace::open(&parts, CarriedFields::default(), client, &sampler);
            match request.unsampled_ids() {
                None => {
                    let recorded = crate::telemetry::context::span_context(request.span())
                        .expect("a kept request's span is recorded");
                    assert!(downstream_keeps(recorded.trace_id()), "{recorded:?}");
                    kept += 1;
                }
                Some(ids) => {
                    assert!(!downstream_keeps(ids.trace_id), "{ids:?}");
                    dropped += 1;
                }
            }
        }
    });
    assert!(kept > 0 && dropped > 0, "{kept} kept, {dropped} dropped");
}

#[test]
fn text_lines_written_anywhere_but_a_terminal_have_no_colour_codes() {
    let lines = CapturedLog::default();
    let writer = lines.clone();
    let config = LogConfig {
        format: LogFormat::Text,
        level: "info".to_owned(),
    };
    let subscriber =
        subscriber_writing_to(&config, &Tracing::disabled(), None, move || writer.clone())
            .expect("subscriber");
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(target: "sidecache::origin", key = "k", "origin request failed");
    });
    let text = lines.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("key=\"k\"") || text.contains("key=k"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "colour codes in {text:?}");
}

#[test]
fn a_requests_trace_id_is_its_spans_or_the_one_it_passes_on() {
    let tracing = traced();
    let sampler = tracing.request_sampler().expect("tracing on");
    with_lines_discarded(&tracing, || {
        for flags in ["01", "00"] {
            let trace = open_continuing(&sampler, flags);
            let trace_id = trace.trace_id().map(|id| id.to_string());
            assert_eq!(trace_id.as_deref(), Some(TRACE_ID), "flags {flags}");
        }
    });
    assert!(RequestTrace::off().trace_id().is_none());
}
