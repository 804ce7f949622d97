//! Tests of stored parts: merging, coverage, completion and the validators that allow them.

use std::time::{Duration, UNIX_EPOCH};

use http::{Method, StatusCode};

use super::*;
use crate::http::policy::PolicySettings;

const TEXT: &[u8] = b"0123456789";
const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const A_SECOND_LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

fn fields(lines: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in lines {
        headers.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

/// The part `start..=end` of [`TEXT`], sent with `lines`.
fn part_with(lines: &[(&str, &str)], start: u64, end: u64) -> Part {
    let headers = fields(lines);
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let policy = ResponsePolicy::new(
        &Method::GET,
        &HeaderMap::new(),
        StatusCode::OK,
        &headers,
        now,
        now,
        &PolicySettings::default(),
    );
    Part {
        headers,
        policy,
        start,
        body: Bytes::copy_from_slice(&TEXT[start as usize..=end as usize]),
        length: TEXT.len() as u64,
    }
}

fn part(start: u64, end: u64) -> Part {
    part_with(&[("etag", "\"v1\"")], start, end)
}

/// Parts of [`TEXT`] added in order.
fn stored(parts: &[(u64, u64)]) -> StoredParts {
    parts
        .iter()
        .fold(None, |stored, &(start, end)| {
            StoredParts::with(stored.as_ref(), part(start, end))
        })
        .expect("parts with a strong entity tag are stored")
}

fn covered(text: &str) -> Coverage {
    Coverage::Covered(Bytes::copy_from_slice(text.as_bytes()))
}

fn missing(start: u64, end: u64) -> Coverage {
    Coverage::Missing { start, end }
}

#[test]
fn coverage_table() {
    // (stored parts, asked range, what the parts hold of it)
    type Case<'a> = (&'a [(u64, u64)], (u64, u64), Coverage);
    let cases: &[Case] = &[
        (&[(0, 4)], (0, 4), covered("01234")),
        (&[(0, 4)], (1, 3), covered("123")),
        (&[(0, 4)], (4, 4), covered("4")),
        (&[(2, 4)], (0, 4), missing(0, 1)),
        (&[(0, 4)], (3, 9), missing(5, 9)),
        (&[(0, 4)], (5, 9), missing(5, 9)),
        (&[(0, 1), (8, 9)], (0, 9), missing(2, 7)),
        // several runs missing: the span from the first missing byte to the last
        (&[(0, 1), (4, 5)], (0, 9), missing(2, 9)),
        (&[(3, 4)], (0, 9), missing(0, 9)),
        (&[(0, 1), (4, 5), (8, 9)], (2, 7), missing(2, 7)),
        (&[(0, 1), (4, 5), (8, 9)], (0, 9), missing(2, 7)),
        (&[(2, 3), (6, 7)], (0, 9), missing(0, 9)),
        (&[(0, 1), (4, 5), (8, 9)], (4, 7), missing(6, 7)),
        // touching parts merge into one run
        (&[(0, 4), (5, 9)], (3, 6), covered("3456")),
        // overlapping parts too, in either order
        (&[(0, 6), (4, 9)], (0, 9), covered("0123456789")),
        (&[(4, 9), (0, 6)], (0, 9), covered("0123456789")),
        (&[(0, 1), (6, 7), (1, 6)], (0, 7), covered("01234567")),
        (&[(2, 3), (0, 9)], (0, 9), covered("0123456789")),
    ];
    for (parts, (start, end), want) in cases {
        assert_eq!(
            stored(parts).coverage(*start, *end),
            *want,
            "{parts:?} asked {start}-{end}"
        );
    }
}

#[test]
fn parts_are_complete_when_they_cover_every_byte() {
    assert_eq!(stored(&[(0, 8)]).complete(), None);
    assert_eq!(stored(&[(1, 9)]).complete(), None);
    assert_eq!(stored(&[(0, 4), (6, 9)]).complete(), None);
    let whole = stored(&[(0, 4), (6, 9), (5, 5)]);
    assert_eq!(whole.complete(), Some(Bytes::from_static(TEXT)));
    assert_eq!(whole.stored_bytes(), 10);
    assert_eq!(stored(&[(0, 4), (6, 9)]).stored_bytes(), 9);
}

#[test]
fn parts_of_another_representation_replace_the_stored_ones() {
    let first = stored(&[(0, 4)]);
    // another entity tag
    let other = StoredParts::with(Some(&first), part_with(&[("etag", "\"v2\"")], 5, 9)).unwrap();
    assert_eq!(other.coverage(0, 9), missing(0, 4));
    assert_eq!(other.if_range(), "\"v2\"");
    // another length
    let mut longer = part(5, 9);
    longer.length = 20;
    let other = StoredParts::with(Some(&first), longer).unwrap();
    assert_eq!((other.length(), other.stored_bytes()), (20, 5));
    // the same: merged, the newest fields kept
    let newer = part_with(&[("etag", "\"v1\""), ("x-newest", "yes")], 5, 9);
    let merged = StoredParts::with(Some(&first), newer).unwrap();
    assert_eq!(merged.complete(), Some(Bytes::from_static(TEXT)));
    assert_eq!(merged.headers()["x-newest"], "yes");
}

#[test]
fn only_parts_with_a_strong_validator_are_stored() {
    let strong_date = [("last-modified", LAST_MODIFIED), ("date", A_SECOND_LATER)];
    // (fields, If-Range value when stored)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: &[Case] = &[
        (&[("etag", "\"v1\"")], Some("\"v1\"")),
        (&[("etag", "W/\"v1\"")], None),
        (&[("etag", "v1")], None),
        (&[("etag", "\"a\""), ("etag", "\"b\"")], None),
        (&strong_date, Some(LAST_MODIFIED)),
        // a Last-Modified as late as the Date is weak (RFC 9110 §8.8.2.2)
        (
            &[("last-modified", LAST_MODIFIED), ("date", LAST_MODIFIED)],
            None,
        ),
        (&[("last-modified", LAST_MODIFIED)], None),
        // with an entity tag, only the tag counts: a weak one is not made up for by a date
        (
            &[
                ("etag", "W/\"v1\""),
                ("last-modified", LAST_MODIFIED),
                ("date", A_SECOND_LATER),
            ],
            None,
        ),
        (&[], None),
    ];
    for (lines, want) in cases {
        let stored = StoredParts::with(None, part_with(lines, 0, 4));
        assert_eq!(
            stored
                .as_ref()
                .map(|parts| parts.if_range().to_str().unwrap()),
            *want,
            "{lines:?}"
        );
    }
    // Two dates combine only when they are the same date.
    let first = StoredParts::with(None, part_with(&strong_date, 0, 4)).unwrap();
    let later = [
        ("last-modified", A_SECOND_LATER),
        ("date", "Sun, 06 Nov 1994 08:50:00 GMT"),
    ];
    let same = StoredParts::with(Some(&first), part_with(&strong_date, 5, 9)).unwrap();
    assert!(same.complete().is_some());
    let other = StoredParts::with(Some(&first), part_with(&later, 5, 9)).unwrap();
    assert_eq!(other.stored_bytes(), 5);
}

#[test]
fn a_part_that_does_not_fit_its_length_is_not_stored() {
    let mut past_the_end = part(5, 9);
    past_the_end.length = 8;
    assert!(StoredParts::with(None, past_the_end).is_none());
    let mut empty = part(0, 0);
    empty.body = Bytes::new();
    assert!(StoredParts::with(None, empty).is_none());
    let mut overflowing = part(0, 4);
    overflowing.start = u64::MAX - 1;
    assert!(StoredParts::with(None, overflowing).is_none());
}
