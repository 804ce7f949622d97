//! The admin listener: health, readiness and purges, on a port, a thread and a runtime of its
//! own ([`thread`]).
//!
//! | endpoint | method | what |
//! |---|---|---|
//! | `/metrics` | GET | Prometheus text exposition |
//! | `/stats` | GET | JSON: the current (`cycle`) and previous (`last`) stats window, entries, bytes |
//! | `/healthz` | GET | 200 while the process runs |
//! | `/readyz` | GET | 200 while serving; 503 until startup is complete, and once draining ([`Readiness`]) |
//! | `/purge?url=PATH[&host=HOST]` | POST | removes one URL (every variant); without `host`, on every host |
//! | `/purge?prefix=PREFIX[&host=HOST]` | POST | removes every URL whose path starts with `PREFIX` |
//! | `/debug/cache?[prefix=PREFIX][&host=HOST][&limit=N]` | GET | JSON: up to `N` (default 100, at most 1000) stored URLs with their age, TTL, size and variants |
//! | `/v1/counters/{name}?delta=N` | POST | adds N (default 1, may be negative) to a write-behind counter; 200 once recorded, 503 when it cannot be |
//! | `/v1/counters/{name}`, `/v1/counters` | GET | a counter's stored + pending value; all that is pending |
//!
//! Purges answer `{"purged": N}`: how many stored URLs went. `PATH` is written as a client
//! sends it, query included (see `docs/purging.md`), and `HOST` without a port matches every
//! port ([`HostMatch`](crate::http::host_match::HostMatch)). When an admin token is configured,
//! every endpoint but `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer TOKEN`,
//! else 401: the stats and counter names (request counts are URLs) are as private as the calls
//! that change state.

mod cache_listing;
mod config;
mod counters;
mod purge;
mod query;
mod readiness;
pub mod thread;
mod token;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

pub use self::config::AdminConfig;
pub use self::readiness::{Phase, Readiness};
pub use self::token::AdminToken;
use crate::body::{Body, RequestBody};
use crate::metrics::{self, Registry};
use crate::proxy::HttpCache;
use crate::proxy::purge::Purger;
use crate::server::{Client, Handled, Handler};
use crate::stats::Stats;
use crate::store::Store;
use crate::writebehind::WriteBehind;

/// The admin endpoints.
pub struct Admin {
    /// The cache, for its store's entries and bytes.
    cache: HttpCache,
    stats: Arc<Stats>,
    purger: Purger,
    registry: Registry,
    /// When set, the bearer token every endpoint but health, readiness and metrics needs.
    token: AdminToken,
    readiness: Readiness,
    /// The write-behind counters behind `/v1/counters`, when they run.
    counters: Option<Arc<WriteBehind>>,
}

// === impl Admin ===

impl Admin {
    /// Admin endpoints for the proxy's `cache`, `stats` and `purger`, exposing `registry`.
    pub fn new(
        cache: HttpCache,
        stats: Arc<Stats>,
        purger: Purger,
        registry: Registry,
        token: Option<String>,
        readiness: Readiness,
    ) -> Self {
        Self {
            cache,
            stats,
            purger,
            registry,
            token: AdminToken::new(token),
            readiness,
            counters: None,
        }
    }

    /// The token the endpoints ask for, to replace it while serving.
    pub fn token(&self) -> &AdminToken {
        &self.token
    }

    /// Serves `/v1/counters` from `counters`.
    pub fn with_counters(mut self, counters: Arc<WriteBehind>) -> Self {
        self.counters = Some(counters);
        self
    }

    async fn route(&self, request: &Request<RequestBody>) -> Response<Body> {
        // Only the probes and the scrape are open: the rest shows or changes what clients did
        // (counter names can be URLs, with their secrets). Checked before routing, so a caller
        // without the token learns nothing, not even which paths exist.
        let open = matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics");
        if !open && !self.authorized(request.headers()) {
            return unauthorized();
        }
        match (request.method(), request.uri().path()) {
            (&Method::GET | &Method::HEAD, "/metrics") => {
                // Let the store apply pending evictions so entry count and bytes are exact.
                self.cache.store().settle();
                respond(
                    StatusCode::OK,
                    metrics::CONTENT_TYPE,
                    Bytes::from(metrics::encode(&self.registry)),
                )
            }
            (&Method::GET | &Method::HEAD, "/stats") => {
                let store = self.cache.store();
                store.settle();
                let view = self.stats.to_json(store.entry_count(), store.size_bytes());
                json(StatusCode::OK, format!("{view}\n"))
            }
            (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET | &Method::HEAD, "/readyz") => readyz(self.readiness.phase()),
            (&Method::POST, "/purge") => {
                purge::handle(&self.purger, request.uri().query().unwrap_or("")).await
            }
            (&Method::GET | &Method::HEAD, "/debug/cache") => {
                cache_listing::handle(&self.cache, request.uri().query().unwrap_or("")).await
            }
            (method, path) if counters::is_counters_path(path) => {
                let query = request.uri().query();
                counters::handle(self.counters.as_deref(), method, path, query).await
            }
            (_, "/metrics" | "/stats" | "/healthz" | "/readyz" | "/purge" | "/debug/cache") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = self.token.current() else {
            return true;
        };
        // RFC 9110 §11.1: the scheme name is case-insensitive.
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim_start());
        constant_time_eq(presented.as_bytes(), token.as_bytes())
    }
}

impl Handler for Admin {
    fn handle(
        self: &Arc<Self>,
        request: Request<RequestBody>,
        _client: &Client,
    ) -> Handled<impl Future<Output = Response<Body>> + Send + use<>> {
        let admin = Arc::clone(self);
        Handled::Later(async move { admin.route(&request).await })
    }
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `/readyz`: 200 only while serving.
fn readyz(phase: Phase) -> Response<Body> {
    match phase {
        Phase::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        Phase::Ready => text(StatusCode::OK, "ready\n"),
        Phase::Draining => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

/// A plain-text answer built at run time (an error message naming what was wrong).
fn text_owned(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", Bytes::from(body))
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "application/json", Bytes::from(body))
}

fn unauthorized() -> Response<Body> {
    let mut response = text(StatusCode::UNAUTHORIZED, "admin token required\n");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_answers_200_only_while_serving() {
        assert_eq!(
            readyz(Phase::Starting).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(readyz(Phase::Ready).status(), StatusCode::OK);
        assert_eq!(
            readyz(Phase::Draining).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
