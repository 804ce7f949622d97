//! Readiness: a latch that opens once startup is complete and closes for good when draining
//! starts, as `/readyz` reports it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether the process should receive traffic. Cloned handles share the latch.
///
/// It starts closed ([`Phase::Starting`]), so nothing reports ready before the app has bound
/// its listeners and read the write-behind recovery file; [`open`](Self::open) opens it once
/// startup is complete, and [`set_draining`](Self::set_draining) closes it for good, as the
/// first step of a drain. Unlike linkerd2-proxy's latch, from which it is drawn, it closes again.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicU8>);

/// Where the process is in its life, as readiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Startup is not complete: not ready yet.
    Starting = 0,
    /// Serving: ready.
    Ready = 1,
    /// Draining: not ready, and never again.
    Draining = 2,
}

// === impl Readiness ===

impl Readiness {
    /// A closed latch: not ready until [`open`](Self::open).
    pub fn new() -> Self {
        Self(Arc::new(AtomicU8::new(Phase::Starting as u8)))
    }

    /// Reports ready from now on, unless draining has already started (a shutdown that arrived
    /// during startup is not undone).
    pub fn open(&self) {
        let _ = self.0.compare_exchange(
            Phase::Starting as u8,
            Phase::Ready as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Reports not-ready from now on (the first step of a drain).
    pub fn set_draining(&self) {
        self.0.store(Phase::Draining as u8, Ordering::SeqCst);
    }

    /// Where the process is.
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.phase() == Phase::Ready
    }
}

impl Default for Readiness {
    /// A closed latch, as [`Readiness::new`].
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latch_opens_once_and_closes_for_good() {
        let readiness = Readiness::new();
        let shared = readiness.clone();
        assert_eq!(shared.phase(), Phase::Starting);
        assert!(!shared.is_ready(), "not ready before startup completes");
        readiness.open();
        assert_eq!(shared.phase(), Phase::Ready);
        assert!(shared.is_ready());
        readiness.set_draining();
        assert_eq!(shared.phase(), Phase::Draining);
        readiness.open();
        assert!(!shared.is_ready(), "a drain is never undone");
    }

    #[test]
    fn a_drain_during_startup_is_not_undone_when_startup_completes() {
        let readiness = Readiness::default();
        readiness.set_draining();
        readiness.open();
        assert_eq!(readiness.phase(), Phase::Draining);
    }
}
