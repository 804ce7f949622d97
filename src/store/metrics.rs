//! What the store counts: removals by cause, from its eviction listener.

use super::Removal;

/// `sidecache_evictions_total{cause}`: removals counted in the store's eviction listener.
#[derive(Clone)]
pub struct StoreMetrics {
    /// Indexed by [`Removal`].
    evictions: Vec<prometheus::IntCounter>,
}

// === impl StoreMetrics ===

impl StoreMetrics {
    /// Registers the store's removal counters in `registry`.
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register(registry: &crate::metrics::Registry) -> crate::metrics::Result<Self> {
        let causes: Vec<_> = Removal::ALL.iter().map(|c| c.as_str()).collect();
        Ok(Self {
            evictions: crate::metrics::counters(
                registry,
                "sidecache_evictions_total",
                "Entries that left the cache, by cause (size: capacity pressure; expired: past retention; explicit: purged or invalidated; replaced: overwritten).",
                "cause",
                &causes,
            )?,
        })
    }

    /// One entry left the store.
    pub fn record(&self, removal: Removal) {
        self.evictions[removal as usize].inc();
    }
}
