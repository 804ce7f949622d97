//! Field values made from a number of seconds, remembered for the next answers on the same
//! thread.
//!
//! Every answer from the store carries an `Age` and a `Cache-Status` with a number of seconds
//! in it, and the hits on a key within one second carry the same two values. Building a value
//! costs formatting, a validity check and an allocation that is freed again once the answer is
//! written; a remembered one costs a reference count. Each thread keeps its own values, so no
//! lock is taken and no cache line moves between cores.

use std::cell::RefCell;

use http::HeaderValue;

/// How many numbers each kind of value remembers: enough for the ages of every key filled
/// within the same minute, small enough (3 KiB each) to stay in a core's cache.
const SLOTS: usize = 64;

/// Values by the number they were built from, one slot per number modulo [`SLOTS`]; a number
/// replaces the one in its slot.
pub(crate) struct RecentValues {
    slots: RefCell<[Option<(i64, HeaderValue)>; SLOTS]>,
}

thread_local! {
    /// `Age` values, by their seconds.
    static AGES: RecentValues = RecentValues::new();
    /// The `Cache-Status` of a plain hit, by its `ttl`.
    static HIT_STATUSES: RecentValues = RecentValues::new();
}

/// The `Age` value for `seconds`: remembered, or `build` it.
pub(crate) fn age(seconds: u64, build: impl FnOnce() -> HeaderValue) -> HeaderValue {
    match i64::try_from(seconds) {
        Ok(number) => AGES.with(|values| values.get(number, build)),
        Err(_) => build(),
    }
}

/// The `Cache-Status` value of a plain hit with `ttl` seconds left: remembered, or `build` it.
pub(crate) fn hit_status(ttl: i64, build: impl FnOnce() -> HeaderValue) -> HeaderValue {
    HIT_STATUSES.with(|values| values.get(ttl, build))
}

// === impl RecentValues ===

impl RecentValues {
    fn new() -> Self {
        Self {
            slots: RefCell::new(std::array::from_fn(|_| None)),
        }
    }

    /// The value remembered for `number`, or the one `build` makes, which is remembered in its
    /// stead.
    fn get(&self, number: i64, build: impl FnOnce() -> HeaderValue) -> HeaderValue {
        let index = number.rem_euclid(SLOTS as i64) as usize;
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[index];
        if let Some((held, value)) = slot {
            if *held == number {
                return value.clone();
            }
        }
        let value = build();
        *slot = Some((number, value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn built(number: i64, builds: &Cell<usize>) -> HeaderValue {
        builds.set(builds.get() + 1);
        HeaderValue::from(number)
    }

    #[test]
    fn a_number_asked_again_gets_the_same_bytes_without_building() {
        let values = RecentValues::new();
        let builds = Cell::new(0);
        let first = values.get(42, || built(42, &builds));
        let again = values.get(42, || built(42, &builds));
        assert_eq!(builds.get(), 1);
        assert_eq!(again, "42");
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
    }

    #[test]
    fn numbers_sharing_a_slot_replace_each_other_and_never_mix() {
        let values = RecentValues::new();
        let builds = Cell::new(0);
        let colliding = 7 + SLOTS as i64;
        assert_eq!(values.get(7, || built(7, &builds)), "7");
        assert_eq!(values.get(colliding, || built(colliding, &builds)), "71");
        assert_eq!(values.get(7, || built(7, &builds)), "7");
        assert_eq!(builds.get(), 3);
    }

    #[test]
    fn negative_numbers_have_slots_of_their_own() {
        let values = RecentValues::new();
        let builds = Cell::new(0);
        assert_eq!(values.get(-3, || built(-3, &builds)), "-3");
        assert_eq!(values.get(3, || built(3, &builds)), "3");
        assert_eq!(values.get(-3, || built(-3, &builds)), "-3");
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn an_age_beyond_the_slots_numbers_is_built_each_time() {
        let builds = Cell::new(0);
        let huge = u64::MAX;
        let build = || {
            builds.set(builds.get() + 1);
            HeaderValue::from(huge)
        };
        assert_eq!(age(huge, build), huge.to_string().as_str());
        assert_eq!(age(huge, build), huge.to_string().as_str());
        assert_eq!(builds.get(), 2);
    }
}
