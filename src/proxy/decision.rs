//! What the proxy decided for a request, recorded once: the `Cache-Status` field, the metric
//! label, the stats outcome and the span's attributes are all derived from one [`Decision`], never
//! worked out again where they are used.

use http::StatusCode;

use super::cache_status::{CacheResult, CacheStatus, Forward};
use crate::cache::loading::LoadCause;
use crate::cache::outcome::WaitResult;
use crate::http::policy::RefuseReason;
use crate::origin::OriginError;

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A guard refused it before the cache or the origin saw it (too many fields, no host, a
    /// target too long or in authority-form, CONNECT).
    Refused,
    /// A TRACE, which is not forwarded unless `--allow-trace`.
    TraceRefused,
    /// An OPTIONS or TRACE whose `Max-Forwards` reached zero: answered by sidecache itself.
    FinalRecipient,
    /// `only-if-cached`, and nothing stored could serve it.
    NotCached,
    /// A stored object had no variant for its own request: a bug, answered cleanly.
    Unselectable,
    /// Answered through the cache.
    Cached(Cached),
    /// Sent to the origin around the cache.
    Passed(Passed),
}

/// A request answered through the cache: what the cache core did, with the figures its
/// `Cache-Status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cached {
    /// What the client got.
    pub served: ServedFrom,
    /// Why the value the store held did not serve directly; `None` when it held nothing.
    pub found: Option<LoadCause>,
    /// Whether the key was marked hit-for-miss, so the request loaded without queueing.
    pub bypassed: bool,
    /// For a request that waited on another's load: how the wait ended.
    pub waited: Option<WaitResult>,
    /// Whether what this request's own load brought was not kept: its URL was invalidated (a
    /// purge, an unsafe request) while the load ran.
    pub dropped: bool,
}

/// What a request answered through the cache got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServedFrom {
    /// A stored response, fresh; `ttl` seconds of freshness left.
    Hit {
        /// Remaining freshness, whole seconds.
        ttl: i64,
    },
    /// A stored response, stale, while one background revalidation runs.
    StaleWhileRefresh {
        /// Remaining freshness (negative).
        ttl: i64,
    },
    /// A stored response, stale, while the load waited on is slower than the coalesce bound.
    StaleWhileLoading {
        /// Remaining freshness (negative).
        ttl: i64,
    },
    /// The origin's answer to this request's own load, stored.
    Fetched(Loaded),
    /// Stored parts, completed by the origin's part with the bytes they lacked.
    Completed(Loaded),
    /// The stored response, confirmed by the origin (304) for this request's own load.
    Revalidated {
        /// Remaining freshness after the revalidation.
        ttl: i64,
    },
    /// Another request's load, shared.
    Shared(Loaded),
    /// The origin's answer, for this client only.
    Private {
        /// The origin's status.
        status: StatusCode,
        /// Why it was not stored.
        not_stored: NotStored,
    },
    /// The load failed; a stored response stood in.
    StandIn {
        /// Remaining freshness (negative) of the stored response.
        ttl: i64,
        /// What went wrong.
        failure: Failure,
    },
    /// The load failed and nothing could stand in.
    Failed(Failure),
    /// Too many requests already waited on the load under way.
    Busy,
    /// The load waited on took longer than any load may.
    TimedOut,
}

/// A response a load brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loaded {
    /// The origin's status.
    pub status: StatusCode,
    /// Remaining freshness, whole seconds.
    pub ttl: i64,
}

/// A request sent to the origin around the cache: an unsafe or uncacheable method, or a request
/// that must not be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passed {
    /// Why it went around the cache.
    pub why: PassReason,
    /// How it ended.
    pub end: PassEnd,
}

/// Why a request went around the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassReason {
    /// Its method is not one the cache answers (or a GET with preconditions only the origin
    /// judges).
    Method,
    /// It carried `no-store`: loaded for this client alone.
    NoStore,
    /// A `Range` request whose response would not be stored: sent with its `Range`.
    Unstorable,
}

/// How a request sent around the cache ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PassEnd {
    /// The origin answered with this status.
    Answered(StatusCode),
    /// The origin request failed.
    Failed(Failure),
    /// The client's body was refused: too large, or too slow (the `Cache-Status` detail).
    BodyRefused(&'static str),
}

/// What went wrong with an origin request, as `Cache-Status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The origin's status, if it answered (a server error).
    pub status: Option<StatusCode>,
    /// The short description (`origin-timeout`, ...).
    pub detail: &'static str,
}

/// Why a response reached its client without being stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// The policy refused it.
    Refused(RefuseReason),
    /// Larger than the largest object the cache stores.
    TooLarge,
}

// === impl Decision ===

