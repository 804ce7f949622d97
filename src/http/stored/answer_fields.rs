//! A stored response's header fields: its values in a plain list, its names in an answer
//! template shared by every stored response that has the same names.
//!
//! Responses from one origin mostly carry the same field names in the same order. An answer
//! template holds such a list of names once, together with the map every answer from the
//! store starts as: those names and the fields each answer adds ([`Added`]), with placeholder
//! values. A hit clones that map (its hash index comes along: no name is hashed) and writes the
//! stored and the added values into it, in order, where building the map field by field would
//! hash every name again on every hit. A stored response keeps only its values, packed
//! behind its body ([`PackedValues`]: their bytes and 4 more a line), and a handle on its
//! template.
//!
//! Templates are shared through one table for the whole process ([`TemplateTable::shared`]),
//! bounded at [`SHARED_TEMPLATES`] lists of names and never emptied; a response whose names
//! arrive once the table is full gets a template of its own.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use http::header::{AGE, VIA};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::packed::PackedValues;
use crate::http::fields::CACHE_STATUS;

/// Lists of names the process-wide table shares templates for. The names come from the origin,
/// so the table is bounded; a template costs about 0.5 KiB.
pub(crate) const SHARED_TEMPLATES: usize = 4096;

/// The header fields of one stored response, in the order of the map they came from, and the
/// values of the fields set aside.
#[derive(Debug, Clone)]
pub(crate) struct StoredFields {
    template: Arc<AnswerTemplate>,
    /// One value per name of the template, in the same order; then the values set aside.
    values: PackedValues,
}

/// A response's fields made compact, and the buffer they went into.
#[derive(Debug)]
pub(crate) struct Compacted {
    /// The stored fields.
    pub fields: StoredFields,
    /// The buffer the values were copied into, frozen, for the caller's share of it.
    pub buffer: Bytes,
}

/// The fields every answer from the store adds to the stored ones.
#[derive(Debug)]
pub struct Added {
    /// `Age` (RFC 9111 §5.1): replaces any stored `Age`.
    pub age: HeaderValue,
    /// `Via` (RFC 9110 §7.6.3): follows any stored `Via`.
    pub via: HeaderValue,
    /// `Cache-Status` (RFC 9211 §2): follows any stored `Cache-Status`.
    pub cache_status: HeaderValue,
}

/// The templates of the lists of names seen so far, up to a bound.
#[derive(Debug)]
pub(crate) struct TemplateTable {
    templates: DashMap<Box<[HeaderName]>, Arc<AnswerTemplate>>,
    bound: usize,
}

/// A list of field names and the map answers with those names start as.
#[derive(Debug)]
struct AnswerTemplate {
    names: Box<[HeaderName]>,
    /// The names (a stored `Age` left out) and then the added fields, holding empty values.
    answer: HeaderMap,
    /// Where each value of `answer` comes from, in the map's own order: below `names.len()`,
    /// the stored value of that index; from it on, the added field of that index less it.
    sources: Box<[usize]>,
}

/// The names of the added fields, in the order [`Added`]'s values are taken in.
const ADDED: [HeaderName; 3] = [AGE, VIA, CACHE_STATUS];

// === impl StoredFields ===

impl StoredFields {
    /// The fields of `headers`, those named `set_aside` (lower case) kept apart, their values
    /// copied behind what `buffer` holds (so the entry keeps neither the connection's read
    /// buffer nor one allocation per value alive); the template comes from `table`.
    pub(crate) fn compact(
        headers: &HeaderMap,
        buffer: BytesMut,
        set_aside: &str,
        table: &TemplateTable,
    ) -> Compacted {
        let stored = || headers.iter().filter(|(name, _)| *name != set_aside);
        let names = stored().map(|(name, _)| name.clone()).collect();
        let values = stored().map(|(_, value)| value);
        let (values, buffer) = PackedValues::pack(values.chain(headers.get_all(set_aside)), buffer);
        let fields = Self {
            template: table.template(names),
            values,
        };
        Compacted { fields, buffer }
    }

    /// The bytes `headers`' values take stored, for a buffer to be made with room for them.
    pub(crate) fn room_for(headers: &HeaderMap) -> usize {
        PackedValues::room_for(headers.values())
    }

    /// The first value of the field `name`.
    pub(crate) fn get(&self, name: &HeaderName) -> Option<HeaderValue> {
        let index = self.template.names.iter().position(|line| line == name)?;
        self.values.get(index)
    }

