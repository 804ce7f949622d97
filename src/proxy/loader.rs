//! The HTTP [`Loader`]: loads a URL from the origin, revalidates stored responses, and decides
//! what may be stored and shared.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::decision::NotStored;
use super::metrics::ProxyMetrics;
use super::part_store::PartStore;
use super::request::RequestHead;
use super::ttl_overrides::TtlOverrides;
use crate::body::Body;
use crate::cache::loading::{Judgement, LoadCause, Loader, Source};
use crate::http::directives::{RequestDirectives, ResponseDirectives};
use crate::http::freshen::{freshen_headers, not_modified_selects};
use crate::http::key::CacheKey;
use crate::http::policy::{
    Credentials, OriginFailure, PolicySettings, RefuseReason, ResponsePolicy, Reuse,
    has_explicit_lifetime,
};
use crate::http::range;
use crate::http::stored::object::{CachedObject, Variant};
use crate::http::stored::parts::{Coverage, Part, StoredParts};
use crate::http::vary::VaryKey;
use crate::origin::headers::{METHOD_OVERRIDES, remove_all, remove_hop_by_hop};
use crate::origin::{
    Buffered, ErrorResponse, OriginClient, OriginError, OriginErrorKind, is_error_status,
};

/// At most this much of an origin's error body is kept to hand to every waiting client.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Request fields the client's own conditional or range request carries. A shared load asks for
/// the full, unconditional representation; the client's conditions are then answered from it.
const CLIENT_CONDITIONS: [header::HeaderName; 6] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::RANGE,
];

/// A response for one client only, streamed, never stored.
#[derive(Debug)]
pub struct PassResponse {
    /// The origin's response (hop-by-hop fields removed).
    pub response: Response<Body>,
    /// Why it was not stored.
    pub not_stored: NotStored,
}

/// Loads from the origin into stored objects.
pub struct OriginLoader {
    origin: OriginClient,
    policy: PolicySettings,
    /// The operator's freshness by path prefix, applied on top of `policy` per request.
    ttl_overrides: TtlOverrides,
    max_object_bytes: u64,
    /// Counts the responses it does not store (its admission callback).
    metrics: ProxyMetrics,
    /// Parts of representations, which a whole load completes rather than loads again.
    parts: PartStore,
}

/// What a load asks the origin for.
enum Asking<'a> {
    /// The representation, unconditionally.
    Whole,
    /// The representation, unless `stored` is still current (RFC 9111 §4.3.1).
    Revalidating(&'a Variant),
    /// The bytes stored parts lack (`Range`), if the representation is still theirs
    /// (`If-Range`).
    Rest {
        /// The `Range` value.
        range: HeaderValue,
        /// The parts' validator.
        if_range: HeaderValue,
    },
}

/// How a load that tried to complete stored parts went.
enum Completion {
    /// The parts and the origin's part make the whole response.
    Whole(Variant),
    /// The origin's answer to a load of the whole representation, to be judged as any.
    Answered(Exchange),
}

/// What came back from the origin, with the times the age calculation needs.
struct Exchange {
    response: Response<Incoming>,
    request_time: SystemTime,
    response_time: SystemTime,
}

// === impl OriginLoader ===

impl OriginLoader {
    /// A loader asking `origin`, judging with `policy` as `ttl_overrides` adjust it for each
    /// path, storing objects up to `max_object_bytes`, counting refused stores in `metrics`,
    /// completing the representations `parts` holds pieces of.
    pub fn new(
        origin: OriginClient,
        policy: PolicySettings,
        ttl_overrides: TtlOverrides,
        max_object_bytes: u64,
        metrics: ProxyMetrics,
        parts: PartStore,
    ) -> Self {
        Self {
            origin,
            policy,
            ttl_overrides,
            max_object_bytes,
            metrics,
            parts,
        }
    }

