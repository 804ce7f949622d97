//! Connections, the origin's share of one connection, abandoned requests and request bodies.

use super::*;

// === connections ===

#[tokio::test]
async fn beyond_max_connections_new_clients_wait_until_one_closes() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-connections", "2"]).await;
    let scrape = sidecache.metrics().await;
    assert_eq!(scrape.value("sidecache_client_connections_max"), 2.0);
    assert_eq!(scrape.value("sidecache_client_connections"), 0.0);

    let mut first = connect(&sidecache).await;
    let mut second = connect(&sidecache).await;
    for stream in [&mut first, &mut second] {
        stream
            .write_all(get_head("/x", "").as_bytes())
            .await
            .expect("write");
        let (head, _) = read_response(stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
    }
    wait_for_value(&sidecache, "sidecache_client_connections", 2.0).await;

    // The third is queued by the kernel, not served: its request gets no answer...
    let mut third = connect(&sidecache).await;
    third
        .write_all(get_head("/x", "").as_bytes())
        .await
        .expect("write");
    let mut byte = [0u8; 1];
    let waiting = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(waiting.is_err(), "answered beyond the limit: {waiting:?}");
    assert_eq!(
        sidecache
            .metrics()
            .await
            .value("sidecache_client_connections"),
        2.0
    );
    // ...until a slot frees up.
    drop(first);
    let (head, _) = read_response(&mut third).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    wait_for_value(&sidecache, "sidecache_client_connections", 2.0).await;
    drop((second, third));
    wait_for_value(&sidecache, "sidecache_client_connections", 0.0).await;
    sidecache.stop().await;
}

// === the origin's share of one connection ===

/// One HTTP/2 connection may have at most --max-origin-requests-per-connection requests at the
/// origin; the others wait their turn (a browser's cold page is many misses at once) and are
/// all answered. A streamed answer keeps its turn until its body is sent.
#[tokio::test]
async fn one_connection_has_at_most_its_share_of_requests_at_the_origin() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| Reply::ok("done").gated(&origin_gate)).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--max-origin-requests-per-connection", "2"],
    )
    .await;
    let sender = h2_connection(&sidecache).await;
    let posts: Vec<_> = (0..5)
        .map(|_| {
            let request = Request::post("http://limits.test/work")
                .body(Full::new(Bytes::from("x")))
                .expect("request");
            spawn_h2(&sender, request)
        })
        .collect();
    origin.arrivals(2).await;
    sidecache.in_flight(5).await;
    gate.open();
    for post in posts {
        let (status, _, body) = post.await.expect("request task");
        assert_eq!((status, &body[..]), (200, &b"done"[..]));
    }
    assert_eq!(origin.count("/work"), 5);
    assert_eq!(origin.max_concurrency("/work"), 2);
    sidecache.stop().await;
}

/// A request that waited for its connection's turn at the origin is answered from what was
/// loaded meanwhile (the cache's leader looks again before it loads): waiting costs no second
/// origin load.
#[tokio::test]
async fn a_request_that_waited_its_turn_is_answered_from_what_was_loaded_meanwhile() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| cached_origin_reply().gated(&origin_gate)).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--max-origin-requests-per-connection", "1"],
    )
    .await;
    let sender = h2_connection(&sidecache).await;
    let get = || {
        let request = Request::get("http://limits.test/page")
            .body(Full::new(Bytes::new()))
            .expect("request");
        spawn_h2(&sender, request)
    };
    let (first, second) = (get(), get());
    origin.arrivals(1).await;
    sidecache.in_flight(2).await;
    gate.open();
    let mut statuses = Vec::new();
    for answer in [first, second] {
        let (status, cache_status, body) = answer.await.expect("request task");
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        statuses.push(cache_status);
    }
    // Without the ttl, which may have ticked meanwhile.
    let mut statuses: Vec<_> = statuses
        .iter()
        .map(|status| status.split("; ttl=").next().unwrap_or_default())
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            "sidecache; fwd=uri-miss; fwd-status=200; stored",
            "sidecache; hit"
        ],
    );
    assert_eq!(origin.count("/page"), 1, "one load");
    sidecache.stop().await;
}

// === abandoned requests ===

const ABANDONED: &str = "sidecache_client_requests_abandoned_total";

