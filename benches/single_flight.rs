//! The single-flight path without sockets: N callers ask for the same cold key at one moment and
//! one load answers them all; against the same N callers on a warm key (the lookups alone).
//!
//! After the measurements it checks that every cold key was loaded exactly once, so a change
//! that broke coalescing cannot pass as a faster benchmark.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sidecache::cache::loading::{Judgement, Loader, LoadingCache, LoadingSettings, Source};
use sidecache::cache::outcome::Served;
use sidecache::store::{MemoryStore, Weighed};
use tokio::task::JoinSet;

/// A 1 KiB value.
#[derive(Clone)]
struct Blob(Bytes);

impl Weighed for Blob {
    fn weight_bytes(&self) -> u32 {
        1024
    }

    fn retain_for(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

/// Counts its loads (in a counter the benchmark keeps a handle on); each load yields once, so
/// callers arriving meanwhile join it.
#[derive(Clone, Default)]
struct CountingLoader {
    loads: Arc<AtomicU64>,
}

impl Loader for CountingLoader {
    type Key = u64;
    type Request = ();
    type Value = Blob;
    type Private = ();
    type Error = ();

    fn judge(&self, _value: &Blob, _request: &()) -> Judgement {
        Judgement::Fresh
    }

    fn usable_on_error(&self, _value: &Blob, _request: &(), _error: &()) -> bool {
        false
    }

    async fn load_source(
        &self,
        _key: &u64,
        _request: &(),
        _current: Option<Blob>,
    ) -> Result<Source<Blob, ()>, ()> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        tokio::task::yield_now().await;
        Ok(Source::Fetched(Blob(Bytes::from_static(&[7; 1024]))))
    }
}

/// `callers` tasks ask for `key` at once; returns when all are answered.
async fn ask_together(cache: &LoadingCache<CountingLoader>, key: u64, callers: usize) {
    let mut asking = JoinSet::new();
    for _ in 0..callers {
        let cache = cache.clone();
        asking.spawn(async move {
            let outcome = cache.get(&key, &()).await;
            assert!(
                matches!(
                    outcome.served,
                    Served::Hit(Blob(ref body)) | Served::Fetched(Blob(ref body))
                        | Served::Shared(Blob(ref body)) if body.len() == 1024
                ),
                "every caller gets the value"
            );
        });
    }
    while let Some(done) = asking.join_next().await {
        done.expect("a caller panicked");
    }
}

fn single_flight(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let loader = CountingLoader::default();
    let store = MemoryStore::new(1 << 30, |_| {});
    let config = LoadingSettings {
        coalesce_timeout: Duration::from_secs(5),
        load_timeout: Duration::from_secs(60),
        hit_for_miss_ttl: Duration::from_secs(10),
        hit_for_miss_capacity_bytes: 1 << 20,
        max_waiters_per_key: 10_000,
    };
    let cache = runtime.block_on(async { LoadingCache::new(loader.clone(), store, config) });
    let warm_key = u64::MAX;
    runtime.block_on(ask_together(&cache, warm_key, 1));
    let cold_keys = AtomicU64::new(0);

    let mut group = c.benchmark_group("single flight (1 KiB)");
    for callers in [1, 16, 256] {
        group.bench_with_input(BenchmarkId::new("cold key", callers), &callers, |b, &n| {
            b.to_async(&runtime).iter(|| {
                let key = cold_keys.fetch_add(1, Ordering::Relaxed);
                ask_together(&cache, key, n)
            });
        });
        group.bench_with_input(BenchmarkId::new("warm key", callers), &callers, |b, &n| {
            b.to_async(&runtime)
                .iter(|| ask_together(&cache, warm_key, n));
        });
    }
    group.finish();

    // One load per cold key, plus the warm key's.
    let loads = loader.loads.load(Ordering::Relaxed);
    let keys = cold_keys.load(Ordering::Relaxed) + 1;
    assert_eq!(
        loads, keys,
        "{loads} loads for {keys} keys: coalescing broke"
    );
}

criterion_group!(benches, single_flight);
criterion_main!(benches);
