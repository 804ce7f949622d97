//! What the store holds for one URL: its stored responses, one per `Vary` selection.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::answer_fields::{Added, Compacted, StoredFields, TemplateTable};
use crate::http::directives::SIDECACHE_CACHE_CONTROL;
use crate::http::policy::ResponsePolicy;
use crate::http::vary::VaryKey;
use crate::store::Weighed;

/// At most this many variants are kept per URL; the oldest goes first. A `Vary` on a field with
/// unbounded values (`User-Agent`, `Cookie`) must not turn one URL into unbounded memory.
pub const MAX_VARIANTS: usize = 16;

/// Bytes counted once per stored object, whatever its variants: the store's entry (moka's
/// entry info, value entry, deque nodes, timer-wheel node and hash-table bucket: ~290 B of
/// chunks, plus its share of the bucket array and frequency sketch, ~20 B), the key (moka's
/// `Arc` of it, 96 B with a text of up to 54 bytes inside; a longer text is shared in a second
/// allocation and undercounted by it), the object's allocation header, and the allocator's
/// slack. Calibrated, not guessed: with 1,000,000 1 KiB entries (`benches/tools/bench-extra
/// million`, four fields, a 38-byte key) the weighed size per entry equals the resident
/// memory per entry (less the idle process) to within 1 %, so `--cache-capacity` bounds what
/// the cache really costs. Measure again and recalibrate when the stored types change (the
/// size test below fails when they grow).
const ENTRY_OVERHEAD_BYTES: usize = 408;

/// Bytes counted per stored response on top of its body and packed values: the struct (144 B,
/// in the object itself for the newest variant), the block of reference counts and the
/// allocation header of the buffer holding its body and values, and the allocator's rounding
/// of them (calibrated with the entry's, see above).
const VARIANT_OVERHEAD_BYTES: usize = 254;

/// Fields every answer adds to the stored ones.
const ANSWER_FIELDS: usize = 3;

/// One stored response.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The response status.
    pub status: StatusCode,
    /// The stored header fields as answers carry them: hop-by-hop fields removed, and the
    /// `Sidecache-Cache-Control` lines the origin sent set aside (sidecache obeys them but
    /// never forwards them; they are needed again when a 304 refreshes the policy).
    fields: StoredFields,
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
    /// The newest stored response. Almost every URL has only this one, so it lives in the
    /// object itself: one allocation per entry rather than the object, a list and the variant.
    newest: Variant,
    /// Older responses that other request values selected (`Vary`), newest first. `None`, and
    /// so not allocated, for a URL without `Vary`; shared with the objects they came from.
    /// Boxed once more so the field takes 8 bytes rather than a slice's 16: the object then
    /// fits a smaller allocator chunk.
    older: Option<Box<OlderVariants>>,
}

/// The older responses of an object, newest first (never empty).
type OlderVariants = Box<[Arc<Variant>]>;

// === impl Variant ===

impl Variant {
    /// A stored response. The header values are copied into one compact allocation (so the
    /// entry does not keep the connection's read buffer alive).
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        policy: ResponsePolicy,
        vary: VaryKey,
    ) -> Self {
        let values = BytesMut::with_capacity(Self::room_for(headers));
        Self::assemble(status, compact(headers, values), body, policy, vary)
    }

    /// A stored response whose body was just read into `body`: as [`new`](Self::new), but the
    /// header values go into the body's spare capacity when it has [`room_for`](Self::room_for)
    /// them, so the entry holds one buffer instead of two (each with its allocation header and,
    /// once shared, its block of reference counts).
    pub fn read(
        status: StatusCode,
        headers: &HeaderMap,
        body: BytesMut,
        policy: ResponsePolicy,
        vary: VaryKey,
    ) -> Self {
        if body.capacity() - body.len() < Self::room_for(headers) {
            return Self::new(status, headers, body.freeze(), policy, vary);
        }
        let end = body.len();
        let compacted = compact(headers, body);
        let body = compacted.buffer.slice(..end);
        Self::assemble(status, compacted, body, policy, vary)
    }

    /// The spare capacity a body read for storing needs behind it to hold `headers`' values
    /// too (see [`read`](Self::read)).
    pub fn room_for(headers: &HeaderMap) -> usize {
        StoredFields::room_for(headers)
    }

    /// The variant of its parts: the compacted fields (their buffer already shared into `body`
    /// or not needed).
    fn assemble(
        status: StatusCode,
        compacted: Compacted,
        body: Bytes,
        policy: ResponsePolicy,
        vary: VaryKey,
    ) -> Self {
        Self {
            status,
            fields: compacted.fields,
            body,
            policy,
            vary,
        }
    }

    /// The first stored value of the field `name`.
    pub fn field(&self, name: &HeaderName) -> Option<HeaderValue> {
        self.fields.get(name)
    }

    /// The stored header fields as an answer starts from, with room for the fields every
    /// answer adds (`Age`, `Via`, `Cache-Status`) so adding them grows nothing.
    pub fn headers(&self) -> HeaderMap {
        self.fields.to_map(ANSWER_FIELDS)
    }

    /// The header fields of an answer from the store: the stored ones and `added` (see
    /// `StoredFields::answer`).
    pub fn answer_headers(&self, added: Added) -> HeaderMap {
        self.fields.answer(added)
    }

    /// The header fields as the origin sent them (hop-by-hop fields removed), for judging the
    /// response again.
    pub fn origin_headers(&self) -> HeaderMap {
        let own: Vec<HeaderValue> = self.fields.set_aside().collect();
        let mut headers = self.fields.to_map(own.len());
        for value in own {
            headers.append(SIDECACHE_CACHE_CONTROL, value);
        }
        headers
    }

    /// Bytes this response holds, as counted against the capacity (its object adds the
    /// store entry's own bytes once).
    pub fn weight_bytes(&self) -> usize {
        self.body.len() + self.fields.bytes() + self.vary.weight() + VARIANT_OVERHEAD_BYTES
    }
}

