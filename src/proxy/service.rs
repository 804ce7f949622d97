//! The proxy's request path: classify → key → lookup → hit / stale / load → respond → record.
//!
//! Each request runs the same fixed phases; every decision is kept as an enum
//! ([`CacheResult`], [`CacheStatus`]) from which the response header, the log line, the metrics
//! and the server span's attributes are derived, never recomputed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use tracing::{Instrument, Span};

use super::cache_status::{CacheResult, CacheStatus, Forward};
use super::loader::{OriginLoader, PassResponse};
use super::metrics::ProxyMetrics;
use super::request::{CarriedFields, Class, RequestHead};
use super::request_counts::RequestCounts;
use super::respond::{self, Audience};
use super::trace::RequestTrace;
use crate::body::{Body, Guard};
use crate::cache::key::CacheKey;
use crate::cache::loading::{
    Answer, Judgement, LoadCause, LoadingCache, Lookup, Miss, Route, Served, Source, WaitResult,
};
use crate::cache::object::CachedObject;
use crate::origin::headers::remove_hop_by_hop;
use crate::origin::{OriginError, OriginErrorKind};
use crate::server::{Client, Handled, Handler};
use crate::stats::Stats;
use crate::telemetry::logs::{self, TraceIds};
use crate::telemetry::sampling::RequestSampler;

/// The caching proxy: the cache and the origin behind it.
pub struct Proxy {
    cache: LoadingCache<OriginLoader>,
    /// Requests received and not yet answered (a saturation gauge).
    in_flight: AtomicUsize,
    metrics: ProxyMetrics,
    stats: Arc<Stats>,
    /// With tracing on, the sampler each request applies before opening its server span.
    traced: Option<RequestSampler>,
    /// When set, every request with a cache key adds 1 to its counter.
    request_counts: Option<RequestCounts>,
    /// What one request may carry.
    limits: RequestLimits,
}

/// What one request may carry, checked before it reaches the cache or the origin.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Most header fields (HTTP/1.1 heads are held to it by the parser already; this holds
    /// HTTP/2 requests to it too).
    pub max_headers: usize,
    /// Largest request body passed through to the origin.
    pub max_body_bytes: u64,
    /// Longest request target (path and query).
    pub max_uri_bytes: u64,
    /// Whether TRACE is forwarded (otherwise answered 405).
    pub allow_trace: bool,
    /// Longest wait for the next part of a request body passed through to the origin.
    pub body_timeout: Duration,
}

/// The log target of the access line (one line per request, at debug).
const ACCESS_LOG: &str = "sidecache::access";

type LoadAnswer = Answer<Arc<CachedObject>, PassResponse, OriginError>;

/// What the outermost wrapper keeps about a request for the end-of-request hook.
struct RequestCtx {
    /// When the request head arrived.
    started: Instant,
    /// Its server span (a no-op when tracing is off).
    trace: RequestTrace,
    method: Method,
    /// The request target for the access line; `None` when access lines are not logged, so a
    /// request pays for the copy only when it is written out.
    logged_uri: Option<http::Uri>,
    /// The cache key, only when requests are counted per key.
    counted_key: Option<CacheKey>,
}

/// How a request was answered, as the end-of-request hook records it.
#[derive(Debug, Clone)]
struct Disposition {
    result: CacheResult,
    /// For a request that waited on another's load, how the wait ended.
    waited: Option<WaitResult>,
    /// For a request that waited on another's load, the span that load ran in.
    leader: Option<Span>,
}

impl From<CacheResult> for Disposition {
    fn from(result: CacheResult) -> Self {
        Self {
            result,
            waited: None,
            leader: None,
        }
    }
}

/// How far [`Proxy::route`] got without waiting.
enum Routed {
    /// Answered: a hit, or one of sidecache's own answers.
    Now(Response<Body>, Disposition),
    /// Needs the origin or another caller's load: [`Proxy::answer_later`] does it.
    Later(Deferred),
}

