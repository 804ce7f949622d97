//! Requests a client abandons: it resets the HTTP/2 stream, or closes the connection, while
//! sidecache is still working on the answer it asked for (waiting on the origin, or on its turn).
//!
//! Each costs the client a few bytes and sidecache a load started for nobody, so a client that
//! abandons request after request is cut off, as Envoy does on premature resets: once a
//! connection has abandoned [`Abandonment::new`]'s limit of requests and more requests than it
//! waited for to the end, it is closed. A browser that leaves a page resets the streams still
//! loading, but it has waited for most of what it asked for on the connection, so it is not
//! cut off. Requests answered at once (hits) count neither way: they cannot be abandoned, and do
//! not offset those that are.
//!
//! Requests dropped because sidecache itself cut the connection off (a timeout) are not the
//! client's doing and are not counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use prometheus::IntCounter;

/// One connection's record of abandoned requests.
#[derive(Debug)]
pub(super) struct Abandonment {
    /// Requests abandoned while they waited.
    abandoned: AtomicU32,
    /// Requests that waited and were answered.
    answered: AtomicU32,
    /// The fewest abandoned requests that close the connection.
    limit: u32,
    /// Set once the connection is to close.
    closing: AtomicBool,
    /// The task serving the connection, woken to close it. The task polls [`Closing`] every
    /// time it runs, so the signal costs an atomic load there, not a waiter list.
    close: AtomicWaker,
    /// `sidecache_client_requests_abandoned_total`.
    counter: IntCounter,
}

/// Resolves once the connection is to be closed ([`Abandonment::closing`]).
pub(super) struct Closing<'a>(&'a Abandonment);

// === impl Abandonment ===

impl Abandonment {
    /// A connection that is closed once it has abandoned `limit` requests and more than it
    /// waited for; every abandoned request counted in `counter`.
    pub(super) fn new(limit: u32, counter: IntCounter) -> Self {
        Self {
            abandoned: AtomicU32::new(0),
            answered: AtomicU32::new(0),
            limit,
            closing: AtomicBool::new(false),
            close: AtomicWaker::new(),
            counter,
        }
    }

    /// Resolves once the connection is to be closed for the requests it abandoned.
    pub(super) fn closing(&self) -> Closing<'_> {
        Closing(self)
    }

    /// Whether the connection is to close for the requests it abandoned (its other requests are
    /// then dropped by sidecache, not by the client).
    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// A request the client waited for was answered.
    pub(super) fn answered(&self) {
        self.answered.fetch_add(1, Ordering::SeqCst);
    }

    /// A request the client waited for was dropped before its answer: counted, and the
    /// connection closes once the limit is passed.
    pub(super) fn abandoned(&self) {
        self.counter.inc();
        let abandoned = self.abandoned.fetch_add(1, Ordering::SeqCst) + 1;
        if abandoned >= self.limit
            && abandoned > self.answered.load(Ordering::SeqCst)
            && !self.closing.swap(true, Ordering::SeqCst)
        {
            self.close.wake();
        }
    }
}

// === impl Closing ===

impl Future for Closing<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let abandonment = self.0;
        if abandonment.closing.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        abandonment.close.register(cx.waker());
        // Set between the load and the registration: its wake found no waker yet.
        if abandonment.closing.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use super::*;

    /// Whether the connection has been told to close.
    fn closes(abandonment: &Abandonment) -> bool {
        let closing = std::pin::pin!(abandonment.closing());
        let waker = std::task::Waker::noop();
        closing.poll(&mut std::task::Context::from_waker(waker)) == Poll::Ready(())
    }

    #[test]
    fn a_connection_closes_at_the_limit_unless_it_waited_for_more_than_it_abandoned() {
        let abandonment = Abandonment::new(3, IntCounter::new("a", "a").expect("counter"));
        abandonment.abandoned();
        abandonment.abandoned();
        assert!(!closes(&abandonment));
        abandonment.abandoned();
        assert!(closes(&abandonment), "3 abandoned, none answered");
        assert_eq!(abandonment.counter.get(), 3);

        let abandonment = Abandonment::new(3, IntCounter::new("b", "b").expect("counter"));
        for _ in 0..4 {
            abandonment.answered();
        }
        for _ in 0..4 {
            abandonment.abandoned();
        }
        assert!(!closes(&abandonment), "4 abandoned, 4 answered");
        abandonment.abandoned();
        assert!(closes(&abandonment), "5 abandoned, 4 answered");
        abandonment.abandoned();
        assert!(closes(&abandonment), "still closing");
        assert_eq!(abandonment.counter.get(), 6);
    }
}
