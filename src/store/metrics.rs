//! What the store counts, from its own reports: the values handed to it, stored or refused, and
//! the stored entries that left it, by cause.

use super::{Removal, StoreEvent};

/// `sidecache_stores_total{outcome}` and `sidecache_evictions_total{cause}`.
#[derive(Clone)]
pub struct StoreMetrics {
    /// `stored`, then `refused`.
    stores: Vec<prometheus::IntCounter>,
    /// Indexed by [`Removal`].
    evictions: Vec<prometheus::IntCounter>,
}

// === impl StoreMetrics ===

impl StoreMetrics {
    /// Registers the store's counters in `registry`.
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register(registry: &crate::metrics::Registry) -> crate::metrics::Result<Self> {
        let causes: Vec<_> = Removal::ALL.iter().map(|c| c.as_str()).collect();
        Ok(Self {
            stores: crate::metrics::counters(
                registry,
                "sidecache_stores_total",
                "Responses handed to the cache to keep, by outcome (stored; refused: its admission policy judged them less likely to be asked for again than what they would push out).",
                "outcome",
                &["stored", "refused"],
            )?,
            evictions: crate::metrics::counters(
                registry,
                "sidecache_evictions_total",
                "Stored entries that left the cache, by cause (size: pushed out for capacity; expired: past retention; explicit: purged or invalidated; replaced: overwritten).",
                "cause",
                &causes,
            )?,
        })
    }

    /// What the store reported.
    pub fn record(&self, event: StoreEvent) {
        match event {
            StoreEvent::Stored => self.stores[0].inc(),
            StoreEvent::Refused => self.stores[1].inc(),
            StoreEvent::Removed(removal) => self.evictions[removal as usize].inc(),
        }
    }
}
