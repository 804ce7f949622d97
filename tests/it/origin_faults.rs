//! Origin faults end to end, against the fault-injecting origin: connection refused, a reset
//! before the head or in the middle of the body, a hang, a slow drip, garbage, a body shorter
//! than its `Content-Length`, and bursts of server errors.
//!
//! For each fault: every client gets the right answer (a stored response where one may stand
//! in, else a clean 502/504 or the origin's own 5xx), every waiter of a coalesced load is
//! released within a bound, nothing truncated is ever stored, the counters on `/metrics` count
//! exactly what happened, and the next request recovers once the origin behaves.
//!
//! No test sleeps to synchronise: the origin's arrivals and sidecache's own waiter gauge are the
//! signals, and every test runs under a bound.

use crate::support;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sidecache::http::key::CacheKey;
use sidecache::server::Drained;
use sidecache::store::Store;
use support::fault_origin::{Answer, Behaviour, FaultOrigin};
use support::{Failed, Got, Scrape, Sidecache, TestClient};

/// No test may run longer than this.
const TEST_BOUND: Duration = Duration::from_secs(30);

/// Every client of a faulted load is answered within this (the origin timeouts below are at
/// most 1 s, the coalescing bound 10 s: a waiter left behind would show).
const ANSWER_BOUND: Duration = Duration::from_secs(5);

/// Clients asking for one URL at once.
const CLIENTS: usize = 5;

/// Short origin timeouts so that a hang or a drip fails fast, and a coalescing bound far above
/// them, so that a waiter released only by it would miss [`ANSWER_BOUND`]. The first-byte
/// timeout stays well above scheduling delays on a busy machine: a request it cuts off before
/// sidecache has written it would count at sidecache and never reach the origin.
const FLAGS: [&str; 6] = [
    "--origin-timeout",
    "1s",
    "--origin-body-timeout",
    "300ms",
    "--coalesce-timeout",
    "10s",
];

/// Runs a test body under [`TEST_BOUND`].
async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, test)
        .await
        .expect("the test ran past its bound")
}

// === the faults ===

/// One way the origin fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Refused,
    ResetBeforeHead,
    ResetMidBody,
    Hang,
    SlowDrip,
    Garbage,
    ShortBody,
    ServerError,
}

/// What sidecache makes of a fault.
struct Expected {
    /// The status a client gets when nothing may stand in.
    status: u16,
    /// The `Cache-Status` detail.
    detail: &'static str,
    /// The `sidecache_origin_requests_total` outcome the failed request is counted under.
    origin_outcome: &'static str,
    /// Whether the failure is also a broken body (`sidecache_origin_body_errors_total`).
    body_error: bool,
    /// Whether the origin counts as unreachable, so that `--grace` lets a stale response stand in
    /// (an origin that answers with a server error is reachable: only `stale-if-error` helps).
    unreachable: bool,
}

/// The body the origin's error answers carry.
const ERROR_BODY: &str = "origin overloaded\n";

impl Fault {
    const ALL: [Fault; 8] = [
        Self::Refused,
        Self::ResetBeforeHead,
        Self::ResetMidBody,
        Self::Hang,
        Self::SlowDrip,
        Self::Garbage,
        Self::ShortBody,
        Self::ServerError,
    ];

    fn expected(self) -> Expected {
        let (status, detail, origin_outcome, body_error, unreachable) = match self {
            Self::Refused => (502, "origin-connect-failed", "connect_error", false, true),
            Self::ResetBeforeHead => (502, "origin-protocol-error", "protocol_error", false, true),
            Self::ResetMidBody => (502, "origin-body-error", "2xx", true, true),
            Self::Hang => (504, "origin-timeout", "timeout", false, true),
            Self::SlowDrip => (504, "origin-body-timeout", "2xx", true, true),
            Self::Garbage => (502, "origin-protocol-error", "protocol_error", false, true),
            Self::ShortBody => (502, "origin-body-error", "2xx", true, true),
            Self::ServerError => (503, "origin-error-status", "5xx", false, false),
        };
        Expected {
            status,
            detail,
            origin_outcome,
            body_error,
            unreachable,
        }
    }

