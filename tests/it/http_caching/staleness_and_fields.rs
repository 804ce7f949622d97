//! Serving stale (stale-while-revalidate, stale-if-error, grace), targeted cache-control fields, Authorization, hop-by-hop fields and bad input.

use super::*;

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
