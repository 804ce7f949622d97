//! Why sidecache cut a client connection off: the label of
//! `sidecache_client_connections_closed_total`, and the error a timed-out read or write ends with.

use std::sync::atomic::{AtomicU8, Ordering};

/// Why sidecache closed a client connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub(super) enum Cutoff {
    /// No request under way for `--client-idle-timeout`.
    #[error("client idle timeout")]
    Idle,
    /// A request head (HTTP/2: a header block) not complete within `--client-header-timeout`.
    #[error("client header timeout")]
    Header,
    /// The client took none of what was written to it for `--client-send-timeout`.
    #[error("client send timeout")]
    Send,
    /// The client abandoned more requests than `--max-abandoned-requests` allows.
    #[error("client abandoned too many requests")]
    AbandonedRequests,
}

impl Cutoff {
    /// Every reason, in declaration order (the metric's series).
    pub(super) const ALL: [Cutoff; 4] = [
        Self::Idle,
        Self::Header,
        Self::Send,
        Self::AbandonedRequests,
    ];

    /// The label value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle_timeout",
            Self::Header => "header_timeout",
            Self::Send => "send_timeout",
            Self::AbandonedRequests => "abandoned_requests",
        }
    }
}

/// The first cutoff of one connection, written where it happens (its IO, its service) and read
/// by the task that serves the connection once it has ended.
#[derive(Debug)]
pub(super) struct CutoffCell(AtomicU8);

/// What the cell holds before any cutoff.
const NONE: u8 = u8::MAX;

impl CutoffCell {
    /// An empty cell.
    pub(super) fn new() -> Self {
        Self(AtomicU8::new(NONE))
    }

    /// Records `cutoff` unless one was recorded before: the first is what ended the connection.
    pub(super) fn record(&self, cutoff: Cutoff) {
        let _ = self
            .0
            .compare_exchange(NONE, cutoff as u8, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The cutoff recorded, if any.
    pub(super) fn get(&self) -> Option<Cutoff> {
        let value = self.0.load(Ordering::SeqCst);
        Cutoff::ALL
            .into_iter()
            .find(|cutoff| *cutoff as u8 == value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cutoff_recorded_stays() {
        let cell = CutoffCell::new();
        assert_eq!(cell.get(), None);
        cell.record(Cutoff::Send);
        cell.record(Cutoff::Idle);
        assert_eq!(cell.get(), Some(Cutoff::Send));
    }
}