/// The rest of a request that cannot be answered without waiting; it owns all it needs, so
/// the future that does it owns it too.
enum Deferred {
    /// L1 could not answer a cacheable request: load it (or wait for the load under way).
    Load(RequestHead, Miss<Arc<CachedObject>>),
    /// A `no-store` request the cache could not answer: loaded for this client only.
    Unstored(RequestHead),
    /// Any other method (or a GET with preconditions only the origin judges): sent through.
    Forward {
        head: RequestHead,
        version: Version,
        body: Incoming,
        /// Whether a success invalidates what it touched (the unsafe methods).
        invalidates: bool,
    },
}

impl From<(Response<Body>, Disposition)> for Routed {
    fn from((response, disposition): (Response<Body>, Disposition)) -> Self {
        Self::Now(response, disposition)
    }
}

/// Counts a request as in flight for as long as it lives; holds the proxy for the future that
/// answers it.
struct InFlight(Arc<Proxy>);

impl InFlight {
    fn enter(proxy: Arc<Proxy>) -> Self {
        proxy.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(proxy)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

// === impl Proxy ===

impl Proxy {
    /// A proxy answering from `cache`, counting into `metrics` and `stats`, holding requests to
    /// `limits` (`--max-headers`, `--max-request-body`).
    pub fn new(
        cache: LoadingCache<OriginLoader>,
        metrics: ProxyMetrics,
        stats: Arc<Stats>,
        limits: RequestLimits,
    ) -> Self {
        Self {
            cache,
            in_flight: AtomicUsize::new(0),
            metrics,
            stats,
            traced: None,
            request_counts: None,
            limits,
        }
    }

    /// Traces the requests `sampler` keeps (tracing on; see [`crate::telemetry`]).
    pub fn with_tracing(mut self, sampler: Option<RequestSampler>) -> Self {
        self.traced = sampler;
        self
    }

    /// Counts requests per cache key (`--writebehind-count-requests`), under the names
    /// [`RequestCounts::name`] gives.
    pub fn count_requests(mut self, counts: RequestCounts) -> Self {
        self.request_counts = Some(counts);
        self
    }

    /// Requests received and not yet answered.
    pub fn in_flight_requests(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The cache (for shutdown and inspection).
    pub fn cache(&self) -> &LoadingCache<OriginLoader> {
        &self.cache
    }

    /// The windowed stats.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Removes one URL (every variant), on `host` or on every host; returns how many stored
    /// URLs went. Counted as manual misses.
    pub async fn purge_url(&self, host: Option<&str>, path_and_query: &str) -> usize {
        let removed = match host {
            Some(host) => usize::from(
                self.cache
                    .invalidate(&CacheKey::new(host, path_and_query))
                    .await,
            ),
            None => {
                self.cache
                    .invalidate_matching(|key| key.path_and_query() == path_and_query)
                    .await
            }
        };
        self.record_invalidations(removed);
        removed
    }

    /// Removes every URL whose path starts with `prefix`, on `host` or on every host; returns
    /// how many stored URLs went. Counted as manual misses. `host` is normalised as keys are
    /// (as [`purge_url`](Self::purge_url)'s is), so `x:80` matches what `x` stored.
    pub async fn purge_prefix(&self, host: Option<&str>, prefix: &str) -> usize {
        let host = host.map(|host| CacheKey::new(host, "/"));
        let host = host.as_ref().map(CacheKey::host);
        let removed = self
            .cache
            .invalidate_matching(|key| {
                host.is_none_or(|host| key.host() == host)
                    && key.path_and_query().starts_with(prefix)
            })
            .await;
        self.record_invalidations(removed);
        removed
    }

    fn record_invalidations(&self, removed: usize) {
        self.metrics.record_invalidations(removed);
        self.stats.record_manual_misses(removed);
    }

    /// The end-of-request hook: runs once for every request, errors included, and is the one
    /// place requests are counted, logged and their span completed. Hands the response back.
    fn finish(
        &self,
        ctx: &RequestCtx,
        response: Response<Body>,
        disposition: Disposition,
    ) -> Response<Body> {
        let _entered = ctx.trace.span().enter();
        let elapsed = ctx.started.elapsed();
        let Disposition {
            result,
            waited,
            leader,
        } = disposition;
        self.metrics.record_request(result, elapsed, waited);
        self.stats.record(result.stat_outcome(), elapsed);
        ctx.trace.finish(response.status(), result, leader.as_ref());
        if let (Some(counts), Some(key)) = (&self.request_counts, &ctx.counted_key) {
            counts.record(key);
        }
        if let Some(uri) = &ctx.logged_uri {
            let access_line = || {
                tracing::debug!(
                    target: ACCESS_LOG,
                    method = %ctx.method,
                    path = uri.path(),
                    status = response.status().as_u16(),
                    cache_result = result.as_str(),
                    elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
                    "request"
                );
            };
            match ctx.trace.unsampled_ids() {
                // A request the sampler dropped has no span to carry its ids to the line.
                Some(ids) => logs::with_ids(ids, access_line),
                None => access_line(),
            }
        }
        response
    }

    /// Runs the request's phases as far as they go without waiting: a hit (or one of
    /// sidecache's own answers) is answered here, anything that needs the origin or another
    /// caller's load is handed back as the future that will answer it.
    fn route(
        &self,
        mut parts: Parts,
        carried: CarriedFields,
        body: Incoming,
        client: SocketAddr,
        unsampled_trace: Option<TraceIds>,
    ) -> Routed {
        if parts.headers.len() > self.limits.max_headers {
            return own_error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields\n",
            )
            .into();
        }
        if parts.method == Method::CONNECT {
            return own_error(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n").into();
        }
        if parts.uri.path_and_query().is_none() {
            // Authority-form (`GET host:port`) belongs to CONNECT alone (RFC 9112 §3.2.3).
            return own_error(StatusCode::BAD_REQUEST, "request target has no path\n").into();
        }
        let target_len = parts
            .uri
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
        if target_len as u64 > self.limits.max_uri_bytes {
            return own_error(StatusCode::URI_TOO_LONG, "request target too long\n").into();
        }
        if parts.method == Method::TRACE && !self.limits.allow_trace {
            return refused_trace().into();
        }
        if parts.method == Method::OPTIONS || parts.method == Method::TRACE {
            // RFC 9110 §7.6.2: an intermediary checks and updates Max-Forwards on these two
            // methods; at zero it must not forward but answer as the final recipient.
            match max_forwards(&parts.headers) {
                Some(0) => return final_recipient(&parts.method).into(),
                Some(left) => {
                    parts
                        .headers
                        .insert(header::MAX_FORWARDS, HeaderValue::from(left - 1));
                }
                None => {}
            }
        }
        let version = parts.version;
        let head = match RequestHead::new(
            parts.method,
            &parts.uri,
            parts.headers,
            carried,
            client.ip(),
        ) {
            Ok(head) => head.passing_on(unsampled_trace),
            Err(_) => {
                return own_error(StatusCode::BAD_REQUEST, "missing or invalid Host\n").into();
            }
        };
        let class = Class::of(&head.method, head.carried);
        match class {
            // A body on a GET or HEAD has no defined meaning; it is not forwarded to a shared load.
            Class::Cacheable => self.cacheable(head),
            Class::Unsafe | Class::Pass => Routed::Later(Deferred::Forward {
                head,
                version,
                body,
                invalidates: class == Class::Unsafe,
            }),
        }
    }

    /// Answers what [`route`](Self::route) could not answer at once.
    async fn answer_later(&self, deferred: Deferred) -> (Response<Body>, Disposition) {
        match deferred {
            Deferred::Load(head, miss) => {
                let answer = self.cache.load(&head.key, &head, miss).await;
                self.answer(&head, answer)
            }
            Deferred::Unstored(head) => self.load_unstored(&head).await,
            Deferred::Forward {
                head,
                version,
                body,
                invalidates,
            } => self.forward(head, version, body, invalidates).await,
        }
    }

    /// GET and HEAD: from the cache where possible.
    fn cacheable(&self, head: RequestHead) -> Routed {
        let key = &head.key;
        let directives = &head.directives;
        if directives.only_if_cached || directives.no_store {
            if let Some((object, Judgement::Fresh)) = self.cache.peek(key, &head) {
                let hit = Answer {
                    served: Served::Value(object),
                    route: Route::Hit,
                    waited: None,
                    found: None,
                    leader: None,
                };
                return self.answer(&head, hit).into();
            }
            if directives.only_if_cached {
                // RFC 9111 §5.2.1.7: nothing stored satisfies it, so 504.
                let status = CacheStatus {
                    forward: None,
                    detail: Some("only-if-cached"),
                    ..CacheStatus::forwarded(Forward::UriMiss)
                };
                let response = respond::own(StatusCode::GATEWAY_TIMEOUT, "not in cache\n", &status);
                return (response, CacheResult::Miss.into()).into();
            }
            // RFC 9111 §5.2.1.5: neither this request nor its response may be stored.
            return Routed::Later(Deferred::Unstored(head));
        }
        match self.cache.lookup(key, &head) {
            Lookup::Answered(answer) => self.answer(&head, answer).into(),
            Lookup::Load(miss) => Routed::Later(Deferred::Load(head, miss)),
        }
    }

    /// A `no-store` request that the cache could not answer: loaded for this client only.
    async fn load_unstored(&self, head: &RequestHead) -> (Response<Body>, Disposition) {
        let status = CacheStatus::forwarded(Forward::Bypass);
        match self.cache.load_uncached(&head.key, head).await {
            Ok(Source::Fetched(object) | Source::Revalidated(object)) => {
                let Some(variant) = object.select(&head.headers) else {
                    return unselectable();
                };
                let status = CacheStatus {
                    forward_status: Some(variant.status),
                    ..status
                };
                let response = respond::stored(variant, head, &status, SystemTime::now());
                (response, CacheResult::Pass.into())
            }
            Ok(Source::Private { answer: pass, .. }) => {
                let status = CacheStatus {
                    forward_status: Some(pass.response.status()),
                    ..status
                };
                (
                    respond::passed(pass.response, &head.method, &status),
                    CacheResult::Pass.into(),
                )
            }
            Err(error) => (
                respond::origin_failed(
                    &error,
                    &head.method,
                    &failed_status(&error, CacheStatus::forwarded(Forward::Bypass)),
                    Audience::Requester,
                ),
                CacheResult::Error.into(),
            ),
        }
    }

    /// Builds the response for what the cache answered, with its `Cache-Status`.
    fn answer(&self, head: &RequestHead, answer: LoadAnswer) -> (Response<Body>, Disposition) {
        let Answer {
            served,
            route,
            waited,
            found,
            leader,
        } = answer;
        let forwarded = CacheStatus {
            collapsed: waited.is_some(),
            ..CacheStatus::forwarded(forward_reason(route, found))
        };
        let now = SystemTime::now();
        match served {
            Served::Value(object) => {
                let Some(variant) = object.select(&head.headers) else {
                    return unselectable();
                };
                let ttl = variant.policy.ttl_seconds(now);
                let loaded = CacheStatus {
                    forward_status: Some(variant.status),
                    stored: true,
                    ttl: Some(ttl),
                    ..forwarded
                };
                let (result, status) = match route {
                    Route::Hit => (CacheResult::Hit, CacheStatus::hit(ttl)),
                    Route::StaleWhileRefresh => (
                        CacheResult::Stale,
                        CacheStatus {
                            detail: Some("stale-while-revalidate"),
                            ..CacheStatus::hit(ttl)
                        },
                    ),
                    Route::Coalesced => (
                        CacheResult::Coalesced,
                        CacheStatus {
                            stored: false,
                            ..loaded
                        },
                    ),
                    Route::Revalidated => (
                        CacheResult::Revalidated,
                        CacheStatus {
                            forward_status: Some(StatusCode::NOT_MODIFIED),
                            ..loaded
                        },
                    ),
                    Route::Pass => (
                        CacheResult::Pass,
                        CacheStatus {
                            detail: Some("hit-for-miss"),
                            ..loaded
                        },
                    ),
                    // Still going forward: the load under way is slower than the wait bound.
                    Route::StaleWhileLoading => (
                        CacheResult::Stale,
                        CacheStatus {
                            ttl: Some(ttl),
                            detail: Some("origin-slow"),
                            ..forwarded
                        },
                    ),
                    Route::Miss | Route::StaleOnError | Route::Error | Route::Busy => {
                        (CacheResult::Miss, loaded)
                    }
                };
                let response = respond::stored(variant, head, &status, now);
                (
                    response,
                    Disposition {
                        result,
                        waited,
                        leader,
                    },
                )
            }
            Served::StandIn(object, error) => {
                let Some(variant) = object.select(&head.headers) else {
                    return unselectable();
                };
                let status = CacheStatus {
                    ttl: Some(variant.policy.ttl_seconds(now)),
                    ..failed_status(&error, forwarded)
                };
                let response = respond::stored(variant, head, &status, now);
                (
                    response,
                    Disposition {
                        result: CacheResult::Stale,
                        waited,
                        leader,
                    },
                )
            }
            Served::Private(pass) => {
                let (result, detail) = match route {
                    Route::Pass => (CacheResult::Pass, "hit-for-miss"),
                    _ => (CacheResult::Miss, pass.not_stored.as_str()),
                };
                let status = CacheStatus {
                    forward_status: Some(pass.response.status()),
                    detail: Some(detail),
                    ..forwarded
                };
                (
                    respond::passed(pass.response, &head.method, &status),
                    Disposition {
                        result,
                        waited,
                        leader,
                    },
                )
            }
            Served::Failed(error) => (
                respond::origin_failed(
                    &error,
                    &head.method,
                    &failed_status(&error, forwarded),
                    audience(waited),
                ),
                Disposition {
                    result: CacheResult::Error,
                    waited,
                    leader,
                },
            ),
            Served::TimedOut => (
                respond::own(
                    StatusCode::GATEWAY_TIMEOUT,
                    "origin timed out\n",
                    &CacheStatus {
                        detail: Some("origin-timeout"),
                        ..forwarded
                    },
                ),
                Disposition {
                    result: CacheResult::Error,
                    waited,
                    leader,
                },
            ),
            Served::Busy => {
                // Not queued, so not collapsed into another request's load either.
                let status = CacheStatus {
                    collapsed: false,
                    detail: Some("too-many-waiters"),
                    ..forwarded
                };
                let mut response = respond::own(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests waiting for this URL; retry shortly\n",
                    &status,
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                (
                    response,
                    Disposition {
                        result: CacheResult::Error,
                        waited,
                        leader,
                    },
                )
            }
        }
    }

    /// Unsafe and uncacheable methods: straight to the origin, bodies streamed both ways. A body
    /// larger than the limit is refused (413) before the origin is asked if its length says so,
    /// else cut off when it passes the limit, which abandons the origin request (413 too).
    async fn forward(
        &self,
        head: RequestHead,
        version: Version,
        body: Incoming,
        invalidates: bool,
    ) -> (Response<Body>, Disposition) {
        let limit = self.limits.max_body_bytes;
        if body.size_hint().lower() > limit {
            return body_too_large(version);
        }
        let guard = Guard {
            limit: Some(limit),
            read_timeout: Some(self.limits.body_timeout),
        };
        let mut request = Request::new(Body::guarded(Bytes::new(), body, guard));
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = head.origin_uri();
        *request.headers_mut() = head.forwarded_headers();
        match self.cache.loader().origin().send(request).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target
                // URI and the same-origin URIs in Location and Content-Location.
                if invalidates && (parts.status.is_success() || parts.status.is_redirection()) {
                    self.invalidate_after_unsafe(&head.key, &parts.headers)
                        .await;
                }
                let status = CacheStatus {
                    forward_status: Some(parts.status),
                    ..CacheStatus::forwarded(Forward::Method)
                };
                let body = self.cache.loader().origin().stream_body(Bytes::new(), body);
                let response = Response::from_parts(parts, body);
                (
                    respond::passed(response, &head.method, &status),
                    CacheResult::Pass.into(),
                )
            }
            Err(error) if matches!(error.kind(), OriginErrorKind::RequestBodyTooLarge) => {
                body_too_large(version)
            }
            Err(error) if matches!(error.kind(), OriginErrorKind::RequestBodyTimeout) => {
                body_timed_out(version)
            }
            Err(error) => (
                respond::origin_failed(
                    &error,
                    &head.method,
                    &failed_status(&error, CacheStatus::forwarded(Forward::Method)),
                    Audience::Requester,
                ),
                CacheResult::Error.into(),
            ),
        }
    }

    async fn invalidate_after_unsafe(&self, key: &CacheKey, response: &HeaderMap) {
        let mut removed = usize::from(self.cache.invalidate(key).await);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let target = response
                .get(&name)
                .and_then(|value| value.to_str().ok())
                .and_then(|reference| same_origin_key(key, reference));
            if let Some(target) = target {
                removed += usize::from(self.cache.invalidate(&target).await);
            }
        }
        self.record_invalidations(removed);
    }
}

impl Handler for Proxy {
    /// Answers one client request. Never fails: every error becomes a response here.
    ///
    /// This is the outermost wrapper: it counts the request in flight, starts its clock, and
    /// (with tracing on) runs it inside its server span. A request that can be answered at once
    /// (a hit) is answered and recorded before this returns, with no future at all; the rest is
    /// answered by a boxed future.
    fn handle(
        self: &Arc<Self>,
        request: Request<Incoming>,
        connection: &Client,
    ) -> Handled<impl Future<Output = Response<Body>> + Send + use<>> {
        let client = connection.addr();
        let in_flight = InFlight::enter(Arc::clone(self));
        let (parts, body) = request.into_parts();
        // One pass over the fields tells the trace and the cache which of them to look up.
        let carried = CarriedFields::of(&parts.headers);
        let ctx = RequestCtx {
            started: Instant::now(),
            trace: match &self.traced {
                Some(sampler) => RequestTrace::open(&parts, carried, client, sampler),
                None => RequestTrace::off(),
            },
            // Kept for the access line (an inline method; the URI only when the line is logged).
            method: parts.method.clone(),
            logged_uri: tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG)
                .then(|| parts.uri.clone()),
            // Only worked out here when requests are counted; `route` keys the request again.
            counted_key: self
                .request_counts
                .as_ref()
                .and_then(|_| CacheKey::from_request(&parts.uri, &parts.headers).ok()),
        };
        let routed = {
            let _entered = ctx.trace.span().enter();
            self.route(parts, carried, body, client, ctx.trace.unsampled_ids())
        };
        match routed {
            Routed::Now(response, disposition) => {
                let response = self.finish(&ctx, response, disposition);
                drop(in_flight);
                Handled::Now(response)
            }
            // In a turn of the connection's share of the origin; a request whose key was loaded
            // while it waited costs no second load (the load's leader looks again first).
            Routed::Later(deferred) => Handled::Later(Box::pin(connection.in_turn(async move {
                let proxy = &in_flight.0;
                let answered = proxy.answer_later(deferred);
                let (response, disposition) = if ctx.trace.span().is_none() {
                    answered.await
                } else {
                    answered.instrument(ctx.trace.span().clone()).await
                };
                proxy.finish(&ctx, response, disposition)
            }))),
        }
    }
}

