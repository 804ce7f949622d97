//! Objects over the largest stored size, the byte bound, Range requests and freshness.

use super::*;

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
                    expect_status(&got, &["detail=too-large"]);
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
        let stores = |outcome: &str| {
            scrape.value(&format!("sidecache_stores_total{{outcome=\"{outcome}\"}}"))
        };
        assert!(store.entry_count() > 0, "something is kept");
        assert_eq!(
            stores("stored") + stores("refused"),
            OBJECTS as f64,
            "every object handed to the store is counted stored or refused"
        );
        assert!(
            stores("refused") > 0.0,
            "objects asked for once are refused once the store is full"
        );
        assert_eq!(
            store.entry_count() as f64 + evicted("size"),
            stores("stored"),
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

/// A `Range` request whose response will not be stored goes to the origin with its `Range`, so
/// the origin sends the bytes asked for and the client gets its 206, instead of the whole
/// representation with a 200: a `no-store` request, or a URL whose last answer was not stored
/// (here: larger than `--max-object-size`, which marks it hit-for-miss).
#[tokio::test]
async fn a_range_whose_response_will_not_be_stored_is_sent_to_the_origin() {
    bounded(async {
        let body = "0123456789".repeat(200);
        let origin_body = body.clone();
        let origin =
            TestOrigin::start(
                move |seen, _| match header(seen, "range").strip_prefix("bytes=") {
                    Some("0-3") => Reply::new(206, origin_body[..4].to_owned())
                        .header("content-range", format!("bytes 0-3/{}", origin_body.len()))
                        .header("cache-control", "max-age=60"),
                    _ => Reply::ok(origin_body.clone()).header("cache-control", "max-age=60"),
                },
            )
            .await;
        let sidecache = Sidecache::start(&origin.url(), &["--max-object-size", "1KiB"]).await;
        let client = TestClient::new();
        let range = ("range", "bytes=0-3");

        // A no-store request: its response is never stored.
        let no_store = client
            .get_with(
                &sidecache.url("/small"),
                &[range, ("cache-control", "no-store")],
            )
            .await;
        assert_eq!(
            (no_store.status.as_u16(), no_store.text().as_str()),
            (206, "0123")
        );
        expect_status(&no_store, &["fwd=bypass", "fwd-status=206", "!stored"]);
        assert_eq!(header(&origin.seen()[0], "range"), "bytes=0-3");

        // Too large to store: the first answer teaches sidecache so, the next range goes as is.
        let url = sidecache.url("/large");
        let first = client.get_with(&url, &[range]).await;
        assert_eq!(first.body.len(), body.len(), "loaded whole, not stored");
        let second = client.get_with(&url, &[range]).await;
        assert_eq!(
            (second.status.as_u16(), second.text().as_str()),
            (206, "0123")
        );
        expect_status(&second, &["fwd=bypass", "fwd-status=206", "!stored"]);
        let seen = origin.seen();
        assert_eq!(
            header(&seen[1], "range"),
            "",
            "the first load is a whole one"
        );
        assert_eq!(header(&seen[2], "range"), "bytes=0-3");

        // Without Range, nothing changes: the whole representation, not stored.
        let whole = client.get(&url).await;
        assert_eq!((whole.status.as_u16(), whole.body.len()), (200, body.len()));
        sidecache.stop().await;
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
        let future_rfc850 = rfc850_date(now + Duration::from_secs(3600));
        let future_asctime = asctime_date(now + Duration::from_secs(3600));
        let future_lower_case = future.to_lowercase();
        let future_upper_case = future_rfc850.to_uppercase();
        let ten_days_ago_asctime = asctime_date(now - Duration::from_secs(10 * 86_400));
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
                "Expires in the obsolete RFC 850 format",
                vec![("expires", &future_rfc850)],
                vec![],
                Second::Hit,
            ),
            (
                "Expires in the obsolete asctime format",
                vec![("expires", &future_asctime)],
                vec![],
                Second::Hit,
            ),
            (
                "Expires with its names in lower case",
                vec![("expires", &future_lower_case)],
                vec![],
                Second::Hit,
            ),
            (
                "Expires in RFC 850 format, in capitals",
                vec![("expires", &future_upper_case)],
                vec![],
                Second::Hit,
            ),
            (
                "heuristic freshness from a Last-Modified in asctime format",
                vec![("last-modified", &ten_days_ago_asctime)],
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

/// `--client-cache-control ignore` answers every request as if it carried no cache directives,
/// as Varnish and nginx do by default; `honor` (the default) obeys them.
#[tokio::test]
async fn client_cache_directives_are_obeyed_or_ignored_as_configured() {
    bounded(async {
        let directives: [&[(&str, &str)]; 3] = [
            &[("cache-control", "no-cache")],
            &[("pragma", "no-cache")],
            &[("cache-control", "max-age=0")],
        ];
        for mode in ["honor", "ignore"] {
            let origin =
                TestOrigin::start(|_, _| Reply::ok("stored").header("cache-control", "max-age=60"))
                    .await;
            let sidecache =
                Sidecache::start(&origin.url(), &["--client-cache-control", mode]).await;
            let client = TestClient::new();
            let url = sidecache.url("/doc");
            client.get(&url).await;
            for fields in directives {
                let got = client.get_with(&url, fields).await;
                assert_eq!(got.text(), "stored", "{mode} {fields:?}");
                if mode == "ignore" {
                    expect_status(&got, &["hit"]);
                } else {
                    expect_status(&got, &["!hit"]);
                }
            }
            let origin_requests = if mode == "ignore" { 1 } else { 4 };
            assert_eq!(origin.count("/doc"), origin_requests, "{mode}");
            sidecache.stop().await;
        }
    })
    .await;
}
