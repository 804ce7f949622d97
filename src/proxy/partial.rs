//! The range phase: a `Range` request answered from the stored parts of a representation
//! (RFC 9111 §3.3-3.4), for a URL whose whole response is not stored, when
//! [`Looked::FromParts`](super::lookup::Looked::FromParts) says so.
//!
//! Fresh parts that cover the range answer it (a hit). Parts that miss some of its bytes ask the
//! origin for the span of them only, with `If-Range` naming the parts' validator, and answer from
//! the parts it completes (`fwd=partial`). Without fresh parts the client's own `Range` goes to
//! the origin, and its `206` is stored as a part. Once the parts hold every byte of a representation no larger
//! than `--max-object-size`, they are combined into a whole stored response. (A request without
//! `Range` completes parts through the loader instead, see
//! [`OriginLoader`](super::loader::OriginLoader).)

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::HttpCache;
use super::decision::{Cached, Decision, Loaded, NotStored, PassReason, ServedFrom};
use super::forward;
use super::loader::date_if_missing;
use super::part_store::{Kept, PartStore, RemovalMark};
use super::request::RequestHead;
use super::respond::{self, Answered, PartAnswer};
use crate::body::Body;
use crate::http::conditional::{self, Precondition};
use crate::http::policy::Reuse;
use crate::http::range::{self, RangeAnswer};
use crate::http::stored::object::CachedObject;
use crate::http::stored::parts::{Coverage, Part, StoredParts};
use crate::origin::Buffered;
use crate::store::Store;

/// What the origin is asked for.
enum Ask {
    /// The client's `Range`, as it came.
    AsSent,
    /// The span of bytes the stored parts lack, if the representation is still theirs.
    Missing {
        first: u64,
        last: u64,
        if_range: HeaderValue,
    },
}

/// A `206` that may be stored as a part, its body still to read.
struct Candidate {
    /// The part, without its body.
    part: Part,
    /// The offset of its last byte.
    last: u64,
}

/// A `206` read whole, whose part may be kept.
struct Arrived {
    /// The origin's response head, passed on when the parts cannot answer the client.
    response: http::response::Parts,
    /// The part, with its body.
    part: Part,
    /// Whether it was asked for to complete stored parts (`fwd=partial`).
    completing: bool,
}

/// Answers `head`'s `Range` request from the parts `parts` holds, asking the origin for what
/// they lack.
pub(crate) async fn answer(cache: &HttpCache, parts: &PartStore, head: &RequestHead) -> Answered {
    // Taken before anything is asked of the origin: see `PartStore::add`.
    let mark = parts.mark();
    let now = SystemTime::now();
    let fresh = parts
        .get(&head.key)
        .filter(|stored| stored.policy().reuse(&head.directives, now) == Reuse::Fresh);
    if let Some(stored) = fresh {
        let not_modified = head.carried.validators
            && conditional::evaluate(
                &Method::GET,
                &head.headers,
                StatusCode::OK,
                stored.headers(),
            ) == Precondition::NotModified;
        if not_modified {
            return from_parts(&stored, PartAnswer::NotModified, hit, now);
        }
        match wanted(head, &stored) {
            RangeAnswer::Partial { start, end } => match stored.coverage(start, end) {
                Coverage::Covered(bytes) => {
                    let answer = PartAnswer::Bytes { start, bytes };
                    return from_parts(&stored, answer, hit, now);
                }
                Coverage::Missing { start, end } => {
                    let ask = Ask::Missing {
                        first: start,
                        last: end,
                        if_range: stored.if_range().clone(),
                    };
                    return fetch(cache, parts, head, ask, mark).await;
                }
            },
            RangeAnswer::Unsatisfiable => {
                return from_parts(&stored, PartAnswer::Unsatisfiable, hit, now);
            }
            // If-Range does not hold for the parts, or several ranges: the origin decides.
            RangeAnswer::Full => {}
        }
    }
    fetch(cache, parts, head, Ask::AsSent, mark).await
}

/// What the client's `Range` asks of the representation the parts belong to.
fn wanted(head: &RequestHead, stored: &StoredParts) -> RangeAnswer {
    range::evaluate(
        &Method::GET,
        &head.headers,
        StatusCode::OK,
        stored.headers(),
        stored.length(),
    )
}

/// Asks the origin for `ask`; a `206` that may be stored as a part is read whole and goes to
/// [`keep_and_answer`]; anything else is passed on.
async fn fetch(
    cache: &HttpCache,
    parts: &PartStore,
    head: &RequestHead,
    ask: Ask,
    mark: RemovalMark,
) -> Answered {
    let origin = cache.loader().origin();
    let mut headers = head.forwarded_headers();
    let completing = matches!(ask, Ask::Missing { .. });
    if let Ask::Missing {
        first,
        last,
        if_range,
    } = ask
    {
        headers.insert(header::RANGE, range::byte_range(first, last));
        headers.insert(header::IF_RANGE, if_range);
    }
    let request_time = SystemTime::now();
    let response = match forward::exchange(origin, head, headers, Body::empty()).await {
        Ok(response) => response,
        Err(error) => {
            return respond::around_the_cache_failed(&error, &head.method, PassReason::Unstorable);
        }
    };
    let response_time = SystemTime::now();
    let (mut response, body) = response.into_parts();
    date_if_missing(&mut response.headers, response_time);
    let times = (request_time, response_time);
    if completing && response.status == StatusCode::OK {
        // If-Range did not hold: the parts belong to a representation the origin no longer has.
        parts.forget(&head.key);
    }
    let Some(candidate) = candidate(cache, parts, head, &response, times) else {
        let body = origin.stream_body(Bytes::new(), body);
        return pass(Response::from_parts(response, body), head);
    };
    let size = candidate.last - candidate.part.start + 1;
    let bytes = match origin.buffer_body(body, size, 0).await {
        Ok(Buffered::Complete(bytes)) => bytes.freeze(),
        // Longer than its Content-Range says: not a part to keep, but the origin's answer.
        Ok(Buffered::TooLarge { prefix, rest }) => {
            let body = origin.stream_body(prefix, rest);
            return pass(Response::from_parts(response, body), head);
        }
        Err(error) => {
            origin.log_failure(&head.key, &error);
            return respond::around_the_cache_failed(&error, &head.method, PassReason::Unstorable);
        }
    };
    if bytes.len() as u64 != size {
        return pass(Response::from_parts(response, Body::full(bytes)), head);
    }
    let part = Part {
        body: bytes,
        ..candidate.part
    };
    let arrived = Arrived {
        response,
        part,
        completing,
    };
    keep_and_answer(cache, parts, head, arrived, mark)
}