/// A client that resets stream after stream before its answer is ready has sidecache start work
/// for nothing, over and over, at the cost of a few bytes each: past --max-abandoned-requests
/// (while it abandons more than it waits for) its connection is closed. Each abandoned request
/// is counted.
#[tokio::test]
async fn a_connection_that_keeps_abandoning_its_requests_is_closed() {
    const LIMIT: usize = 5;
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| cached_origin_reply().gated(&origin_gate)).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-abandoned-requests", "5"]).await;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(&sidecache).await),
    )
    .await
    .expect("h2 handshake");
    let mut connection = tokio::spawn(connection);
    for i in 0..LIMIT {
        assert!(
            !connection.is_finished(),
            "open before the {}th abandoned request",
            i + 1
        );
        let request = Request::get(format!("http://limits.test/abandoned/{i}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let waiting = spawn_h2(&sender, request);
        origin.arrivals(i + 1).await;
        // The client resets the stream while sidecache waits on the origin.
        waiting.abort();
        let proxy = Arc::clone(&sidecache.proxy);
        wait_until(move || proxy.in_flight_requests() == 0).await;
    }
    // However the client's side of it ends, it ends.
    let _ = tokio::time::timeout(BOUND, &mut connection)
        .await
        .expect("the connection was closed");
    wait_for_value(&sidecache, &closed("abandoned_requests"), 1.0).await;
    assert_eq!(sidecache.metrics().await.value(ABANDONED), LIMIT as f64);
    gate.open();
    sidecache.stop().await;
}

/// Over HTTP/1.1 a client abandons its request by closing the connection: counted the same.
#[tokio::test]
async fn an_http1_client_that_closes_while_its_answer_is_loaded_has_abandoned_it() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| cached_origin_reply().gated(&origin_gate)).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let stream = send_get(&sidecache, "/left").await;
    origin.arrivals(1).await;
    drop(stream);
    wait_for_value(&sidecache, ABANDONED, 1.0).await;
    // A request answered at once (a hit) is never abandoned, however soon the client goes.
    gate.open();
    let got = TestClient::new().get(&sidecache.url("/left")).await;
    assert_eq!(got.status, 200);
    let mut stream = send_get(&sidecache, "/left").await;
    let _ = read_response(&mut stream).await;
    drop(stream);
    let scrape = sidecache.metrics().await;
    assert_eq!(scrape.value(ABANDONED), 1.0);
    assert_eq!(scrape.value(&closed("abandoned_requests")), 0.0);
    sidecache.stop().await;
}

// === request bodies ===

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_413_without_reaching_the_origin() {
    let origin = TestOrigin::start(|_, _| Reply::ok("stored")).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-request-body", "1KiB"]).await;

    // At the limit: passed through whole.
    let got = TestClient::new()
        .send(
            Method::POST,
            &sidecache.url("/upload"),
            &[],
            Bytes::from(vec![b'b'; 1024]),
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(origin.seen()[0].body.len(), 1024);

    // Past it, by the declared length: 413 at once, nothing sent on, the connection closed.
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        head.contains("cache-status: sidecache; fwd=method; detail=request-body-too-large"),
        "{head}"
    );
    assert_eq!(body, b"request body too large\n");
    let (_, end) = read_to_end(&mut stream).await;
    assert_eq!(end, End::Closed);
    assert_eq!(origin.seen().len(), 1, "the origin was not asked");

    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="pass"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="2xx"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="aborted"}"#),
        0.0
    );
    sidecache.stop().await;
}

#[tokio::test]
async fn a_chunked_body_running_past_the_limit_aborts_the_origin_request_and_gets_413() {
    let origin = TestOrigin::start(|_, _| Reply::ok("stored")).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-request-body", "1KiB"]).await;
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("write");
    // Three chunks of 512 bytes, no last chunk: the third runs past 1KiB.
    for _ in 0..3 {
        let mut chunk = b"200\r\n".to_vec();
        chunk.extend_from_slice(&[b'c'; 512]);
        chunk.extend_from_slice(b"\r\n");
        stream.write_all(&chunk).await.expect("write");
    }
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        head.contains("cache-status: sidecache; fwd=method; detail=request-body-too-large"),
        "{head}"
    );
    assert_eq!(body, b"request body too large\n");
    let (_, end) = read_to_end(&mut stream).await;
    assert_eq!(end, End::Closed);

    // The origin got the head and part of the body, then its connection broke: it never had a
    // whole request to act on (the test origin records a broken body as empty).
    origin.arrivals(1).await;
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].body.is_empty(), "{} body bytes", seen[0].body.len());

    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="aborted"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="protocol_error"}"#),
        0.0,
        "not counted as the origin's failure"
    );
    sidecache.stop().await;
}

