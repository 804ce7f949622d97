//! The pooled client to the origin: timeouts, header hygiene, error classification.
//!
//! Everything that goes to the origin goes through [`OriginClient::send`], and a response body
//! that is to be stored is read through [`OriginClient::buffer_body`], so that the timeouts, the
//! classification of failures and the client span (`trace`, with the `traceparent` the origin
//! receives) are the same on every path.

mod config;
pub(crate) mod connector;
pub(crate) mod error;
mod failure_log;
pub(crate) mod headers;
pub mod metrics;
mod path_prefix;
pub(crate) mod trace;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tracing::Instrument;

pub use self::config::{HostHeader, OriginConfig};
use self::connector::{LimitedConnector, OriginBusy, OriginSlots};
pub use self::error::{
    ErrorResponse, OriginBuildError, OriginError, OriginErrorKind, is_error_status,
};
use self::failure_log::FailureLog;
pub use self::failure_log::ORIGIN_LOG;
use self::metrics::{OriginMetrics, OriginOutcome};
use self::path_prefix::PathPrefix;
use self::trace::FetchTrace;
use crate::body::{Body, Guard, PeerBodyError, StreamError};

/// Where the origin is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct OriginSettings {
    /// The origin's base URL (`http://host:port`, or with a path every request is asked for
    /// under: `http://host:port/api/`).
    pub url: Uri,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit from sending the request to receiving the response head.
    pub first_byte_timeout: Duration,
    /// Limit for reading a whole body that is to be stored.
    pub body_timeout: Duration,
    /// Longest pause between two frames of a body streamed on to a client.
    pub read_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// How the `Host` header is set.
    pub host_header: HostHeader,
    /// Most connections open to the origin at once; a request waits at most the connect
    /// timeout for one to come free.
    pub max_connections: usize,
}

/// A response body read for storing.
#[derive(Debug)]
pub enum Buffered {
    /// The whole body, within the limit, with no more spare capacity behind it than the room
    /// asked for.
    Complete(BytesMut),
    /// The body passed the limit: what was read, and the rest still to stream.
    TooLarge {
        /// Bytes read so far.
        prefix: Bytes,
        /// The unread remainder.
        rest: Incoming,
    },
}

/// A pooled HTTP client bound to one origin.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<LimitedConnector<HttpConnector>, Body>,
    /// The connection slots the client's connections hold.
    slots: OriginSlots,
    scheme: Scheme,
    authority: Authority,
    /// The authority as a ready-made `Host` value, for [`HostHeader::Origin`].
    authority_host: HeaderValue,
    /// The URL's path, which clients' paths are asked for under.
    path_prefix: PathPrefix,
    settings: OriginSettings,
    metrics: OriginMetrics,
    /// Where failed requests are logged, within one budget shared by every clone.
    failures: Arc<FailureLog>,
}

// === impl OriginClient ===

