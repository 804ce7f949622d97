//! Observability: after a known workload every counter, histogram count and gauge equals what
//! happened; the exposition passes `promtool check metrics`; a real Prometheus scrapes it and
//! computes the hit ratio.

use crate::support;

use std::process::{Command, Stdio};

use bytes::Bytes;
use http::Method;
use sidecache::store::Store;
use support::prometheus::Prometheus;
use support::{Gate, Reply, Scrape, Sidecache, TestClient, TestOrigin, wait_for_value};

/// What the workload below does, as the truth the counters are compared with.
struct Truth {
    hits: u64,
    misses: u64,
    coalesced: u64,
    passes: u64,
    errors: u64,
    /// Answers with a 5xx status (every other answer is a 2xx).
    answered_5xx: u64,
    origin_2xx: u64,
    origin_5xx: u64,
    refused_private: u64,
    invalidated: u64,
    stored: u64,
    entries: u64,
}

/// Runs a known mix of misses, hits, a coalesced burst, uncacheable requests, an unsafe method,
/// origin errors and a purge, asserting each answer on the way.
async fn known_workload(origin: &TestOrigin, gate: &Gate, sidecache: &Sidecache) -> Truth {
    let client = TestClient::new();
    let get = |path: &'static str| {
        let (client, url) = (client.clone(), sidecache.url(path));
        async move { client.get(&url).await }
    };
    let expect = |got: &support::Got, status: u16, part: &str| {
        assert_eq!(got.status, status, "{}", got.cache_status());
        assert!(got.cache_status().contains(part), "{}", got.cache_status());
    };

    // 5 misses, then 3 hits each.
    for path in ["/c/1", "/c/2", "/c/3", "/c/4", "/c/5"] {
        expect(&get(path).await, 200, "fwd=uri-miss");
        for _ in 0..3 {
            expect(&get(path).await, 200, "; hit");
        }
    }

    // A burst of 10 on one cold key: one leader, nine waiters sharing its load.
    let burst: Vec<_> = (0..10).map(|_| tokio::spawn(get("/burst"))).collect();
    origin.arrivals(6).await;
    let cache = sidecache.proxy.cache();
    support::wait_until(|| cache.waiting() == 9).await;
    gate.open();
    let mut collapsed = 0;
    for request in burst {
        let got = request.await.expect("burst request");
        assert_eq!(got.status, 200);
        collapsed += u64::from(got.cache_status().contains("collapsed"));
    }
    assert_eq!(collapsed, 9);

    // Uncacheable: the first is a miss, the next three pass (hit-for-miss).
    expect(&get("/private").await, 200, "detail=private");
    for _ in 0..3 {
        expect(&get("/private").await, 200, "detail=hit-for-miss");
    }

    // An unsafe method passes and invalidates /c/1, which is then a miss again.
    let post = client
        .send(Method::POST, &sidecache.url("/c/1"), &[], Bytes::from("x"))
        .await;
    expect(&post, 200, "fwd=method");
    expect(&get("/c/1").await, 200, "fwd=uri-miss");

    // Two origin errors, each its own load.
    for _ in 0..2 {
        expect(&get("/fail").await, 503, "detail=origin-error-status");
    }

    // A purge removes the five /c/ URLs; /c/2 is then a miss.
    let purge = client
        .send(
            Method::POST,
            &sidecache.admin_url("/purge?prefix=/c/"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(purge.text(), "{\"purged\":5}\n");
    expect(&get("/c/2").await, 200, "fwd=uri-miss");

    Truth {
        hits: 15,
        misses: 5 + 1 + 1 + 1 + 1,
        coalesced: 9,
        passes: 3 + 1,
        errors: 2,
        answered_5xx: 2,
        origin_2xx: 5 + 1 + 4 + 1 + 1 + 1,
        origin_5xx: 2,
        refused_private: 4,
        invalidated: 1 + 5,
        // The five /c/ misses, the burst's load, /c/1 after the POST and /c/2 after the purge.
        stored: 5 + 1 + 1 + 1,
        entries: 2,
    }
}

async fn workload_origin(gate: &Gate) -> TestOrigin {
    let gate = gate.clone();
    TestOrigin::start(move |seen, n| match seen.path.as_str() {
        "/burst" => Reply::ok("burst")
            .header("cache-control", "max-age=60")
            .gated(&gate),
        "/private" => Reply::ok(format!("private {n}")).header("cache-control", "private"),
        "/fail" => Reply::new(503, "down"),
        _ => Reply::ok("cacheable").header("cache-control", "max-age=60"),
    })
    .await
}

#[tokio::test]
async fn after_a_known_workload_every_counter_equals_what_happened() {
    let gate = Gate::new();
    let origin = workload_origin(&gate).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let truth = known_workload(&origin, &gate, &sidecache).await;
    let all = truth.hits + truth.misses + truth.coalesced + truth.passes + truth.errors;
    // Every request ended with its whole answer handed over (the last body ends on the server a
    // moment after the client has read it).
    let ended = |outcome: &str| format!("sidecache_requests_ended_total{{outcome=\"{outcome}\"}}");
    wait_for_value(&sidecache, &ended("completed"), all as f64).await;
    let scrape = sidecache.metrics().await;
    for outcome in ["body_aborted", "client_closed", "cut_off"] {
        assert_eq!(
            scrape.value(&ended(outcome)),
            0.0,
            "requests ended {outcome}"
        );
    }

    let requests = |result: &str| {
        scrape.value(&format!(
            "sidecache_requests_total{{cache_result=\"{result}\"}}"
        ))
    };
    let timed = |result: &str| {
        scrape.value(&format!(
            "sidecache_request_duration_seconds_count{{cache_result=\"{result}\"}}"
        ))
    };
    let expected = [
        ("hit", truth.hits),
        ("miss", truth.misses),
        ("coalesced", truth.coalesced),
        ("pass", truth.passes),
        ("error", truth.errors),
        ("stale", 0),
        ("revalidated", 0),
    ];
    for (result, count) in expected {
        assert_eq!(requests(result), count as f64, "requests_total {result}");
        assert_eq!(timed(result), count as f64, "duration count {result}");
    }

    let responses = |class: &str| {
        scrape.value(&format!(
            "sidecache_responses_total{{code_class=\"{class}\"}}"
        ))
    };
    assert_eq!(responses("2xx"), (all - truth.answered_5xx) as f64);
    assert_eq!(responses("5xx"), truth.answered_5xx as f64);
    for class in ["1xx", "3xx", "4xx"] {
        assert_eq!(responses(class), 0.0, "responses {class}");
    }

    // The origin's own count is the truth for loads.
    let origin_total = origin.seen().len() as u64;
    assert_eq!(origin_total, truth.origin_2xx + truth.origin_5xx);
    let outcome = |o: &str| {
        scrape.value(&format!(
            "sidecache_origin_requests_total{{outcome=\"{o}\"}}"
        ))
    };
    assert_eq!(outcome("2xx"), truth.origin_2xx as f64);
    assert_eq!(outcome("5xx"), truth.origin_5xx as f64);
    for o in [
        "1xx",
        "3xx",
        "4xx",
        "connect_error",
        "timeout",
        "protocol_error",
        "aborted",
    ] {
        assert_eq!(outcome(o), 0.0, "origin {o}");
    }
    assert_eq!(
        scrape.value("sidecache_origin_request_duration_seconds_count"),
        origin_total as f64
    );

    let waiters = |o: &str| {
        scrape.value(&format!(
            "sidecache_coalesce_waiters_total{{outcome=\"{o}\"}}"
        ))
    };
    assert_eq!(waiters("shared"), truth.coalesced as f64);
    for o in [
        "refetch_uncacheable",
        "timeout",
        "leader_error",
        "queue_full",
    ] {
        assert_eq!(waiters(o), 0.0, "waiters {o}");
    }
    assert_eq!(
        scrape.value("sidecache_store_refused_total{reason=\"private\"}"),
        truth.refused_private as f64
    );
    assert_eq!(
        scrape.value("sidecache_invalidations_total"),
        truth.invalidated as f64
    );
    let evicted =
        |cause: &str| scrape.value(&format!("sidecache_evictions_total{{cause=\"{cause}\"}}"));
    assert_eq!(evicted("explicit"), truth.invalidated as f64);
    for cause in ["size", "expired", "replaced"] {
        assert_eq!(evicted(cause), 0.0, "evictions {cause}");
    }
    let stores =
        |outcome: &str| scrape.value(&format!("sidecache_stores_total{{outcome=\"{outcome}\"}}"));
    assert_eq!(stores("stored"), truth.stored as f64);
    assert_eq!(stores("refused"), 0.0);

    let store = sidecache.proxy.cache().store();
    assert_eq!(scrape.value("sidecache_entries"), truth.entries as f64);
    assert_eq!(store.entry_count(), truth.entries);
    assert_eq!(
        scrape.value("sidecache_size_bytes"),
        store.size_bytes() as f64
    );
    assert!(store.size_bytes() > 0);
    assert_eq!(
        scrape.value("sidecache_capacity_bytes"),
        (256 * 1024 * 1024) as f64
    );
    for gauge in [
        "sidecache_inflight_loads",
        "sidecache_inflight_requests",
        "sidecache_coalesce_waiting",
    ] {
        assert_eq!(scrape.value(gauge), 0.0, "{gauge}");
    }
    // Labelled with the build the test runs: the commit the build script found, the profile.
    let build_info = format!(
        "sidecache_build_info{{commit=\"{}\",profile=\"{}\",version=\"0.1.0\"}}",
        sidecache::build::COMMIT,
        sidecache::build::PROFILE
    );
    assert_eq!(scrape.value(&build_info), 1.0, "{build_info}");
    assert_eq!(
        sidecache::build::PROFILE,
        "debug",
        "tests are built in the debug profile"
    );

    // The windowed stats agree with the counters.
    let stats = TestClient::new().get(&sidecache.admin_url("/stats")).await;
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).expect("stats JSON");
    let cycle = &stats["cycle"];
    assert_eq!(cycle["hits"], truth.hits);
    assert_eq!(
        cycle["misses"],
        truth.misses + truth.coalesced + truth.passes
    );
    assert_eq!(cycle["errors"], truth.errors);
    assert_eq!(cycle["requests"], all);
    assert_eq!(cycle["manual_misses"], truth.invalidated);
    assert_eq!(cycle["hit_rate"], truth.hits as f64 / all as f64);
    assert_eq!(stats["entries"], truth.entries);
    assert_eq!(stats["last"]["requests"], 0);
    sidecache.stop().await;
}

