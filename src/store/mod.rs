//! The store: where loaded values are kept, bounded in bytes, each expiring on its own schedule.
//!
//! [`Store`] is what the read-through cache ([`crate::cache::loading`]) needs of one;
//! [`MemoryStore`] (moka, byte-weighed, per-entry expiry) is the one sidecache runs, and
//! [`PlainStore`] (a locked map, no bound) is the one tests use where moka's admission policy
//! would make the outcome depend on chance. A store only keeps values: it does not decide what
//! is fresh (the loader's job) nor load anything (the cache's).

mod metrics;
mod moka;
mod plain;

use std::future::Future;
use std::time::Duration;

pub use self::metrics::StoreMetrics;
pub use self::moka::MemoryStore;
pub use self::plain::PlainStore;

/// How many keys a walk of the store ([`MemoryStore::remove_matching`],
/// [`MemoryStore::list_matching`]) handles between two yields to the runtime: a few hundred
/// microseconds of work at most.
pub const WALK_SLICE: usize = 256;

/// Where a read-through cache keeps its values.
///
/// All methods may be called concurrently, for the same key too.
pub trait Store: Send + Sync + 'static {
    /// Identifies a value.
    type Key;
    /// What is kept (cheap to clone: an `Arc`).
    type Value;

    /// The value under `key`, if present and not expired.
    fn get(&self, key: &Self::Key) -> Option<Self::Value>;

    /// Keeps `value` under `key`, replacing what was there. A value with nothing worth keeping
    /// ([`Weighed::retain_for`] is zero) is not kept.
    fn insert(&self, key: Self::Key, value: Self::Value);

    /// Removes `key`; returns whether an entry was there.
    fn remove(&self, key: &Self::Key) -> bool;

    /// Removes every entry whose key matches; returns how many went. It walks the whole store,
    /// in slices of [`WALK_SLICE`] keys with a yield to the runtime between them.
    fn remove_matching(
        &self,
        matches: impl FnMut(&Self::Key) -> bool + Send,
    ) -> impl Future<Output = usize> + Send;

    /// Up to `limit` entries whose key matches, in no particular order, and whether more were
    /// left. It walks the store as [`remove_matching`](Self::remove_matching) does, until the
    /// limit is passed, and reads entries without counting as a use of them (the admission and
    /// eviction policy does not see the walk).
    fn list_matching(
        &self,
        matches: impl FnMut(&Self::Key) -> bool + Send,
        limit: usize,
    ) -> impl Future<Output = Listing<Self::Key, Self::Value>> + Send;

    /// Applies pending evictions and expirations, so that the counts below are exact.
    fn settle(&self) {}

    /// Entries held (exact after [`settle`](Self::settle)).
    fn entry_count(&self) -> u64;

    /// Bytes held, as weighed (exact after [`settle`](Self::settle)).
    fn size_bytes(&self) -> u64;

    /// The byte bound.
    fn capacity_bytes(&self) -> u64;
}

/// A bounded page of a store's entries ([`Store::list_matching`]).
#[derive(Debug)]
pub struct Listing<K, V> {
    /// The entries found, at most the limit asked for.
    pub entries: Vec<(K, V)>,
    /// Whether the walk stopped at the limit with another matching entry found: there are more.
    pub truncated: bool,
}

impl<K, V> Listing<K, V> {
    /// An empty page that keeps at most `limit` entries.
    fn new(limit: usize) -> Self {
        Self {
            entries: Vec::with_capacity(limit.min(WALK_SLICE)),
            truncated: false,
        }
    }

    /// Adds an entry found, unless the page is full; returns whether the walk should go on.
    fn add(&mut self, limit: usize, key: K, value: V) -> bool {
        if self.entries.len() == limit {
            self.truncated = true;
            return false;
        }
        self.entries.push((key, value));
        true
    }
}

/// What the store needs to know about a value to bound and expire it.
pub trait Weighed {
    /// Bytes this value holds (body, headers and bookkeeping), for the byte bound.
    fn weight_bytes(&self) -> u32;
    /// How long from now the value is worth keeping. Zero means "do not keep".
    fn retain_for(&self) -> Duration;
}

/// What the store needs to know about a key to bound its memory: a key's text can be as large as
/// a value (a long URL with a tiny body), so it is weighed with the value.
pub trait WeighedKey {
    /// Bytes this key holds beyond what [`Weighed::weight_bytes`]' fixed overhead covers.
    fn weight_bytes(&self) -> u32;
}

/// Keys of a fixed size hold nothing beyond what the entry's fixed overhead covers.
macro_rules! fixed_size_keys {
    ($($key:ty),*) => {$(
        impl WeighedKey for $key {
            fn weight_bytes(&self) -> u32 {
                0
            }
        }
    )*};
}

fixed_size_keys!(u32, u64, usize);

impl WeighedKey for &str {
    fn weight_bytes(&self) -> u32 {
        u32::try_from(self.len()).unwrap_or(u32::MAX)
    }
}

impl WeighedKey for String {
    fn weight_bytes(&self) -> u32 {
        self.as_str().weight_bytes()
    }
}

/// Why an entry left the store (moka's removal causes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Evicted to stay within the byte capacity: an entry that had been kept, pushed out for
    /// another.
    Size,
    /// Past its retention time.
    Expired,
    /// Removed by a purge or an invalidation.
    Explicit,
    /// Overwritten by a newer value for the same key.
    Replaced,
}

/// What the store reports of its entries, as it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// A value handed to the store was kept.
    Stored,
    /// A value handed to the store was not kept: its admission policy judged it less likely to be
    /// asked for again than what it would have pushed out.
    Refused,
    /// A kept entry left the store.
    Removed(Removal),
}

// === impl Removal ===

impl Removal {
    /// Every cause, in declaration order.
    pub const ALL: [Removal; 4] = [Self::Size, Self::Expired, Self::Explicit, Self::Replaced];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Expired => "expired",
            Self::Explicit => "explicit",
            Self::Replaced => "replaced",
        }
    }
}