    /// What the origin does instead of answering `answer` (refusing is not per request: see
    /// [`Scenario`]).
    fn behaviour(self, answer: Answer) -> Behaviour {
        let half = answer.body.len() / 2;
        match self {
            Self::Refused => unreachable!("refusing is done on the port, not per request"),
            Self::ResetBeforeHead => Behaviour::ResetBeforeHead,
            Self::ResetMidBody => Behaviour::ResetMidBody { answer, sent: half },
            Self::Hang => Behaviour::Hang,
            // The whole body would take 20 × 50 ms = 1 s, past the 300 ms body timeout.
            Self::SlowDrip => Behaviour::Drip {
                chunk: answer.body.len().div_ceil(20),
                answer,
                interval: Duration::from_millis(50),
            },
            Self::Garbage => Behaviour::Garbage,
            Self::ShortBody => Behaviour::ShortBody { answer, sent: half },
            // Without explicit freshness: a server error that has it is stored like any
            // response (`http_caching::a_server_error_with_explicit_freshness_is_stored`).
            Self::ServerError => {
                Behaviour::Respond(Answer::new(503, ERROR_BODY).header("retry-after", "1"))
            }
        }
    }
}

/// A body long enough to be cut in half, with every byte telling where it is.
fn patterned(label: &str, len: usize) -> Bytes {
    let mut body = format!("{label}:").into_bytes();
    body.extend((0..len).map(|i| b'a' + (i % 26) as u8));
    body.truncate(len);
    Bytes::from(body)
}

// === checks ===

/// A whole response: its `Content-Length` matches the body it came with, and the body is the one
/// expected.
fn assert_whole(got: &Got, body: &Bytes, context: &str) {
    assert_eq!(got.status, 200, "{context}: {}", got.cache_status());
    assert_eq!(
        got.header("content-length"),
        got.body.len().to_string(),
        "{context}: Content-Length against the body"
    );
    assert_eq!(&got.body, body, "{context}: body");
}

fn assert_cache_status(got: &Got, parts: &[&str], context: &str) {
    let status = got.cache_status();
    for part in parts {
        let present = status.contains(part.trim_start_matches('!'));
        assert_eq!(
            present,
            !part.starts_with('!'),
            "{context}: Cache-Status {status:?} and {part}"
        );
    }
}

/// What a client got, and how long it took from the moment the load was let go.
struct Answered {
    got: Got,
    after_release: Duration,
}

/// `CLIENTS` clients asking for `path` at once. Unless the origin refuses connections, they are
/// gathered behind one held load first: one leader at the origin, the rest waiting on it. Then
/// the origin is let go and every answer is collected.
async fn coalesced_burst(
    sidecache: &Sidecache,
    origin: &FaultOrigin,
    path: &str,
    refusing: bool,
) -> Vec<Answered> {
    let client = TestClient::new();
    let arrived_before = origin.requests();
    if !refusing {
        origin.hold();
    }
    let mut released = Instant::now();
    let requests: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url(path));
            tokio::spawn(async move { (client.get(&url).await, Instant::now()) })
        })
        .collect();
    if !refusing {
        origin.arrivals(arrived_before + 1).await;
        support::wait_until(|| sidecache.proxy.cache().waiting() == CLIENTS - 1).await;
        released = Instant::now();
        origin.release();
    }
    let mut answers = Vec::new();
    for request in requests {
        let (got, at) = request.await.expect("client task");
        answers.push(Answered {
            got,
            after_release: at.saturating_duration_since(released),
        });
    }
    answers
}

fn key(sidecache: &Sidecache, path: &str) -> CacheKey {
    CacheKey::new(&sidecache.proxy_addr.to_string(), path)
}

async fn is_stored(sidecache: &Sidecache, path: &str) -> bool {
    let key = key(sidecache, path);
    sidecache.proxy.cache().store().get(&key).is_some()
}