/// Every class of answer is counted once, whether the origin or sidecache gave its status; a
/// code past 599 (invalid, but an origin may send one) counts as a server error.
#[tokio::test]
async fn responses_are_counted_by_the_class_of_their_status() {
    let origin = TestOrigin::start(|seen, _| match seen.path.as_str() {
        "/moved" => Reply::new(301, "").header("location", "/ok"),
        "/missing" => Reply::new(404, "no"),
        "/broken" => Reply::new(500, "down"),
        "/odd" => Reply::new(600, "odd"),
        _ => Reply::ok("ok")
            .header("cache-control", "max-age=60")
            .header("etag", "\"v1\""),
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let mut statuses = Vec::new();
    for path in ["/ok", "/moved", "/missing", "/broken", "/odd"] {
        statuses.push(client.get(&sidecache.url(path)).await.status.as_u16());
    }
    // A conditional hit: sidecache's own 304.
    let revalidated = client
        .get_with(&sidecache.url("/ok"), &[("if-none-match", "\"v1\"")])
        .await;
    statuses.push(revalidated.status.as_u16());
    // No Host: sidecache's own 400.
    let refused = support::exchange(sidecache.proxy_addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(refused.starts_with("HTTP/1.0 400"), "{refused}");
    statuses.push(400);
    assert_eq!(statuses, [200, 301, 404, 500, 600, 304, 400]);

    let scrape = sidecache.metrics().await;
    let responses = |class: &str| {
        scrape.value(&format!(
            "sidecache_responses_total{{code_class=\"{class}\"}}"
        ))
    };
    for (class, count) in [
        ("1xx", 0.0),
        ("2xx", 1.0),
        ("3xx", 2.0),
        ("4xx", 2.0),
        ("5xx", 2.0),
    ] {
        assert_eq!(responses(class), count, "responses {class}");
    }
    // The same answers as the cache results count.
    let by_result: f64 = [
        "hit",
        "miss",
        "stale",
        "revalidated",
        "coalesced",
        "pass",
        "error",
    ]
    .iter()
    .map(|result| {
        scrape.value(&format!(
            "sidecache_requests_total{{cache_result=\"{result}\"}}"
        ))
    })
    .sum();
    assert_eq!(by_result, statuses.len() as f64);
    sidecache.stop().await;
}

#[tokio::test]
async fn the_exposition_passes_promtool_check_metrics() {
    let Some(promtool) = support::require_tool("promtool") else {
        return;
    };
    let gate = Gate::new();
    let origin = workload_origin(&gate).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    known_workload(&origin, &gate, &sidecache).await;
    let exposition = sidecache.metrics().await.text;
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    std::io::Write::write_all(
        &mut check.stdin.take().expect("stdin"),
        exposition.as_bytes(),
    )
    .expect("feed promtool");
    let output = check.wait_with_output().expect("promtool output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool: {report}");
    assert_eq!(report.trim(), "", "promtool found problems");
    sidecache.stop().await;
}

#[tokio::test]
async fn a_real_prometheus_scrapes_sidecache_and_computes_the_hit_ratio() {
    let Some(binary) = support::require_tool("prometheus") else {
        return;
    };
    let origin =
        TestOrigin::start(|_, _| Reply::ok("x").header("cache-control", "max-age=60")).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let prometheus = Prometheus::scraping(binary, sidecache.admin_addr).await;
    let client = TestClient::new();
    // 4 misses, 12 hits: a hit ratio of exactly 0.75.
    for key in 0..4 {
        let url = sidecache.url(&format!("/k/{key}"));
        for _ in 0..4 {
            client.get(&url).await;
        }
    }
    let hit_ratio = "sum(sidecache_requests_total{cache_result=~\"hit|stale\"}) \
                     / sum(sidecache_requests_total)";
    prometheus.wait_for(hit_ratio, 0.75).await;
    prometheus
        .wait_for("sum(sidecache_requests_total{cache_result=\"miss\"})", 4.0)
        .await;
    prometheus.wait_for("up{job=\"sidecache\"}", 1.0).await;
    sidecache.stop().await;
}

#[test]
fn scrape_parsing_reads_labelled_series() {
    let scrape = Scrape::parse("# HELP a b\n# TYPE a counter\na{x=\"1\"} 3\nb 0.5\n");
    assert_eq!(scrape.value("a{x=\"1\"}"), 3.0);
    assert_eq!(scrape.value("b"), 0.5);
}