/// The cache key of `reference` (a `Location` or `Content-Location` value) resolved against
/// `base`, if it has the same origin (RFC 9111 §4.4 invalidates only same-origin URIs).
pub fn same_origin_key(base: &CacheKey, reference: &str) -> Option<CacheKey> {
    let lower = reference.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let uri: http::Uri = reference.parse().ok()?;
        let authority = uri.authority()?;
        let host = match authority.port_u16() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_owned(),
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        // Built as a key, so the host is normalised exactly as the base's was.
        let target = CacheKey::new(&host, path);
        return (target.host() == base.host()).then_some(target);
    }
    if reference.starts_with("//") {
        // A network-path reference names another authority: resolve it like an absolute URI.
        return same_origin_key(base, &format!("http:{reference}"));
    }
    if reference.starts_with('/') {
        return Some(CacheKey::new(base.host(), reference));
    }
    if reference.is_empty() || reference.contains(':') {
        return None;
    }
    // A relative path: resolve against the base path's directory (RFC 3986 §5.2.3).
    let base_path = base.path_and_query();
    let base_path = base_path.split(['?', '#']).next().unwrap_or("/");
    let directory = &base_path[..base_path.rfind('/').map_or(0, |slash| slash + 1)];
    Some(CacheKey::new(
        base.host(),
        &format!("{directory}{reference}"),
    ))
}

