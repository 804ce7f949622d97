//! The load phase: the request the store could not serve goes to the cache's single-flight load,
//! or (a `no-store` request) to the origin for this client alone.

use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response};

use super::HttpCache;
use super::decision::{Decision, PassEnd, PassReason, Passed};
use super::request::RequestHead;
use super::respond::{self, Answered};
use crate::body::Body;
use crate::cache::loading::Source;
use crate::origin::OriginClient;
use crate::origin::headers::remove_hop_by_hop;

/// Loads `head`'s request from the origin for its client alone: a `no-store` request, which
/// neither joins a shared load nor stores what it gets (RFC 9111 §5.2.1.5).
pub(crate) async fn unstored(cache: &HttpCache, head: &RequestHead) -> Answered {
    let passed = |end| {
        Decision::Passed(Passed {
            why: PassReason::NoStore,
            end,
        })
    };
    match cache.load_uncached(&head.key, head).await {
        Ok(Source::Fetched(object) | Source::Revalidated(object)) => {
            respond::from_store(&object, head, SystemTime::now(), |variant, _| {
                passed(PassEnd::Answered(variant.status))
            })
        }
        Ok(Source::Private { answer: pass, .. }) => {
            respond::around_the_cache(pass.response, &head.method, PassReason::NoStore)
        }
        Err(error) => respond::around_the_cache_failed(&error, &head.method, PassReason::NoStore),
    }
}

/// Sends `head`'s `Range` request to the origin as it came, `Range` included, and passes the
/// answer (typically a 206) on: its response would not be stored anyway (see
/// [`Looked::RangeAround`](super::lookup::Looked::RangeAround)), so the origin need not send the
/// whole representation.
pub(crate) async fn range_around(origin: &OriginClient, head: &RequestHead) -> Answered {
    let mut request = Request::new(Body::empty());
    *request.method_mut() = head.method.clone();
    *request.uri_mut() = head.origin_uri();
    *request.headers_mut() = head.forwarded_headers();
    match origin.send(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            let body = origin.stream_body(Bytes::new(), body);
            let response = Response::from_parts(parts, body);
            respond::around_the_cache(response, &head.method, PassReason::Unstorable)
        }
        Err(error) => {
            respond::around_the_cache_failed(&error, &head.method, PassReason::Unstorable)
        }
    }
}