impl OriginClient {
    /// A client for the origin at `settings.url`.
    ///
    /// # Errors
    /// The URL lacks a scheme or an authority, or the authority is not a valid `Host`.
    pub fn new(settings: OriginSettings, metrics: OriginMetrics) -> Result<Self, OriginBuildError> {
        let url = &settings.url;
        let scheme = url
            .scheme()
            .cloned()
            .ok_or_else(|| OriginBuildError::NoScheme { url: url.clone() })?;
        let authority = url
            .authority()
            .cloned()
            .ok_or_else(|| OriginBuildError::NoHost { url: url.clone() })?;
        let authority_host = HeaderValue::from_str(authority.as_str()).map_err(|_| {
            OriginBuildError::InvalidHost {
                authority: authority.clone(),
            }
        })?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        let slots = OriginSlots::new(settings.max_connections);
        let connector = LimitedConnector::new(connector, slots.clone(), settings.connect_timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let failures = Arc::new(FailureLog::new(&settings.url));
        Ok(Self {
            client,
            slots,
            scheme,
            authority,
            authority_host,
            path_prefix: PathPrefix::new(url.path()),
            settings,
            metrics,
            failures,
        })
    }

    /// The connection slots: how many connections to the origin are open, and the bound.
    pub fn slots(&self) -> &OriginSlots {
        &self.slots
    }

    /// The origin's base URL.
    pub fn url(&self) -> &Uri {
        &self.settings.url
    }

    /// Logs that the origin request (or load) for `key` failed with `error`: one WARN line on
    /// target [`ORIGIN_LOG`], unless the client's own request body failed, and at most a burst
    /// of ten lines then ten a minute; a line written after some were held back says how many
    /// (`suppressed`). Called once per failed load or request sent around the cache, where its
    /// failure is handled.
    pub fn log_failure(&self, key: &dyn fmt::Display, error: &OriginError) {
        self.failures.failed(key, error);
    }

    /// Sends `request` (whose URI is the client's path and query, asked for under the origin
    /// URL's path) and waits for the response head, at most the first-byte timeout. The
    /// response's `Location` and `Content-Location` come back in the client's paths. It runs in
    /// an `origin fetch` client span whose context replaces the request's `traceparent` (with
    /// tracing on).
    ///
    /// # Errors
    /// Connection failures, timeouts and malformed answers, classified as [`OriginError`].
    pub async fn send(
        &self,
        mut request: Request<Body>,
    ) -> Result<Response<Incoming>, OriginError> {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let path = self
            .path_prefix
            .outgoing(path)
            .map_err(|e| OriginError::new(OriginErrorKind::Protocol, e))?;
        *request.uri_mut() = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| OriginError::new(OriginErrorKind::Protocol, e))?;
        if self.settings.host_header == HostHeader::Origin
            || !request.headers().contains_key(header::HOST)
        {
            request
                .headers_mut()
                .insert(header::HOST, self.authority_host.clone());
        }
        let host = request.headers().get(header::HOST).cloned();
        let trace = FetchTrace::open(&mut request);
        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.settings.first_byte_timeout,
            self.client.request(request),
        )
        .instrument(trace.span().clone())
        .await;
        let result = match sent {
            Err(elapsed) => Err(OriginError::new(OriginErrorKind::Timeout, elapsed)),
            Ok(Err(error)) if is_caused_by::<OriginBusy>(&error) => {
                Err(OriginError::new(OriginErrorKind::Busy, error))
            }
            Ok(Err(error)) if error.is_connect() => {
                Err(OriginError::new(OriginErrorKind::Connect, error))
            }
            // The client's body broke its limit while it was being sent: the origin is not to
            // blame.
            Ok(Err(error))
                if matches!(
                    StreamError::find(&error),
                    Some(StreamError::TooLarge { .. })
                ) =>
            {
                Err(OriginError::new(
                    OriginErrorKind::RequestBodyTooLarge,
                    error,
                ))
            }
            // Nor when the client stopped sending its body.
            Ok(Err(error))
                if matches!(StreamError::find(&error), Some(StreamError::Stalled(_))) =>
            {
                Err(OriginError::new(OriginErrorKind::RequestBodyTimeout, error))
            }
            // Nor when the client's body was malformed or broke off.
            Ok(Err(error)) if is_caused_by::<PeerBodyError>(&error) => Err(OriginError::new(
                OriginErrorKind::RequestBodyMalformed,
                error,
            )),
            Ok(Err(error)) => Err(OriginError::new(OriginErrorKind::Protocol, error)),
            Ok(Ok(mut response)) => {
                self.path_prefix
                    .incoming(response.headers_mut(), &self.authority, host.as_ref());
                Ok(response)
            }
        };
        let outcome = match &result {
            Ok(response) => Some(OriginOutcome::of_status(response.status())),
            Err(error) => OriginOutcome::of_error(error),
        };
        match outcome {
            Some(outcome) => self.metrics.record_request(outcome, started.elapsed()),
            None => self.metrics.record_refusal(),
        }
        // A final answer cannot be 1xx: hyper reads interim answers itself, and sidecache never
        // asks to switch protocols (Upgrade is hop-by-hop). Counted as the 1xx it was, it is
        // a broken answer for the client.
        let result = match result {
            Ok(response) if response.status().is_informational() => Err(OriginError::new(
                OriginErrorKind::Protocol,
                format!("a final {} answer", response.status()),
            )),
            other => other,
        };
        trace.finish(&result);
        result
    }

    /// `rest` of an origin body (after `prefix`, already read), to stream on to a client: cut off
    /// with an error if the origin sends nothing for the read timeout while it is awaited.
    pub fn stream_body(&self, prefix: Bytes, rest: Incoming) -> Body {
        Body::guarded(
            prefix,
            rest,
            Guard {
                limit: None,
                read_timeout: Some(self.settings.read_timeout),
            },
        )
    }

    /// Reads `body` whole if it is at most `limit` bytes, within the body timeout, leaving
    /// `room` bytes of spare capacity behind it (for a caller that stores more bytes with the
    /// body, so they need no allocation of their own).
    ///
    /// # Errors
    /// The body broke off, did not match its framing, or took longer than the body timeout:
    /// nothing read is usable then.
    pub async fn buffer_body(
        &self,
        body: Incoming,
        limit: u64,
        room: usize,
    ) -> Result<Buffered, OriginError> {
        let buffered = self.read_body(body, limit, room).await;
        if buffered.is_err() {
            self.metrics.record_body_error();
        }
        buffered
    }

    async fn read_body(
        &self,
        mut body: Incoming,
        limit: u64,
        room: usize,
    ) -> Result<Buffered, OriginError> {
        let deadline = Instant::now() + self.settings.body_timeout;
        let declared = usize::try_from(body.size_hint().lower().min(limit)).unwrap_or(0);
        let mut buffer =
            BytesMut::with_capacity(declared.min(FIRST_BODY_BUFFER).saturating_add(room));
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(elapsed) => return Err(OriginError::new(OriginErrorKind::Body, elapsed)),
                Ok(None) => return Ok(Buffered::Complete(exact(buffer, room))),
                Ok(Some(Err(error))) => return Err(OriginError::new(OriginErrorKind::Body, error)),
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers are not stored; only data frames count.
            if let Ok(data) = frame.into_data() {
                make_room(&mut buffer, data.len(), declared, room);
                buffer.extend_from_slice(&data);
                if buffer.len() as u64 > limit {
                    return Ok(Buffered::TooLarge {
                        prefix: buffer.freeze(),
                        rest: body,
                    });
                }
            }
        }
    }
}