    /// The lines, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&HeaderName, HeaderValue)> {
        self.template.names.iter().zip(self.values.iter())
    }

    /// The values of the fields set aside, in order.
    pub(crate) fn set_aside(&self) -> impl Iterator<Item = HeaderValue> + '_ {
        self.values.iter_from(self.template.names.len())
    }

    /// The bytes the values take, set-aside ones included.
    pub(crate) fn bytes(&self) -> usize {
        self.values.bytes()
    }

    /// A map of the lines with room for `more` lines besides, so adding them grows nothing.
    pub(crate) fn to_map(&self, more: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.template.names.len() + more);
        for (name, value) in self.iter() {
            map.append(name.clone(), value);
        }
        map
    }

    /// The fields of an answer: the stored ones and `added`, as appending `added` to
    /// [`to_map`](Self::to_map)'s map would leave them (a stored `Age` replaced).
    pub(crate) fn answer(&self, added: Added) -> HeaderMap {
        let Added {
            age,
            via,
            cache_status,
        } = added;
        let mut added = [age, via, cache_status];
        let mut answer = self.template.answer.clone();
        let stored_count = self.template.names.len();
        for (value, &source) in answer.values_mut().zip(&self.template.sources) {
            *value = match source.checked_sub(stored_count) {
                None => self.values.get(source).unwrap_or_else(empty),
                Some(added_index) => std::mem::replace(&mut added[added_index], empty()),
            };
        }
        answer
    }
}

// === impl TemplateTable ===

impl TemplateTable {
    /// A table sharing the templates of at most `bound` lists of names.
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            templates: DashMap::new(),
            bound,
        }
    }

    /// The table every stored response of the process shares, of [`SHARED_TEMPLATES`].
    pub(crate) fn shared() -> &'static Self {
        static SHARED: OnceLock<TemplateTable> = OnceLock::new();
        SHARED.get_or_init(|| Self::new(SHARED_TEMPLATES))
    }

    /// The template of `names`: the shared one where the table has or can take it.
    fn template(&self, names: Box<[HeaderName]>) -> Arc<AnswerTemplate> {
        if let Some(template) = self.templates.get(&*names) {
            return Arc::clone(&template);
        }
        let template = Arc::new(AnswerTemplate::new(names));
        if self.templates.len() >= self.bound {
            return template;
        }
        let entry = self.templates.entry(template.names.clone());
        Arc::clone(&entry.or_insert(template))
    }
}

// === impl AnswerTemplate ===

impl AnswerTemplate {
    /// The template of `names`: the map is built once, with each placeholder telling where
    /// its value will come from, and then read back in the map's order.
    fn new(names: Box<[HeaderName]>) -> Self {
        let mut answer = HeaderMap::with_capacity(names.len() + ADDED.len());
        let stored = names.iter().enumerate().filter(|(_, name)| **name != AGE);
        for (source, name) in stored {
            answer.append(name.clone(), HeaderValue::from(source));
        }
        for (index, name) in ADDED.into_iter().enumerate() {
            answer.append(name, HeaderValue::from(names.len() + index));
        }
        let sources = answer
            .values_mut()
            .map(|placeholder| {
                let source = placeholder.to_str().ok().and_then(|text| text.parse().ok());
                *placeholder = empty();
                source.expect("each placeholder holds the number written into it")
            })
            .collect();
        Self {
            names,
            answer,
            sources,
        }
    }
}

/// A value to stand in until the real one is written (static: cloned and dropped for free).
fn empty() -> HeaderValue {
    HeaderValue::from_static("")
}

#[cfg(test)]
mod tests {
    use http::header::{CONTENT_TYPE, ETAG};

    use super::*;

