//! A bound on the connections open to the origin.
//!
//! hyper's pooled client opens a new connection whenever no idle one is free, without limit, so
//! a burst of clients asking for distinct URLs would open the origin as many connections. The
//! [`LimitedConnector`] wraps the client's connector: a new connection first takes a slot
//! ([`OriginSlots`]), waiting at most a bound for one, and the slot is held by the connection
//! itself ([`LimitedIo`]) until it closes, pooled idle time included. While every slot is taken
//! a request is served by the first pooled connection that comes free (the client races its
//! pool against the connector), or refused with [`OriginBusy`] when the wait runs out.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// The connection slots to the origin: how many there are and how many are free.
#[derive(Debug, Clone)]
pub struct OriginSlots {
    slots: Arc<Semaphore>,
    max: usize,
}

/// No connection to the origin came free within the wait: the request was not sent.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("every connection to the origin is in use")]
pub(crate) struct OriginBusy;

/// A connector whose connections each hold one of the origin's slots.
#[derive(Debug, Clone)]
pub(crate) struct LimitedConnector<C> {
    inner: C,
    slots: OriginSlots,
    /// Longest wait for a free slot.
    wait: Duration,
}

/// A connection holding an origin slot, given back when the connection is dropped.
#[derive(Debug)]
pub(crate) struct LimitedIo<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// === impl OriginSlots ===

impl OriginSlots {
    /// `max` slots, all free.
    pub fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The most connections open at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now (a saturation gauge).
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

// === impl LimitedConnector ===

impl<C> LimitedConnector<C> {
    /// Wraps `inner` so that its connections take a slot of `slots`, waiting at most `wait`.
    pub(crate) fn new(inner: C, slots: OriginSlots, wait: Duration) -> Self {
        Self { inner, slots, wait }
    }
}

impl<C> Service<Uri> for LimitedConnector<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    type Response = LimitedIo<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // The connector made ready is the one that connects; a clone takes its place.
        let mut inner = self.inner.clone();
        std::mem::swap(&mut inner, &mut self.inner);
        let (slots, wait) = (Arc::clone(&self.slots.slots), self.wait);
        Box::pin(async move {
            let slot = match tokio::time::timeout(wait, slots.acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                // The semaphore is never closed; a closed one would mean no slot either.
                Ok(Err(_)) | Err(_) => return Err(OriginBusy.into()),
            };
            let io = inner.call(uri).await.map_err(Into::into)?;
            Ok(LimitedIo { io, _slot: slot })
        })
    }
}

// === impl LimitedIo ===

impl<T: Read + Unpin> Read for LimitedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for LimitedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for LimitedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector that connects at once to nothing: its connections are plain values.
    #[derive(Clone)]
    struct Instant;

    impl Service<Uri> for Instant {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<(), std::convert::Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Uri) -> Self::Future {
            std::future::ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn connections_take_slots_until_dropped_and_a_wait_past_the_bound_is_refused() {
        let slots = OriginSlots::new(2);
        let mut connector = LimitedConnector::new(Instant, slots.clone(), Duration::from_secs(1));
        let uri = Uri::from_static("http://origin.test/");
        let first = connector.call(uri.clone()).await.expect("a slot");
        let _second = connector.call(uri.clone()).await.expect("a slot");
        assert_eq!((slots.open(), slots.max()), (2, 2));
        let refused = connector.call(uri.clone()).await.expect_err("no slot");
        assert!(refused.is::<OriginBusy>(), "{refused}");
        // A waiting connection takes the slot a closing one gives back.
        let waiting = tokio::spawn(connector.call(uri));
        tokio::task::yield_now().await;
        drop(first);
        let _third = waiting.await.expect("task").expect("the freed slot");
        assert_eq!(slots.open(), 2);
    }
}
