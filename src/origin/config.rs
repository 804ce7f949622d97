//! The origin's configuration: where it is and how long to wait for it.

use std::time::Duration;

/// The origin behind the cache and the limits on talking to it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Origin")]
pub struct OriginConfig {
    /// The origin to cache in front of, as http://HOST or http://HOST:PORT, optionally with a path each
    /// client's path is asked for under (http://svc:9000/api/: /users goes to /api/users, and the
    /// origin's Location /api/users/5 reaches clients as /users/5). Unset by default: sidecache
    /// then starts its embedded demo origin if the proxy listens on a loopback address only (so
    /// one command shows the whole product), and refuses to start otherwise unless --demo is given.
    #[arg(long = "origin", env = "SIDECACHE_ORIGIN", value_name = "URL")]
    pub url: Option<http::Uri>,
    /// How long to wait for a TCP connection to the origin, so a dead origin fails fast.
    #[arg(
        long = "origin-connect-timeout",
        env = "SIDECACHE_ORIGIN_CONNECT_TIMEOUT",
        value_name = "DURATION",
        default_value = "5s",
        value_parser = crate::duration::parse_duration
    )]
    pub connect_timeout: Duration,
    /// How long to wait for the origin's response head, so a hanging origin turns into a 504 (or
    /// stale content) instead of a stuck client.
    #[arg(
        long = "origin-timeout",
        env = "SIDECACHE_ORIGIN_TIMEOUT",
        value_name = "DURATION",
        default_value = "30s",
        value_parser = crate::duration::parse_duration
    )]
    pub first_byte_timeout: Duration,
    /// How long reading a whole response body may take when it is buffered for the cache.
    #[arg(
        long = "origin-body-timeout",
        env = "SIDECACHE_ORIGIN_BODY_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = crate::duration::parse_duration
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
        value_parser = crate::duration::parse_duration
    )]
    pub read_timeout: Duration,
    /// How long an idle pooled connection to the origin is kept for reuse before it is closed.
    #[arg(
        long = "origin-pool-idle-timeout",
        env = "SIDECACHE_ORIGIN_POOL_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "90s",
        value_parser = crate::duration::parse_duration
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
    /// Serve the embedded demo origin (slow cacheable pages, an uncacheable one, a failing one)
    /// even when the proxy listens beyond loopback. Without it, a missing --origin starts the demo
    /// only on a loopback --listen, so a typo or an unset SIDECACHE_ORIGIN cannot put demo pages
    /// in front of real clients. Cannot be combined with --origin.
    #[arg(
        long = "demo",
        env = "SIDECACHE_DEMO",
        value_name = "BOOL",
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub demo: bool,
}

/// Which `Host` header requests carry to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostHeader {
    /// Send the client's Host header unchanged.
    Preserve,
    /// Send the authority of the origin URL.
    Origin,
}