/// `status` for an answer to a failed origin load: the origin's status if it sent one, and
/// what went wrong as the detail.
fn failed_status(error: &OriginError, status: CacheStatus) -> CacheStatus {
    let forward_status = match error.kind() {
        crate::origin::OriginErrorKind::ErrorStatus(answer) => Some(answer.status),
        _ => None,
    };
    CacheStatus {
        forward_status,
        detail: Some(error.as_str()),
        ..status
    }
}

/// Who an answer to a failed load is for: the origin's error reaches a waiter only through its
/// leader's load.
fn audience(waited: Option<WaitResult>) -> Audience {
    match waited {
        Some(WaitResult::LeaderError) => Audience::Waiter,
        _ => Audience::Requester,
    }
}

/// Why a cacheable request went to the origin (RFC 9211 §2.2 `fwd`), from the route it took
/// and what the store held for it.
fn forward_reason(route: Route, found: Option<LoadCause>) -> Forward {
    match (route, found) {
        (Route::Pass, _) => Forward::Bypass,
        (_, None) => Forward::UriMiss,
        (_, Some(LoadCause::Unmatched)) => Forward::VaryMiss,
        (_, Some(LoadCause::Stale)) => Forward::Stale,
        (_, Some(LoadCause::Requested)) => Forward::Request,
    }
}

