//! HTTP caching end to end, against the RFCs' text: RFC 9111 (caching), RFC 9110 (semantics:
//! conditional and range requests, hop-by-hop fields), RFC 5861 (`stale-while-revalidate`,
//! `stale-if-error`), RFC 9213 (targeted cache-control fields) and RFC 9211 (`Cache-Status`).
//!
//! Each case says what the client sends, what the origin sees, and what the client gets back.
//! No test sleeps to synchronise: origin gates, `arrivals` and sidecache's own counters are the
//! signals, and every test runs under a 5 s bound.

use crate::support;

use std::collections::HashMap;
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

mod operator_freshness;
mod origin_path;
mod partial_content;
mod revalidation_and_invalidation;
mod sizes_ranges_and_freshness;
mod staleness_and_fields;

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

/// Purges on the admin port with `query` (`url=/doc`, `prefix=/d`, ...).
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

/// The count of stored URLs a purge answered it removed.
fn purged(got: &Got) -> u64 {
    assert_eq!(got.status, 200, "{}", got.text());
    let json: serde_json::Value = serde_json::from_slice(&got.body).expect("JSON");
    json["purged"].as_u64().expect("a count")
}

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

/// `at` in the obsolete RFC 850 format (RFC 9110 §5.6.7): `Sunday, 06-Nov-94 08:49:37 GMT`.
fn rfc850_date(at: SystemTime) -> String {
    let imf = http_date(at);
    let [day, mday, month, year, time, _gmt] = imf_parts(&imf);
    let day = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ]
    .into_iter()
    .find(|name| name.starts_with(day))
    .expect("a day name");
    format!("{day}, {mday}-{month}-{} {time} GMT", &year[2..])
}

/// `at` in the obsolete asctime format (RFC 9110 §5.6.7): `Sun Nov  6 08:49:37 1994`.
fn asctime_date(at: SystemTime) -> String {
    let imf = http_date(at);
    let [day, mday, month, year, time, _gmt] = imf_parts(&imf);
    format!(
        "{day} {month} {:>2} {time} {year}",
        mday.trim_start_matches('0')
    )
}

