//! The lookup phase: what the store alone says for a cacheable request, without waiting.

use std::sync::Arc;

use super::HttpCache;
use super::request::RequestHead;
use crate::cache::loading::{Judgement, LoadOutcome, Lookup, Miss};
use crate::cache::outcome::{Outcome, Served};
use crate::http::stored::object::CachedObject;
use crate::proxy::loader::OriginLoader;

/// What the store said.
pub(crate) enum Looked {
    /// It serves the request (fresh, or stale while one background refresh runs).
    Served(LoadOutcome<OriginLoader>),
    /// The request is `only-if-cached` and nothing stored serves it.
    NotCached,
    /// The request is `no-store` and nothing stored serves it: loaded for this client alone.
    Unstored,
    /// A `Range` request whose response would not be stored (`no-store`, or a URL marked
    /// hit-for-miss): sent to the origin with its `Range`, so the origin sends only the bytes
    /// asked for.
    RangeAround,
    /// A load is needed (or another caller's load under way is joined).
    Load(Miss<Arc<CachedObject>>),
}

/// Looks `head` up in `cache`.
pub(crate) fn lookup(cache: &HttpCache, head: &RequestHead) -> Looked {
    let directives = &head.directives;
    if directives.only_if_cached || directives.no_store {
        // Only a fresh stored response may serve these: neither may start a shared load.
        if let Some((object, Judgement::Fresh)) = cache.peek(&head.key, head) {
            return Looked::Served(Outcome::of(Served::Hit(object)));
        }
        // RFC 9111 §5.2.1.7: nothing stored satisfies only-if-cached. §5.2.1.5: neither a
        // no-store request nor its response may be stored.
        return if directives.only_if_cached {
            Looked::NotCached
        } else if head.carried.range {
            Looked::RangeAround
        } else {
            Looked::Unstored
        };
    }
    match cache.lookup(&head.key, head) {
        Lookup::Served(outcome) => Looked::Served(outcome),
        Lookup::Load(_) if head.carried.range && cache.is_hit_for_miss(&head.key) => {
            Looked::RangeAround
        }
        Lookup::Load(miss) => Looked::Load(miss),
    }
}
