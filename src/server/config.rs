//! The limits on what one client connection may ask of the proxy port: how many connections,
//! how large a request head, how long to send it, how long to sit idle, how large a body; and
//! their conversion into the [`ClientSettings`] the server applies.

use std::time::Duration;

use super::ClientSettings;
use crate::byte_size;

/// The limits on client connections and requests, applied before a request reaches the cache.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Client limits")]
pub struct ClientLimitsConfig {
    /// Most client connections open at once on the proxy port. Beyond it, new connections are not
    /// accepted: they wait in the kernel's listen backlog until one closes (as nginx does at
    /// worker_connections), so a flood cannot exhaust file descriptors or memory.
    #[arg(
        long = "max-connections",
        env = "SIDECACHE_MAX_CONNECTIONS",
        value_name = "COUNT",
        default_value = "10000"
    )]
    pub max_connections: usize,
    /// Largest request head (request line and header fields) a client may send; a larger one is
    /// answered 431 and the connection closed. At most 256KiB.
    #[arg(
        long = "max-header-size",
        env = "SIDECACHE_MAX_HEADER_SIZE",
        value_name = "BYTES",
        default_value = "32KiB",
        value_parser = byte_size::parse_bytes
    )]
    pub max_header_bytes: u64,
    /// Most header fields in one request; more are answered 431 (HTTP/1.1: and the connection
    /// closed).
    #[arg(
        long = "max-headers",
        env = "SIDECACHE_MAX_HEADERS",
        value_name = "COUNT",
        default_value = "100"
    )]
    pub max_headers: usize,
    /// How long a client may take to send a complete request head once its first byte has
    /// arrived (HTTP/2: a header block, from its first frame), so a client that drips its header
    /// bytes (slowloris) is cut off: the connection is closed without an answer.
    #[arg(
        long = "client-header-timeout",
        env = "SIDECACHE_CLIENT_HEADER_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = crate::duration::parse_duration
    )]
    pub header_timeout: Duration,
    /// How long a client connection may stay open with no request under way (a new connection
    /// before its first byte, or a keep-alive connection between requests); then it is closed.
    #[arg(
        long = "client-idle-timeout",
        env = "SIDECACHE_CLIENT_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = crate::duration::parse_duration
    )]
    pub idle_timeout: Duration,
    /// How long a response may make no progress because its client takes none of it (does not
    /// read, or keeps its HTTP/2 flow-control window shut), streamed bodies included; then the
    /// connection is closed (HTTP/2: the stream is reset) and the origin connection the response
    /// held is released at once.
    #[arg(
        long = "client-send-timeout",
        env = "SIDECACHE_CLIENT_SEND_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = crate::duration::parse_duration
    )]
    pub send_timeout: Duration,
    /// How long a client may send nothing while its request body is passed to the origin (POST,
    /// PUT, ...); then the origin request is abandoned and the client answered 408 (HTTP/1.1: and
    /// the connection closed). Below --origin-timeout, so a stalled upload is told apart from a
    /// slow origin.
    #[arg(
        id = "client-body-timeout",
        long = "client-body-timeout",
        env = "SIDECACHE_CLIENT_BODY_TIMEOUT",
        value_name = "DURATION",
        default_value = "20s",
        value_parser = crate::duration::parse_duration
    )]
    pub body_timeout: Duration,
    /// Most streams (requests) an HTTP/2 client may have open at once on one connection,
    /// advertised in SETTINGS_MAX_CONCURRENT_STREAMS; the client queues further requests itself.
    #[arg(
        long = "http2-max-concurrent-streams",
        env = "SIDECACHE_HTTP2_MAX_CONCURRENT_STREAMS",
        value_name = "COUNT",
        default_value = "128"
    )]
    pub http2_max_concurrent_streams: u32,
    /// Most requests of one client connection that may be at the origin at once (HTTP/2 streams
    /// that miss the cache or pass through it; a streamed answer counts until its body is sent).
    /// Further requests of the connection wait their turn, so one connection cannot take every
    /// origin connection; hits are never held back.
    #[arg(
        long = "max-origin-requests-per-connection",
        env = "SIDECACHE_MAX_ORIGIN_REQUESTS_PER_CONNECTION",
        value_name = "COUNT",
        default_value = "32"
    )]
    pub max_origin_requests_per_connection: usize,
    /// Most requests a client may abandon on one connection (reset an HTTP/2 stream, or close,
    /// before the answer it waited for was ready) while it has abandoned more than it waited
    /// for to the end; beyond it the connection is closed, so a client cannot have sidecache
    /// start work on its behalf over and over for nothing. The default is Envoy's (250
    /// premature resets) and more than one connection's streams, so a browser that leaves a
    /// page still loading is not cut off.
    #[arg(
        long = "max-abandoned-requests",
        env = "SIDECACHE_MAX_ABANDONED_REQUESTS",
        value_name = "COUNT",
        default_value = "250"
    )]
    pub max_abandoned_requests: u32,
    /// Largest request body passed through to the origin (POST, PUT, ...). A larger declared
    /// Content-Length is answered 413 without contacting the origin; a body without one that runs
    /// past it is cut off, the origin request aborted, and the client answered 413.
    #[arg(
        long = "max-request-body",
        env = "SIDECACHE_MAX_REQUEST_BODY",
        value_name = "BYTES",
        default_value = "10MiB",
        value_parser = byte_size::parse_bytes
    )]
    pub max_request_body_bytes: u64,
    /// Longest request target (path and query) accepted; a longer one is answered 414 without
    /// contacting the origin. Every stored entry keeps its URL, so this also bounds what one
    /// entry's key can weigh.
    #[arg(
        long = "max-uri-length",
        env = "SIDECACHE_MAX_URI_LENGTH",
        value_name = "BYTES",
        default_value = "8KiB",
        value_parser = byte_size::parse_bytes
    )]
    pub max_uri_bytes: u64,
}

// === impl ClientLimitsConfig ===

impl From<&ClientLimitsConfig> for ClientSettings {
    fn from(config: &ClientLimitsConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            max_header_bytes: usize::try_from(config.max_header_bytes).unwrap_or(usize::MAX),
            max_headers: config.max_headers,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            send_timeout: config.send_timeout,
            http2_max_concurrent_streams: config.http2_max_concurrent_streams,
            max_origin_requests_per_connection: config.max_origin_requests_per_connection,
            max_abandoned_requests: config.max_abandoned_requests,
        }
    }
}
