//! Requests that go around the cache: unsafe and uncacheable methods, sent to the origin with
//! their bodies streamed both ways; a success of an unsafe method invalidates what it touched
//! (RFC 9111 §4.4).

use bytes::Bytes;
use http::{Request, StatusCode, Version};

use super::decision::{Decision, PassEnd, PassReason, Passed};
use super::purge::Purger;
use super::request::RequestHead;
use super::respond::{self, Answered};
use super::settings::RequestSettings;
use crate::body::{Guard, RequestBody};
use crate::origin::headers::remove_hop_by_hop;
use crate::origin::{OriginClient, OriginErrorKind};

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
    let mut request = Request::new(body.guarded(Bytes::new(), guard));
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.origin_uri();
    *request.headers_mut() = head.forwarded_headers();
    match origin.send(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI
            // and the same-origin URIs in Location and Content-Location.
            if invalidates && (parts.status.is_success() || parts.status.is_redirection()) {
                purger.after_unsafe(&head.key, &parts.headers);
            }
            let body = origin.stream_body(Bytes::new(), body);
            let response = http::Response::from_parts(parts, body);
            respond::around_the_cache(response, &head.method, PassReason::Method)
        }
        Err(error) if matches!(error.kind(), OriginErrorKind::RequestBodyTooLarge) => {
            body_too_large(version)
        }
        Err(error) if matches!(error.kind(), OriginErrorKind::RequestBodyTimeout) => {
            body_timed_out(version)
        }
        Err(error) => respond::around_the_cache_failed(&error, &head.method, PassReason::Method),
    }
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