    /// A response only the client of `request` may have. It marks the key hit-for-miss only
    /// when `request` carried no credentials: an answer to a request with `Cookie` or
    /// `Authorization` may be private because of whose they are (the usual logged-in /
    /// anonymous split), which says nothing about the next request.
    fn unshared(
        &self,
        request: &RequestHead,
        response: Response<Body>,
        not_stored: NotStored,
    ) -> Source<Arc<CachedObject>, PassResponse> {
        self.metrics.record_refused(not_stored);
        Source::Private {
            hit_for_miss: !Credentials::of(&request.headers).any(),
            answer: PassResponse {
                response,
                not_stored,
            },
        }
    }

    /// The knobs the answers to `request` are judged with: the cache-wide ones, with the
    /// freshness `--ttl-overrides` sets for its path.
    pub(crate) fn policy_for(&self, request: &RequestHead) -> PolicySettings {
        self.ttl_overrides
            .settings_for(&self.policy, request.key.path_and_query())
    }

    /// The origin client (also used for requests that bypass the cache).
    pub fn origin(&self) -> &OriginClient {
        &self.origin
    }

    /// Sends a GET for `request`, asking for what `asking` says.
    async fn fetch(
        &self,
        request: &RequestHead,
        asking: Asking<'_>,
    ) -> Result<Exchange, OriginError> {
        let mut headers = request.forwarded_headers();
        remove_all(&mut headers, &CLIENT_CONDITIONS);
        remove_all(&mut headers, &METHOD_OVERRIDES);
        match asking {
            Asking::Whole => {}
            Asking::Revalidating(stored) => {
                // RFC 9111 §4.3.1: send the stored entity tag in If-None-Match and the stored
                // Last-Modified in If-Modified-Since.
                if let Some(etag) = stored.field(&header::ETAG) {
                    headers.insert(header::IF_NONE_MATCH, etag);
                }
                if let Some(modified) = stored.field(&header::LAST_MODIFIED) {
                    headers.insert(header::IF_MODIFIED_SINCE, modified);
                }
            }
            Asking::Rest { range, if_range } => {
                headers.insert(header::RANGE, range);
                headers.insert(header::IF_RANGE, if_range);
            }
        }
        let mut origin_request = Request::new(Body::empty());
        *origin_request.method_mut() = Method::GET;
        *origin_request.uri_mut() = request.origin_uri();
        *origin_request.headers_mut() = headers;
        let request_time = SystemTime::now();
        let mut response = self.origin.send(origin_request).await?;
        let response_time = SystemTime::now();
        remove_hop_by_hop(response.headers_mut());
        date_if_missing(response.headers_mut(), response_time);
        Ok(Exchange {
            response,
            request_time,
            response_time,
        })
    }

    /// `stored` refreshed by a 304 (RFC 9111 §3.2, §4.3.4).
    fn freshen(&self, stored: &Variant, request: &RequestHead, not_modified: &Exchange) -> Variant {
        let headers = freshen_headers(&stored.origin_headers(), not_modified.response.headers());
        let policy = ResponsePolicy::new(
            &Method::GET,
            &request.headers,
            stored.status,
            &headers,
            not_modified.request_time,
            not_modified.response_time,
            &self.policy_for(request),
        );
        Variant::new(
            stored.status,
            &headers,
            stored.body.clone(),
            policy,
            stored.vary.clone(),
        )
    }

    /// Turns a server-error answer to `request` into the error its client (and, where it may
    /// be shared, every waiting client) is given.
    async fn error_status(&self, request: &RequestHead, exchange: Exchange) -> OriginError {
        let (parts, body) = exchange.response.into_parts();
        let (body, truncated) = match self.origin.buffer_body(body, ERROR_BODY_LIMIT, 0).await {
            Ok(Buffered::Complete(body)) => (body.freeze(), false),
            Ok(Buffered::TooLarge { prefix, .. }) => {
                (prefix.slice(..ERROR_BODY_LIMIT as usize), true)
            }
            // What arrived before the body broke off is not an answer anyone can use.
            Err(_) => (Bytes::new(), true),
        };
        let directives = ResponseDirectives::from_response(&parts.headers);
        let shareable = !(directives.private
            || directives.no_store
            || parts.headers.contains_key(header::SET_COOKIE)
            || Credentials::of(&request.headers).any());
        let mut headers = parts.headers;
        headers.remove(header::CONTENT_LENGTH);
        OriginError::bare(OriginErrorKind::ErrorStatus(ErrorResponse {
            status: parts.status,
            headers,
            body,
            truncated,
            shareable,
        }))
    }