impl Decision {
    /// How the request is counted (metric label, stats outcome, access line, span).
    pub(crate) fn result(&self) -> CacheResult {
        match self {
            Self::Refused | Self::Unselectable => CacheResult::Error,
            Self::TraceRefused | Self::FinalRecipient => CacheResult::Pass,
            Self::NotCached => CacheResult::Miss,
            Self::Cached(cached) => cached.result(),
            Self::Passed(passed) => match passed.end {
                PassEnd::Answered(_) => CacheResult::Pass,
                PassEnd::Failed(_) | PassEnd::BodyRefused(_) => CacheResult::Error,
            },
        }
    }

    /// The `Cache-Status` member it is reported as (RFC 9211).
    pub(crate) fn cache_status(&self) -> CacheStatus {
        match self {
            Self::Refused => CacheStatus {
                detail: Some("bad-request"),
                ..CacheStatus::forwarded(Forward::Bypass)
            },
            Self::TraceRefused => CacheStatus {
                detail: Some("trace-not-allowed"),
                ..CacheStatus::forwarded(Forward::Method)
            },
            Self::FinalRecipient => CacheStatus {
                forward: None,
                detail: Some("max-forwards"),
                ..CacheStatus::forwarded(Forward::Method)
            },
            Self::NotCached => CacheStatus {
                forward: None,
                detail: Some("only-if-cached"),
                ..CacheStatus::forwarded(Forward::UriMiss)
            },
            Self::Unselectable => CacheStatus {
                detail: Some("internal"),
                ..CacheStatus::forwarded(Forward::UriMiss)
            },
            Self::Cached(cached) => cached.cache_status(),
            Self::Passed(passed) => passed.cache_status(),
        }
    }

    /// How the request's wait on another's load ended, if it waited.
    pub(crate) fn waited(&self) -> Option<WaitResult> {
        match self {
            Self::Cached(cached) => cached.waited,
            _ => None,
        }
    }
}

// === impl Cached ===

impl Cached {
    fn result(&self) -> CacheResult {
        match &self.served {
            ServedFrom::Hit { .. } => CacheResult::Hit,
            ServedFrom::StaleWhileRefresh { .. }
            | ServedFrom::StaleWhileLoading { .. }
            | ServedFrom::StandIn { .. } => CacheResult::Stale,
            ServedFrom::Fetched(_) | ServedFrom::Private { .. } if self.bypassed => {
                CacheResult::Pass
            }
            ServedFrom::Fetched(_) | ServedFrom::Completed(_) | ServedFrom::Private { .. } => {
                CacheResult::Miss
            }
            ServedFrom::Revalidated { .. } => CacheResult::Revalidated,
            ServedFrom::Shared(_) => CacheResult::Coalesced,
            ServedFrom::Failed(_) | ServedFrom::Busy | ServedFrom::TimedOut => CacheResult::Error,
        }
    }

    /// Why the request went forward (RFC 9211 §2.2 `fwd`): around the queue for a key marked
    /// hit-for-miss whose load answered, else what the store held.
    fn forward(&self) -> Forward {
        if self.bypassed
            && matches!(
                self.served,
                ServedFrom::Fetched(_) | ServedFrom::Private { .. }
            )
        {
            return Forward::Bypass;
        }
        if matches!(self.served, ServedFrom::Completed(_)) {
            return Forward::Partial;
        }
        match self.found {
            None => Forward::UriMiss,
            Some(LoadCause::Unmatched) => Forward::VaryMiss,
            Some(LoadCause::Stale) => Forward::Stale,
            Some(LoadCause::Requested) => Forward::Request,
        }
    }

