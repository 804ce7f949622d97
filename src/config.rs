//! Typed configuration: one sub-struct per component, read from flags > environment > TOML file > defaults.
//!
//! Every option is declared exactly once, as a field with an `#[arg]` attribute on the sub-struct of
//! the component that uses it. From that one declaration come the `--flag`, the `SIDECACHE_*`
//! environment variable, the TOML key (the flag's long name, e.g. `cache-capacity = "256MiB"`), the
//! default, the value parser and the `--help` entry. Every source is checked by the same value
//! parser, then [`Config::validate`] checks the rules beyond one value's syntax, and all problems
//! are reported together.
//!
//! # Adding an option
//!
//! 1. Add a field to the sub-struct of the component that reads it (or a new `*Config` sub-struct,
//!    flattened into [`Config`] with its own `next_help_heading`; a field directly on `Config` needs
//!    a `help_heading`). Its doc comment says why it exists and becomes the `--help` text; its unit
//!    is in its type ([`Duration`]) or its name (`_bytes`).
//! 2. Give it `#[arg(long = "...", env = "SIDECACHE_...", value_name = "...", default_value = "...")]`
//!    (leave out `default_value` only for an `Option`, and say in the doc comment what unset means),
//!    plus `value_parser = ...` for durations (`humantime::parse_duration`) and byte sizes
//!    (`byte_size::parse_bytes`). Options take exactly one value (`ArgAction::Set`); a test enforces
//!    the conventions.
//! 3. If the value has rules beyond its syntax (non-zero, relation to another option), add the check
//!    to `validation.rs`.
//!
//! # Errors and exit codes
//!
//! Loading fails with a [`ConfigError`]. `--help` and `--version` also arrive as a `ConfigError`
//! whose [`exit_code`](ConfigError::exit_code) is 0; every other error exits with [`EX_USAGE`] (64),
//! before any port is bound.

mod byte_size;
mod client;
mod env;
mod error;
mod sources;
mod standard_env;
#[cfg(test)]
mod tests;
mod validation;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use byte_size::{ByteSize, ByteSizeError};
pub use client::ClientLimitsConfig;
pub use env::{Env, ProcessEnv};
pub use error::ConfigError;
pub use standard_env::STANDARD_ENV;

use crate::writebehind::SinkAddress;

/// Exit code for a configuration error (`EX_USAGE` from BSD `sysexits.h`).
pub const EX_USAGE: i32 = 64;

/// The whole configuration: one sub-struct per component, each handed only its own part.
///
/// Built once at start-up by [`Config::load`], validated, and never changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// The client-facing proxy listener and how requests are forwarded.
    #[command(flatten)]
    pub proxy: ProxyConfig,
    /// What one client may ask of the proxy port: connections, head size, timeouts, body size.
    #[command(flatten)]
    pub client: ClientLimitsConfig,
    /// The origin behind the cache and the limits on talking to it.
    #[command(flatten)]
    pub origin: OriginConfig,
    /// The in-memory cache: its size and its single-flight and staleness policy.
    #[command(flatten)]
    pub cache: CacheConfig,
    /// The separate admin listener (metrics, stats, health, purge).
    #[command(flatten)]
    pub admin: AdminConfig,
    /// Log output.
    #[command(flatten)]
    pub log: LogConfig,
    /// Metrics, stats and traces.
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// OpenTelemetry traces over OTLP.
    #[command(flatten)]
    pub tracing: TracingConfig,
    /// Write-behind counters and the sink they are flushed to.
    #[command(flatten)]
    pub writebehind: WriteBehindConfig,
    /// How long a graceful shutdown waits for in-flight requests and final flushes before exiting anyway.
    #[arg(
        help_heading = "Lifecycle",
        long = "shutdown-grace",
        env = "SIDECACHE_SHUTDOWN_GRACE",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub shutdown_grace: Duration,
}

