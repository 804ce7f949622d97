//! One client must not multiply the origin's load or sidecache's memory: origin connections are
//! bounded, a load nobody waits for is dropped, keys are weighed, a slow origin does not bring
//! the herd back, and requests the proxy has no business forwarding are refused.

use crate::support;

use bytes::Bytes;
use http::Method;
use support::fault_origin::{Behaviour, FaultOrigin};
use support::{Failed, Gate, Reply, Sidecache, TestClient, TestOrigin, exchange, wait_until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

// === origin connections ===

#[tokio::test]
async fn origin_connections_are_bounded_and_a_request_that_cannot_get_one_in_time_is_refused() {
    let gate = Gate::new();
    let held = gate.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok("slow page\n")
            .header("cache-control", "max-age=60")
            .gated(&held)
    })
    .await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--origin-max-connections",
            "2",
            "--origin-connect-timeout",
            "300ms",
        ],
    )
    .await;
    let client = TestClient::new();
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..5 {
        let (client, url) = (client.clone(), sidecache.url(&format!("/page/{index}")));
        requests.spawn(async move { client.get(&url).await });
    }
    origin.arrivals(2).await;
    // The three that found no free connection wait for one, then give up: the two loads hold
    // theirs until the gate opens.
    for _ in 0..3 {
        let refused = requests
            .join_next()
            .await
            .expect("a request")
            .expect("task");
        assert_eq!(refused.status, 503, "{}", refused.text());
        assert!(
            refused.cache_status().contains("detail=origin-busy"),
            "{}",
            refused.cache_status()
        );
        assert_eq!(refused.header("retry-after"), "1");
    }
    gate.open();
    while let Some(served) = requests.join_next().await {
        assert_eq!(served.expect("task").status, 200);
    }
    assert_eq!(
        origin.seen().len(),
        2,
        "no more than two origin requests at once"
    );
    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value("sidecache_origin_connection_refusals_total"),
        3.0
    );
    assert_eq!(scrape.value("sidecache_origin_connections_max"), 2.0);
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
        3.0
    );
    sidecache.stop().await;
}

/// Opens a connection, sends a GET for `path` and returns the connection, unread.
async fn send_and_keep(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: cache.test\r\n\r\n").as_bytes())
        .await
        .expect("send");
    stream
}

#[tokio::test]
async fn a_load_whose_only_client_leaves_is_dropped() {
    let origin = FaultOrigin::start(|_| Behaviour::Hang).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = send_and_keep(sidecache.proxy_addr, "/one-off").await;
    origin.arrivals(1).await;
    assert_eq!(origin.open_connections(), 1);
    drop(client);
    // Nobody wants the answer any more: the load is abandoned and its origin connection closed.
    wait_until(|| origin.open_connections() == 0).await;
    assert_eq!(sidecache.proxy.cache().in_flight(), 0);
}

#[tokio::test]
async fn a_load_two_clients_asked_for_finishes_for_the_cache_when_both_leave() {
    let gate = Gate::new();
    let held = gate.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok("wanted\n")
            .header("cache-control", "max-age=60")
            .gated(&held)
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let first = send_and_keep(sidecache.proxy_addr, "/wanted").await;
    origin.arrivals(1).await;
    let second = send_and_keep(sidecache.proxy_addr, "/wanted").await;
    sidecache.in_flight(2).await;
    drop((first, second));
    wait_until(|| sidecache.proxy.in_flight_requests() == 0).await;
    assert_eq!(sidecache.proxy.cache().in_flight(), 1, "the load goes on");
    gate.open();
    wait_until(|| sidecache.proxy.cache().in_flight() == 0).await;
    let got = TestClient::new()
        .get_with(&sidecache.url("/wanted"), &[("host", "cache.test")])
        .await;
    assert!(
        got.cache_status().starts_with("sidecache; hit"),
        "{}",
        got.cache_status()
    );
    assert_eq!(origin.count("/wanted"), 1);
}

// === key text ===

#[tokio::test]
async fn the_store_weighs_the_key_text_of_every_entry() {
    let origin =
        TestOrigin::start(|_, _| Reply::ok("x").header("cache-control", "max-age=600")).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--cache-capacity",
            "1MiB",
            "--max-object-size",
            "64KiB",
            "--max-uri-length",
            "64KiB",
            "--max-header-size",
            "64KiB",
        ],
    )
    .await;
    let client = TestClient::new();
    let long = "k".repeat(30_000);
    for index in 0..100 {
        let got = client
            .get(&sidecache.url(&format!("/{index}/{long}")))
            .await;
        assert_eq!(got.status, 200);
    }
    let scrape = sidecache.metrics().await;
    let (entries, bytes) = (
        scrape.value("sidecache_entries"),
        scrape.value("sidecache_size_bytes"),
    );
    assert!(bytes <= 1024.0 * 1024.0, "{bytes} bytes held");
    assert!(entries > 0.0);
    assert!(
        bytes / entries >= 30_000.0,
        "{entries} entries weighed {bytes} bytes: the keys' text is not counted"
    );
    assert!(entries < 35.0, "{entries} entries of 30 KB keys in 1 MiB");
}

