//! Traces end to end, against a real OTLP receiver, over both OTLP transports: the server span
//! joins the client's trace, the origin continues it, coalesced waiters link to the load they
//! waited on, the sampler is obeyed, shutdown flushes every span, and every span is counted
//! exported, failed or dropped.
//!
//! Each test runs on a current-thread runtime: sidecache's spans go through a subscriber scoped
//! to the test's thread (see `Sidecache::start_traced`).

use crate::support;

use std::time::Duration;

use support::otlp::{Receiver, Span, Spans};
use support::{Gate, Reply, Sidecache, TestClient, TestOrigin};

/// Runs `$scenario(protocol)` once for OTLP/gRPC and once for OTLP/HTTP protobuf.
macro_rules! both_protocols {
    ($($scenario:ident),* $(,)?) => {
        mod grpc {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario("grpc").await;
                }
            )*
        }
        mod http_protobuf {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario("http/protobuf").await;
                }
            )*
        }
    };
}

both_protocols!(
    a_request_joins_the_clients_trace_and_the_origin_continues_it,
    access_lines_cost_no_span,
    coalesced_waiters_link_to_the_leaders_load,
    the_sampler_decides_what_is_exported,
    shutdown_flushes_every_span,
    shutdown_is_bounded_when_the_collector_hangs,
    every_span_is_counted_exported_failed_or_dropped,
);

/// A W3C `traceparent` for trace `trace_id` with parent `span_id`.
fn traceparent(trace_id: &str, span_id: &str, sampled: bool) -> String {
    format!(
        "00-{trace_id}-{span_id}-{}",
        if sampled { "01" } else { "00" }
    )
}

/// A fresh trace id per use, so the tests of one binary never share a trace.
fn trace_id(n: u8) -> String {
    format!("{:016x}{:014x}{n:02x}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    (u64::from(nanos) << 16 | NEXT.fetch_add(1, Ordering::Relaxed)) & 0x00ff_ffff_ffff_ffff
}

/// Flags that trace to `receiver` over `protocol`. The batch delay is an hour, so spans reach
/// the receiver only through the flush at shutdown.
fn traced<'a>(endpoint: &'a str, protocol: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = vec![
        "--otlp-endpoint",
        endpoint,
        "--otlp-protocol",
        protocol,
        "--service-name",
        "sidecache-test",
        "--trace-batch-delay",
        "1h",
        "--shutdown-grace",
        "10s",
    ];
    flags.extend_from_slice(extra);
    flags
}

