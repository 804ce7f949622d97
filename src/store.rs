//! The in-memory store: a moka cache bounded in bytes, each entry expiring on its own schedule.
//!
//! The store only keeps values; it does not decide what is fresh (that is the policy's job) and
//! it does not load anything (that is [`crate::cache::loading`]'s). Removals are counted by cause
//! in the eviction listener, so the numbers come from moka itself rather than from guesses.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

/// What the store needs to know about a value to bound and expire it.
pub trait Weighed {
    /// Bytes this value holds (body, headers and bookkeeping), for the byte bound.
    fn weight_bytes(&self) -> u32;
    /// How long from now the value is worth keeping. Zero means "do not keep".
    fn retain_for(&self) -> Duration;
}

/// Why entries left the store, counted exactly.
#[derive(Debug, Default)]
pub struct RemovalCounts {
    size: AtomicU64,
    expired: AtomicU64,
    explicit: AtomicU64,
    replaced: AtomicU64,
}

/// A snapshot of [`RemovalCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removals {
    /// Evicted to stay within the byte capacity.
    pub size: u64,
    /// Past their retention time.
    pub expired: u64,
    /// Removed by a purge or an invalidation.
    pub explicit: u64,
    /// Overwritten by a newer value for the same key.
    pub replaced: u64,
}

/// A byte-bounded, per-entry-expiring store.
///
/// Cloning is cheap and clones share the same entries.
#[derive(Clone)]
pub struct MemoryStore<K, V> {
    entries: Cache<K, V>,
    removals: Arc<RemovalCounts>,
    capacity_bytes: u64,
}

/// Expires each entry after its own retention time, renewed when the entry is replaced.
struct RetainExpiry;

impl<K, V: Weighed> Expiry<K, V> for RetainExpiry {
    fn expire_after_create(&self, _key: &K, value: &V, _created_at: Instant) -> Option<Duration> {
        Some(value.retain_for())
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &V,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.retain_for())
    }
}

// === impl MemoryStore ===

impl<K, V> MemoryStore<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Weighed + Clone + Send + Sync + 'static,
{
    /// A store holding at most `capacity_bytes` of values (as weighed by [`Weighed`]).
    pub fn new(capacity_bytes: u64) -> Self {
        let removals = Arc::new(RemovalCounts::default());
        let counts = Arc::clone(&removals);
        let entries = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_key, value: &V| value.weight_bytes())
            .expire_after(RetainExpiry)
            .eviction_listener(move |_key, _value, cause| counts.record(cause))
            .build();
        Self {
            entries,
            removals,
            capacity_bytes,
        }
    }

    /// The value under `key`, if present and not expired.
    pub async fn get(&self, key: &K) -> Option<V> {
        self.entries.get(key).await
    }

    /// Stores `value` under `key`, replacing what was there. A value with nothing worth keeping
    /// ([`Weighed::retain_for`] is zero) is not stored.
    pub async fn insert(&self, key: K, value: V) {
        if value.retain_for().is_zero() {
            return;
        }
        self.entries.insert(key, value).await;
    }

    /// Removes `key`; returns whether an entry was there.
    pub async fn remove(&self, key: &K) -> bool {
        self.entries.remove(key).await.is_some()
    }

    /// Removes every entry whose key matches; returns how many went.
    ///
    /// Walks the whole store: meant for administrative purges, not for the request path.
    pub async fn remove_matching(&self, mut matches: impl FnMut(&K) -> bool) -> usize {
        let doomed: Vec<Arc<K>> = self
            .entries
            .iter()
            .filter_map(|(key, _)| matches(&key).then_some(key))
            .collect();
        let mut removed = 0;
        for key in doomed {
            if self.entries.remove(&*key).await.is_some() {
                removed += 1;
            }
        }
        removed
    }

    /// Applies pending evictions and expirations, so that the counts below are exact.
    pub async fn settle(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// Entries held (exact after [`settle`](Self::settle)).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Bytes held, as weighed (exact after [`settle`](Self::settle)).
    pub fn size_bytes(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// The byte bound.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }

    /// Removals so far, by cause.
    pub fn removals(&self) -> Removals {
        self.removals.snapshot()
    }
}

// === impl RemovalCounts ===

impl RemovalCounts {
    fn record(&self, cause: RemovalCause) {
        let counter = match cause {
            RemovalCause::Size => &self.size,
            RemovalCause::Expired => &self.expired,
            RemovalCause::Explicit => &self.explicit,
            RemovalCause::Replaced => &self.replaced,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Removals {
        Removals {
            size: self.size.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            explicit: self.explicit.load(Ordering::Relaxed),
            replaced: self.replaced.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Blob {
        bytes: u32,
        keep: Duration,
    }

    impl Weighed for Blob {
        fn weight_bytes(&self) -> u32 {
            self.bytes
        }
        fn retain_for(&self) -> Duration {
            self.keep
        }
    }

    fn blob(bytes: u32) -> Blob {
        Blob {
            bytes,
            keep: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn stays_within_its_byte_capacity_and_counts_size_evictions() {
        let store = MemoryStore::new(10_000);
        for key in 0..100u32 {
            store.insert(key, blob(1_000)).await;
        }
        store.settle().await;
        assert!(store.size_bytes() <= 10_000, "{}", store.size_bytes());
        assert_eq!(store.size_bytes(), store.entry_count() * 1_000);
        let removals = store.removals();
        // moka may refuse an admission without storing it; a refused candidate is also an
        // eviction "by size", so inserts = held + size evictions.
        assert_eq!(store.entry_count() + removals.size, 100);
    }

    #[tokio::test]
    async fn values_with_nothing_to_keep_are_not_stored() {
        let store = MemoryStore::new(10_000);
        store
            .insert(
                1u32,
                Blob {
                    bytes: 10,
                    keep: Duration::ZERO,
                },
            )
            .await;
        assert!(store.get(&1).await.is_none());
    }

    #[tokio::test]
    async fn remove_matching_counts_what_it_removed() {
        let store = MemoryStore::new(1_000_000);
        for key in 0..20u32 {
            store.insert(key, blob(10)).await;
        }
        assert_eq!(store.remove_matching(|key| key % 2 == 0).await, 10);
        assert!(store.get(&2).await.is_none());
        assert!(store.get(&3).await.is_some());
        assert!(store.remove(&3).await);
        assert!(!store.remove(&3).await);
        store.settle().await;
        assert_eq!(store.removals().explicit, 11);
        assert_eq!(store.entry_count(), 9);
    }
}
