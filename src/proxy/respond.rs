//! Turning decisions into responses: the outcome of the cache, stored responses (with
//! conditional, range and HEAD handling), pass-through responses, and sidecache's own answers.
//! The one place where decisions and errors become responses; it has no side effects, and every
//! `Cache-Status` it writes is derived from the [`Decision`] it returns or is given.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use tracing::Span;

use super::cache_status::{CACHE_STATUS, CacheStatus};
use super::decision::{Cached, Decision, Failure, Loaded, PassEnd, PassReason, Passed, ServedFrom};
use super::loader::OriginLoader;
use super::recent_values;
use super::request::RequestHead;
use crate::body::Body;
use crate::cache::loading::LoadOutcome;
use crate::cache::outcome::{Outcome, Served, WaitResult};
use crate::http::conditional::{self, Precondition};
use crate::http::directives::SIDECACHE_CACHE_CONTROL;
use crate::http::range::{self, RangeAnswer};
use crate::http::stored::answer_fields::Added;
use crate::http::stored::object::{CachedObject, Variant};
use crate::http::stored::parts::StoredParts;
use crate::origin::OriginError;
use crate::origin::headers::{VIA_ENTRY, append_via};

/// A response, with what was decided for it and (for a request that waited on another's load)
/// the span that load ran in.
pub(crate) struct Answered {
    /// What the client gets.
    pub response: Response<Body>,
    /// What was decided: everything reported about the request is derived from it.
    pub decision: Decision,
    /// The span of the load waited on, for the request's span to link to.
    pub leader: Option<Span>,
}

impl Answered {
    /// `response`, decided as `decision`, waiting on nobody's load.
    pub(crate) fn new(response: Response<Body>, decision: Decision) -> Self {
        Self {
            response,
            decision,
            leader: None,
        }
    }
}