/// The client-facing proxy listener.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Proxy")]
pub struct ProxyConfig {
    /// Address the proxy accepts client traffic on.
    #[arg(
        long = "listen",
        env = "SIDECACHE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,
    /// Which Host header requests carry to the origin: the client's, or the origin URL's authority
    /// (for origins that route on their own name).
    #[arg(
        long = "host-header",
        env = "SIDECACHE_HOST_HEADER",
        value_name = "MODE",
        default_value = "preserve"
    )]
    pub host_header: HostHeader,
    /// Forward TRACE requests to the origin. Off, they are answered 405: TRACE echoes the
    /// request back, credentials included, and nothing in front of a service needs it.
    #[arg(
        long = "allow-trace",
        env = "SIDECACHE_ALLOW_TRACE",
        value_name = "BOOL",
        default_value = "false",
        action = clap::ArgAction::Set
    )]
    pub allow_trace: bool,
}

/// Which `Host` header requests carry to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostHeader {
    /// Send the client's Host header unchanged.
    Preserve,
    /// Send the authority of the origin URL.
    Origin,
}

/// The origin behind the cache and the limits on talking to it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Origin")]
pub struct OriginConfig {
    /// The origin to cache in front of, as http://HOST or http://HOST:PORT (no path: each client's path is
    /// forwarded as is). Unset by default: sidecache then starts an embedded demo origin, so one
    /// command shows the whole product.
    #[arg(long = "origin", env = "SIDECACHE_ORIGIN", value_name = "URL")]
    pub url: Option<http::Uri>,
    /// How long to wait for a TCP connection to the origin, so a dead origin fails fast.
    #[arg(
        long = "origin-connect-timeout",
        env = "SIDECACHE_ORIGIN_CONNECT_TIMEOUT",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub connect_timeout: Duration,
    /// How long to wait for the origin's response head, so a hanging origin turns into a 504 (or
    /// stale content) instead of a stuck client.
    #[arg(
        long = "origin-timeout",
        env = "SIDECACHE_ORIGIN_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub first_byte_timeout: Duration,
    /// How long reading a whole response body may take when it is buffered for the cache.
    #[arg(
        long = "origin-body-timeout",
        env = "SIDECACHE_ORIGIN_BODY_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = humantime::parse_duration
    )]
    pub body_timeout: Duration,
    /// Longest pause between two reads of an origin body streamed to a client (a pass-through or
    /// an object too large to store), so an origin that stops sending mid-body cannot hold the
    /// client forever; the stream is then cut off.
    #[arg(
        long = "origin-read-timeout",
        env = "SIDECACHE_ORIGIN_READ_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub read_timeout: Duration,
    /// How long an idle pooled connection to the origin is kept for reuse before it is closed.
    #[arg(
        long = "origin-pool-idle-timeout",
        env = "SIDECACHE_ORIGIN_POOL_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "90s",
        value_parser = humantime::parse_duration
    )]
    pub pool_idle_timeout: Duration,
    /// Most connections open to the origin at once. A request that finds none free waits for
    /// one, at most --origin-connect-timeout, and is then answered 503 (or served stale where
    /// allowed), so no burst of clients can open the origin any number of connections.
    #[arg(
        id = "origin_max_connections",
        long = "origin-max-connections",
        env = "SIDECACHE_ORIGIN_MAX_CONNECTIONS",
        value_name = "COUNT",
        default_value = "1024"
    )]
    pub max_connections: usize,
}

