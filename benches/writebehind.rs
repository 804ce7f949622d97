//! The write-behind hot path from 2 threads at once: `Counters::increment` (and
//! `WriteBehind::increment`, which also counts the increment in a metric) against a plain shared
//! `AtomicI64` (the floor: one contended atomic add) and a `Mutex<HashMap>` (the obvious
//! alternative: one global lock).
//!
//! Each measurement releases 2 threads together, each doing half of the iterations; the time
//! reported per iteration is wall time / total increments (so lower is better, and perfect
//! scaling would halve the single-thread cost).

#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sidecache::metrics::Registry;
use sidecache::writebehind::sink::SinkFuture;
use sidecache::writebehind::{
    Applied, Batch, Counters, IncrementSource, Sink, WriteBehind, WriteBehindMetrics,
    WriteBehindSettings,
};

const THREADS: usize = 2;

/// Names as the admin endpoint or the request counter would use them.
fn names(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("requests:example.com/articles/{i}"))
        .collect()
}

/// Runs `op(thread, i)` `iters` times in all, split over [`THREADS`] threads started together.
fn on_two_threads(iters: u64, op: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let start = Barrier::new(THREADS + 1);
    let per_thread = iters.div_ceil(THREADS as u64);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    for i in 0..per_thread {
                        op(thread, i);
                    }
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for worker in workers {
            worker.join().expect("worker");
        }
        began.elapsed()
    })
}

/// A sink that is never called: the benchmark measures increments only.
struct NoSink;

impl Sink for NoSink {
    fn apply(&self, _batch: Arc<Batch>) -> SinkFuture<'_, Applied> {
        Box::pin(async { Ok(Applied::Committed) })
    }

    fn stored<'a>(&'a self, _name: &'a str) -> SinkFuture<'a, i64> {
        Box::pin(async { Ok(0) })
    }
}

fn increment(c: &mut Criterion) {
    for keys in [1, 64] {
        let names = names(keys);
        let name = |thread: usize, i: u64| names[(i as usize + thread * 7) % keys].as_str();
        let mut group = c.benchmark_group(format!("increment_2_threads/{keys}_keys"));

        let atomic = AtomicI64::new(0);
        group.bench_function("atomic_i64", |b| {
            b.iter_custom(|iters| {
                on_two_threads(iters, &|_, _| {
                    atomic.fetch_add(black_box(1), Ordering::Relaxed);
                })
            })
        });

        let counters = Counters::new(1_000_000);
        group.bench_function("counters", |b| {
            b.iter_custom(|iters| {
                let elapsed = on_two_threads(iters, &|thread, i| {
                    let _ = black_box(counters.increment(name(thread, i), 1));
                });
                // Start each sample from a drained map, as after a flush.
                counters.drain();
                elapsed
            })
        });

        let registry = Registry::new();
        let writebehind = WriteBehind::new(
            Arc::new(NoSink),
            "none".into(),
            WriteBehindSettings {
                interval: Duration::from_secs(3600),
                max_pending_keys: 1_000_000,
                recovery_file: None,
            },
            WriteBehindMetrics::register(&registry).expect("metrics"),
        )
        .expect("write-behind");
        group.bench_function("writebehind_with_metrics", |b| {
            b.iter_custom(|iters| {
                on_two_threads(iters, &|thread, i| {
                    let _ = black_box(writebehind.increment(
                        IncrementSource::Request,
                        name(thread, i),
                        1,
                    ));
                })
            })
        });

        let locked: Mutex<HashMap<String, i64>> = Mutex::new(HashMap::new());
        group.bench_function("mutex_hashmap", |b| {
            b.iter_custom(|iters| {
                let elapsed = on_two_threads(iters, &|thread, i| {
                    let name = name(thread, i);
                    let mut map = locked.lock().expect("lock");
                    match map.get_mut(name) {
                        Some(sum) => *sum += black_box(1),
                        None => {
                            map.insert(name.to_owned(), 1);
                        }
                    }
                });
                locked.lock().expect("lock").clear();
                elapsed
            })
        });
        group.finish();
    }
}

criterion_group!(benches, increment);
criterion_main!(benches);