/// Whether an error of type `E` is among `error`'s causes.
fn is_caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Most of a declared body length allocated before the body arrives: a `Content-Length` is
/// only a promise, and loads waiting on bodies that come slowly (or never) would otherwise hold
/// all of it at once.
const FIRST_BODY_BUFFER: usize = 64 * 1024;

/// Grows `buffer` to take `incoming` more bytes with `room` to spare: doubling what has
/// arrived, never past the `declared` length while the body keeps within it, so a body that
/// matches its length ends in a buffer of exactly that size.
fn make_room(buffer: &mut BytesMut, incoming: usize, declared: usize, room: usize) {
    let needed = buffer.len().saturating_add(incoming);
    if buffer.capacity() >= needed.saturating_add(room) {
        return;
    }
    let mut target = buffer.len().saturating_mul(2).max(needed);
    if needed <= declared {
        target = target.min(declared);
    }
    let mut grown = BytesMut::with_capacity(target.saturating_add(room));
    grown.extend_from_slice(buffer);
    *buffer = grown;
}

/// `buffer` with at most `room` bytes of spare capacity. A body of unknown length grows its
/// buffer by doubling, and a stored body would hold that spare room (up to its own size
/// again), unweighed, for as long as the entry lives: such a body is copied into a buffer of
/// the right size. A buffer sized from `Content-Length` has just `room` and is handed on as it
/// is.
fn exact(buffer: BytesMut, room: usize) -> BytesMut {
    if buffer.capacity() - buffer.len() <= room {
        return buffer;
    }
    let mut exact = BytesMut::with_capacity(buffer.len().saturating_add(room));
    exact.extend_from_slice(&buffer);
    exact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_is_allocated_as_the_body_arrives() {
        let declared = 1 << 20;
        let room = 100;
        let mut buffer = BytesMut::with_capacity(FIRST_BODY_BUFFER + room);
        let frame = [0u8; 16 * 1024];
        while buffer.len() < declared {
            make_room(&mut buffer, frame.len(), declared, room);
            buffer.extend_from_slice(&frame);
            assert!(
                buffer.capacity() <= 2 * buffer.len() + FIRST_BODY_BUFFER + room,
                "{} allocated for {} arrived",
                buffer.capacity(),
                buffer.len()
            );
        }
        assert_eq!(
            buffer.capacity(),
            declared + room,
            "exactly the declared length"
        );
        // A body longer than it declared still fits.
        make_room(&mut buffer, frame.len(), declared, room);
        buffer.extend_from_slice(&frame);
        assert!(buffer.capacity() >= buffer.len() + room);
    }

    #[test]
    fn a_buffered_body_keeps_no_more_spare_capacity_than_asked() {
        let grown = || {
            let mut grown = BytesMut::new();
            for _ in 0..5 {
                grown.extend_from_slice(&[7; 1000]);
            }
            assert!(grown.capacity() > grown.len() + 100, "{}", grown.capacity());
            grown
        };
        let body = exact(grown(), 0);
        assert_eq!((body.len(), body.capacity()), (5000, 5000));
        assert!(body.iter().all(|&b| b == 7));
        let body = exact(grown(), 100);
        assert_eq!((body.len(), body.capacity()), (5000, 5100));

        let mut sized = BytesMut::with_capacity(1024 + 77);
        sized.extend_from_slice(&[1; 1024]);
        let at = sized.as_ptr();
        let body = exact(sized, 77);
        assert_eq!(body.as_ptr(), at, "a buffer that fits is not copied");
        assert_eq!(body.capacity(), 1024 + 77);
    }
}
