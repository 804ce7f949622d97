//! A stored response's header fields, kept as a plain list of lines rather than a `HeaderMap`.
//!
//! A hit copies the stored fields into the answer's own map, which it builds anyway, and looks
//! up a stored field only on the rarer conditional, range and revalidation paths. A map's hash
//! index and linked entries (~112 bytes a field) would cost every stored response memory, and
//! every hit over many keys the cold cache lines it reads; a line here is 72 bytes, one after
//! the other.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The header fields of one stored response, in the order the origin sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFields {
    lines: Box<[(HeaderName, HeaderValue)]>,
}

/// Bytes counted per stored line on top of its name and value: the line itself.
pub const LINE_BYTES: usize = std::mem::size_of::<(HeaderName, HeaderValue)>();

// === impl StoredFields ===

impl StoredFields {
    /// The lines of `headers`, their values copied behind what `buffer` holds (so the entry
    /// keeps neither the connection's read buffer nor one allocation per value alive); also
    /// returns the buffer, frozen, for the caller's share of it.
    pub fn compact(headers: &HeaderMap, mut buffer: BytesMut) -> (Self, Bytes) {
        let mut start = buffer.len();
        for value in headers.values() {
            buffer.extend_from_slice(value.as_bytes());
        }
        let values = buffer.freeze();
        let lines = headers
            .iter()
            .map(|(name, value)| {
                let end = start + value.len();
                let mut copy = HeaderValue::from_maybe_shared(values.slice(start..end))
                    .expect("the bytes of a valid header value are a valid header value");
                copy.set_sensitive(value.is_sensitive());
                start = end;
                (name.clone(), copy)
            })
            .collect();
        (Self { lines }, values)
    }

    /// The lines without those named `name` (lower case), and the values of those, in order.
    pub fn without(self, name: &str) -> (Self, Box<[HeaderValue]>) {
        if !self.lines.iter().any(|(line, _)| line == name) {
            return (self, Box::default());
        }
        let (taken, kept): (Vec<_>, Vec<_>) = self
            .lines
            .into_vec()
            .into_iter()
            .partition(|(line, _)| line == name);
        let values = taken.into_iter().map(|(_, value)| value).collect();
        (
            Self {
                lines: kept.into_boxed_slice(),
            },
            values,
        )
    }

    /// The first value of the field `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.lines
            .iter()
            .find(|(line, _)| line == name)
            .map(|(_, value)| value)
    }

    /// The lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.lines.iter().map(|(name, value)| (name, value))
    }

    /// A map of the lines with room for `more` lines besides, so adding them grows nothing.
    pub fn to_map(&self, more: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.lines.len() + more);
        for (name, value) in self.iter() {
            map.append(name.clone(), value.clone());
        }
        map
    }
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

    #[test]
    fn a_map_made_of_the_lines_equals_the_one_they_came_from() {
        let origin = map(&[("x-a", "1"), ("content-type", "text/plain"), ("x-a", "2")]);
        let (fields, _) = StoredFields::compact(&origin, BytesMut::new());
        assert_eq!(fields.iter().count(), 3);
        let rebuilt = fields.to_map(3);
        assert_eq!(rebuilt, origin);
        let order: Vec<_> = rebuilt.iter().collect();
        assert_eq!(order, origin.iter().collect::<Vec<_>>());
    }

    #[test]
    fn the_room_asked_for_is_there() {
        let (fields, _) = StoredFields::compact(&map(&[("x-a", "1")]), BytesMut::new());
        let rebuilt = fields.to_map(3);
        assert!(rebuilt.capacity() >= 4, "{}", rebuilt.capacity());
    }

    #[test]
    fn the_values_follow_what_the_buffer_held() {
        let mut buffer = BytesMut::with_capacity(64);
        buffer.extend_from_slice(b"body");
        let (fields, values) =
            StoredFields::compact(&map(&[("etag", "\"x\""), ("x-b", "yz")]), buffer);
        assert_eq!(values, "body\"x\"yz");
        let etag = fields.get(&ETAG).expect("stored");
        assert_eq!(etag.as_bytes().as_ptr(), values[4..].as_ptr());
        assert_eq!(fields.get(&CONTENT_TYPE), None);
    }

    #[test]
    fn lines_taken_out_come_back_in_order_and_the_rest_stays() {
        let name = "x-own";
        let origin = map(&[("x-own", "1"), ("etag", "\"e\""), ("x-own", "2")]);
        let (fields, _) = StoredFields::compact(&origin, BytesMut::new());
        let (kept, taken) = fields.without(name);
        assert_eq!(&*taken, ["1", "2"]);
        assert_eq!(kept.to_map(0), map(&[("etag", "\"e\"")]));
        let (same, none) = kept.clone().without(name);
        assert_eq!((same, none.len()), (kept, 0));
    }
}
