//! Client connection timeouts: a connection with no request under way is closed after the idle
//! timeout; a request head (HTTP/2: a header block, followed by [`HeaderBlocks`]) must be
//! complete within the header timeout of its first byte, so a client that drips its head
//! (slowloris) is cut off; and a write that the client leaves waiting (it reads nothing) fails
//! after the send timeout, so a client that stops reading cannot hold the connection and what its
//! answer holds.
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

use super::abandon::Abandonment;
use super::cutoff::{Cutoff, CutoffCell};
use super::header_blocks::HeaderBlocks;
use super::request_end::{RequestEnd, RequestEnds};

/// The shortest time between two checks of a connection's clocks, whatever the timeouts.
const MIN_RECHECK: Duration = Duration::from_millis(1);

/// Whether a connection is answering requests, and since when it is not: shared by its service
/// (which counts requests in and out) and its [`TimedIo`] (which times the idle periods). It also
/// carries what the connection's requests share beyond that (the requests abandoned, why the
/// connection was cut off, how requests ended), so a request reaches it through its one guard.
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
    /// The requests the client abandoned.
    abandonment: Abandonment,
    /// Where each request's end is counted.
    ends: RequestEnds,
}

/// One request being answered; the connection is idle again once every guard is dropped.
#[derive(Debug)]
pub(super) struct RequestGuard(Arc<Activity>);

/// The timeouts a connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clocks {
    /// Longest time with no request under way.
    pub(super) idle: Duration,
    /// Longest time from a head's first byte to its end.
    pub(super) header: Duration,
    /// Longest time a write may wait for the client to take bytes.
    pub(super) send: Duration,
}

/// A request head that began on an idle connection: the header timeout runs from `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeadBegun {
    /// The idle period the head began in.
    period: u64,
    since: Instant,
}

/// What the header clock follows, by protocol.
enum Heads {
    /// HTTP/1.1: the latest head begun on an idle connection (its first bytes begin it).
    Http1(Option<HeadBegun>),
    /// HTTP/2: the header blocks in the client's frames (idle clients send other frames, pings
    /// and settings, and a block may begin while other streams are answered).
    Http2 {
        blocks: HeaderBlocks,
        /// Since when a header block has been open.
        open_since: Option<Instant>,
    },
}

/// A client connection's stream with the idle and header timeouts applied to its reads and the
/// send timeout to its writes.
pub(super) struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    clocks: Clocks,
    heads: Heads,
    /// Since when a write has waited for the client to take bytes; `None` while writes go
    /// through (or none is waiting).
    write_blocked: Option<Instant>,
    /// When the client last took bytes of a write that had waited on it: an answer written out
    /// after its request was over (hyper queues a body's last bytes, and the request ends,
    /// before they are sent) ends the idle period no earlier than that.
    unblocked_at: Option<Instant>,
    /// How far ahead the timer is armed at most: the shortest timeout, so that no clock starting
    /// later can end before the timer fires.
    recheck: Duration,
    /// The one timer; when it fires the clocks are checked (module docs).
    timer: Pin<Box<Sleep>>,
}

// === impl Activity ===

impl Activity {
    /// An idle connection, accepted now, keeping account of its abandoned requests in
    /// `abandonment` and counting how its requests end in `ends`.
    pub(super) fn new(abandonment: Abandonment, ends: RequestEnds) -> Self {
        Self {
            active: AtomicUsize::new(0),
            idle_periods: AtomicU64::new(0),
            idle_since_nanos: AtomicU64::new(0),
            opened: Instant::now(),
            cutoff: CutoffCell::new(),
            abandonment,
            ends,
        }
    }

    /// The requests the client abandoned on this connection.
    pub(super) fn abandonment(&self) -> &Abandonment {
        &self.abandonment
    }

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

    /// How a request of this connection dropped before its answer ended: cut off if sidecache
    /// is closing the connection (a timeout, or too many requests abandoned, which is known
    /// before the connection's task notes it as the cutoff), closed by the client otherwise.
    pub(super) fn unanswered_end(&self) -> RequestEnd {
        if self.cutoff().is_some() || self.abandonment.is_closing() {
            RequestEnd::CutOff
        } else {
            RequestEnd::ClientClosed
        }
    }

