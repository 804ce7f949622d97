//! An origin URL with a path (`--origin http://host:port/api/`): clients' paths are asked for
//! under it, and the origin's `Location` / `Content-Location` come back in the clients' paths,
//! so redirects lead where clients can go and unsafe requests invalidate what they stored
//! (RFC 9111 §4.4).

use super::*;

#[tokio::test]
async fn client_paths_are_asked_for_under_the_origin_path() {
    bounded(async {
        let origin = TestOrigin::start(|seen, _| match seen.path.as_str() {
            "/api/old" => Reply::new(301, "").header("location", "/api/new?from=old"),
            "/api/form" => {
                // An absolute reference on the origin's own authority, as frameworks build them.
                let host = header(seen, "host").to_owned();
                Reply::ok("saved").header("content-location", format!("http://{host}/api/page"))
            }
            _ => Reply::ok("page").header("cache-control", "max-age=60"),
        })
        .await;
        let base = format!("{}/api/", origin.url());
        let sidecache = Sidecache::start(&base, &["--host-header", "origin"]).await;
        let client = TestClient::new();

        let page = sidecache.url("/page?x=1");
        let first = client.get(&page).await;
        assert_eq!(first.text(), "page");
        expect_status(&first, &["fwd=uri-miss", "stored"]);
        expect_status(&client.get(&page).await, &["hit"]);
        assert_eq!(origin.count("/api/page?x=1"), 1);

        let moved = client.get(&sidecache.url("/old")).await;
        assert_eq!(moved.status.as_u16(), 301);
        assert_eq!(moved.header("location"), "/new?from=old");

        // The stored page, then a POST whose answer names it: the page is loaded again.
        let stored = client.get(&sidecache.url("/page")).await;
        expect_status(&stored, &["fwd=uri-miss", "stored"]);
        let posted = client
            .send(Method::POST, &sidecache.url("/form"), &[], Bytes::from("x"))
            .await;
        assert_eq!(posted.text(), "saved");
        assert_eq!(posted.header("content-location"), "/page");
        let again = client.get(&sidecache.url("/page")).await;
        expect_status(&again, &["fwd=uri-miss", "stored"]);
        assert_eq!(origin.count("/api/page"), 2);

        let paths: Vec<String> = origin.seen().into_iter().map(|seen| seen.path).collect();
        assert!(
            paths.iter().all(|path| path.starts_with("/api/")),
            "{paths:?}"
        );
        sidecache.stop().await;
    })
    .await;
}
