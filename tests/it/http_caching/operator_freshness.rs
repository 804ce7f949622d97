//! Freshness the operator sets: the default bound on heuristic freshness, `--default-ttl` for
//! responses without explicit freshness, and `--ttl-overrides` by path prefix, with and
//! without `force`. Each case reads the RFC 9211 `ttl` sidecache reports and counts what reached
//! the origin.

use super::*;

/// The `ttl` parameter of sidecache's `Cache-Status` member.
#[track_caller]
fn ttl(got: &Got) -> i64 {
    Status::of(got)
        .get("ttl")
        .flatten()
        .unwrap_or_else(|| panic!("no ttl in Cache-Status: {}", got.cache_status()))
        .parse()
        .expect("a ttl in whole seconds")
}

/// Whether `ttl` is `seconds`, or a second less (a second may pass between storing and asking).
#[track_caller]
fn assert_ttl(got: &Got, seconds: i64, what: &str) {
    let ttl = ttl(got);
    assert!(
        (seconds - 1..=seconds).contains(&ttl),
        "{what}: ttl {ttl}, expected {seconds} (Cache-Status: {})",
        got.cache_status()
    );
}

/// Asks for `path` twice: the first answer is loaded and stored with `ttl` seconds of
/// freshness, the second is a hit.
async fn stored_then_hit(
    client: &TestClient,
    sidecache: &Sidecache,
    origin: &TestOrigin,
    path: &str,
    ttl: i64,
) {
    let first = client.get(&sidecache.url(path)).await;
    expect_status(&first, &["fwd=uri-miss", "stored"]);
    assert_ttl(&first, ttl, path);
    let second = client.get(&sidecache.url(path)).await;
    expect_status(&second, &["hit"]);
    assert_eq!(origin.count(path), 1, "{path}");
}

/// Asks for `path` twice with `fields`: the origin answers both, and neither answer is stored.
async fn never_stored(
    client: &TestClient,
    sidecache: &Sidecache,
    origin: &TestOrigin,
    path: &str,
    fields: &[(&str, &str)],
) {
    for round in 1..=2 {
        let got = client.get_with(&sidecache.url(path), fields).await;
        expect_status(&got, &["!stored", "!hit"]);
        assert_eq!(origin.count(path), round, "{path}");
    }
}

/// An origin answering each path with the fields the path names: `/plain` none, `/lm` an old
/// `Last-Modified`, `/max-age` `max-age=5`, `/aged` `Age: 20`, `/no-store` and `/private` those
/// directives with `max-age=5`; every answer has an `ETag`.
fn by_path() -> impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static {
    let ten_days_ago = http_date(SystemTime::now() - Duration::from_secs(10 * 86_400));
    move |seen, _| {
        let reply = Reply::ok("body").header("etag", "\"e\"");
        let last = seen.path.rsplit('/').next().unwrap_or_default();
        match last {
            "lm" => reply.header("last-modified", ten_days_ago.clone()),
            "max-age" => reply.header("cache-control", "max-age=5"),
            "aged" => reply.header("age", "20"),
            "no-store" => reply.header("cache-control", "no-store, max-age=5"),
            "private" => reply.header("cache-control", "private, max-age=5"),
            _ => reply,
        }
    }
}

#[tokio::test]
async fn heuristic_freshness_is_bounded_by_two_minutes_unless_configured() {
    bounded(async {
        let origin = TestOrigin::start(by_path()).await;
        // (flags, ttl of a page last modified ten days ago)
        let runs: [(&[&str], i64); 3] = [
            (&[], 120),
            (&["--max-heuristic-freshness", "1h"], 3600),
            (&["--max-heuristic-freshness", "0s"], 0),
        ];
        for (flags, expected) in runs {
            let sidecache = Sidecache::start(&origin.url(), flags).await;
            let client = TestClient::new();
            let first = client.get(&sidecache.url("/lm")).await;
            expect_status(&first, &["fwd=uri-miss", "stored"]);
            assert_ttl(&first, expected, &format!("{flags:?}"));
            sidecache.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_default_ttl_applies_where_the_origin_gave_no_freshness() {
    bounded(async {
        let origin = TestOrigin::start(by_path()).await;
        let sidecache = Sidecache::start(&origin.url(), &["--default-ttl", "30s"]).await;
        let client = TestClient::new();
        // (path, ttl of the stored response)
        let cases = [
            ("/plain", 30),
            // Instead of the heuristic's two minutes.
            ("/lm", 30),
            // The origin's explicit freshness wins.
            ("/max-age", 5),
            // Counted like max-age: the Age it arrived with uses it up.
            ("/aged", 10),
        ];
        for (path, expected) in cases {
            stored_then_hit(&client, &sidecache, &origin, path, expected).await;
        }
        // An answer to a request with a cookie is shared only on the origin's word.
        let cookie = [("cookie", "session=1")];
        never_stored(&client, &sidecache, &origin, "/cookie/plain", &cookie).await;
        sidecache.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ttl_overrides_apply_by_longest_prefix_and_force_beats_the_origin() {
    bounded(async {
        let origin = TestOrigin::start(by_path()).await;
        let rules = "/api/=1h; /api/fixed/=2h,force; /zero/=0s,force";
        let flags = ["--default-ttl", "30s", "--ttl-overrides", rules];
        let sidecache = Sidecache::start(&origin.url(), &flags).await;
        let client = TestClient::new();
        // (path, ttl of the stored response)
        let cases = [
            ("/api/plain", 3600),
            ("/api/lm", 3600),
            // Without force, the origin's max-age wins.
            ("/api/max-age", 5),
            // With force, the rule wins; the longest prefix decides.
            ("/api/fixed/max-age", 7200),
            ("/api/fixed/plain", 7200),
            // Outside every prefix, the default.
            ("/plain", 30),
        ];
        for (path, expected) in cases {
            stored_then_hit(&client, &sidecache, &origin, path, expected).await;
        }
        // No rule stores what the origin forbids storing.
        for path in ["/api/fixed/no-store", "/api/fixed/private"] {
            never_stored(&client, &sidecache, &origin, path, &[]).await;
        }
        // Forced to zero, a stored response is revalidated on every request (and still
        // answered from the store on a 304).
        let first = client.get(&sidecache.url("/zero/max-age")).await;
        expect_status(&first, &["fwd=uri-miss", "stored"]);
        for round in 2..=3 {
            let got = client.get(&sidecache.url("/zero/max-age")).await;
            assert_eq!(got.text(), "body");
            expect_status(&got, &["fwd=stale"]);
            let seen = origin.seen();
            let last = seen.last().expect("a revalidation");
            assert_eq!(header(last, "if-none-match"), "\"e\"");
            assert_eq!(origin.count("/zero/max-age"), round);
        }
        sidecache.stop().await;
    })
    .await;
}
