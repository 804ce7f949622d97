//! The store sidecache runs: a moka cache bounded in bytes, each entry expiring on its own
//! schedule.
//!
//! Removals are counted by cause in the eviction listener, so the numbers come from moka itself
//! rather than from guesses. moka reports an entry its admission policy refused as removed "for
//! size", like one it evicted; the store tells them apart by deciding each insert's admission
//! at once, one insert at a time, with the inserted key marked as the candidate (see
//! [`Admission`]). Lookups and inserts run in `cache lookup` / `cache store` debug
//! spans: the store is the L1 edge of a request's trace.
//!
//! It is moka's synchronous cache: every operation is in memory and short (moka runs its
//! housekeeping on the calling thread, a bounded batch at a time), so a lookup needs no future
//! of its own, and a hit can be answered without the request ever waiting.

use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::{Listing, Removal, Store, StoreEvent, WALK_SLICE, Weighed, WeighedKey};
use crate::spans;

/// A byte-bounded, per-entry-expiring store.
///
/// Cloning is cheap and clones share the same entries.
#[derive(Clone)]
pub struct MemoryStore<K, V> {
    entries: Cache<K, V>,
    capacity_bytes: u64,
    admission: Arc<Admission<K>>,
    on_event: Arc<dyn Fn(StoreEvent) + Send + Sync>,
}

/// The insert whose admission is being decided.
///
/// An insert holds `turn` while moka applies it ([`Cache::run_pending_tasks`]), with its key as
/// `candidate`: a removal "for size" of that key in the meantime is its refusal (an admitted
/// entry of the same key would have made the insert an update, which is never refused), any
/// other is an eviction.
struct Admission<K> {
    turn: Mutex<()>,
    /// The candidate's key, and whether it was refused.
    candidate: Mutex<Option<(K, bool)>>,
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
    K: Hash + Eq + WeighedKey + Send + Sync + 'static,
    V: Weighed + Clone + Send + Sync + 'static,
{
    /// A store holding at most `capacity_bytes` of keys and values (as weighed by
    /// [`WeighedKey`] and [`Weighed`]).
    /// `on_event` is called once for every value handed to it (stored or refused) and once for
    /// every stored entry that leaves it, with the reason.
    pub fn new(capacity_bytes: u64, on_event: impl Fn(StoreEvent) + Send + Sync + 'static) -> Self {
        let on_event: Arc<dyn Fn(StoreEvent) + Send + Sync> = Arc::new(on_event);
        let admission: Arc<Admission<K>> = Arc::new(Admission {
            turn: Mutex::new(()),
            candidate: Mutex::new(None),
        });
        let entries = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|key: &K, value: &V| key.weight_bytes().saturating_add(value.weight_bytes()))
            .expire_after(RetainExpiry)
            .eviction_listener({
                let (admission, on_event) = (Arc::clone(&admission), Arc::clone(&on_event));
                move |key: Arc<K>, _value, cause| {
                    let refusal = cause == RemovalCause::Size && admission.refuses(key.as_ref());
                    if !refusal {
                        on_event(StoreEvent::Removed(Removal::from(cause)));
                    }
                }
            })
            .build();
        Self {
            entries,
            capacity_bytes,
            admission,
            on_event,
        }
    }
}

impl<K, V> MemoryStore<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Every entry, handed over a slice of [`WALK_SLICE`] at a time.
    ///
    /// The entries are listed by a blocking-pool task and handed over through a channel of one
    /// slice: moka's iterator cannot be held across an `.await` (it is not `Send`), and listing
    /// in slices keeps what is in memory bounded. Its readers yield to the runtime after each
    /// slice, so on a current-thread runtime (one CPU) the requests it serves are not held up
    /// for the whole walk. The task ends when the walk is done or the receiver is dropped.
    fn walk(&self) -> tokio::sync::mpsc::Receiver<Vec<(Arc<K>, V)>> {
        let (slices, walked) = tokio::sync::mpsc::channel(1);
        let entries = self.entries.clone();
        drop(tokio::task::spawn_blocking(move || {
            let mut slice = Vec::with_capacity(WALK_SLICE);
            for entry in entries.iter() {
                slice.push(entry);
                if slice.len() == WALK_SLICE {
                    let full = std::mem::replace(&mut slice, Vec::with_capacity(WALK_SLICE));
                    if slices.blocking_send(full).is_err() {
                        return;
                    }
                }
            }
            if !slice.is_empty() {
                let _ = slices.blocking_send(slice);
            }
        }));
        walked
    }
}

impl<K, V> MemoryStore<K, V> {
    /// Makes `candidate` the insert being admitted, returning the one before.
    fn set_candidate(&self, candidate: Option<(K, bool)>) -> Option<(K, bool)> {
        let mut current = self
            .admission
            .candidate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, candidate)
    }
}