/// The response for what the cache core gave `head`'s request.
pub(crate) fn outcome(head: &RequestHead, outcome: LoadOutcome<OriginLoader>) -> Answered {
    let Outcome {
        served,
        found,
        bypassed,
        waited,
        dropped,
    } = outcome;
    let (waited, leader) = match waited {
        Some(waited) => (Some(waited.result), waited.leader),
        None => (None, None),
    };
    let decided = |served: ServedFrom| {
        Decision::Cached(Cached {
            served,
            found,
            bypassed,
            waited,
            dropped,
        })
    };
    let now = SystemTime::now();
    let answered = match served {
        Served::Hit(object) => from_store(&object, head, now, |_, ttl| {
            decided(ServedFrom::Hit { ttl })
        }),
        Served::StaleWhileRefresh(object) => from_store(&object, head, now, |_, ttl| {
            decided(ServedFrom::StaleWhileRefresh { ttl })
        }),
        Served::StaleWhileLoading(object) => from_store(&object, head, now, |_, ttl| {
            decided(ServedFrom::StaleWhileLoading { ttl })
        }),
        Served::Fetched(object) => from_store(&object, head, now, |variant, ttl| {
            decided(ServedFrom::Fetched(Loaded {
                status: variant.status,
                ttl,
            }))
        }),
        Served::Revalidated(object) => from_store(&object, head, now, |_, ttl| {
            decided(ServedFrom::Revalidated { ttl })
        }),
        Served::Shared(object) => from_store(&object, head, now, |variant, ttl| {
            decided(ServedFrom::Shared(Loaded {
                status: variant.status,
                ttl,
            }))
        }),
        Served::StandIn(object, error) => from_store(&object, head, now, |_, ttl| {
            decided(ServedFrom::StandIn {
                ttl,
                failure: Failure::from(&*error),
            })
        }),
        Served::Private(pass) => {
            let decision = decided(ServedFrom::Private {
                status: pass.response.status(),
                not_stored: pass.not_stored,
            });
            let response = passed(pass.response, &head.method, &decision.cache_status());
            Answered::new(response, decision)
        }
        Served::Failed(error) => {
            let decision = decided(ServedFrom::Failed(Failure::from(&*error)));
            let audience = match waited {
                // The origin's error reaches a waiter only through its leader's load.
                Some(WaitResult::LeaderError) => Audience::Waiter,
                _ => Audience::Requester,
            };
            let response = origin_failed(&error, &head.method, &decision.cache_status(), audience);
            Answered::new(response, decision)
        }
        Served::Busy => {
            let decision = decided(ServedFrom::Busy);
            let mut response = own(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests waiting for this URL; retry shortly\n",
                &decision.cache_status(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Answered::new(response, decision)
        }
        Served::TimedOut => {
            let decision = decided(ServedFrom::TimedOut);
            let response = own(
                StatusCode::GATEWAY_TIMEOUT,
                "origin timed out\n",
                &decision.cache_status(),
            );
            Answered::new(response, decision)
        }
    };
    Answered { leader, ..answered }
}

/// The response from `object`'s variant for `head`, decided by `decide` from the variant and its
/// remaining freshness at `now`.
pub(crate) fn from_store(
    object: &CachedObject,
    head: &RequestHead,
    now: SystemTime,
    decide: impl FnOnce(&Variant, i64) -> Decision,
) -> Answered {
    let Some(variant) = object.select(&head.headers) else {
        return unselectable();
    };
    let decision = decide(variant, variant.policy.ttl_seconds(now));
    let response = stored(variant, head, &decision.cache_status(), now);
    Answered::new(response, decision)
}

/// sidecache's 504 for `only-if-cached` when nothing stored serves (RFC 9111 §5.2.1.7).
pub(crate) fn not_cached() -> Answered {
    let decision = Decision::NotCached;
    let response = own(
        StatusCode::GATEWAY_TIMEOUT,
        "not in cache\n",
        &decision.cache_status(),
    );
    Answered::new(response, decision)
}

/// sidecache's own answer to an OPTIONS or TRACE whose `Max-Forwards` reached zero. OPTIONS is
/// answered 200. TRACE would be reflected back (a SHOULD, RFC 9110 §9.3.8); sidecache does not
/// echo requests, so it answers 405 with the one method it answers itself.
pub(crate) fn final_recipient(method: &Method, decision: &Decision) -> Response<Body> {
    let status = decision.cache_status();
    if *method == Method::OPTIONS {
        let mut response = own(StatusCode::OK, "", &status);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        return response;
    }
    let mut response = own(
        StatusCode::METHOD_NOT_ALLOWED,
        "TRACE is not answered by sidecache\n",
        &status,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("OPTIONS"));
    response
}

/// 405 for a TRACE (unless `--allow-trace`): it would echo the request, credentials included.
pub(crate) fn trace_refused(decision: &Decision) -> Response<Body> {
    let mut response = own(
        StatusCode::METHOD_NOT_ALLOWED,
        "TRACE is not forwarded\n",
        &decision.cache_status(),
    );
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, OPTIONS, POST, PUT, DELETE, PATCH"),
    );
    response
}

/// sidecache's answer `(code, text)` to a request body it would not pass on; the rest of the
/// body is not read, so an HTTP/1.x connection closes after it.
pub(crate) fn body_refused(
    (code, text): (StatusCode, &'static str),
    version: Version,
    decision: &Decision,
) -> Response<Body> {
    let mut response = own(code, text, &decision.cache_status());
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A stored object that has no response for the request that loaded it: a bug, answered
/// cleanly rather than with a panic.
pub(crate) fn unselectable() -> Answered {
    tracing::error!("a loaded object had no variant for its own request");
    let decision = Decision::Unselectable;
    let response = own(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error\n",
        &decision.cache_status(),
    );
    Answered::new(response, decision)
}

/// Answers `method` with the stored `variant`, honouring the request's conditional and range
/// fields (RFC 9110 §13, §14; RFC 9111 §4.3.2).
pub(crate) fn stored(
    variant: &Variant,
    request: &RequestHead,
    status: &CacheStatus,
    now: SystemTime,
) -> Response<Body> {
    let method = &request.method;
    let mut headers = variant.answer_headers(Added {
        age: {
            let seconds = variant.policy.age_header_seconds(now);
            recent_values::age(seconds, || integer_value(seconds))
        },
        via: HeaderValue::from_static(VIA_ENTRY),
        cache_status: status.to_header_value(),
    });
    if request.carried.validators
        && conditional::evaluate(method, &request.headers, variant.status, &headers)
            == Precondition::NotModified
    {
        let headers = conditional::not_modified_headers(headers);
        return response(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }
    let body_len = variant.body.len() as u64;
    let range = if request.carried.range {
        range::evaluate(method, &request.headers, variant.status, &headers, body_len)
    } else {
        RangeAnswer::Full
    };
    let (code, body) = match range {
        RangeAnswer::Full => (variant.status, variant.body.clone()),
        RangeAnswer::Partial { start, end } => {
            let slice = variant.body.slice(start as usize..=end as usize);
            partial_content(&mut headers, start, slice, body_len)
        }
        RangeAnswer::Unsatisfiable => range_not_satisfiable(&mut headers, body_len),
    };
    if code != StatusCode::RANGE_NOT_SATISFIABLE && !headers.contains_key(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, integer_value(body.len() as u64));
    }
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        Body::full(body)
    };
    response(code, headers, body)
}

/// What an answer from stored parts carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PartAnswer {
    /// A `206` with `bytes` from offset `start`.
    Bytes {
        /// Offset of the first byte.
        start: u64,
        /// The bytes.
        bytes: Bytes,
    },
    /// A `416` naming the representation's length.
    Unsatisfiable,
    /// A `304`: the client's validators match the parts' (RFC 9110 §13.2.2 puts this before
    /// `Range`).
    NotModified,
}

/// Answers a `GET` from stored parts.
pub(crate) fn from_parts(
    stored: &StoredParts,
    answer: PartAnswer,
    status: &CacheStatus,
    now: SystemTime,
) -> Response<Body> {
    let mut headers = strip_own_fields(stored.headers().clone());
    let age = stored.policy().age_header_seconds(now);
    headers.insert(header::AGE, integer_value(age));
    let length = stored.length();
    let (code, body) = match answer {
        PartAnswer::Bytes { start, bytes } => partial_content(&mut headers, start, bytes, length),
        PartAnswer::Unsatisfiable => range_not_satisfiable(&mut headers, length),
        PartAnswer::NotModified => {
            headers = conditional::not_modified_headers(headers);
            (StatusCode::NOT_MODIFIED, Bytes::new())
        }
    };
    finish(code, headers, Body::full(body), status)
}

/// A 206 of `bytes` from offset `start` of content `length` bytes long: its status and body,
/// its `Content-Range` and `Content-Length` set in `headers` (RFC 9110 §15.3.7).
fn partial_content(
    headers: &mut HeaderMap,
    start: u64,
    bytes: Bytes,
    length: u64,
) -> (StatusCode, Bytes) {
    let end = start + bytes.len() as u64 - 1;
    headers.insert(
        header::CONTENT_RANGE,
        range::content_range(start, end, length),
    );
    headers.insert(header::CONTENT_LENGTH, integer_value(bytes.len() as u64));
    (StatusCode::PARTIAL_CONTENT, bytes)
}

/// A 416 for content `length` bytes long: its status and (empty) body, its `Content-Range` and
/// `Content-Length` set in `headers` (RFC 9110 §15.5.17).
fn range_not_satisfiable(headers: &mut HeaderMap, length: u64) -> (StatusCode, Bytes) {
    headers.insert(header::CONTENT_RANGE, range::unsatisfied_range(length));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
}

/// Passes an origin response through to the client (for a HEAD, without its body).
pub(crate) fn passed(
    response: Response<Body>,
    method: &Method,
    status: &CacheStatus,
) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        body
    };
    finish(parts.status, strip_own_fields(parts.headers), body, status)
}

