//! How requests end: every request that reached the proxy is counted once in
//! `sidecache_requests_ended_total`, whether its client waited for all of it or not, and the
//! requests the cache answered (`sidecache_requests_total`) are exactly those whose answer
//! began (completed or body aborted).

use super::*;

/// Every outcome, in the order [`ends_settle_at`] takes them.
const OUTCOMES: [&str; 4] = ["completed", "body_aborted", "client_closed", "cut_off"];

/// The series counting requests that ended with `outcome`.
fn ended(outcome: &str) -> String {
    format!("sidecache_requests_ended_total{{outcome=\"{outcome}\"}}")
}

/// Scrapes until the ends counted are `expected` (in [`OUTCOMES`] order), at most [`BOUND`]: a
/// response body ends on the server side a moment after its client has read the last byte.
/// Then the requests the cache answered must be exactly those whose answer began.
async fn ends_settle_at(sidecache: &Sidecache, expected: [u64; 4]) {
    let expected = expected.map(|count| count as f64);
    let deadline = Instant::now() + BOUND;
    loop {
        let scrape = sidecache.metrics().await;
        let now = OUTCOMES.map(|outcome| scrape.value(&ended(outcome)));
        if now == expected {
            let answered: f64 = scrape
                .samples
                .iter()
                .filter(|(series, _)| series.starts_with("sidecache_requests_total{"))
                .map(|(_, value)| value)
                .sum();
            assert_eq!(answered, expected[0] + expected[1], "requests answered");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "requests ended {now:?}, expected {expected:?} ({OUTCOMES:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An origin whose cacheable answers wait for `gate`.
async fn gated_origin(gate: &Gate) -> TestOrigin {
    let gate = gate.clone();
    TestOrigin::start(move |_, _| cached_origin_reply().header("etag", "\"v1\"").gated(&gate)).await
}

/// An origin that sends a large uncacheable answer's head at once and its body slowly, so a
/// client is still receiving it when it goes.
async fn dripping_origin() -> FaultOrigin {
    FaultOrigin::start(|_| Behaviour::Drip {
        answer: Answer::ok(vec![b'd'; 1 << 20]).header("cache-control", "no-store"),
        chunk: 1024,
        interval: Duration::from_millis(20),
    })
    .await
}

#[tokio::test]
async fn an_http1_client_that_closes_before_its_answer_ends_client_closed() {
    let gate = Gate::new();
    let origin = gated_origin(&gate).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let stream = send_get(&sidecache, "/left").await;
    origin.arrivals(1).await;
    drop(stream);
    ends_settle_at(&sidecache, [0, 0, 1, 0]).await;

    // Answers sent whole, bodies or not, complete: a miss, a hit, a HEAD and a 304.
    gate.open();
    let client = TestClient::new();
    assert_eq!(client.get(&sidecache.url("/left")).await.status, 200);
    assert_eq!(client.get(&sidecache.url("/left")).await.status, 200);
    let head = client
        .send(Method::HEAD, &sidecache.url("/left"), &[], Bytes::new())
        .await;
    assert_eq!(head.status, 200);
    let not_modified = client
        .get_with(&sidecache.url("/left"), &[("if-none-match", "\"v1\"")])
        .await;
    assert_eq!(not_modified.status, 304);
    ends_settle_at(&sidecache, [4, 0, 1, 0]).await;
    sidecache.stop().await;
}

#[tokio::test]
async fn an_http2_client_that_resets_its_stream_before_the_answer_ends_client_closed() {
    let gate = Gate::new();
    let origin = gated_origin(&gate).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let sender = h2_connection(&sidecache).await;
    let request = || {
        Request::get("http://limits.test/reset")
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let waiting = spawn_h2(&sender, request());
    origin.arrivals(1).await;
    // Dropping the response future resets the stream.
    waiting.abort();
    ends_settle_at(&sidecache, [0, 0, 1, 0]).await;

    gate.open();
    let (status, _, body) = spawn_h2(&sender, request()).await.expect("answered");
    assert_eq!((status, &body[..]), (200, &b"ok"[..]));
    ends_settle_at(&sidecache, [1, 0, 1, 0]).await;
    sidecache.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_during_the_body_ends_body_aborted() {
    let origin = dripping_origin().await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;

    // HTTP/1.1: the client reads the head and closes the connection.
    let mut stream = send_get(&sidecache, "/dripping").await;
    let (head, _) = read_head(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    drop(stream);
    ends_settle_at(&sidecache, [0, 1, 0, 0]).await;

    // HTTP/2: the client reads the head and drops the body, which resets the stream.
    let mut sender = h2_connection(&sidecache).await;
    let request = Request::get("http://limits.test/dripping")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .expect("a head in time")
        .expect("a response");
    assert_eq!(response.status(), 200);
    drop(response);
    ends_settle_at(&sidecache, [0, 2, 0, 0]).await;
    sidecache.stop().await;
}

#[tokio::test]
async fn an_origin_body_that_breaks_off_ends_body_aborted() {
    let origin = FaultOrigin::start(|_| Behaviour::ResetMidBody {
        answer: Answer::ok(vec![b'b'; 256 * 1024]).header("cache-control", "no-store"),
        sent: 64 * 1024,
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let mut stream = send_get(&sidecache, "/broken").await;
    let (received, _) = read_to_end(&mut stream).await;
    assert_eq!(status_of(&received), 200);
    assert!(received.len() < 256 * 1024, "cut off part-way");
    ends_settle_at(&sidecache, [0, 1, 0, 0]).await;
    sidecache.stop().await;
}

/// The requests still waiting on a connection that sidecache closes (here for the requests its
/// client abandoned) are not the client's doing: they end cut off.
#[tokio::test]
async fn requests_dropped_when_sidecache_closes_the_connection_end_cut_off() {
    let gate = Gate::new();
    let origin = gated_origin(&gate).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-abandoned-requests", "2"]).await;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(&sidecache).await),
    )
    .await
    .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let request = |path: &str| {
        Request::get(format!("http://limits.test{path}"))
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let held = spawn_h2(&sender, request("/held"));
    origin.arrivals(1).await;
    for i in 0..2 {
        let waiting = spawn_h2(&sender, request(&format!("/abandoned/{i}")));
        origin.arrivals(i + 2).await;
        waiting.abort();
    }
    let _ = tokio::time::timeout(BOUND, connection)
        .await
        .expect("the connection was closed");
    assert!(held.await.is_err(), "the held request got no answer");
    ends_settle_at(&sidecache, [0, 0, 2, 1]).await;
    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value("sidecache_client_requests_abandoned_total"),
        2.0
    );
    assert_eq!(scrape.value(&closed("abandoned_requests")), 1.0);
    gate.open();
    sidecache.stop().await;
}
