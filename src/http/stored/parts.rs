//! A representation stored in parts: the bodies of `206` responses to range requests, kept until
//! they cover what later ranges ask for, and combined into the whole representation once they
//! cover all of it (RFC 9111 §3.3-3.4).
//!
//! Parts are combined only when they carry the same strong validator (§3.4): a strong entity tag,
//! or, without an entity tag, a `Last-Modified` that is a strong validator (RFC 9110 §8.8.2.2).
//! Without one, nothing says two parts belong to the same representation, so such a `206` is not
//! stored at all.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::object::Variant;
use crate::http::fields::{EntityTag, http_date, last_modified_is_strong, single_value};
use crate::http::policy::{PolicySettings, ResponsePolicy};
use crate::http::range::content_range_of;
use crate::http::vary::VaryKey;

/// Bytes counted per stored representation on top of its parts' bodies: its fields, its policy,
/// the map and the store's entry.
const PARTS_OVERHEAD_BYTES: usize = 1024;

/// The strong validator a part was sent with, which decides whether parts may be combined.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Validator {
    /// A strong entity tag's opaque-tag, quotes included.
    EntityTag(Bytes),
    /// A strong `Last-Modified`.
    LastModified(SystemTime),
}

/// One `206` response's part of a representation, as received.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// The response's fields without `Content-Range` and `Content-Length`: those of the
    /// representation (RFC 9111 §3.4 takes the newest part's).
    pub headers: HeaderMap,
    /// Freshness and reuse rules of the representation, judged from those fields.
    pub policy: ResponsePolicy,
    /// Offset of the part's first byte.
    pub start: u64,
    /// The part's bytes.
    pub body: Bytes,
    /// The complete length of the representation (`Content-Range: bytes a-b/length`).
    pub length: u64,
}

// === impl Part ===

impl Part {
    /// The part a `206` to a `GET` carries, its body not yet read (`body` is empty), with the
    /// offset of its last byte; `None` unless it has one known range (`Content-Range: bytes
    /// a-b/length`), no `Vary`, and fields that allow storing the representation, judged as its
    /// `200` would be with `request`'s fields, `times` (request and response) and `settings`.
    pub(crate) fn of_response(
        response: &http::response::Parts,
        request: &HeaderMap,
        (request_time, response_time): (SystemTime, SystemTime),
        settings: &PolicySettings,
    ) -> Option<(Self, u64)> {
        if response.status != StatusCode::PARTIAL_CONTENT
            || response.headers.contains_key(header::VARY)
        {
            return None;
        }
        let (first, last, length) = content_range_of(&response.headers)?;
        let mut headers = response.headers.clone();
        headers.remove(header::CONTENT_RANGE);
        headers.remove(header::CONTENT_LENGTH);
        let policy = ResponsePolicy::new(
            &Method::GET,
            request,
            StatusCode::OK,
            &headers,
            request_time,
            response_time,
            settings,
        );
        policy.storable().ok()?;
        let part = Self {
            headers,
            policy,
            start: first,
            body: Bytes::new(),
            length,
        };
        Some((part, last))
    }
}

/// The stored parts of one representation: disjoint byte ranges sharing one strong validator.
#[derive(Debug, Clone)]
pub(crate) struct StoredParts {
    /// The newest part's fields (see [`Part::headers`]).
    headers: HeaderMap,
    /// The newest part's policy.
    policy: ResponsePolicy,
    /// What every part shares.
    validator: Validator,
    /// The `If-Range` value that asks the origin for more of this same representation.
    if_range: HeaderValue,
    /// The complete length of the representation.
    length: u64,
    /// The stored bytes by their first offset; ranges neither overlap nor touch.
    ranges: BTreeMap<u64, Bytes>,
}

/// What the stored parts hold of a byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Coverage {
    /// All of it.
    Covered(Bytes),
    /// Not all of it: `start..=end` spans the missing bytes, from the first to the last. It is
    /// the one run missing, or the span over several runs (and the stored bytes between them,
    /// asked for again: one origin request rather than one per run).
    Missing {
        /// First missing byte.
        start: u64,
        /// Last missing byte.
        end: u64,
    },
}

// === impl StoredParts ===

impl StoredParts {
    /// `stored` with `part` added, the part's fields and policy replacing the stored ones; or
    /// `part` alone when it belongs to another representation (another validator or length).
    /// `None` when `part` has no strong validator or does not fit its own length.
    pub(crate) fn with(stored: Option<&Self>, part: Part) -> Option<Self> {
        let end = part.start.checked_add(part.body.len() as u64)?;
        if part.body.is_empty() || end > part.length {
            return None;
        }
        let (validator, if_range) = strong_validator(&part.headers)?;
        let mut ranges = match stored {
            Some(stored) if stored.validator == validator && stored.length == part.length => {
                stored.ranges.clone()
            }
            _ => BTreeMap::new(),
        };
        insert_range(&mut ranges, part.start, part.body);
        Some(Self {
            headers: part.headers,
            policy: part.policy,
            validator,
            if_range,
            length: part.length,
            ranges,
        })
    }

