//! Protocols and lifecycle: HTTP/2 cleartext, readiness, and a graceful drain that lets
//! in-flight requests finish.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sidecache::server::Drained;
use support::{Gate, Reply, Sidecache, TestClient, TestOrigin};

#[tokio::test]
async fn http2_cleartext_clients_are_served_from_the_same_cache() {
    let origin =
        TestOrigin::start(|_, _| Reply::ok("h2 body").header("cache-control", "max-age=60")).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    for expected in ["fwd=uri-miss", "; hit"] {
        let request = Request::get(sidecache.url("/h2"))
            .body(Empty::new())
            .expect("request");
        let response = h2.request(request).await.expect("h2 response");
        assert_eq!(response.version(), http::Version::HTTP_2);
        let cache_status = response.headers()["cache-status"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(cache_status.contains(expected), "{cache_status}");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "h2 body");
    }
    // An HTTP/1.1 client with the same Host gets the entry the HTTP/2 client stored.
    let h1 = TestClient::new().get(&sidecache.url("/h2")).await;
    assert!(h1.cache_status().contains("; hit"), "{}", h1.cache_status());
    assert_eq!(origin.count("/h2"), 1);
    sidecache.stop().await;
}

#[tokio::test]
async fn a_drain_reports_not_ready_and_lets_in_flight_requests_finish() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok("finished")
            .header("cache-control", "max-age=60")
            .gated(&origin_gate)
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--shutdown-grace", "5s"]).await;
    let client = TestClient::new();
    let ready = client.get(&sidecache.admin_url("/readyz")).await;
    assert_eq!(ready.status, 200);

    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), sidecache.url("/slow"));
        async move { client.get(&url).await }
    });
    origin.arrivals(1).await;
    let admin = sidecache.admin_url("/readyz");
    let proxy_addr = sidecache.proxy_addr;
    let stopping = tokio::spawn(sidecache.stop());

    // While draining, the admin port says not ready and the proxy accepts no new connections.
    let mut not_ready = false;
    for _ in 0..1000 {
        if TestClient::new().get(&admin).await.status == 503 {
            not_ready = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(not_ready, "readiness never turned to 503");
    support::wait_until(|| std::net::TcpStream::connect(proxy_addr).is_err()).await;

    gate.open();
    let finished = in_flight.await.expect("in-flight request");
    assert_eq!(
        (finished.status.as_u16(), finished.text().as_str()),
        (200, "finished")
    );
    let drained = tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("drain within the grace period")
        .expect("stop task");
    assert_eq!(drained, Drained::Cleanly);
}

#[tokio::test]
async fn a_drain_gives_up_after_the_grace_period() {
    let _quiet = support::machine::quiet().await;
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| Reply::ok("never").gated(&origin_gate)).await;
    let sidecache = Sidecache::start(&origin.url(), &["--shutdown-grace", "1s"]).await;
    let client = TestClient::new();
    let _stuck = tokio::spawn({
        let url = sidecache.url("/stuck");
        async move { client.get(&url).await }
    });
    origin.arrivals(1).await;
    let stopping = std::time::Instant::now();
    assert_eq!(sidecache.stop().await, Drained::TimedOut);
    // One deadline bounds the whole drain: the stuck connection and the stuck load share the
    // grace rather than getting one each.
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_millis(1800),
        "the drain took {took:?}"
    );
    gate.open();
}

/// A client that connected and never sent a byte (a pre-opened connection, or one a pooled
/// client opened and then did not need) has no request under way: the drain closes it at once
/// instead of waiting out the grace period for it.
#[tokio::test]
async fn a_drain_does_not_wait_for_a_connection_that_never_sent_a_request() {
    use tokio::io::AsyncReadExt;

    let _quiet = support::machine::quiet().await;
    let origin = TestOrigin::start(|_, _| Reply::ok("body")).await;
    let sidecache = Sidecache::start(&origin.url(), &["--shutdown-grace", "5s"]).await;
    let mut silent = tokio::net::TcpStream::connect(sidecache.proxy_addr)
        .await
        .expect("connect");
    // A connection that did carry a request stays open too, idle in the client's pool.
    let client = TestClient::new();
    assert_eq!(client.get(&sidecache.url("/used")).await.status, 200);
    let stopping = std::time::Instant::now();
    assert_eq!(sidecache.stop().await, Drained::Cleanly);
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(2), "the drain took {took:?}");
    let mut scratch = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(2), silent.read(&mut scratch))
        .await
        .expect("the silent connection was closed");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without an answer: {read:?}"
    );
}

/// `GET path` on `addr` from a plain thread, without any runtime; the status, or `None` when
/// no answer came within 5 s.
fn blocking_get(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1)?.parse().ok()
}

/// The admin port runs on a thread and runtime of its own, so health, readiness and metrics
/// answer while the runtime serving the proxy is saturated — here, blocked outright: this test
/// runs sidecache on a current-thread runtime and blocks its one thread until the answers came.
#[tokio::test]
async fn the_admin_port_answers_while_the_proxy_runtime_is_blocked() {
    let origin =
        TestOrigin::start(|_, _| Reply::ok("body").header("cache-control", "max-age=60")).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    assert_eq!(
        TestClient::new().get(&sidecache.url("/hit")).await.status,
        200
    );
    let admin = sidecache.admin_addr;
    let client = std::thread::spawn(move || {
        ["/healthz", "/readyz", "/metrics", "/stats"].map(|path| (path, blocking_get(admin, path)))
    });
    // Joining blocks the runtime's only thread: nothing on it runs until the client is done.
    let answers = client.join().expect("client thread");
    for (path, status) in answers {
        assert_eq!(
            status,
            Some(200),
            "{path} while the proxy's runtime is blocked"
        );
    }
    // The proxy, on its runtime again, still answers, and the drain stops the admin thread.
    assert_eq!(
        TestClient::new().get(&sidecache.url("/hit")).await.status,
        200
    );
    assert_eq!(sidecache.stop().await, Drained::Cleanly);
    assert_eq!(
        blocking_get(admin, "/healthz"),
        None,
        "the admin port is closed"
    );
}
