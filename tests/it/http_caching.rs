//! HTTP caching end to end, against the RFCs' text: RFC 9111 (caching), RFC 9110 (semantics:
//! conditional and range requests, hop-by-hop fields), RFC 5861 (`stale-while-revalidate`,
//! `stale-if-error`), RFC 9213 (targeted cache-control fields) and RFC 9211 (`Cache-Status`).
//!
//! Each case says what the client sends, what the origin sees, and what the client gets back.
//! No test sleeps to synchronise: origin gates, `arrivals` and sidecache's own counters are the
//! signals, and every test runs under a 5 s bound.

use crate::support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Method;
use sidecache::http::key::CacheKey;
use sidecache::store::Store;
use support::{Failed, Gate, Got, Reply, Seen, Sidecache, TestClient, TestOrigin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// No test may run longer than this.
const BOUND: Duration = Duration::from_secs(5);

/// A `Last-Modified` well in the past.
const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

/// Runs a test body under [`BOUND`].
async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(BOUND, test)
        .await
        .expect("the test ran past its 5 s bound")
}

// === Cache-Status (RFC 9211) ===

/// sidecache's member of the `Cache-Status` list: its parameters, in order.
#[derive(Debug)]
struct Status(Vec<(String, Option<String>)>);

impl Status {
    fn of(got: &Got) -> Self {
        let member = got
            .headers
            .get_all("cache-status")
            .iter()
            .filter_map(|line| line.to_str().ok())
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .find(|member| member.split(';').next().map(str::trim) == Some("sidecache"))
            .unwrap_or_else(|| panic!("no sidecache member in Cache-Status: {:?}", got.headers));
        let params = member
            .split(';')
            .skip(1)
            .map(|param| match param.trim().split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (param.trim().to_owned(), None),
            })
            .collect();
        Self(params)
    }

    fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_deref())
    }
}

/// Checks sidecache's `Cache-Status` member: each expectation is `name` (the parameter is
/// present), `name=value` (present with that value) or `!name` (absent). `hit` and `fwd` exclude
/// each other (RFC 9211 §2.1, §2.2), so `hit` also checks that there is no `fwd`.
#[track_caller]
fn expect_status(got: &Got, expected: &[&str]) {
    let status = Status::of(got);
    let raw = got.cache_status();
    for want in expected {
        if let Some(name) = want.strip_prefix('!') {
            assert!(status.get(name).is_none(), "{name} in Cache-Status: {raw}");
        } else if let Some((name, value)) = want.split_once('=') {
            assert_eq!(
                status.get(name),
                Some(Some(value)),
                "{want} in Cache-Status: {raw}"
            );
        } else {
            assert!(status.get(want).is_some(), "{want} in Cache-Status: {raw}");
            if *want == "hit" {
                assert!(status.get("fwd").is_none(), "hit with fwd: {raw}");
            }
        }
    }
}

// === helpers ===

/// A header field as a table states it.
type Field<'a> = (&'a str, &'a str);

/// The header fields of one table row.
type Fields<'a> = &'a [Field<'a>];

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

fn all_values(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|member| member.trim().to_owned())
        .collect()
}

fn http_date(at: SystemTime) -> String {
    httpdate::fmt_http_date(at)
}

/// A body whose bytes depend on their position, so a reordering or a gap shows.
fn patterned(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// The key sidecache stores `path` under, for a client that connected to it directly.
fn key(sidecache: &Sidecache, path: &str) -> CacheKey {
    CacheKey::new(&sidecache.proxy_addr.to_string(), path)
}

async fn is_stored(sidecache: &Sidecache, path: &str) -> bool {
    sidecache
        .proxy
        .cache()
        .store()
        .get(&key(sidecache, path))
        .is_some()
}

/// An origin that answers 200 with `headers` and `body`, and 304 (with `ETag` and
/// `not_modified` fields) to a request whose `If-None-Match` names the response's `ETag`.
fn validating(
    body: &'static str,
    headers: Vec<(String, String)>,
    not_modified: Vec<(String, String)>,
) -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    move |seen, _| {
        let etag = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("etag"))
            .map(|(_, value)| value.as_str());
        if etag.is_some_and(|etag| header(seen, "if-none-match") == etag) {
            let mut reply = Reply::new(304, "").header("etag", etag.unwrap_or_default());
            for (name, value) in &not_modified {
                reply = reply.header(name, value.clone());
            }
            return reply;
        }
        headers
            .iter()
            .fold(Reply::ok(body), |reply, (name, value)| {
                reply.header(name, value.clone())
            })
    }
}

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

// === Vary (RFC 9111 §4.1) ===

#[tokio::test]
async fn variants_of_one_url_are_kept_apart_by_vary() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            Reply::ok(format!("hello in {}", header(seen, "accept-language")))
                .header("cache-control", "max-age=60")
                .header("vary", "Accept-Language")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        // (Accept-Language sent, body expected, Cache-Status expected, origin loads so far)
        let steps: [(Option<&str>, &str, &[&str], usize); 8] = [
            (Some("en"), "hello in en", &["fwd=uri-miss", "stored"], 1),
            (Some("fr"), "hello in fr", &["fwd=vary-miss", "stored"], 2),
            (Some("en"), "hello in en", &["hit"], 2),
            (Some("fr"), "hello in fr", &["hit"], 2),
            (None, "hello in ", &["fwd=vary-miss", "stored"], 3),
            (Some("en"), "hello in en", &["hit"], 3),
            (Some("fr"), "hello in fr", &["hit"], 3),
            (None, "hello in ", &["hit"], 3),
        ];
        for (step, (language, body, status, loads)) in steps.into_iter().enumerate() {
            let headers: Vec<_> = language
                .map(|l| ("accept-language", l))
                .into_iter()
                .collect();
            let got = client.get_with(&sidecache.url("/greeting"), &headers).await;
            assert_eq!(
                (got.status.as_u16(), got.text().as_str()),
                (200, body),
                "step {step}"
            );
            expect_status(&got, status);
            assert_eq!(got.header("vary"), "Accept-Language", "step {step}");
            assert_eq!(origin.count("/greeting"), loads, "step {step}");
        }
        let seen = origin.seen();
        let languages: Vec<_> = seen.iter().map(|s| header(s, "accept-language")).collect();
        assert_eq!(
            languages,
            ["en", "fr", ""],
            "the origin saw each variant's request"
        );
    })
    .await;
}

#[tokio::test]
async fn a_variant_is_selected_only_when_every_nominated_field_matches() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            Reply::ok(format!(
                "{}/{}",
                header(seen, "accept-language"),
                header(seen, "x-tenant")
            ))
            .header("cache-control", "max-age=60")
            .header("vary", "Accept-Language")
            .header("vary", "X-Tenant")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        // (Accept-Language, X-Tenant, whether it is a hit)
        let steps = [
            ("en", "a", false),
            ("en", "b", false),
            ("fr", "a", false),
            ("en", "a", true),
            ("en", "b", true),
            ("fr", "a", true),
            ("fr", "b", false),
        ];
        for (language, tenant, hit) in steps {
            let got = client
                .get_with(
                    &sidecache.url("/two"),
                    &[("accept-language", language), ("x-tenant", tenant)],
                )
                .await;
            assert_eq!(got.text(), format!("{language}/{tenant}"));
            // The first load finds nothing for the URL; later ones find other variants.
            let miss = if origin.count("/two") == 1 {
                "fwd=uri-miss"
            } else {
                "fwd=vary-miss"
            };
            let expected = if hit {
                vec!["hit"]
            } else {
                vec![miss, "stored"]
            };
            expect_status(&got, &expected);
        }
        assert_eq!(origin.count("/two"), 4);
    })
    .await;
}

#[tokio::test]
async fn a_response_with_vary_star_is_never_stored() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            let vary = if seen.path == "/star" {
                "*"
            } else {
                "Accept-Language, *"
            };
            Reply::ok("varies on everything")
                .header("cache-control", "public, max-age=60")
                .header("vary", vary)
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        for path in ["/star", "/star-in-a-list"] {
            for round in 1..=3 {
                let got = client.get(&sidecache.url(path)).await;
                assert_eq!(got.status, 200);
                assert_eq!(got.text(), "varies on everything");
                expect_status(&got, &["!stored", "!hit"]);
                assert_eq!(
                    origin.count(path),
                    round,
                    "{path}: every request goes forward"
                );
            }
            assert!(!is_stored(&sidecache, path).await, "{path} was stored");
        }
    })
    .await;
}