/// `headers` made compact into `buffer`, the own directives set aside.
fn compact(headers: &HeaderMap, buffer: BytesMut) -> Compacted {
    StoredFields::compact(
        headers,
        buffer,
        SIDECACHE_CACHE_CONTROL,
        TemplateTable::shared(),
    )
}

// === impl CachedObject ===

impl CachedObject {
    /// The object `previous` with `variant` added as the newest: it replaces a variant selected
    /// by the same request values, and variants that vary on other fields are dropped (the
    /// origin changed its `Vary`). At most [`MAX_VARIANTS`] are kept.
    pub fn with_variant(previous: Option<&CachedObject>, variant: Variant) -> Self {
        let kept = |old: &Variant| old.vary.same_fields(&variant.vary) && old.vary != variant.vary;
        let older: OlderVariants = match previous {
            None => Box::default(),
            Some(previous) => kept(&previous.newest)
                .then(|| Arc::new(previous.newest.clone()))
                .into_iter()
                .chain(previous.older().iter().filter(|old| kept(old)).cloned())
                .take(MAX_VARIANTS - 1)
                .collect(),
        };
        Self {
            newest: variant,
            older: (!older.is_empty()).then(|| Box::new(older)),
        }
    }

    /// The older responses, newest first (empty without `Vary`).
    fn older(&self) -> &[Arc<Variant>] {
        self.older.as_deref().map_or(&[], |older| older)
    }

    /// The stored response that `request_headers` select (RFC 9111 §4.1), newest first.
    pub fn select(&self, request_headers: &HeaderMap) -> Option<&Variant> {
        if self.newest.vary.matches(request_headers) {
            return Some(&self.newest);
        }
        self.older()
            .iter()
            .map(AsRef::as_ref)
            .find(|variant| variant.vary.matches(request_headers))
    }

    /// Every stored response, newest first.
    pub fn variants(&self) -> impl Iterator<Item = &Variant> {
        std::iter::once(&self.newest).chain(self.older().iter().map(AsRef::as_ref))
    }

    /// Bytes the object and its entry in the store hold, as counted against the capacity:
    /// worked out when the store weighs it (once, on insert) rather than kept in every entry.
    pub fn weight_bytes(&self) -> usize {
        ENTRY_OVERHEAD_BYTES + self.variants().map(Variant::weight_bytes).sum::<usize>()
    }

