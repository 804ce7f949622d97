//! What the origin client counts: requests by outcome, their latency, broken bodies.

use std::time::Duration;

use http::StatusCode;
use prometheus::{Histogram, IntCounter};

use super::error::{OriginError, OriginErrorKind};
use crate::metrics::{self, Registry, Result};

/// How one request to the origin ended, as far as its response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginOutcome {
    /// A 1xx response head arrived as the final answer (a protocol error for the client).
    Informational,
    /// A 2xx response head arrived.
    Success,
    /// A 3xx response head arrived.
    Redirection,
    /// A 4xx response head arrived.
    ClientError,
    /// A 5xx response head arrived.
    ServerError,
    /// No connection could be made.
    ConnectError,
    /// No response head within the first-byte timeout.
    Timeout,
    /// The connection broke or the origin spoke garbage before a complete response head.
    ProtocolError,
    /// sidecache abandoned the request before a response head: the client's body ran past its
    /// limit, stopped coming, or was malformed. Not the origin's failure.
    Aborted,
}

impl OriginOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [OriginOutcome; 9] = [
        Self::Informational,
        Self::Success,
        Self::Redirection,
        Self::ClientError,
        Self::ServerError,
        Self::ConnectError,
        Self::Timeout,
        Self::ProtocolError,
        Self::Aborted,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::ConnectError => "connect_error",
            Self::Timeout => "timeout",
            Self::ProtocolError => "protocol_error",
            Self::Aborted => "aborted",
        }
    }

    /// The outcome of a request that got a response head with `status`. A code from 600 up,
    /// which RFC 9110 defines no class for, counts as a server error, as the proxy's
    /// `sidecache_responses_total` counts it.
    pub fn of_status(status: StatusCode) -> Self {
        match status.as_u16() {
            100..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }

    /// The outcome of a request that failed before its response head; `None` for one that was
    /// never sent (no connection to the origin came free), which is counted apart.
    pub fn of_error(error: &OriginError) -> Option<Self> {
        Some(match error.kind() {
            OriginErrorKind::Connect => Self::ConnectError,
            OriginErrorKind::Timeout => Self::Timeout,
            OriginErrorKind::ErrorStatus(_) => Self::ServerError,
            OriginErrorKind::Protocol | OriginErrorKind::Body => Self::ProtocolError,
            OriginErrorKind::RequestBodyTooLarge
            | OriginErrorKind::RequestBodyTimeout
            | OriginErrorKind::RequestBodyMalformed => Self::Aborted,
            OriginErrorKind::Busy => return None,
        })
    }
}

/// The origin client's metric set.
#[derive(Clone)]
pub struct OriginMetrics {
    /// `sidecache_origin_requests_total{outcome}`, indexed by [`OriginOutcome`].
    requests: Vec<IntCounter>,
    /// `sidecache_origin_request_duration_seconds`.
    duration: Histogram,
    /// `sidecache_origin_body_errors_total`.
    body_errors: IntCounter,
    /// `sidecache_origin_connection_refusals_total`.
    refusals: IntCounter,
}

impl OriginMetrics {
    /// Registers the origin client's metrics in `registry`.
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register(registry: &Registry) -> Result<Self> {
        let outcomes: Vec<_> = OriginOutcome::ALL.iter().map(|o| o.as_str()).collect();
        Ok(Self {
            requests: metrics::counters(
                registry,
                "sidecache_origin_requests_total",
                "Requests sent to the origin, by how they ended (status class or failure).",
                "outcome",
                &outcomes,
            )?,
            duration: metrics::histogram(
                registry,
                "sidecache_origin_request_duration_seconds",
                "Time from sending a request to the origin to its response head (or failure).",
            )?,
            body_errors: metrics::counter(
                registry,
                "sidecache_origin_body_errors_total",
                "Origin response bodies that broke off, timed out or did not match their framing while being read for the cache.",
            )?,
            refusals: metrics::counter(
                registry,
                "sidecache_origin_connection_refusals_total",
                "Requests not sent to the origin because every connection to it (--origin-max-connections) stayed in use for the whole wait.",
            )?,
        })
    }

    /// One request to the origin that ended with `outcome` after `elapsed`.
    pub fn record_request(&self, outcome: OriginOutcome, elapsed: Duration) {
        self.requests[outcome as usize].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// A request that was not sent: no connection to the origin came free.
    pub fn record_refusal(&self) {
        self.refusals.inc();
    }

    /// A body that could not be read whole.
    pub fn record_body_error(&self) {
        self.body_errors.inc();
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::OriginOutcome;

    #[test]
    fn statuses_count_by_class_and_codes_from_600_as_server_errors() {
        for (code, outcome) in [
            (100, OriginOutcome::Informational),
            (200, OriginOutcome::Success),
            (299, OriginOutcome::Success),
            (301, OriginOutcome::Redirection),
            (404, OriginOutcome::ClientError),
            (503, OriginOutcome::ServerError),
            (600, OriginOutcome::ServerError),
            (999, OriginOutcome::ServerError),
        ] {
            let status = StatusCode::from_u16(code).expect("a status code");
            assert_eq!(OriginOutcome::of_status(status), outcome, "{code}");
        }
    }
}
