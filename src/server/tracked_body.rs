//! The body of a response as the server sends it: what it keeps while it is sent, (HTTP/2) how
//! it is handed over, and whether it was sent to its end: the request ends with it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body as _, Frame, SizeHint};

use super::budget::OriginPermit;
use super::request_end::RequestEnd;
use super::streams;
use super::timeouts::RequestGuard;
use crate::body::{Body, BodyError};

/// The most of a body handed to HTTP/2 at once: one DATA frame at the default frame size.
///
/// hyper hands a data frame to h2 whole once the client's window has room for one byte of it,
/// and asks for the next: a stored answer (one buffer) would leave the stream's task, ending
/// its request and its send clock, while most of it still waited on the window. In slices
/// (no copy), the stream's task lives, and is timed, until the client has taken all but the
/// last.
const HTTP2_SLICE: usize = 16 * 1024;

/// What a handler wants to be told when the body of its response ends: how its request ended,
/// and how many body bytes were handed to the connection. Put in the response's extensions; the
/// server takes it out and calls it once, when the body is dropped.
#[derive(Clone)]
pub struct OnBodyEnd(Arc<dyn Fn(RequestEnd, u64) + Send + Sync>);

impl OnBodyEnd {
    /// Calls `told` with how the request ended and the body bytes sent.
    pub fn new(told: impl Fn(RequestEnd, u64) + Send + Sync + 'static) -> Self {
        Self(Arc::new(told))
    }
}

/// A response body that keeps its request counted as under way until it is sent or dropped,
/// keeps a body streamed from the origin in its turn at the origin, and (HTTP/2) is handed over
/// in slices and tells its stream's send clock when hyper holds a frame of it (the `streams`
/// module). Dropped, it counts its request as ended: completed if hyper took it to its end,
/// body aborted otherwise.
pub struct TrackedBody {
    body: Body,
    /// What is left of a data frame being handed over in slices (HTTP/2). An `Option`, so
    /// that a body sent whole (every hit) drops nothing here.
    rest: Option<Bytes>,
    request: RequestGuard,
    /// The request's turn at the origin, while the body streams from there.
    _origin: Option<OriginPermit>,
    /// Whether the body runs in an HTTP/2 stream's task under a send clock.
    watched: bool,
    /// How the body ended, once it said so: no more frames, or an error. hyper stops at a known
    /// length without asking; `is_end_stream` tells those apart.
    ended: Option<RequestEnd>,
    /// Body bytes handed to the connection so far.
    sent: u64,
    /// Who is told how the body ended, if the handler asked.
    on_end: Option<OnBodyEnd>,
}

impl TrackedBody {
    /// `response` as sent: its body tracked under `request`, holding the turn at the origin the
    /// handler handed back if the body streams from there (a buffered body needs it no more).
    pub(super) fn respond(mut response: Response<Body>, request: RequestGuard) -> Response<Self> {
        let origin = response
            .extensions_mut()
            .remove::<OriginPermit>()
            .filter(|_| matches!(response.body(), Body::Guarded(_)));
        let on_end = response.extensions_mut().remove::<OnBodyEnd>();
        response.map(|body| Self {
            body,
            rest: None,
            request,
            _origin: origin,
            watched: streams::is_watched(),
            ended: None,
            sent: 0,
            on_end,
        })
    }

    /// The next frame: the next slice of a frame being sliced, or the body's next frame (sliced
    /// when watched).
    fn next_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.rest.is_some() {
            return Poll::Ready(Some(Ok(Frame::data(self.slice()))));
        }
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if !self.watched {
            return polled;
        }
        polled.map_ok(|frame| match frame.into_data() {
            Ok(data) if data.len() > HTTP2_SLICE => {
                self.rest = Some(data);
                Frame::data(self.slice())
            }
            Ok(data) => Frame::data(data),
            Err(frame) => frame,
        })
    }

    /// Takes the next slice of `rest`; `rest` is `None` again once it is all taken.
    fn slice(&mut self) -> Bytes {
        let Some(rest) = &mut self.rest else {
            return Bytes::new();
        };
        if rest.len() > HTTP2_SLICE {
            return rest.split_to(HTTP2_SLICE);
        }
        self.rest.take().unwrap_or_default()
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = this.next_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.ended = Some(RequestEnd::Completed),
            Poll::Ready(Some(Err(_))) => this.ended = Some(RequestEnd::BodyAborted),
            _ => {}
        }
        if this.watched {
            // hyper holds a data frame until the client's window lets it through; anything else
            // (trailers, the end, an error, a wait on the origin) needs nothing from the client.
            let holding = matches!(&polled, Poll::Ready(Some(Ok(frame)))
                if frame.data_ref().is_some_and(|data| !data.is_empty()));
            streams::report_frame(holding);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.body.size_hint();
        let Some(rest) = &self.rest else {
            return hint;
        };
        let rest = rest.len() as u64;
        if let Some(exact) = hint.exact() {
            return SizeHint::with_exact(exact + rest);
        }
        let mut total = SizeHint::new();
        total.set_lower(hint.lower() + rest);
        if let Some(upper) = hint.upper() {
            total.set_upper(upper + rest);
        }
        total
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        // A body with nothing left (an empty one, a HEAD's, one sent to its known length) may
        // never be asked for its end.
        let end = self.ended.unwrap_or(if self.is_end_stream() {
            RequestEnd::Completed
        } else {
            RequestEnd::BodyAborted
        });
        self.request.activity().record_end(end);
        if let Some(OnBodyEnd(told)) = self.on_end.take() {
            told(end, self.sent);
        }
    }
}
