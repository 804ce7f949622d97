//! Header values packed into one buffer: their bytes, then a table of where each one ends.
//!
//! A stored response keeps its values this way rather than as a list of [`HeaderValue`]s (40
//! bytes a line, in an allocation of its own for every entry): the bytes and the table follow
//! the body in the body's buffer, so a value costs its bytes and 4 more, and the entry one
//! allocation fewer. A value read back is a slice of the buffer (a reference count, no copy),
//! checked again as a header value on the way out because the code has no `unsafe` to skip it.
//!
//! Layout: `[the values' bytes, in order][for each value, u32 LE: where it ends, SENSITIVE
//! set if it is sensitive][u32 LE: the number of values]`.

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

/// Bytes of one number of the table.
const WORD: usize = std::mem::size_of::<u32>();

/// The bit of a value's end that tells it is sensitive (never compressed into an HPACK table).
const SENSITIVE: u32 = 1 << 31;

/// Header values in one buffer (see the module's docs).
#[derive(Debug, Clone)]
pub(crate) struct PackedValues {
    /// The bytes, the table and the count.
    packed: Bytes,
}

impl PackedValues {
    /// The bytes `values` take packed, for a buffer to be made with room for them.
    pub(crate) fn room_for<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> usize {
        let (count, bytes) = values.into_iter().fold((0, 0), |(count, bytes), value| {
            (count + 1, bytes + value.len())
        });
        bytes + WORD * (count + 1)
    }

    /// `values` packed behind what `buffer` holds; also the whole buffer, frozen, for the
    /// caller's share of what it held before.
    pub(crate) fn pack<'a>(
        values: impl IntoIterator<Item = &'a HeaderValue>,
        mut buffer: BytesMut,
    ) -> (Self, Bytes) {
        let start = buffer.len();
        let mut ends = Vec::new();
        for value in values {
            buffer.extend_from_slice(value.as_bytes());
            let end = u32::try_from(buffer.len() - start)
                .ok()
                .filter(|end| end & SENSITIVE == 0)
                .expect("one response head's values are far below 2 GiB: hyper reads a head into a buffer of at most a few hundred KiB");
            ends.push(if value.is_sensitive() {
                end | SENSITIVE
            } else {
                end
            });
        }
        for end in &ends {
            buffer.put_u32_le(*end);
        }
        let count = u32::try_from(ends.len()).expect("fewer values than bytes, see above");
        buffer.put_u32_le(count);
        let buffer = buffer.freeze();
        let packed = Self {
            packed: buffer.slice(start..),
        };
        (packed, buffer)
    }

    /// The number of values.
    pub(crate) fn len(&self) -> usize {
        self.word(self.packed.len().saturating_sub(WORD))
            .map_or(0, |count| count as usize)
    }

    /// The value at `index`, sharing the buffer.
    pub(crate) fn get(&self, index: usize) -> Option<HeaderValue> {
        let count = self.len();
        if index >= count {
            return None;
        }
        let table = self.packed.len() - WORD * (count + 1);
        let end_of = |index: usize| self.word(table + WORD * index).unwrap_or_default();
        let start = index
            .checked_sub(1)
            .map_or(0, |before| end_of(before) & !SENSITIVE);
        let end = end_of(index);
        let bytes = self
            .packed
            .slice(start as usize..(end & !SENSITIVE) as usize);
        let mut value = HeaderValue::from_maybe_shared(bytes)
            .expect("the bytes were a header value's when they were packed");
        value.set_sensitive(end & SENSITIVE != 0);
        Some(value)
    }

    /// The values, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = HeaderValue> + '_ {
        self.iter_from(0)
    }

    /// The values from the one at `first` on, in order (those before it are not read).
    pub(crate) fn iter_from(&self, first: usize) -> impl Iterator<Item = HeaderValue> + '_ {
        (first..self.len()).filter_map(|index| self.get(index))
    }

    /// The bytes the values and their table take.
    pub(crate) fn bytes(&self) -> usize {
        self.packed.len()
    }

    /// The number at `at` in the packed bytes.
    fn word(&self, at: usize) -> Option<u32> {
        let bytes = self.packed.get(at..at + WORD)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(texts: &[&'static str]) -> Vec<HeaderValue> {
        texts
            .iter()
            .map(|text| HeaderValue::from_static(text))
            .collect()
    }

    #[test]
    fn values_come_back_in_order_behind_what_the_buffer_held() {
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(b"body");
        let sent = values(&["text/plain", "", "\"etag\"", "max-age=60"]);
        let room = PackedValues::room_for(&sent);
        assert_eq!(room, 10 + 6 + 10 + 4 * 5);
        let (packed, buffer) = PackedValues::pack(&sent, buffer);
        assert_eq!(buffer.len(), 4 + room);
        assert_eq!(packed.bytes(), room);
        assert!(buffer.starts_with(b"bodytext/plain\"etag\"max-age=60"));
        assert_eq!(packed.len(), 4);
        assert_eq!(packed.iter().collect::<Vec<_>>(), sent);
        assert_eq!(packed.iter_from(2).collect::<Vec<_>>(), sent[2..]);
        assert_eq!(packed.iter_from(5).count(), 0);
        assert_eq!(packed.get(4), None);
        let etag = packed.get(2).expect("packed");
        assert_eq!(
            etag.as_bytes().as_ptr(),
            buffer[14..].as_ptr(),
            "not copied"
        );
    }

    #[test]
    fn sensitivity_is_kept() {
        let mut sent = values(&["secret", "open"]);
        sent[0].set_sensitive(true);
        let (packed, _) = PackedValues::pack(&sent, BytesMut::new());
        assert!(packed.get(0).expect("packed").is_sensitive());
        assert!(!packed.get(1).expect("packed").is_sensitive());
        assert_eq!(packed.get(0).expect("packed"), "secret");
    }

    #[test]
    fn no_values_pack_to_a_count_alone() {
        let (packed, buffer) = PackedValues::pack(&[], BytesMut::new());
        assert_eq!((packed.len(), buffer.len()), (0, WORD));
        assert_eq!(packed.len(), 0);
        assert_eq!((packed.get(0), packed.bytes()), (None, WORD));
    }
}
