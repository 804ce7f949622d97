//! The proxy's options: its listener and how requests are forwarded, and its cache.

use std::net::SocketAddr;
use std::time::Duration;

use super::access_log::AccessLogFormat;
use super::ttl_overrides::TtlOverrides;
use crate::byte_size;
use crate::origin::HostHeader;

/// The client-facing proxy listener.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Proxy")]
pub struct ProxyConfig {
    /// Address the proxy accepts client traffic on.
    #[arg(
        long = "listen",
        env = "SIDECACHE_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        value_parser = crate::listen_addr::parse_listen_addr
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
    /// Whether clients' `Cache-Control` and `Pragma` request directives are obeyed (`honor`,
    /// RFC 9111 §5.2.1), or ignored (`ignore`), as Varnish and nginx do by default: then a
    /// client's `no-cache`, `max-age=0` or `no-store` cannot send requests past the cache.
    #[arg(
        long = "client-cache-control",
        env = "SIDECACHE_CLIENT_CACHE_CONTROL",
        value_name = "MODE",
        default_value = "honor"
    )]
    pub client_cache_control: ClientCacheControl,
    /// One access line per request on stdout, written when its response is sent: off, text
    /// (nginx's combined format plus host, Cache-Status, request and upstream times, how it
    /// ended and the trace id), or json (the same fields, one object per line).
    #[arg(
        help_heading = "Logging",
        long = "access-log",
        env = "SIDECACHE_ACCESS_LOG",
        value_name = "FORMAT",
        default_value = "off"
    )]
    pub access_log: AccessLogFormat,
}

/// What the cache does with a client's request directives (`--client-cache-control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientCacheControl {
    /// Obey them, as RFC 9111 asks.
    Honor,
    /// Answer every request as if it carried none.
    Ignore,
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
        value_parser = crate::duration::parse_duration
    )]
    pub coalesce_timeout: Duration,
    /// Most requests that wait for one origin load of a key. Beyond it, a request gets the stored
    /// copy where one may stand in (stale-if-error, max-stale, --grace), else 503 with
    /// Retry-After, rather than adding to the origin's load or to the queue.
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
        value_parser = crate::duration::parse_duration
    )]
    pub hit_for_miss_ttl: Duration,
    /// How long past expiry a stale entry may still be served while the origin is unreachable.
    /// 0 turns it off.
    #[arg(
        long = "grace",
        env = "SIDECACHE_GRACE",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = crate::duration::parse_duration
    )]
    pub grace: Duration,
    /// What a `Range` request for a URL with nothing stored loads: `whole`, the whole
    /// representation in one shared load, from which every later range is answered (as Varnish
    /// and nginx do); or `part`, only the bytes asked for, stored as a part that later ranges are
    /// answered from and completed with the missing bytes only. URLs too large to store always
    /// work as `part`.
    #[arg(
        long = "range-miss",
        env = "SIDECACHE_RANGE_MISS",
        value_name = "MODE",
        default_value = "whole"
    )]
    pub range_miss: RangeMiss,
    /// Upper bound on the freshness guessed from `Last-Modified` for responses without explicit
    /// freshness (heuristic freshness, RFC 9111 section 4.2.2: a tenth of the time since the
    /// last change). 0 turns the guess off.
    #[arg(
        long = "max-heuristic-freshness",
        env = "SIDECACHE_MAX_HEURISTIC_FRESHNESS",
        value_name = "DURATION",
        default_value = "2m",
        value_parser = crate::duration::parse_duration
    )]
    pub max_heuristic_freshness: Duration,
    /// Freshness for responses the origin gives none (no max-age, s-maxage or Expires), in place
    /// of the guess from `Last-Modified`, like Varnish's default_ttl. Unset by default: the
    /// guess applies.
    #[arg(
        long = "default-ttl",
        env = "SIDECACHE_DEFAULT_TTL",
        value_name = "DURATION",
        value_parser = crate::duration::parse_duration
    )]
    pub default_ttl: Option<Duration>,
    /// Freshness by path prefix, for origins whose caching fields cannot be changed: rules
    /// `PREFIX=DURATION[,force]` separated by `;`, e.g. "/api/=30s; /static/=1d,force". A rule
    /// stands in for missing freshness; with `force` it replaces the origin's max-age, s-maxage
    /// and Expires too. The longest matching prefix wins; no-store, private and credentials are
    /// obeyed whatever the rule.
    #[arg(
        long = "ttl-overrides",
        env = "SIDECACHE_TTL_OVERRIDES",
        value_name = "RULES",
        default_value = "none"
    )]
    pub ttl_overrides: TtlOverrides,
}

/// What a `Range` request that misses loads (`--range-miss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RangeMiss {
    /// The whole representation, in one load every waiting request shares.
    Whole,
    /// The bytes asked for, stored as a part.
    Part,
}
