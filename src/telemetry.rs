//! Logs and traces: the subscriber, the OTLP exporter and sampler, and W3C propagation.
//!
//! - [`export`]: [`Tracing`], `Disabled | Enabled`: the OpenTelemetry tracer provider (OTLP over
//!   gRPC or HTTP protobuf, a sampler, the SDK's bounded batch processor) and its flush at
//!   shutdown.
//! - [`context`]: what the two edges (the proxy's server span, the origin client's span) need:
//!   joining an incoming `traceparent`, injecting one, attributes, links. No-ops on spans no
//!   exporter records.
//! - [`logs`]: the log line format, which adds the request's trace and span ids.
//! - [`semconv`]: HTTP semantic-convention spellings both edges use.
//!
//! Business code only opens [`tracing`] spans; it never sees OpenTelemetry. With tracing off the
//! request path opens no span at all (the store's debug spans are disabled by the log filter),
//! so it pays nothing for it.

pub mod context;
pub mod export;
pub mod logs;
pub mod semconv;

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::layer::{self, Filter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

pub use self::export::{Tracing, TracingError};
use crate::config::{LogConfig, LogFormat};

/// A layer over the registry, boxed so that text and JSON, traced and untraced, share one type.
type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber: log lines to stderr and, when `tracing` is enabled, spans to
/// its exporter. `RUST_LOG`, when set, overrides the configured level.
///
/// # Errors
/// The level is not a valid filter, or a subscriber is already installed.
pub fn init(config: &LogConfig, tracing: &Tracing) -> Result<(), String> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let subscriber = subscriber(config, tracing, rust_log.as_deref())?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|error| format!("cannot install the log subscriber: {error}"))
}

/// The subscriber [`init`] installs, for callers that scope it themselves (tests use
/// `tracing::subscriber::set_default`). `filter`, when given and not blank, replaces the
/// configured level (it is `RUST_LOG`'s value in the binary).
///
/// # Errors
/// The level is not a valid filter.
pub fn subscriber(
    config: &LogConfig,
    tracing: &Tracing,
    filter: Option<&str>,
) -> Result<impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static, String> {
    subscriber_writing_to(config, tracing, filter, std::io::stderr)
}

/// [`subscriber`], writing log lines to `writer` instead of stderr (for tests and benchmarks).
///
/// # Errors
/// The level is not a valid filter.
pub fn subscriber_writing_to<W>(
    config: &LogConfig,
    tracing: &Tracing,
    filter: Option<&str>,
    writer: W,
) -> Result<impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static, String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let directives = match filter {
        Some(directives) if !directives.trim().is_empty() => directives,
        _ => config.level.as_str(),
    };
    let level =
        EnvFilter::try_new(directives).map_err(|error| format!("invalid log filter: {error}"))?;
    let mut layers: Vec<BoxedLayer> = vec![log_layer(
        config.format,
        level,
        tracing.is_enabled(),
        writer,
    )];
    if let Some(spans) = tracing.layer() {
        layers.push(Box::new(spans));
    }
    Ok(Registry::default().with(layers))
}

/// The log lines. With tracing on, the lines also see sidecache's spans whatever the level, so
/// that a request's line can carry its trace id; their fields are only formatted then.
fn log_layer<W>(format: LogFormat, level: EnvFilter, traced: bool, writer: W) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    match (format, traced) {
        (LogFormat::Text, false) => lines.with_filter(level).boxed(),
        (LogFormat::Json, false) => lines.json().with_filter(level).boxed(),
        (LogFormat::Text, true) => lines
            // Lines carrying ids are re-written (see `logs`), which drops colours: keep all
            // lines alike.
            .with_ansi(false)
            .event_format(logs::WithTraceIds::text(
                tracing_subscriber::fmt::format().with_ansi(false),
            ))
            .with_filter(level.or(sidecache_spans()))
            .boxed(),
        (LogFormat::Json, true) => lines
            .json()
            .event_format(logs::WithTraceIds::json(
                tracing_subscriber::fmt::format().json(),
            ))
            .with_filter(level.or(sidecache_spans()))
            .boxed(),
    }
}

/// sidecache's own spans (not its events, nor any dependency's spans), except those opened
/// inside a trace the sampler dropped: a request that is not sampled opens no child spans, so it
/// costs only its own.
fn sidecache_spans() -> SidecacheSpans {
    SidecacheSpans
}

fn is_sidecache(target: &str) -> bool {
    target == "sidecache" || target.starts_with("sidecache::")
}

/// The filter [`sidecache_spans`] returns.
#[derive(Debug, Clone, Copy)]
struct SidecacheSpans;

impl<S> Filter<S> for SidecacheSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, cx: &layer::Context<'_, S>) -> bool {
        metadata.is_span() && is_sidecache(metadata.target()) && !inside_unsampled(cx)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() && is_sidecache(metadata.target()) {
            // Whether it is enabled depends on the span it is opened in.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }
}

/// Whether the current span lies in a trace the sampler dropped: the innermost traced span
/// around it is unsampled, or it is itself a sidecache span this filter turned away (which
/// happens only inside such a trace). Spans turned away by every layer still exist in the
/// registry, so a task that runs in one (a leader's load, spawned from an unsampled request)
/// is recognised by the second rule.
fn inside_unsampled<S>(cx: &layer::Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let top = cx.current_span();
    let visible = cx.lookup_current();
    if let Some(metadata) = top.metadata() {
        let turned_away = visible.as_ref().map(|span| span.id()) != top.id().cloned();
        if turned_away && metadata.is_span() && is_sidecache(metadata.target()) {
            return true;
        }
    }
    visible.is_some_and(|current| {
        current
            .scope()
            .find_map(|span| {
                span.extensions()
                    .get::<logs::TraceIds>()
                    .map(|ids| !ids.sampled)
            })
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests;
