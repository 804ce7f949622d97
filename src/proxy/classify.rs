//! The first phases, guard and classify: what the proxy will not forward is answered here, and
//! the rest is keyed and sorted into the requests the cache answers and those that go around it.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};

use super::ClientCacheControl;
use super::decision::Decision;
use super::request::{CarriedFields, Class, RequestHead};
use super::respond;
use super::settings::RequestSettings;
use crate::body::Body;
use crate::telemetry::logs::TraceIds;

/// What the request is, as far as the proxy is concerned.
pub(crate) enum Classified {
    /// Answered by sidecache itself: a refusal, or the final recipient of a `Max-Forwards`.
    Answered(Response<Body>, Decision),
    /// GET or HEAD: through the cache.
    Cacheable(RequestHead),
    /// Any other method, or a GET with preconditions only the origin judges: around the cache.
    Pass {
        /// The keyed request.
        head: RequestHead,
        /// The client's HTTP version (a refused body closes an HTTP/1.x connection).
        version: Version,
        /// Whether a success invalidates what it touched (the unsafe methods).
        invalidates: bool,
    },
}

/// Guards the request against `limits`, keys it, and classifies it. `carried` is what one pass
/// over its fields found; `unsampled` the trace ids to pass on when no span of ours does.
pub(crate) fn classify(
    limits: &RequestSettings,
    mut parts: Parts,
    carried: CarriedFields,
    client: IpAddr,
    unsampled: Option<TraceIds>,
) -> Classified {
    if parts.headers.len() > limits.max_headers {
        return refused(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many header fields\n",
        );
    }
    if parts.method == Method::CONNECT {
        return refused(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n");
    }
    let Some(target) = parts.uri.path_and_query() else {
        // Authority-form (`GET host:port`) belongs to CONNECT alone (RFC 9112 §3.2.3).
        return refused(StatusCode::BAD_REQUEST, "request target has no path\n");
    };
    if target.as_str().len() as u64 > limits.max_uri_bytes {
        return refused(StatusCode::URI_TOO_LONG, "request target too long\n");
    }
    if parts.method == Method::TRACE && !limits.allow_trace {
        let decision = Decision::TraceRefused;
        return Classified::Answered(respond::trace_refused(&decision), decision);
    }
    if parts.method == Method::OPTIONS || parts.method == Method::TRACE {
        // RFC 9110 §7.6.2: an intermediary checks and updates Max-Forwards on these two
        // methods; at zero it must not forward but answer as the final recipient.
        match max_forwards(&parts.headers) {
            Some(0) => {
                let decision = Decision::FinalRecipient;
                let response = respond::final_recipient(&parts.method, &decision);
                return Classified::Answered(response, decision);
            }
            Some(left) => {
                parts
                    .headers
                    .insert(header::MAX_FORWARDS, HeaderValue::from(left - 1));
            }
            None => {}
        }
    }
    let version = parts.version;
    let Ok(head) = RequestHead::new(parts.method, &parts.uri, parts.headers, carried, client)
    else {
        return refused(StatusCode::BAD_REQUEST, "missing or invalid Host\n");
    };
    let mut head = head.passing_on(unsampled);
    if limits.client_cache_control == ClientCacheControl::Ignore {
        head = head.ignoring_cache_directives();
    }
    match Class::of(&head.method, head.carried) {
        // A body on a GET or HEAD has no defined meaning; it is not forwarded to a shared load.
        Class::Cacheable => Classified::Cacheable(head),
        class @ (Class::Unsafe | Class::Pass) => Classified::Pass {
            head,
            version,
            invalidates: class == Class::Unsafe,
        },
    }
}

/// A guard's refusal: `code` and `text`, never forwarded.
fn refused(code: StatusCode, text: &'static str) -> Classified {
    let decision = Decision::Refused;
    Classified::Answered(respond::own(code, text, &decision.cache_status()), decision)
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