/// A request body whose framing is broken, or that ends before its declared length, is the
/// client's fault: 400, the origin request abandoned, not counted as the origin's failure.
#[tokio::test]
async fn a_malformed_request_body_gets_400_and_is_not_the_origins_failure() {
    let origin = TestOrigin::start(|_, _| Reply::ok("stored")).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let cases: [(&str, &[u8], bool); 2] = [
        (
            "a chunk size that is not hex",
            b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\nzz\r\n",
            false,
        ),
        (
            "a body shorter than its Content-Length",
            b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 100\r\n\r\nfirst ten.",
            true,
        ),
    ];
    for (case, request, then_half_close) in cases {
        let mut stream = connect(&sidecache).await;
        stream.write_all(request).await.expect("write");
        if then_half_close {
            stream.shutdown().await.expect("half-close");
        }
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("http/1.1 400"), "{case}: {head}");
        assert!(
            head.contains("cache-status: sidecache; fwd=method; detail=request-body-malformed"),
            "{case}: {head}"
        );
        assert_eq!(body, b"request body malformed\n", "{case}");
    }
    assert_abandoned_for_their_bodies(&origin, &sidecache, 2).await;
    sidecache.stop().await;
}

/// A client that stops sending its request body part-way is answered 408 after
/// --client-body-timeout (as nginx does at client_body_timeout), the origin request abandoned; it
/// is not the origin's failure.
#[tokio::test]
async fn a_request_body_that_stalls_gets_408_after_the_body_timeout() {
    let origin = TestOrigin::start(|_, _| Reply::ok("stored")).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-body-timeout",
            "300ms",
            "--client-idle-timeout",
            "30s",
        ],
    )
    .await;
    let mut stream = connect(&sidecache).await;
    let started = Instant::now();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 100\r\n\r\nfirst ten.",
        )
        .await
        .expect("write");
    let (head, body) = read_response(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        head.contains("cache-status: sidecache; fwd=method; detail=request-body-timeout"),
        "{head}"
    );
    assert_eq!(body, b"request body timed out\n");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    let (_, end) = read_to_end(&mut stream).await;
    assert_eq!(end, End::Closed);

    // Over HTTP/2 the stream is answered the same way.
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(&sidecache).await),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let request = Request::post("http://limits.test/upload")
        .body(StalledBody(Some(Bytes::from("first ten."))))
        .expect("request");
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(response.status(), 408);

    assert_abandoned_for_their_bodies(&origin, &sidecache, 2).await;
    sidecache.stop().await;
}

/// After `abandoned` requests whose origin requests sidecache abandoned for their bodies' sake:
/// no whole body reached the origin, each client got an error, and the origin was not blamed.
async fn assert_abandoned_for_their_bodies(
    origin: &TestOrigin,
    sidecache: &Sidecache,
    abandoned: usize,
) {
    origin.arrivals(abandoned).await;
    assert!(
        origin.seen().iter().all(|seen| seen.body.is_empty()),
        "no whole body reached the origin"
    );
    let scrape = sidecache.metrics().await;
    let origin_outcome = |outcome: &str| {
        scrape.value(&format!(
            "sidecache_origin_requests_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
        abandoned as f64
    );
    assert_eq!(origin_outcome("aborted"), abandoned as f64);
    for origins_failure in ["timeout", "protocol_error"] {
        assert_eq!(origin_outcome(origins_failure), 0.0, "{origins_failure}");
    }
}

/// A request body that sends its first chunk and then nothing, without ending.
struct StalledBody(Option<Bytes>);

impl http_body::Body for StalledBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(first) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(first)))),
            None => std::task::Poll::Pending,
        }
    }
}
