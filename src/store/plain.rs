//! A plain store for tests: a locked map with no bound and no expiry of its own, so what a test
//! inserts is there until it is removed (moka's admission policy may refuse an insert, which a
//! test of the cache above it should not depend on).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use super::{Listing, Store, WALK_SLICE, Weighed, WeighedKey};

/// A map behind a lock, weighed as [`MemoryStore`](super::MemoryStore) weighs its entries.
#[derive(Debug, Default)]
pub struct PlainStore<K, V> {
    /// A std mutex: held only to look up, insert or remove, never across an `.await`.
    entries: Mutex<HashMap<K, V>>,
}

// === impl PlainStore ===

impl<K, V> PlainStore<K, V> {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        // The map is consistent after any panic in a test that held it: carry on with it.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K, V> Store for PlainStore<K, V>
where
    K: Hash + Eq + Clone + WeighedKey + Send + Sync + 'static,
    V: Weighed + Clone + Send + Sync + 'static,
{
    type Key = K;
    type Value = V;

    fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    fn insert(&self, key: K, value: V) {
        if !value.retain_for().is_zero() {
            self.lock().insert(key, value);
        }
    }

    fn remove(&self, key: &K) -> bool {
        self.lock().remove(key).is_some()
    }

    async fn remove_matching(&self, mut matches: impl FnMut(&K) -> bool + Send) -> usize {
        let keys: Vec<K> = self.lock().keys().cloned().collect();
        let mut removed = 0;
        for slice in keys.chunks(WALK_SLICE) {
            removed += slice
                .iter()
                .filter(|key| matches(key) && self.remove(key))
                .count();
            tokio::task::yield_now().await;
        }
        removed
    }

    async fn list_matching(
        &self,
        mut matches: impl FnMut(&K) -> bool + Send,
        limit: usize,
    ) -> Listing<K, V> {
        let entries: Vec<(K, V)> = self
            .lock()
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let mut listing = Listing::new(limit);
        for (key, value) in entries {
            if matches(&key) && !listing.add(limit, key, value) {
                break;
            }
        }
        listing
    }

    fn entry_count(&self) -> u64 {
        self.lock().len() as u64
    }

    fn size_bytes(&self) -> u64 {
        self.lock()
            .iter()
            .map(|(key, value)| u64::from(key.weight_bytes()) + u64::from(value.weight_bytes()))
            .sum()
    }

    fn capacity_bytes(&self) -> u64 {
        u64::MAX
    }
}
