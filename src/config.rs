//! Typed configuration: one sub-struct per component, read from flags > environment > TOML file > defaults.
//!
//! Components own their configuration: each declares a `*Config` next to its code
//! ([`OriginConfig`] in `origin`, [`AdminConfig`] in `admin`, [`LogConfig`], [`TelemetryConfig`]
//! and [`TracingConfig`] in `telemetry`, [`WriteBehindConfig`] in `writebehind`), and [`Config`]
//! aggregates them. This module imports the components, never the reverse; it keeps what is
//! common to every option: the sources, validation, errors and byte sizes. The proxy's, the
//! cache's and the client limits' sub-structs are still declared here.
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
//! 1. Add a field to the `*Config` sub-struct of the component that reads it (or a new `*Config`
//!    sub-struct in the component's `config.rs`, flattened into [`Config`] with its own
//!    `next_help_heading`; a field directly on `Config` needs a `help_heading`). Its doc comment
//!    says why it exists and becomes the `--help` text; its unit is in its type ([`Duration`]) or
//!    its name (`_bytes`).
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
use std::net::SocketAddr;
use std::time::Duration;

pub use byte_size::{ByteSize, ByteSizeError};
pub use client::ClientLimitsConfig;
pub use env::{Env, ProcessEnv};
pub use error::ConfigError;
pub use standard_env::STANDARD_ENV;

use crate::admin::AdminConfig;
use crate::origin::{HostHeader, OriginConfig};
use crate::proxy::settings::RequestSettings;
use crate::telemetry::{LogConfig, TelemetryConfig, TracingConfig};
use crate::writebehind::WriteBehindConfig;

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

    /// What one request may carry: the client limits the proxy checks itself, and whether TRACE
    /// is forwarded.
    pub fn request_settings(&self) -> RequestSettings {
        RequestSettings {
            max_headers: self.client.max_headers,
            max_body_bytes: self.client.max_request_body_bytes,
            max_uri_bytes: self.client.max_uri_bytes,
            allow_trace: self.proxy.allow_trace,
            body_timeout: self.client.body_timeout,
        }
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
