//! The hot path: named counters added up in memory, bounded in names, drained into batches.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// The largest pending sum of one name, either way: 2^62. Far enough from the bounds of `i64`
/// that the fast path's brief overshoot can never wrap. Sums in the sink are not bounded by it
/// (they saturate at the bounds of `i64`).
pub(crate) const MAX_PENDING: i64 = 1 << 62;

/// Deltas up to this size, either way, take the fast path: one `fetch_add`.
const FAST_DELTA: u64 = 1 << 32;

fn within_bound(sum: i64) -> bool {
    sum.unsigned_abs() <= MAX_PENDING.unsigned_abs()
}

/// Pending increments by name.
///
/// # Concurrency
///
/// [`increment`](Self::increment) may be called from any number of threads at once. An increment
/// of a name already pending takes its shard's read lock and does one atomic add, so increments of
/// different names (and of the same name) never wait for each other, only for a drain of their
/// shard; adding a new name takes the shard's write lock. [`drain`](Self::drain) takes each
/// shard's write lock in turn, so every increment is either wholly in the drained batch or wholly
/// left for the next one.
pub struct Counters {
    /// Pending sum per name. `Box<str>` keys: looked up by `&str`, one allocation per new name.
    map: DashMap<Box<str>, AtomicI64>,
    /// Names in `map`, kept beside it so the cap is checked without visiting every shard.
    keys: AtomicUsize,
    /// Most names `map` may hold.
    max_keys: usize,
    /// Set by [`close`](Self::close): no increment is accepted afterwards. Read under the
    /// shard lock, so that a drain after closing sees every accepted increment.
    closed: AtomicBool,
}

/// Why an increment was not recorded. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The name is not pending and the map already holds its cap of names.
    #[error("too many counter names are pending; try again after the next flush")]
    Full,
    /// The counters are closed: shutdown has begun.
    #[error("the counters are closed for shutdown")]
    Closed,
    /// The name's pending sum would go past ±`MAX_PENDING` (2^62).
    #[error("the increment would take the pending sum past ±2^62")]
    Overflow,
    /// The name is not one a sink can store (see `super::name`).
    #[error("the counter name is empty, too long or holds control characters")]
    InvalidName,
}

// === impl Refused ===

impl Refused {
    /// Every variant, in metric-label order.
    pub const ALL: [Refused; 4] = [
        Refused::Full,
        Refused::Closed,
        Refused::Overflow,
        Refused::InvalidName,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Full => "full",
            Refused::Closed => "closed",
            Refused::Overflow => "overflow",
            Refused::InvalidName => "invalid_name",
        }
    }
}

// === impl Counters ===

impl Counters {
    /// Empty counters holding at most `max_keys` names between drains.
    pub fn new(max_keys: usize) -> Self {
        Self {
            map: DashMap::new(),
            keys: AtomicUsize::new(0),
            max_keys,
            closed: AtomicBool::new(false),
        }
    }

    /// Adds `delta` (which may be negative) to `name`'s pending sum and returns the new sum.
    ///
    /// # Errors
    ///
    /// Nothing is recorded when the counters are closed ([`Refused::Closed`]), when `name` is new
    /// and the cap of names is reached ([`Refused::Full`]), or when the pending sum would
    /// leave ±`MAX_PENDING` ([`Refused::Overflow`]).
    pub fn increment(&self, name: &str, delta: i64) -> Result<i64, Refused> {
        if let Some(slot) = self.map.get(name) {
            // The read guard is held until the add is done (see `close`).
            return self.add(&slot, delta);
        }
        self.insert(name, delta)
    }