/// The in-memory cache: its size and its single-flight and staleness policy.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Cache")]
pub struct CacheConfig {
    /// Most bytes the cache holds (bodies plus headers); beyond it, entries are evicted.
    #[arg(
        long = "cache-capacity",
        env = "SIDECACHE_CACHE_CAPACITY",
        value_name = "BYTES",
        default_value = "256MiB",
        value_parser = byte_size::parse_bytes
    )]
    pub capacity_bytes: u64,
    /// Largest single response that is stored, so one huge object cannot flush the cache; larger
    /// responses are passed through. Must be > 0 and at most the cache capacity.
    #[arg(
        long = "max-object-size",
        env = "SIDECACHE_MAX_OBJECT_SIZE",
        value_name = "BYTES",
        default_value = "8MiB",
        value_parser = byte_size::parse_bytes
    )]
    pub max_object_bytes: u64,
    /// How long a request waits for another client's origin load of the same key before it goes
    /// to the origin itself.
    #[arg(
        long = "coalesce-timeout",
        env = "SIDECACHE_COALESCE_TIMEOUT",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub coalesce_timeout: Duration,
    /// Most requests that wait for one origin load of a key. Beyond it, a request is answered
    /// 503 with Retry-After rather than adding to the origin's load or to the queue.
    #[arg(
        long = "max-waiters-per-key",
        env = "SIDECACHE_MAX_WAITERS_PER_KEY",
        value_name = "COUNT",
        default_value = "10000"
    )]
    pub max_waiters_per_key: usize,
    /// How long a key whose response turned out not to be shareable is remembered, so later
    /// requests go straight to the origin instead of queueing behind a load that cannot help
    /// them (hit-for-miss). 0 turns it off.
    #[arg(
        long = "hit-for-miss-ttl",
        env = "SIDECACHE_HIT_FOR_MISS_TTL",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub hit_for_miss_ttl: Duration,
    /// How long past expiry a stale entry may still be served while the origin is unreachable.
    /// 0 turns it off.
    #[arg(
        long = "grace",
        env = "SIDECACHE_GRACE",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = humantime::parse_duration
    )]
    pub grace: Duration,
    /// Upper bound on the freshness guessed for responses without explicit freshness
    /// (heuristic freshness, RFC 9111 section 4.2.2).
    #[arg(
        long = "max-heuristic-freshness",
        env = "SIDECACHE_MAX_HEURISTIC_FRESHNESS",
        value_name = "DURATION",
        default_value = "24h",
        value_parser = humantime::parse_duration
    )]
    pub max_heuristic_freshness: Duration,
}

/// The admin listener, kept apart from the proxy port.
#[derive(Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Admin")]
pub struct AdminConfig {
    /// Address of the admin endpoints (metrics, stats, health, purge), separate from the proxy
    /// port so they answer even when the data plane is saturated.
    #[arg(
        id = "admin-listen",
        long = "admin-listen",
        env = "SIDECACHE_ADMIN_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,
    /// Bearer token that every admin call but /healthz, /readyz and /metrics must send
    /// (Authorization: Bearer TOKEN). Unset by default, which leaves those calls open to anyone
    /// who can reach the admin port; required when --admin-listen is not a loopback address.
    #[arg(
        long = "admin-token",
        env = "SIDECACHE_ADMIN_TOKEN",
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Allow an --admin-listen address other hosts can reach (not 127.0.0.0/8 or ::1) without
    /// --admin-token, leaving purges and counters open to the network. Without it, such a
    /// configuration is refused at start.
    #[arg(
        long = "admin-insecure",
        env = "SIDECACHE_ADMIN_INSECURE",
        value_name = "BOOL",
        default_value = "false",
        action = clap::ArgAction::Set
    )]
    pub insecure: bool,
}

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
    /// set, is honoured by telemetry instead.
    #[arg(
        long = "log-level",
        env = "SIDECACHE_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub level: String,
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
        value_parser = humantime::parse_duration
    )]
    pub stats_window: Duration,
}

/// OpenTelemetry traces, exported over OTLP. Off (no exporter, no spans) while no endpoint is set.
///
/// Each option is also read from its standard OpenTelemetry variable (see [`STANDARD_ENV`]),
/// below its `SIDECACHE_*` variable.
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
        value_parser = humantime::parse_duration
    )]
    pub batch_delay: Duration,
    /// Most finished spans held for export; when it is full, new spans are dropped rather than
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
        value_parser = humantime::parse_duration
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