/// Counter values read off one scrape, by series; a series not exposed reads as 0 so that a
/// label that never occurred need not be created.
struct Counters(Scrape);

impl Counters {
    fn get(&self, series: &str) -> u64 {
        self.0.samples.get(series).copied().unwrap_or(0.0) as u64
    }

    fn requests(&self, result: &str) -> u64 {
        self.get(&format!(
            "sidecache_requests_total{{cache_result=\"{result}\"}}"
        ))
    }

    fn origin(&self, outcome: &str) -> u64 {
        self.get(&format!(
            "sidecache_origin_requests_total{{outcome=\"{outcome}\"}}"
        ))
    }

    fn waiters(&self, outcome: &str) -> u64 {
        self.get(&format!(
            "sidecache_coalesce_waiters_total{{outcome=\"{outcome}\"}}"
        ))
    }

    /// Every series of `name`, summed.
    fn total(&self, name: &str) -> u64 {
        self.0
            .samples
            .iter()
            .filter(|(series, _)| series.split('{').next() == Some(name))
            .map(|(_, value)| *value as u64)
            .sum()
    }

    /// Asserts the saturation gauges are back to zero: nothing in flight, nobody waiting.
    fn assert_idle(&self, context: &str) {
        for gauge in [
            "sidecache_inflight_loads",
            "sidecache_inflight_requests",
            "sidecache_coalesce_waiting",
        ] {
            assert_eq!(self.get(gauge), 0, "{context}: {gauge}");
        }
    }
}

/// Stops sidecache and checks that the drain finished cleanly: no load, request or connection
/// of sidecache's was left hanging by the fault.
async fn stop(sidecache: Sidecache, context: &str) {
    assert_eq!(
        sidecache.stop().await,
        Drained::Cleanly,
        "{context}: the drain left nothing behind"
    );
}

async fn counters(sidecache: &Sidecache) -> Counters {
    Counters(sidecache.metrics().await)
}

// === with nothing stored ===

/// With nothing stored, a fault gives every client of the coalesced load a clean error, the next
/// request tries the origin again (the error was not stored), and once the origin behaves the
/// answer is whole, stored, and served whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_stored_every_fault_gives_every_waiter_a_clean_error_and_then_recovers() {
    bounded(async {
        for fault in Fault::ALL {
            with_nothing_stored(fault).await;
        }
    })
    .await;
}