/// The answer to a request sent around the cache for `why`: the origin's `response`, passed on.
pub(crate) fn around_the_cache(
    response: Response<Body>,
    method: &Method,
    why: PassReason,
) -> Answered {
    let decision = Decision::Passed(Passed {
        why,
        end: PassEnd::Answered(response.status()),
    });
    let response = passed(response, method, &decision.cache_status());
    Answered::new(response, decision)
}

/// The answer to a request sent around the cache for `why` whose origin request failed.
pub(crate) fn around_the_cache_failed(
    error: &OriginError,
    method: &Method,
    why: PassReason,
) -> Answered {
    let decision = Decision::Passed(Passed {
        why,
        end: PassEnd::Failed(Failure::from(error)),
    });
    let response = origin_failed(error, method, &decision.cache_status(), Audience::Requester);
    Answered::new(response, decision)
}

/// Who an answer to a failed origin request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// The client whose request the origin answered.
    Requester,
    /// A client that waited on another client's load.
    Waiter,
}

/// The answer to a client when the origin failed and nothing could stand in: the origin's own
/// server error where it sent one, else 502 or 504.
///
/// A waiter is given the origin's answer only when it may be shared
/// ([`OriginError::is_shareable`]); otherwise sidecache's own 502, with nothing of the origin's.
/// An origin body longer than what was kept of it is sent as far as it was kept and then broken
/// off, never as a shorter complete answer.
pub(crate) fn origin_failed(
    error: &OriginError,
    method: &Method,
    status: &CacheStatus,
    audience: Audience,
) -> Response<Body> {
    if let crate::origin::OriginErrorKind::ErrorStatus(answer) = error.kind() {
        if audience == Audience::Waiter && !answer.shareable {
            return own(StatusCode::BAD_GATEWAY, "origin error\n", status);
        }
        let mut headers = strip_own_fields(answer.headers.clone());
        let body = if *method == Method::HEAD {
            Body::empty()
        } else if answer.truncated {
            Body::cut_short(answer.body.clone())
        } else {
            Body::full(answer.body.clone())
        };
        if !answer.truncated {
            headers.insert(
                header::CONTENT_LENGTH,
                integer_value(answer.body.len() as u64),
            );
        }
        return finish(answer.status, headers, body, status);
    }
    let text = match error.client_status() {
        StatusCode::GATEWAY_TIMEOUT => "origin timed out\n",
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large\n",
        StatusCode::SERVICE_UNAVAILABLE => "origin busy; retry shortly\n",
        _ => "origin unavailable\n",
    };
    let mut response = own(error.client_status(), text, status);
    if error.client_status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// An answer sidecache makes itself (e.g. 400 for a request without a host, 504 for
/// `only-if-cached` with nothing stored).
pub(crate) fn own(code: StatusCode, text: &'static str, status: &CacheStatus) -> Response<Body> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    finish(
        code,
        headers,
        Body::full(Bytes::from_static(text.as_bytes())),
        status,
    )
}

/// A field value holding `number`, in one allocation (`HeaderValue::from(u64)` makes two).
fn integer_value(number: u64) -> HeaderValue {
    HeaderValue::from_bytes(itoa::Buffer::new().format(number).as_bytes())
        .expect("digits are a valid field value")
}

/// Removes what only sidecache may see from fields that did not come from the store (which
/// keeps them apart already).
fn strip_own_fields(mut headers: HeaderMap) -> HeaderMap {
    headers.remove(SIDECACHE_CACHE_CONTROL);
    headers
}

/// Adds what every answer carries (an answer from the store has it from its template) and
/// makes the response.
fn finish(
    code: StatusCode,
    mut headers: HeaderMap,
    body: Body,
    status: &CacheStatus,
) -> Response<Body> {
    append_via(&mut headers);
    headers.append(CACHE_STATUS, status.to_header_value());
    response(code, headers, body)
}

/// The response of `code`, `headers` (complete) and `body`.
fn response(code: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = code;
    *response.headers_mut() = headers;
    response
}