    /// Whether a server error is stored like any other response instead of being shared as an
    /// error: when the origin gave it explicit freshness and it may be stored (RFC 9111 §3,
    /// §4.2.1). Reusing it while fresh also spares a failing origin every client that asks.
    /// But a stored response that may stand in for an error (`stale-if-error`, `--grace`) wins
    /// over it, as it would over any error.
    fn stores_error(
        &self,
        current: Option<&CachedObject>,
        request: &RequestHead,
        exchange: &Exchange,
    ) -> bool {
        let headers = exchange.response.headers();
        if !has_explicit_lifetime(headers)
            || current.is_some_and(|object| stands_in(object, request, OriginFailure::ErrorStatus))
        {
            return false;
        }
        ResponsePolicy::new(
            &Method::GET,
            &request.headers,
            exchange.response.status(),
            headers,
            exchange.request_time,
            exchange.response_time,
            &self.policy_for(request),
        )
        .storable()
        .is_ok()
    }

    /// Stores a complete response, or hands it to its client alone when it must not be stored.
    async fn admit(
        &self,
        current: Option<&CachedObject>,
        request: &RequestHead,
        exchange: Exchange,
    ) -> Result<Source<Arc<CachedObject>, PassResponse>, OriginError> {
        let (parts, body) = exchange.response.into_parts();
        let policy = ResponsePolicy::new(
            &Method::GET,
            &request.headers,
            parts.status,
            &parts.headers,
            exchange.request_time,
            exchange.response_time,
            &self.policy_for(request),
        );
        let vary = VaryKey::capture(&parts.headers, &request.headers);
        let refusal = match (policy.storable(), &vary) {
            (Err(reason), _) => Some(NotStored::Refused(reason)),
            (Ok(()), None) => Some(NotStored::Refused(RefuseReason::VaryStar)),
            (Ok(()), Some(_)) if self.declared_too_large(&parts.headers) => {
                Some(NotStored::TooLarge)
            }
            (Ok(()), Some(_)) => None,
        };
        if let Some(not_stored) = refusal {
            let body = self.origin.stream_body(Bytes::new(), body);
            return Ok(self.unshared(request, Response::from_parts(parts, body), not_stored));
        }
        let vary = vary.expect("a storable response has a Vary key (checked above)");
        let room = Variant::room_for(&parts.headers);
        match self
            .origin
            .buffer_body(body, self.max_object_bytes, room)
            .await?
        {
            Buffered::TooLarge { prefix, rest } => Ok(self.unshared(
                request,
                Response::from_parts(parts, self.origin.stream_body(prefix, rest)),
                NotStored::TooLarge,
            )),
            Buffered::Complete(body) => {
                let variant = Variant::read(parts.status, &parts.headers, body, policy, vary);
                Ok(Source::Fetched(Arc::new(CachedObject::with_variant(
                    current, variant,
                ))))
            }
        }
    }

    /// The parts of `key` a whole load can complete with one range, and that range (the span of
    /// the bytes they lack): fresh for `request`, and no larger together than
    /// `--max-object-size`.
    fn completable(
        &self,
        key: &CacheKey,
        request: &RequestHead,
    ) -> Option<(Arc<StoredParts>, u64, u64)> {
        let parts = self.parts.get(key)?;
        let fresh = parts.policy().reuse(&request.directives, SystemTime::now()) == Reuse::Fresh;
        if !fresh || parts.length() > self.max_object_bytes {
            return None;
        }
        match parts.coverage(0, parts.length() - 1) {
            Coverage::Missing { start, end } => Some((parts, start, end)),
            Coverage::Covered(_) => None,
        }
    }