async fn with_nothing_stored(fault: Fault) {
    let name = format!("{fault:?}");
    let expected = fault.expected();
    let body = patterned("cold", 4096);
    let answer = Answer::ok(body.clone()).header("cache-control", "max-age=60");
    // Two faulted origin requests (the coalesced load, then the next request), then recovery.
    let script_answer = answer.clone();
    let origin = FaultOrigin::start(move |arrival| match arrival.sequence {
        1 | 2 if fault != Fault::Refused => fault.behaviour(script_answer.clone()),
        _ => Behaviour::Respond(script_answer.clone()),
    })
    .await;
    let sidecache =
        Sidecache::start(&origin.url(), &[&FLAGS[..], &["--grace", "0s"]].concat()).await;
    let client = TestClient::new();
    let refusing = fault == Fault::Refused;
    if refusing {
        origin.refuse().await;
    }

    let answers = coalesced_burst(&sidecache, &origin, "/cold", refusing).await;
    for (i, answered) in answers.iter().enumerate() {
        let context = format!("{name}: client {i}");
        assert_eq!(
            answered.got.status.as_u16(),
            expected.status,
            "{context}: {}",
            answered.got.cache_status()
        );
        assert_cache_status(
            &answered.got,
            &[&format!("detail={}", expected.detail), "!stored", "!; hit"],
            &context,
        );
        assert!(
            answered.after_release < ANSWER_BOUND,
            "{context}: answered {:?} after the load was let go",
            answered.after_release
        );
        if fault == Fault::ServerError {
            assert_eq!(
                answered.got.text(),
                ERROR_BODY,
                "{context}: the origin's own answer"
            );
        }
    }
    assert!(
        !is_stored(&sidecache, "/cold").await,
        "{name}: nothing stored"
    );

    // The error was not stored: the next request goes to the origin again, and fails again.
    let next = client.get(&sidecache.url("/cold")).await;
    assert_eq!(
        next.status.as_u16(),
        expected.status,
        "{name}: next request"
    );
    assert_cache_status(&next, &["!collapsed", "!stored"], &format!("{name}: next"));
    assert!(
        !is_stored(&sidecache, "/cold").await,
        "{name}: nothing stored"
    );

    // The origin behaves again: the answer is whole, stored, and served whole from the store.
    if refusing {
        origin.accept().await;
    }
    let recovered = client.get(&sidecache.url("/cold")).await;
    assert_whole(&recovered, &body, &format!("{name}: recovered"));
    assert_cache_status(&recovered, &["fwd=uri-miss", "stored"], &name);
    let hit = client.get(&sidecache.url("/cold")).await;
    assert_whole(&hit, &body, &format!("{name}: hit"));
    assert_cache_status(&hit, &["; hit"], &name);

    // Exact counts. Origin requests: with the port closed none arrives; otherwise the one
    // coalesced load, the next request and the recovery.
    let counted = counters(&sidecache).await;
    let errors = (CLIENTS + 1) as u64;
    assert_eq!(counted.requests("error"), errors, "{name}: errors");
    assert_eq!(counted.requests("miss"), 1, "{name}: misses");
    assert_eq!(counted.requests("hit"), 1, "{name}: hits");
    assert_eq!(
        counted.total("sidecache_requests_total"),
        errors + 2,
        "{name}: every answer counted once"
    );
    // The waiters: with the port closed each client may find the failure on its own (the
    // connect fails at once) or wait on another's; every client is one or the other.
    let waited = counted.waiters("leader_error");
    let failed_at_origin = counted.origin(expected.origin_outcome);
    if refusing {
        assert_eq!(origin.requests(), 1, "{name}: only the recovery arrived");
        assert_eq!(
            failed_at_origin + waited,
            errors,
            "{name}: each error either tried the origin or waited on a load that did"
        );
    } else {
        assert_eq!(origin.requests(), 3, "{name}: origin requests");
        assert_eq!(
            waited,
            CLIENTS as u64 - 1,
            "{name}: waiters released with the error"
        );
        let recovery = u64::from(expected.origin_outcome == "2xx");
        assert_eq!(
            failed_at_origin,
            2 + recovery,
            "{name}: origin {}",
            expected.origin_outcome
        );
    }
    assert_eq!(
        counted.total("sidecache_coalesce_waiters_total"),
        waited,
        "{name}: no other wait outcome"
    );
    assert_eq!(
        counted.total("sidecache_origin_requests_total"),
        failed_at_origin + u64::from(expected.origin_outcome != "2xx"),
        "{name}: origin requests by outcome"
    );
    assert_eq!(
        counted.get("sidecache_origin_body_errors_total"),
        if expected.body_error { 2 } else { 0 },
        "{name}: broken bodies"
    );
    assert_eq!(
        counted.total("sidecache_store_refused_total"),
        0,
        "{name}: a failure is not a refused store"
    );
    counted.assert_idle(&name);
    stop(sidecache, &name).await;
}

// === with a stored response ===

/// What lets a stored, stale response stand in for a failed load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowance {
    /// The response said `stale-if-error=60` (RFC 5861); sidecache has no grace.
    StaleIfError,
    /// The response said nothing; sidecache's `--grace` (default 60 s) covers an unreachable
    /// origin, not one that answers with a server error.
    Grace,
}

