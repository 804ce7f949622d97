//! The one body type that flows through sidecache: a buffered body or a stream from a peer.
//!
//! An enum rather than a boxed trait object, so that answering a hit allocates nothing for the
//! body: a stored body is a reference-counted [`Bytes`]. A stream is guarded ([`Body::guarded`]):
//! cut off past a byte limit, or when its peer sends nothing for too long.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// A request or response body.
#[derive(Debug)]
pub enum Body {
    /// A buffered body, sent in one frame (taken on the first poll).
    Full(Option<Bytes>),
    /// A stream from a peer, with a byte limit or a read timeout (boxed: the timer is large, and
    /// the buffered variant stays small).
    Guarded(Box<GuardedStream>),
    /// The first part of a longer body, which was not kept whole: sent, then the message is
    /// broken off ([`StreamError::CutShort`]), so the client sees an incomplete message rather
    /// than a shorter complete one.
    CutShort(CutShort),
}

/// How far a [`Body::CutShort`] has got.
#[derive(Debug)]
pub enum CutShort {
    /// The kept part, not yet handed out.
    Kept(Bytes),
    /// Handed out; the break comes at the next poll. The poll between lets the connection send
    /// the head and the kept part first: broken off at once, it would drop them unsent.
    Sent,
    /// Broken off.
    Broken,
}

/// A client's request body as a handler gets it: what arrived on a connection, or nothing (a
/// request made without a connection: tests, benchmarks).
#[derive(Debug)]
pub enum RequestBody {
    /// The body arriving on the client's connection.
    Streamed(Incoming),
    /// No body.
    Empty,
}

/// The error a streamed body can end with: the peer's ([`hyper::Error`]) or a guard's
/// ([`StreamError`]).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Why a guarded stream was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// More bytes arrived than the limit allows.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The peer sent nothing for this long while the body was being read.
    #[error("no body data for {0:?}")]
    Stalled(Duration),
    /// Only the first part of the body was kept; the rest is not sent.
    #[error("body cut short")]
    CutShort,
}

impl StreamError {
    /// The guard's error among `error`'s causes, if a guard cut the stream off.
    pub fn find(error: &(dyn std::error::Error + 'static)) -> Option<StreamError> {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if let Some(found) = error.downcast_ref::<StreamError>() {
                return Some(*found);
            }
            cause = error.source();
        }
        None
    }
}

/// The peer's own body broke while it was read: its framing was malformed, or the peer went away
/// before the end it declared. The peer's fault, not the fault of whoever the body was being sent
/// to.
#[derive(Debug, thiserror::Error)]
#[error("the peer's body was malformed or broke off")]
pub struct PeerBodyError(#[source] hyper::Error);

/// What a guarded stream enforces.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard {
    /// Most bytes the stream may carry.
    pub limit: Option<u64>,
    /// Longest wait for the peer's next frame (time spent waiting on the reader is not counted).
    pub read_timeout: Option<Duration>,
}

/// A stream from a peer under a [`Guard`].
#[derive(Debug)]
pub struct GuardedStream {
    prefix: Option<Bytes>,
    rest: Incoming,
    guard: Guard,
    /// Bytes passed on so far.
    seen: u64,
    /// The read timeout's clock, running only while a frame is awaited.
    clock: Option<Pin<Box<Sleep>>>,
    /// Whether the clock runs for the current wait.
    waiting: bool,
    /// Set once the guard has cut the stream off: nothing more is passed on.
    cut: bool,
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// A buffered body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::empty()
        } else {
            Self::Full(Some(bytes))
        }
    }

    /// The first part of a body that was longer than what was kept of it (see
    /// [`Body::CutShort`]).
    pub fn cut_short(kept: Bytes) -> Self {
        Self::CutShort(CutShort::Kept(kept))
    }

    /// A body streamed from a peer after `prefix` (which may be empty), cut off with a
    /// [`StreamError`] when it breaks `guard`.
    pub fn guarded(prefix: Bytes, rest: Incoming, guard: Guard) -> Self {
        Self::Guarded(Box::new(GuardedStream {
            seen: prefix.len() as u64,
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
            clock: guard
                .read_timeout
                .map(|timeout| Box::pin(tokio::time::sleep(timeout))),
            guard,
            waiting: false,
            cut: false,
        }))
    }
}

// === impl RequestBody ===

impl RequestBody {
    /// What its length says (exact for an empty body).
    pub fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed(body) => body.size_hint(),
            Self::Empty => SizeHint::with_exact(0),
        }
    }

    /// The body to send on, after `prefix`, under `guard`.
    pub fn guarded(self, prefix: Bytes, guard: Guard) -> Body {
        match self {
            Self::Streamed(body) => Body::guarded(prefix, body, guard),
            Self::Empty => Body::full(prefix),
        }
    }
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> Self {
        Self::Streamed(body)
    }
}

// === impl GuardedStream ===

impl GuardedStream {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.cut {
            return Poll::Ready(None);
        }
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(self.check_limit(Frame::data(prefix))));
        }
        match Pin::new(&mut self.rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.waiting = false;
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                }
                Poll::Ready(Some(self.check_limit(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(PeerBodyError(error).into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => self.poll_clock(cx),
        }
    }

    /// Passes `frame` on, or cuts the stream off if the bytes so far break the limit.
    fn check_limit(&mut self, frame: Frame<Bytes>) -> Result<Frame<Bytes>, BodyError> {
        match self.guard.limit {
            Some(limit) if self.seen > limit => {
                self.cut = true;
                Err(StreamError::TooLarge { limit }.into())
            }
            _ => Ok(frame),
        }
    }

    /// While the peer sends nothing: starts the read timeout's clock for this wait, and cuts
    /// the stream off when it runs out.
    fn poll_clock(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let (Some(timeout), Some(clock)) = (self.guard.read_timeout, self.clock.as_mut()) else {
            return Poll::Pending;
        };
        if !self.waiting {
            self.waiting = true;
            clock.as_mut().reset(Instant::now() + timeout);
        }
        ready!(clock.as_mut().poll(cx));
        self.cut = true;
        Poll::Ready(Some(Err(StreamError::Stalled(timeout).into())))
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Guarded(stream) => stream.poll_frame(cx),
            Self::CutShort(state) => match std::mem::replace(state, CutShort::Broken) {
                CutShort::Kept(kept) => {
                    *state = CutShort::Sent;
                    Poll::Ready(Some(Ok(Frame::data(kept))))
                }
                CutShort::Sent => {
                    *state = CutShort::Broken;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                CutShort::Broken => Poll::Ready(Some(Err(StreamError::CutShort.into()))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Guarded(stream) => {
                stream.cut || (stream.prefix.is_none() && stream.rest.is_end_stream())
            }
            Self::CutShort(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Guarded(stream) => stream.size_hint(),
            Self::CutShort(_) => SizeHint::new(),
        }
    }
}

impl GuardedStream {
    /// What is left of the prefix, then the rest.
    fn size_hint(&self) -> SizeHint {
        let already = self.prefix.as_ref().map_or(0, |b| b.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + already);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + already);
        }
        hint
    }
}
