//! Origin timeouts, stored objects and waiters per key.

use super::*;

// === origin timeouts ===

/// An origin that answers each connection with `head` (and what body bytes it holds), then keeps
/// the connection open without sending more.
struct StallingOrigin {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingOrigin {
    async fn start(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(answer).await;
                // Held open, silent, until the test ends.
                held.push(stream);
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StallingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_hanging_origin_gives_a_pass_through_504_within_the_origin_timeout() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| Reply::ok("late").gated(&origin_gate)).await;
    let sidecache = Sidecache::start(&origin.url(), &["--origin-timeout", "300ms"]).await;
    let started = Instant::now();
    let got = TestClient::new()
        .send(Method::POST, &sidecache.url("/hang"), &[], Bytes::from("x"))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "origin timed out\n");
    assert!(
        got.cache_status().contains("detail=origin-timeout"),
        "{}",
        got.cache_status()
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    gate.open();
    sidecache.stop().await;
}

/// A load's whole exchange is bounded: the head within --origin-timeout, the body within
/// --origin-body-timeout. An origin that stops mid-body gives 504, and nothing is stored.
#[tokio::test]
async fn an_origin_that_stops_mid_body_gives_504_within_the_body_timeout() {
    let origin = StallingOrigin::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nfirst ten.",
    )
    .await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--origin-body-timeout", "300ms", "--grace", "0s"],
    )
    .await;
    let client = TestClient::new();
    for round in 1..=2 {
        let started = Instant::now();
        let got = client.get(&sidecache.url("/stuck")).await;
        let elapsed = started.elapsed();
        assert_eq!(got.status, 504, "round {round}");
        assert!(
            got.cache_status().contains("detail=origin-body-timeout"),
            "{}",
            got.cache_status()
        );
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
        assert_eq!(origin.requests.load(Ordering::SeqCst), round, "not stored");
    }
    sidecache.stop().await;
}

/// A streamed body (here one that may not be stored) that stops mid-way is cut off after
/// --origin-read-timeout: the client sees the bytes sent so far, then the connection break.
#[tokio::test]
async fn a_streamed_origin_body_that_stalls_is_cut_off_after_the_read_timeout() {
    let origin = StallingOrigin::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: private\r\n\r\nfirst ten.",
    )
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--origin-read-timeout", "300ms"]).await;
    let started = Instant::now();
    let got = TestClient::new()
        .try_send(Method::GET, &sidecache.url("/drip"), &[], Bytes::new())
        .await;
    let elapsed = started.elapsed();
    match got {
        Err(Failed::Body {
            status, received, ..
        }) => assert_eq!((status.as_u16(), received), (200, 10)),
        other => panic!("expected a body cut off after 10 bytes, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    sidecache.stop().await;
}

// === stored objects ===

#[tokio::test]
async fn an_object_over_the_size_limit_is_passed_through_whole_and_counted_not_stored() {
    let body = Bytes::from(vec![b'z'; 4096]);
    let reply = body.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok(reply.clone()).header("cache-control", "max-age=60")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-object-size", "1KiB"]).await;
    let client = TestClient::new();
    for _ in 0..2 {
        let got = client.get(&sidecache.url("/big")).await;
        assert_eq!(got.status, 200);
        assert!(got.body == body, "whole");
    }
    assert_eq!(origin.count("/big"), 2, "not stored");
    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_store_refused_total{reason="too_large"}"#),
        2.0
    );
    assert_eq!(scrape.value("sidecache_entries"), 0.0);
    sidecache.stop().await;
}

// === waiters per key ===

