//! Semantic checks on a [`Config`]: the rules that go beyond one value's syntax.
//!
//! Every check names the option by its long flag; the loader re-labels a problem with the source
//! the value actually came from (environment variable or file key).

use std::time::Duration;

use super::error::{Place, Problem};
use super::{ClientLimitsConfig, Config};
use crate::admin::AdminConfig;
use crate::byte_size::ByteSize;
use crate::telemetry::TracingConfig;

/// Every rule `config` breaks, in option order.
pub(super) fn problems(config: &Config) -> Vec<Problem> {
    let mut found = Vec::new();
    if let Some(url) = &config.origin.url {
        check_origin_url(url, &mut found);
    }
    check_origin_or_demo(config, &mut found);
    check_non_zero_durations(config, &mut found);
    check_cache_sizes(config, &mut found);
    check_client_limits(&config.client, &mut found);
    if config.cache.max_waiters_per_key == 0 {
        found.push(problem("max-waiters-per-key", "must be greater than zero"));
    }
    check_listeners_differ(config, &mut found);
    check_admin_token(config.admin.token.as_deref(), &mut found);
    check_admin_exposure(&config.admin, &mut found);
    check_tracing(&config.tracing, &mut found);
    if config.log.level.trim().is_empty() {
        found.push(problem(
            "log-level",
            "must not be empty (e.g. \"info\" or \"sidecache=debug,hyper=warn\")",
        ));
    }
    check_writebehind(config, &mut found);
    found
}

fn problem(long: &str, message: impl Into<String>) -> Problem {
    Problem::new(Place::flag(long), message)
}

/// The origin must be `http://host[:port]`, optionally with a path that each client's path is
/// asked for under; a query would have no place to go.
fn check_origin_url(url: &http::Uri, found: &mut Vec<Problem>) {
    match url.scheme_str() {
        Some("http") => {}
        Some("https") => found.push(problem(
            "origin",
            format!("{url}: TLS to the origin is not supported yet; use an http:// URL"),
        )),
        Some(other) => found.push(problem(
            "origin",
            format!("{url}: scheme {other}:// is not supported; use an http:// URL"),
        )),
        None => found.push(problem(
            "origin",
            format!("{url}: must be an absolute http:// URL, e.g. http://127.0.0.1:9000"),
        )),
    }
    if let Some(query) = url.query() {
        found.push(problem(
            "origin",
            format!(
                "{url}: must not have a query (got {query:?}); sidecache forwards each client's \
                 query, under the URL's path if it has one (e.g. http://127.0.0.1:9000/api/)"
            ),
        ));
    }
}

/// The embedded demo origin stands in for a missing `--origin` only where no other host can see
/// it (a loopback `--listen`), or when `--demo` asks for it: a mistyped or unrendered
/// `SIDECACHE_ORIGIN` must not put demo pages in front of real clients.
fn check_origin_or_demo(config: &Config, found: &mut Vec<Problem>) {
    let listen = config.proxy.listen;
    match (&config.origin.url, config.origin.demo) {
        (Some(url), true) => found.push(problem(
            "demo",
            format!(
                "--demo serves the embedded demo origin in place of --origin ({url}); \
                 give one of them, not both"
            ),
        )),
        (None, false) if !listen.ip().to_canonical().is_loopback() => found.push(problem(
            "origin",
            format!(
                "not set (SIDECACHE_ORIGIN), and the proxy listens on {listen}, which other hosts \
                 can reach: set --origin to the service to cache, e.g. http://127.0.0.1:9000, \
                 or pass --demo to serve the embedded demo origin there"
            ),
        )),
        _ => {}
    }
}

/// Timeouts and deadlines of zero would fail every request (or every drain) at once.
fn check_non_zero_durations(config: &Config, found: &mut Vec<Problem>) {
    let must_be_positive: [(&str, Duration); 14] = [
        ("client-header-timeout", config.client.header_timeout),
        ("client-idle-timeout", config.client.idle_timeout),
        ("client-send-timeout", config.client.send_timeout),
        ("client-body-timeout", config.client.body_timeout),
        ("origin-connect-timeout", config.origin.connect_timeout),
        ("origin-timeout", config.origin.first_byte_timeout),
        ("origin-body-timeout", config.origin.body_timeout),
        ("origin-read-timeout", config.origin.read_timeout),
        ("origin-pool-idle-timeout", config.origin.pool_idle_timeout),
        ("coalesce-timeout", config.cache.coalesce_timeout),
        ("shutdown-grace", config.shutdown_grace),
        ("stats-window", config.telemetry.stats_window),
        ("trace-batch-delay", config.tracing.batch_delay),
        ("trace-export-timeout", config.tracing.export_timeout),
    ];
    for (long, duration) in must_be_positive {
        if duration.is_zero() {
            found.push(problem(long, "must be greater than zero"));
        }
    }
}

fn check_cache_sizes(config: &Config, found: &mut Vec<Problem>) {
    let capacity = config.cache.capacity_bytes;
    let max_object = config.cache.max_object_bytes;
    if capacity == 0 {
        found.push(problem("cache-capacity", "must be greater than zero"));
    }
    if config.origin.max_connections == 0 {
        found.push(problem(
            "origin-max-connections",
            "must be greater than zero",
        ));
    }
    if max_object == 0 {
        found.push(problem("max-object-size", "must be greater than zero"));
    } else if capacity > 0 && max_object > capacity {
        found.push(problem(
            "max-object-size",
            format!(
                "{} exceeds --cache-capacity ({}); an object larger than the cache could never be stored",
                ByteSize(max_object),
                ByteSize(capacity)
            ),
        ));
    }
}

