//! The RFC 9211 `Cache-Status` field and the decision enum it is derived from.

use http::StatusCode;

use crate::stats::StatOutcome;
use http::header::{HeaderName, HeaderValue};

/// The `Cache-Status` header (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The name sidecache reports itself by in `Cache-Status`.
const CACHE_NAME: &str = "sidecache";

/// How a request was answered, at the granularity the metrics count (one label value each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// From the cache, without asking the origin.
    Hit,
    /// From the origin, because nothing stored could serve it.
    Miss,
    /// A stale stored response (stale-while-revalidate, stale-if-error, grace).
    Stale,
    /// A stored response the origin confirmed with a 304.
    Revalidated,
    /// Another client's origin load, shared.
    Coalesced,
    /// Sent to the origin without the cache: an unsafe or uncacheable method, hit-for-miss, a
    /// request that must not be stored.
    Pass,
    /// No usable answer: a 502/504 or the origin's own server error.
    Error,
}

impl CacheResult {
    /// Every result, in declaration order (for creating every metric series up front).
    pub const ALL: [CacheResult; 7] = [
        Self::Hit,
        Self::Miss,
        Self::Stale,
        Self::Revalidated,
        Self::Coalesced,
        Self::Pass,
        Self::Error,
    ];

    /// How the windowed stats count it (see [`crate::stats`]).
    pub fn stat_outcome(self) -> StatOutcome {
        match self {
            Self::Hit | Self::Stale => StatOutcome::Hit,
            Self::Miss | Self::Revalidated | Self::Coalesced | Self::Pass => StatOutcome::Miss,
            Self::Error => StatOutcome::Error,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Revalidated => "revalidated",
            Self::Coalesced => "coalesced",
            Self::Pass => "pass",
            Self::Error => "error",
        }
    }
}

/// Why the request went forward (RFC 9211 §2.2 `fwd` values sidecache uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Configured or decided not to use the cache (hit-for-miss, `no-store` requests).
    Bypass,
    /// The method is not cacheable.
    Method,
    /// Nothing was stored for the URI.
    UriMiss,
    /// Responses were stored for the URI, but none for this request's `Vary` selection.
    VaryMiss,
    /// The request's own directives asked to go forward (`no-cache`, `max-age=0`).
    Request,
    /// A stored response was stale and was revalidated (or stood in after the origin failed).
    Stale,
}

impl Forward {
    fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Method => "method",
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Request => "request",
            Self::Stale => "stale",
        }
    }
}

/// One `Cache-Status` member, built from the request's decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// Whether the answer came from the cache without going forward.
    pub hit: bool,
    /// Why it went forward, if it did.
    pub forward: Option<Forward>,
    /// The origin's status for the forwarded request, if one arrived.
    pub forward_status: Option<StatusCode>,
    /// Whether the origin's response was stored.
    pub stored: bool,
    /// Whether this request was answered by another request's origin load.
    pub collapsed: bool,
    /// The stored response's remaining freshness in seconds (negative when stale).
    pub ttl: Option<i64>,
    /// More detail, a token.
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    /// A hit with `ttl` seconds of freshness left.
    pub fn hit(ttl: i64) -> Self {
        Self {
            hit: true,
            ttl: Some(ttl),
            ..Self::forwarded(Forward::UriMiss)
        }
    }

    /// A request that went forward for `reason`.
    pub fn forwarded(reason: Forward) -> Self {
        Self {
            hit: false,
            forward: Some(reason),
            forward_status: None,
            stored: false,
            collapsed: false,
            ttl: None,
            detail: None,
        }
    }

    /// The header value, e.g. `sidecache; fwd=uri-miss; fwd-status=200; stored; ttl=60`.
    ///
    /// Built by hand rather than with `format!`: every answer carries one.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut text = Vec::with_capacity(64);
        text.extend_from_slice(CACHE_NAME.as_bytes());
        if self.hit {
            text.extend_from_slice(b"; hit");
        } else if let Some(forward) = self.forward {
            text.extend_from_slice(b"; fwd=");
            text.extend_from_slice(forward.as_str().as_bytes());
        }
        let mut number = itoa::Buffer::new();
        if let Some(status) = self.forward_status {
            text.extend_from_slice(b"; fwd-status=");
            text.extend_from_slice(number.format(status.as_u16()).as_bytes());
        }
        if self.stored {
            text.extend_from_slice(b"; stored");
        }
        if self.collapsed {
            text.extend_from_slice(b"; collapsed");
        }
        if let Some(ttl) = self.ttl {
            text.extend_from_slice(b"; ttl=");
            text.extend_from_slice(number.format(ttl).as_bytes());
        }
        if let Some(detail) = self.detail {
            text.extend_from_slice(b"; detail=");
            text.extend_from_slice(detail.as_bytes());
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
            .expect("Cache-Status is built from tokens and integers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_follow_rfc_9211_syntax() {
        let cases = [
            (CacheStatus::hit(42), "sidecache; hit; ttl=42"),
            (
                CacheStatus {
                    forward_status: Some(StatusCode::OK),
                    stored: true,
                    ttl: Some(60),
                    ..CacheStatus::forwarded(Forward::UriMiss)
                },
                "sidecache; fwd=uri-miss; fwd-status=200; stored; ttl=60",
            ),
            (
                CacheStatus {
                    collapsed: true,
                    ..CacheStatus::forwarded(Forward::VaryMiss)
                },
                "sidecache; fwd=vary-miss; collapsed",
            ),
            (
                CacheStatus {
                    detail: Some("stale-while-revalidate"),
                    ..CacheStatus::hit(-3)
                },
                "sidecache; hit; ttl=-3; detail=stale-while-revalidate",
            ),
            (
                CacheStatus::forwarded(Forward::Method),
                "sidecache; fwd=method",
            ),
        ];
        for (status, expected) in cases {
            assert_eq!(status.to_header_value(), expected);
        }
    }
}
