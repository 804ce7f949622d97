//! What the store holds for one URL: its stored responses, one per `Vary` selection.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::policy::ResponsePolicy;
use super::vary::VaryKey;
use crate::store::Weighed;

/// At most this many variants are kept per URL; the oldest goes first. A `Vary` on a field with
/// unbounded values (`User-Agent`, `Cookie`) must not turn one URL into unbounded memory.
pub const MAX_VARIANTS: usize = 16;

/// Bytes counted per stored response on top of its body and fields: the struct, the policy, the
/// map's bookkeeping. An estimate, so that many tiny objects still count against the capacity.
const OVERHEAD_BYTES: usize = 256;

/// Bytes counted per header field on top of its name and value (the map's entry).
const FIELD_OVERHEAD_BYTES: usize = 32;

/// One stored response.
#[derive(Debug)]
pub struct Variant {
    /// The response status.
    pub status: StatusCode,
    /// The stored header fields (hop-by-hop fields already removed).
    pub headers: HeaderMap,
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
    /// Bytes this response holds, as counted against the capacity.
    pub fn weight_bytes(&self) -> usize {
        let fields: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + FIELD_OVERHEAD_BYTES)
            .sum();
        self.body.len() + fields + self.vary.weight() + OVERHEAD_BYTES
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

impl Weighed for Arc<CachedObject> {
    fn weight_bytes(&self) -> u32 {
        self.weight_bytes
    }

    fn retain_for(&self) -> Duration {
        self.retain_for_at(SystemTime::now())
    }
}