/// The request's `Max-Forwards` (`1*DIGIT`, RFC 9110 §7.6.2); `None` when absent or not one
/// valid value, in which case it is passed on untouched.
fn max_forwards(headers: &HeaderMap) -> Option<u64> {
    let mut lines = headers.get_all(header::MAX_FORWARDS).iter();
    let value = lines.next()?.to_str().ok()?.trim_matches([' ', '\t']);
    if lines.next().is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for u64 is still "many hops left".
    Some(value.parse().unwrap_or(u64::MAX))
}

/// sidecache's own answer to an OPTIONS or TRACE whose `Max-Forwards` reached zero. OPTIONS is
/// answered 200. TRACE would be reflected back (a SHOULD, RFC 9110 §9.3.8); sidecache does not
/// echo requests, so it answers 405 with the one method it answers itself.
fn final_recipient(method: &Method) -> (Response<Body>, Disposition) {
    let status = CacheStatus {
        hit: false,
        forward: None,
        detail: Some("max-forwards"),
        ..CacheStatus::forwarded(Forward::Method)
    };
    if *method == Method::OPTIONS {
        let mut response = respond::own(StatusCode::OK, "", &status);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        return (response, CacheResult::Pass.into());
    }
    let mut response = respond::own(
        StatusCode::METHOD_NOT_ALLOWED,
        "TRACE is not answered by sidecache\n",
        &status,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("OPTIONS"));
    (response, CacheResult::Pass.into())
}