impl<K: Eq> Admission<K> {
    /// Whether `key` is the candidate, which is then marked refused.
    fn refuses(&self, key: &K) -> bool {
        let mut candidate = self
            .candidate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match candidate.as_mut() {
            Some((candidate, refused)) if candidate == key => {
                *refused = true;
                true
            }
            _ => false,
        }
    }
}

impl<K, V> Store for MemoryStore<K, V>
where
    K: Hash + Eq + Clone + WeighedKey + Send + Sync + 'static,
    V: Weighed + Clone + Send + Sync + 'static,
{
    type Key = K;
    type Value = V;

    /// The value under `key`, if present and not expired.
    fn get(&self, key: &K) -> Option<V> {
        // A span only inside a traced request: the lookup is on every request's path.
        let _span = spans::in_span().then(|| tracing::debug_span!("cache lookup").entered());
        self.entries.get(key)
    }

    /// Stores `value` under `key`, replacing what was there. A value with nothing worth keeping
    /// ([`Weighed::retain_for`] is zero) is not stored.
    ///
    /// Its admission is decided before this returns: moka applies the insert (with whatever else
    /// is pending) on this thread, one insert at a time. Inserts come from origin loads, so this
    /// costs misses a little and hits nothing.
    fn insert(&self, key: K, value: V) {
        if value.retain_for().is_zero() {
            return;
        }
        let _span = spans::in_span().then(|| tracing::debug_span!("cache store").entered());
        let _turn = self
            .admission
            .turn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.set_candidate(Some((key.clone(), false)));
        self.entries.insert(key, value);
        self.entries.run_pending_tasks();
        let refused = self.set_candidate(None).is_some_and(|(_, refused)| refused);
        (self.on_event)(if refused {
            StoreEvent::Refused
        } else {
            StoreEvent::Stored
        });
    }

    /// Removes `key`; returns whether an entry was there.
    fn remove(&self, key: &K) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Removes every entry whose key matches; returns how many went.
    ///
    /// Walks the whole store (`MemoryStore::walk`), so it is meant for administrative
    /// purges, not for the request path. Entries inserted while the walk goes on may or may not
    /// be visited. Matching and removing happen here, between yields.
    async fn remove_matching(&self, mut matches: impl FnMut(&K) -> bool + Send) -> usize {
        let mut walked = self.walk();
        let mut removed = 0;
        while let Some(slice) = walked.recv().await {
            removed += slice
                .iter()
                .filter(|(key, _)| matches(key) && self.entries.remove(&**key).is_some())
                .count();
            tokio::task::yield_now().await;
        }
        removed
    }

    /// Up to `limit` entries whose key matches, and whether more were left.
    ///
    /// Walks the store (`MemoryStore::walk`) until the limit is passed: a listing that
    /// finds few matches visits every entry, on a blocking-pool thread, without holding up a
    /// lookup. Reading an entry this way is not a use of it for moka's policy.
    async fn list_matching(
        &self,
        mut matches: impl FnMut(&K) -> bool + Send,
        limit: usize,
    ) -> Listing<K, V> {
        let mut walked = self.walk();
        let mut listing = Listing::new(limit);
        while let Some(slice) = walked.recv().await {
            for (key, value) in slice {
                if matches(&key) && !listing.add(limit, K::clone(&key), value) {
                    // Dropping the receiver ends the walk.
                    return listing;
                }
            }
            tokio::task::yield_now().await;
        }
        listing
    }

    /// Applies pending evictions and expirations, so that the counts below are exact.
    fn settle(&self) {
        self.entries.run_pending_tasks();
    }

    /// Entries held (exact after [`settle`](Self::settle)).
    fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Bytes held, as weighed (exact after [`settle`](Self::settle)).
    fn size_bytes(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// The byte bound.
    fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
}

impl From<RemovalCause> for Removal {
    fn from(cause: RemovalCause) -> Self {
        match cause {
            RemovalCause::Size => Self::Size,
            RemovalCause::Expired => Self::Expired,
            RemovalCause::Explicit => Self::Explicit,
            RemovalCause::Replaced => Self::Replaced,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records what the store reports, as the metrics would.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<StoreEvent>>>);

    impl Events {
        fn listener(&self) -> impl Fn(StoreEvent) + Send + Sync + 'static {
            let seen = Arc::clone(&self.0);
            move |event| seen.lock().expect("events").push(event)
        }

        fn count(&self, event: StoreEvent) -> u64 {
            let seen = self.0.lock().expect("events");
            seen.iter().filter(|e| **e == event).count() as u64
        }
    }

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

    #[test]
    fn a_key_is_weighed_with_its_value() {
        let store = MemoryStore::new(10_000, |_| {});
        store.insert("k".repeat(3_000), blob(100));
        store.insert("short".to_owned(), blob(100));
        store.settle();
        assert_eq!(store.size_bytes(), 3_000 + 100 + 5 + 100);
    }

    #[test]
    fn stays_within_its_byte_capacity_and_counts_every_insert_stored_or_refused() {
        let events = Events::default();
        let store = MemoryStore::new(10_000, events.listener());
        for key in 0..100u32 {
            store.insert(key, blob(1_000));
        }
        store.settle();
        assert!(store.size_bytes() <= 10_000, "{}", store.size_bytes());
        assert_eq!(store.size_bytes(), store.entry_count() * 1_000);
        let (stored, refused) = (
            events.count(StoreEvent::Stored),
            events.count(StoreEvent::Refused),
        );
        assert_eq!(stored + refused, 100);
        // Keys asked for once each: once the store is full, none is worth more than what it
        // would push out, so the admission policy refuses them rather than evicting.
        assert!(refused > 0, "{refused} refused");
        let evicted = events.count(StoreEvent::Removed(Removal::Size));
        assert_eq!(store.entry_count() + evicted, stored);
    }

    #[test]
    fn a_kept_entry_pushed_out_for_a_more_wanted_one_is_an_eviction_not_a_refusal() {
        let events = Events::default();
        let store = MemoryStore::new(10_000, events.listener());
        for key in 0..10u32 {
            store.insert(key, blob(1_000));
        }
        assert_eq!(events.count(StoreEvent::Stored), 10);
        // Asked for often (misses count too), the new key is worth more than the least wanted
        // entry: it is admitted, and that entry evicted.
        for _ in 0..20 {
            assert!(store.get(&100).is_none());
        }
        store.insert(100, blob(1_000));
        store.settle();
        assert_eq!(events.count(StoreEvent::Stored), 11);
        assert_eq!(events.count(StoreEvent::Refused), 0);
        assert_eq!(events.count(StoreEvent::Removed(Removal::Size)), 1);
        assert!(store.get(&100).is_some());
    }

    /// Every slice of the walk is followed by a yield: other tasks on a current-thread runtime
    /// get at least one turn per slice.
    #[tokio::test]
    async fn remove_matching_yields_after_every_slice() {
        let store = MemoryStore::new(u64::MAX, |_| {});
        let keys = 10 * WALK_SLICE as u32 + 7;
        for key in 0..keys {
            store.insert(key, blob(1));
        }
        let turns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let other = tokio::spawn({
            let turns = Arc::clone(&turns);
            async move {
                loop {
                    turns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            }
        });
        assert_eq!(store.remove_matching(|_| true).await, keys as usize);
        let during = turns.load(std::sync::atomic::Ordering::SeqCst);
        other.abort();
        assert!(during >= 11, "{during} turns for 11 slices");
        store.settle();
        assert_eq!(store.entry_count(), 0);
    }

    #[tokio::test]
    async fn list_matching_stops_at_its_limit_and_says_whether_more_matched() {
        let store = MemoryStore::new(u64::MAX, |_| {});
        let keys = 3 * WALK_SLICE as u32;
        for key in 0..keys {
            store.insert(key, blob(key));
        }
        let even = |key: &u32| key.is_multiple_of(2);
        let listing = store.list_matching(even, 5).await;
        assert_eq!(listing.entries.len(), 5);
        assert!(listing.truncated);
        for (key, value) in &listing.entries {
            assert!(even(key), "{key}");
            assert_eq!(value.bytes, *key, "each key comes with its own value");
        }
        let all_even = keys as usize / 2;
        let exact = store.list_matching(even, all_even).await;
        assert_eq!((exact.entries.len(), exact.truncated), (all_even, false));
        let roomy = store.list_matching(even, keys as usize).await;
        assert_eq!((roomy.entries.len(), roomy.truncated), (all_even, false));
        let none = store.list_matching(|_| false, 5).await;
        assert_eq!((none.entries.len(), none.truncated), (0, false));
        store.settle();
        assert_eq!(
            store.entry_count(),
            u64::from(keys),
            "listing removes nothing"
        );
    }

    #[test]
    fn values_with_nothing_to_keep_are_not_stored() {
        let store = MemoryStore::new(10_000, |_| {});
        store.insert(
            1u32,
            Blob {
                bytes: 10,
                keep: Duration::ZERO,
            },
        );
        assert!(store.get(&1).is_none());
    }

    #[tokio::test]
    async fn remove_matching_counts_what_it_removed() {
        let events = Events::default();
        let store = MemoryStore::new(1_000_000, events.listener());
        for key in 0..20u32 {
            store.insert(key, blob(10));
        }
        assert_eq!(store.remove_matching(|key| key % 2 == 0).await, 10);
        assert!(store.get(&2).is_none());
        assert!(store.get(&3).is_some());
        assert!(store.remove(&3));
        assert!(!store.remove(&3));
        store.settle();
        assert_eq!(events.count(StoreEvent::Removed(Removal::Explicit)), 11);
        assert_eq!(store.entry_count(), 9);
    }
}
