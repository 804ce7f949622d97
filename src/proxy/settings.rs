//! What one request may carry: the limits the proxy checks itself, beyond those the server's
//! protocol layer enforces.

use std::time::Duration;

use super::ClientCacheControl;

/// What one request may carry, checked before it reaches the cache or the origin.
#[derive(Debug, Clone, Copy)]
pub struct RequestSettings {
    /// Most header fields (HTTP/1.1 heads are held to it by the parser already; this holds
    /// HTTP/2 requests to it too).
    pub max_headers: usize,
    /// Largest request body passed through to the origin.
    pub max_body_bytes: u64,
    /// Longest request target (path and query).
    pub max_uri_bytes: u64,
    /// Whether TRACE is forwarded (otherwise answered 405).
    pub allow_trace: bool,
    /// Longest wait for the next part of a request body passed through to the origin.
    pub body_timeout: Duration,
    /// Whether the request's cache directives are obeyed.
    pub client_cache_control: ClientCacheControl,
}
