//! Requests that go around the cache: unsafe and uncacheable methods, sent to the origin with
//! their bodies streamed both ways, a success of an unsafe method invalidating what it touched
//! (RFC 9111 §4.4); and `Range` requests whose response would not be stored.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::decision::{Decision, PassEnd, PassReason, Passed};
use super::purge::Purger;
use super::request::RequestHead;
use super::respond::{self, Answered};
use super::settings::RequestSettings;
use crate::body::{Body, Guard, RequestBody};
use crate::origin::headers::remove_hop_by_hop;
use crate::origin::{OriginClient, OriginError, OriginErrorKind};

/// Sends `head`'s request with `body` to `origin`. A body larger than the limit is refused
/// (413) before the origin is asked if its length says so, else cut off when it passes the limit,
/// which abandons the origin request (413 too); a body that stalls is cut off the same way (408).
/// With `invalidates`, a non-error answer removes what it touched, through `purger`.
pub(crate) async fn forward(
    origin: &OriginClient,
    limits: &RequestSettings,
    purger: &Purger,
    head: RequestHead,
    version: Version,
    body: RequestBody,
    invalidates: bool,
) -> Answered {
    let limit = limits.max_body_bytes;
    if body.size_hint().lower() > limit {
        return body_too_large(version);
    }
    let guard = Guard {
        limit: Some(limit),
        read_timeout: Some(limits.body_timeout),
    };
    match send(origin, &head, body.guarded(Bytes::new(), guard)).await {
        Ok(response) => {
            // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI
            // and the same-origin URIs in Location and Content-Location.
            let status = response.status();
            if invalidates && (status.is_success() || status.is_redirection()) {
                purger.after_unsafe(&head.key, response.headers());
            }
            respond::around_the_cache(response, &head.method, PassReason::Method)
        }
        Err(error) if matches!(error.kind(), OriginErrorKind::RequestBodyTooLarge) => {
            body_too_large(version)
        }
        Err(error) if matches!(error.kind(), OriginErrorKind::RequestBodyTimeout) => {
            body_timed_out(version)
        }
        Err(error) if matches!(error.kind(), OriginErrorKind::RequestBodyMalformed) => {
            body_malformed(version)
        }
        Err(error) => respond::around_the_cache_failed(&error, &head.method, PassReason::Method),
    }
}

/// Sends `head`'s `Range` request to the origin as it came, `Range` included, and passes the
/// answer (typically a 206) on: its response would not be stored anyway (see
/// [`Looked::RangeAround`](super::lookup::Looked::RangeAround)), so the origin need not send the
/// whole representation.
pub(crate) async fn range(origin: &OriginClient, head: &RequestHead) -> Answered {
    match send(origin, head, Body::empty()).await {
        Ok(response) => respond::around_the_cache(response, &head.method, PassReason::Unstorable),
        Err(error) => {
            respond::around_the_cache_failed(&error, &head.method, PassReason::Unstorable)
        }
    }
}

/// Sends `head`'s request with `body` to `origin` with the client's end-to-end fields, and gives
/// back the origin's response without its hop-by-hop fields, its body streamed through.
async fn send(
    origin: &OriginClient,
    head: &RequestHead,
    body: Body,
) -> Result<Response<Body>, OriginError> {
    let response = exchange(origin, head, head.forwarded_headers(), body).await?;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        origin.stream_body(Bytes::new(), body),
    ))
}

/// Sends `head`'s request to `origin` with `headers` and `body`, and gives back the origin's
/// response without its hop-by-hop fields, its body not yet read. A failure is logged here,
/// once.
pub(crate) async fn exchange(
    origin: &OriginClient,
    head: &RequestHead,
    headers: HeaderMap,
    body: Body,
) -> Result<Response<Incoming>, OriginError> {
    let mut request = Request::new(body);
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.origin_uri();
    *request.headers_mut() = headers;
    let mut response = origin.send(request).await.inspect_err(|error| {
        origin.log_failure(&head.key, error);
    })?;
    remove_hop_by_hop(response.headers_mut());
    Ok(response)
}

/// 413 for a request body past `--max-request-body`.
fn body_too_large(version: Version) -> Answered {
    body_refused(
        (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
        "request-body-too-large",
        version,
    )
}

/// 408 for a request body that paused longer than `--client-body-timeout` (as nginx answers at
/// `client_body_timeout`).
fn body_timed_out(version: Version) -> Answered {
    body_refused(
        (StatusCode::REQUEST_TIMEOUT, "request body timed out\n"),
        "request-body-timeout",
        version,
    )
}

/// 400 for a request body whose framing was broken (or that ended before its declared length):
/// the client's fault, not the origin's.
fn body_malformed(version: Version) -> Answered {
    body_refused(
        (StatusCode::BAD_REQUEST, "request body malformed\n"),
        "request-body-malformed",
        version,
    )
}

fn body_refused(
    answer: (StatusCode, &'static str),
    detail: &'static str,
    version: Version,
) -> Answered {
    let decision = Decision::Passed(Passed {
        why: PassReason::Method,
        end: PassEnd::BodyRefused(detail),
    });
    let response = respond::body_refused(answer, version, &decision);
    Answered::new(response, decision)
}