/// With a stale response stored, a fault lets it stand in wherever the response or `--grace`
/// allows: every client of the coalesced load gets the stored copy whole, the copy is not
/// replaced by anything the broken origin sent, and the next request that finds the origin
/// behaving replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_response_stands_in_for_every_fault_where_allowed() {
    bounded(async {
        for allowance in [Allowance::StaleIfError, Allowance::Grace] {
            for fault in Fault::ALL {
                with_a_stale_copy(fault, allowance).await;
            }
        }
    })
    .await;
}

async fn with_a_stale_copy(fault: Fault, allowance: Allowance) {
    let name = format!("{fault:?} with {allowance:?}");
    let expected = fault.expected();
    let (control, flags): (&str, &[&str]) = match allowance {
        Allowance::StaleIfError => ("max-age=0, stale-if-error=60", &["--grace", "0s"]),
        Allowance::Grace => ("max-age=0", &[]),
    };
    let stale = patterned("stale", 4096);
    let fresh = patterned("fresh", 4096);
    let mut first = Answer::ok(stale.clone()).header("cache-control", control);
    if fault == Fault::Refused {
        // No pooled connection survives to reach the origin once its port is closed.
        first = first.header("connection", "close");
    }
    let faulted = Answer::ok(fresh.clone()).header("cache-control", control);
    let recovered = Answer::ok(fresh.clone()).header("cache-control", "max-age=60");
    let origin = FaultOrigin::start(move |arrival| match arrival.sequence {
        1 => Behaviour::Respond(first.clone()),
        2 if fault != Fault::Refused => fault.behaviour(faulted.clone()),
        _ => Behaviour::Respond(recovered.clone()),
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[&FLAGS[..], flags].concat()).await;
    let client = TestClient::new();
    let stored = client.get(&sidecache.url("/s")).await;
    assert_whole(&stored, &stale, &format!("{name}: first"));
    assert_cache_status(&stored, &["stored"], &name);
    let refusing = fault == Fault::Refused;
    if refusing {
        origin.refuse().await;
    }

    let stands_in = allowance == Allowance::StaleIfError || expected.unreachable;
    let answers = coalesced_burst(&sidecache, &origin, "/s", refusing).await;
    for (i, answered) in answers.iter().enumerate() {
        let context = format!("{name}: client {i}");
        let got = &answered.got;
        if stands_in {
            assert_whole(got, &stale, &context);
            assert_cache_status(
                got,
                &[
                    "fwd=stale",
                    &format!("detail={}", expected.detail),
                    "!stored",
                ],
                &context,
            );
        } else {
            assert_eq!(got.status.as_u16(), expected.status, "{context}");
            assert_eq!(got.text(), ERROR_BODY, "{context}: the origin's own answer");
            assert_cache_status(got, &["fwd=stale", "fwd-status=503", "!stored"], &context);
        }
        assert!(
            answered.after_release < ANSWER_BOUND,
            "{context}: answered {:?} after the load was let go",
            answered.after_release
        );
    }
    // Nothing the broken origin sent replaced the stored copy.
    let key = key(&sidecache, "/s");
    let object = sidecache.proxy.cache().store().get(&key);
    let object = object.unwrap_or_else(|| panic!("{name}: the stale copy is still stored"));
    let variant = object
        .select(&http::HeaderMap::new())
        .unwrap_or_else(|| panic!("{name}: a variant for a plain request"));
    assert_eq!(
        variant.body, stale,
        "{name}: the stored copy is the stale one, whole"
    );

    if refusing {
        origin.accept().await;
    }
    let next = client.get(&sidecache.url("/s")).await;
    assert_whole(&next, &fresh, &format!("{name}: recovered"));
    assert_cache_status(&next, &["fwd=stale", "stored"], &name);
    let hit = client.get(&sidecache.url("/s")).await;
    assert_whole(&hit, &fresh, &format!("{name}: hit"));
    assert_cache_status(&hit, &["; hit"], &name);

    let counted = counters(&sidecache).await;
    let burst = CLIENTS as u64;
    let (stale_answers, errors) = if stands_in { (burst, 0) } else { (0, burst) };
    assert_eq!(counted.requests("stale"), stale_answers, "{name}: stale");
    assert_eq!(counted.requests("error"), errors, "{name}: errors");
    assert_eq!(
        counted.requests("miss"),
        2,
        "{name}: the first and the recovery"
    );
    assert_eq!(counted.requests("hit"), 1, "{name}: hits");
    assert_eq!(
        counted.total("sidecache_requests_total"),
        burst + 3,
        "{name}: every answer counted once"
    );
    let waited = counted.waiters("leader_error");
    let failed_at_origin = counted.origin(expected.origin_outcome);
    if refusing {
        assert_eq!(origin.requests(), 2, "{name}: the first and the recovery");
        assert_eq!(failed_at_origin + waited, burst, "{name}: tried or waited");
    } else {
        assert_eq!(origin.requests(), 3, "{name}: origin requests");
        assert_eq!(
            waited,
            burst - 1,
            "{name}: waiters released with the failure"
        );
        let successes = if expected.origin_outcome == "2xx" {
            2
        } else {
            0
        };
        assert_eq!(
            failed_at_origin,
            1 + successes,
            "{name}: origin {}",
            expected.origin_outcome
        );
    }
    assert_eq!(
        counted.total("sidecache_coalesce_waiters_total"),
        waited,
        "{name}: no other wait outcome"
    );
    assert_eq!(
        counted.get("sidecache_origin_body_errors_total"),
        u64::from(expected.body_error),
        "{name}: broken bodies"
    );
    counted.assert_idle(&name);
    stop(sidecache, &name).await;
}

// === the leader's client leaves ===

/// The client whose request started a load leaves while the origin hangs: the load goes on in
/// its own task, times out, and every waiter is released with a 504; nothing is left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leaders_client_leaves_a_hanging_load_still_releases_every_waiter() {
    bounded(async {
        let origin = FaultOrigin::start(|arrival| match arrival.sequence {
            1 => Behaviour::Hang,
            _ => Behaviour::Respond(Answer::ok("back").header("cache-control", "max-age=60")),
        })
        .await;
        let sidecache =
            Sidecache::start(&origin.url(), &[&FLAGS[..], &["--grace", "0s"]].concat()).await;
        let client = TestClient::new();
        let leader = tokio::spawn({
            let (client, url) = (client.clone(), sidecache.url("/h"));
            async move { client.get(&url).await }
        });
        origin.arrivals(1).await;
        let waiters: Vec<_> = (0..CLIENTS - 1)
            .map(|_| {
                let (client, url) = (client.clone(), sidecache.url("/h"));
                tokio::spawn(async move { (client.get(&url).await, Instant::now()) })
            })
            .collect();
        support::wait_until(|| sidecache.proxy.cache().waiting() == CLIENTS - 1).await;
        let left = Instant::now();
        leader.abort();
        for waiter in waiters {
            let (got, at) = waiter.await.expect("waiter");
            assert_eq!(got.status, 504, "{}", got.cache_status());
            assert_cache_status(&got, &["collapsed", "detail=origin-timeout"], "waiter");
            assert!(at - left < ANSWER_BOUND, "released {:?} after", at - left);
        }
        let next = client.get(&sidecache.url("/h")).await;
        assert_whole(&next, &Bytes::from_static(b"back"), "recovered");
        assert_eq!(origin.requests(), 2);

        let counted = counters(&sidecache).await;
        // The leader's request got no answer, so it is not counted; its waiters are.
        assert_eq!(counted.requests("error"), CLIENTS as u64 - 1);
        assert_eq!(counted.waiters("leader_error"), CLIENTS as u64 - 1);
        assert_eq!(counted.origin("timeout"), 1);
        assert_eq!(counted.requests("miss"), 1);
        assert_eq!(counted.total("sidecache_requests_total"), CLIENTS as u64);
        counted.assert_idle("after the waiters");
        stop(sidecache, "leader left").await;
    })
    .await;
}