/// The `traceparent` the origin received on its `n`th request (0-based).
fn origin_traceparent(origin: &TestOrigin, n: usize) -> String {
    origin.seen()[n]
        .headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn a_request_joins_the_clients_trace_and_the_origin_continues_it(protocol: &str) {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let origin =
        TestOrigin::start(|_, _| Reply::ok("body").header("cache-control", "max-age=60")).await;
    let endpoint = receiver.endpoint(protocol);
    let (sidecache, _subscriber) =
        Sidecache::start_traced(&origin.url(), &traced(&endpoint, protocol, &[])).await;
    let client = TestClient::new();
    let (miss_trace, hit_trace) = (trace_id(1), trace_id(2));
    let client_span = "00f067aa0ba902b7";

    let miss = client
        .get_with(
            &sidecache.url("/page?lang=en"),
            &[
                ("traceparent", &traceparent(&miss_trace, client_span, true)),
                ("tracestate", "vendor=1"),
                ("user-agent", "tracing-test/1.0"),
            ],
        )
        .await;
    assert_eq!(miss.status, 200);
    let hit = client
        .get_with(
            &sidecache.url("/page?lang=en"),
            &[("traceparent", &traceparent(&hit_trace, client_span, true))],
        )
        .await;
    assert!(
        hit.cache_status().contains("; hit"),
        "{}",
        hit.cache_status()
    );
    let forwarded = origin_traceparent(&origin, 0);
    let tracestate = origin.seen()[0].headers["tracestate"].clone();
    let proxy_port = sidecache.proxy_addr.port();
    sidecache.stop().await;
    let spans = receiver.stop().await;

    // The miss: a server span continuing the client's span, with the HTTP attributes.
    let server = spans.server(&miss_trace);
    assert_eq!(server.name(), "GET");
    assert_eq!(server.parent_span_id(), client_span);
    assert_eq!(server.service_name(), "sidecache-test");
    for (key, value) in [
        ("http.request.method", "GET"),
        ("url.path", "/page"),
        ("url.query", "lang=en"),
        ("url.scheme", "http"),
        ("server.address", "127.0.0.1"),
        ("network.protocol.version", "1.1"),
        ("client.address", "127.0.0.1"),
        ("user_agent.original", "tracing-test/1.0"),
        ("cache.result", "miss"),
    ] {
        assert_eq!(server.attr(key), value, "{key}: {server:#?}");
    }
    assert_eq!(server.attr("http.response.status_code"), 200);
    assert_eq!(server.attr("server.port"), u64::from(proxy_port));
    assert!(server.attr("error.type").is_null());
    assert_eq!(server.status(), "unset");

    // Its children: the lookup, and the load, which looked once more (a load finished meanwhile
    // would have stored the value), fetched from the origin and stored.
    spans.child(server, "cache lookup");
    let load = spans.child(server, "cache load");
    spans.child(load, "cache lookup");
    let fetch = spans.child(load, "GET");
    assert_eq!(fetch.kind(), "client");
    assert_eq!(fetch.attr("http.response.status_code"), 200);
    assert_eq!(
        fetch.attr("url.full").as_str(),
        Some(format!("{}/page?lang=en", origin.url()).as_str())
    );
    assert_eq!(fetch.attr("server.port"), u64::from(origin.addr.port()));
    spans.child(load, "cache store");

    // The origin continued the same trace, with the fetch span as its parent.
    assert_eq!(
        forwarded,
        traceparent(&miss_trace, fetch.span_id(), true),
        "the origin's traceparent"
    );
    assert_eq!(tracestate, "vendor=1");

    // The hit: its own server span, answered from the lookup alone.
    let hit_server = spans.server(&hit_trace);
    assert_eq!(hit_server.attr("cache.result"), "hit");
    assert_eq!(spans.child_names(hit_server), ["cache lookup"]);
    assert_eq!(origin.seen().len(), 1);
}

/// With access lines on (`development`), every span of a miss and a hit is still exported. The
/// access line's `enabled!` check, which only the log lines answer yes to, used to make the
/// span layer drop the lookup's span that followed it (see `telemetry::uncached`).
async fn access_lines_cost_no_span(protocol: &str) {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let origin =
        TestOrigin::start(|_, _| Reply::ok("body").header("cache-control", "max-age=60")).await;
    let endpoint = receiver.endpoint(protocol);
    let flags = traced(&endpoint, protocol, &["--log-level", "development"]);
    let (sidecache, _subscriber) = Sidecache::start_traced(&origin.url(), &flags).await;
    let client = TestClient::new();
    let (miss_trace, hit_trace) = (trace_id(20), trace_id(21));
    for trace in [&miss_trace, &hit_trace] {
        let parent = traceparent(trace, "00f067aa0ba902b7", true);
        let response = client
            .get_with(&sidecache.url("/logged"), &[("traceparent", &parent)])
            .await;
        assert_eq!(response.status, 200);
    }
    sidecache.stop().await;
    let spans = receiver.stop().await;

    let miss = spans.server(&miss_trace);
    spans.child(miss, "cache lookup");
    let load = spans.child(miss, "cache load");
    spans.child(load, "cache lookup");
    spans.child(load, "cache store");
    let hit = spans.server(&hit_trace);
    assert_eq!(hit.attr("cache.result"), "hit");
    assert_eq!(spans.child_names(hit), ["cache lookup"]);
}

async fn coalesced_waiters_link_to_the_leaders_load(protocol: &str) {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok("shared")
            .header("cache-control", "max-age=60")
            .gated(&origin_gate)
    })
    .await;
    let endpoint = receiver.endpoint(protocol);
    let (sidecache, _subscriber) =
        Sidecache::start_traced(&origin.url(), &traced(&endpoint, protocol, &[])).await;
    let client = TestClient::new();
    let get = |trace: String| {
        let (client, url) = (client.clone(), sidecache.url("/cold"));
        tokio::spawn(async move {
            let parent = traceparent(&trace, "1111111111111111", true);
            client.get_with(&url, &[("traceparent", &parent)]).await
        })
    };
    let leader_trace = trace_id(10);
    let leader = get(leader_trace.clone());
    origin.arrivals(1).await;
    let waiter_traces: Vec<_> = (0..3).map(|n| trace_id(11 + n)).collect();
    let waiters: Vec<_> = waiter_traces.iter().cloned().map(get).collect();
    // Every waiter has joined the leader's load before it may finish.
    support::wait_until(|| sidecache.proxy.cache().waiting() == 3).await;
    gate.open();
    assert_eq!(leader.await.expect("leader").status, 200);
    for waiter in waiters {
        let got = waiter.await.expect("waiter");
        assert!(
            got.cache_status().contains("collapsed"),
            "{}",
            got.cache_status()
        );
    }
    sidecache.stop().await;
    let spans = receiver.stop().await;

    let leader_server = spans.server(&leader_trace);
    assert_eq!(leader_server.attr("cache.result"), "miss");
    let load = spans.child(leader_server, "cache load");
    for trace in &waiter_traces {
        let waiter = spans.server(trace);
        assert_eq!(waiter.attr("cache.result"), "coalesced", "{waiter:#?}");
        assert_eq!(
            waiter.links(),
            [(load.trace_id().to_owned(), load.span_id().to_owned())],
            "a waiter links to the load it waited on"
        );
        // A waiter runs no load of its own.
        assert!(spans.named(trace, "cache load").is_empty());
    }
    assert_eq!(origin.count("/cold"), 1);
}

