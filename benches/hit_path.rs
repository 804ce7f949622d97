//! The hit path without sockets: L1 lookup, judgement, and building the response; then the same
//! with what the end-of-request hook records, and with the server span as the proxy opens it
//! under the binary's subscriber (tracing off; tracing on, sampling 1 % or every request).

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use sidecache::body::RequestBody;
use sidecache::cache::loading::{LoadingCache, LoadingSettings};
use sidecache::config::Config;
use sidecache::http::key::CacheKey;
use sidecache::http::policy::{PolicySettings, ResponsePolicy};
use sidecache::http::stored::object::{CachedObject, Variant};
use sidecache::http::vary::VaryKey;
use sidecache::metrics;
use sidecache::origin::metrics::OriginMetrics;
use sidecache::origin::{HostHeader, OriginClient, OriginSettings};
use sidecache::proxy::loader::OriginLoader;
use sidecache::proxy::metrics::ProxyMetrics;
use sidecache::proxy::part_store::PartStore;
use sidecache::proxy::service::Proxy;
use sidecache::proxy::ttl_overrides::TtlOverrides;
use sidecache::server::{Client, Handled, Handler};
use sidecache::stats::Stats;
use sidecache::store::MemoryStore;
use sidecache::store::Store;
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
        &PolicySettings::default(),
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

/// A proxy in front of an origin that is never asked (every request is a hit), tracing as
/// `tracing` says, with one 1 KiB response stored for `/hot`.
fn proxy(runtime: &tokio::runtime::Runtime, tracing: &Tracing) -> Arc<Proxy> {
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
    let stats = Arc::new(Stats::new(Duration::from_secs(60), SystemTime::now()));
    let config = Config::default();
    let parts = PartStore::new(config.part_settings());
    let cache = runtime.block_on(async {
        LoadingCache::new(
            OriginLoader::new(
                origin,
                PolicySettings::default(),
                TtlOverrides::default(),
                1 << 20,
                proxy_metrics.clone(),
                parts.clone(),
            ),
            MemoryStore::new(1 << 30, |_| {}),
            LoadingSettings {
                coalesce_timeout: Duration::from_secs(5),
                load_timeout: Duration::from_secs(60),
                hit_for_miss_ttl: Duration::from_secs(10),
                hit_for_miss_capacity_bytes: 1 << 20,
                max_waiters_per_key: 10_000,
            },
        )
    });
    let (head, _) = request().into_parts();
    let key = CacheKey::from_request(&head.uri, &head.headers).expect("key");
    cache.store().insert(key, stored_object(&head.headers));
    let proxy = Proxy::new(
        cache,
        parts,
        proxy_metrics,
        stats,
        config.request_settings(),
    );
    Arc::new(proxy.with_tracing(tracing.request_sampler()))
}

/// The request every iteration sends: a hit on `/hot`.
fn request() -> Request<RequestBody> {
    Request::get("/hot")
        .header("host", "bench.test")
        .header("user-agent", "bench/1")
        .body(RequestBody::Empty)
        .expect("request")
}

fn hit_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = Client::new("127.0.0.1:40000".parse().expect("address"), 32);
    let log = LogConfig {
        format: LogFormat::Text,
        level: "info".to_owned(),
    };
    // The real handler, as the server calls it, with the binary's subscriber (text logs at
    // info, to nowhere): every phase, the metrics, the stats and (traced) the server span.
    let mut group = c.benchmark_group("hit path (1 KiB), Proxy::handle");
    for (name, tracing) in [
        ("tracing off", Tracing::disabled()),
        ("tracing on, sampled 1%", tracing_on(0.01)),
        ("tracing on, sampled 100%", tracing_on(1.0)),
    ] {
        let subscriber = telemetry::subscriber_writing_to(&log, &tracing, None, std::io::sink)
            .expect("subscriber");
        let _scoped = tracing::subscriber::set_default(subscriber);
        let proxy = proxy(&runtime, &tracing);
        group.bench_function(name, |b| {
            b.iter(|| match proxy.handle(request(), &client) {
                Handled::Now(response) => response,
                Handled::Later(_) => panic!("a hit is answered at once"),
            });
        });
        drop(_scoped);
        runtime.block_on(tracing.shutdown(Duration::from_secs(5)));
    }
    group.finish();
}

criterion_group!(benches, hit_path);
criterion_main!(benches);