/// A caller the full queue turns away gets the stored copy where it may stand in for a slow
/// load (the origin's `stale-if-error`, or `--grace`), not a 503.
#[tokio::test]
async fn callers_beyond_the_waiter_limit_get_a_stale_copy_that_may_stand_in() {
    for (cache_control, flags) in [
        ("max-age=60, stale-if-error=600", &[][..]),
        ("max-age=60", &["--grace", "600s"][..]),
    ] {
        let gate = Gate::new();
        let origin_gate = gate.clone();
        // The first answer is stored a minute stale; the load that replaces it is fresh.
        let origin = TestOrigin::start(move |_, nth| match nth {
            1 => Reply::ok("first")
                .header("cache-control", cache_control)
                .header("age", "120"),
            _ => Reply::ok("second")
                .header("cache-control", cache_control)
                .gated(&origin_gate),
        })
        .await;
        let mut all_flags = vec!["--max-waiters-per-key", "2", "--coalesce-timeout", "30s"];
        all_flags.extend_from_slice(flags);
        let sidecache = Sidecache::start(&origin.url(), &all_flags).await;
        let client = TestClient::new();
        let stored = client.get(&sidecache.url("/hot")).await;
        assert_eq!(stored.text(), "first");

        let spawn_get = || {
            let (client, url) = (client.clone(), sidecache.url("/hot"));
            tokio::spawn(async move { client.get(&url).await })
        };
        let leader = spawn_get();
        origin.arrivals(2).await;
        let waiters = [spawn_get(), spawn_get()];
        let cache = sidecache.proxy.cache().clone();
        wait_until(|| cache.waiting() == 2).await;

        let turned_away = client.get(&sidecache.url("/hot")).await;
        assert_eq!(
            (turned_away.status.as_u16(), turned_away.text().as_str()),
            (200, "first"),
            "{cache_control} {flags:?}"
        );
        let status = turned_away.cache_status();
        assert!(
            status.contains("detail=too-many-waiters") && !status.contains("collapsed"),
            "{status}"
        );
        assert_eq!(cache.waiting(), 2, "the turned-away caller was not queued");

        gate.open();
        for request in [leader].into_iter().chain(waiters) {
            assert_eq!(request.await.expect("request").text(), "second");
        }
        assert_eq!(origin.count("/hot"), 2, "one load each time, no herd");
        let scrape = sidecache.metrics().await;
        let requests = |result: &str| {
            scrape.value(&format!(
                "sidecache_requests_total{{cache_result=\"{result}\"}}"
            ))
        };
        assert_eq!(
            (requests("stale"), requests("error")),
            (1.0, 0.0),
            "{cache_control} {flags:?}"
        );
        assert_eq!(
            scrape.value("sidecache_coalesce_waiters_total{outcome=\"queue_full\"}"),
            1.0
        );
    }
}

#[tokio::test]
async fn callers_beyond_the_waiter_limit_get_503_and_the_queue_is_served() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok("loaded")
            .header("cache-control", "max-age=60")
            .gated(&origin_gate)
    })
    .await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--max-waiters-per-key", "2", "--coalesce-timeout", "30s"],
    )
    .await;
    let client = TestClient::new();
    let spawn_get = || {
        let (client, url) = (client.clone(), sidecache.url("/hot"));
        tokio::spawn(async move { client.get(&url).await })
    };
    let leader = spawn_get();
    origin.arrivals(1).await;
    let waiters = [spawn_get(), spawn_get()];
    let cache = sidecache.proxy.cache().clone();
    wait_until(|| cache.waiting() == 2).await;

    let refused = client.get(&sidecache.url("/hot")).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(
        refused.text(),
        "too many requests waiting for this URL; retry shortly\n"
    );
    assert!(
        refused.cache_status().contains("detail=too-many-waiters"),
        "{}",
        refused.cache_status()
    );
    assert_eq!(cache.waiting(), 2, "the refused caller was not queued");

    gate.open();
    let got = leader.await.expect("leader");
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "loaded"));
    for waiter in waiters {
        let got = waiter.await.expect("waiter");
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "loaded"));
        assert!(
            got.cache_status().contains("collapsed"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(origin.count("/hot"), 1, "one load, no herd");

    let scrape = sidecache.metrics().await;
    let waited = |outcome: &str| {
        scrape.value(&format!(
            "sidecache_coalesce_waiters_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(waited("shared"), 2.0);
    assert_eq!(waited("queue_full"), 1.0);
    let requests = |result: &str| {
        scrape.value(&format!(
            "sidecache_requests_total{{cache_result=\"{result}\"}}"
        ))
    };
    assert_eq!(
        (requests("miss"), requests("coalesced"), requests("error")),
        (1.0, 2.0, 1.0)
    );
    sidecache.stop().await;
}
