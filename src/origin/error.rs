//! Why a request to the origin failed, classified once so that every caller decides the same way
//! between 502 and 504, serving stale, and the metric label.

use std::fmt;

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderMap, StatusCode, Uri};

/// A failed origin request.
#[derive(Debug)]
pub struct OriginError {
    kind: OriginErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// What went wrong, as far as a caller needs to branch on it.
#[derive(Debug)]
pub enum OriginErrorKind {
    /// The connection could not be made (refused, unreachable, connect timeout).
    Connect,
    /// No response head arrived within the first-byte timeout.
    Timeout,
    /// The connection broke or the origin spoke garbage before a complete response head.
    Protocol,
    /// The body broke off, ran past the body timeout, or did not match its framing.
    Body,
    /// The client's request body ran past its limit while being sent; the request was abandoned.
    RequestBodyTooLarge,
    /// Every connection to the origin was in use and none came free in time: the request was
    /// never sent.
    Busy,
    /// The client's request body paused longer than its timeout while being sent; the request
    /// was abandoned.
    RequestBodyTimeout,
    /// The client's request body was malformed (broken chunked framing) or ended before its
    /// declared length while being sent; the request was abandoned.
    RequestBodyMalformed,
    /// The origin answered with a server error (500, 502, 503 or 504). Its answer is kept so
    /// every waiting client can be given it.
    ErrorStatus(ErrorResponse),
}

/// A server-error answer from the origin, buffered.
#[derive(Debug, Clone)]
pub struct ErrorResponse {
    /// The origin's status.
    pub status: StatusCode,
    /// The origin's header fields (hop-by-hop fields removed).
    pub headers: HeaderMap,
    /// The origin's body, or its first part when it was longer than the bound kept.
    pub body: Bytes,
    /// Whether `body` is only the first part of the origin's.
    pub truncated: bool,
    /// Whether clients other than the one whose request it answered may be given it: not when
    /// it is `private` or `no-store`, sets a cookie, or answered a request with credentials,
    /// the same marks that keep a response from being stored for others.
    pub shareable: bool,
}

/// Why an [`OriginClient`](super::OriginClient) could not be built from its settings: the URL
/// cannot name an origin to connect to.
#[derive(Debug, thiserror::Error)]
pub enum OriginBuildError {
    /// The URL has no scheme (`http://`).
    #[error("origin URL {url} has no scheme")]
    NoScheme {
        /// The URL given.
        url: Uri,
    },
    /// The URL has no host.
    #[error("origin URL {url} has no host")]
    NoHost {
        /// The URL given.
        url: Uri,
    },
    /// The URL's authority cannot be sent as a `Host` header.
    #[error("origin authority {authority} is not a valid Host")]
    InvalidHost {
        /// The authority given.
        authority: Authority,
    },
}

/// Whether an origin answer's status counts as a failure that a stale response may stand in for
/// (RFC 5861 §4: "an error is any situation that would result in a 500, 502, 503, or 504").
pub fn is_error_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

// === impl OriginError ===

impl OriginError {
    /// An error of `kind` caused by `source`.
    pub fn new(
        kind: OriginErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// An error of `kind` with no underlying cause.
    pub fn bare(kind: OriginErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> &OriginErrorKind {
        &self.kind
    }

    /// Whether the origin was too slow (504 rather than 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, OriginErrorKind::Timeout)
            || self
                .source
                .as_deref()
                .is_some_and(|source| is_caused_by_timeout(source))
    }

    /// Whether the origin could not be reached or did not answer properly, as opposed to
    /// answering with a server error.
    pub fn is_unreachable(&self) -> bool {
        !matches!(
            self.kind,
            OriginErrorKind::ErrorStatus(_)
                | OriginErrorKind::RequestBodyTooLarge
                | OriginErrorKind::RequestBodyTimeout
                | OriginErrorKind::RequestBodyMalformed
        )
    }

    /// Whether the origin's answer (if it sent one) may be given to clients other than the one
    /// whose request it answered (see [`ErrorResponse::shareable`]). Errors without an answer
    /// carry nothing of any client's.
    pub fn is_shareable(&self) -> bool {
        match &self.kind {
            OriginErrorKind::ErrorStatus(response) => response.shareable,
            _ => true,
        }
    }

    /// The status a client is given for this error when nothing can stand in.
    pub fn client_status(&self) -> StatusCode {
        match &self.kind {
            OriginErrorKind::ErrorStatus(response) => response.status,
            OriginErrorKind::RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            OriginErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            OriginErrorKind::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            OriginErrorKind::RequestBodyMalformed => StatusCode::BAD_REQUEST,
            _ if self.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// A short, stable description for logs and the `Cache-Status` detail.
    pub fn as_str(&self) -> &'static str {
        match &self.kind {
            OriginErrorKind::Connect if self.is_timeout() => "origin-connect-timeout",
            OriginErrorKind::Connect => "origin-connect-failed",
            OriginErrorKind::Timeout => "origin-timeout",
            OriginErrorKind::Protocol => "origin-protocol-error",
            OriginErrorKind::Body if self.is_timeout() => "origin-body-timeout",
            OriginErrorKind::Body => "origin-body-error",
            OriginErrorKind::ErrorStatus(_) => "origin-error-status",
            OriginErrorKind::RequestBodyTooLarge => "request-body-too-large",
            OriginErrorKind::Busy => "origin-busy",
            OriginErrorKind::RequestBodyTimeout => "request-body-timeout",
            OriginErrorKind::RequestBodyMalformed => "request-body-malformed",
        }
    }
}

/// Walks an error's causes looking for an elapsed timer (tokio's, or a connect timeout reported as
/// `io::ErrorKind::TimedOut`).
fn is_caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cause = error.source();
    }
    false
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            OriginErrorKind::ErrorStatus(response) => {
                write!(f, "origin answered {}", response.status)
            }
            _ => f.write_str(self.as_str()),
        }
    }
}

impl std::error::Error for OriginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_map_to_504_and_other_failures_to_502() {
        let timeout = OriginError::bare(OriginErrorKind::Timeout);
        assert_eq!(timeout.client_status(), StatusCode::GATEWAY_TIMEOUT);
        let refused = OriginError::new(
            OriginErrorKind::Connect,
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(refused.client_status(), StatusCode::BAD_GATEWAY);
        let connect_timeout = OriginError::new(
            OriginErrorKind::Connect,
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        );
        assert_eq!(connect_timeout.client_status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(connect_timeout.as_str(), "origin-connect-timeout");
    }

    #[test]
    fn an_error_status_is_passed_on_and_is_not_unreachable() {
        let error = OriginError::bare(OriginErrorKind::ErrorStatus(ErrorResponse {
            status: StatusCode::SERVICE_UNAVAILABLE,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"down"),
            truncated: false,
            shareable: true,
        }));
        assert_eq!(error.client_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.is_unreachable());
        assert!(is_error_status(StatusCode::GATEWAY_TIMEOUT));
        assert!(!is_error_status(StatusCode::NOT_IMPLEMENTED));
    }

    #[test]
    fn a_stalled_request_body_is_the_clients_failure_not_the_origins() {
        let error = OriginError::bare(OriginErrorKind::RequestBodyTimeout);
        assert_eq!(error.client_status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(error.as_str(), "request-body-timeout");
        assert!(!error.is_unreachable(), "no stale copy stands in for it");
    }
}
