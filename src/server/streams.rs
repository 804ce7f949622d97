//! The send timeout of HTTP/2 streams.
//!
//! An HTTP/2 client can take nothing of an answer while it goes on reading its connection: it
//! keeps the stream's flow-control window shut. hyper then holds the body's latest frame until
//! the window opens and does not ask the body for more, so no read or write of the connection
//! shows the stall, and the body (with the origin connection behind a streamed one) would be held
//! for as long as the connection lives.
//!
//! hyper runs each stream in a task of its own, spawned through the connection's executor:
//! [`StreamExecutor`] spawns it under a [`SendClock`], which resets the stream (drops its task,
//! on which h2 sends `RST_STREAM(CANCEL)` and hyper drops the body) once the body has handed hyper
//! a frame and not been asked for the next one for the send timeout.
//!
//! The body tells the clock what it did through a task-local value set for each poll of the
//! stream's task ([`report_frame`]), so learning it allocates and shares nothing per stream; no
//! timer exists until a stream first waits on its window.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::time::{Instant, Sleep};

tokio::task_local! {
    /// What the response body of the stream being polled did in this poll: `None` if it was not
    /// asked for a frame, else whether it left hyper holding a data frame to send.
    static BODY: Cell<Option<bool>>;
}

/// Whether the current task is an HTTP/2 stream under a send clock (a response body asks once,
/// when it is made).
pub(super) fn is_watched() -> bool {
    BODY.try_with(|_| ()).is_ok()
}

/// Tells the stream's clock that the body was asked for a frame, and whether the answer left
/// hyper `holding` data to send (which needs the client's window).
pub(super) fn report_frame(holding: bool) {
    let _ = BODY.try_with(|report| report.set(Some(holding)));
}

/// The executor of one listener's HTTP/2 streams: each runs under a [`SendClock`].
#[derive(Clone)]
pub(super) struct StreamExecutor {
    send_timeout: Duration,
    /// `sidecache_client_streams_reset_total{reason="send_timeout"}`.
    resets: IntCounter,
}

/// A stream's send clock: it runs while hyper holds a frame of the body that the client's
/// window does not let through, and restarts whenever the body is asked for another frame.
struct SendClock {
    timeout: Duration,
    /// Whether hyper holds a frame of the body, as of the body's latest report.
    holding: bool,
    /// Since when hyper has held the frame it holds.
    since: Option<Instant>,
    /// Made the first time the stream waits on its window.
    timer: Option<Pin<Box<Sleep>>>,
}

// === impl StreamExecutor ===

impl StreamExecutor {
    /// Streams reset after `send_timeout` without progress, counted in `resets`.
    pub(super) fn new(send_timeout: Duration, resets: IntCounter) -> Self {
        Self {
            send_timeout,
            resets,
        }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        let mut clock = SendClock::new(self.send_timeout);
        let resets = self.resets.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let expired = std::future::poll_fn(|cx| clock.poll(stream.as_mut(), cx)).await;
            if expired {
                resets.inc();
            }
            // The stream's task is dropped here: an expired stream is reset.
        });
    }
}

// === impl SendClock ===

impl SendClock {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            holding: false,
            since: None,
            timer: None,
        }
    }

    /// Polls the stream's task: `Ready(false)` once it has ended, `Ready(true)` once the client
    /// has taken nothing for the timeout and the stream is to be reset.
    fn poll<F: Future<Output = ()>>(
        &mut self,
        stream: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        let (ended, report) = BODY.sync_scope(Cell::new(None), || {
            let ended = stream.poll(cx).is_ready();
            (ended, BODY.with(Cell::get))
        });
        if ended {
            return Poll::Ready(false);
        }
        if let Some(holding) = report {
            // The body was asked for a frame: what hyper held before went out.
            self.holding = holding;
            self.since = None;
        }
        if !self.holding {
            // Waiting on the origin (or on nothing the client controls): no clock.
            return Poll::Pending;
        }
        let deadline = *self.since.get_or_insert_with(Instant::now) + self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream's task whose body reports `holding` on every poll, or is never asked for a frame
    /// (`None`); it never ends by itself.
    fn stream(holding: Option<bool>) -> impl Future<Output = ()> {
        std::future::poll_fn(move |_| {
            if let Some(holding) = holding {
                report_frame(holding);
            }
            Poll::<()>::Pending
        })
    }

    /// Runs `stream` under a 30 s send clock for at most `bound`: whether it was reset, and when.
    async fn run(stream: impl Future<Output = ()>, bound: Duration) -> Option<Duration> {
        let mut clock = SendClock::new(Duration::from_secs(30));
        let mut stream = std::pin::pin!(stream);
        let started = Instant::now();
        let run = std::future::poll_fn(|cx| clock.poll(stream.as_mut(), cx));
        match tokio::time::timeout(bound, run).await {
            Ok(true) => Some(started.elapsed()),
            Ok(false) => panic!("the stream ended"),
            Err(_) => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_held_for_the_send_timeout_resets_the_stream() {
        let first_poll = Cell::new(true);
        let stuck = std::future::poll_fn(move |_| {
            // Asked once, then never again: the frame it handed waits on the window.
            if first_poll.replace(false) {
                report_frame(true);
            }
            Poll::<()>::Pending
        });
        assert_eq!(
            run(stuck, Duration::from_secs(600)).await,
            Some(Duration::from_secs(30))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_waiting_on_the_origin_runs_no_clock() {
        assert_eq!(
            run(stream(Some(false)), Duration::from_secs(600)).await,
            None
        );
        assert_eq!(run(stream(None), Duration::from_secs(600)).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn each_frame_taken_restarts_the_clock() {
        // Every poll asks the body for a frame again: the client takes what it is given, however
        // slowly the polls come (a ticking timer wakes the task every 20 s).
        let mut tick = tokio::time::interval(Duration::from_secs(20));
        let taking = std::future::poll_fn(move |cx| {
            while tick.poll_tick(cx).is_ready() {}
            report_frame(true);
            Poll::<()>::Pending
        });
        assert_eq!(run(taking, Duration::from_secs(600)).await, None);
    }

    #[tokio::test]
    async fn bodies_outside_a_stream_task_are_not_watched() {
        assert!(!is_watched());
        report_frame(true);
        let watched = BODY.sync_scope(Cell::new(None), is_watched);
        assert!(watched);
    }
}