async fn the_sampler_decides_what_is_exported(protocol: &str) {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let origin =
        TestOrigin::start(|_, _| Reply::ok("body").header("cache-control", "max-age=60")).await;
    let endpoint = receiver.endpoint(protocol);
    let client = TestClient::new();

    // traceidratio 0: nothing at all, whatever the client asks for.
    let flags = traced(
        &endpoint,
        protocol,
        &[
            "--trace-sampler",
            "traceidratio",
            "--trace-sampler-arg",
            "0",
        ],
    );
    let (sidecache, subscriber) = Sidecache::start_traced(&origin.url(), &flags).await;
    let never = trace_id(20);
    client
        .get_with(
            &sidecache.url("/never"),
            &[(
                "traceparent",
                &traceparent(&never, "2222222222222222", true),
            )],
        )
        .await;
    client.get(&sidecache.url("/never-either")).await;
    // Even unsampled, the trace is propagated (sampled flag off), from inside the load's task.
    let root = origin
        .seen()
        .iter()
        .find(|seen| seen.path == "/never-either")
        .and_then(|seen| seen.headers.get("traceparent").cloned())
        .expect("the origin got a traceparent for an unsampled root");
    assert!(
        root.to_str().is_ok_and(|value| value.ends_with("-00")),
        "{root:?}"
    );
    sidecache.stop().await;
    drop(subscriber);

    // parentbased_always_on (the default): an unsampled client trace stays unsampled, and the
    // origin is told so; a sampled one is exported.
    let (sidecache, _subscriber) =
        Sidecache::start_traced(&origin.url(), &traced(&endpoint, protocol, &[])).await;
    let (unsampled, sampled) = (trace_id(21), trace_id(22));
    client
        .get_with(
            &sidecache.url("/unsampled"),
            &[(
                "traceparent",
                &traceparent(&unsampled, "3333333333333333", false),
            )],
        )
        .await;
    client
        .get_with(
            &sidecache.url("/sampled"),
            &[(
                "traceparent",
                &traceparent(&sampled, "4444444444444444", true),
            )],
        )
        .await;
    let unsampled_parent = origin
        .seen()
        .iter()
        .find(|seen| seen.path == "/unsampled")
        .and_then(|seen| seen.headers.get("traceparent").cloned())
        .expect("the origin got a traceparent");
    sidecache.stop().await;
    let spans = receiver.stop().await;

    let traces: std::collections::BTreeSet<_> = spans.iter().map(Span::trace_id).collect();
    assert_eq!(
        traces.into_iter().collect::<Vec<_>>(),
        [sampled.as_str()],
        "only the sampled client trace is exported: {spans:#?}"
    );
    let unsampled_parent = unsampled_parent.to_str().expect("ascii");
    assert!(
        unsampled_parent.starts_with(&format!("00-{unsampled}-"))
            && unsampled_parent.ends_with("-00"),
        "{unsampled_parent}"
    );
    // sidecache's own (unsampled) request span is the origin's parent, not the client's span.
    assert!(
        !unsampled_parent.contains("3333333333333333"),
        "{unsampled_parent}"
    );
}

async fn shutdown_flushes_every_span(protocol: &str) {
    let Some(mut receiver) = Receiver::start().await else {
        return;
    };
    let origin =
        TestOrigin::start(|_, _| Reply::ok("body").header("cache-control", "max-age=60")).await;
    let endpoint = receiver.endpoint(protocol);
    // An hour's batch delay: nothing is sent before the shutdown flush.
    let (sidecache, _subscriber) =
        Sidecache::start_traced(&origin.url(), &traced(&endpoint, protocol, &[])).await;
    let client = TestClient::new();
    let traces: Vec<_> = (0..5).map(|n| trace_id(30 + n)).collect();
    for (n, trace) in traces.iter().enumerate() {
        client
            .get_with(
                &sidecache.url(&format!("/flush/{n}")),
                &[("traceparent", &traceparent(trace, "5555555555555555", true))],
            )
            .await;
    }
    sidecache.stop().await;
    // Every request's spans arrive: server, lookup, load, the load's lookup, fetch, store.
    receiver
        .wait_for(Duration::from_secs(10), |spans| {
            traces
                .iter()
                .all(|trace| spans.iter().filter(|s| s.trace_id() == trace).count() == 6)
        })
        .await;
    receiver.stop().await;
}