    /// How long from `now` some variant is still worth keeping.
    pub fn retain_for_at(&self, now: SystemTime) -> Duration {
        self.variants()
            .map(|variant| variant.policy.retain_for(now))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

impl Weighed for Arc<CachedObject> {
    fn weight_bytes(&self) -> u32 {
        u32::try_from(CachedObject::weight_bytes(self)).unwrap_or(u32::MAX)
    }

    fn retain_for(&self) -> Duration {
        self.retain_for_at(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::http::policy::PolicySettings;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let field = |(name, value): &(&str, &str)| {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
            (name, HeaderValue::from_str(value).expect("value"))
        };
        fields.iter().map(field).collect()
    }

    /// The stored response `response` (with body `body`) to a request with `request` fields.
    fn variant(response: &[(&str, &str)], request: &[(&str, &str)], body: &str) -> Variant {
        let body = Bytes::copy_from_slice(body.as_bytes());
        stored(&headers(response), &headers(request), body)
    }

    fn stored(response: &HeaderMap, request: &HeaderMap, body: Bytes) -> Variant {
        let now = SystemTime::now();
        let config = PolicySettings::default();
        let policy = ResponsePolicy::new(
            &Method::GET,
            request,
            StatusCode::OK,
            response,
            now,
            now,
            &config,
        );
        let vary = VaryKey::capture(response, request).expect("no Vary: *");
        Variant::new(StatusCode::OK, response, body, policy, vary)
    }

    const FRESH: (&str, &str) = ("cache-control", "max-age=60");
    const VARY: (&str, &str) = ("vary", "accept-language");

    fn language(tag: &str) -> [(&str, &str); 1] {
        [("accept-language", tag)]
    }

    /// `previous` with a response that varies on `Accept-Language`, for `tag`.
    fn add(previous: Option<&CachedObject>, tag: &str, body: &str) -> CachedObject {
        CachedObject::with_variant(previous, variant(&[FRESH, VARY], &language(tag), body))
    }

    /// The bodies of every stored variant, newest first.
    fn bodies(object: &CachedObject) -> Vec<String> {
        object.variants().map(|v| text(&v.body)).collect()
    }

    fn selected(object: &CachedObject, request: &[(&str, &str)]) -> Option<String> {
        object.select(&headers(request)).map(|v| text(&v.body))
    }

    fn text(body: &Bytes) -> String {
        String::from_utf8(body.to_vec()).expect("utf-8")
    }

    #[test]
    fn without_vary_a_new_response_replaces_the_stored_one() {
        let first = CachedObject::with_variant(None, variant(&[FRESH], &[], "one"));
        let second = CachedObject::with_variant(Some(&first), variant(&[FRESH], &[], "two"));
        assert_eq!(bodies(&second), ["two"]);
        assert_eq!(selected(&second, &[]).as_deref(), Some("two"));
        // The previous object is untouched: a reader holding it still sees its own response.
        assert_eq!(bodies(&first), ["one"]);
    }

    #[test]
    fn vary_keeps_one_variant_per_request_value_newest_first() {
        let object = add(Some(&add(None, "de", "de")), "en", "en");
        assert_eq!(bodies(&object), ["en", "de"]);
        assert_eq!(selected(&object, &language("de")).as_deref(), Some("de"));
        assert_eq!(selected(&object, &language("en")).as_deref(), Some("en"));
        assert_eq!(selected(&object, &language("fr")), None);
        assert_eq!(selected(&object, &[]), None);
        // A new response for the same request values replaces the old one, wherever it was.
        let object = add(Some(&object), "de", "de, again");
        assert_eq!(bodies(&object), ["de, again", "en"]);
        let again = selected(&object, &language("de"));
        assert_eq!(again.as_deref(), Some("de, again"));
        let object = add(Some(&object), "en", "en, again");
        assert_eq!(bodies(&object), ["en, again", "de, again"]);
    }

    #[test]
    fn a_changed_vary_drops_the_variants_of_the_old_one() {
        let object = add(Some(&add(None, "de", "de")), "en", "en");
        let encoding = [("accept-encoding", "gzip"), ("accept-language", "de")];
        let gzip = variant(&[FRESH, ("vary", "accept-encoding")], &encoding, "gzip");
        let object = CachedObject::with_variant(Some(&object), gzip);
        assert_eq!(bodies(&object), ["gzip"]);
        // And a response without Vary replaces every variant.
        let object = CachedObject::with_variant(Some(&object), variant(&[FRESH], &[], "plain"));
        assert_eq!(bodies(&object), ["plain"]);
        assert_eq!(selected(&object, &encoding).as_deref(), Some("plain"));
    }

    #[test]
    fn at_most_max_variants_are_kept_the_oldest_goes_first() {
        let mut object = add(None, "0", "0");
        for n in 1..=MAX_VARIANTS {
            object = add(Some(&object), &n.to_string(), &n.to_string());
        }
        let expected: Vec<String> = (1..=MAX_VARIANTS).rev().map(|n| n.to_string()).collect();
        assert_eq!(bodies(&object), expected);
        assert_eq!(selected(&object, &language("0")), None);
        assert_eq!(selected(&object, &language("1")).as_deref(), Some("1"));
    }

    #[test]
    fn the_weight_counts_every_variant_and_the_entry_once() {
        let de = variant(&[FRESH, VARY], &language("de"), "de");
        let en = variant(&[FRESH, VARY], &language("en"), &"en".repeat(500));
        let (de_weight, en_weight) = (de.weight_bytes(), en.weight_bytes());
        assert!(en_weight >= de_weight + 998, "{en_weight} vs {de_weight}");
        let one = CachedObject::with_variant(None, de);
        assert_eq!(one.weight_bytes(), ENTRY_OVERHEAD_BYTES + de_weight);
        let two = CachedObject::with_variant(Some(&one), en);
        assert_eq!(
            two.weight_bytes(),
            ENTRY_OVERHEAD_BYTES + de_weight + en_weight
        );
    }

    #[test]
    fn retention_is_the_longest_of_any_variant() {
        let long = variant(
            &[("cache-control", "max-age=1000"), VARY],
            &language("en"),
            "",
        );
        let short = variant(
            &[("cache-control", "max-age=10"), VARY],
            &language("de"),
            "",
        );
        let now = SystemTime::now();
        let object = CachedObject::with_variant(None, long);
        let object = CachedObject::with_variant(Some(&object), short);
        let retain = object.retain_for_at(now);
        let grace = PolicySettings::default().grace;
        assert!(retain > Duration::from_secs(999) + grace, "{retain:?}");
        assert!(retain <= Duration::from_secs(1000) + grace, "{retain:?}");
    }

    #[test]
    fn own_directives_are_kept_apart_and_given_back_for_judging() {
        let stored = variant(
            &[
                ("cache-control", "no-cache"),
                ("sidecache-cache-control", "max-age=60"),
                ("content-type", "text/plain"),
                ("sidecache-cache-control", "stale-if-error=30"),
            ],
            &[],
            "body",
        );
        let answer = stored.headers();
        assert!(!answer.contains_key(SIDECACHE_CACHE_CONTROL));
        assert_eq!(answer.len(), 2);
        let origin = stored.origin_headers();
        let own: Vec<_> = origin.get_all(SIDECACHE_CACHE_CONTROL).iter().collect();
        assert_eq!(own, ["max-age=60", "stale-if-error=30"]);
        assert_eq!(origin["cache-control"], "no-cache");
        assert_eq!(origin["content-type"], "text/plain");
    }

    #[test]
    fn an_object_with_one_variant_is_one_small_allocation() {
        // With its Arc's counts (16 B) it fits glibc's 176-byte chunk. It grows only with a
        // change here, in the policy or in `http`/`bytes`: then measure again and recalibrate
        // the weigher.
        assert!(std::mem::size_of::<CachedObject>() <= 152);
        assert!(std::mem::size_of::<Variant>() <= 144);
    }

    #[test]
    fn stored_fields_keep_their_lines_order_and_sensitivity() {
        let mut response = headers(&[
            FRESH,
            ("x-multi", "1"),
            ("content-type", "text/plain"),
            ("x-multi", "2"),
            ("x-multi", "3"),
        ]);
        let mut secret = HeaderValue::from_static("token");
        secret.set_sensitive(true);
        response.append("x-secret", secret);
        let stored = stored(&response, &HeaderMap::new(), Bytes::new());
        let answer = stored.headers();
        assert_eq!(answer, response);
        let lines: Vec<_> = answer.iter().collect();
        let expected: Vec<_> = response.iter().collect();
        assert_eq!(lines, expected);
        assert!(answer["x-secret"].is_sensitive());
        assert!(!answer["content-type"].is_sensitive());
    }

    #[test]
    fn a_body_read_with_room_shares_its_buffer_with_the_header_values() {
        let fields = [
            FRESH,
            ("content-type", "text/plain"),
            ("x-multi", "1"),
            ("x-multi", "2"),
        ];
        let response = headers(&fields);
        let room = Variant::room_for(&response);
        let values: usize = fields.iter().map(|(_, value)| value.len()).sum();
        assert_eq!(room, values + 4 * (fields.len() + 1), "bytes and a table");
        let read = |capacity: usize| {
            let mut body = BytesMut::with_capacity(capacity);
            body.extend_from_slice(b"a body");
            let at = body.as_ptr();
            let vary = VaryKey::capture(&response, &HeaderMap::new()).expect("no Vary: *");
            let policy = stored(&response, &HeaderMap::new(), Bytes::new()).policy;
            let variant = Variant::read(StatusCode::OK, &response, body, policy, vary);
            assert_eq!(variant.body.as_ptr(), at, "the body is not copied");
            assert_eq!(variant.body, "a body");
            assert_eq!(variant.origin_headers(), response);
            variant
        };
        // With room, the values follow the body, in order, in the same buffer.
        let shared = read(6 + room);
        let fresh = HeaderName::from_static(FRESH.0);
        let first = shared.field(&fresh).expect("stored").as_bytes().as_ptr();
        assert_eq!(first, shared.body.as_ptr().wrapping_add(6));
        // Without, they go into a buffer of their own.
        let apart = read(6 + room - 1);
        let first = apart.field(&fresh).expect("stored").as_bytes().as_ptr();
        assert_ne!(first, apart.body.as_ptr().wrapping_add(6));
    }
}
