//! Logs and traces: the subscriber, the OTLP exporter and sampler, and W3C propagation.
//!
//! - `export`: [`Tracing`], `Disabled | Enabled`: the OpenTelemetry tracer provider (OTLP over
//!   gRPC or HTTP protobuf, a sampler, the SDK's bounded batch processor) and its flush at
//!   shutdown.
//! - `context`: what the two edges (the proxy's server span, the origin client's span) need:
//!   joining an incoming `traceparent`, injecting one, attributes, links. No-ops on spans no
//!   exporter records.
//! - `logs`: the log line format, which adds the request's trace and span ids.
//! - `line_budget`: how many lines of a kind may be written, so a storm of failures cannot flood
//!   the log.
//! - `semconv`: HTTP semantic-convention spellings both edges use.
//! - `uncached`: the wrapper every per-layer filter goes through, so tracing asks it about every
//!   span and event (a tracing-subscriber bug otherwise drops spans).
//!
//! Business code only opens [`tracing`] spans; it never sees OpenTelemetry. With tracing off the
//! request path opens no span at all (the store's debug spans are disabled by the log filter),
//! so it pays nothing for it.

mod config;
pub(crate) mod context;
pub(crate) mod export;
pub(crate) mod line_budget;
pub(crate) mod logs;
pub(crate) mod sampling;
pub(crate) mod semconv;
mod span_counts;
mod uncached;

use std::io::IsTerminal as _;

use tracing::subscriber::{Interest, SetGlobalDefaultError};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, ParseError};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::layer::{self, Filter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry, reload};

pub use self::config::{
    LogConfig, LogFormat, OtlpProtocol, Ratio, SamplerKind, TelemetryConfig, TracingConfig,
};
pub use self::export::{Tracing, TracingError};
pub use self::span_counts::SpanCounts;
use self::uncached::Uncached;

/// A layer over the registry, boxed so that text and JSON, traced and untraced, share one type.
type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The log lines' filter, replaceable through a [`LogFilterHandle`].
type ReloadableFilter = reload::Layer<EnvFilter, Registry>;

/// Why the log subscriber could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    /// The level (or `RUST_LOG`) is not a valid filter.
    #[error(
        "invalid log filter {directives:?} (--log-level, or RUST_LOG when set): expected a preset \
         (prod, development, debug) or EnvFilter directives such as \"info,hyper=warn\""
    )]
    Filter {
        /// The text that was given.
        directives: String,
        /// What the filter parser found wrong.
        source: ParseError,
    },
    /// A global subscriber was installed before.
    #[error("cannot install the log subscriber")]
    Install(#[source] SetGlobalDefaultError),
}

/// Installs the global subscriber: log lines to stderr and, when `tracing` is enabled, spans to
/// its exporter. `RUST_LOG`, when set, overrides the configured level.
///
/// # Errors
/// The level is not a valid filter, or a subscriber is already installed.
/// Returns the handle that changes the log filter while serving.
pub fn init(config: &LogConfig, tracing: &Tracing) -> Result<LogFilterHandle, SubscriberError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (subscriber, handle) = reloadable_subscriber(
        config,
        tracing,
        rust_log.as_deref(),
        std::io::stderr,
        stderr_is_a_terminal(),
    )?;
    tracing::subscriber::set_global_default(subscriber).map_err(SubscriberError::Install)?;
    Ok(handle)
}

/// Replaces the filter of the log lines [`init`] installed.
///
/// The filter sits behind a read-write lock that tracing reads only for callsites the filter
/// does not turn down outright (a turned-down callsite is cached as such and never asks), and the
/// interest of every callsite is recomputed when the filter is replaced.
#[derive(Debug, Clone)]
pub struct LogFilterHandle(reload::Handle<EnvFilter, Registry>);

impl LogFilterHandle {
    /// Makes `filter` the log lines' filter from now on.
    ///
    /// # Errors
    /// The subscriber is gone (the process is ending).
    pub fn replace(&self, filter: EnvFilter) -> Result<(), reload::Error> {
        self.0.reload(filter)
    }
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
) -> Result<impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static, SubscriberError> {
    reloadable_subscriber(
        config,
        tracing,
        filter,
        std::io::stderr,
        stderr_is_a_terminal(),
    )
    .map(|(subscriber, _)| subscriber)
}

