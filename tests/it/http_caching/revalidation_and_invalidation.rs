//! Revalidation with the origin, conditional requests, HEAD, invalidation by unsafe methods, and purges on the admin port.

use super::*;

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

/// Many frameworks answer a conditional request with a 304 that carries no `ETag` or
/// `Last-Modified`. The cache built the conditional from one stored response, so that is the
/// response the 304 selects (RFC 9111 §4.3.3-4.3.4): one origin request per revalidation.
#[tokio::test]
async fn a_304_without_validators_freshens_the_response_it_was_asked_about() {
    bounded(async {
        let weak = "W/\"v1\"";
        // (case, the stored response's fields, the client's fields)
        type Fields = Vec<(&'static str, &'static str)>;
        #[rustfmt::skip]
        let cases: [(&str, Fields, Fields); 6] = [
            ("strong ETag", vec![("etag", "\"v1\""), ("cache-control", "max-age=0")], vec![]),
            ("weak ETag", vec![("etag", weak), ("cache-control", "max-age=0")], vec![]),
            ("Last-Modified", vec![("last-modified", LAST_MODIFIED), ("cache-control", "max-age=0")], vec![]),
            ("a Vary-selected variant", vec![("etag", "\"de\""), ("vary", "accept-language"), ("cache-control", "max-age=0")], vec![("accept-language", "de")]),
            ("no-cache", vec![("etag", "\"v1\""), ("cache-control", "no-cache")], vec![]),
            ("must-revalidate, stale", vec![("etag", "\"v1\""), ("cache-control", "max-age=0, must-revalidate")], vec![]),
        ];
        for (case, fields, request) in cases {
            let origin = TestOrigin::start(move |seen, _| {
                let conditional = !header(seen, "if-none-match").is_empty()
                    || !header(seen, "if-modified-since").is_empty();
                if conditional {
                    return Reply::new(304, "").header("x-version", "2");
                }
                fields
                    .iter()
                    .fold(Reply::ok("the stored body"), |reply, (name, value)| {
                        reply.header(name, *value)
                    })
                    .header("x-version", "1")
            })
            .await;
            let sidecache = Sidecache::start(&origin.url(), &[]).await;
            let client = TestClient::new();
            let url = sidecache.url("/doc");

            let first = client.get_with(&url, &request).await;
            expect_status(&first, &["fwd=uri-miss", "stored"]);
            let second = client.get_with(&url, &request).await;
            assert_eq!(second.status, 200, "{case}");
            assert_eq!(second.text(), "the stored body", "{case}");
            assert_eq!(second.header("x-version"), "2", "{case}: the 304's field");
            expect_status(&second, &["fwd-status=304"]);

            let seen = origin.seen();
            assert_eq!(seen.len(), 2, "{case}: one origin request for the revalidation");
            assert!(
                !header(&seen[1], "if-none-match").is_empty()
                    || !header(&seen[1], "if-modified-since").is_empty(),
                "{case}: the revalidation is conditional"
            );
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
            // A method not known to be safe is unsafe (RFC 9110 §9.2.1, RFC 9111 §4.4).
            (extension("M-SEARCH"), "/m-search", 200, true),
            (extension("FROBNICATE"), "/frobnicate", 200, true),
            // Safe methods the cache does not answer pass through and invalidate nothing.
            (Method::OPTIONS, "/options", 200, false),
            (extension("PROPFIND"), "/propfind", 200, false),
            (extension("REPORT"), "/report", 200, false),
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

fn extension(method: &str) -> Method {
    Method::from_bytes(method.as_bytes()).expect("a method token")
}

#[tokio::test]
async fn location_and_content_location_of_the_same_origin_are_invalidated() {
    bounded(async {
        for method in [Method::POST, extension("M-SEARCH")] {
            location_and_content_location_are_invalidated_after(method).await;
        }
    })
    .await;
}

async fn location_and_content_location_are_invalidated_after(method: Method) {
    {
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
            .send(method.clone(), &sidecache.url("/things"), &[], Bytes::new())
            .await;
        assert_eq!(created.status, 201, "{method}");
        let other = client
            .send(
                method.clone(),
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
            assert_eq!(got.text(), format!("{path} body"), "{method}");
            if invalidated {
                expect_status(&got, &["fwd=uri-miss"]);
            } else {
                expect_status(&got, &["hit"]);
            }
        }
        sidecache.stop().await;
    }
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

/// A load under way when its URL is purged, or invalidated by an unsafe request, answers the
/// client that asked before, but what it loaded predates the invalidation: it is not stored, and
/// the next client is not served it.
#[tokio::test]
async fn a_load_that_finishes_after_an_invalidation_stores_nothing() {
    bounded(async {
        for invalidation in ["purge url", "purge prefix", "POST"] {
            let gate = Gate::new();
            let origin_gate = gate.clone();
            let versions = Arc::new(AtomicUsize::new(0));
            let origin_versions = Arc::clone(&versions);
            let origin = TestOrigin::start(move |seen, _| {
                if seen.method != Method::GET {
                    return Reply::new(204, "");
                }
                let version = origin_versions.fetch_add(1, Ordering::SeqCst) + 1;
                Reply::ok(format!("version {version}"))
                    .header("cache-control", "max-age=60")
                    .gated_if(version == 1, &origin_gate)
            })
            .await;
            let sidecache = Sidecache::start(&origin.url(), &[]).await;
            let client = TestClient::new();
            let url = sidecache.url("/doc");

            let before = tokio::spawn({
                let (client, url) = (client.clone(), url.clone());
                async move { client.get(&url).await }
            });
            origin.arrivals(1).await;
            match invalidation {
                "purge url" => assert_eq!(purged(&purge(&client, &sidecache, "url=/doc").await), 0),
                "purge prefix" => {
                    assert_eq!(purged(&purge(&client, &sidecache, "prefix=/d").await), 0);
                }
                _ => {
                    let post = client.send(Method::POST, &url, &[], Bytes::new()).await;
                    assert_eq!(post.status, 204, "{invalidation}");
                }
            }
            gate.open();
            let first = before.await.expect("the client from before");
            assert_eq!(first.text(), "version 1", "{invalidation}");
            expect_status(&first, &["fwd=uri-miss", "!stored", "detail=invalidated"]);

            let next = client.get(&url).await;
            assert_eq!(
                next.text(),
                "version 2",
                "{invalidation}: not what was invalidated"
            );
            expect_status(&next, &["fwd=uri-miss", "stored"]);
            let again = client.get(&url).await;
            assert_eq!(again.text(), "version 2", "{invalidation}");
            expect_status(&again, &["hit"]);
            sidecache.stop().await;
        }
    })
    .await;
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

/// A purge's `url=` is the path and query as a client writes it, `&`s and escapes included,
/// and a `host=` without a port finds what clients stored under any port (clients of a
/// sidecache on a port of its own send that port in `Host`).
#[tokio::test]
async fn purge_urls_are_written_as_clients_write_them_and_hosts_match_any_port() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            Reply::ok(format!("{} body", seen.path)).header("cache-control", "max-age=60")
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let (client, admin) = (TestClient::new(), TestClient::new());
        let paths = [
            "/s?q=a&page=2",
            "/s?q=a&page=3",
            "/s?q=a+b&page=2",
            "/caf%C3%A9?x=1&y=2",
        ];
        for path in paths {
            expect_status(&client.get(&sidecache.url(path)).await, &["fwd=uri-miss"]);
        }
        let cached = async |path: &str| {
            Status::of(&client.get(&sidecache.url(path)).await)
                .get("hit")
                .is_some()
        };
        // Stored under 127.0.0.1 with sidecache's own port.
        assert_eq!(
            purged(&purge(&admin, &sidecache, "url=/s?q=a&page=2&host=127.0.0.1").await),
            1
        );
        assert!(!cached("/s?q=a&page=2").await);
        assert!(
            cached("/s?q=a&page=3").await,
            "another query is another URL"
        );
        assert!(cached("/s?q=a+b&page=2").await);
        assert_eq!(
            purged(&purge(&admin, &sidecache, "url=/s?q=a+b&page=2").await),
            1,
            "a + is kept as a client sent it"
        );
        assert_eq!(
            purged(&purge(&admin, &sidecache, "url=/caf%C3%A9?x=1&y=2").await),
            1,
            "escapes are kept as a client sent them"
        );
        let port = sidecache.proxy_addr.port();
        let other_port = format!("url=/s?q=a&page=3&host=127.0.0.1:{}", port + 1);
        assert_eq!(purged(&purge(&admin, &sidecache, &other_port).await), 0);
        let own_port = format!("url=/s?q=a&page=3&host=127.0.0.1:{port}");
        assert_eq!(purged(&purge(&admin, &sidecache, &own_port).await), 1);

        // The plain form with no query is not mistaken for one.
        let both = purge(&admin, &sidecache, "url=/s&prefix=/s").await;
        assert_eq!(both.status, 400, "{}", both.text());
        let whole = purge(&admin, &sidecache, "url=http://127.0.0.1/s").await;
        assert_eq!(whole.status, 400);
        assert!(
            whole.text().contains("give the host with host="),
            "{}",
            whole.text()
        );

        // One host on two ports: without a port, both go; with one, that one.
        for host in ["x.example", "x.example:8080"] {
            let got = client
                .get_with(&sidecache.url("/h?a=1&b=2"), &[("host", host)])
                .await;
            assert_eq!(got.status, 200);
        }
        assert_eq!(
            purged(&purge(&admin, &sidecache, "url=/h?a=1&b=2&host=X.example").await),
            2
        );
        for host in ["x.example", "x.example:8080"] {
            client
                .get_with(&sidecache.url("/h/p"), &[("host", host)])
                .await;
        }
        assert_eq!(
            purged(&purge(&admin, &sidecache, "prefix=/h/&host=x.example").await),
            2
        );
        sidecache.stop().await;
    })
    .await;
}

/// `GET /debug/cache` lists what is stored, each URL with its age, TTL, size and variants, at
/// most `limit`, filtered as a purge with the same `prefix=` and `host=` would be.
#[tokio::test]
async fn the_admin_port_lists_what_is_stored() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| {
            let reply = Reply::ok(format!("{} body", seen.path))
                .header("cache-control", "max-age=60")
                .header("age", "10");
            if seen.path == "/l/v" {
                reply.header("vary", "Accept-Language")
            } else {
                reply
            }
        })
        .await;
        let sidecache = Sidecache::start(&origin.url(), &[]).await;
        let (client, admin) = (TestClient::new(), TestClient::new());
        for path in ["/l/a?x=1&y=2", "/l/b", "/l/c", "/other"] {
            client.get(&sidecache.url(path)).await;
        }
        for language in ["en", "fr"] {
            client
                .get_with(&sidecache.url("/l/v"), &[("accept-language", language)])
                .await;
        }
        let list = async |query: &str| {
            let got = admin
                .get(&sidecache.admin_url(&format!("/debug/cache?{query}")))
                .await;
            assert_eq!(got.status, 200, "{query}: {}", got.text());
            serde_json::from_slice::<serde_json::Value>(&got.body).expect("JSON")
        };
        let page = list("prefix=/l/").await;
        let host = format!("127.0.0.1:{}", sidecache.proxy_addr.port());
        let paths: Vec<_> = page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|entry| {
                assert_eq!(entry["host"], host.as_str());
                entry["path"].as_str().expect("path").to_owned()
            })
            .collect();
        assert_eq!(paths, ["/l/a?x=1&y=2", "/l/b", "/l/c", "/l/v"]);
        assert_eq!(page["listed"], 4);
        assert_eq!(page["truncated"], false);
        let entry = &page["entries"][0];
        // The origin said the response was 10 s old, fresh for 60.
        let age = entry["age_seconds"].as_u64().expect("age");
        assert!((10..=12).contains(&age), "{entry}");
        let ttl = entry["ttl_seconds"].as_i64().expect("ttl");
        assert!((48..=50).contains(&ttl), "{entry}");
        assert!(entry["size_bytes"].as_u64().expect("size") > "/l/a body".len() as u64);
        assert_eq!(entry["variants"], 1);
        assert_eq!(page["entries"][3]["variants"], 2, "{}", page["entries"][3]);

        let first_two = list("prefix=/l/&limit=2").await;
        assert_eq!(first_two["listed"], 2);
        assert_eq!(first_two["truncated"], true);
        let everything = list("").await;
        assert_eq!(everything["listed"], 5);
        let elsewhere = list("host=y.example").await;
        assert_eq!(elsewhere["listed"], 0);
        assert_eq!(
            list("prefix=/l/a?x=1&y=2&host=127.0.0.1").await["listed"],
            1
        );
        // Listing is not a use: the entries are as they were, and nothing was loaded again.
        expect_status(&client.get(&sidecache.url("/l/b")).await, &["hit"]);
        assert_eq!(origin.seen().len(), 6);

        for bad in ["limit=0", "limit=1001", "prefix=l", "host=a/b", "url=/l/b"] {
            let got = admin
                .get(&sidecache.admin_url(&format!("/debug/cache?{bad}")))
                .await;
            assert_eq!(got.status, 400, "{bad}");
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
