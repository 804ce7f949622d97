//! Windowed stats for `GET /stats`: the current window (`cycle`) and the previous complete one
//! (`last`), in the spirit of a single-flight cache's observation indications.
//!
//! Every proxied request counts as exactly one of:
//! - **hit**: answered from stored content without waiting for the origin (fresh hits and stale
//!   answers served while revalidating);
//! - **miss**: answered after an origin load (misses, revalidations, coalesced waiters, passes);
//! - **error**: no usable answer (502/504 or the origin's own server error).
//!
//! `requests = hits + misses + errors`; `hit_rate = hits / requests` and
//! `error_rate = errors / requests` (0 for an empty window, never NaN); average latencies are
//! over the hits and the misses of the window. **manual misses** are the stored URLs removed by
//! purges and unsafe-method invalidations during the window.
//!
//! Counting is lock-free (atomics); a request finishing at the instant of a rotation may be
//! counted in either window, never lost and never twice.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How a request counts in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatOutcome {
    /// Answered from stored content.
    Hit,
    /// Answered after an origin load.
    Miss,
    /// No usable answer.
    Error,
}

/// Running counts of the current window.
#[derive(Debug, Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    manual_misses: AtomicU64,
    hit_nanos: AtomicU64,
    miss_nanos: AtomicU64,
}

/// One closed window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    /// When the window began.
    pub started: Option<SystemTime>,
    /// When it ended (`None` for the current window).
    pub ended: Option<SystemTime>,
    /// Requests answered from stored content.
    pub hits: u64,
    /// Requests answered after an origin load.
    pub misses: u64,
    /// Requests without a usable answer.
    pub errors: u64,
    /// Stored URLs removed by purges and invalidations.
    pub manual_misses: u64,
    hit_nanos: u64,
    miss_nanos: u64,
}

/// The two windows.
#[derive(Debug)]
pub struct Stats {
    length: Duration,
    cycle: Counts,
    /// When the current window began.
    cycle_started: Mutex<SystemTime>,
    /// The previous complete window.
    last: Mutex<Window>,
}

// === impl Stats ===

impl Stats {
    /// Windows of `length`, the first starting `now`.
    pub fn new(length: Duration, now: SystemTime) -> Self {
        Self {
            length,
            cycle: Counts::default(),
            cycle_started: Mutex::new(now),
            last: Mutex::new(Window::default()),
        }
    }

    /// Counts one request.
    pub fn record(&self, outcome: StatOutcome, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let counts = &self.cycle;
        match outcome {
            StatOutcome::Hit => {
                counts.hits.fetch_add(1, Ordering::Relaxed);
                counts.hit_nanos.fetch_add(nanos, Ordering::Relaxed);
            }
            StatOutcome::Miss => {
                counts.misses.fetch_add(1, Ordering::Relaxed);
                counts.miss_nanos.fetch_add(nanos, Ordering::Relaxed);
            }
            StatOutcome::Error => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts stored URLs removed by a purge or an invalidation.
    pub fn record_manual_misses(&self, removed: usize) {
        self.cycle
            .manual_misses
            .fetch_add(removed as u64, Ordering::Relaxed);
    }

    /// Closes the current window at `now`: it becomes `last`, and a new one begins.
    pub fn rotate(&self, now: SystemTime) {
        let counts = &self.cycle;
        let mut started = lock(&self.cycle_started);
        let closed = Window {
            started: Some(*started),
            ended: Some(now),
            hits: counts.hits.swap(0, Ordering::Relaxed),
            misses: counts.misses.swap(0, Ordering::Relaxed),
            errors: counts.errors.swap(0, Ordering::Relaxed),
            manual_misses: counts.manual_misses.swap(0, Ordering::Relaxed),
            hit_nanos: counts.hit_nanos.swap(0, Ordering::Relaxed),
            miss_nanos: counts.miss_nanos.swap(0, Ordering::Relaxed),
        };
        *started = now;
        *lock(&self.last) = closed;
    }

    /// The current window so far.
    pub fn cycle(&self) -> Window {
        let counts = &self.cycle;
        Window {
            started: Some(*lock(&self.cycle_started)),
            ended: None,
            hits: counts.hits.load(Ordering::Relaxed),
            misses: counts.misses.load(Ordering::Relaxed),
            errors: counts.errors.load(Ordering::Relaxed),
            manual_misses: counts.manual_misses.load(Ordering::Relaxed),
            hit_nanos: counts.hit_nanos.load(Ordering::Relaxed),
            miss_nanos: counts.miss_nanos.load(Ordering::Relaxed),
        }
    }

    /// The previous complete window (all zero before the first rotation).
    pub fn last(&self) -> Window {
        *lock(&self.last)
    }

    /// The JSON view: both windows, plus the cache's live entry count and size.
    pub fn to_json(&self, entries: u64, size_bytes: u64) -> Value {
        json!({
            "window_seconds": self.length.as_secs_f64(),
            "cycle": self.cycle().to_json(),
            "last": self.last().to_json(),
            "entries": entries,
            "size_bytes": size_bytes,
        })
    }

    /// Rotates the windows every window length until `shutdown` is cancelled.
    pub async fn rotate_every_window(&self, shutdown: CancellationToken) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + self.length, self.length);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => self.rotate(SystemTime::now()),
            }
        }
    }
}