/// Whether log lines to stderr may carry colour codes: only for a person at a terminal (not in
/// files, pipes or journald), and not when `NO_COLOR` is set.
fn stderr_is_a_terminal() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// [`subscriber`], writing log lines to `writer` instead of stderr (for tests and benchmarks),
/// without colour codes.
///
/// # Errors
/// The level is not a valid filter.
pub fn subscriber_writing_to<W>(
    config: &LogConfig,
    tracing: &Tracing,
    filter: Option<&str>,
    writer: W,
) -> Result<impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static, SubscriberError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    reloadable_subscriber(config, tracing, filter, writer, false).map(|(subscriber, _)| subscriber)
}

/// [`subscriber_writing_to`], with colour codes in text lines if `colour`, and the handle that
/// replaces its log filter.
///
/// # Errors
/// The level is not a valid filter.
pub fn reloadable_subscriber<W>(
    config: &LogConfig,
    tracing: &Tracing,
    filter: Option<&str>,
    writer: W,
    colour: bool,
) -> Result<
    (
        impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static + use<W>,
        LogFilterHandle,
    ),
    SubscriberError,
>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (level, handle) = reload::Layer::new(log_filter(config, filter)?);
    let mut layers: Vec<BoxedLayer> = vec![log_layer(
        config.format,
        level,
        tracing.is_enabled(),
        writer,
        colour,
    )];
    if let Some(spans) = tracing.layer() {
        layers.push(Box::new(spans));
    }
    Ok((Registry::default().with(layers), LogFilterHandle(handle)))
}

/// The filter the log lines go through: `filter` when given and not blank (`RUST_LOG`'s value in
/// the binary), else the configured level, either of them a preset name or `EnvFilter` directives.
///
/// # Errors
/// The chosen text is not a valid filter.
pub fn log_filter(config: &LogConfig, filter: Option<&str>) -> Result<EnvFilter, SubscriberError> {
    let directives = match filter {
        Some(directives) if !directives.trim().is_empty() => directives,
        _ => config.level.as_str(),
    };
    let directives = preset_directives(directives.trim()).unwrap_or(directives);
    EnvFilter::try_new(directives).map_err(|source| SubscriberError::Filter {
        directives: directives.to_owned(),
        source,
    })
}

/// The filter a named preset stands for, if `level` is one:
/// - `prod`: warnings and errors, plus sidecache's own start, stop and trouble lines;
/// - `development`: also one access line per request (with its trace id when traced);
/// - `debug`: everything at debug, dependencies included (hyper, h2, moka, OpenTelemetry).
fn preset_directives(level: &str) -> Option<&'static str> {
    match level {
        "prod" | "production" => Some("warn,sidecache=info"),
        "development" | "dev" => Some("info,sidecache=debug"),
        "debug" => Some("debug"),
        _ => None,
    }
}

/// The log lines, text ones with colour codes if `colour`. With tracing on, the lines also see
/// sidecache's spans whatever the level, so that a request's line can carry its trace id; their
/// fields are only formatted then.
fn log_layer<W>(
    format: LogFormat,
    level: ReloadableFilter,
    traced: bool,
    writer: W,
    colour: bool,
) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = tracing_subscriber::fmt::layer().with_writer(writer);
    match (format, traced) {
        (LogFormat::Text, false) => lines.with_ansi(colour).with_filter(Uncached(level)).boxed(),
        (LogFormat::Json, false) => lines.json().with_filter(Uncached(level)).boxed(),
        (LogFormat::Text, true) => lines
            // Lines carrying ids are re-written (see `logs`), which drops colours: keep all
            // lines alike.
            .with_ansi(false)
            .event_format(logs::WithTraceIds::text(
                tracing_subscriber::fmt::format().with_ansi(false),
            ))
            .with_filter(Uncached(level.or(sidecache_spans())))
            .boxed(),
        (LogFormat::Json, true) => lines
            .json()
            .event_format(logs::WithTraceIds::json(
                tracing_subscriber::fmt::format().json(),
            ))
            .with_filter(Uncached(level.or(sidecache_spans())))
            .boxed(),
    }
}

/// sidecache's own spans (not its events, nor any dependency's spans). Only recorded requests
/// open spans at all (see [`sampling`]), so every one of them is worth recording.
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
    fn enabled(&self, metadata: &Metadata<'_>, _cx: &layer::Context<'_, S>) -> bool {
        metadata.is_span() && is_sidecache(metadata.target())
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() && is_sidecache(metadata.target()) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

#[cfg(test)]
mod tests;
