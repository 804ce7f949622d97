//! Isolation between users: nothing built for one client reaches another, whatever the
//! client sends and however careless the origin is with its answers. Each test is proven by what
//! a *second* client receives and by what the origin was asked.

use crate::support;

use std::time::Duration;

use support::{Gate, Reply, Seen, Sidecache, TestClient, TestOrigin, exchange};

/// The request's `Cookie` and `Authorization` as the origin saw them, one line each: what an
/// origin that reflects the user into its page puts in the body.
fn credentials(seen: &Seen) -> String {
    let field = |name| {
        seen.headers
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    format!(
        "cookie: {}\nauthorization: {}\n",
        field("cookie"),
        field("authorization")
    )
}

/// Starts a client request for `url` in the background.
fn spawn_get(
    client: &TestClient,
    url: String,
    headers: &'static [(&'static str, &'static str)],
) -> tokio::task::JoinHandle<support::Got> {
    let client = client.clone();
    tokio::spawn(async move { client.get_with(&url, headers).await })
}

// === error answers and coalesced waiters ===

const ALICE: &[(&str, &str)] = &[
    ("cookie", "session=alice-secret"),
    ("authorization", "Bearer alice-token"),
];

/// An origin whose first answer on every path is a slow server error built from the user's
/// credentials; later answers are plain public pages.
async fn personal_error_origin(
    gate: &Gate,
    error_fields: &'static [(&'static str, &'static str)],
) -> TestOrigin {
    let held = gate.clone();
    TestOrigin::start(move |seen, sequence| {
        if sequence > 1 {
            return Reply::ok("public page\n").header("cache-control", "max-age=60");
        }
        let mut reply = Reply::new(503, format!("sorry\n{}", credentials(seen))).gated(&held);
        for (name, value) in error_fields {
            reply = reply.header(name, *value);
        }
        reply
    })
    .await
}

/// Waits until `sidecache` has `leader` and `waiters` more requests in flight, then opens `gate`.
async fn release_after_waiters(sidecache: &Sidecache, waiters: usize, gate: &Gate) {
    sidecache.in_flight(1 + waiters).await;
    gate.open();
}

#[tokio::test]
async fn a_personal_error_answer_is_not_handed_to_waiters() {
    // The error is private, no-store and sets a cookie; the one after it carries none of those
    // marks but answered a request with credentials. Neither may reach another user.
    let cases: [&[(&str, &str)]; 2] = [
        &[
            ("cache-control", "private, no-store"),
            ("set-cookie", "session=alice-secret"),
        ],
        &[],
    ];
    for fields in cases {
        let gate = Gate::new();
        let origin = personal_error_origin(&gate, fields).await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let alice = spawn_get(&client, sidecache.url("/inbox"), ALICE);
        origin.arrivals(1).await;
        let bob = spawn_get(&client, sidecache.url("/inbox"), &[]);
        release_after_waiters(&sidecache, 1, &gate).await;
        let (alice, bob) = (alice.await.expect("alice"), bob.await.expect("bob"));
        assert_eq!(alice.status, 503, "{fields:?}");
        assert!(
            alice.text().contains("alice-token"),
            "alice gets her own answer"
        );
        assert!(
            !bob.text().contains("alice") && bob.header("set-cookie").is_empty(),
            "{fields:?}: bob received alice's error answer: {:?} {}",
            bob.headers,
            bob.text()
        );
        assert!(bob.status.is_server_error(), "{}", bob.status);
        assert!(
            bob.cache_status().contains("collapsed"),
            "bob waited on alice's load rather than going to the origin: {}",
            bob.cache_status()
        );
    }
}

#[tokio::test]
async fn a_public_error_answer_to_an_anonymous_request_is_still_shared() {
    let gate = Gate::new();
    let origin = personal_error_origin(&gate, &[("retry-after", "7")]).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let first = spawn_get(&client, sidecache.url("/down"), &[]);
    origin.arrivals(1).await;
    let second = spawn_get(&client, sidecache.url("/down"), &[]);
    release_after_waiters(&sidecache, 1, &gate).await;
    let (first, second) = (first.await.expect("first"), second.await.expect("second"));
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (503, 503));
    assert_eq!(second.body, first.body, "the origin's own error page");
    assert_eq!(second.header("retry-after"), "7");
    assert_eq!(origin.count("/down"), 1);
}

// === personal pages and stale copies ===

