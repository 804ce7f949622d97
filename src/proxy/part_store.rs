//! Where the parts of representations are kept: a bounded map from URL to the stored parts of
//! its representation, apart from the store of whole responses so that parts never evict them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::config::RangeMiss;
use crate::http::key::CacheKey;
use crate::http::stored::parts::StoredParts;

/// How parts are kept and when they are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSettings {
    /// Most bytes all stored parts take together.
    pub capacity_bytes: u64,
    /// Most bytes of one representation kept in parts (`--max-object-size`): parts of larger
    /// representations are kept up to it, and complete parts no larger are combined into a
    /// stored whole response.
    pub max_object_bytes: u64,
    /// Whether a `Range` request that misses asks for its bytes only.
    pub range_miss: RangeMiss,
}

/// The stored parts, by URL. Cloning is cheap; clones share the parts.
#[derive(Clone)]
pub struct PartStore {
    parts: moka::sync::Cache<CacheKey, Arc<StoredParts>>,
    settings: PartSettings,
    /// Counts removals, so that an origin request that began before one stores nothing
    /// after it (see [`add`](Self::add)).
    removals: Arc<AtomicU64>,
}

/// A point in the store's removals, taken before an origin request for a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RemovalMark(u64);

/// What became of parts offered to [`PartStore::keep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// They are stored.
    Stored,
    /// They were more than one representation may keep.
    TooLarge,
    /// Their URL was removed after they were asked for.
    Removed,
}

// === impl PartStore ===

impl PartStore {
    /// An empty store holding up to `settings.capacity_bytes`.
    pub fn new(settings: PartSettings) -> Self {
        let parts = moka::sync::Cache::builder()
            .max_capacity(settings.capacity_bytes)
            .weigher(|key: &CacheKey, parts: &Arc<StoredParts>| {
                let key_bytes = u32::try_from(key.as_str().len()).unwrap_or(u32::MAX);
                parts.weight_bytes().saturating_add(key_bytes)
            })
            .support_invalidation_closures()
            .build();
        Self {
            parts,
            settings,
            removals: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How parts are kept and used.
    pub(crate) fn settings(&self) -> &PartSettings {
        &self.settings
    }

    /// The parts stored for `key`.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<Arc<StoredParts>> {
        self.parts.get(key)
    }

    /// Where the removals stand now: take it before asking the origin for a part.
    pub(crate) fn mark(&self) -> RemovalMark {
        RemovalMark(self.removals.load(Ordering::SeqCst))
    }

    /// Keeps `parts` as what `key` holds, unless they are more than
    /// [`PartSettings::max_object_bytes`] together or something was removed since `mark` (a
    /// purge or an unsafe request must not be undone by a response on its way before it).
    pub(crate) fn keep(&self, key: &CacheKey, parts: Arc<StoredParts>, mark: RemovalMark) -> Kept {
        if parts.stored_bytes() > self.settings.max_object_bytes {
            return Kept::TooLarge;
        }
        // Inserted first, then checked: a removal counted after the check also removes it.
        self.parts.insert(key.clone(), parts);
        if !self.unchanged_since(mark) {
            self.parts.invalidate(key);
            return Kept::Removed;
        }
        Kept::Stored
    }

    /// Whether nothing was removed since `mark`.
    pub(crate) fn unchanged_since(&self, mark: RemovalMark) -> bool {
        self.removals.load(Ordering::SeqCst) == mark.0
    }

    /// Forgets `key`'s parts: combined into a whole stored response, or outdated.
    pub(crate) fn forget(&self, key: &CacheKey) {
        self.parts.invalidate(key);
    }

    /// Removes `key`'s parts (a purge, an unsafe request).
    pub(crate) fn remove(&self, key: &CacheKey) {
        self.removals.fetch_add(1, Ordering::SeqCst);
        self.parts.invalidate(key);
    }

    /// Removes the parts of every URL that `matches` (a purge by prefix or on every host).
    pub(crate) fn remove_matching(
        &self,
        matches: impl Fn(&CacheKey) -> bool + Send + Sync + 'static,
    ) {
        self.removals.fetch_add(1, Ordering::SeqCst);
        self.parts
            .invalidate_entries_if(move |key, _| matches(key))
            .expect("the store is built with invalidation closures");
    }
}
