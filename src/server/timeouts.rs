//! Client connection timeouts: a connection with no request under way is closed after the idle
//! timeout, and (HTTP/1.1) a request head must be complete within the header timeout of its first
//! byte, so a client that drips its head (slowloris) is cut off.
//!
//! hyper's own `header_read_timeout` counts from when a connection starts waiting for a head, so
//! on a keep-alive connection it bounds the idle time and the head together, and it does not run
//! during protocol detection. These two clocks are kept apart instead: [`Activity`] tells when a
//! connection is idle (no request being answered), and [`TimedIo`] runs the clock that applies
//! while its reads wait, failing the read (which ends the connection) when it runs out.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Whether a connection is answering requests, shared by its service (which counts requests in
/// and out) and its [`TimedIo`] (which times the idle periods between them).
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Requests being answered (HTTP/2: streams open), from the call of the service to the end
    /// of the response body.
    active: AtomicUsize,
    /// How many times the connection became idle, so the reader knows a new idle period began.
    idle_periods: AtomicU64,
    /// The connection task's waker, woken when the connection becomes idle so its reader starts
    /// the idle clock. A std mutex: held only to swap the waker, never across an `.await`.
    reader: Mutex<Option<Waker>>,
}

/// One request being answered; the connection is idle again once every guard is dropped.
#[derive(Debug)]
pub(super) struct RequestGuard(Arc<Activity>);

/// The clock a waiting read runs, and the idle period it was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    /// A request is under way: no clock.
    Stopped,
    /// Idle, no byte of a new request yet: the idle timeout.
    Idle(u64),
    /// Idle, and a new request head has begun: the header timeout.
    Head(u64),
}

/// A client connection's stream with the idle and header timeouts applied to its reads.
pub(super) struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    idle_timeout: Duration,
    /// `None` for HTTP/2, whose clients send frames (pings, settings) while idle.
    header_timeout: Option<Duration>,
    clock: Clock,
    deadline: Pin<Box<Sleep>>,
}

// === impl Activity ===

impl Activity {
    /// Counts a request in until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        RequestGuard(Arc::clone(self))
    }

    fn is_idle(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0
    }

    fn idle_period(&self) -> u64 {
        self.idle_periods.load(Ordering::SeqCst)
    }

    fn lock_reader(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        // Only a waker is kept under the lock; a panic elsewhere cannot leave it inconsistent.
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle_periods.fetch_add(1, Ordering::SeqCst);
            if let Some(reader) = self.0.lock_reader().take() {
                reader.wake();
            }
        }
    }
}

// === impl TimedIo ===

impl<T> TimedIo<T> {
    /// `inner` with the idle timeout, and the header timeout when given (HTTP/1.1).
    pub(super) fn new(
        inner: T,
        activity: Arc<Activity>,
        idle_timeout: Duration,
        header_timeout: Option<Duration>,
    ) -> Self {
        Self {
            inner,
            activity,
            idle_timeout,
            header_timeout,
            clock: Clock::Stopped,
            deadline: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    fn start(&mut self, clock: Clock, timeout: Duration) {
        self.clock = clock;
        self.deadline.as_mut().reset(Instant::now() + timeout);
    }

    /// After bytes arrived: the first bytes of a new request on an idle connection start the
    /// header clock.
    fn on_bytes(&mut self) {
        let Some(header_timeout) = self.header_timeout else {
            return;
        };
        if !self.activity.is_idle() {
            return;
        }
        let period = self.activity.idle_period();
        if self.clock != Clock::Head(period) {
            self.start(Clock::Head(period), header_timeout);
        }
    }

    /// While a read waits: runs the clock that applies, and fails the read when it runs out.
    fn on_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.activity.is_idle() {
            // Registered before checking again, so a request that ends in between still wakes us.
            *self.activity.lock_reader() = Some(cx.waker().clone());
            if !self.activity.is_idle() {
                self.clock = Clock::Stopped;
                return Poll::Pending;
            }
        }
        let period = self.activity.idle_period();
        if !matches!(self.clock, Clock::Idle(p) | Clock::Head(p) if p == period) {
            self.start(Clock::Idle(period), self.idle_timeout);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let what = match self.clock {
                    Clock::Head(_) => "client header timeout",
                    _ => "client idle timeout",
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
        }
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
            Poll::Pending => this.on_pending(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
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
    async fn without_a_header_timeout_bytes_do_not_start_one() {
        let (mut io, mut client, _activity) = timed(None);
        client.write_all(b"ping").await.expect("write");
        let started = Instant::now();
        let (_, text) = read_error(&mut io).await;
        assert_eq!(text, "client idle timeout");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