/// The largest request head hyper's read buffer holds without growing past its default.
const MAX_HEADER_SIZE_LIMIT: u64 = 256 * 1024;

/// Limits of zero would refuse every client; a head limit above the read buffer could never apply.
fn check_client_limits(client: &ClientLimitsConfig, found: &mut Vec<Problem>) {
    if client.max_connections == 0 {
        found.push(problem("max-connections", "must be greater than zero"));
    }
    if client.max_header_bytes == 0 {
        found.push(problem("max-header-size", "must be greater than zero"));
    } else if client.max_header_bytes > MAX_HEADER_SIZE_LIMIT {
        found.push(problem(
            "max-header-size",
            format!(
                "{} exceeds the largest supported request head ({})",
                ByteSize(client.max_header_bytes),
                ByteSize(MAX_HEADER_SIZE_LIMIT)
            ),
        ));
    }
    if client.max_headers == 0 {
        found.push(problem("max-headers", "must be greater than zero"));
    }
    if client.max_request_body_bytes == 0 {
        found.push(problem("max-request-body", "must be greater than zero"));
    }
    if client.max_uri_bytes == 0 {
        found.push(problem("max-uri-length", "must be greater than zero"));
    }
    if client.max_origin_requests_per_connection == 0 {
        found.push(problem(
            "max-origin-requests-per-connection",
            "must be greater than zero",
        ));
    }
    if client.max_abandoned_requests == 0 {
        found.push(problem(
            "max-abandoned-requests",
            "must be greater than zero",
        ));
    }
    if client.http2_max_concurrent_streams == 0 {
        found.push(problem(
            "http2-max-concurrent-streams",
            "must be greater than zero",
        ));
    }
}

/// The admin port is separate from the proxy port (port 0 asks for a fresh port each time).
fn check_listeners_differ(config: &Config, found: &mut Vec<Problem>) {
    let admin = config.admin.listen;
    if admin == config.proxy.listen && admin.port() != 0 {
        found.push(problem(
            "admin-listen",
            format!(
                "{admin} is also the proxy's --listen address; the admin port must be separate"
            ),
        ));
    }
}

/// The token travels in an `Authorization: Bearer` header, so it must be non-empty visible ASCII;
/// anything else could never match and would lock the admin endpoints for good.
fn check_admin_token(token: Option<&str>, found: &mut Vec<Problem>) {
    let Some(token) = token else { return };
    if token.is_empty() {
        found.push(problem(
            "admin-token",
            "must not be empty (leave it unset to allow admin calls without a token)",
        ));
    } else if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        // The token itself is never echoed: it is a secret.
        found.push(problem(
            "admin-token",
            "must be visible ASCII without spaces, as it is sent in an Authorization header",
        ));
    }
}

/// An admin port other hosts can reach is refused without a token (purges and counters would
/// be open to the network) unless `--admin-insecure` says that is meant.
fn check_admin_exposure(admin: &AdminConfig, found: &mut Vec<Problem>) {
    // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is loopback too.
    let loopback = admin.listen.ip().to_canonical().is_loopback();
    if !loopback && admin.token.is_none() && !admin.insecure {
        found.push(problem(
            "admin-listen",
            format!(
                "{} is reachable from other hosts and no --admin-token is set, which would open \
                 purges and counters to the network: set --admin-token, listen on a loopback \
                 address (127.0.0.1, ::1), or pass --admin-insecure true to allow it",
                admin.listen
            ),
        ));
    }
}

/// The OTLP endpoint is an absolute http:// URL (no TLS to the collector yet), and the span
/// buffer has room for at least one batch.
fn check_tracing(tracing: &TracingConfig, found: &mut Vec<Problem>) {
    if let Some(url) = &tracing.otlp_endpoint {
        match (url.scheme_str(), url.authority()) {
            (Some("http"), Some(_)) => {}
            (Some("https"), _) => found.push(problem(
                "otlp-endpoint",
                format!("{url}: TLS to the collector is not supported yet; use an http:// URL"),
            )),
            _ => found.push(problem(
                "otlp-endpoint",
                format!("{url}: must be an absolute http:// URL, e.g. http://127.0.0.1:4318"),
            )),
        }
    }
    if tracing.max_queue_size == 0 {
        found.push(problem("trace-queue-size", "must be greater than zero"));
    }
    if tracing.max_export_batch_size == 0 {
        found.push(problem("trace-batch-size", "must be greater than zero"));
    } else if tracing.max_export_batch_size > tracing.max_queue_size && tracing.max_queue_size > 0 {
        found.push(problem(
            "trace-batch-size",
            format!(
                "{} exceeds --trace-queue-size ({}); a batch is taken from the queue",
                tracing.max_export_batch_size, tracing.max_queue_size
            ),
        ));
    }
}

/// A zero interval would flush in a busy loop; a zero cap would refuse every increment.
fn check_writebehind(config: &Config, found: &mut Vec<Problem>) {
    if config.writebehind.interval.is_zero() {
        found.push(problem("writebehind-interval", "must be greater than zero"));
    }
    if config.writebehind.max_pending_keys == 0 {
        found.push(problem(
            "writebehind-max-pending-keys",
            "must be greater than zero",
        ));
    }
}