/// The six words of an IMF-fixdate, its day name without the comma.
fn imf_parts(imf: &str) -> [&str; 6] {
    let words: Vec<&str> = imf.split(' ').collect();
    let [day, mday, month, year, time, gmt] = words[..] else {
        panic!("not an IMF-fixdate: {imf}")
    };
    [day.trim_end_matches(','), mday, month, year, time, gmt]
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

/// Browsers spell `Accept-Encoding` and `Accept-Language` each their own way: requests whose
/// values differ only in member order, case or whitespace select the same stored variant (RFC
/// 9111 §4.1 allows normalising), while a field whose syntax sidecache does not know stays
/// byte-exact.
#[tokio::test]
async fn negotiation_fields_spelled_differently_select_the_same_variant() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            Reply::ok(format!("for {}", header(seen, "accept-encoding")))
                .header("cache-control", "max-age=60")
                .header("vary", "Accept-Encoding, Accept-Language, X-Tenant")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/page");
        let first = client
            .get_with(
                &url,
                &[
                    ("accept-encoding", "gzip, deflate, br"),
                    ("accept-language", "en-US,de;q=0.8"),
                    ("x-tenant", "a, b"),
                ],
            )
            .await;
        expect_status(&first, &["fwd=uri-miss", "stored"]);
        // (the client's fields, whether the first response serves them)
        let cases: [(&[(&str, &str)], bool); 5] = [
            (
                &[
                    ("accept-encoding", "br,GZIP, deflate"),
                    ("accept-language", "de ; q=0.8, en-us"),
                    ("x-tenant", "a, b"),
                ],
                true,
            ),
            (
                &[
                    ("accept-encoding", "deflate"),
                    ("accept-encoding", "br, gzip"),
                    ("accept-language", "EN-us, DE;Q=0.8"),
                    ("x-tenant", "a,b"),
                ],
                true,
            ),
            (
                &[
                    ("accept-encoding", "gzip, deflate"),
                    ("accept-language", "en-US,de;q=0.8"),
                    ("x-tenant", "a, b"),
                ],
                false,
            ),
            (
                &[
                    ("accept-encoding", "gzip, deflate, br"),
                    ("accept-language", "en-US,de;q=0.7"),
                    ("x-tenant", "a, b"),
                ],
                false,
            ),
            (
                &[
                    ("accept-encoding", "gzip, deflate, br"),
                    ("accept-language", "en-US,de;q=0.8"),
                    ("x-tenant", "b, a"),
                ],
                false,
            ),
        ];
        for (fields, served) in cases {
            let got = client.get_with(&url, fields).await;
            if served {
                expect_status(&got, &["hit"]);
                assert_eq!(got.text(), "for gzip, deflate, br", "{fields:?}");
            } else {
                expect_status(&got, &["!hit"]);
            }
        }
        assert_eq!(
            origin.count("/page"),
            4,
            "one load per variant that differs"
        );
        sidecache.stop().await;
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
            Reply::ok(format!("in {language}"))
                .header("cache-control", "max-age=60")
                .header("vary", "Accept-Language")
                .gated_if(language == "en", &origin_gate)
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

/// A server error the origin gave explicit freshness is stored and reused while fresh (RFC 9111
/// §3, §4.2.1), sparing a failing origin every client that asks; without explicit freshness it
/// is not. Either way it counts as an origin error.
#[tokio::test]
async fn a_server_error_with_explicit_freshness_is_stored() {
    bounded(async {
        let in_a_minute = http_date(SystemTime::now() + Duration::from_secs(60));
        let in_a_minute = in_a_minute.as_str();
        // (path, status, the error's fields, whether it is stored)
        type Case<'a> = (&'a str, u16, Vec<(&'a str, &'a str)>, bool);
        let cases: [Case; 6] = [
            (
                "/503-max-age",
                503,
                vec![("cache-control", "max-age=60")],
                true,
            ),
            (
                "/500-s-maxage",
                500,
                vec![("cache-control", "s-maxage=60")],
                true,
            ),
            ("/502-expires", 502, vec![("expires", in_a_minute)], true),
            (
                "/504-targeted",
                504,
                vec![("cdn-cache-control", "max-age=60")],
                true,
            ),
            ("/503-plain", 503, vec![], false),
            (
                "/503-private",
                503,
                vec![("cache-control", "max-age=60, private")],
                false,
            ),
        ];
        let replies: HashMap<String, (u16, Vec<(String, String)>)> = cases
            .iter()
            .map(|(path, status, fields, _)| {
                let fields = fields
                    .iter()
                    .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                    .collect();
                ((*path).to_owned(), (*status, fields))
            })
            .collect();
        let origin = TestOrigin::start(move |seen, _| {
            let (status, fields) = &replies[&seen.path];
            fields
                .iter()
                .fold(Reply::new(*status, "failing"), |reply, (name, value)| {
                    reply.header(name, value.clone())
                })
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        for (path, status, _, stored) in &cases {
            let url = sidecache.url(path);
            let first = client.get(&url).await;
            assert_eq!(first.status.as_u16(), *status, "{path}");
            assert_eq!(first.text(), "failing", "{path}");
            let second = client.get(&url).await;
            assert_eq!(second.status.as_u16(), *status, "{path}");
            assert_eq!(second.text(), "failing", "{path}");
            if *stored {
                expect_status(&second, &["hit"]);
            } else {
                expect_status(&second, &["!hit"]);
            }
            let loads = if *stored { 1 } else { 2 };
            assert_eq!(origin.count(path), loads, "{path}");
        }
        let scrape = sidecache.metrics().await;
        assert_eq!(
            scrape.value("sidecache_origin_requests_total{outcome=\"5xx\"}"),
            8.0,
            "every origin answer counts as an origin error"
        );
        sidecache.stop().await;
    })
    .await;
}

/// A stored response that may stand in for an error (`stale-if-error`) still wins over a fresh
/// server error: the error is answered by the stale response and not stored.
#[tokio::test]
async fn a_stale_response_allowed_on_error_wins_over_a_fresh_server_error() {
    bounded(async {
        let answered = Arc::new(AtomicUsize::new(0));
        let origin_answered = Arc::clone(&answered);
        let origin = TestOrigin::start(move |_, _| {
            if origin_answered.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::ok("good").header("cache-control", "max-age=0, stale-if-error=60")
            } else {
                Reply::new(503, "failing").header("cache-control", "max-age=60")
            }
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let client = TestClient::new();
        let url = sidecache.url("/doc");
        assert_eq!(client.get(&url).await.text(), "good");
        for _ in 0..2 {
            let got = client.get(&url).await;
            assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "good"));
        }
        assert_eq!(origin.count("/doc"), 3, "the error was not stored");
        sidecache.stop().await;
    })
    .await;
}

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
