//! Each client connection's share of the origin: how many of its requests may be at the origin
//! at once (`--max-origin-requests-per-connection`).
//!
//! One HTTP/2 connection carries many requests at once, and each that misses the cache or passes
//! through it holds an origin connection for as long as its answer streams; without a share, one
//! client could take them all. Work that goes to the origin runs in a turn
//! ([`Client::in_turn`](super::Client::in_turn)), waiting for one while the share is taken (a
//! browser's cold page is many misses at once, and is served in turns rather than refused); the
//! [`OriginPermit`] rides back in the response's extensions, and the server keeps it with a body
//! streamed from the origin until the body is sent.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One client connection's share of the origin.
#[derive(Debug, Clone)]
pub(super) struct OriginBudget(Arc<Semaphore>);

/// A turn at the origin, given back when the last clone is dropped.
///
/// Cloneable only so that it can ride in a response's extensions (which require it); nothing
/// clones it otherwise.
#[derive(Debug, Clone)]
pub(super) struct OriginPermit {
    _turn: Arc<OwnedSemaphorePermit>,
}

impl OriginBudget {
    /// A share of `requests` at once.
    pub(super) fn new(requests: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            requests.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// Takes a turn at the origin, waiting for one (first come, first served) while the share
    /// is taken.
    ///
    /// # Cancel safety
    ///
    /// A request dropped while it waits loses its place and takes nothing.
    pub(super) async fn take(&self) -> OriginPermit {
        let permit = Arc::clone(&self.0)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        OriginPermit {
            _turn: Arc::new(permit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_beyond_the_share_wait_for_one_to_be_given_back() {
        let budget = OriginBudget::new(2);
        let first = budget.take().await;
        let _second = budget.take().await;
        let third = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take().await }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        let carried = first.clone();
        drop(first);
        tokio::task::yield_now().await;
        assert!(!third.is_finished(), "a clone still holds the turn");
        drop(carried);
        let _third = tokio::time::timeout(std::time::Duration::from_secs(10), third)
            .await
            .expect("a turn once one was given back")
            .expect("task");
    }
}
