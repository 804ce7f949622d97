//! Log lines that carry the trace: every line written inside a traced request ends with its
//! `trace_id` and `span_id` (text), or has them as top-level keys (JSON), so a log line leads to
//! its trace and back.
//!
//! The ids are put on the request's span when it starts ([`super::context::join`]); lines
//! outside any traced span are written exactly as the inner format writes them.

use std::cell::Cell;
use std::fmt;

use opentelemetry::trace::{SpanId, TraceId};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The ids of a traced span, kept in its extensions for the log lines written inside it.
#[derive(Debug, Clone, Copy)]
pub struct TraceIds {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
}

thread_local! {
    /// Ids for the lines written by [`with_ids`]: those of a request the sampler dropped, which
    /// has a trace context (it passes one on) but no span to keep it in.
    static UNSPANNED: Cell<Option<TraceIds>> = const { Cell::new(None) };
}

/// Runs `write` (which logs) with `ids` on its lines when no span around them has ids.
pub(crate) fn with_ids<R>(ids: TraceIds, write: impl FnOnce() -> R) -> R {
    let previous = UNSPANNED.with(|cell| cell.replace(Some(ids)));
    let written = write();
    UNSPANNED.with(|cell| cell.set(previous));
    written
}

/// How the ids are added to a line.
#[derive(Debug, Clone, Copy)]
enum Style {
    /// ` trace_id=… span_id=…` at the end of the line.
    Text,
    /// `"trace_id":"…","span_id":"…"` as the object's last keys.
    Json,
}

/// An event format that adds the ids of the innermost traced span around the event to what
/// `F` writes.
#[derive(Debug)]
pub(crate) struct WithTraceIds<F> {
    inner: F,
    style: Style,
}

// === impl WithTraceIds ===

impl<F> WithTraceIds<F> {
    /// Adds the ids to a text format's lines.
    pub(crate) fn text(inner: F) -> Self {
        Self {
            inner,
            style: Style::Text,
        }
    }

    /// Adds the ids to a JSON format's objects (the inner format must write one object per line).
    pub(crate) fn json(inner: F) -> Self {
        Self {
            inner,
            style: Style::Json,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = ctx
            .event_scope()
            .and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|span| span.extensions().get::<TraceIds>().copied())
            })
            .or_else(|| UNSPANNED.with(Cell::get));
        let Some(TraceIds { trace_id, span_id }) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.strip_suffix('\n').unwrap_or(&line);
        match self.style {
            Style::Text => writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}"),
            Style::Json => match body.strip_suffix('}') {
                Some(object) if object.trim_end() != "{" => writeln!(
                    writer,
                    "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                ),
                Some(_) => writeln!(
                    writer,
                    "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                ),
                // Not an object: leave the line as the inner format wrote it.
                None => writeln!(writer, "{body}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::Registry;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::testing::CapturedLog;

    fn ids() -> TraceIds {
        TraceIds {
            trace_id: TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            span_id: SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
        }
    }

    /// Logs one line outside any span and one inside a span tagged with [`ids`].
    fn log_both(subscriber: impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync) {
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(n = 1, "outside");
            let span = tracing::info_span!("request");
            span.with_subscriber(|(id, dispatch)| {
                let registry = dispatch.downcast_ref::<Registry>().expect("registry");
                registry
                    .span(id)
                    .expect("span")
                    .extensions_mut()
                    .insert(ids());
            });
            span.in_scope(|| tracing::info!(n = 2, "inside"));
        });
    }

    #[test]
    fn text_lines_inside_a_traced_span_end_with_its_ids() {
        let lines = CapturedLog::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .event_format(WithTraceIds::text(
                tracing_subscriber::fmt::format().with_ansi(false),
            ));
        log_both(Registry::default().with(layer));
        let text = lines.text();
        let all: Vec<_> = text.lines().collect();
        assert_eq!(all.len(), 2, "{text}");
        assert!(all[0].ends_with("outside n=1"), "{}", all[0]);
        assert!(
            all[1].ends_with(
                "inside n=2 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7"
            ),
            "{}",
            all[1]
        );
    }

    #[test]
    fn json_lines_inside_a_traced_span_have_its_ids_as_keys() {
        let lines = CapturedLog::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(move || writer.clone())
            .event_format(WithTraceIds::json(tracing_subscriber::fmt::format().json()));
        log_both(Registry::default().with(layer));
        let text = lines.text();
        let objects: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect();
        assert_eq!(objects.len(), 2, "{text}");
        assert!(objects[0].get("trace_id").is_none());
        assert_eq!(objects[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(objects[1]["span_id"], "00f067aa0ba902b7");
        assert_eq!(objects[1]["fields"]["message"], "inside");
    }
}