// === bodies that are streamed, not stored ===

/// A body sidecache streams instead of storing (larger than `--max-object-size`, or private)
/// and that breaks off reaches its client broken — never as a complete-looking shorter answer —
/// and is not stored; the next request gets the whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_that_breaks_off_reaches_the_client_broken_and_is_not_stored() {
    bounded(async {
        let body = patterned("streamed", 8192);
        let cases = [
            ("too large", "max-age=60", Fault::ResetMidBody),
            ("too large", "max-age=60", Fault::ShortBody),
            ("private", "private, max-age=60", Fault::ResetMidBody),
            ("private", "private, max-age=60", Fault::ShortBody),
        ];
        for (kind, control, fault) in cases {
            let name = format!("{kind}, {fault:?}");
            let answer = Answer::ok(body.clone()).header("cache-control", control);
            let origin = FaultOrigin::start(move |arrival| match arrival.sequence {
                1 => fault.behaviour(answer.clone()),
                _ => Behaviour::Respond(answer.clone()),
            })
            .await;
            let sidecache = Sidecache::start(
                &origin.url(),
                &[&FLAGS[..], &["--max-object-size", "1KiB"]].concat(),
            )
            .await;
            let client = TestClient::new();
            let url = sidecache.url("/big");
            match client
                .try_send(http::Method::GET, &url, &[], Bytes::new())
                .await
            {
                Err(Failed::Body {
                    status, received, ..
                }) => {
                    assert_eq!(status, 200, "{name}");
                    assert!(received < body.len(), "{name}: {received} bytes");
                }
                Err(Failed::NoResponse(_)) => {}
                Ok(got) => panic!(
                    "{name}: a broken body was delivered as complete: {} bytes of {}",
                    got.body.len(),
                    got.header("content-length")
                ),
            }
            assert!(!is_stored(&sidecache, "/big").await, "{name}: not stored");
            let next = client.get(&url).await;
            assert_whole(&next, &body, &format!("{name}: next"));
            assert_cache_status(&next, &["!stored", "!; hit"], &name);
            assert_eq!(
                origin.requests(),
                2,
                "{name}: the next request went to the origin"
            );
            let counted = counters(&sidecache).await;
            assert_eq!(counted.origin("2xx"), 2, "{name}: origin heads");
            counted.assert_idle(&name);
            stop(sidecache, &name).await;
        }
    })
    .await;
}