// === impl Window ===

impl Window {
    /// Every counted request.
    pub fn requests(&self) -> u64 {
        self.hits + self.misses + self.errors
    }

    /// `hits / requests`, 0 when empty.
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits, self.requests())
    }

    /// `errors / requests`, 0 when empty.
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors, self.requests())
    }

    /// Mean latency of the hits in milliseconds, 0 when there were none.
    pub fn avg_hit_latency_ms(&self) -> f64 {
        ratio(self.hit_nanos, self.hits) / 1e6
    }

    /// Mean latency of the misses in milliseconds, 0 when there were none.
    pub fn avg_miss_latency_ms(&self) -> f64 {
        ratio(self.miss_nanos, self.misses) / 1e6
    }

    fn to_json(self) -> Value {
        json!({
            "started_unix": self.started.map(unix_seconds),
            "ended_unix": self.ended.map(unix_seconds),
            "requests": self.requests(),
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "manual_misses": self.manual_misses,
            "hit_rate": self.hit_rate(),
            "error_rate": self.error_rate(),
            "avg_hit_latency_ms": self.avg_hit_latency_ms(),
            "avg_miss_latency_ms": self.avg_miss_latency_ms(),
        })
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain data written in one statement; a panic elsewhere cannot leave
    // them half-updated, so a poisoned lock is still good to use.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_window_has_zero_rates_not_nan() {
        let stats = Stats::new(Duration::from_secs(60), UNIX_EPOCH);
        let view = stats.to_json(0, 0);
        for window in ["cycle", "last"] {
            for field in [
                "hit_rate",
                "error_rate",
                "avg_hit_latency_ms",
                "avg_miss_latency_ms",
            ] {
                assert_eq!(view[window][field], 0.0, "{window}.{field}");
            }
        }
    }

    #[test]
    fn rates_and_latencies_follow_their_definitions() {
        let stats = Stats::new(Duration::from_secs(60), UNIX_EPOCH);
        for _ in 0..3 {
            stats.record(StatOutcome::Hit, Duration::from_millis(2));
        }
        stats.record(StatOutcome::Miss, Duration::from_millis(100));
        stats.record(StatOutcome::Miss, Duration::from_millis(300));
        stats.record(StatOutcome::Error, Duration::from_millis(50));
        stats.record_manual_misses(4);
        let cycle = stats.cycle();
        assert_eq!(
            (
                cycle.requests(),
                cycle.hits,
                cycle.misses,
                cycle.errors,
                cycle.manual_misses
            ),
            (6, 3, 2, 1, 4)
        );
        assert_eq!(cycle.hit_rate(), 0.5);
        assert!((cycle.error_rate() - 1.0 / 6.0).abs() < 1e-12);
        assert!((cycle.avg_hit_latency_ms() - 2.0).abs() < 1e-9);
        assert!((cycle.avg_miss_latency_ms() - 200.0).abs() < 1e-9);
    }

    #[test]
    fn rotation_moves_the_cycle_into_last_and_starts_afresh() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let stats = Stats::new(Duration::from_secs(60), start);
        stats.record(StatOutcome::Hit, Duration::from_millis(1));
        let end = start + Duration::from_secs(60);
        stats.rotate(end);
        let last = stats.last();
        assert_eq!(
            (last.hits, last.started, last.ended),
            (1, Some(start), Some(end))
        );
        let cycle = stats.cycle();
        assert_eq!((cycle.requests(), cycle.started), (0, Some(end)));
        stats.rotate(end + Duration::from_secs(60));
        assert_eq!(
            stats.last().requests(),
            0,
            "an idle window is recorded as empty"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn windows_rotate_every_window_length() {
        let stats = std::sync::Arc::new(Stats::new(Duration::from_secs(60), SystemTime::now()));
        let shutdown = CancellationToken::new();
        let rotating = tokio::spawn({
            let (stats, shutdown) = (std::sync::Arc::clone(&stats), shutdown.clone());
            async move { stats.rotate_every_window(shutdown).await }
        });
        tokio::task::yield_now().await;
        stats.record(StatOutcome::Miss, Duration::from_millis(5));
        tokio::time::advance(Duration::from_secs(59)).await;
        tokio::task::yield_now().await;
        assert_eq!(stats.last().misses, 0, "not yet a full window");
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
        assert_eq!(stats.last().misses, 1);
        assert_eq!(stats.cycle().misses, 0);
        shutdown.cancel();
        rotating.await.expect("rotation task");
    }
}
