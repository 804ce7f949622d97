//! Turning decisions into responses: stored responses (with conditional, range and HEAD
//! handling), pass-through responses, and sidecache's own error answers. The one place where
//! errors become responses; it has no side effects.

use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::cache_status::{CACHE_STATUS, CacheStatus};
use super::recent_values;
use super::request::RequestHead;
use crate::body::Body;
use crate::http::conditional::{self, Precondition};
use crate::http::directives::SIDECACHE_CACHE_CONTROL;
use crate::http::range::{self, RangeAnswer};
use crate::http::stored::answer_fields::Added;
use crate::http::stored::object::Variant;
use crate::origin::OriginError;
use crate::origin::headers::{VIA_ENTRY, append_via};

/// Answers `method` with the stored `variant`, honouring the request's conditional and range
/// fields (RFC 9110 §13, §14; RFC 9111 §4.3.2).
pub fn stored(
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
            headers.insert(
                header::CONTENT_RANGE,
                range::content_range(start, end, body_len),
            );
            headers.insert(header::CONTENT_LENGTH, integer_value(end - start + 1));
            let slice = variant.body.slice(start as usize..=end as usize);
            (StatusCode::PARTIAL_CONTENT, slice)
        }
        RangeAnswer::Unsatisfiable => {
            headers.insert(header::CONTENT_RANGE, range::unsatisfied_range(body_len));
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
        }
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

/// Passes an origin response through to the client (for a HEAD, without its body).
pub fn passed(response: Response<Body>, method: &Method, status: &CacheStatus) -> Response<Body> {
    let (parts, body) = response.into_parts();
    let body = if *method == Method::HEAD {
        Body::empty()
    } else {
        body
    };
    finish(parts.status, strip_own_fields(parts.headers), body, status)
}

/// Who an answer to a failed origin request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
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
pub fn origin_failed(
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
pub fn own(code: StatusCode, text: &'static str, status: &CacheStatus) -> Response<Body> {
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