// === slow but within the limits ===

/// An origin that drips its body slowly but finishes within `--origin-body-timeout` is not a
/// fault: the body is stored whole, and the clients that waited for it get it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_drip_that_finishes_in_time_is_stored_whole() {
    bounded(async {
        let body = patterned("drip", 2000);
        let answer = Answer::ok(body.clone()).header("cache-control", "max-age=60");
        // 10 chunks, 20 ms apart: 200 ms, within the 1 s body timeout.
        let origin = FaultOrigin::start(move |_| Behaviour::Drip {
            answer: answer.clone(),
            chunk: 200,
            interval: Duration::from_millis(20),
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &["--origin-body-timeout", "1s"]).await;
        let answers = coalesced_burst(&sidecache, &origin, "/drip", false).await;
        for answered in &answers {
            assert_whole(&answered.got, &body, "waiter");
        }
        let client = TestClient::new();
        let hit = client.get(&sidecache.url("/drip")).await;
        assert_whole(&hit, &body, "hit");
        assert_cache_status(&hit, &["; hit"], "hit");
        assert_eq!(origin.requests(), 1);
        let counted = counters(&sidecache).await;
        assert_eq!(counted.requests("miss"), 1);
        assert_eq!(counted.requests("coalesced"), CLIENTS as u64 - 1);
        assert_eq!(counted.requests("hit"), 1);
        assert_eq!(counted.waiters("shared"), CLIENTS as u64 - 1);
        assert_eq!(counted.get("sidecache_origin_body_errors_total"), 0);
        counted.assert_idle("drip");
        stop(sidecache, "drip").await;
    })
    .await;
}

