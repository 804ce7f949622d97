//! Client connection timeouts: a connection with no request under way is closed after the idle
//! timeout; (HTTP/1.1) a request head must be complete within the header timeout of its first
//! byte, so a client that drips its head (slowloris) is cut off; and a write that the client
//! leaves waiting (it reads nothing) fails after the send timeout, so a client that stops reading
//! cannot hold the connection and what its answer holds.
//!
//! hyper's own `header_read_timeout` counts from when a connection starts waiting for a head, so
//! on a keep-alive connection it bounds the idle time and the head together, and it does not run
//! during protocol detection. These clocks are kept apart instead: [`Activity`] tells when a
//! connection is idle (no request being answered) and since when, and [`TimedIo`] works out the
//! deadline that applies while its reads or writes wait, failing the read or write (which ends
//! the connection) when it passes, and noting why in the [`Activity`].
//!
//! # One timer, re-armed lazily
//!
//! The clocks change on every request (a head begins, an answer ends), but moving a timer in
//! tokio's wheel on every request costs more than answering a cache hit's head. So the
//! connection's one timer is never moved when a clock starts: it is armed at most
//! [`TimedIo::recheck`] ahead (the shortest of the timeouts), and each clock only starts
//! later and runs at least that long, so no deadline can fall before the timer. When the timer
//! fires, the waiting read or write works out the real deadline from the clock's start: past
//! it, it fails; otherwise the timer is armed again. A busy keep-alive connection touches the
//! wheel once per `recheck`, not twice per request, and the end of an answer wakes nobody.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::cutoff::{Cutoff, CutoffCell};

/// The shortest time between two checks of a connection's clocks, whatever the timeouts.
const MIN_RECHECK: Duration = Duration::from_millis(1);

/// Whether a connection is answering requests, and since when it is not: shared by its service
/// (which counts requests in and out) and its [`TimedIo`] (which times the idle periods).
#[derive(Debug)]
pub(super) struct Activity {
    /// Requests being answered (HTTP/2: streams open), from the call of the service to the end
    /// of the response body.
    active: AtomicUsize,
    /// Bumped whenever an answer ends, so the reader knows a head it saw belongs to an earlier
    /// request.
    idle_periods: AtomicU64,
    /// When the last answer ended, in nanoseconds after `opened`: the start of the idle period.
    idle_since_nanos: AtomicU64,
    /// When the connection was accepted: its first idle period starts there.
    opened: Instant,
    /// Why sidecache cut the connection off, once it has.
    cutoff: CutoffCell,
}

/// One request being answered; the connection is idle again once every guard is dropped.
#[derive(Debug)]
pub(super) struct RequestGuard(Arc<Activity>);

/// A request head that began on an idle connection: the header timeout runs from `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadBegun {
    /// The idle period the head began in.
    period: u64,
    since: Instant,
}

/// A client connection's stream with the idle and header timeouts applied to its reads and the
/// send timeout to its writes.
pub(super) struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    /// `None` for HTTP/2, whose clients send frames (pings, settings) while idle.
    header_timeout: Option<Duration>,
    send_timeout: Duration,
    /// The latest head begun on an idle connection (HTTP/1.1 only).
    head: Option<HeadBegun>,
    /// Since when a write has waited for the client to take bytes; `None` while writes go
    /// through (or none is waiting).
    write_blocked: Option<Instant>,
    /// How far ahead the timer is armed at most: the shortest timeout, so that no clock starting
    /// later can end before the timer fires.
    recheck: Duration,
    /// The one timer; when it fires the clocks are checked (module docs).
    timer: Pin<Box<Sleep>>,
}

// === impl Activity ===

impl Default for Activity {
    /// An idle connection, accepted now.
    fn default() -> Self {
        Self {
            active: AtomicUsize::new(0),
            idle_periods: AtomicU64::new(0),
            idle_since_nanos: AtomicU64::new(0),
            opened: Instant::now(),
            cutoff: CutoffCell::new(),
        }
    }
}

