//! Single-flight end to end: one origin load per key however many clients ask at once, and the
//! right thing when the leader's client leaves, when the answer is private, and when the origin
//! fails or hangs.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::{Gate, Reply, Sidecache, TestClient, TestOrigin};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// 200 clients on pre-opened connections, released at one instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_simultaneous_clients_cause_one_origin_load() {
    let _quiet = support::machine::quiet().await;
    let body = Bytes::from(vec![b'x'; 1024]);
    let reply_body = body.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok(reply_body.clone())
            .header("cache-control", "public, max-age=60")
            .delay(Duration::from_millis(200))
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;

    let (go, _) = watch::channel(false);
    let mut clients = Vec::new();
    for _ in 0..200 {
        let stream = TcpStream::connect(sidecache.proxy_addr)
            .await
            .expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut go = go.subscribe();
        let url = sidecache.url("/cold");
        clients.push(tokio::spawn(async move {
            go.wait_for(|go| *go).await.expect("go");
            let request = Request::get(url)
                .header("host", "cache.test")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let response = sender.send_request(request).await.expect("response");
            let status = response.status();
            let cache_status = response.headers()["cache-status"]
                .to_str()
                .unwrap()
                .to_owned();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, cache_status, body, Instant::now())
        }));
    }
    go.send_replace(true);
    let mut answers = Vec::new();
    for client in clients {
        answers.push(client.await.expect("client"));
    }

    assert_eq!(origin.count("/cold"), 1, "exactly one origin request");
    assert!(
        answers
            .iter()
            .all(|(status, _, got, _)| *status == 200 && *got == body)
    );
    let stored = answers
        .iter()
        .filter(|(_, cs, _, _)| cs.contains("fwd=uri-miss") && cs.contains("stored"))
        .count();
    assert_eq!(stored, 1, "one leader stored the response");
    let collapsed_or_hit = answers
        .iter()
        .filter(|(_, cs, _, _)| cs.contains("collapsed") || cs.contains("; hit"))
        .count();
    assert_eq!(collapsed_or_hit, 199);

    // Waiters are woken by the load's completion, not by a poll. Under a poll of nginx's 500 ms,
    // each of 200 waiters would wake at its own phase of the period, so the last would almost
    // surely come more than 400 ms late (each stays under it with odds 0.8: 0.8^200 for all);
    // woken at once, the last is answered once 200 answers have been written, well under it
    // even on a busy machine running the other tests beside this one.
    let answered = origin.seen()[0].answered_at.expect("origin answered");
    let last = answers
        .iter()
        .map(|(_, _, _, at)| *at)
        .max()
        .expect("answers");
    let lag = last.saturating_duration_since(answered);
    assert!(
        lag < Duration::from_millis(400),
        "last waiter answered {lag:?} after the load"
    );
    sidecache.stop().await;
}

#[tokio::test]
async fn when_the_leaders_client_disconnects_the_load_goes_on_for_the_waiters_and_the_cache() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok("the body")
            .header("cache-control", "max-age=60")
            .gated(&origin_gate)
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();

    let leader = tokio::spawn({
        let (client, url) = (client.clone(), sidecache.url("/k"));
        async move { client.get(&url).await }
    });
    origin.arrivals(1).await;
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url("/k"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    sidecache.in_flight(5).await;
    leader.abort();
    // The leader's request ends when its connection closes; the waiters' do not.
    support::wait_until(|| sidecache.proxy.in_flight_requests() == 4).await;
    gate.open();

    for waiter in waiters {
        let got = waiter.await.expect("waiter");
        assert_eq!(
            (got.status.as_u16(), got.text().as_str()),
            (200, "the body")
        );
        assert!(
            got.cache_status().contains("collapsed"),
            "{}",
            got.cache_status()
        );
    }
    let later = client.get(&sidecache.url("/k")).await;
    assert!(
        later.cache_status().contains("; hit"),
        "{}",
        later.cache_status()
    );
    assert_eq!(origin.count("/k"), 1);
    sidecache.stop().await;
}

