//! Partial content (RFC 9111 §3.3-3.4, RFC 9110 §14): `206` responses stored as parts, later
//! ranges answered from them, parts completed with only the missing bytes, and combined into a
//! whole stored response.

use super::*;

/// The representation the range origins serve: 100 distinct-enough bytes.
fn representation() -> Bytes {
    Bytes::from(
        (0..100u8)
            .map(|i| b"0123456789abcdefghij"[usize::from(i % 20)])
            .collect::<Vec<u8>>(),
    )
}

/// An origin that answers `Range: bytes=a-b` with a `206` of `body` (and anything else with the
/// whole `200`), every answer with `fields`; an `If-Range` other than `etag` gets the whole `200`
/// (RFC 9110 §13.1.5).
fn range_reply(seen: &Seen, body: &Bytes, etag: &str, fields: Fields) -> Reply {
    let if_range = header(seen, "if-range");
    let range = header(seen, "range")
        .strip_prefix("bytes=")
        .and_then(|range| range.split_once('-'))
        .and_then(|(first, last)| {
            Some((first.parse::<usize>().ok()?, last.parse::<usize>().ok()?))
        });
    let reply = match range {
        Some((first, last)) if if_range.is_empty() || if_range == etag => {
            let last = last.min(body.len() - 1);
            Reply::new(206, body.slice(first..=last)).header(
                "content-range",
                format!("bytes {first}-{last}/{}", body.len()),
            )
        }
        _ => Reply::ok(body.clone()),
    };
    let reply = if etag.is_empty() {
        reply
    } else {
        reply.header("etag", etag)
    };
    fields
        .iter()
        .fold(reply, |reply, (name, value)| reply.header(name, *value))
}

/// A range origin serving [`representation`] (`ETag: "v1"`, `max-age=60`), sidecache in front
/// of it started with `flags`, and a client.
struct Ranged {
    body: Bytes,
    origin: TestOrigin,
    sidecache: Sidecache,
    client: TestClient,
}

impl Ranged {
    async fn start(flags: &[&str]) -> Self {
        let body = representation();
        let served = body.clone();
        let origin = TestOrigin::start(move |seen, _| {
            range_reply(seen, &served, "\"v1\"", &[("cache-control", "max-age=60")])
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), flags).await;
        Self {
            body,
            origin,
            sidecache,
            client: TestClient::new(),
        }
    }
}

/// A range origin serving `body` (`max-age=60`) with a weak entity tag at `/weak`, none at
/// `/none`, and elsewhere the strong tag `"v{version}"` of the version the test sets.
async fn versioned_origin(body: &Bytes, version: &Arc<AtomicUsize>) -> TestOrigin {
    let served = body.clone();
    let current = Arc::clone(version);
    TestOrigin::start(move |seen, _| {
        let etag = match seen.path.as_str() {
            "/weak" => "W/\"v1\"".to_owned(),
            "/none" => String::new(),
            _ => format!("\"v{}\"", current.load(Ordering::SeqCst)),
        };
        range_reply(seen, &served, &etag, &[("cache-control", "max-age=60")])
    })
    .await
}

/// Gets bytes `first..=last` of a URL.
trait GetRange {
    async fn get_range(&self, url: &str, first: usize, last: usize) -> Got;
}

impl GetRange for TestClient {
    async fn get_range(&self, url: &str, first: usize, last: usize) -> Got {
        self.get_with(url, &[("range", &range(first, last))]).await
    }
}

/// Gets `range` and checks the answer is the `206` of exactly those bytes of `body`.
#[track_caller]
fn expect_part(got: &Got, body: &Bytes, (first, last): (usize, usize)) {
    assert_eq!(got.status, 206, "bytes {first}-{last}: {}", got.text());
    assert_eq!(
        got.header("content-range"),
        format!("bytes {first}-{last}/{}", body.len())
    );
    assert_eq!(got.body, body.slice(first..=last), "bytes {first}-{last}");
}

fn range(first: usize, last: usize) -> String {
    format!("bytes={first}-{last}")
}

async fn requests(sidecache: &Sidecache, result: &str) -> f64 {
    let series = format!("sidecache_requests_total{{cache_result=\"{result}\"}}");
    sidecache.metrics().await.value(&series)
}