    fn cache_status(&self) -> CacheStatus {
        // RFC 9211 §2.5: collapsed only when the answer is the load waited on (its value, or its
        // failure); a waiter that then loaded on its own, or was served a stored copy, was not.
        let collapsed = matches!(
            self.waited,
            Some(WaitResult::Shared | WaitResult::LeaderError)
        );
        let forwarded = CacheStatus {
            collapsed,
            ..CacheStatus::forwarded(self.forward())
        };
        let loaded = |status: StatusCode, ttl: i64| CacheStatus {
            forward_status: Some(status),
            stored: !self.dropped,
            ttl: Some(ttl),
            detail: self.dropped.then_some("invalidated"),
            ..forwarded.clone()
        };
        match &self.served {
            ServedFrom::Hit { ttl } => CacheStatus::hit(*ttl),
            ServedFrom::StaleWhileRefresh { ttl } => CacheStatus {
                detail: Some("stale-while-revalidate"),
                ..CacheStatus::hit(*ttl)
            },
            // Still going forward: the load under way is slower than the wait bound, or has as
            // many waiters as it takes.
            ServedFrom::StaleWhileLoading { ttl } => CacheStatus {
                ttl: Some(*ttl),
                detail: Some(if self.waited == Some(WaitResult::QueueFull) {
                    "too-many-waiters"
                } else {
                    "origin-slow"
                }),
                ..forwarded
            },
            ServedFrom::Fetched(Loaded { status, ttl }) if self.bypassed => CacheStatus {
                detail: Some("hit-for-miss"),
                ..loaded(*status, *ttl)
            },
            ServedFrom::Fetched(Loaded { status, ttl })
            | ServedFrom::Completed(Loaded { status, ttl }) => loaded(*status, *ttl),
            ServedFrom::Revalidated { ttl } => loaded(StatusCode::NOT_MODIFIED, *ttl),
            ServedFrom::Shared(Loaded { status, ttl }) => CacheStatus {
                stored: false,
                ..loaded(*status, *ttl)
            },
            ServedFrom::Private { status, not_stored } => CacheStatus {
                forward_status: Some(*status),
                detail: Some(if self.bypassed {
                    "hit-for-miss"
                } else {
                    not_stored.detail()
                }),
                ..forwarded
            },
            ServedFrom::StandIn { ttl, failure } => CacheStatus {
                ttl: Some(*ttl),
                ..failure.status(forwarded)
            },
            ServedFrom::Failed(failure) => failure.status(forwarded),
            ServedFrom::Busy => CacheStatus {
                detail: Some("too-many-waiters"),
                ..forwarded
            },
            ServedFrom::TimedOut => CacheStatus {
                detail: Some("origin-timeout"),
                ..forwarded
            },
        }
    }
}

// === impl Passed ===

impl Passed {
    fn cache_status(&self) -> CacheStatus {
        let forwarded = CacheStatus::forwarded(match self.why {
            PassReason::Method => Forward::Method,
            PassReason::NoStore | PassReason::Unstorable => Forward::Bypass,
        });
        match &self.end {
            PassEnd::Answered(status) => CacheStatus {
                forward_status: Some(*status),
                ..forwarded
            },
            PassEnd::Failed(failure) => failure.status(forwarded),
            PassEnd::BodyRefused(detail) => CacheStatus {
                forward_status: None,
                detail: Some(detail),
                ..forwarded
            },
        }
    }
}

// === impl Failure ===

impl Failure {
    /// `status` with the origin's status (if it sent one) and what went wrong as the detail.
    fn status(self, status: CacheStatus) -> CacheStatus {
        CacheStatus {
            forward_status: self.status,
            detail: Some(self.detail),
            ..status
        }
    }
}

impl From<&OriginError> for Failure {
    fn from(error: &OriginError) -> Self {
        let status = match error.kind() {
            crate::origin::OriginErrorKind::ErrorStatus(answer) => Some(answer.status),
            _ => None,
        };
        Self {
            status,
            detail: error.as_str(),
        }
    }
}

// === impl NotStored ===

impl NotStored {
    /// How many reasons there are (the refusal reasons and `too_large`).
    pub const COUNT: usize = RefuseReason::ALL.len() + 1;

    /// Every reason (for creating every metric series up front), in [`index`](Self::index) order.
    pub fn all() -> impl Iterator<Item = NotStored> {
        RefuseReason::ALL
            .into_iter()
            .map(Self::Refused)
            .chain([Self::TooLarge])
    }

    /// A dense index for per-reason counters.
    pub fn index(self) -> usize {
        match self {
            Self::Refused(reason) => reason as usize,
            Self::TooLarge => RefuseReason::ALL.len(),
        }
    }

    /// The metric label (`sidecache_store_refused_total{reason}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused(reason) => reason.as_str(),
            Self::TooLarge => "too_large",
        }
    }

    /// The `Cache-Status` detail: the label spelled as every other detail is, with hyphens.
    pub fn detail(self) -> &'static str {
        match self {
            Self::Refused(RefuseReason::Method) => "method",
            Self::Refused(RefuseReason::NoStore) => "no-store",
            Self::Refused(RefuseReason::Private) => "private",
            Self::Refused(RefuseReason::SetCookie) => "set-cookie",
            Self::Refused(RefuseReason::Authorization) => "authorization",
            Self::Refused(RefuseReason::Cookie) => "cookie",
            Self::Refused(RefuseReason::Status) => "status",
            Self::Refused(RefuseReason::VaryStar) => "vary-star",
            Self::Refused(RefuseReason::ZeroTtl) => "zero-ttl",
            Self::TooLarge => "too-large",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NotStored;

    #[test]
    fn not_stored_details_are_the_labels_spelled_with_hyphens() {
        for reason in NotStored::all() {
            assert_eq!(reason.detail(), reason.as_str().replace('_', "-"));
        }
    }
}
