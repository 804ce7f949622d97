//! What the store holds for one URL: its stored responses, one per `Vary` selection.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::Entry;
use http::{HeaderMap, HeaderValue, StatusCode};

use super::directives::SIDECACHE_CACHE_CONTROL;
use super::policy::ResponsePolicy;
use super::vary::VaryKey;
use crate::store::Weighed;

/// At most this many variants are kept per URL; the oldest goes first. A `Vary` on a field with
/// unbounded values (`User-Agent`, `Cookie`) must not turn one URL into unbounded memory.
pub const MAX_VARIANTS: usize = 16;

/// Bytes counted per stored response on top of its body and fields: the struct and its policy
/// (~350), the map's index, the store's own entry (moka's node, deque and timer-wheel entries,
/// the key), and the allocator's headers on each of these. Measured, not guessed: with 1,000,000
/// 1 KiB entries (`scripts/bench-extra million`) the weighed size is within a few percent of the
/// resident memory, so `--cache-capacity` bounds what the cache really costs.
const OVERHEAD_BYTES: usize = 1024;

/// Fields every answer adds to the stored ones.
const ANSWER_FIELDS: usize = 3;

/// Bytes counted per header field on top of its name and value: the map's entry (~104 bytes) and
/// its index slot.
const FIELD_OVERHEAD_BYTES: usize = 112;

/// One stored response.
#[derive(Debug)]
pub struct Variant {
    /// The response status.
    pub status: StatusCode,
    /// The stored header fields as answers carry them: hop-by-hop fields and
    /// `Sidecache-Cache-Control` removed.
    pub headers: HeaderMap,
    /// The `Sidecache-Cache-Control` lines the origin sent: sidecache obeys them but never
    /// forwards them, so they are kept apart (needed again when a 304 refreshes the policy).
    own_directives: Vec<HeaderValue>,
    /// The whole body.
    pub body: Bytes,
    /// Freshness and reuse rules, computed once when the response arrived.
    pub policy: ResponsePolicy,
    /// The request field values this response was selected by.
    pub vary: VaryKey,
}

/// All stored responses for one cache key.
#[derive(Debug)]
pub struct CachedObject {
    /// Newest first.
    variants: Vec<Arc<Variant>>,
    weight_bytes: u32,
}

// === impl Variant ===

impl Variant {
    /// A stored response. The header fields are copied into one compact allocation (so the
    /// entry does not keep the connection's read buffer alive), with room for the fields every
    /// answer adds (`Age`, `Via`, `Cache-Status`) so answering a hit does not rehash the map.
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        policy: ResponsePolicy,
        vary: VaryKey,
    ) -> Self {
        let mut headers = compact(headers);
        let own_directives = match headers.entry(SIDECACHE_CACHE_CONTROL) {
            Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
            Entry::Vacant(_) => Vec::new(),
        };
        Self {
            status,
            headers,
            own_directives,
            body,
            policy,
            vary,
        }
    }

    /// The header fields as the origin sent them (hop-by-hop fields removed), for judging the
    /// response again.
    pub fn origin_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        for value in &self.own_directives {
            headers.append(SIDECACHE_CACHE_CONTROL, value.clone());
        }
        headers
    }

    /// Bytes this response holds, as counted against the capacity.
    pub fn weight_bytes(&self) -> usize {
        let fields: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + FIELD_OVERHEAD_BYTES)
            .sum();
        let own: usize = self.own_directives.iter().map(HeaderValue::len).sum();
        self.body.len() + fields + own + self.vary.weight() + OVERHEAD_BYTES
    }
}

// === impl CachedObject ===

impl CachedObject {
    /// The object `previous` with `variant` added: it replaces a variant selected by the same
    /// request values, and variants that vary on other fields are dropped (the origin changed
    /// its `Vary`).
    pub fn with_variant(previous: Option<&CachedObject>, variant: Arc<Variant>) -> Self {
        let mut variants = vec![Arc::clone(&variant)];
        if let Some(previous) = previous {
            variants.extend(
                previous
                    .variants
                    .iter()
                    .filter(|old| old.vary.same_fields(&variant.vary) && old.vary != variant.vary)
                    .take(MAX_VARIANTS - 1)
                    .cloned(),
            );
        }
        let weight: usize = variants.iter().map(|v| v.weight_bytes()).sum();
        Self {
            variants,
            weight_bytes: u32::try_from(weight).unwrap_or(u32::MAX),
        }
    }

    /// The stored response that `request_headers` select (RFC 9111 §4.1), newest first.
    pub fn select(&self, request_headers: &HeaderMap) -> Option<&Arc<Variant>> {
        self.variants
            .iter()
            .find(|variant| variant.vary.matches(request_headers))
    }

    /// Every stored response, newest first.
    pub fn variants(&self) -> &[Arc<Variant>] {
        &self.variants
    }

    /// How long from `now` some variant is still worth keeping.
    pub fn retain_for_at(&self, now: SystemTime) -> Duration {
        self.variants
            .iter()
            .map(|variant| variant.policy.retain_for(now))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// `headers` with every value in one shared buffer, and spare room for [`ANSWER_FIELDS`].
fn compact(headers: &HeaderMap) -> HeaderMap {
    let total = headers.values().map(HeaderValue::len).sum();
    let mut values = BytesMut::with_capacity(total);
    for value in headers.values() {
        values.extend_from_slice(value.as_bytes());
    }
    let values = values.freeze();
    let mut compacted = HeaderMap::with_capacity(headers.len() + ANSWER_FIELDS);
    let mut start = 0;
    for (name, value) in headers {
        let end = start + value.len();
        let mut copy = HeaderValue::from_maybe_shared(values.slice(start..end))
            .expect("the bytes of a valid header value are a valid header value");
        copy.set_sensitive(value.is_sensitive());
        compacted.append(name.clone(), copy);
        start = end;
    }
    // The map's index has room for the answer fields, so answering a hit rehashes nothing; but
    // its entry vector was sized for them too, and that spare room (about 100 bytes a field)
    // would be held by every stored response while it only ever serves as a template. A clone
    // keeps the index and copies just the entries there are: the store keeps that.
    compacted.clone()
}

impl Weighed for Arc<CachedObject> {
    fn weight_bytes(&self) -> u32 {
        self.weight_bytes
    }

    fn retain_for(&self) -> Duration {
        self.retain_for_at(SystemTime::now())
    }
}