/// `Cache-Status: collapsed` says the answer is the load the request waited on: a waiter that
/// shares it says so, one that then has to load on its own (the load's answer was private) does
/// not, and is counted as the miss it was.
#[tokio::test]
async fn only_a_waiter_answered_by_the_shared_load_says_collapsed() {
    for (cache_control, collapsed, result) in [
        ("max-age=60", true, "coalesced"),
        ("private", false, "miss"),
    ] {
        let gate = Gate::new();
        let origin_gate = gate.clone();
        let origin = TestOrigin::start(move |_, n| {
            Reply::ok(format!("answer {n}"))
                .header("cache-control", cache_control)
                .gated_if(n == 1, &origin_gate)
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let spawn_get = || {
            let (client, url) = (client.clone(), sidecache.url("/k"));
            tokio::spawn(async move { client.get(&url).await })
        };
        let leader = spawn_get();
        origin.arrivals(1).await;
        let waiter = spawn_get();
        let cache = sidecache.proxy.cache().clone();
        support::wait_until(|| cache.waiting() == 1).await;
        gate.open();
        assert_eq!(leader.await.expect("leader").text(), "answer 1");
        let waited = waiter.await.expect("waiter");
        let status = waited.cache_status();
        assert_eq!(
            status.contains("collapsed"),
            collapsed,
            "{cache_control}: {status}"
        );
        let expected_body = if collapsed { "answer 1" } else { "answer 2" };
        assert_eq!(waited.text(), expected_body, "{cache_control}");

        let scrape = sidecache.metrics().await;
        assert_eq!(
            scrape.value(&format!(
                "sidecache_requests_total{{cache_result=\"{result}\"}}"
            )),
            if collapsed { 1.0 } else { 2.0 },
            "{cache_control}"
        );
        sidecache.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_answers_with_cookies_are_never_shared_and_later_requests_do_not_queue() {
    let origin = TestOrigin::start(|_, n| {
        Reply::ok(format!("for client {n}"))
            .header("cache-control", "private")
            .header("set-cookie", format!("session={n}"))
            .delay(Duration::from_millis(300))
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();

    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url("/me"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    let mut sessions = Vec::new();
    for request in requests {
        let got = request.await.expect("client");
        assert_eq!(got.status, 200);
        let cookie = got.header("set-cookie").to_owned();
        let n = cookie
            .strip_prefix("session=")
            .expect("a cookie")
            .to_owned();
        assert_eq!(
            got.text(),
            format!("for client {n}"),
            "cookie and body belong together"
        );
        sessions.push(n);
    }
    sessions.sort();
    sessions.dedup();
    assert_eq!(
        sessions.len(),
        20,
        "no cookie was handed to a second client"
    );
    assert_eq!(origin.count("/me"), 20);

    // Hit-for-miss: later requests go to the origin at once, side by side.
    let later: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url("/me?later"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    for request in later {
        request.await.expect("client");
    }
    let again: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url("/me?later"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    for request in again {
        let got = request.await.expect("client");
        assert!(
            got.cache_status().contains("hit-for-miss"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(
        origin.max_concurrency("/me?later"),
        5,
        "hit-for-miss requests ran in parallel"
    );
    sidecache.stop().await;
}

#[tokio::test]
async fn a_failed_load_gives_every_waiter_a_clean_502_and_the_next_request_loads_again() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let mut origin = TestOrigin::start(move |_, _| {
        Reply::ok("fine")
            .header("cache-control", "max-age=60")
            .gated(&origin_gate)
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--grace", "0s"]).await;
    let client = TestClient::new();
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url("/down"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    origin.arrivals(1).await;
    sidecache.in_flight(5).await;
    // The origin goes away with the load in flight: the leader's connection is reset.
    origin.stop();
    for request in requests {
        let got = request.await.expect("client");
        assert_eq!(got.status, 502, "{}", got.cache_status());
    }
    assert_eq!(origin.count("/down"), 1);
    let next = client.get(&sidecache.url("/down")).await;
    assert_eq!(next.status, 502);
    assert!(
        next.cache_status().contains("origin-connect-failed"),
        "{}",
        next.cache_status()
    );
    sidecache.stop().await;
}

#[tokio::test]
async fn a_hanging_origin_gives_504_to_the_leader_and_every_waiter() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| Reply::ok("late").gated(&origin_gate)).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--origin-timeout", "300ms", "--grace", "0s"],
    )
    .await;
    let client = TestClient::new();
    let requests: Vec<_> = (0..5)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url("/hang"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    for request in requests {
        let got = request.await.expect("client");
        assert_eq!(got.status, 504);
        assert!(
            got.cache_status().contains("origin-timeout"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(
        origin.count("/hang"),
        1,
        "the waiters shared the leader's timeout"
    );
    gate.open();
    sidecache.stop().await;
}

/// Requests that must be validated with the origin (`no-cache`, `Pragma: no-cache`,
/// `max-age=0`) share one origin exchange that starts after they arrived: ten of them at once
/// cost two origin requests (the one under way when the nine came, and one more for them), not
/// one each.
#[tokio::test]
async fn concurrent_requests_that_must_revalidate_share_one_origin_exchange() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let loads = Arc::new(AtomicUsize::new(0));
    let origin = TestOrigin::start(move |_, _| {
        let load = loads.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::ok(format!("load {load}"))
            .header("cache-control", "max-age=60")
            .gated_if(load == 2, &origin_gate)
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let url = sidecache.url("/fresh");
    assert_eq!(client.get(&url).await.text(), "load 1");

    let must_revalidate: [&[(&str, &str)]; 3] = [
        &[("cache-control", "no-cache")],
        &[("pragma", "no-cache")],
        &[("cache-control", "max-age=0")],
    ];
    let first = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get_with(&url, &[("cache-control", "no-cache")])
                .await
        }
    });
    origin.arrivals(2).await;
    let during: Vec<_> = (0..9)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let fields = must_revalidate[i % 3];
            tokio::spawn(async move { client.get_with(&url, fields).await })
        })
        .collect();
    sidecache.in_flight(10).await;
    gate.open();
    assert_eq!(first.await.expect("first").text(), "load 2");
    for client in during {
        let got = client.await.expect("client");
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "load 3"));
    }
    assert_eq!(
        origin.count("/fresh"),
        3,
        "one exchange for the nine, not nine"
    );
    sidecache.stop().await;
}