    fn map(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn compact(headers: &HeaderMap) -> StoredFields {
        StoredFields::compact(headers, BytesMut::new(), "x-own", TemplateTable::shared()).fields
    }

    fn added() -> Added {
        Added {
            age: HeaderValue::from_static("7"),
            via: HeaderValue::from_static("1.1 sidecache"),
            cache_status: HeaderValue::from_static("sidecache; hit"),
        }
    }

    /// What an answer held before templates: the stored map, `Age` inserted, the rest appended.
    fn appended(fields: &StoredFields, added: Added) -> HeaderMap {
        let mut map = fields.to_map(3);
        map.insert(AGE, added.age);
        map.append(VIA, added.via);
        map.append(CACHE_STATUS, added.cache_status);
        map
    }

    #[test]
    fn a_map_made_of_the_lines_equals_the_one_they_came_from() {
        let origin = map(&[("x-a", "1"), ("content-type", "text/plain"), ("x-a", "2")]);
        let fields = compact(&origin);
        assert_eq!(fields.iter().count(), 3);
        let rebuilt = fields.to_map(3);
        assert_eq!(rebuilt, origin);
        let order: Vec<_> = rebuilt.iter().collect();
        assert_eq!(order, origin.iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_room_asked_for_is_there() {
        let rebuilt = compact(&map(&[("x-a", "1")])).to_map(3);
        assert!(rebuilt.capacity() >= 4, "{}", rebuilt.capacity());
    }

    #[test]
    fn the_values_follow_what_the_buffer_held() {
        let mut buffer = BytesMut::with_capacity(64);
        buffer.extend_from_slice(b"body");
        let headers = map(&[("etag", "\"x\""), ("x-b", "yz")]);
        let compacted = StoredFields::compact(&headers, buffer, "x-own", TemplateTable::shared());
        assert!(compacted.buffer.starts_with(b"body\"x\"yz"));
        assert_eq!(
            compacted.buffer.len(),
            9 + 4 * 3,
            "and the table of the values"
        );
        let etag = compacted.fields.get(&ETAG).expect("stored");
        assert_eq!(etag.as_bytes().as_ptr(), compacted.buffer[4..].as_ptr());
        assert_eq!(compacted.fields.get(&CONTENT_TYPE), None);
    }

    #[test]
    fn lines_set_aside_come_back_in_order_and_the_rest_stays() {
        let origin = map(&[("x-own", "1"), ("etag", "\"e\""), ("x-own", "2")]);
        let table = TemplateTable::shared();
        let compacted = StoredFields::compact(&origin, BytesMut::new(), "x-own", table);
        let aside: Vec<_> = compacted.fields.set_aside().collect();
        assert_eq!(aside, ["1", "2"]);
        assert_eq!(compacted.fields.to_map(0), map(&[("etag", "\"e\"")]));
        let again = StoredFields::compact(&origin, BytesMut::new(), "x-none", table);
        assert_eq!(again.fields.set_aside().count(), 0);
        assert_eq!(again.fields.to_map(0), origin);
    }

    #[test]
    fn an_answer_holds_what_appending_the_added_fields_would() {
        // Repeated names, and an origin (itself behind a cache) that sent Age, Via and
        // Cache-Status of its own: its Age is replaced, the others are followed by ours.
        let origin = map(&[
            ("via", "1.1 edge"),
            ("x-a", "1"),
            ("age", "30"),
            ("content-type", "text/plain"),
            ("cache-status", "edge; hit"),
            ("x-a", "2"),
            ("age", "31"),
        ]);
        let fields = compact(&origin);
        let answer = fields.answer(added());
        let expected = appended(&fields, added());
        assert_eq!(answer, expected);
        for name in ["via", "x-a", "age", "content-type", "cache-status"] {
            let values: Vec<_> = answer.get_all(name).iter().collect();
            let before: Vec<_> = expected.get_all(name).iter().collect();
            assert_eq!(values, before, "{name}");
        }
        assert_eq!(answer.get_all("via").iter().count(), 2);
        assert_eq!(answer["age"], "7");
        // The stored fields are untouched, and a second answer is built afresh.
        assert_eq!(fields.to_map(0), origin);
        assert_eq!(fields.answer(added()), expected);
    }

    #[test]
    fn an_answer_keeps_the_sensitivity_of_stored_values() {
        let mut origin = map(&[("content-type", "text/plain")]);
        let mut secret = HeaderValue::from_static("token");
        secret.set_sensitive(true);
        origin.append("x-secret", secret);
        let answer = compact(&origin).answer(added());
        assert!(answer["x-secret"].is_sensitive());
        assert!(!answer["content-type"].is_sensitive());
    }

    #[test]
    fn responses_with_the_same_names_share_one_template() {
        let table = TemplateTable::new(2);
        let fields = |lines: &[(&'static str, &'static str)]| {
            StoredFields::compact(&map(lines), BytesMut::new(), "x-own", &table).fields
        };
        let one = fields(&[("etag", "\"1\""), ("x-a", "1")]);
        let two = fields(&[("etag", "\"2\""), ("x-a", "2")]);
        assert!(Arc::ptr_eq(&one.template, &two.template));
        assert_eq!(two.answer(added())["etag"], "\"2\"");
        let other = fields(&[("x-a", "1"), ("etag", "\"1\"")]);
        assert!(!Arc::ptr_eq(&one.template, &other.template));
        // The table is full now: a third list of names gets a template of its own, each time.
        let third = [("x-b", "1")];
        let (first, second) = (fields(&third), fields(&third));
        assert!(!Arc::ptr_eq(&first.template, &second.template));
        assert_eq!(table.templates.len(), 2);
        assert_eq!(first.answer(added()), appended(&first, added()));
    }
}
