//! The embedded demo origin, started when no `--origin` is given, so that one command shows the
//! whole product: slow cacheable paths, an uncacheable path, a failing path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::body::{Body, RequestBody};
use crate::server::{Client, Handled, Handler};

/// How long `/slow/...` takes unless `delay_ms` says otherwise.
const DEFAULT_DELAY: Duration = Duration::from_millis(500);

/// The longest delay a client may ask for, so a typo cannot park a connection for hours.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The demo origin's handler. It counts the requests it serves so the effect of the cache shows.
#[derive(Debug, Default)]
pub struct DemoOrigin {
    served: AtomicU64,
}

impl DemoOrigin {
    /// What to try, printed at start-up for a proxy listening on `proxy`.
    pub fn walkthrough(proxy: SocketAddr, admin: SocketAddr) -> String {
        format!(
            "sidecache is running with its embedded demo origin. Try:\n\
             \x20 curl -i http://{proxy}/slow/1          # first call waits ~500 ms (miss), the next is a hit\n\
             \x20 curl -i http://{proxy}/private         # private + Set-Cookie: never stored\n\
             \x20 curl -i http://{proxy}/fail            # the origin fails: 503 passed on\n\
             \x20 curl -i http://{proxy}/swr             # stale-while-revalidate after 2 s\n\
             \x20 curl -X POST 'http://{admin}/purge?prefix=/slow/'\n\
             Run with --origin http://your-service:port to cache your own service.\n"
        )
    }

    fn answer(&self, request: &Request<RequestBody>, load: u64) -> Response<Body> {
        let path = request.uri().path();
        match path {
            "/" => page(
                StatusCode::OK,
                "public, max-age=5",
                "sidecache demo origin: /slow/<id>?delay_ms=N, /private, /fail, /swr, /vary\n"
                    .to_owned(),
            ),
            "/private" => {
                let mut response = page(
                    StatusCode::OK,
                    "private",
                    format!("a response for you alone (origin load #{load})\n"),
                );
                let cookie = format!("demo-session={load}; Path=/; HttpOnly");
                if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, cookie);
                }
                response
            }
            "/fail" => page(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-store",
                "the demo origin is failing on purpose\n".to_owned(),
            ),
            "/swr" => page(
                StatusCode::OK,
                "public, max-age=2, stale-while-revalidate=30",
                format!(
                    "fresh for 2 s, then served stale while refreshing (origin load #{load})\n"
                ),
            ),
            "/vary" => {
                let language = request
                    .headers()
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("en");
                let mut response = page(
                    StatusCode::OK,
                    "public, max-age=30",
                    format!("content for Accept-Language: {language} (origin load #{load})\n"),
                );
                response
                    .headers_mut()
                    .insert(header::VARY, HeaderValue::from_static("Accept-Language"));
                response
            }
            _ if path.starts_with("/slow/") => {
                let mut response = page(
                    StatusCode::OK,
                    "public, max-age=30",
                    format!("slow resource {path} (origin load #{load})\n"),
                );
                let etag = format!("\"{load}\"");
                if let Ok(etag) = HeaderValue::from_str(&etag) {
                    response.headers_mut().insert(header::ETAG, etag);
                }
                response
            }
            _ => page(
                StatusCode::NOT_FOUND,
                "public, max-age=5",
                "not found\n".to_owned(),
            ),
        }
    }
}

impl Handler for DemoOrigin {
    fn handle(
        self: &Arc<Self>,
        request: Request<RequestBody>,
        _client: &Client,
    ) -> Handled<impl Future<Output = Response<Body>> + Send + use<>> {
        let demo = Arc::clone(self);
        Handled::Later(async move {
            let load = demo.served.fetch_add(1, Ordering::Relaxed) + 1;
            if request.uri().path().starts_with("/slow/") {
                tokio::time::sleep(requested_delay(request.uri().query())).await;
            }
            demo.answer(&request, load)
        })
    }
}

/// `delay_ms` from the query, bounded; the default otherwise.
fn requested_delay(query: Option<&str>) -> Duration {
    query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(name, _)| name == "delay_ms")
        .and_then(|(_, value)| value.parse::<u64>().ok())
        .map_or(DEFAULT_DELAY, Duration::from_millis)
        .min(MAX_DELAY)
}

fn page(status: StatusCode, cache_control: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())) {
        headers.insert(header::DATE, date);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_comes_from_the_query_and_is_bounded() {
        assert_eq!(requested_delay(None), DEFAULT_DELAY);
        assert_eq!(
            requested_delay(Some("delay_ms=20")),
            Duration::from_millis(20)
        );
        assert_eq!(requested_delay(Some("delay_ms=99999999")), MAX_DELAY);
        assert_eq!(requested_delay(Some("delay_ms=x")), DEFAULT_DELAY);
    }
}