    /// What the parts hold of bytes `start..=end`.
    pub(crate) fn coverage(&self, start: u64, end: u64) -> Coverage {
        if let Some((first, last)) = self.run_holding(start) {
            if end <= last {
                let bytes = &self.ranges[&first];
                let from = usize::try_from(start - first).unwrap_or(usize::MAX);
                let to = usize::try_from(end - first).unwrap_or(usize::MAX);
                return Coverage::Covered(bytes.slice(from..=to));
            }
        }
        // Runs neither overlap nor touch, so the byte after the run holding `start` is missing,
        // and so is the byte before the run holding `end`.
        Coverage::Missing {
            start: self.run_holding(start).map_or(start, |(_, last)| last + 1),
            end: self.run_holding(end).map_or(end, |(first, _)| first - 1),
        }
    }

    /// The first and last offsets of the stored run that holds byte `offset`, if one does.
    fn run_holding(&self, offset: u64) -> Option<(u64, u64)> {
        let (&first, bytes) = self.ranges.range(..=offset).next_back()?;
        let last = first + bytes.len() as u64 - 1;
        (last >= offset).then_some((first, last))
    }

    /// The whole representation, when the parts cover all of it.
    pub(crate) fn complete(&self) -> Option<Bytes> {
        let (&first, bytes) = self.ranges.first_key_value()?;
        (first == 0 && bytes.len() as u64 == self.length).then(|| bytes.clone())
    }

    /// The whole response the parts make once they cover every byte: a `200` with the
    /// representation's fields, selected by `request`'s fields should they name any (RFC 9111
    /// §3.4). `None` while bytes are missing.
    pub(crate) fn whole(&self, request: &HeaderMap) -> Option<Variant> {
        let body = self.complete()?;
        let vary = VaryKey::capture(&self.headers, request)?;
        let mut headers = self.headers.clone();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.length));
        // One buffer for the body and the fields, as a response read from the origin has.
        let mut buffer = BytesMut::with_capacity(body.len() + Variant::room_for(&headers));
        buffer.extend_from_slice(&body);
        Some(Variant::read(
            StatusCode::OK,
            &headers,
            buffer,
            self.policy.clone(),
            vary,
        ))
    }

    /// The representation's fields (the newest part's, without `Content-Range`).
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The representation's freshness and reuse rules (the newest part's).
    pub(crate) fn policy(&self) -> &ResponsePolicy {
        &self.policy
    }

    /// The `If-Range` value asking the origin for more of this representation: the parts'
    /// strong entity tag, or their `Last-Modified`.
    pub(crate) fn if_range(&self) -> &HeaderValue {
        &self.if_range
    }

    /// The complete length of the representation.
    pub(crate) fn length(&self) -> u64 {
        self.length
    }

    /// Bytes of the representation stored.
    pub(crate) fn stored_bytes(&self) -> u64 {
        self.ranges.values().map(|bytes| bytes.len() as u64).sum()
    }

    /// What the parts cost in memory, for the store's weigher.
    pub(crate) fn weight_bytes(&self) -> u32 {
        let fields: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        u32::try_from(self.stored_bytes())
            .unwrap_or(u32::MAX)
            .saturating_add(u32::try_from(fields + PARTS_OVERHEAD_BYTES).unwrap_or(u32::MAX))
    }
}

/// Adds `body` at `start` to `ranges`, merging it with the runs it overlaps or touches (the new
/// bytes win where they overlap: with a shared strong validator they are the same bytes anyway).
fn insert_range(ranges: &mut BTreeMap<u64, Bytes>, start: u64, body: Bytes) {
    let end = start + body.len() as u64;
    let neighbours: Vec<u64> = ranges
        .range(..=end)
        .rev()
        .take_while(|&(&first, bytes)| first + bytes.len() as u64 >= start)
        .map(|(&first, _)| first)
        .collect();
    if neighbours.is_empty() {
        ranges.insert(start, body);
        return;
    }
    let first = neighbours.iter().copied().fold(start, u64::min);
    let last = neighbours
        .iter()
        .map(|first| first + ranges[first].len() as u64)
        .fold(end, u64::max);
    let mut merged = BytesMut::zeroed(usize::try_from(last - first).unwrap_or(usize::MAX));
    for neighbour in neighbours {
        let bytes = ranges.remove(&neighbour).expect("listed just above");
        let at = (neighbour - first) as usize;
        merged[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    let at = (start - first) as usize;
    merged[at..at + body.len()].copy_from_slice(&body);
    ranges.insert(first, merged.freeze());
}

/// The strong validator of a part's fields and the `If-Range` value naming it (RFC 9110
/// §13.1.5: an entity tag when there is one, and only a strong one; a date only without an
/// entity tag, and only a strong `Last-Modified`).
fn strong_validator(headers: &HeaderMap) -> Option<(Validator, HeaderValue)> {
    if headers.contains_key(header::ETAG) {
        let value = single_value(headers, &header::ETAG)?;
        let tag = EntityTag::parse(value.as_bytes())?;
        return (!tag.is_weak()).then(|| {
            let opaque = Bytes::copy_from_slice(value.as_bytes().trim_ascii());
            (Validator::EntityTag(opaque), value.clone())
        });
    }
    let value = single_value(headers, &header::LAST_MODIFIED)?;
    let modified = http_date(value)?;
    last_modified_is_strong(modified, headers)
        .then(|| (Validator::LastModified(modified), value.clone()))
}

#[cfg(test)]
mod tests;
