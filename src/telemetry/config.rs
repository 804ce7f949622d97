//! The configuration of logs, stats windows and traces.

use std::time::Duration;

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Logging")]
pub struct LogConfig {
    /// Log line format: text for people, json for log collectors.
    #[arg(
        long = "log-format",
        env = "SIDECACHE_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub format: LogFormat,
    /// Which events are logged: a preset (prod: warnings plus sidecache's start/stop lines;
    /// development: also one access line per request; debug: everything at debug), or
    /// tracing's EnvFilter syntax (e.g. "info" or "sidecache=debug,hyper=warn"). RUST_LOG, when
    /// set, is honoured by telemetry instead. SIDECACHE_LOG, the variable's former name, is still
    /// read when SIDECACHE_LOG_LEVEL is unset.
    #[arg(
        long = "log-level",
        env = "SIDECACHE_LOG_LEVEL",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Metrics, stats and traces.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetryConfig {
    /// Length of the windows `GET /stats` reports: the current one (`cycle`) and the previous
    /// complete one (`last`).
    #[arg(
        long = "stats-window",
        env = "SIDECACHE_STATS_WINDOW",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = crate::duration::parse_duration
    )]
    pub stats_window: Duration,
}

/// OpenTelemetry traces, exported over OTLP. Off (no exporter, no spans) while no endpoint is set.
///
/// Each option is also read from its standard OpenTelemetry variable (see
/// [`STANDARD_ENV`](crate::config::STANDARD_ENV)), below its `SIDECACHE_*` variable.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Tracing")]
pub struct TracingConfig {
    /// Where to send spans over OTLP, e.g. http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318
    /// (HTTP; /v1/traces is appended). Unset by default: tracing is off, no span is recorded.
    #[arg(
        long = "otlp-endpoint",
        env = "SIDECACHE_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    pub otlp_endpoint: Option<http::Uri>,
    /// The OTLP transport: grpc, or http/protobuf.
    #[arg(
        long = "otlp-protocol",
        env = "SIDECACHE_OTLP_PROTOCOL",
        value_name = "PROTOCOL",
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: OtlpProtocol,
    /// The service.name spans are reported under.
    #[arg(
        long = "service-name",
        env = "SIDECACHE_SERVICE_NAME",
        value_name = "NAME",
        default_value = "sidecache"
    )]
    pub service_name: String,
    /// Which requests are traced, as OTEL_TRACES_SAMPLER names them. The parentbased_* samplers
    /// follow the sampled flag of an incoming traceparent and apply the rest to requests without one.
    #[arg(
        long = "trace-sampler",
        env = "SIDECACHE_TRACE_SAMPLER",
        value_name = "SAMPLER",
        default_value = "parentbased_always_on"
    )]
    pub sampler: SamplerKind,
    /// The sampling ratio (0 to 1) of traceidratio and parentbased_traceidratio. Unset by default,
    /// which samples every trace (1.0); the other samplers ignore it.
    #[arg(
        long = "trace-sampler-arg",
        env = "SIDECACHE_TRACE_SAMPLER_ARG",
        value_name = "RATIO",
        value_parser = parse_ratio
    )]
    pub sampler_arg: Option<Ratio>,
    /// How long finished spans wait to be sent in a batch (OTEL_BSP_SCHEDULE_DELAY, in ms there).
    #[arg(
        long = "trace-batch-delay",
        env = "SIDECACHE_TRACE_BATCH_DELAY",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = crate::duration::parse_duration
    )]
    pub batch_delay: Duration,
    /// Most finished spans held for export (queued, or in the batch being sent); when it is
    /// full, new spans are dropped (counted in sidecache_trace_spans_dropped_total) rather than
    /// making a request wait.
    #[arg(
        long = "trace-queue-size",
        env = "SIDECACHE_TRACE_QUEUE_SIZE",
        value_name = "SPANS",
        default_value = "2048"
    )]
    pub max_queue_size: usize,
    /// Most spans sent in one export request; at most the queue size.
    #[arg(
        long = "trace-batch-size",
        env = "SIDECACHE_TRACE_BATCH_SIZE",
        value_name = "SPANS",
        default_value = "512"
    )]
    pub max_export_batch_size: usize,
    /// How long one export request may take before it is abandoned (OTEL_BSP_EXPORT_TIMEOUT, in
    /// ms there).
    #[arg(
        long = "trace-export-timeout",
        env = "SIDECACHE_TRACE_EXPORT_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = crate::duration::parse_duration
    )]
    pub export_timeout: Duration,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (the collector's and Jaeger's port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies, POST {endpoint}/v1/traces (port 4318).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// A sampler, named as `OTEL_TRACES_SAMPLER` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Every trace.
    AlwaysOn,
    /// No trace.
    AlwaysOff,
    /// A share of traces (the sampler argument), decided from the trace id.
    #[value(name = "traceidratio")]
    TraceIdRatio,
    /// The parent's decision; every trace that starts here.
    ParentbasedAlwaysOn,
    /// The parent's decision; no trace that starts here.
    ParentbasedAlwaysOff,
    /// The parent's decision; a share of the traces that start here.
    #[value(name = "parentbased_traceidratio")]
    ParentbasedTraceIdRatio,
}

/// A sampling ratio between 0 and 1 inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio(f64);

// === impl Ratio ===

impl Ratio {
    /// Every trace.
    pub const ONE: Ratio = Ratio(1.0);

    /// `fraction` as a ratio, if it is from 0 to 1.
    pub fn new(fraction: f64) -> Option<Ratio> {
        (0.0..=1.0).contains(&fraction).then_some(Ratio(fraction))
    }

    /// The ratio as a fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

// A ratio is never NaN (see `parse_ratio`), so equality is total.
impl Eq for Ratio {}

/// Parses a sampling ratio: a number from 0 to 1.
fn parse_ratio(text: &str) -> Result<Ratio, String> {
    let ratio: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number from 0 to 1, e.g. 0.01".to_owned())?;
    Ratio::new(ratio).ok_or_else(|| "must be from 0 to 1".to_owned())
}