    /// Asks the origin for bytes `first..=last` of the representation `parts` hold the rest of
    /// (RFC 9111 §3.4). Its `206` completes them into the whole response; any other answer is
    /// the origin's to a whole load (a `200` when `If-Range` no longer holds, which also drops
    /// the outdated parts; anything else is asked again, unconditionally).
    async fn complete(
        &self,
        key: &CacheKey,
        request: &RequestHead,
        parts: &StoredParts,
        (first, last): (u64, u64),
    ) -> Result<Completion, OriginError> {
        let asking = Asking::Rest {
            range: range::byte_range(first, last),
            if_range: parts.if_range().clone(),
        };
        let exchange = self.fetch(request, asking).await?;
        let status = exchange.response.status();
        if status != StatusCode::PARTIAL_CONTENT {
            if status == StatusCode::OK {
                self.parts.forget(key);
            }
            return Ok(Completion::Answered(exchange));
        }
        let times = (exchange.request_time, exchange.response_time);
        let (response, body) = exchange.response.into_parts();
        let whole = match Part::of_response(
            &response,
            &request.headers,
            times,
            &self.policy_for(request),
        ) {
            Some((part, end)) if (part.start, end) == (first, last) => {
                match self.origin.buffer_body(body, last - first + 1, 0).await? {
                    Buffered::Complete(bytes) if bytes.len() as u64 == last - first + 1 => {
                        let part = Part {
                            body: bytes.freeze(),
                            ..part
                        };
                        StoredParts::with(Some(parts), part)
                            .and_then(|combined| combined.whole(&request.headers))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match whole {
            Some(variant) => {
                self.parts.forget(key);
                Ok(Completion::Whole(variant))
            }
            // Not the part asked for: the whole representation, as any load asks for it.
            None => Ok(Completion::Answered(
                self.fetch(request, Asking::Whole).await?,
            )),
        }
    }

    fn declared_too_large(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .and_then(|length| length.parse::<u64>().ok())
            .is_some_and(|length| length > self.max_object_bytes)
    }
}

impl Loader for OriginLoader {
    type Key = CacheKey;
    type Request = RequestHead;
    type Value = Arc<CachedObject>;
    type Private = PassResponse;
    type Error = OriginError;

    fn judge(&self, object: &Arc<CachedObject>, request: &RequestHead) -> Judgement {
        let Some(variant) = object.select(&request.headers) else {
            return Judgement::Load(LoadCause::Unmatched);
        };
        let now = SystemTime::now();
        match variant.policy.reuse(&request.directives, now) {
            Reuse::Fresh | Reuse::StaleAllowedByRequest => Judgement::Fresh,
            Reuse::StaleWhileRevalidate => Judgement::ServeAndRefresh,
            // Tell apart a response that is stale from one only the request's own directives
            // (no-cache, max-age, min-fresh) refuse: Cache-Status reports them differently.
            Reuse::Revalidate
                if variant.policy.reuse(&RequestDirectives::default(), now) == Reuse::Fresh =>
            {
                Judgement::Load(LoadCause::Requested)
            }
            Reuse::Revalidate => Judgement::Load(LoadCause::Stale),
        }
    }

    fn usable_on_error(
        &self,
        object: &Arc<CachedObject>,
        request: &RequestHead,
        error: &OriginError,
    ) -> bool {
        let failure = if error.is_unreachable() {
            OriginFailure::Unreachable
        } else {
            OriginFailure::ErrorStatus
        };
        stands_in(object, request, failure)
    }

    fn usable_while_loading(&self, object: &Arc<CachedObject>, request: &RequestHead) -> bool {
        // A load slower than the waiter's bound is treated like an origin that cannot be
        // reached: what may stand in for it (max-stale, stale-if-error, grace) serves meanwhile.
        stands_in(object, request, OriginFailure::Unreachable)
    }

    fn background_request(&self, request: &RequestHead) -> RequestHead {
        request.without_credentials()
    }

    async fn load_source(
        &self,
        key: &CacheKey,
        request: &RequestHead,
        current: Option<Arc<CachedObject>>,
    ) -> Result<Source<Arc<CachedObject>, PassResponse>, OriginError> {
        let loaded = self.load(key, request, current.as_deref()).await;
        if let Err(error) = &loaded {
            // Once per load, however many clients wait on it.
            self.origin.log_failure(key, error);
        }
        loaded
    }
}

// === impl OriginLoader (the load) ===

impl OriginLoader {
    /// Loads `key` for `request` from the origin: revalidating `current`'s variant where it has
    /// a validator, completing stored parts where there are some, else asking for the whole.
    async fn load(
        &self,
        key: &CacheKey,
        request: &RequestHead,
        current: Option<&CachedObject>,
    ) -> Result<Source<Arc<CachedObject>, PassResponse>, OriginError> {
        let stored = current
            .and_then(|object| object.select(&request.headers))
            .filter(|variant| variant.policy.has_validator());
        let completable = current.is_none().then(|| self.completable(key, request));
        let mut exchange = match (completable.flatten(), stored) {
            (Some((parts, first, last)), _) => {
                match self.complete(key, request, &parts, (first, last)).await? {
                    Completion::Whole(variant) => {
                        let object = CachedObject::with_variant(None, variant);
                        return Ok(Source::Fetched(Arc::new(object)));
                    }
                    Completion::Answered(exchange) => exchange,
                }
            }
            (None, Some(stored)) => self.fetch(request, Asking::Revalidating(stored)).await?,
            (None, None) => self.fetch(request, Asking::Whole).await?,
        };
        if exchange.response.status() == StatusCode::NOT_MODIFIED {
            if let Some(stored) = stored {
                if not_modified_selects(|name| stored.field(name), exchange.response.headers()) {
                    let variant = self.freshen(stored, request, &exchange);
                    // The 304's fields replace the stored ones (§4.3.4); if they now forbid
                    // storing the response (e.g. `private`, `no-store`), it is this client's
                    // answer alone, like a 200 saying the same.
                    if let Err(reason) = variant.policy.storable() {
                        return Ok(self.unshared(
                            request,
                            whole_response(&variant),
                            NotStored::Refused(reason),
                        ));
                    }
                    let object = CachedObject::with_variant(current, variant);
                    return Ok(Source::Revalidated(Arc::new(object)));
                }
            }
            // A 304 that does not fit what is stored (RFC 9111 §4.3.4: it must not update it):
            // ask again, unconditionally.
            exchange = self.fetch(request, Asking::Whole).await?;
        }
        if is_error_status(exchange.response.status())
            && !self.stores_error(current, request, &exchange)
        {
            return Err(self.error_status(request, exchange).await);
        }
        self.admit(current, request, exchange).await
    }
}

/// RFC 9110 §6.6.1: a recipient with a clock that caches or forwards a response without `Date`
/// records when it arrived (`response_time`) as its `Date`.
pub(crate) fn date_if_missing(headers: &mut HeaderMap, response_time: SystemTime) {
    if !headers.contains_key(header::DATE) {
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(response_time))
            .expect("an HTTP-date is a valid header value");
        headers.insert(header::DATE, date);
    }
}

/// A response carrying a whole variant, for a client that may not share it.
fn whole_response(variant: &Variant) -> Response<Body> {
    let mut response = Response::new(Body::full(variant.body.clone()));
    *response.status_mut() = variant.status;
    *response.headers_mut() = variant.headers();
    response
}

/// Whether the response `object` holds for `request` may stand in when the origin failed so.
fn stands_in(object: &CachedObject, request: &RequestHead, failure: OriginFailure) -> bool {
    object.select(&request.headers).is_some_and(|variant| {
        variant
            .policy
            .usable_on_error(&request.directives, failure, SystemTime::now())
    })
}