#[tokio::test]
async fn a_follower_whose_vary_fields_differ_loads_its_own_variant() {
    bounded(async {
        let gate = Gate::new();
        let origin_gate = gate.clone();
        let origin = TestOrigin::start(move |seen, _| {
            let language = header(seen, "accept-language").to_owned();
            let reply = Reply::ok(format!("in {language}"))
                .header("cache-control", "max-age=60")
                .header("vary", "Accept-Language");
            if language == "en" {
                reply.gated(&origin_gate)
            } else {
                reply
            }
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/lang");
        let english = tokio::spawn({
            let (client, url) = (client.clone(), url.clone());
            async move { client.get_with(&url, &[("accept-language", "en")]).await }
        });
        origin.arrivals(1).await;
        // Queued behind the English load, which cannot serve it.
        let french = tokio::spawn({
            let (client, url) = (client.clone(), url.clone());
            async move { client.get_with(&url, &[("accept-language", "fr")]).await }
        });
        sidecache.in_flight(2).await;
        gate.open();
        assert_eq!(english.await.expect("en").text(), "in en");
        assert_eq!(french.await.expect("fr").text(), "in fr");
        assert_eq!(origin.count("/lang"), 2);
        for language in ["en", "fr"] {
            let got = client
                .get_with(&url, &[("accept-language", language)])
                .await;
            assert_eq!(got.text(), format!("in {language}"));
            expect_status(&got, &["hit"]);
        }
    })
    .await;
}

// === what may be stored (RFC 9111 §3, §5.2.2; RFC 6585) ===

#[tokio::test]
async fn only_storable_responses_are_stored() {
    bounded(async {
        // (status, response fields, whether the second request is a hit)
        let cases: [(u16, Fields, bool); 12] = [
            (200, &[("cache-control", "max-age=60")], true),
            (200, &[("cache-control", "no-store, max-age=60")], false),
            (200, &[("cache-control", "private, max-age=60")], false),
            (
                200,
                &[("cache-control", "max-age=60"), ("set-cookie", "id=1")],
                false,
            ),
            // §5.2.2.3: must-understand lifts no-store for a status the cache understands...
            (
                200,
                &[("cache-control", "must-understand, no-store, max-age=60")],
                true,
            ),
            // ...and otherwise the response is not stored.
            (
                299,
                &[("cache-control", "must-understand, no-store, max-age=60")],
                false,
            ),
            (204, &[("cache-control", "max-age=60")], true),
            (404, &[("cache-control", "max-age=60")], true),
            (410, &[("last-modified", LAST_MODIFIED)], true),
            // A status that is not heuristically cacheable needs explicit freshness (§3).
            (302, &[("last-modified", LAST_MODIFIED)], false),
            (
                302,
                &[("cache-control", "max-age=60"), ("location", "/x")],
                true,
            ),
            // RFC 6585 §4: "MUST NOT be stored by a cache".
            (429, &[("cache-control", "max-age=60")], false),
        ];
        for (case, (status, fields, stored)) in cases.into_iter().enumerate() {
            let fields = owned(fields);
            let origin = TestOrigin::start(move |_, _| {
                fields
                    .iter()
                    .fold(Reply::new(status, "storable?"), |reply, (name, value)| {
                        reply.header(name, value.clone())
                    })
            })
            .await;
            let sidecache = Sidecache::start(&origin.url(), &[]).await;
            let client = TestClient::new();
            let url = sidecache.url("/s");
            let first = client.get(&url).await;
            assert_eq!(first.status.as_u16(), status, "case {case}");
            let second = client.get(&url).await;
            assert_eq!(second.status.as_u16(), status, "case {case}");
            if stored {
                expect_status(&second, &["hit"]);
                assert_eq!(origin.count("/s"), 1, "case {case}");
            } else {
                expect_status(&first, &["!stored"]);
                expect_status(&second, &["!hit"]);
                assert_eq!(origin.count("/s"), 2, "case {case}");
            }
            sidecache.stop().await;
        }
    })
    .await;
}

// === revalidation with the origin (RFC 9111 §4.3.1, §4.3.3, §4.3.4, §3.2) ===

#[tokio::test]
async fn a_stale_response_is_revalidated_and_a_304_refreshes_it() {
    bounded(async {
        // (validator field, its value, the conditional field the origin must see)
        let validators = [
            ("etag", "\"v1\"", "if-none-match"),
            ("last-modified", LAST_MODIFIED, "if-modified-since"),
        ];
        for (validator, value, conditional) in validators {
            let origin = TestOrigin::start(move |seen, _| {
                if header(seen, conditional) == value {
                    // The 304 updates the stored fields (§3.2), here its freshness and a
                    // custom field; it has no body.
                    return Reply::new(304, "")
                        .header(validator, value)
                        .header("cache-control", "max-age=60")
                        .header("x-version", "2");
                }
                Reply::ok("the stored body")
                    .header(validator, value)
                    .header("cache-control", "max-age=0")
                    .header("x-version", "1")
            })
            .await;
            let sidecache = Sidecache::start(&origin.url(), &[]).await;
            let client = TestClient::new();
            let url = sidecache.url("/doc");

            let first = client.get(&url).await;
            assert_eq!(first.text(), "the stored body");
            assert_eq!(first.header("x-version"), "1");
            expect_status(&first, &["fwd=uri-miss", "stored"]);

            // max-age=0: stale at once, so this request revalidates.
            let second = client.get(&url).await;
            assert_eq!(second.status, 200, "{validator}");
            assert_eq!(
                second.text(),
                "the stored body",
                "{validator}: the stored body"
            );
            assert_eq!(
                second.header("x-version"),
                "2",
                "{validator}: the 304's field"
            );
            expect_status(&second, &["fwd=stale", "fwd-status=304"]);
            let seen = origin.seen();
            assert_eq!(seen.len(), 2, "{validator}");
            assert_eq!(
                header(&seen[0], conditional),
                "",
                "{validator}: first is plain"
            );
            assert_eq!(header(&seen[1], conditional), value, "{validator}");
            assert_eq!(seen[1].method, Method::GET);

            // The 304 made it fresh for 60 s: answered from the cache, refreshed.
            let third = client.get(&url).await;
            assert_eq!(third.text(), "the stored body", "{validator}");
            assert_eq!(third.header("x-version"), "2", "{validator}");
            assert_eq!(third.header("cache-control"), "max-age=60", "{validator}");
            expect_status(&third, &["hit"]);
            assert_eq!(origin.count("/doc"), 2, "{validator}");
            sidecache.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_304_that_makes_the_stored_response_private_ends_its_sharing() {
    bounded(async {
        let origin = TestOrigin::start(|seen, n| {
            if header(seen, "if-none-match") == "\"p\"" {
                return Reply::new(304, "")
                    .header("etag", "\"p\"")
                    .header("cache-control", "private, max-age=60");
            }
            Reply::ok(format!("load {n}"))
                .header("etag", "\"p\"")
                .header("cache-control", "max-age=0")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/p");
        assert_eq!(client.get(&url).await.text(), "load 1");
        // §4.3.4 updates the stored response with the 304's fields; it now says `private`,
        // which a shared cache "MUST NOT store" (§5.2.2.7). The client that revalidated gets
        // it, but it is not stored as fresh for the next client.
        let second = client.get(&url).await;
        assert_eq!(second.text(), "load 1");
        assert_eq!(second.header("cache-control"), "private, max-age=60");
        expect_status(&second, &["!stored"]);
        let third = client.get(&url).await;
        expect_status(&third, &["!hit"]);
        assert_eq!(origin.count("/p"), 3);
    })
    .await;
}

#[tokio::test]
async fn a_stale_response_replaced_by_a_new_200_reports_fwd_stale() {
    bounded(async {
        let origin = TestOrigin::start(|_, n| {
            Reply::ok(format!("version {n}"))
                .header("etag", format!("\"v{n}\""))
                .header(
                    "cache-control",
                    if n == 1 { "max-age=0" } else { "max-age=60" },
                )
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/changing");
        assert_eq!(client.get(&url).await.text(), "version 1");
        let second = client.get(&url).await;
        assert_eq!(second.text(), "version 2");
        assert_eq!(header(&origin.seen()[1], "if-none-match"), "\"v1\"");
        // RFC 9211 §2.2: "stale: The cache was able to select a response for the request,
        // but it was stale"; the origin's answer was a new 200, which was stored.
        expect_status(&second, &["fwd=stale", "fwd-status=200", "stored"]);
        let third = client.get(&url).await;
        assert_eq!(third.text(), "version 2");
        expect_status(&third, &["hit"]);
    })
    .await;
}

// === conditional requests answered by the cache (RFC 9111 §4.3.2, RFC 9110 §13) ===

#[tokio::test]
async fn conditional_client_requests_are_answered_from_a_fresh_stored_response() {
    bounded(async {
        let origin = TestOrigin::start(|_, _| {
            Reply::ok("representation")
                .header("etag", "\"a\"")
                .header("last-modified", LAST_MODIFIED)
                .header("cache-control", "max-age=60")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/cond");
        let fill = client.get(&url).await;
        expect_status(&fill, &["fwd=uri-miss", "stored"]);

        let modified = httpdate::parse_http_date(LAST_MODIFIED).expect("date");
        let later = http_date(modified + Duration::from_secs(86_400));
        let earlier = http_date(modified - Duration::from_secs(86_400));
        // (request fields, expected status)
        let cases: [(&[(&str, &str)], u16); 13] = [
            (&[("if-none-match", "\"a\"")], 304),
            // If-None-Match uses the weak comparison (RFC 9110 §13.1.2).
            (&[("if-none-match", "W/\"a\"")], 304),
            (&[("if-none-match", "\"x\", \"a\"")], 304),
            (&[("if-none-match", "*")], 304),
            (&[("if-none-match", "\"b\"")], 200),
            (&[("if-modified-since", LAST_MODIFIED)], 304),
            (&[("if-modified-since", &later)], 304),
            (&[("if-modified-since", &earlier)], 200),
            // An invalid date is ignored (RFC 9110 §13.1.3).
            (&[("if-modified-since", "yesterday")], 200),
            // If-Modified-Since is ignored when If-None-Match is present (§13.1.3).
            (
                &[
                    ("if-none-match", "\"b\""),
                    ("if-modified-since", LAST_MODIFIED),
                ],
                200,
            ),
            (
                &[("if-none-match", "\"a\""), ("if-modified-since", &earlier)],
                304,
            ),
            // Range is ignored when a conditional GET results in 304 (RFC 9110 §14.2).
            (&[("if-none-match", "\"a\""), ("range", "bytes=0-3")], 304),
            (&[], 200),
        ];
        for (fields, status) in cases {
            let got = client.get_with(&url, fields).await;
            assert_eq!(got.status.as_u16(), status, "{fields:?}");
            expect_status(&got, &["hit"]);
            if status == 304 {
                assert!(got.body.is_empty(), "{fields:?}: a 304 has no content");
                // RFC 9110 §15.4.5: the fields a 200 would have carried.
                assert_eq!(got.header("etag"), "\"a\"", "{fields:?}");
                assert_eq!(got.header("cache-control"), "max-age=60", "{fields:?}");
                assert!(!got.header("date").is_empty(), "{fields:?}");
            } else {
                assert_eq!(got.text(), "representation", "{fields:?}");
            }
        }
        // A HEAD is conditional too.
        let head = client
            .send(
                Method::HEAD,
                &url,
                &[("if-none-match", "\"a\"")],
                Bytes::new(),
            )
            .await;
        assert_eq!(head.status, 304);
        assert_eq!(
            origin.count("/cond"),
            1,
            "no conditional request went to the origin"
        );
    })
    .await;
}

// === HEAD (RFC 9110 §9.3.2, RFC 9111 §4) ===

#[tokio::test]
async fn head_is_answered_from_a_stored_get_and_a_cold_head_fills_the_cache() {
    bounded(async {
        let body = patterned(1234);
        let reply_body = body.clone();
        let origin = TestOrigin::start(move |_, _| {
            Reply::ok(reply_body.clone()).header("cache-control", "max-age=60")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();

        // A stored GET answers a HEAD: same fields, no content.
        let get = client.get(&sidecache.url("/warm")).await;
        assert_eq!(get.body, body);
        let head = client
            .send(Method::HEAD, &sidecache.url("/warm"), &[], Bytes::new())
            .await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), "1234");
        expect_status(&head, &["hit"]);
        assert_eq!(origin.count("/warm"), 1);

        // A cold HEAD loads the GET response (and stores it); a later GET is a hit.
        let head = client
            .send(Method::HEAD, &sidecache.url("/cold"), &[], Bytes::new())
            .await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), "1234");
        expect_status(&head, &["fwd=uri-miss", "stored"]);
        let seen = origin.seen();
        let cold: Vec<_> = seen.iter().filter(|s| s.path == "/cold").collect();
        assert_eq!(cold.len(), 1);
        assert_eq!(cold[0].method, Method::GET, "the origin sees a GET");
        let get = client.get(&sidecache.url("/cold")).await;
        assert_eq!(get.body, body);
        expect_status(&get, &["hit"]);
        assert_eq!(origin.count("/cold"), 1);
    })
    .await;
}

// === invalidation by unsafe methods (RFC 9111 §4.4) ===

#[tokio::test]
async fn a_successful_unsafe_request_invalidates_its_url() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| match (&seen.method, seen.path.as_str()) {
            (&Method::GET, _) => Reply::ok("resource").header("cache-control", "max-age=60"),
            (_, "/fails-500") => Reply::new(500, "broken"),
            (_, "/fails-404") => Reply::new(404, "no such thing"),
            (&Method::DELETE, _) => Reply::new(204, ""),
            _ => Reply::ok("changed"),
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        // (method, path, status the origin answers, whether the URL is invalidated)
        let cases = [
            (Method::POST, "/post", 200, true),
            (Method::PUT, "/put", 200, true),
            (Method::DELETE, "/delete", 204, true),
            (Method::PATCH, "/patch", 200, true),
            // Only a non-error status invalidates.
            (Method::POST, "/fails-500", 500, false),
            (Method::POST, "/fails-404", 404, false),
        ];
        for (method, path, status, invalidates) in cases {
            let url = sidecache.url(path);
            expect_status(&client.get(&url).await, &["fwd=uri-miss", "stored"]);
            expect_status(&client.get(&url).await, &["hit"]);
            let unsafe_answer = client.send(method.clone(), &url, &[], Bytes::new()).await;
            assert_eq!(unsafe_answer.status.as_u16(), status, "{method} {path}");
            expect_status(&unsafe_answer, &["fwd=method"]);
            let after = client.get(&url).await;
            assert_eq!(after.text(), "resource");
            if invalidates {
                expect_status(&after, &["fwd=uri-miss", "stored"]);
            } else {
                expect_status(&after, &["hit"]);
            }
            let gets = origin
                .seen()
                .iter()
                .filter(|s| s.path == path && s.method == Method::GET)
                .count();
            assert_eq!(gets, if invalidates { 2 } else { 1 }, "{method} {path}");
        }
    })
    .await;
}

#[tokio::test]
async fn location_and_content_location_of_the_same_origin_are_invalidated() {
    bounded(async {
        let own = Arc::new(std::sync::OnceLock::<String>::new());
        let origin_own = Arc::clone(&own);
        let origin = TestOrigin::start(move |seen, _| {
            if seen.method == Method::GET {
                return Reply::ok(format!("{} body", seen.path))
                    .header("cache-control", "max-age=60");
            }
            let authority = origin_own.get().expect("set before any POST");
            match seen.path.as_str() {
                "/things" => Reply::new(201, "created")
                    .header("location", "/things/1")
                    .header("content-location", format!("http://{authority}/things/2")),
                _ => Reply::new(201, "created elsewhere")
                    .header("location", "http://other.example/things/3")
                    .header("content-location", "//other.example/things/4"),
            }
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        own.set(sidecache.proxy_addr.to_string()).expect("once");
        let client = TestClient::new();
        let paths = [
            "/things",
            "/things/1",
            "/things/2",
            "/things/3",
            "/things/4",
        ];
        for path in paths {
            client.get(&sidecache.url(path)).await;
            expect_status(&client.get(&sidecache.url(path)).await, &["hit"]);
        }
        let created = client
            .send(Method::POST, &sidecache.url("/things"), &[], Bytes::new())
            .await;
        assert_eq!(created.status, 201);
        let other = client
            .send(
                Method::POST,
                &sidecache.url("/elsewhere"),
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(other.status, 201);
        // (path, invalidated)
        let expected = [
            ("/things", true),
            ("/things/1", true),
            ("/things/2", true),
            // Other origins' URLs are not ours to invalidate.
            ("/things/3", false),
            ("/things/4", false),
        ];
        for (path, invalidated) in expected {
            let got = client.get(&sidecache.url(path)).await;
            assert_eq!(got.text(), format!("{path} body"));
            if invalidated {
                expect_status(&got, &["fwd=uri-miss"]);
            } else {
                expect_status(&got, &["hit"]);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_body_of_an_unsafe_request_reaches_the_origin_intact() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            Reply::new(201, format!("received {} bytes", seen.body.len()))
                .header("x-method", seen.method.as_str())
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let body = patterned(200 * 1024);
        for method in [Method::POST, Method::PUT, Method::PATCH] {
            let got = client
                .send(
                    method.clone(),
                    &sidecache.url("/upload"),
                    &[("content-type", "application/octet-stream")],
                    body.clone(),
                )
                .await;
            assert_eq!(got.status, 201);
            assert_eq!(got.text(), "received 204800 bytes");
            assert_eq!(got.header("x-method"), method.as_str());
            let seen = origin.seen();
            let last = seen.last().expect("a request");
            assert_eq!(last.method, method);
            assert!(last.body == body, "{method}: the body arrived changed");
            assert_eq!(header(last, "content-type"), "application/octet-stream");
        }
    })
    .await;
}

// === purge and health on the admin port ===

async fn purge(client: &TestClient, sidecache: &Sidecache, query: &str) -> Got {
    client
        .send(
            Method::POST,
            &sidecache.admin_url(&format!("/purge?{query}")),
            &[],
            Bytes::new(),
        )
        .await
}

fn purged(got: &Got) -> u64 {
    assert_eq!(got.status, 200, "{}", got.text());
    let json: serde_json::Value = serde_json::from_slice(&got.body).expect("JSON");
    json["purged"].as_u64().expect("a count")
}

#[tokio::test]
async fn purge_by_url_and_by_prefix_answers_how_many_went() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            let reply =
                Reply::ok(format!("{} body", seen.path)).header("cache-control", "max-age=60");
            if seen.path == "/p/v" {
                reply.header("vary", "Accept-Language")
            } else {
                reply
            }
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let admin = TestClient::new();
        for path in ["/p/a", "/p/b", "/p/c", "/q/a"] {
            client.get(&sidecache.url(path)).await;
        }
        for language in ["en", "fr"] {
            client
                .get_with(&sidecache.url("/p/v"), &[("accept-language", language)])
                .await;
        }
        assert_eq!(origin.count("/p/v"), 2);

        // One URL with two variants is one entry; both variants go.
        assert_eq!(purged(&purge(&admin, &sidecache, "url=/p/v").await), 1);
        for (language, miss) in [("en", "fwd=uri-miss"), ("fr", "fwd=vary-miss")] {
            let got = client
                .get_with(&sidecache.url("/p/v"), &[("accept-language", language)])
                .await;
            expect_status(&got, &[miss]);
        }
        assert_eq!(purged(&purge(&admin, &sidecache, "url=%2Fp%2Fa").await), 1);
        expect_status(&client.get(&sidecache.url("/p/a")).await, &["fwd=uri-miss"]);
        assert_eq!(purged(&purge(&admin, &sidecache, "url=/missing").await), 0);

        assert_eq!(purged(&purge(&admin, &sidecache, "prefix=/p/").await), 4);
        for path in ["/p/a", "/p/b", "/p/c"] {
            expect_status(&client.get(&sidecache.url(path)).await, &["fwd=uri-miss"]);
        }
        expect_status(&client.get(&sidecache.url("/q/a")).await, &["hit"]);
        assert_eq!(
            purged(&purge(&admin, &sidecache, "prefix=/nothing/").await),
            0
        );

        // Malformed purges are refused, not guessed at.
        let bad = purge(&admin, &sidecache, "url=/p/a&prefix=/p/").await;
        assert_eq!(bad.status, 400);
        expect_status(&client.get(&sidecache.url("/p/a")).await, &["hit"]);
    })
    .await;
}

/// A purge's `host` is normalised exactly as the cache key's host is (lower-cased, an empty,
/// `:80` or `:443` port dropped), for `prefix=` and `url=` alike; a host a request could not
/// carry is refused.
#[tokio::test]
async fn purge_hosts_are_normalised_as_cache_keys_are() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            Reply::ok(format!("{} body", seen.path)).header("cache-control", "max-age=60")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let admin = TestClient::new();
        // Stored under the hosts `x.example` and `x.example:8080`.
        let store = async |host: &str, path: &str| {
            let got = client
                .get_with(&sidecache.url(path), &[("host", host)])
                .await;
            assert_eq!(got.status, 200, "{host}{path}");
        };
        for path in ["/p/1", "/p/2", "/u"] {
            store("X.Example", path).await;
            store("x.example:8080", path).await;
        }
        let cached = |host: &'static str, path: &'static str| {
            let (client, url) = (client.clone(), sidecache.url(path));
            async move {
                let got = client.get_with(&url, &[("host", host)]).await;
                Status::of(&got).get("hit").is_some()
            }
        };

        for host in ["x.example:80", "X.EXAMPLE:443", "x.example:"] {
            store("x.example", "/p/1").await;
            let query = format!("prefix=/p/&host={host}");
            assert!(
                purged(&purge(&admin, &sidecache, &query).await) >= 1,
                "{query}"
            );
            assert!(!cached("x.example", "/p/1").await, "{query}");
        }
        assert!(
            cached("x.example:8080", "/p/1").await,
            "another port is another host"
        );
        for host in ["x.example:80", "X.Example:443"] {
            store("x.example", "/u").await;
            let query = format!("url=/u&host={host}");
            assert_eq!(
                purged(&purge(&admin, &sidecache, &query).await),
                1,
                "{query}"
            );
        }
        assert!(cached("x.example:8080", "/u").await);
        let query = "prefix=/&host=X.EXAMPLE:8080";
        assert_eq!(
            purged(&purge(&admin, &sidecache, query).await),
            3,
            "{query}"
        );

        // A host no request could carry is refused, not silently matched against nothing.
        for host in [
            "",
            "x%20example",
            "x.example:8o",
            "x/example",
            "us%40x.example",
        ] {
            for target in ["url=/u", "prefix=/"] {
                let query = format!("{target}&host={host}");
                let got = purge(&admin, &sidecache, &query).await;
                assert_eq!(got.status, 400, "{query}: {}", got.text());
            }
        }
        sidecache.stop().await;
    })
    .await;
}

#[tokio::test]
async fn purge_needs_the_admin_token_when_one_is_configured() {
    bounded(async {
        let origin =
            TestOrigin::start(|_, _| Reply::ok("kept").header("cache-control", "max-age=60")).await;
        let sidecache = Sidecache::start(&origin.url(), &["--admin-token", "s3cret"]).await;
        let client = TestClient::new();
        let url = sidecache.admin_url("/purge?url=/kept");
        client.get(&sidecache.url("/kept")).await;
        // (Authorization sent, expected status)
        let cases: [(Option<&str>, u16); 5] = [
            (None, 401),
            (Some("Bearer wrong"), 401),
            (Some("Bearer s3cret2"), 401),
            (Some("Basic czNjcmV0"), 401),
            (Some("Bearer s3cret"), 200),
        ];
        for (authorization, status) in cases {
            let headers: Vec<_> = authorization
                .map(|value| ("authorization", value))
                .into_iter()
                .collect();
            let got = client
                .send(Method::POST, &url, &headers, Bytes::new())
                .await;
            assert_eq!(got.status.as_u16(), status, "{authorization:?}");
            if status == 401 {
                // RFC 9110 §15.5.2: a 401 carries a challenge.
                assert!(
                    got.header("www-authenticate").starts_with("Bearer"),
                    "{authorization:?}"
                );
                expect_status(&client.get(&sidecache.url("/kept")).await, &["hit"]);
            } else {
                assert_eq!(purged(&got), 1);
            }
        }
        // Health and readiness are not state-changing: no token needed.
        for path in ["/healthz", "/readyz"] {
            let got = client.get(&sidecache.admin_url(path)).await;
            assert_eq!(got.status, 200, "{path}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    bounded(async {
        let origin = TestOrigin::start(|_, _| Reply::ok("x")).await;
        let sidecache = Sidecache::start(&origin.url(), &["--admin-token", "s3cret"]).await;
        let client = TestClient::new();
        // RFC 9110 §11.1: "It uses a case-insensitive token to identify the authentication
        // scheme"; the token itself is compared exactly.
        for authorization in ["bearer s3cret", "BEARER s3cret"] {
            let got = client
                .send(
                    Method::POST,
                    &sidecache.admin_url("/purge?url=/x"),
                    &[("authorization", authorization)],
                    Bytes::new(),
                )
                .await;
            assert_eq!(got.status, 200, "{authorization}");
        }
    })
    .await;
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_admin_port() {
    bounded(async {
        let origin = TestOrigin::start(|_, _| Reply::ok("x")).await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        for path in ["/healthz", "/readyz"] {
            let got = client.get(&sidecache.admin_url(path)).await;
            assert_eq!(got.status, 200, "{path}");
        }
        let got = client.get(&sidecache.admin_url("/purge?url=/x")).await;
        assert_eq!(got.status, 405, "a purge is a POST");
        sidecache.stop().await;
    })
    .await;
}

// === objects larger than the largest stored object ===

#[tokio::test]
async fn large_objects_stream_through_whole_and_are_not_stored() {
    bounded(async {
        let body = patterned(256 * 1024);
        let reply_body = body.clone();
        let origin = TestOrigin::start(move |seen, _| {
            let reply = Reply::ok(reply_body.clone()).header("cache-control", "max-age=60");
            if seen.path == "/chunked" {
                reply.chunked()
            } else {
                reply
            }
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &["--max-object-size", "1KiB"]).await;
        let client = TestClient::new();
        // (path, whether the origin sends Content-Length)
        for (path, with_length) in [("/sized", true), ("/chunked", false)] {
            for round in 1..=2 {
                let got = client.get(&sidecache.url(path)).await;
                assert_eq!(got.status, 200, "{path}");
                assert_eq!(got.body.len(), body.len(), "{path} round {round}");
                assert!(got.body == body, "{path} round {round}: bytes differ");
                assert_eq!(
                    got.headers.contains_key("content-length"),
                    with_length,
                    "{path}"
                );
                expect_status(&got, &["!stored", "!hit"]);
                if round == 1 {
                    expect_status(&got, &["detail=too_large"]);
                }
                assert_eq!(origin.count(path), round, "{path}: not stored");
            }
            assert!(!is_stored(&sidecache, path).await, "{path}");
        }
    })
    .await;
}

// === the byte bound ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_capacity_holds_under_a_fill_larger_than_it() {
    bounded(async {
        let origin = TestOrigin::start(|_, _| {
            Reply::ok(patterned(1024)).header("cache-control", "max-age=60")
        })
        .await;
        let sidecache = Sidecache::start(
            &origin.url(),
            &["--cache-capacity", "64KiB", "--max-object-size", "4KiB"],
        )
        .await;
        let client = TestClient::new();
        const OBJECTS: usize = 300;
        let mut batch = tokio::task::JoinSet::new();
        for i in 0..OBJECTS {
            let (client, url) = (client.clone(), sidecache.url(&format!("/obj/{i}")));
            batch.spawn(async move {
                let got = client.get(&url).await;
                assert_eq!((got.status.as_u16(), got.body.len()), (200, 1024));
            });
            if batch.len() == 8 {
                batch.join_next().await.expect("a task").expect("no panic");
            }
        }
        while let Some(done) = batch.join_next().await {
            done.expect("no panic");
        }
        assert_eq!(origin.seen().len(), OBJECTS);
        let store = sidecache.proxy.cache().store();
        store.settle();
        assert_eq!(store.capacity_bytes(), 64 * 1024);
        assert!(
            store.size_bytes() <= store.capacity_bytes(),
            "{} bytes held, capacity {}",
            store.size_bytes(),
            store.capacity_bytes()
        );
        let scrape = sidecache.metrics().await;
        let evicted =
            |cause: &str| scrape.value(&format!("sidecache_evictions_total{{cause=\"{cause}\"}}"));
        assert!(store.entry_count() > 0, "something is kept");
        assert!(evicted("size") > 0.0, "something was evicted");
        assert_eq!(
            store.entry_count() as f64 + evicted("size"),
            OBJECTS as f64,
            "every stored object is either held or counted as evicted"
        );
        for cause in ["expired", "explicit", "replaced"] {
            assert_eq!(evicted(cause), 0.0, "{cause}");
        }
        assert_eq!(
            scrape.value("sidecache_entries"),
            store.entry_count() as f64
        );
        assert_eq!(
            scrape.value("sidecache_size_bytes"),
            store.size_bytes() as f64
        );
    })
    .await;
}

// === Range (RFC 9110 §14, §13.1.5) ===

#[tokio::test]
async fn ranges_are_answered_from_a_stored_full_response() {
    bounded(async {
        const BODY: &str = "0123456789abcdefghij";
        let origin = TestOrigin::start(|_, _| {
            Reply::ok(BODY)
                .header("etag", "\"r1\"")
                .header("last-modified", LAST_MODIFIED)
                .header("cache-control", "max-age=60")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/bytes");

        // A cold range request: the origin is asked for the whole representation (which is
        // stored), and the client gets its range.
        let cold = client.get_with(&url, &[("range", "bytes=0-4")]).await;
        assert_eq!(cold.status, 206);
        assert_eq!(cold.text(), "01234");
        assert_eq!(header(&origin.seen()[0], "range"), "", "a full load");
        expect_status(&cold, &["fwd=uri-miss", "stored"]);

        let other_date = "Thu, 22 Oct 2015 07:28:00 GMT";
        // (request fields, status, Content-Range, body)
        let cases: [(Fields, u16, &str, &str); 15] = [
            (&[("range", "bytes=0-4")], 206, "bytes 0-4/20", "01234"),
            (&[("range", "bytes=5-9")], 206, "bytes 5-9/20", "56789"),
            (&[("range", "bytes=-5")], 206, "bytes 15-19/20", "fghij"),
            (&[("range", "bytes=15-")], 206, "bytes 15-19/20", "fghij"),
            (
                &[("range", "bytes=10-100")],
                206,
                "bytes 10-19/20",
                "abcdefghij",
            ),
            (&[("range", "BYTES=0-1")], 206, "bytes 0-1/20", "01"),
            (&[("range", "bytes=20-30")], 416, "bytes */20", ""),
            (&[("range", "bytes=-0")], 416, "bytes */20", ""),
            // Another range unit, or a malformed field, is ignored (RFC 9110 §14.2).
            (&[("range", "items=0-1")], 200, "", BODY),
            (&[("range", "bytes=5-1")], 200, "", BODY),
            // If-Range: a strong match on the entity tag or the exact Last-Modified date.
            (
                &[("range", "bytes=0-4"), ("if-range", "\"r1\"")],
                206,
                "bytes 0-4/20",
                "01234",
            ),
            (
                &[("range", "bytes=0-4"), ("if-range", LAST_MODIFIED)],
                206,
                "bytes 0-4/20",
                "01234",
            ),
            (
                &[("range", "bytes=0-4"), ("if-range", "\"other\"")],
                200,
                "",
                BODY,
            ),
            // A weak tag never matches in If-Range.
            (
                &[("range", "bytes=0-4"), ("if-range", "W/\"r1\"")],
                200,
                "",
                BODY,
            ),
            (
                &[("range", "bytes=0-4"), ("if-range", other_date)],
                200,
                "",
                BODY,
            ),
        ];
        for (fields, status, content_range, body) in cases {
            let got = client.get_with(&url, fields).await;
            assert_eq!(got.status.as_u16(), status, "{fields:?}");
            assert_eq!(got.header("content-range"), content_range, "{fields:?}");
            assert_eq!(got.text(), body, "{fields:?}");
            if status != 416 {
                assert_eq!(
                    got.header("content-length"),
                    body.len().to_string(),
                    "{fields:?}"
                );
            }
            expect_status(&got, &["hit"]);
        }
        // Range handling is defined for GET only (RFC 9110 §14.2).
        let head = client
            .send(Method::HEAD, &url, &[("range", "bytes=0-4")], Bytes::new())
            .await;
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), "20");
        assert_eq!(origin.count("/bytes"), 1);
    })
    .await;
}

// === freshness (RFC 9111 §4.2, §5.2) ===

/// What the second request for a URL must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Second {
    /// Answered from the cache, the origin not asked.
    Hit,
    /// Sent to the origin as a conditional request, with this `fwd` reason (RFC 9211 §2.2).
    Revalidated(&'static str),
}

#[tokio::test]
async fn freshness_follows_the_response_and_the_request_directives() {
    bounded(async {
        let now = SystemTime::now();
        let past = http_date(now - Duration::from_secs(3600));
        let future = http_date(now + Duration::from_secs(3600));
        let ten_days_ago = http_date(now - Duration::from_secs(10 * 86_400));
        // (name, response fields besides ETag, second request's fields, what the second does)
        let cases: Vec<(&str, Vec<Field>, Vec<Field>, Second)> = vec![
            (
                "max-age",
                vec![("cache-control", "max-age=60")],
                vec![],
                Second::Hit,
            ),
            (
                "s-maxage beats max-age=0",
                vec![("cache-control", "max-age=0, s-maxage=60")],
                vec![],
                Second::Hit,
            ),
            (
                "s-maxage=0 beats max-age",
                vec![("cache-control", "max-age=60, s-maxage=0")],
                vec![],
                Second::Revalidated("stale"),
            ),
            (
                "Expires in the future",
                vec![("expires", &future)],
                vec![],
                Second::Hit,
            ),
            (
                "Expires in the past",
                vec![("expires", &past)],
                vec![],
                Second::Revalidated("stale"),
            ),
            (
                "invalid Expires is in the past, and no heuristic applies",
                vec![("expires", "0"), ("last-modified", &ten_days_ago)],
                vec![],
                Second::Revalidated("stale"),
            ),
            (
                "max-age beats Expires",
                vec![("cache-control", "max-age=60"), ("expires", &past)],
                vec![],
                Second::Hit,
            ),
            (
                "an Age beyond max-age is stale on arrival",
                vec![("cache-control", "max-age=60"), ("age", "120")],
                vec![],
                Second::Revalidated("stale"),
            ),
            (
                "heuristic freshness from Last-Modified",
                vec![("last-modified", &ten_days_ago)],
                vec![],
                Second::Hit,
            ),
            (
                "response no-cache",
                vec![("cache-control", "max-age=60, no-cache")],
                vec![],
                Second::Revalidated("stale"),
            ),
            (
                "request no-cache",
                vec![("cache-control", "max-age=60")],
                vec![("cache-control", "no-cache")],
                Second::Revalidated("request"),
            ),
            (
                "request Pragma: no-cache without Cache-Control",
                vec![("cache-control", "max-age=60")],
                vec![("pragma", "no-cache")],
                Second::Revalidated("request"),
            ),
            (
                "request max-age=0",
                vec![("cache-control", "max-age=60")],
                vec![("cache-control", "max-age=0")],
                Second::Revalidated("request"),
            ),
            (
                "request min-fresh beyond what is left",
                vec![("cache-control", "max-age=60")],
                vec![("cache-control", "min-fresh=120")],
                Second::Revalidated("request"),
            ),
            (
                "request max-stale accepts a stale response",
                vec![("cache-control", "max-age=0")],
                vec![("cache-control", "max-stale=60")],
                Second::Hit,
            ),
        ];
        for (name, fields, request, second) in cases {
            let mut fields = owned(&fields);
            fields.push(("etag".into(), "\"f\"".into()));
            let origin = TestOrigin::start(validating("fresh?", fields.clone(), vec![])).await;
            let sidecache = Sidecache::start(&origin.url(), &[]).await;
            let client = TestClient::new();
            let url = sidecache.url("/f");
            let first = client.get(&url).await;
            assert_eq!(first.text(), "fresh?", "{name}");
            expect_status(&first, &["fwd=uri-miss", "stored"]);
            // §5.1: the age the response arrived with is passed on (and only grows).
            let origin_age = fields
                .iter()
                .find(|(name, _)| name == "age")
                .map_or(0, |(_, age)| age.parse::<u64>().expect("an Age"));
            let age: u64 = first.header("age").parse().expect("an Age header");
            assert!(age >= origin_age, "{name}: Age {age} < {origin_age}");
            let got = client.get_with(&url, &request).await;
            assert_eq!(
                (got.status.as_u16(), got.text().as_str()),
                (200, "fresh?"),
                "{name}"
            );
            match second {
                Second::Hit => {
                    expect_status(&got, &["hit"]);
                    assert_eq!(origin.count("/f"), 1, "{name}");
                }
                Second::Revalidated(reason) => {
                    let fwd = format!("fwd={reason}");
                    expect_status(&got, &[&fwd, "fwd-status=304"]);
                    let seen = origin.seen();
                    assert_eq!(seen.len(), 2, "{name}");
                    assert_eq!(header(&seen[1], "if-none-match"), "\"f\"", "{name}");
                }
            }
            sidecache.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn only_if_cached_never_contacts_the_origin() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            let control = if seen.path == "/stale" {
                "max-age=0"
            } else {
                "max-age=60"
            };
            Reply::ok("stored")
                .header("cache-control", control)
                .header("etag", "\"o\"")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let only = [("cache-control", "only-if-cached")];
        // RFC 9111 §5.2.1.7: nothing stored satisfies it → 504.
        let cold = client.get_with(&sidecache.url("/cold"), &only).await;
        assert_eq!(cold.status, 504);
        assert_eq!(origin.count("/cold"), 0);

        client.get(&sidecache.url("/fresh")).await;
        let fresh = client.get_with(&sidecache.url("/fresh"), &only).await;
        assert_eq!(
            (fresh.status.as_u16(), fresh.text().as_str()),
            (200, "stored")
        );
        expect_status(&fresh, &["hit"]);

        // A stale response would need the origin to validate it.
        client.get(&sidecache.url("/stale")).await;
        let stale = client.get_with(&sidecache.url("/stale"), &only).await;
        assert_eq!(stale.status, 504);
        assert_eq!((origin.count("/fresh"), origin.count("/stale")), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn a_no_store_request_is_not_stored() {
    bounded(async {
        let origin = TestOrigin::start(|_, n| {
            Reply::ok(format!("load {n}")).header("cache-control", "max-age=60")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/private-ish");
        let first = client
            .get_with(&url, &[("cache-control", "no-store")])
            .await;
        assert_eq!(first.text(), "load 1");
        expect_status(&first, &["!stored"]);
        assert!(!is_stored(&sidecache, "/private-ish").await);
        let second = client.get(&url).await;
        assert_eq!(
            second.text(),
            "load 2",
            "nothing was stored by the no-store request"
        );
        expect_status(&second, &["fwd=uri-miss", "stored"]);
    })
    .await;
}

// === stale-while-revalidate (RFC 5861 §3) ===

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_revalidates_exactly_once() {
    bounded(async {
        let gate = Gate::new();
        let origin_gate = gate.clone();
        let origin = TestOrigin::start(move |seen, n| {
            if n == 1 {
                return Reply::ok("old")
                    .header("etag", "\"old\"")
                    .header("cache-control", "max-age=0, stale-while-revalidate=60");
            }
            // The background revalidation: held until the test opens the gate.
            assert_eq!(header(seen, "if-none-match"), "\"old\"");
            Reply::ok("new")
                .header("etag", "\"new\"")
                .header("cache-control", "max-age=60")
                .gated(&origin_gate)
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/swr");
        expect_status(&client.get(&url).await, &["fwd=uri-miss", "stored"]);

        // Stale within the window: served at once (the origin is held), revalidated behind.
        let stale = client.get(&url).await;
        assert_eq!(stale.text(), "old");
        expect_status(&stale, &["hit"]);
        let ttl: i64 = Status::of(&stale)
            .get("ttl")
            .flatten()
            .expect("ttl")
            .parse()
            .expect("an integer");
        assert!(ttl <= 0, "a stale response has no freshness left: {ttl}");
        origin.arrivals(2).await;

        // More clients while the revalidation is held: all answered stale, none starts another.
        let answers: Vec<_> = (0..5)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { client.get(&url).await })
            })
            .collect();
        for answer in answers {
            let got = answer.await.expect("client");
            assert_eq!(got.text(), "old");
            expect_status(&got, &["hit"]);
        }
        assert_eq!(origin.count("/swr"), 2, "one background revalidation");
        assert_eq!(sidecache.proxy.cache().in_flight(), 1);

        gate.open();
        support::wait_until(|| sidecache.proxy.cache().in_flight() == 0).await;
        let fresh = client.get(&url).await;
        assert_eq!(fresh.text(), "new");
        expect_status(&fresh, &["hit"]);
        assert_eq!(origin.count("/swr"), 2);
    })
    .await;
}

// === stale-if-error (RFC 5861 §4) and grace (RFC 9111 §4.2.4) ===

/// How the origin fails after the first, successful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// It is gone: connections are refused.
    Down,
    /// It answers 503.
    Unavailable,
}

#[tokio::test]
async fn stale_responses_stand_in_for_a_failing_origin_only_where_allowed() {
    bounded(async {
        // (name, response Cache-Control, sidecache flags, request fields, failure,
        //  the status the client gets, whether it is the stale body)
        type Case = (
            &'static str,
            &'static str,
            &'static [&'static str],
            &'static [(&'static str, &'static str)],
            Failure,
            u16,
            bool,
        );
        let no_grace: &[&str] = &["--grace", "0s"];
        let cases: [Case; 9] = [
            (
                "stale-if-error, origin down",
                "max-age=0, stale-if-error=60",
                no_grace,
                &[],
                Failure::Down,
                200,
                true,
            ),
            (
                "stale-if-error, origin 503",
                "max-age=0, stale-if-error=60",
                no_grace,
                &[],
                Failure::Unavailable,
                200,
                true,
            ),
            (
                "no stale-if-error, no grace, origin down",
                "max-age=0",
                no_grace,
                &[],
                Failure::Down,
                502,
                false,
            ),
            (
                "no stale-if-error, no grace, origin 503",
                "max-age=0",
                no_grace,
                &[],
                Failure::Unavailable,
                503,
                false,
            ),
            (
                "grace, origin down",
                "max-age=0",
                &[],
                &[],
                Failure::Down,
                200,
                true,
            ),
            // Grace is for a disconnected cache (§4.2.4); an origin that answers is not.
            (
                "grace, origin 503",
                "max-age=0",
                &[],
                &[],
                Failure::Unavailable,
                503,
                false,
            ),
            // §5.2.2.2: "the cache MUST generate an error response rather than reuse the stale
            // response" when disconnected.
            (
                "must-revalidate, grace, origin down",
                "max-age=0, must-revalidate",
                &[],
                &[],
                Failure::Down,
                502,
                false,
            ),
            (
                "must-revalidate, grace, origin 503",
                "max-age=0, must-revalidate",
                &[],
                &[],
                Failure::Unavailable,
                503,
                false,
            ),
            // RFC 5861 §4: the client may allow it too.
            (
                "request stale-if-error, origin 503",
                "max-age=0",
                no_grace,
                &[("cache-control", "stale-if-error=60")],
                Failure::Unavailable,
                200,
                true,
            ),
        ];
        for (name, control, flags, request, failure, status, stale) in cases {
            let mut origin = TestOrigin::start(move |_, n| {
                if n == 1 {
                    Reply::ok("the stale copy")
                        .header("cache-control", control)
                        .header("etag", "\"s\"")
                } else {
                    Reply::new(503, "origin overloaded").header("retry-after", "5")
                }
            })
            .await;
            let sidecache = Sidecache::start(&origin.url(), flags).await;
            let client = TestClient::new();
            let url = sidecache.url("/s");
            expect_status(&client.get(&url).await, &["fwd=uri-miss", "stored"]);
            if failure == Failure::Down {
                origin.shut_down().await;
            }
            let got = client.get_with(&url, request).await;
            assert_eq!(
                got.status.as_u16(),
                status,
                "{name}: {}",
                got.cache_status()
            );
            if stale {
                assert_eq!(got.text(), "the stale copy", "{name}");
                // The stale copy stands in; Cache-Status says what the origin did.
                let failed: &[&str] = match failure {
                    Failure::Down => &["fwd=stale", "detail=origin-connect-failed"],
                    Failure::Unavailable => {
                        &["fwd=stale", "fwd-status=503", "detail=origin-error-status"]
                    }
                };
                expect_status(&got, failed);
            } else {
                assert_ne!(got.text(), "the stale copy", "{name}");
                expect_status(&got, &["!hit", "!stored"]);
            }
            if status == 503 {
                assert_eq!(
                    got.text(),
                    "origin overloaded",
                    "{name}: the origin's own answer"
                );
                expect_status(&got, &["fwd-status=503"]);
            }
            sidecache.stop().await;
        }
    })
    .await;
}

// === targeted cache-control fields (RFC 9213) ===

#[tokio::test]
async fn targeted_fields_override_cache_control_and_sidecaches_own_is_never_sent_on() {
    bounded(async {
        // (response fields, whether the response is stored)
        let cases: [(&[(&str, &str)], bool); 7] = [
            (
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=60"),
                ],
                true,
            ),
            (
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "no-store"),
                ],
                false,
            ),
            // The most specific target wins (RFC 9213 §2.2: the first in the target list).
            (
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "no-store"),
                    ("sidecache-cache-control", "max-age=60"),
                ],
                true,
            ),
            (
                &[
                    ("cache-control", "max-age=60"),
                    ("cdn-cache-control", "max-age=60"),
                    ("sidecache-cache-control", "no-store"),
                ],
                false,
            ),
            // A targeted field that fails to parse is ignored (§2.1): Cache-Control governs.
            (
                &[
                    ("cache-control", "no-store"),
                    ("cdn-cache-control", "max-age=\"60\""),
                ],
                false,
            ),
            (
                &[
                    ("cache-control", "no-store"),
                    ("sidecache-cache-control", "max-age=60;;"),
                    ("cdn-cache-control", "max-age=60"),
                ],
                true,
            ),
            // A targeted field governs freshness on its own: Expires is not consulted.
            (
                &[("cdn-cache-control", "max-age=60"), ("expires", "0")],
                true,
            ),
        ];
        for (case, (fields, stored)) in cases.into_iter().enumerate() {
            let fields = owned(fields);
            let origin = TestOrigin::start(move |_, _| {
                fields
                    .iter()
                    .fold(Reply::ok("targeted"), |reply, (name, value)| {
                        reply.header(name, value.clone())
                    })
            })
            .await;
            let sidecache = Sidecache::start(&origin.url(), &[]).await;
            let client = TestClient::new();
            let path = format!("/t{case}");
            for round in 1..=2 {
                let got = client.get(&sidecache.url(&path)).await;
                assert_eq!(got.text(), "targeted", "case {case}");
                assert!(
                    !got.headers.contains_key("sidecache-cache-control"),
                    "case {case} round {round}: Sidecache-Cache-Control reached the client"
                );
                if round == 2 {
                    if stored {
                        expect_status(&got, &["hit"]);
                    } else {
                        expect_status(&got, &["!hit"]);
                    }
                }
            }
            assert_eq!(
                origin.count(&path),
                if stored { 1 } else { 2 },
                "case {case}"
            );
        }
    })
    .await;
}

// === Authorization (RFC 9111 §3.5) ===

#[tokio::test]
async fn an_authorized_response_is_shared_only_when_the_response_says_so() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            let control = match seen.path.as_str() {
                "/plain" => "max-age=60",
                "/public" => "public, max-age=60",
                "/s-maxage" => "s-maxage=60",
                _ => "max-age=60, must-revalidate",
            };
            Reply::ok(format!("for {}", header(seen, "authorization")))
                .header("cache-control", control)
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        // (path, whether the next client may be given the stored response)
        let cases = [
            ("/plain", false),
            ("/public", true),
            ("/s-maxage", true),
            ("/must-revalidate", true),
        ];
        for (path, shared) in cases {
            let url = sidecache.url(path);
            let alice = client
                .get_with(&url, &[("authorization", "Bearer alice")])
                .await;
            assert_eq!(alice.text(), "for Bearer alice");
            let next = client.get(&url).await;
            if shared {
                assert_eq!(next.text(), "for Bearer alice", "{path}");
                expect_status(&next, &["hit"]);
                assert_eq!(origin.count(path), 1, "{path}");
            } else {
                assert_eq!(next.text(), "for ", "{path}: not alice's response");
                // Only alice's credentials made her answer private: the next, anonymous
                // request is an ordinary miss that is stored, not a hit-for-miss pass.
                expect_status(&next, &["fwd=uri-miss", "stored"]);
                assert_eq!(origin.count(path), 2, "{path}");
            }
        }
    })
    .await;
}

// === hop-by-hop fields, Via, X-Forwarded-For (RFC 9110 §7.6) ===

#[tokio::test]
async fn hop_by_hop_request_fields_stay_behind_and_via_is_added() {
    bounded(async {
        let origin = TestOrigin::start(|_, _| Reply::ok("ok")).await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let fields = [
            ("connection", "close, X-Foo"),
            ("x-foo", "secret"),
            ("keep-alive", "timeout=5"),
            ("x-end-to-end", "kept"),
            ("via", "1.1 edge"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        for method in [Method::GET, Method::POST] {
            let got = client
                .send(
                    method.clone(),
                    &sidecache.url("/hop"),
                    &fields,
                    Bytes::new(),
                )
                .await;
            assert_eq!(got.status, 200);
            let seen = origin.seen();
            let seen = seen.last().expect("a request");
            assert_eq!(seen.method, method);
            for name in ["connection", "x-foo", "keep-alive"] {
                assert!(
                    !seen.headers.contains_key(name),
                    "{method}: {name} reached the origin: {:?}",
                    seen.headers
                );
            }
            assert_eq!(header(seen, "x-end-to-end"), "kept");
            assert_eq!(header(seen, "host"), sidecache.proxy_addr.to_string());
            let via = all_values(&seen.headers, "via");
            assert_eq!(via.first().map(String::as_str), Some("1.1 edge"), "{via:?}");
            assert_eq!(
                via.len(),
                2,
                "{method}: sidecache added itself to Via: {via:?}"
            );
            assert!(via[1].starts_with("1.1 "), "{via:?}");
            // The client's own X-Forwarded-For is replaced by the address sidecache saw.
            let forwarded = all_values(&seen.headers, "x-forwarded-for");
            assert_eq!(forwarded, ["127.0.0.1"], "{method}");
        }
    })
    .await;
}

#[tokio::test]
async fn max_forwards_is_decremented_and_at_zero_sidecache_answers_itself() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            Reply::ok(format!("max-forwards={}", header(seen, "max-forwards")))
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &["--allow-trace", "true"]).await;
        let client = TestClient::new();
        // RFC 9110 §7.6.2, for OPTIONS and TRACE only: (method, Max-Forwards sent, what the
        // origin sees, or None when the request must not be forwarded)
        let cases = [
            (Method::OPTIONS, Some("5"), Some("4")),
            (Method::OPTIONS, Some("1"), Some("0")),
            (Method::OPTIONS, Some("0"), None),
            (Method::TRACE, Some("3"), Some("2")),
            (Method::TRACE, Some("0"), None),
            (Method::OPTIONS, None, Some("")),
            // Other methods carry it untouched.
            (Method::GET, Some("0"), Some("0")),
        ];
        for (method, sent, forwarded) in cases {
            let before = origin.seen().len();
            let fields: Vec<_> = sent
                .map(|value| ("max-forwards", value))
                .into_iter()
                .collect();
            let path = format!("/mf-{}", before);
            let got = client
                .send(method.clone(), &sidecache.url(&path), &fields, Bytes::new())
                .await;
            match forwarded {
                Some(value) => {
                    assert_eq!(
                        got.text(),
                        format!("max-forwards={value}"),
                        "{method} {sent:?}"
                    );
                    assert_eq!(origin.seen().len(), before + 1, "{method} {sent:?}");
                }
                None => {
                    assert_eq!(origin.seen().len(), before, "{method} {sent:?}: forwarded");
                    assert!(!got.status.is_server_error(), "{method}: {}", got.status);
                    if method == Method::OPTIONS {
                        assert_eq!(got.status, 200);
                    }
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_response_fields_reach_neither_the_client_nor_the_store() {
    bounded(async {
        // Raw bytes, so that the fields are on the wire exactly as written.
        let origin = RawOrigin::start(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\
              Connection: X-Internal\r\nX-Internal: origin only\r\nKeep-Alive: timeout=5\r\n\
              Proxy-Authenticate: Basic realm=\"origin\"\r\nX-Public: for everyone\r\n\r\nok",
        )
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let hop_by_hop = [
            "connection",
            "x-internal",
            "keep-alive",
            "proxy-authenticate",
        ];
        // (method, Cache-Status expected): a pass-through (first: its 200 invalidates), a
        // miss, a hit.
        let cases: [(Method, &[&str]); 3] = [
            (Method::POST, &["fwd=method"]),
            (Method::GET, &["fwd=uri-miss", "stored"]),
            (Method::GET, &["hit"]),
        ];
        for (method, expected) in cases {
            let got = client
                .send(method.clone(), &sidecache.url("/hop"), &[], Bytes::new())
                .await;
            assert_eq!(got.text(), "ok");
            expect_status(&got, expected);
            assert_eq!(got.header("x-public"), "for everyone");
            for name in hop_by_hop {
                assert!(
                    !got.headers.contains_key(name),
                    "{method}: {name}: {:?}",
                    got.headers
                );
            }
            assert!(
                all_values(&got.headers, "via")
                    .iter()
                    .any(|v| v.starts_with("1.1 ")),
                "a proxy adds Via to responses too (RFC 9110 §7.6.3)"
            );
        }
        assert_eq!(origin.requests(), 2);
        let stored = sidecache
            .proxy
            .cache()
            .store()
            .get(&key(&sidecache, "/hop"))
            .expect("stored");
        for variant in stored.variants() {
            assert_eq!(variant.headers()["x-public"], "for everyone");
            for name in hop_by_hop {
                assert!(!variant.headers().contains_key(name), "stored {name}");
            }
        }
    })
    .await;
}

// === bad input ===

/// Sends raw bytes to `addr` and returns the status code of the answer.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&received);
    text.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
}

#[tokio::test]
async fn malformed_client_requests_get_a_4xx_and_do_not_hang() {
    bounded(async {
        let origin = TestOrigin::start(|_, _| Reply::ok("should not be asked")).await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let requests: [&[u8]; 5] = [
            b"GET / HTTP/1.0\r\n\r\n",
            // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with two, is a 400.
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: not a host\r\n\r\n",
            b"NOT HTTP AT ALL\r\n\r\n",
        ];
        for request in requests {
            let status = raw_exchange(sidecache.proxy_addr, request).await;
            let text = String::from_utf8_lossy(request);
            assert!(
                status.is_some_and(|status| (400..500).contains(&status)),
                "{text:?} answered {status:?}"
            );
        }
        assert_eq!(origin.seen().len(), 0);
    })
    .await;
}

/// An origin speaking raw bytes: it reads each request head, writes `answer` and closes.
struct RawOrigin {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawOrigin {
    async fn start(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(answer).await;
                    let _ = stream.shutdown().await;
                });
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

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_broken_origin_answer_gives_502_and_is_never_stored() {
    bounded(async {
        let short_body: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\
            Cache-Control: max-age=60\r\n\r\n0123456789012345678901234567890123456789";
        let short_chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
            Cache-Control: max-age=60\r\n\r\n10\r\n0123456789abcdef\r\n";
        let answers: [(&str, &[u8]); 3] = [
            ("garbage", b"not http\r\n\r\n"),
            ("body shorter than Content-Length", short_body),
            ("chunked body cut off", short_chunked),
        ];
        for (name, answer) in answers {
            let origin = RawOrigin::start(answer).await;
            let sidecache = Sidecache::start(&origin.url(), &[]).await;
            let client = TestClient::new();
            for round in 1..=2 {
                let got = client
                    .try_send(Method::GET, &sidecache.url("/broken"), &[], Bytes::new())
                    .await;
                // The body is read whole before anything is sent (it is small enough to be
                // stored), so the client gets a clean 502.
                let got = got.unwrap_or_else(|error| panic!("{name}: {error:?}"));
                assert_eq!(got.status, 502, "{name} round {round}: {}", got.text());
                expect_status(&got, &["!stored", "!hit"]);
                assert_eq!(
                    origin.requests(),
                    round,
                    "{name}: the next request loads again"
                );
            }
            assert!(!is_stored(&sidecache, "/broken").await, "{name}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_truncated_large_object_reaches_the_client_truncated_and_is_not_stored() {
    bounded(async {
        static ANSWER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let answer = ANSWER.get_or_init(|| {
            let mut answer =
                b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nCache-Control: max-age=60\r\n\r\n"
                    .to_vec();
            answer.extend_from_slice(&patterned(2000));
            answer
        });
        let origin = RawOrigin::start(answer).await;
        let sidecache = Sidecache::start(&origin.url(), &["--max-object-size", "1KiB"]).await;
        let client = TestClient::new();
        for round in 1..=2 {
            let got = client
                .try_send(Method::GET, &sidecache.url("/cut"), &[], Bytes::new())
                .await;
            match got {
                Err(Failed::Body {
                    status, received, ..
                }) => {
                    assert_eq!(status, 200);
                    assert!(received < 4096, "{received} bytes");
                }
                Err(Failed::NoResponse(_)) => {}
                Ok(got) => panic!(
                    "round {round}: a truncated body was delivered as complete: {} {} bytes",
                    got.status,
                    got.body.len()
                ),
            }
            assert_eq!(origin.requests(), round, "the next request loads again");
        }
        assert!(!is_stored(&sidecache, "/cut").await);
    })
    .await;
}
