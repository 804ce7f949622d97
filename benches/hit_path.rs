//! The hit path without sockets: L1 lookup, judgement, and building the response; then the same
//! with what the end-of-request hook records, and with the server span as the proxy opens it
//! under the binary's subscriber (tracing off; tracing on, sampling 1 % or every request).

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use sidecache::cache::key::CacheKey;
use sidecache::cache::loading::{LoadingCache, LoadingConfig, Lookup, Served};
use sidecache::cache::object::{CachedObject, Variant};
use sidecache::cache::policy::{PolicyConfig, ResponsePolicy};
use sidecache::cache::vary::VaryKey;
use sidecache::metrics;
use sidecache::origin::metrics::OriginMetrics;
use sidecache::origin::{HostHeader, OriginClient, OriginSettings};
use sidecache::proxy::cache_status::{CacheResult, CacheStatus};
use sidecache::proxy::loader::OriginLoader;
use sidecache::proxy::metrics::ProxyMetrics;
use sidecache::proxy::request::{CarriedFields, RequestHead};
use sidecache::proxy::respond;
use sidecache::proxy::trace::RequestTrace;
use sidecache::stats::Stats;
use sidecache::store::MemoryStore;
use sidecache::telemetry::{self, LogConfig, LogFormat, Ratio, SamplerKind, Tracing};

/// Receives batches and drops them: the cost measured is sidecache's and the SDK's, not a
/// network's.
#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// Tracing on, sampling `ratio` of the requests that arrive without a `traceparent`, exporting
/// through the SDK's batch processor (as the binary does) into [`Discard`].
/// Tracing on as `--trace-sampler parentbased_traceidratio --trace-sampler-arg RATIO` sets it
/// up, exporting to nowhere.
fn tracing_on(ratio: f64) -> Tracing {
    let ratio = Ratio::new(ratio).expect("a ratio");
    Tracing::with_exporter(Discard, SamplerKind::ParentbasedTraceIdRatio, Some(ratio))
}

fn stored_object(request: &HeaderMap) -> Arc<CachedObject> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("content-length", HeaderValue::from_static("1024"));
    let now = SystemTime::now();
    let policy = ResponsePolicy::new(
        &Method::GET,
        request,
        StatusCode::OK,
        &headers,
        now,
        now,
        &PolicyConfig::default(),
    );
    let vary = VaryKey::capture(&headers, request).expect("no Vary: *");
    let variant = Variant::new(
        StatusCode::OK,
        &headers,
        Bytes::from(vec![b'x'; 1024]),
        policy,
        vary,
    );
    Arc::new(CachedObject::with_variant(None, variant))
}

fn hit_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let registry = metrics::new_registry().expect("registry");
    let origin = OriginClient::new(
        OriginSettings {
            url: Uri::from_static("http://127.0.0.1:9"),
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(1),
            host_header: HostHeader::Preserve,
            max_connections: 16,
        },
        OriginMetrics::register(&registry).expect("origin metrics"),
    )
    .expect("origin");
    let proxy_metrics = ProxyMetrics::register(&registry).expect("proxy metrics");
    let stats = Stats::new(Duration::from_secs(60), SystemTime::now());
    let cache = runtime.block_on(async {
        LoadingCache::new(
            OriginLoader::new(
                origin,
                PolicyConfig::default(),
                1 << 20,
                proxy_metrics.clone(),
            ),
            MemoryStore::new(1 << 30, |_| {}),
            LoadingConfig {
                coalesce_timeout: Duration::from_secs(5),
                load_timeout: Duration::from_secs(60),
                hit_for_miss_ttl: Duration::from_secs(10),
                max_waiters_per_key: 10_000,
            },
        )
    });
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("bench.test"));
    let carried = CarriedFields::of(&headers);
    let head = RequestHead::new(
        Method::GET,
        &Uri::from_static("/hot"),
        headers,
        carried,
        "127.0.0.1".parse().expect("ip"),
    )
    .expect("head");
    let key: CacheKey = head.key.clone();
    cache
        .store()
        .insert(key.clone(), stored_object(&head.headers));

    // A hit is answered without waiting, as `Proxy::handle` answers it.
    let hit = || {
        let started = Instant::now();
        let Lookup::Answered(answer) = cache.lookup(&key, &head) else {
            panic!("expected a hit");
        };
        let Served::Value(object) = answer.served else {
            panic!("expected a hit");
        };
        let variant = object.select(&head.headers).expect("variant");
        let now = SystemTime::now();
        let status = CacheStatus::hit(variant.policy.ttl_seconds(now));
        let response = respond::stored(variant, &head, &status, now);
        (response, started)
    };
    let mut group = c.benchmark_group("hit path (1 KiB)");
    group.bench_function("metrics off", |b| {
        b.iter(|| hit().0);
    });
    // Exactly what the end-of-request hook records for a hit.
    group.bench_function("metrics on", |b| {
        b.iter(|| {
            let (response, started) = hit();
            let elapsed = started.elapsed();
            proxy_metrics.record_request(CacheResult::Hit, elapsed, None);
            stats.record(CacheResult::Hit.stat_outcome(), elapsed);
            response
        });
    });
    group.finish();

    // The request as the proxy's outermost wrapper sees it, and the binary's subscriber (text
    // logs at info, to nowhere).
    let (parts, ()) = http::Request::get("/hot")
        .header("host", "bench.test")
        .header("user-agent", "bench/1")
        .body(())
        .expect("request")
        .into_parts();
    let client = "127.0.0.1:40000".parse().expect("address");
    let log = LogConfig {
        format: LogFormat::Text,
        level: "info".to_owned(),
    };
    let mut group = c.benchmark_group("hit path with the request wrapper (1 KiB)");
    for (name, tracing) in [
        ("tracing off", Tracing::disabled()),
        ("tracing on, sampled 1%", tracing_on(0.01)),
        ("tracing on, sampled 100%", tracing_on(1.0)),
    ] {
        let subscriber = telemetry::subscriber_writing_to(&log, &tracing, None, std::io::sink)
            .expect("subscriber");
        let _scoped = tracing::subscriber::set_default(subscriber);
        let sampler = tracing.request_sampler();
        group.bench_function(name, |b| {
            b.iter(|| {
                // What `Proxy::handle` and its end-of-request hook do around the hit.
                let trace = match &sampler {
                    Some(sampler) => RequestTrace::open(
                        &parts,
                        CarriedFields::of(&parts.headers),
                        client,
                        sampler,
                    ),
                    None => RequestTrace::off(),
                };
                let _entered = trace.span().enter();
                let (response, started) = hit();
                let elapsed = started.elapsed();
                proxy_metrics.record_request(CacheResult::Hit, elapsed, None);
                stats.record(CacheResult::Hit.stat_outcome(), elapsed);
                trace.finish(response.status(), CacheResult::Hit, None);
                drop(_entered);
                response
            });
        });
        drop(_scoped);
        runtime.block_on(tracing.shutdown(Duration::from_secs(5)));
    }
    group.finish();
}

criterion_group!(benches, hit_path);
criterion_main!(benches);
