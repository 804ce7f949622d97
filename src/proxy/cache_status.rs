//! The RFC 9211 `Cache-Status` field and the decision enum it is derived from.

use http::StatusCode;

use super::recent_values;
use crate::stats::StatOutcome;
use http::header::HeaderValue;

pub(crate) use crate::http::fields::CACHE_STATUS;

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
pub(crate) enum Forward {
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
    /// Parts of the response were stored; the origin was asked for the rest (RFC 9211 §2.2).
    Partial,
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
            Self::Partial => "partial",
        }
    }
}

/// One `Cache-Status` member, built from the request's decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheStatus {
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
    pub(crate) fn hit(ttl: i64) -> Self {
        Self {
            hit: true,
            ttl: Some(ttl),
            ..Self::forwarded(Forward::UriMiss)
        }
    }

    /// A request that went forward for `reason`.
    pub(crate) fn forwarded(reason: Forward) -> Self {
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
    /// A plain hit's value is remembered by its `ttl` (see [`recent_values`]): hits on a key
    /// within a second share it.
    pub(crate) fn to_header_value(&self) -> HeaderValue {
        match self.ttl {
            Some(ttl) if *self == Self::hit(ttl) => {
                recent_values::hit_status(ttl, || self.build_header_value())
            }
            _ => self.build_header_value(),
        }
    }

    /// The header value, built by hand rather than with `format!`: every answer carries one.
    fn build_header_value(&self) -> HeaderValue {
        // Written on the stack and copied once: a value is built for every answer.
        let mut text = FieldText::default();
        text.push(CACHE_NAME);
        if self.hit {
            text.push("; hit");
        } else if let Some(forward) = self.forward {
            text.push("; fwd=");
            text.push(forward.as_str());
        }
        let mut number = itoa::Buffer::new();
        if let Some(status) = self.forward_status {
            text.push("; fwd-status=");
            text.push(number.format(status.as_u16()));
        }
        if self.stored {
            text.push("; stored");
        }
        if self.collapsed {
            text.push("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            text.push("; ttl=");
            text.push(number.format(ttl));
        }
        if let Some(detail) = self.detail {
            text.push("; detail=");
            text.push(detail);
        }
        HeaderValue::from_bytes(text.as_bytes())
            .expect("Cache-Status is built from tokens and integers")
    }
}

/// Room for the longest `Cache-Status` value (every member present, at its longest, is about
/// 130 bytes).
const MAX_FIELD_TEXT: usize = 192;

/// A `Cache-Status` value being written, on the stack.
struct FieldText {
    bytes: [u8; MAX_FIELD_TEXT],
    len: usize,
}

impl Default for FieldText {
    fn default() -> Self {
        Self {
            bytes: [0; MAX_FIELD_TEXT],
            len: 0,
        }
    }
}

impl FieldText {
    fn push(&mut self, part: &str) {
        let end = self.len + part.len();
        debug_assert!(
            end <= MAX_FIELD_TEXT,
            "Cache-Status longer than {MAX_FIELD_TEXT}"
        );
        // Never longer in practice (the members are fixed tokens and integers); cut rather than
        // panic if that ever changes.
        let end = end.min(MAX_FIELD_TEXT);
        self.bytes[self.len..end].copy_from_slice(&part.as_bytes()[..end - self.len]);
        self.len = end;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_value_is_written_whole() {
        let status = CacheStatus {
            hit: false,
            forward: Some(Forward::VaryMiss),
            forward_status: Some(StatusCode::GATEWAY_TIMEOUT),
            stored: true,
            collapsed: true,
            ttl: Some(i64::MIN),
            detail: Some("origin-connect-timeout-and-then-some-more"),
        };
        assert_eq!(
            status.to_header_value(),
            "sidecache; fwd=vary-miss; fwd-status=504; stored; collapsed; \
             ttl=-9223372036854775808; detail=origin-connect-timeout-and-then-some-more"
        );
    }

    #[test]
    fn a_plain_hit_shares_its_remembered_value_and_no_other_status_takes_it() {
        let hit = CacheStatus::hit(1234);
        let first = hit.to_header_value();
        let again = hit.to_header_value();
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        let stale = CacheStatus {
            detail: Some("stale-while-revalidate"),
            ..CacheStatus::hit(1234)
        };
        assert_eq!(
            stale.to_header_value(),
            "sidecache; hit; ttl=1234; detail=stale-while-revalidate"
        );
        assert_eq!(hit.to_header_value(), "sidecache; hit; ttl=1234");
    }

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