    /// Counts one request of this connection as ended with `end`.
    pub(super) fn record_end(&self, end: RequestEnd) {
        self.ends.record(end);
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

impl RequestGuard {
    /// The connection the request is answered on.
    pub(super) fn activity(&self) -> &Activity {
        &self.0
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
    /// An HTTP/1.1 connection's `inner` under `clocks`.
    pub(super) fn http1(inner: T, activity: Arc<Activity>, clocks: Clocks) -> Self {
        Self::new(inner, activity, clocks, Heads::Http1(None))
    }

    /// An HTTP/2 connection's `inner` (from its preface on) under `clocks`.
    pub(super) fn http2(inner: T, activity: Arc<Activity>, clocks: Clocks) -> Self {
        let heads = Heads::Http2 {
            blocks: HeaderBlocks::new(),
            open_since: None,
        };
        Self::new(inner, activity, clocks, heads)
    }

    fn new(inner: T, activity: Arc<Activity>, clocks: Clocks, heads: Heads) -> Self {
        let recheck = clocks
            .idle
            .min(clocks.header)
            .min(clocks.send)
            .max(MIN_RECHECK);
        let timer = Box::pin(tokio::time::sleep_until(activity.opened + recheck));
        Self {
            inner,
            activity,
            clocks,
            heads,
            write_blocked: None,
            unblocked_at: None,
            recheck,
            timer,
        }
    }

    /// For an HTTP/1.1 connection whose first bytes were read before it was handed here: its
    /// first head began at `since`, and the header clock runs from then.
    pub(super) fn head_begun_at(mut self, since: Instant) -> Self {
        if let Heads::Http1(head) = &mut self.heads {
            *head = Some(HeadBegun {
                period: self.activity.idle_period(),
                since,
            });
        }
        self
    }

    /// After `bytes` arrived: the first bytes of a new request on an idle HTTP/1.1 connection,
    /// or the start of an HTTP/2 header block, start the header clock; the end of the block
    /// stops it.
    fn on_bytes(&mut self, bytes: &[u8]) {
        match &mut self.heads {
            Heads::Http1(head) => {
                if !self.activity.is_idle() {
                    return;
                }
                let period = self.activity.idle_period();
                if head.is_none_or(|head| head.period != period) {
                    *head = Some(HeadBegun {
                        period,
                        since: Instant::now(),
                    });
                }
            }
            Heads::Http2 { blocks, open_since } => {
                let open = blocks.follow(bytes);
                if open != open_since.is_some() {
                    *open_since = open.then(Instant::now);
                }
            }
        }
    }

    /// The earliest deadline that applies now and what passing it is called: the send clock's
    /// while a write waits, the header clock's while a head is incomplete, and the idle clock's
    /// while no request is under way.
    fn deadline(&self) -> Option<(Instant, Cutoff)> {
        let send = self
            .write_blocked
            .map(|since| (since + self.clocks.send, Cutoff::Send));
        let read = self.read_deadline();
        match (send, read) {
            (Some(send), Some(read)) => Some(if read.0 < send.0 { read } else { send }),
            (send, read) => send.or(read),
        }
    }

    /// The header or idle clock's deadline; `None` while a request is under way or an answer
    /// is still being written, unless a header block is open. A head begun in an idle period
    /// replaces the idle clock, so a head begun late in it still gets the whole header timeout.
    fn read_deadline(&self) -> Option<(Instant, Cutoff)> {
        let header = match &self.heads {
            Heads::Http2 {
                open_since: Some(since),
                ..
            } => return Some((*since + self.clocks.header, Cutoff::Header)),
            Heads::Http2 { .. } => None,
            Heads::Http1(head) => *head,
        };
        // A write waiting on the client is under the send clock: the client is not idle, it is
        // being answered.
        if !self.activity.is_idle() || self.write_blocked.is_some() {
            return None;
        }
        match header {
            Some(head) if head.period == self.activity.idle_period() => {
                Some((head.since + self.clocks.header, Cutoff::Header))
            }
            _ => Some((self.idle_since() + self.clocks.idle, Cutoff::Idle)),
        }
    }

    /// The start of the idle period: the end of the last answer, or later, when the client
    /// took its last bytes.
    fn idle_since(&self) -> Instant {
        let answered = self.activity.idle_since();
        self.unblocked_at
            .map_or(answered, |taken| taken.max(answered))
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
                // Only a write that had waited costs a look at the clock.
                if self.write_blocked.take().is_some() {
                    self.unblocked_at = Some(Instant::now());
                }
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
                    this.on_bytes(&buf.filled()[before..]);
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

    use super::super::detect::Protocol;
    use super::*;

    /// The clocks of these tests: idle 60 s, header 5 s, send 30 s.
    const CLOCKS: Clocks = Clocks {
        idle: Duration::from_secs(60),
        header: Duration::from_secs(5),
        send: Duration::from_secs(30),
    };

    /// A connection of `protocol` under [`CLOCKS`]: the server's end, the client's, and the
    /// connection's activity.
    fn timed_as(protocol: Protocol) -> (TimedIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        let (server, client) = tokio::io::duplex(1024);
        let activity = activity();
        let io = match protocol {
            Protocol::Http1 => TimedIo::http1(server, Arc::clone(&activity), CLOCKS),
            Protocol::Http2 => TimedIo::http2(server, Arc::clone(&activity), CLOCKS),
        };
        (io, client, activity)
    }

    /// A connection's activity, accepted now, that no number of abandoned requests closes.
    fn activity() -> Arc<Activity> {
        let counter = prometheus::IntCounter::new("abandoned", "abandoned").expect("counter");
        let ends = super::super::ClientMetrics::unexposed().ends();
        Arc::new(Activity::new(Abandonment::new(u32::MAX, counter), ends))
    }

    fn timed() -> (TimedIo<DuplexStream>, DuplexStream, Arc<Activity>) {
        timed_as(Protocol::Http1)
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
        let (mut io, _client, _activity) = timed();
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
        let (mut io, mut client, _activity) = timed();
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
        let (mut io, mut client, activity) = timed();
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
        let (mut io, mut client, _activity) = timed();
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
        let (mut io, mut client, activity) = timed();
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

    /// The HTTP/2 preface and an empty SETTINGS frame: what a client sends first.
    const H2_OPENING: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

    /// The header of a HEADERS frame on stream 1 with a `length`-byte payload and END_HEADERS.
    fn headers_frame_header(length: u8) -> [u8; 9] {
        [0, 0, length, 0x1, 0x4, 0, 0, 0, 1]
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_other_than_a_header_block_start_no_header_clock() {
        let (mut io, mut client, _activity) = timed_as(Protocol::Http2);
        client.write_all(H2_OPENING).await.expect("write");
        let started = Instant::now();
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client idle timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_header_block_must_be_complete_within_the_header_timeout() {
        let (mut io, mut client, activity) = timed_as(Protocol::Http2);
        // Other streams are answered meanwhile: the block holds up the connection all the same.
        let _request = activity.begin();
        client.write_all(H2_OPENING).await.expect("write");
        client
            .write_all(&headers_frame_header(3))
            .await
            .expect("write");
        client.write_all(&[0x82]).await.expect("write");
        let begun = Instant::now();
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client header timeout");
        assert_eq!(begun.elapsed(), Duration::from_secs(5));
        assert_eq!(activity.cutoff(), Some(Cutoff::Header));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_http2_header_block_stops_the_header_clock() {
        let (mut io, mut client, activity) = timed_as(Protocol::Http2);
        let request = activity.begin();
        client.write_all(H2_OPENING).await.expect("write");
        client
            .write_all(&headers_frame_header(2))
            .await
            .expect("write");
        client.write_all(&[0x82]).await.expect("write");
        let mut buf = [0u8; 64];
        let waited = tokio::time::timeout(Duration::from_secs(4), async {
            loop {
                let _ = io.read(&mut buf).await;
            }
        })
        .await;
        assert!(waited.is_err());
        client.write_all(&[0x84]).await.expect("write");
        // The block is complete and a request is under way: no clock runs for 10 minutes.
        let waited = tokio::time::timeout(Duration::from_secs(600), read_error(&mut io)).await;
        assert!(waited.is_err(), "no timeout");
        drop(request);
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client idle timeout");
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
        let (mut io, _client, activity) = timed();
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
        let (mut io, mut client, activity) = timed();
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
        let (mut io, _client, activity) = timed();
        let _ = read_error(&mut io).await;
        assert_eq!(activity.cutoff(), Some(Cutoff::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_begun_before_the_connection_was_handed_over_keeps_its_start() {
        let (server, mut client) = tokio::io::duplex(1024);
        let activity = activity();
        let begun = Instant::now();
        tokio::time::advance(Duration::from_secs(2)).await;
        let mut io = TimedIo::http1(server, Arc::clone(&activity), CLOCKS).head_begun_at(begun);
        client.write_all(b"OST / HT").await.expect("write");
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client header timeout");
        assert_eq!(begun.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_still_being_written_keeps_the_connection_from_idling() {
        let (mut io, mut client, activity) = timed();
        // The request ends as soon as its last bytes are queued, while they wait on the client.
        let request = activity.begin();
        let writing = tokio::spawn(async move {
            let chunk = [7u8; 512];
            for _ in 0..8 {
                io.write_all(&chunk).await?;
            }
            Ok::<_, io::Error>(io)
        });
        tokio::task::yield_now().await;
        drop(request);
        // The client takes 512 bytes every 20 s: never past the send timeout (30 s), but past
        // the idle timeout (60 s) long before the 4 KiB are written.
        let mut taken = [0u8; 512];
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            client.read_exact(&mut taken).await.expect("read");
        }
        let mut io = writing
            .await
            .expect("task")
            .expect("written whole, however long it took");
        let written = Instant::now();
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client idle timeout");
        assert_eq!(
            written.elapsed(),
            Duration::from_secs(60),
            "idle from the last bytes taken"
        );
    }
}