impl Activity {
    /// Counts a request in until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        RequestGuard(Arc::clone(self))
    }

    /// Notes that sidecache cut the connection off for `cutoff` (the first reason noted stays).
    pub(super) fn record_cutoff(&self, cutoff: Cutoff) {
        self.cutoff.record(cutoff);
    }

    /// Why sidecache cut the connection off, if it did.
    pub(super) fn cutoff(&self) -> Option<Cutoff> {
        self.cutoff.get()
    }

    fn is_idle(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0
    }

    fn idle_period(&self) -> u64 {
        self.idle_periods.load(Ordering::SeqCst)
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_nanos(self.idle_since_nanos.load(Ordering::SeqCst))
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended = activity.opened.elapsed();
        // Written before the count goes down, so a reader that sees the connection idle sees
        // when, and that a head it saw before belongs to the request that just ended. With
        // several streams (HTTP/2) each end writes them; only the last one's stay.
        activity.idle_since_nanos.store(
            u64::try_from(ended.as_nanos()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        activity.idle_periods.fetch_add(1, Ordering::SeqCst);
        activity.active.fetch_sub(1, Ordering::SeqCst);
    }
}

// === impl TimedIo ===

impl<T> TimedIo<T> {
    /// `inner` with the idle and send timeouts, and the header timeout when given (HTTP/1.1).
    pub(super) fn new(
        inner: T,
        activity: Arc<Activity>,
        idle_timeout: Duration,
        header_timeout: Option<Duration>,
        send_timeout: Duration,
    ) -> Self {
        let recheck = header_timeout
            .map_or(idle_timeout, |header| header.min(idle_timeout))
            .min(send_timeout)
            .max(MIN_RECHECK);
        let timer = Box::pin(tokio::time::sleep_until(activity.opened + recheck));
        Self {
            inner,
            activity,
            idle_timeout,
            header_timeout,
            send_timeout,
            head: None,
            write_blocked: None,
            recheck,
            timer,
        }
    }

    /// For a connection whose first bytes were read before it was handed here (HTTP/1.1): its
    /// first head began at `since`, and the header clock runs from then.
    pub(super) fn head_begun_at(mut self, since: Instant) -> Self {
        if self.header_timeout.is_some() {
            self.head = Some(HeadBegun {
                period: self.activity.idle_period(),
                since,
            });
        }
        self
    }

    /// After bytes arrived: the first bytes of a new request on an idle connection start the
    /// header clock.
    fn on_bytes(&mut self) {
        if self.header_timeout.is_none() || !self.activity.is_idle() {
            return;
        }
        let period = self.activity.idle_period();
        if self.head.is_none_or(|head| head.period != period) {
            self.head = Some(HeadBegun {
                period,
                since: Instant::now(),
            });
        }
    }

    /// The earliest deadline that applies now and what passing it is called: the send clock's
    /// while a write waits, and the idle or header clock's while no request is under way.
    fn deadline(&self) -> Option<(Instant, Cutoff)> {
        let send = self
            .write_blocked
            .map(|since| (since + self.send_timeout, Cutoff::Send));
        let read = self.read_deadline();
        match (send, read) {
            (Some(send), Some(read)) => Some(if read.0 < send.0 { read } else { send }),
            (send, read) => send.or(read),
        }
    }

    /// The idle or header clock's deadline; `None` while a request is under way.
    fn read_deadline(&self) -> Option<(Instant, Cutoff)> {
        if !self.activity.is_idle() {
            return None;
        }
        let period = self.activity.idle_period();
        match (self.head, self.header_timeout) {
            (Some(head), Some(timeout)) if head.period == period => {
                Some((head.since + timeout, Cutoff::Header))
            }
            _ => Some((self.activity.idle_since() + self.idle_timeout, Cutoff::Idle)),
        }
    }

    /// While a read or write waits: when the timer fires, gives the error to fail it with if a
    /// deadline has passed (noting the cutoff), and arms the timer again otherwise.
    fn check_clocks(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let next = match self.deadline() {
                Some((deadline, cutoff)) if now >= deadline => {
                    self.activity.record_cutoff(cutoff);
                    return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, cutoff));
                }
                Some((deadline, _)) => deadline.min(now + self.recheck),
                None => now + self.recheck,
            };
            self.timer.as_mut().reset(next);
        }
        Poll::Pending
    }

    /// After a write: bytes taken stop the send clock, waiting starts it.
    fn on_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Pending => self.write_waits(cx).map(Err),
            Poll::Ready(Ok(taken)) if taken > 0 => {
                self.write_blocked = None;
                Poll::Ready(Ok(taken))
            }
            done => done,
        }
    }

    /// While a write (or flush) waits: starts the send clock if it is not running, and checks
    /// the clocks.
    fn write_waits(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.write_blocked.is_none() {
            self.write_blocked = Some(Instant::now());
        }
        self.check_clocks(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.on_bytes();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.check_clocks(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.on_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.on_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.write_waits(cx).map(Err),
            // Flushing takes no bytes of its own: it neither starts nor stops the send clock.
            flushed => flushed,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    fn timed(header: Option<Duration>) -> (TimedIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        let io = TimedIo::new(
            server,
            Arc::clone(&activity),
            Duration::from_secs(60),
            header,
            Duration::from_secs(30),
        );
        (io, client, activity)
    }

    async fn read_error(io: &mut TimedIo<DuplexStream>) -> (io::ErrorKind, String) {
        let mut buf = [0u8; 64];
        loop {
            match io.read(&mut buf).await {
                Ok(0) => panic!("end of stream instead of a timeout"),
                Ok(_) => continue,
                Err(error) => return (error.kind(), error.to_string()),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_times_out_after_the_idle_timeout() {
        let (mut io, _client, _activity) = timed(Some(Duration::from_secs(5)));
        let started = Instant::now();
        let (kind, text) = read_error(&mut io).await;
        assert_eq!(
            (kind, text.as_str()),
            (io::ErrorKind::TimedOut, "client idle timeout")
        );
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_must_be_complete_within_the_header_timeout() {
        let (mut io, mut client, _activity) = timed(Some(Duration::from_secs(5)));
        client.write_all(b"GET / HT").await.expect("write");
        let started = Instant::now();
        let (kind, text) = read_error(&mut io).await;
        assert_eq!(
            (kind, text.as_str()),
            (io::ErrorKind::TimedOut, "client header timeout")
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn no_clock_runs_while_a_request_is_answered_and_idleness_restarts_it() {
        let (mut io, mut client, activity) = timed(Some(Duration::from_secs(5)));
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.expect("read") > 0);
        let request = activity.begin();
        // A long answer: the read waits without a clock.
        let waited = tokio::time::timeout(Duration::from_secs(600), io.read(&mut buf)).await;
        assert!(waited.is_err(), "no timeout while a request is under way");
        // The answer ends: the idle clock starts from then.
        let ended = Instant::now();
        drop(request);
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client idle timeout");
        assert_eq!(ended.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_late_in_an_idle_period_gets_the_whole_header_timeout() {
        let (mut io, mut client, _activity) = timed(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 64];
        // Idle for 50 s (the timer fires and is armed again meanwhile), then a head begins.
        let waited = tokio::time::timeout(Duration::from_secs(50), io.read(&mut buf)).await;
        assert!(waited.is_err(), "no timeout before the idle timeout");
        client.write_all(b"GET / HT").await.expect("write");
        assert!(io.read(&mut buf).await.expect("read") > 0);
        let begun = Instant::now();
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client header timeout");
        assert_eq!(begun.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_longer_than_the_header_timeout_does_not_end_in_one() {
        let (mut io, mut client, activity) = timed(Some(Duration::from_secs(5)));
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.expect("read") > 0);
        let request = activity.begin();
        // The answer takes 30 s: far past the head's 5 s, which no longer counts.
        let waited = tokio::time::timeout(Duration::from_secs(30), io.read(&mut buf)).await;
        assert!(waited.is_err());
        drop(request);
        let ended = Instant::now();
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client idle timeout");
        assert_eq!(ended.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_header_timeout_bytes_do_not_start_one() {
        let (mut io, mut client, _activity) = timed(None);
        client.write_all(b"ping").await.expect("write");
        let started = Instant::now();
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client idle timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    /// Writes until the write fails; the error's kind and text.
    async fn write_error(io: &mut TimedIo<DuplexStream>) -> (io::ErrorKind, String) {
        let chunk = [7u8; 512];
        loop {
            if let Err(error) = io.write(&chunk).await {
                return (error.kind(), error.to_string());
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_leaves_waiting_fails_after_the_send_timeout() {
        let (mut io, _client, activity) = timed(Some(Duration::from_secs(5)));
        // An answer under way: no idle clock, but the send clock runs all the same.
        let _request = activity.begin();
        let started = Instant::now();
        let (kind, text) = write_error(&mut io).await;
        assert_eq!(
            (kind, text.as_str()),
            (io::ErrorKind::TimedOut, "client send timeout")
        );
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(activity.cutoff(), Some(Cutoff::Send));
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_taken_by_the_client_restart_the_send_clock() {
        let (mut io, mut client, activity) = timed(Some(Duration::from_secs(5)));
        let _request = activity.begin();
        let filled = tokio::time::timeout(Duration::from_secs(20), write_error(&mut io)).await;
        assert!(filled.is_err(), "no timeout within 20 s of the first wait");
        // The client takes a little, 20 s into the wait: the clock starts again from the next
        // wait.
        let mut taken = [0u8; 256];
        client.read_exact(&mut taken).await.expect("read");
        let resumed = Instant::now();
        let (_, text) = write_error(&mut io).await;
        assert_eq!(text, "client send timeout");
        assert_eq!(resumed.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn timed_out_reads_note_their_cutoff() {
        let (mut io, _client, activity) = timed(Some(Duration::from_secs(5)));
        let _ = read_error(&mut io).await;
        assert_eq!(activity.cutoff(), Some(Cutoff::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_before_the_connection_was_handed_over_keeps_its_start() {
        let (server, mut client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        let begun = Instant::now();
        tokio::time::advance(Duration::from_secs(2)).await;
        let mut io = TimedIo::new(
            server,
            Arc::clone(&activity),
            Duration::from_secs(60),
            Some(Duration::from_secs(5)),
            Duration::from_secs(30),
        )
        .head_begun_at(begun);
        client.write_all(b"OST / HT").await.expect("write");
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client header timeout");
        assert_eq!(begun.elapsed(), Duration::from_secs(5));
    }
}