async fn shutdown_is_bounded_when_the_collector_hangs(protocol: &str) {
    let (endpoint, holding) = hanging_collector().await;
    let origin = TestOrigin::start(|_, _| Reply::ok("body")).await;
    let flags = [
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        protocol,
        "--trace-export-timeout",
        "60s",
        "--shutdown-grace",
        "1s",
    ];
    let (sidecache, _subscriber) = Sidecache::start_traced(&origin.url(), &flags).await;
    let got = TestClient::new().get(&sidecache.url("/x")).await;
    assert_eq!(got.status, 200);
    let started = std::time::Instant::now();
    let drained = tokio::time::timeout(Duration::from_secs(10), sidecache.stop())
        .await
        .expect("the drain ends although the collector never answers");
    assert_eq!(drained, sidecache::server::Drained::Cleanly);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the flush took {:?} with a 1 s grace",
        started.elapsed()
    );
    holding.abort();
}

/// The span counters, read from `sidecache`'s metrics: (exported, failed, dropped).
async fn span_counts(sidecache: &Sidecache) -> (f64, f64, f64) {
    let scrape = sidecache.metrics().await;
    let count = |outcome: &str| scrape.value(&format!("sidecache_trace_spans_{outcome}_total"));
    (count("exported"), count("failed"), count("dropped"))
}

/// Scrapes until the span counters read `expected`: spans end, and exports finish, a little
/// after the answers their requests got.
async fn until_span_counts(sidecache: &Sidecache, expected: (f64, f64, f64)) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counts = span_counts(sidecache).await;
        if counts == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "span counts (exported, failed, dropped) {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A "collector" that accepts connections and never answers; its address, and the task holding
/// its connections.
async fn hanging_collector() -> (String, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    (endpoint, holding)
}

/// Every finished span is counted once: exported when the collector takes it, failed when its
/// export fails, dropped when the export queue is full. A miss makes six spans, a hit two.
async fn every_span_is_counted_exported_failed_or_dropped(protocol: &str) {
    let origin =
        TestOrigin::start(|_, _| Reply::ok("body").header("cache-control", "max-age=60")).await;
    let client = TestClient::new();
    let workload = |sidecache: &Sidecache, path: &'static str| {
        let (client, url) = (client.clone(), sidecache.url(path));
        async move {
            for _ in 0..4 {
                assert_eq!(client.get(&url).await.status, 200);
            }
        }
    };
    const SPANS: f64 = 6.0 + 3.0 * 2.0;
    let quick_batches = ["--trace-batch-size", "1", "--trace-batch-delay", "1ms"];

    // A collector that never answers, and exports that wait a minute for it: the first spans
    // fill the queue of four, every later one is dropped.
    let (endpoint, holding) = hanging_collector().await;
    let mut flags = vec![
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        protocol,
        "--trace-queue-size",
        "4",
        "--trace-export-timeout",
        "60s",
        "--shutdown-grace",
        "1s",
    ];
    flags.extend_from_slice(&quick_batches);
    let (sidecache, subscriber) = Sidecache::start_traced(&origin.url(), &flags).await;
    workload(&sidecache, "/held").await;
    until_span_counts(&sidecache, (0.0, 0.0, SPANS - 4.0)).await;
    sidecache.stop().await;
    drop(subscriber);

    // Exports that give up on it after 100 ms: each span fails, none waits long enough to be
    // dropped.
    let mut flags = vec![
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        protocol,
        "--trace-export-timeout",
        "100ms",
    ];
    flags.extend_from_slice(&quick_batches);
    let (sidecache, subscriber) = Sidecache::start_traced(&origin.url(), &flags).await;
    workload(&sidecache, "/failed").await;
    until_span_counts(&sidecache, (0.0, SPANS, 0.0)).await;
    sidecache.stop().await;
    drop(subscriber);
    holding.abort();

    // A collector that answers: each span is exported, and arrives.
    let Some(mut receiver) = Receiver::start().await else {
        return;
    };
    let endpoint = receiver.endpoint(protocol);
    let mut flags = vec!["--otlp-endpoint", &endpoint, "--otlp-protocol", protocol];
    flags.extend_from_slice(&quick_batches);
    let (sidecache, _subscriber) = Sidecache::start_traced(&origin.url(), &flags).await;
    workload(&sidecache, "/exported").await;
    until_span_counts(&sidecache, (SPANS, 0.0, 0.0)).await;
    receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans.len() == SPANS as usize
        })
        .await;
    sidecache.stop().await;
    receiver.stop().await;
}
