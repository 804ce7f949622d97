//! A request being answered: whether its client had to wait for the answer, and what that means
//! for the connection's record of abandoned requests (the `abandon` module) when the answer comes
//! or the request is dropped first. A request dropped before its answer ends here (closed by its
//! client, or cut off); one answered ends with its response body (`TrackedBody`).

use std::future::Future;

use super::request_end::RequestEnd;
use super::timeouts::RequestGuard;

/// A request being answered, until its answer is ready (the server's request wrapper).
pub(super) struct Answering {
    /// Given back with the answer; still here if the request is dropped first.
    guard: Option<RequestGuard>,
    /// Whether the answer was not ready when first asked for: the client waited.
    waited: bool,
}

impl Answering {
    /// `guard`'s request, being answered.
    pub(super) fn new(guard: RequestGuard) -> Self {
        Self {
            guard: Some(guard),
            waited: false,
        }
    }

    /// Waits for `answer`; gives it back with the request's guard. Dropped before it is ready,
    /// after the client had to wait, the request counts as abandoned.
    pub(super) async fn wait<T>(mut self, answer: impl Future<Output = T>) -> (T, RequestGuard) {
        let mut answer = std::pin::pin!(answer);
        let output = std::future::poll_fn(|cx| {
            let polled = answer.as_mut().poll(cx);
            self.waited |= polled.is_pending();
            polled
        })
        .await;
        let guard = self.guard.take().expect("the guard is taken only here");
        if self.waited {
            guard.activity().abandonment().answered();
        }
        (output, guard)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let Some(guard) = &self.guard else { return };
        let activity = guard.activity();
        // Decided before this request counts as abandoned: it may be the one that closes the
        // connection, and it was the client's doing.
        let end = activity.unanswered_end();
        activity.record_end(end);
        // A request dropped because sidecache cut the connection off is not the client's doing.
        if self.waited && end == RequestEnd::ClientClosed {
            activity.abandonment().abandoned();
        }
    }
}