/// With `--range-miss part`, a range that misses asks for its bytes only and stores them; a range
/// the parts cover is a hit; a range they cover in part asks the origin for the bytes they lack only,
/// with `If-Range`; once the parts cover every byte they are one stored response, and a request
/// without `Range` is a hit. Validators and ranges past the end are answered from the parts too.
/// The request counters say exactly that.
#[tokio::test]
async fn parts_answer_later_ranges_and_are_completed_with_only_the_missing_bytes() {
    bounded(async {
        let Ranged {
            body,
            origin,
            sidecache,
            client,
        } = Ranged::start(&["--range-miss", "part"]).await;
        let url = sidecache.url("/video");
        let get = |first, last| client.get_range(&url, first, last);

        let first = get(0, 19).await;
        expect_part(&first, &body, (0, 19));
        expect_status(&first, &["fwd=uri-miss", "fwd-status=206", "stored"]);
        assert_eq!(header(&origin.seen()[0], "range"), "bytes=0-19");

        let covered = get(5, 14).await;
        expect_part(&covered, &body, (5, 14));
        expect_status(&covered, &["hit"]);
        assert_eq!(origin.seen().len(), 1, "answered from the stored part");

        let overlapping = get(10, 39).await;
        expect_part(&overlapping, &body, (10, 39));
        expect_status(&overlapping, &["fwd=partial", "fwd-status=206", "stored"]);
        let seen = origin.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            header(&seen[1], "range"),
            "bytes=20-39",
            "only the missing bytes"
        );
        assert_eq!(header(&seen[1], "if-range"), "\"v1\"");

        let merged = get(0, 39).await;
        expect_part(&merged, &body, (0, 39));
        expect_status(&merged, &["hit"]);

        // Validators before Range (RFC 9110 §13.2.2), and a range past the end: from the parts.
        let validated = client
            .get_with(&url, &[("range", "bytes=0-9"), ("if-none-match", "\"v1\"")])
            .await;
        assert_eq!(validated.status, 304);
        expect_status(&validated, &["hit"]);
        let past_the_end = client.get_with(&url, &[("range", "bytes=200-300")]).await;
        assert_eq!(past_the_end.status, 416);
        assert_eq!(past_the_end.header("content-range"), "bytes */100");
        expect_status(&past_the_end, &["hit"]);
        assert_eq!(origin.seen().len(), 2);

        let rest = get(30, 99).await;
        expect_part(&rest, &body, (30, 99));
        assert_eq!(header(&origin.seen()[2], "range"), "bytes=40-99");
        assert!(is_stored(&sidecache, "/video").await, "combined whole");

        let whole = client.get(&url).await;
        assert_eq!((whole.status.as_u16(), &whole.body), (200, &body));
        expect_status(&whole, &["hit"]);
        let suffix = client.get_with(&url, &[("range", "bytes=-10")]).await;
        expect_part(&suffix, &body, (90, 99));
        assert_eq!(origin.seen().len(), 3, "three origin requests in all");

        assert_eq!(requests(&sidecache, "hit").await, 6.0);
        assert_eq!(requests(&sidecache, "miss").await, 3.0);
        sidecache.stop().await;
    })
    .await;
}

/// By default a range that misses loads the whole response; a URL too large to store keeps parts
/// of itself instead, up to `--max-object-size`: past that, ranges are answered but not kept.
#[tokio::test]
async fn a_url_too_large_to_store_keeps_parts_up_to_the_largest_object() {
    bounded(async {
        let Ranged {
            body,
            origin,
            sidecache,
            client,
        } = Ranged::start(&["--max-object-size", "50"]).await;
        let url = sidecache.url("/large");
        let get = |first, last| client.get_range(&url, first, last);

        let whole = get(0, 9).await;
        assert_eq!(whole.body, body, "loaded whole: too large to store");
        assert_eq!(header(&origin.seen()[0], "range"), "", "a whole load");

        let part = get(0, 29).await;
        expect_part(&part, &body, (0, 29));
        expect_status(&part, &["fwd-status=206", "stored"]);
        assert_eq!(header(&origin.seen()[1], "range"), "bytes=0-29");
        let hit = get(10, 19).await;
        expect_part(&hit, &body, (10, 19));
        expect_status(&hit, &["hit"]);

        // 30 more bytes would keep 60 of this URL: answered from the parts and the new bytes,
        // but not kept.
        let beyond = get(20, 59).await;
        expect_part(&beyond, &body, (20, 59));
        expect_status(&beyond, &["fwd-status=206", "!stored", "detail=too-large"]);
        assert_eq!(header(&origin.seen()[2], "range"), "bytes=30-59");
        let again = get(20, 59).await;
        expect_part(&again, &body, (20, 59));
        assert_eq!(
            origin.seen().len(),
            4,
            "the bytes past the bound were not kept"
        );
        assert!(!is_stored(&sidecache, "/large").await);

        // A HEAD has no part to keep: its Range goes to the origin as it came.
        let head = client
            .send(
                Method::HEAD,
                &url,
                &[("range", "bytes=10-19")],
                Bytes::new(),
            )
            .await;
        assert_eq!(head.status, 206);
        assert_eq!(origin.seen()[4].method, Method::HEAD);
        sidecache.stop().await;
    })
    .await;
}