/// Keeps the part that `arrived` with what `parts` holds (unless a removal came after `mark`,
/// or it would make them too large), and answers the client's range from them; when they do not
/// cover it, the origin's `206` is passed on.
fn keep_and_answer(
    cache: &HttpCache,
    parts: &PartStore,
    head: &RequestHead,
    arrived: Arrived,
    mark: RemovalMark,
) -> Answered {
    let Arrived {
        response,
        part,
        completing,
    } = arrived;
    let bytes = part.body.clone();
    let passed_on = || pass(Response::from_parts(response, Body::full(bytes)), head);
    let Some(merged) = StoredParts::with(parts.get(&head.key).as_deref(), part) else {
        return passed_on();
    };
    let merged = Arc::new(merged);
    let kept = parts.keep(&head.key, Arc::clone(&merged), mark);
    if kept == Kept::Stored {
        combine_if_complete(cache, parts, head, &merged, mark);
    }
    // The client's range from the parts with the new one, kept or not.
    let RangeAnswer::Partial { start, end } = wanted(head, &merged) else {
        return passed_on();
    };
    let Coverage::Covered(range) = merged.coverage(start, end) else {
        return passed_on();
    };
    let status = StatusCode::PARTIAL_CONTENT;
    let decided = move |ttl| {
        let served = match kept {
            Kept::TooLarge => ServedFrom::Private {
                status,
                not_stored: NotStored::TooLarge,
            },
            Kept::Stored | Kept::Removed if completing => {
                ServedFrom::Completed(Loaded { status, ttl })
            }
            Kept::Stored | Kept::Removed => ServedFrom::Fetched(Loaded { status, ttl }),
        };
        cached(served, kept == Kept::Removed)
    };
    let answer = PartAnswer::Bytes {
        start,
        bytes: range,
    };
    from_parts(&merged, answer, decided, SystemTime::now())
}

/// The part `response` carries, when it may be stored as one (see [`Part::of_response`]): a
/// `206` to a `GET`, no longer than `--max-object-size`.
fn candidate(
    cache: &HttpCache,
    parts: &PartStore,
    head: &RequestHead,
    response: &http::response::Parts,
    times: (SystemTime, SystemTime),
) -> Option<Candidate> {
    if head.method != Method::GET {
        return None;
    }
    let settings = cache.loader().policy_for(head);
    let (part, last) = Part::of_response(response, &head.headers, times, &settings)?;
    (last - part.start < parts.settings().max_object_bytes).then_some(Candidate { part, last })
}

/// Stores `stored` as a whole response when it holds every byte and fits `--max-object-size`,
/// unless a removal came after `mark`; its parts are then no longer needed.
fn combine_if_complete(
    cache: &HttpCache,
    parts: &PartStore,
    head: &RequestHead,
    stored: &StoredParts,
    mark: RemovalMark,
) {
    if stored.length() > parts.settings().max_object_bytes {
        return;
    }
    let Some(variant) = stored.whole(&head.headers) else {
        return;
    };
    let store = cache.store();
    store.insert(
        head.key.clone(),
        Arc::new(CachedObject::with_variant(None, variant)),
    );
    // Inserted first, then checked, as parts are (see `PartStore::keep`).
    if parts.unchanged_since(mark) {
        parts.forget(&head.key);
    } else {
        store.remove(&head.key);
    }
}

/// `answer` from `stored`; `decided` says how it came about, given the parts' remaining
/// freshness.
fn from_parts(
    stored: &StoredParts,
    answer: PartAnswer,
    decided: impl FnOnce(i64) -> Cached,
    now: SystemTime,
) -> Answered {
    let decision = Decision::Cached(decided(stored.policy().ttl_seconds(now)));
    let response = respond::from_parts(stored, answer, &decision.cache_status(), now);
    Answered::new(response, decision)
}

/// A request answered through the parts: `served`, and whether what its origin request brought
/// was `dropped` (its URL invalidated meanwhile).
fn cached(served: ServedFrom, dropped: bool) -> Cached {
    Cached {
        served,
        found: None,
        bypassed: false,
        waited: None,
        dropped,
    }
}

/// A hit with `ttl` seconds of freshness left.
fn hit(ttl: i64) -> Cached {
    cached(ServedFrom::Hit { ttl }, false)
}

/// The origin's answer, passed on unstored.
fn pass(response: Response<Body>, head: &RequestHead) -> Answered {
    respond::around_the_cache(response, &head.method, PassReason::Unstorable)
}
