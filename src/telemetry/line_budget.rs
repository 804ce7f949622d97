//! A budget of log lines: a token bucket that lets a burst of lines through, then one line per
//! refill interval, and counts the lines it held back so the next line written can say how
//! many there were. It keeps an outage that fails every request from flooding the log.
//!
//! Hand-written rather than taken from a rate-limiting crate: the count of held-back lines must
//! be taken in the same step as the decision to write (or the count a line reports could
//! include lines after it), and the lines it limits are written on failure paths only, so a
//! mutex costs nothing that matters.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many log lines may be written, and how many were held back.
#[derive(Debug)]
pub(crate) struct LineBudget {
    /// Lines that may be written at once after a quiet spell.
    burst: u32,
    /// How long it takes for one more line to be allowed.
    refill: Duration,
    state: Mutex<Bucket>,
}

/// The bucket's state at its last refill.
#[derive(Debug)]
struct Bucket {
    /// Lines that may be written now.
    tokens: u32,
    /// When the tokens were last counted up.
    refilled_at: Instant,
    /// Lines held back since the last line written.
    held_back: u64,
}

// === impl LineBudget ===

impl LineBudget {
    /// A budget of `burst` lines at once, one more every `refill` (a zero `refill` is taken as
    /// one nanosecond), full at `now`.
    pub(crate) fn new(burst: u32, refill: Duration, now: Instant) -> Self {
        Self {
            burst,
            refill: refill.max(Duration::from_nanos(1)),
            state: Mutex::new(Bucket {
                tokens: burst,
                refilled_at: now,
                held_back: 0,
            }),
        }
    }

    /// Whether a line may be written at `now`: `Some` with the number of lines held back since
    /// the last line written (the count starts again), or `None` when it is held back (and
    /// counted).
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means a panic elsewhere while counting: the counts are still
        // whole numbers, so go on with them.
        let mut bucket = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        let earned = elapsed.as_nanos() / self.refill.as_nanos();
        if earned > 0 {
            let room = u128::from(self.burst - bucket.tokens);
            if earned >= room {
                bucket.tokens = self.burst;
                bucket.refilled_at = now;
            } else {
                let earned = u32::try_from(earned).expect("fewer than the burst (checked above)");
                bucket.tokens += earned;
                bucket.refilled_at += self.refill * earned;
            }
        }
        if bucket.tokens == 0 {
            bucket.held_back += 1;
            return None;
        }
        bucket.tokens -= 1;
        Some(std::mem::take(&mut bucket.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFILL: Duration = Duration::from_secs(6);

    #[test]
    fn a_burst_passes_then_lines_are_held_back_and_counted() {
        let start = Instant::now();
        let budget = LineBudget::new(3, REFILL, start);
        let admitted: Vec<_> = (0..7).map(|_| budget.admit(start)).collect();
        assert_eq!(
            admitted,
            [Some(0), Some(0), Some(0), None, None, None, None]
        );
        // One line's worth of time later, the next line says four were held back before it.
        assert_eq!(budget.admit(start + REFILL), Some(4));
        assert_eq!(budget.admit(start + REFILL), None);
        assert_eq!(
            budget.admit(start + REFILL * 2 - Duration::from_nanos(1)),
            None
        );
        assert_eq!(budget.admit(start + REFILL * 2), Some(2));
    }

    #[test]
    fn time_earns_one_line_per_refill_up_to_the_burst() {
        let start = Instant::now();
        let budget = LineBudget::new(3, REFILL, start);
        for _ in 0..3 {
            assert_eq!(budget.admit(start), Some(0));
        }
        // Two refills earn two lines, and the part of a third already waited for is kept.
        let later = start + REFILL * 2 + REFILL / 2;
        assert_eq!(budget.admit(later), Some(0));
        assert_eq!(budget.admit(later), Some(0));
        assert_eq!(budget.admit(later), None);
        assert_eq!(budget.admit(start + REFILL * 3), Some(1));
        // A long quiet spell fills the bucket to the burst, no more.
        let quiet = start + REFILL * 100;
        let admitted: Vec<_> = (0..4).map(|_| budget.admit(quiet)).collect();
        assert_eq!(admitted, [Some(0), Some(0), Some(0), None]);
    }

    #[test]
    fn an_instant_before_the_last_refill_earns_nothing() {
        let start = Instant::now() + REFILL;
        let budget = LineBudget::new(1, REFILL, start);
        assert_eq!(budget.admit(start), Some(0));
        assert_eq!(budget.admit(start - REFILL), None);
        assert_eq!(budget.admit(start + REFILL), Some(1));
    }
}