/// Parts are combined only under one strong validator: a `206` without one is passed on and not
/// kept, and when the origin's representation changed (`If-Range` no longer holds, so it sends
/// the whole new one) the old parts go.
#[tokio::test]
async fn parts_are_kept_only_under_one_strong_validator() {
    bounded(async {
        let body = representation();
        let version = Arc::new(AtomicUsize::new(1));
        let origin = versioned_origin(&body, &version).await;
        let sidecache = Sidecache::start(&origin.url(), &["--range-miss", "part"]).await;
        let client = TestClient::new();
        let get = |path: &str, first, last| {
            let url = sidecache.url(path);
            let client = &client;
            async move { client.get_range(&url, first, last).await }
        };

        for path in ["/weak", "/none"] {
            for _ in 0..2 {
                let got = get(path, 0, 9).await;
                expect_part(&got, &body, (0, 9));
                expect_status(&got, &["fwd=bypass", "fwd-status=206", "!stored"]);
            }
            assert_eq!(origin.count(path), 2, "{path}: nothing kept");
        }

        expect_part(&get("/changing", 0, 9).await, &body, (0, 9));
        version.store(2, Ordering::SeqCst);
        let changed = get("/changing", 0, 19).await;
        assert_eq!(
            changed.status, 200,
            "If-Range failed: the whole new representation"
        );
        let seen = origin.seen();
        let last = seen.last().expect("asked");
        assert_eq!(
            (header(last, "range"), header(last, "if-range")),
            ("bytes=10-19", "\"v1\"")
        );
        let after = get("/changing", 0, 9).await;
        expect_part(&after, &body, (0, 9));
        expect_status(&after, &["fwd=uri-miss", "stored"]);
        assert_eq!(
            origin.count("/changing"),
            3,
            "the outdated part was dropped"
        );
        sidecache.stop().await;
    })
    .await;
}