/// 405 for a TRACE (unless `--allow-trace`): it would echo the request, credentials included.
fn refused_trace() -> (Response<Body>, Disposition) {
    let status = CacheStatus {
        detail: Some("trace-not-allowed"),
        ..CacheStatus::forwarded(Forward::Method)
    };
    let mut response = respond::own(
        StatusCode::METHOD_NOT_ALLOWED,
        "TRACE is not forwarded\n",
        &status,
    );
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, OPTIONS, POST, PUT, DELETE, PATCH"),
    );
    (response, CacheResult::Pass.into())
}

/// 413 for a request body past `--max-request-body`. Over HTTP/1.x the connection is closed
/// after it, as the rest of the body is not read.
fn body_too_large(version: Version) -> (Response<Body>, Disposition) {
    let refusal = (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    body_refused(refusal, "request-body-too-large", version)
}

/// 408 for a request body that paused longer than `--client-body-timeout` (as nginx answers at
/// `client_body_timeout`). Over HTTP/1.x the connection is closed after it.
fn body_timed_out(version: Version) -> (Response<Body>, Disposition) {
    let refusal = (StatusCode::REQUEST_TIMEOUT, "request body timed out\n");
    body_refused(refusal, "request-body-timeout", version)
}

/// sidecache's answer `(code, text)` to a request body it would not pass on, with `detail` in
/// its `Cache-Status`; the rest of the body is not read, so an HTTP/1.x connection closes.
fn body_refused(
    (code, text): (StatusCode, &'static str),
    detail: &'static str,
    version: Version,
) -> (Response<Body>, Disposition) {
    let status = CacheStatus {
        forward_status: None,
        detail: Some(detail),
        ..CacheStatus::forwarded(Forward::Method)
    };
    let mut response = respond::own(code, text, &status);
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    (response, CacheResult::Error.into())
}

fn own_error(code: StatusCode, text: &'static str) -> (Response<Body>, Disposition) {
    let status = CacheStatus {
        detail: Some("bad-request"),
        ..CacheStatus::forwarded(Forward::Bypass)
    };
    (respond::own(code, text, &status), CacheResult::Error.into())
}

/// A stored object that has no response for the request that loaded it: a bug, answered
/// cleanly rather than with a panic.
fn unselectable() -> (Response<Body>, Disposition) {
    tracing::error!("a loaded object had no variant for its own request");
    let status = CacheStatus {
        detail: Some("internal"),
        ..CacheStatus::forwarded(Forward::UriMiss)
    };
    (
        respond::own(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error\n",
            &status,
        ),
        CacheResult::Error.into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_targets_resolve_to_same_origin_keys_only() {
        let base = CacheKey::new("example.com", "/a/b?x=1");
        let cases = [
            ("/c", Some("example.com/c")),
            ("c", Some("example.com/a/c")),
            ("http://example.com/d?q", Some("example.com/d?q")),
            ("HTTP://EXAMPLE.COM/e", Some("example.com/e")),
            ("http://other.example/f", None),
            ("//other.example/g", None),
            ("//example.com/h", Some("example.com/h")),
            // The authority is compared as the key normalises it (default port, case).
            ("http://example.com:80/i", Some("example.com/i")),
            ("https://Example.COM:443/j", Some("example.com/j")),
            ("http://example.com:8080/k", None),
            ("mailto:x@example.com", None),
            ("", None),
        ];
        let ipv6 = CacheKey::new("[::1]:8080", "/a");
        assert_eq!(
            same_origin_key(&ipv6, "http://[::1]:8080/b")
                .as_ref()
                .map(CacheKey::as_str),
            Some("[::1]:8080/b")
        );
        for (reference, expected) in cases {
            let key = same_origin_key(&base, reference);
            assert_eq!(
                key.as_ref().map(CacheKey::as_str),
                expected,
                "reference {reference:?}"
            );
        }
    }
}