    /// Adds to an existing slot; the caller holds the slot's shard lock.
    fn add(&self, slot: &AtomicI64, delta: i64) -> Result<i64, Refused> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Refused::Closed);
        }
        if delta.unsigned_abs() <= FAST_DELTA {
            // One `fetch_add`, checked afterwards and undone if past the bound. Settled sums stay
            // within ±MAX_PENDING and each thread overshoots by at most one fast delta (2^32)
            // before undoing, so the raw value never comes near wrapping.
            let sum = slot.fetch_add(delta, Ordering::Relaxed).wrapping_add(delta);
            if sum.unsigned_abs() <= MAX_PENDING.unsigned_abs() {
                return Ok(sum);
            }
            slot.fetch_sub(delta, Ordering::Relaxed);
            return Err(Refused::Overflow);
        }
        // A large delta: compare-and-swap, so no overshoot of that size is ever visible.
        slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
            sum.checked_add(delta).filter(|next| within_bound(*next))
        })
        .map(|previous| previous.wrapping_add(delta))
        .map_err(|_| Refused::Overflow)
    }

    /// The slow path: `name` was not pending a moment ago.
    fn insert(&self, name: &str, delta: i64) -> Result<i64, Refused> {
        match self.map.entry(Box::from(name)) {
            Entry::Occupied(slot) => self.add(slot.get(), delta),
            Entry::Vacant(slot) => {
                if self.closed.load(Ordering::SeqCst) {
                    return Err(Refused::Closed);
                }
                if !within_bound(delta) {
                    return Err(Refused::Overflow);
                }
                if self.keys.fetch_add(1, Ordering::SeqCst) >= self.max_keys {
                    self.keys.fetch_sub(1, Ordering::SeqCst);
                    return Err(Refused::Full);
                }
                slot.insert(AtomicI64::new(delta));
                Ok(delta)
            }
        }
    }

    /// Takes every pending increment out, leaving no name behind, sorted by name. Names whose
    /// increments add up to zero are left out.
    pub fn drain(&self) -> Vec<(Box<str>, i64)> {
        let mut taken = Vec::new();
        let mut removed = 0;
        // `retain` visits each shard under its write lock.
        self.map.retain(|name, sum| {
            removed += 1;
            let sum = *sum.get_mut();
            if sum != 0 {
                taken.push((name.clone(), sum));
            }
            false
        });
        self.keys.fetch_sub(removed, Ordering::SeqCst);
        taken.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        taken
    }

    /// `name`'s pending sum, if it is pending.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.map.get(name).map(|sum| sum.load(Ordering::Relaxed))
    }

    /// Every pending name and sum, in no particular order (a snapshot: shards are read one after
    /// another while increments go on).
    pub fn snapshot(&self) -> Vec<(String, i64)> {
        self.map
            .iter()
            .map(|entry| {
                (
                    entry.key().to_string(),
                    entry.value().load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// How many names are pending.
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::SeqCst)
    }

    /// Whether no name is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most names held between drains.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Refuses every increment from now on.
    ///
    /// # Concurrency
    ///
    /// An increment racing with `close` either sees the flag and is refused, or finished its add
    /// while holding its shard's lock: the flag is checked under that lock, and a later
    /// [`drain`](Self::drain) takes the same lock, so it sees every accepted increment.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn increments_add_up_and_drain_sorted_without_zero_sums() {
        let counters = Counters::new(10);
        assert_eq!(counters.increment("b", 5), Ok(5));
        assert_eq!(counters.increment("a", 1), Ok(1));
        assert_eq!(counters.increment("b", -2), Ok(3));
        assert_eq!(counters.increment("zero", 4), Ok(4));
        assert_eq!(counters.increment("zero", -4), Ok(0));
        assert_eq!(counters.len(), 3);
        assert_eq!(counters.get("b"), Some(3));
        assert_eq!(
            counters.drain(),
            vec![(Box::from("a"), 1), (Box::from("b"), 3)]
        );
        assert!(counters.is_empty());
        assert_eq!(counters.get("b"), None);
        assert!(counters.drain().is_empty());
    }

    #[test]
    fn at_the_cap_pending_names_still_count_and_new_ones_are_refused() {
        let counters = Counters::new(2);
        counters.increment("a", 1).expect("room");
        counters.increment("b", 1).expect("room");
        assert_eq!(counters.increment("c", 1), Err(Refused::Full));
        assert_eq!(counters.increment("a", 1), Ok(2));
        assert_eq!(counters.len(), 2);
        counters.drain();
        assert_eq!(counters.increment("c", 1), Ok(1));
    }

    #[test]
    fn an_increment_past_the_bound_changes_nothing() {
        let counters = Counters::new(2);
        // The fast path (small deltas) and the compare-and-swap path (large ones) agree.
        counters.increment("a", MAX_PENDING - 1).expect("fits");
        assert_eq!(counters.increment("a", 2), Err(Refused::Overflow));
        assert_eq!(counters.increment("a", 1 << 40), Err(Refused::Overflow));
        assert_eq!(counters.get("a"), Some(MAX_PENDING - 1));
        assert_eq!(counters.increment("a", 1), Ok(MAX_PENDING));
        assert_eq!(counters.increment("a", -2 * MAX_PENDING), Ok(-MAX_PENDING));
        assert_eq!(counters.increment("a", -1), Err(Refused::Overflow));
        assert_eq!(counters.get("a"), Some(-MAX_PENDING));
        for below in [i64::MIN, -(1 << 40)] {
            assert_eq!(counters.increment("a", below), Err(Refused::Overflow));
        }
        for huge in [i64::MAX, i64::MIN, MAX_PENDING + 1] {
            assert_eq!(counters.increment("new", huge), Err(Refused::Overflow));
        }
        assert_eq!(counters.get("new"), None);
        assert_eq!(counters.len(), 1);
    }

    #[test]
    fn closed_counters_refuse_old_and_new_names() {
        let counters = Counters::new(2);
        counters.increment("a", 1).expect("open");
        counters.close();
        assert_eq!(counters.increment("a", 1), Err(Refused::Closed));
        assert_eq!(counters.increment("b", 1), Err(Refused::Closed));
        assert_eq!(counters.drain(), vec![(Box::from("a"), 1)]);
    }

    /// Threads increment while another drains over and over: the drained batches plus what is
    /// left add up to exactly what was accepted, per name.
    #[test]
    fn concurrent_increments_and_drains_lose_nothing() {
        const THREADS: usize = 4;
        const PER_THREAD: i64 = 20_000;
        let counters = Arc::new(Counters::new(1_000));
        let done = Arc::new(AtomicBool::new(false));
        let drainer = {
            let (counters, done) = (Arc::clone(&counters), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut drained: HashMap<Box<str>, i64> = HashMap::new();
                while !done.load(Ordering::SeqCst) {
                    for (name, sum) in counters.drain() {
                        *drained.entry(name).or_default() += sum;
                    }
                }
                drained
            })
        };
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    let mut accepted: HashMap<String, i64> = HashMap::new();
                    for i in 0..PER_THREAD {
                        let name = format!("name-{}", (i + thread as i64) % 7);
                        let delta = if i % 5 == 0 { -3 } else { 2 };
                        counters.increment(&name, delta).expect("below the cap");
                        *accepted.entry(name).or_default() += delta;
                    }
                    accepted
                })
            })
            .collect();
        let mut accepted: HashMap<String, i64> = HashMap::new();
        for worker in workers {
            for (name, sum) in worker.join().expect("worker") {
                *accepted.entry(name).or_default() += sum;
            }
        }
        done.store(true, Ordering::SeqCst);
        let mut drained = drainer.join().expect("drainer");
        for (name, sum) in counters.drain() {
            *drained.entry(name).or_default() += sum;
        }
        for (name, sum) in &accepted {
            assert_eq!(
                drained.get(name.as_str()).copied().unwrap_or(0),
                *sum,
                "{name}"
            );
        }
        assert!(counters.is_empty());
    }

    /// Increments racing with `close` then a drain: every increment that was accepted is in
    /// the drain.
    #[test]
    fn every_increment_accepted_before_close_is_drained_after_it() {
        let counters = Arc::new(Counters::new(100));
        let workers: Vec<_> = (0..4)
            .map(|thread| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    let mut accepted = 0_i64;
                    for i in 0..1_000_000 {
                        match counters.increment(&format!("n{}", (i + thread) % 10), 1) {
                            Ok(_) => accepted += 1,
                            Err(Refused::Closed) => return accepted,
                            Err(other) => panic!("{other}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        // Close once the workers are surely under way.
        while counters.len() < 10 {
            std::thread::yield_now();
        }
        counters.close();
        let accepted: i64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        let drained: i64 = counters.drain().iter().map(|(_, sum)| sum).sum();
        assert_eq!(drained, accepted);
    }
}