/// A purge or an unsafe request removes a URL's parts; and a part on its way from the origin when its URL is purged
/// answers its client but is not kept, so the purge is not undone.
#[tokio::test]
async fn a_purge_or_an_unsafe_request_removes_parts_and_a_part_fetched_across_it_is_not_kept() {
    bounded(async {
        let body = representation();
        let served = body.clone();
        let gate = Gate::new();
        let held = gate.clone();
        let origin = TestOrigin::start(move |seen, sequence| {
            range_reply(seen, &served, "\"v1\"", &[("cache-control", "max-age=60")])
                .gated_if(seen.path == "/q" && sequence == 1, &held)
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &["--range-miss", "part"]).await;
        let client = TestClient::new();
        let url = sidecache.url("/p");
        let headers = [("range", "bytes=0-9")];

        expect_part(&client.get_with(&url, &headers).await, &body, (0, 9));
        expect_status(&client.get_with(&url, &headers).await, &["hit"]);
        assert_eq!(purged(&purge(&client, &sidecache, "url=/p").await), 0);
        let refetched = client.get_with(&url, &headers).await;
        expect_status(&refetched, &["fwd=uri-miss", "stored"]);
        assert_eq!(origin.count("/p"), 2, "the purge removed the part");
        // A successful unsafe request removes them too (RFC 9111 §4.4).
        let post = client.send(Method::POST, &url, &[], Bytes::new()).await;
        assert_eq!(post.status, 200);
        let after_post = client.get_with(&url, &headers).await;
        expect_status(&after_post, &["fwd=uri-miss", "stored"]);
        assert_eq!(origin.count("/p"), 4, "the POST removed the part");

        // The first origin request for /q is held until after a purge.
        let other = sidecache.url("/q");
        let asked_before = origin.seen().len();
        let on_its_way = tokio::spawn({
            let client = client.clone();
            async move { client.get_with(&other, &[("range", "bytes=0-9")]).await }
        });
        origin.arrivals(asked_before + 1).await;
        purge(&client, &sidecache, "url=/q").await;
        gate.open();
        let across = on_its_way.await.expect("request");
        expect_part(&across, &body, (0, 9));
        expect_status(&across, &["fwd=uri-miss", "!stored", "detail=invalidated"]);
        let next = client.get_with(&sidecache.url("/q"), &headers).await;
        expect_status(&next, &["fwd=uri-miss", "stored"]);
        assert_eq!(
            origin.count("/q"),
            2,
            "the part fetched across the purge was not kept"
        );
        sidecache.stop().await;
    })
    .await;
}

/// A request without `Range` for a URL with parts asks the origin for the bytes they lack
/// only, and stores the whole response they make; if the representation changed meanwhile
/// (`If-Range` no longer holds), the origin's whole new one is stored instead.
#[tokio::test]
async fn a_whole_request_completes_the_stored_parts_with_only_the_missing_bytes() {
    bounded(async {
        let body = representation();
        let version = Arc::new(AtomicUsize::new(1));
        let origin = versioned_origin(&body, &version).await;
        let sidecache = Sidecache::start(&origin.url(), &["--range-miss", "part"]).await;
        let client = TestClient::new();

        for (path, changed) in [("/same", false), ("/changed", true)] {
            version.store(1, Ordering::SeqCst);
            let url = sidecache.url(path);
            expect_part(&client.get_range(&url, 0, 39).await, &body, (0, 39));
            if changed {
                version.store(2, Ordering::SeqCst);
            }
            let whole = client.get(&url).await;
            assert_eq!((whole.status.as_u16(), &whole.body), (200, &body), "{path}");
            let want_etag = if changed { "\"v2\"" } else { "\"v1\"" };
            assert_eq!(whole.header("etag"), want_etag, "{path}");
            expect_status(&whole, &["fwd=uri-miss", "fwd-status=200", "stored"]);
            let seen = origin.seen();
            let asked = seen.last().expect("asked");
            assert_eq!(
                (header(asked, "range"), header(asked, "if-range")),
                ("bytes=40-99", "\"v1\""),
                "{path}: only the missing bytes"
            );
            assert!(is_stored(&sidecache, path).await, "{path}");
            expect_status(&client.get(&url).await, &["hit"]);
            expect_part(&client.get_range(&url, 50, 59).await, &body, (50, 59));
            assert_eq!(origin.count(path), 2, "{path}");
        }
        sidecache.stop().await;
    })
    .await;
}

/// Parts that lack several runs of a range are completed with one origin request: the span from
/// the first missing byte to the last (asking again for the stored bytes between).
#[tokio::test]
async fn a_range_whose_parts_lack_several_runs_asks_for_the_span_of_them() {
    bounded(async {
        let Ranged {
            body,
            origin,
            sidecache,
            client,
        } = Ranged::start(&["--range-miss", "part"]).await;
        let url = sidecache.url("/gaps");
        expect_part(&client.get_range(&url, 0, 19).await, &body, (0, 19));
        expect_part(&client.get_range(&url, 60, 79).await, &body, (60, 79));

        let spanning = client.get_range(&url, 0, 99).await;
        expect_part(&spanning, &body, (0, 99));
        expect_status(&spanning, &["fwd=partial", "stored"]);
        let seen = origin.seen();
        assert_eq!(seen.len(), 3, "one origin request for both gaps");
        assert_eq!(header(&seen[2], "range"), "bytes=20-99");
        assert!(
            is_stored(&sidecache, "/gaps").await,
            "complete: stored whole"
        );
        sidecache.stop().await;
    })
    .await;
}