// === interim responses ===

/// Interim responses from the origin (`102 Processing`, `103 Early Hints`) are never stored or
/// reused, and never mixed into the final response: the client gets the final answer whole, and
/// the next client a hit of it. (They are not passed on either: hyper's server cannot send a 1xx
/// other than its own `100 Continue`.)
#[tokio::test]
async fn interim_responses_from_the_origin_are_neither_stored_nor_mixed_in() {
    bounded(async {
        let interim = vec![
            Answer::new(102, Bytes::new()),
            Answer::new(103, Bytes::new()).header("link", "</style.css>; rel=preload"),
        ];
        let answer = Answer::ok("the final answer").header("cache-control", "max-age=60");
        let origin = FaultOrigin::start(move |_| Behaviour::AfterInterim {
            interim: interim.clone(),
            answer: answer.clone(),
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &FLAGS).await;
        let client = TestClient::new();
        let url = sidecache.url("/early");
        let first = client.get(&url).await;
        assert_eq!(first.status, 200);
        assert_eq!(first.text(), "the final answer");
        assert_eq!(
            first.header("link"),
            "",
            "nothing of the 103 in the final answer"
        );
        assert_cache_status(&first, &["fwd=uri-miss", "stored"], "first");
        let second = client.get(&url).await;
        assert_eq!(
            (second.status.as_u16(), second.text().as_str()),
            (200, "the final answer")
        );
        assert_cache_status(&second, &["hit"], "second");
        assert_eq!(origin.count("/early"), 1);
        sidecache.stop().await;
    })
    .await;
}

/// A client that sends `Expect: 100-continue` is told to go on, and its body reaches the origin.
#[tokio::test]
async fn a_request_body_sent_after_100_continue_reaches_the_origin() {
    bounded(async {
        let origin = FaultOrigin::start(|_| Behaviour::Respond(Answer::new(201, "created"))).await;
        let sidecache = Sidecache::start(&origin.url(), &FLAGS).await;
        let head = "POST /things HTTP/1.1\r\nhost: cache.test\r\ncontent-length: 5\r\n\
                    expect: 100-continue\r\nconnection: close\r\n\r\n";
        let mut stream = tokio::net::TcpStream::connect(sidecache.proxy_addr)
            .await
            .expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(head.as_bytes()).await.expect("head");
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).await.expect("100 Continue");
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        stream.write_all(b"hello").await.expect("body");
        let mut rest = String::new();
        stream.read_to_string(&mut rest).await.expect("answer");
        assert!(rest.starts_with("HTTP/1.1 201"), "{rest}");
        assert!(rest.ends_with("created"), "{rest}");
        assert_eq!(origin.count("/things"), 1);
        sidecache.stop().await;
    })
    .await;
}

/// A final 1xx answer (a `101 Switching Protocols` to a request that asked for no switch) is
/// broken: the client gets a 502, and the origin's answer is counted in its own class, not as a
/// success.
#[tokio::test]
async fn a_final_1xx_answer_is_a_502_counted_as_1xx() {
    bounded(async {
        let origin = FaultOrigin::start(|_| Behaviour::Respond(Answer::new(101, ""))).await;
        let sidecache = Sidecache::start(&origin.url(), &FLAGS).await;
        let got = TestClient::new().get(&sidecache.url("/switch")).await;
        assert_eq!(got.status, 502);
        assert_cache_status(
            &got,
            &["fwd=uri-miss", "detail=origin-protocol-error"],
            "101",
        );
        let scrape = sidecache.metrics().await;
        let origin_outcome = |outcome: &str| {
            scrape.value(&format!(
                "sidecache_origin_requests_total{{outcome=\"{outcome}\"}}"
            ))
        };
        assert_eq!((origin_outcome("1xx"), origin_outcome("2xx")), (1.0, 0.0));
        assert_eq!(
            scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
            1.0
        );
        assert_eq!(origin.count("/switch"), 1);
        sidecache.stop().await;
    })
    .await;
}