/// Write-behind counters: kept in memory, flushed in batches to a durable sink.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Write-behind counters")]
pub struct WriteBehindConfig {
    /// Where counters are flushed: sqlite:PATH (a file in WAL mode, created when missing;
    /// sqlite::memory: keeps them only while the process runs) or a postgres:// URL (no TLS: keep
    /// the server on loopback or a private network). Tables are created when missing.
    #[arg(
        long = "writebehind-sink",
        env = "SIDECACHE_WRITEBEHIND_SINK",
        value_name = "SINK",
        default_value = "sqlite:sidecache-counters.db",
        value_parser = SinkAddress::parse
    )]
    pub sink: SinkAddress,
    /// How often pending increments are written to the sink, one transaction per flush.
    #[arg(
        long = "writebehind-interval",
        env = "SIDECACHE_WRITEBEHIND_INTERVAL",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = humantime::parse_duration
    )]
    pub interval: Duration,
    /// Most counter names held in memory between flushes, so a scan of random URLs cannot
    /// exhaust memory. At the cap, increments of pending names still count; one that would add a
    /// name is refused (admin: 503; request counts: dropped and counted in
    /// sidecache_writebehind_increments_total{outcome="full"}) and a flush starts at once.
    #[arg(
        long = "writebehind-max-pending-keys",
        env = "SIDECACHE_WRITEBEHIND_MAX_PENDING_KEYS",
        value_name = "COUNT",
        default_value = "100000"
    )]
    pub max_pending_keys: usize,
    /// Count proxied requests per cache key, in the counter named "requests:" followed by the
    /// key's host and path (HOST/PATH): the origin team's popularity data.
    #[arg(
        long = "writebehind-count-requests",
        env = "SIDECACHE_WRITEBEHIND_COUNT_REQUESTS",
        value_name = "BOOL",
        default_value = "false",
        action = clap::ArgAction::Set
    )]
    pub count_requests: bool,
    /// Keep the query string in request counters' names (requests:HOST/PATH?QUERY). Off by
    /// default: a query can carry a secret (a password-reset link) into the sink, and a random
    /// query per request makes every request a counter of its own.
    #[arg(
        long = "writebehind-count-query",
        env = "SIDECACHE_WRITEBEHIND_COUNT_QUERY",
        value_name = "BOOL",
        default_value = "false",
        action = clap::ArgAction::Set
    )]
    pub count_query: bool,
    /// How long a request counter's row is kept in the sink after its last increment: rows of
    /// URLs nobody asked for since are deleted (at the first flush after a start, then about
    /// every 1024 flushes), so one row per URL ever requested does not grow the table for ever.
    /// Other counters are never deleted. 0 keeps every row.
    #[arg(
        long = "writebehind-request-retention",
        env = "SIDECACHE_WRITEBEHIND_REQUEST_RETENTION",
        value_name = "DURATION",
        default_value = "30days",
        value_parser = humantime::parse_duration
    )]
    pub request_retention: Duration,
    /// Where pending increments are written if the sink cannot be reached at shutdown; replayed
    /// (each batch at most once) and removed at the next start.
    #[arg(
        long = "writebehind-recovery-file",
        env = "SIDECACHE_WRITEBEHIND_RECOVERY_FILE",
        value_name = "FILE",
        default_value = "sidecache-writebehind.recovery"
    )]
    pub recovery_file: PathBuf,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

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

// === impl Config ===

impl Config {
    /// Loads from the process's arguments and environment.
    ///
    /// # Errors
    ///
    /// See [`Config::load_from`].
    pub fn load() -> Result<Config, ConfigError> {
        Self::load_from(std::env::args_os(), &ProcessEnv)
    }

    /// Loads from the given arguments (argv\[0\] first) and environment: flags override
    /// `SIDECACHE_*` variables, which override the TOML file named by `--config` or
    /// `SIDECACHE_CONFIG`, which overrides the defaults. The result is validated.
    ///
    /// # Errors
    ///
    /// - `--help`/`--version`: a [`ConfigError`] with exit code 0 that prints the text.
    /// - A malformed command line: clap's error.
    /// - Otherwise every problem found in the environment, the file and [`Config::validate`],
    ///   reported together.
    pub fn load_from<I, T>(args: I, env: &dyn Env) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        sources::load(args.into_iter().map(Into::into).collect(), env)
    }

    /// Checks the rules that go beyond one value's syntax: non-zero timeouts, a usable origin URL,
    /// sizes that fit together, distinct listeners. Called by [`Config::load_from`].
    ///
    /// # Errors
    ///
    /// Every broken rule, reported together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validation::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::invalid(problems))
        }
    }
}

impl Default for Config {
    /// The built-in defaults, as if sidecache were started with no flags, environment or file.
    ///
    /// # Panics
    ///
    /// Only if a built-in default were invalid, which the module's tests rule out.
    fn default() -> Self {
        Self::load_from(["sidecache"], &HashMap::new()).expect("the built-in defaults are valid")
    }
}

// === impl AdminConfig ===

impl fmt::Debug for AdminConfig {
    /// Keeps the token out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .finish()
    }
}