#[tokio::test]
async fn a_request_target_longer_than_the_limit_is_answered_414() {
    let origin = TestOrigin::start(|_, _| Reply::ok("x")).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-uri-length", "1KiB"]).await;
    let client = TestClient::new();
    let fits = format!("/{}", "a".repeat(1023));
    assert_eq!(client.get(&sidecache.url(&fits)).await.status, 200);
    let too_long = format!("/{}", "a".repeat(1024));
    let refused = client.get(&sidecache.url(&too_long)).await;
    assert_eq!(refused.status, 414);
    let posted = client
        .send(
            Method::POST,
            &sidecache.url(&too_long),
            &[],
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(posted.status, 414);
    assert_eq!(
        origin.seen().len(),
        1,
        "the long ones never reached the origin"
    );
}

// === a slow origin ===

#[tokio::test]
async fn waiters_past_the_coalesce_bound_are_served_stale_without_another_origin_request() {
    let gate = Gate::new();
    let held = gate.clone();
    let origin = TestOrigin::start(move |_, sequence| {
        let reply = Reply::ok(format!("version {sequence}\n"))
            .header("cache-control", "max-age=0, stale-if-error=600")
            .header("etag", format!("\"v{sequence}\""));
        if sequence == 1 {
            reply
        } else {
            reply.gated(&held)
        }
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--coalesce-timeout", "200ms"]).await;
    let client = TestClient::new();
    let url = sidecache.url("/slow");
    client.get(&url).await;
    let leader = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { client.get(&url).await })
    };
    origin.arrivals(2).await;
    let mut waiters = Vec::new();
    for _ in 0..20 {
        let (client, url) = (client.clone(), url.clone());
        waiters.push(tokio::spawn(async move { client.get(&url).await }));
    }
    for waiter in waiters {
        let got = waiter.await.expect("waiter");
        assert_eq!(got.text(), "version 1\n", "{}", got.cache_status());
    }
    assert_eq!(
        origin.count("/slow"),
        2,
        "no waiter went to the origin itself"
    );
    gate.open();
    assert_eq!(leader.await.expect("leader").text(), "version 2\n");
    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_coalesce_waiters_total{outcome="timeout"}"#),
        20.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="stale"}"#),
        20.0
    );
}

// === requests that are not forwarded ===

#[tokio::test]
async fn an_authority_form_target_on_a_get_is_a_bad_request() {
    let origin = TestOrigin::start(|_, _| Reply::ok("x")).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let answer = exchange(
        sidecache.proxy_addr,
        b"GET victim.example:80 HTTP/1.1\r\nHost: victim.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn trace_is_refused_unless_allowed() {
    let origin = TestOrigin::start(|_, _| Reply::ok("traced")).await;
    let client = TestClient::new();
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let refused = client
        .send(
            Method::TRACE,
            &sidecache.url("/x"),
            &[("cookie", "a=b")],
            Bytes::new(),
        )
        .await;
    assert_eq!(refused.status, 405);
    assert!(origin.seen().is_empty(), "TRACE reached the origin");
    let allowing = Sidecache::start(&origin.url(), &["--allow-trace", "true"]).await;
    let passed = client
        .send(Method::TRACE, &allowing.url("/x"), &[], Bytes::new())
        .await;
    assert_eq!(
        (passed.status.as_u16(), passed.text().as_str()),
        (200, "traced")
    );
}

#[tokio::test]
async fn a_long_server_error_body_is_never_cut_silently() {
    let page = Bytes::from(vec![b'e'; 200 * 1024]);
    let body = page.clone();
    // Once with a Content-Length, once chunked.
    let origin = TestOrigin::start(move |_, sequence| {
        let reply = Reply::new(500, body.clone());
        if sequence == 2 {
            reply.chunked()
        } else {
            reply
        }
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    for _ in 0..2 {
        match TestClient::new()
            .try_send(Method::GET, &sidecache.url("/crash"), &[], Bytes::new())
            .await
        {
            Ok(got) => assert_eq!(got.body.len(), page.len(), "a shorter, complete body"),
            Err(Failed::Body { .. }) => {}
            Err(other) => panic!("{other:?} {:?}", origin.seen().len()),
        }
    }
}
