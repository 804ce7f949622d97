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
//!    plus `value_parser = ...` for durations (`crate::duration::parse_duration`), listener
//!    addresses (`crate::listen_addr::parse_listen_addr`) and byte sizes
//!    (`crate::byte_size::parse_bytes`). Options take exactly one value (`ArgAction::Set`); a test enforces
//!    the conventions.
//! 3. If the value has rules beyond its syntax (non-zero, relation to another option), add the check
//!    to `validation.rs`.
//!
//! # Errors and exit codes
//!
//! Loading fails with a [`ConfigError`]. `--help` and `--version` also arrive as a `ConfigError`
//! whose [`exit_code`](ConfigError::exit_code) is 0; every other error exits with [`EX_USAGE`] (64),
//! before any port is bound.

mod env;
mod env_names;
mod error;
mod invocation;
mod sources;
mod standard_env;
mod summary;
#[cfg(test)]
mod tests;
mod validation;

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

pub use env::{Env, ProcessEnv};
pub use error::ConfigError;
pub use invocation::Invocation;
pub use standard_env::STANDARD_ENV;
pub use summary::Summary;

use crate::admin::AdminConfig;
use crate::origin::OriginConfig;
use crate::proxy::part_store::PartSettings;
use crate::proxy::settings::RequestSettings;
use crate::proxy::{CacheConfig, ProxyConfig};
use crate::server::ClientLimitsConfig;
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
        value_parser = crate::duration::parse_duration
    )]
    pub shutdown_grace: Duration,
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
            client_cache_control: self.proxy.client_cache_control,
        }
    }

    /// How the proxy keeps the parts of representations: up to a sixteenth of
    /// `--cache-capacity` (at least 1 MiB) beside it, each representation up to
    /// `--max-object-size`.
    pub fn part_settings(&self) -> PartSettings {
        PartSettings {
            capacity_bytes: (self.cache.capacity_bytes / 16).max(1 << 20),
            max_object_bytes: self.cache.max_object_bytes,
            range_miss: self.cache.range_miss,
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
