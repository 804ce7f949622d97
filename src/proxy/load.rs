//! The load phase: the request the store could not serve goes to the cache's single-flight load,
//! or (a `no-store` request) to the origin for this client alone.

use std::time::SystemTime;

use super::HttpCache;
use super::decision::{Decision, PassEnd, PassReason, Passed};
use super::request::RequestHead;
use super::respond::{self, Answered};
use crate::cache::loading::Source;

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
