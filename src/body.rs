//! The one body type that flows through sidecache: a buffered body or a stream from a peer.
//!
//! An enum rather than a boxed trait object, so that answering a hit allocates nothing for the
//! body: a stored body is a reference-counted [`Bytes`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

/// A request or response body.
#[derive(Debug)]
pub enum Body {
    /// A buffered body, sent in one frame (taken on the first poll).
    Full(Option<Bytes>),
    /// A body streamed from a peer, preceded by what was already read of it.
    Stream {
        /// Bytes read before the decision to stream was made (e.g. while trying to buffer an
        /// object that turned out too large to store).
        prefix: Option<Bytes>,
        /// The rest, as it arrives.
        rest: Incoming,
    },
}

/// The error a streamed body can end with.
pub type BodyError = hyper::Error;

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

    /// A body streamed from a peer.
    pub fn stream(rest: Incoming) -> Self {
        Self::Stream { prefix: None, rest }
    }

    /// A body streamed from a peer after bytes already read from it.
    pub fn resume(prefix: Bytes, rest: Incoming) -> Self {
        Self::Stream {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
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
            Self::Stream { prefix, rest } => match prefix.take() {
                Some(prefix) => Poll::Ready(Some(Ok(Frame::data(prefix)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Stream { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Stream { prefix, rest } => {
                let already = prefix.as_ref().map_or(0, |b| b.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + already);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + already);
                }
                hint
            }
        }
    }
}
