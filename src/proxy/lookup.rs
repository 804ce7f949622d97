//! The lookup phase: what the store alone says for a cacheable request, without waiting.

use std::sync::Arc;

use http::Method;

use super::HttpCache;
use super::config::RangeMiss;
use super::part_store::PartStore;
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
    /// A `Range` request whose response would not be stored (a `no-store` request, or a `HEAD`
    /// for a URL marked hit-for-miss): sent to the origin with its `Range`, so the origin sends
    /// only the bytes asked for.
    RangeAround,
    /// A `Range` `GET` for a URL with no whole response stored, to be answered from its stored
    /// parts (see [`partial`](super::partial)): the URL is marked hit-for-miss (its whole
    /// response was not stored, typically too large), or `--range-miss part`.
    FromParts,
    /// A load is needed (or another caller's load under way is joined).
    Load(Miss<Arc<CachedObject>>),
}

/// Looks `head` up in `cache` (and, for a `Range` request that misses, in `parts`).
pub(crate) fn lookup(cache: &HttpCache, parts: &PartStore, head: &RequestHead) -> Looked {
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
        Lookup::Load(miss) if head.carried.range => missed_range(cache, parts, head, miss),
        Lookup::Load(miss) => Looked::Load(miss),
    }
}

/// What a `Range` request the store could not serve does.
fn missed_range(
    cache: &HttpCache,
    parts: &PartStore,
    head: &RequestHead,
    miss: Miss<Arc<CachedObject>>,
) -> Looked {
    let hit_for_miss = cache.is_hit_for_miss(&head.key);
    // A stale whole response is revalidated whole rather than abandoned for parts.
    let parts_wanted =
        hit_for_miss || (miss.held_nothing() && parts.settings().range_miss == RangeMiss::Part);
    match (parts_wanted, head.method == Method::GET) {
        (true, true) => Looked::FromParts,
        // Only GET has range semantics: a HEAD's answer has no part to store.
        (true, false) if hit_for_miss => Looked::RangeAround,
        _ => Looked::Load(miss),
    }
}