#[tokio::test]
async fn a_page_for_a_cookie_is_not_kept_for_others_without_explicit_freshness() {
    // No cache fields at all (kept for --grace, to stand in when the origin goes away), and
    // Last-Modified alone (heuristically fresh): neither may reach another user.
    let old = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(864_000));
    for fields in [vec![], vec![("last-modified", old.clone())]] {
        let page_fields = fields.clone();
        let mut origin = TestOrigin::start(move |seen, _| {
            let mut reply = Reply::ok(format!("page for\n{}", credentials(seen)));
            for (name, value) in &page_fields {
                reply = reply.header(name, value.clone());
            }
            reply
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/dashboard");
        let alice = client.get_with(&url, ALICE[..1].as_ref()).await;
        assert!(alice.text().contains("alice-secret"));
        // The origin goes away (a rolling deploy): nothing alice was given may stand in for bob.
        origin.shut_down().await;
        let bob = client.get(&url).await;
        assert!(!bob.text().contains("alice"), "{fields:?}: {}", bob.text());
        assert_eq!(origin.count("/dashboard"), 1);
    }
}

#[tokio::test]
async fn a_page_for_a_cookie_with_explicit_freshness_is_shared() {
    let origin = TestOrigin::start(|_, sequence| {
        Reply::ok(format!("shared page {sequence}\n")).header("cache-control", "max-age=60")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let url = sidecache.url("/news");
    let alice = client.get_with(&url, &[("cookie", "tracking=1")]).await;
    let bob = client.get(&url).await;
    assert!(
        bob.cache_status().starts_with("sidecache; hit"),
        "{}",
        bob.cache_status()
    );
    assert_eq!(bob.body, alice.body);
    assert_eq!(origin.count("/news"), 1);
}

#[tokio::test]
async fn an_authorized_public_page_without_freshness_is_not_kept_heuristically() {
    // RFC 9111 §3.5 lets `public` share an authenticated answer; heuristic freshness does not
    // extend to it.
    let old = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(864_000));
    let origin = TestOrigin::start(move |seen, _| {
        Reply::ok(format!("report\n{}", credentials(seen)))
            .header("cache-control", "public")
            .header("last-modified", old.clone())
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let url = sidecache.url("/report");
    client
        .get_with(&url, &[("authorization", "Bearer alice-token")])
        .await;
    let bob = client.get(&url).await;
    assert!(!bob.text().contains("alice"), "{}", bob.text());
    assert_eq!(origin.count("/report"), 2);
}

// === one user's request and the shared entry ===

/// An origin with the usual logged-in / anonymous split: a request with a cookie gets a private
/// page, any other the public one with `public_cache_control`.
async fn split_origin(public_cache_control: &'static str) -> TestOrigin {
    TestOrigin::start(move |seen, sequence| {
        if seen.headers.contains_key("cookie") {
            Reply::ok(format!("private page {sequence}\n")).header("cache-control", "private")
        } else {
            Reply::ok(format!("public page {sequence}\n"))
                .header("cache-control", public_cache_control)
        }
    })
    .await
}

#[tokio::test]
async fn a_logged_in_reload_neither_evicts_the_public_page_nor_marks_it_uncacheable() {
    let origin = split_origin("max-age=60").await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let url = sidecache.url("/home");
    let public = client.get(&url).await;
    let reload = client
        .get_with(
            &url,
            &[("cookie", "session=alice"), ("cache-control", "no-cache")],
        )
        .await;
    assert!(
        reload.text().starts_with("private page"),
        "{}",
        reload.text()
    );
    let mut anonymous = Vec::new();
    for _ in 0..50 {
        anonymous.push(spawn_get(&client, url.clone(), &[]));
    }
    for got in anonymous {
        let got = got.await.expect("anonymous client");
        assert_eq!(got.body, public.body, "{}", got.cache_status());
    }
    assert_eq!(
        origin.count("/home"),
        2,
        "the 50 anonymous clients were hits"
    );
}

#[tokio::test]
async fn a_background_refresh_is_made_without_the_triggering_clients_credentials() {
    let origin = split_origin("max-age=0, stale-while-revalidate=600").await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let url = sidecache.url("/feed");
    client.get(&url).await;
    let stale = client
        .get_with(
            &url,
            &[("cookie", "session=alice"), ("authorization", "Bearer a")],
        )
        .await;
    assert!(
        stale.cache_status().contains("stale-while-revalidate"),
        "{}",
        stale.cache_status()
    );
    origin.arrivals(2).await;
    let refresh = &origin.seen()[1];
    assert!(
        !refresh.headers.contains_key("cookie") && !refresh.headers.contains_key("authorization"),
        "the refresh carried the client's credentials: {:?}",
        refresh.headers
    );
    // The refresh is stored (public page 2) once it lands; wait for that, then check it serves.
    support::wait_until(|| sidecache.proxy.cache().in_flight() == 0).await;
    let after = client.get(&url).await;
    assert_eq!(after.text(), "public page 2\n", "{}", after.cache_status());
    // That answer was stale too, and started the next refresh: the origin never saw a cookie.
    origin.arrivals(3).await;
    assert!(
        origin
            .seen()
            .iter()
            .all(|seen| !seen.headers.contains_key("cookie"))
    );
}

// === what reaches the origin ===

/// Every request field naming the route a request took, as a client may forge it.
const FORWARDING_FIELDS: [(&str, &str); 9] = [
    (
        "forwarded",
        "for=203.0.113.66;host=attacker.example;proto=https",
    ),
    ("x-forwarded-for", "203.0.113.66"),
    ("x-forwarded-host", "attacker.example"),
    ("x-forwarded-proto", "gopher"),
    ("x-forwarded-port", "6666"),
    ("x-forwarded-prefix", "/attacker"),
    ("x-forwarded-server", "attacker.example"),
    ("x-forwarded-ssl", "attacker"),
    ("x-forwarded-uri", "/attacker"),
];

#[tokio::test]
async fn forwarding_fields_from_the_client_are_replaced_by_sidecaches_own() {
    let origin = TestOrigin::start(|seen, sequence| {
        let mut body = format!("answer {sequence}\n");
        for (name, value) in &seen.headers {
            body.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
        }
        Reply::ok(body).header("cache-control", "max-age=60")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    for (index, (name, value)) in FORWARDING_FIELDS.iter().enumerate() {
        let path = format!("/article/{index}");
        let url = sidecache.url(&path);
        let attacker = client.get_with(&url, &[(name, value)]).await;
        let victim = client.get(&url).await;
        assert!(victim.cache_status().starts_with("sidecache; hit"));
        assert!(
            !victim.text().contains(value) && !attacker.text().contains("attacker"),
            "{name}: the client's value reached the origin:\n{}",
            victim.text()
        );
        let seen = origin.seen();
        let load = seen.iter().find(|s| s.path == path).expect("loaded");
        // sidecache's own forwarding fields, from what it knows itself.
        let field = |name: &str| load.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(field("x-forwarded-for"), Some("127.0.0.1"), "{name}");
        assert_eq!(field("x-forwarded-proto"), Some("http"), "{name}");
        assert_eq!(
            field("x-forwarded-host"),
            Some(sidecache.proxy_addr.to_string().as_str()),
            "{name}"
        );
        assert_eq!(
            field("forwarded"),
            Some(format!("for=127.0.0.1;host=\"{}\";proto=http", sidecache.proxy_addr).as_str()),
            "{name}"
        );
        for other in [
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-server",
            "x-forwarded-ssl",
            "x-forwarded-uri",
        ] {
            assert_eq!(field(other), None, "{name}: {other} reached the origin");
        }
    }
}

#[tokio::test]
async fn a_field_named_in_connection_is_not_part_of_the_variant() {
    // The origin varies on Accept-Language; a client that names the field in Connection hides
    // it from the origin, so what it gets must not be stored as the German page.
    let origin = TestOrigin::start(|seen, _| {
        let language = seen
            .headers
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("default")
            .to_owned();
        Reply::ok(format!("page in {language}\n"))
            .header("cache-control", "max-age=60")
            .header("vary", "accept-language")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let client = TestClient::new();
    let url = sidecache.url("/welcome");
    let trick = client
        .get_with(
            &url,
            &[("accept-language", "de"), ("connection", "accept-language")],
        )
        .await;
    assert_eq!(trick.text(), "page in default\n");
    let german = client.get_with(&url, &[("accept-language", "de")]).await;
    assert_eq!(german.text(), "page in de\n", "{}", german.cache_status());
    let plain = client.get(&url).await;
    assert_eq!(plain.text(), "page in default\n");
    assert!(
        plain.cache_status().starts_with("sidecache; hit"),
        "{}",
        plain.cache_status()
    );
}

#[tokio::test]
async fn the_origin_gets_the_host_the_key_was_made_from() {
    let origin = TestOrigin::start(|seen, _| {
        let host = seen
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Reply::ok(format!("<a href=\"http://{host}/next\">next</a>\n"))
            .header("cache-control", "max-age=60")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    for host in ["Shop.Example:443", "shop.example:80", "SHOP.EXAMPLE"] {
        let answer = exchange(
            sidecache.proxy_addr,
            format!("GET /catalog HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(
            answer.contains("<a href=\"http://shop.example/next\">"),
            "{host}: {answer}"
        );
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "one key for every spelling of the host");
    assert_eq!(seen[0].headers["host"], "shop.example");
}
