//! Range requests (RFC 9110 §14, §13.1.5): answering them from a stored representation, and the
//! `Range` and `Content-Range` values that ask for and carry its parts.
//!
//! A single byte range is answered from a stored full response with a 206. Everything else gets
//! the full 200, which RFC 9110 §14.2 always allows ("A server MAY ignore the Range header
//! field"): multiple ranges (no `multipart/byteranges` bodies), other range units, malformed
//! fields, and an `If-Range` that does not hold. Evaluate
//! [`conditional::evaluate`](super::conditional::evaluate) first: RFC 9110 §14.2 ignores
//! `Range` when a conditional `GET` results in 304. Stored parts of a representation
//! ([`stored::parts`](super::stored::parts)) are answered the same way, against the complete
//! length their `Content-Range` named.

use http::header::{CONTENT_RANGE, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::fields::{EntityTag, http_date, last_modified_is_strong, single_value, trim_ows};

/// How to answer a request from a stored full response, as far as `Range` is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// Send the whole stored response with its status: no `Range`, not `GET`, stored status
    /// not 200, `If-Range` false, `Range` malformed or in another unit, or more than one range.
    Full,
    /// Send 206 (Partial Content) with bytes `start..=end` of the content and a
    /// [`content_range`] `Content-Range`.
    Partial {
        /// First byte offset, inclusive.
        start: u64,
        /// Last byte offset, inclusive (already clamped to the content length).
        end: u64,
    },
    /// Send 416 (Range Not Satisfiable) with an [`unsatisfied_range`] `Content-Range`: no
    /// requested range overlaps the content (RFC 9110 §14.1.3, §15.5.17).
    Unsatisfiable,
}

/// Decides how to answer a request's `Range` from a stored response whose content is
/// `body_len` bytes long.
///
/// RFC 9110 §14.2: only `GET` has range semantics; `Range` is ignored unless the unconditional
/// answer would be 200, so the stored status must be 200. `If-Range` (§13.1.5) must hold:
/// an entity-tag must strongly match the stored `ETag` (a weak tag never does); an HTTP-date
/// must equal the stored `Last-Modified` and that `Last-Modified` must be a strong validator,
/// which for a cache means the stored `Date` is at least a second later (§8.8.2.2).
/// The `bytes` unit is case-insensitive (§14.1); forms are `a-b`, `a-` and `-n`, a last
/// position past the end is clamped, and the request is unsatisfiable only when every range
/// is (a first position at or past the end, or `-0`).
#[must_use]
pub(crate) fn evaluate(
    method: &Method,
    request: &HeaderMap,
    stored_status: StatusCode,
    stored: &HeaderMap,
    body_len: u64,
) -> RangeAnswer {
    if method != Method::GET || stored_status != StatusCode::OK {
        return RangeAnswer::Full;
    }
    // Range is not a list field: several field lines cannot form one valid value.
    let Some(range) = single_value(request, &RANGE) else {
        return RangeAnswer::Full;
    };
    if !if_range_holds(request, stored) {
        return RangeAnswer::Full;
    }
    resolve(range.as_bytes(), body_len)
}

/// The `Content-Range` of a 206: `bytes {start}-{end}/{len}` (RFC 9110 §14.4).
///
/// # Panics
///
/// In debug builds, when the range is not `start <= end < len` (a caller bug: [`evaluate`]
/// only produces such ranges).
#[must_use]
pub(crate) fn content_range(start: u64, end: u64, len: u64) -> HeaderValue {
    debug_assert!(
        start <= end && end < len,
        "range {start}-{end} outside 0..{len}"
    );
    digits_value(format!("bytes {start}-{end}/{len}"))
}

/// The `Content-Range` of a 416: `bytes */{len}` (RFC 9110 §14.4, §15.5.17).
#[must_use]
pub(crate) fn unsatisfied_range(len: u64) -> HeaderValue {
    digits_value(format!("bytes */{len}"))
}

/// The `Range` value asking for bytes `start..=end`: `bytes={start}-{end}` (RFC 9110 §14.1.2).
#[must_use]
pub(crate) fn byte_range(start: u64, end: u64) -> HeaderValue {
    digits_value(format!("bytes={start}-{end}"))
}

/// The byte range a `206` carries: `(first, last, complete length)` of its single
/// `Content-Range: bytes first-last/length` (RFC 9110 §14.4); `None` for another unit, an unknown
/// length (`*`), a range that does not fit the length, or anything malformed.
#[must_use]
pub(crate) fn content_range_of(response: &HeaderMap) -> Option<(u64, u64, u64)> {
    let value = single_value(response, &CONTENT_RANGE)?.as_bytes();
    let rest = value.strip_prefix(b"bytes ")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (range, length) = (&rest[..slash], &rest[slash + 1..]);
    let dash = range.iter().position(|&b| b == b'-')?;
    let first = strict_digits(&range[..dash])?;
    let last = strict_digits(&range[dash + 1..])?;
    let length = strict_digits(length)?;
    (first <= last && last < length).then_some((first, last, length))
}

/// `1*DIGIT` as a number; `None` when empty, not digits, or past `u64::MAX`.
fn strict_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A header value from text made only of ASCII letters, digits, spaces and `-*/`.
fn digits_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text)
        .expect("ASCII letters, digits, spaces and '-*/' are valid in a header value")
}

// === If-Range ===

/// RFC 9110 §13.1.5. Without `If-Range` the condition trivially holds.
fn if_range_holds(request: &HeaderMap, stored: &HeaderMap) -> bool {
    let mut lines = request.get_all(IF_RANGE).iter();
    let Some(value) = lines.next() else {
        return true;
    };
    if lines.next().is_some() {
        // `If-Range = entity-tag / HTTP-date` is a single value.
        return false;
    }
    if let Some(tag) = EntityTag::parse(value.as_bytes()) {
        // "the condition is true if it is a strong match", so a weak tag on either side fails.
        return EntityTag::of(stored).is_some_and(|stored| tag.strong_eq(&stored));
    }
    let Some(date) = http_date(value) else {
        // Neither an entity-tag nor an HTTP-date: "Otherwise, the condition is false."
        return false;
    };
    single_value(stored, &LAST_MODIFIED)
        .and_then(http_date)
        .is_some_and(|modified| modified == date && last_modified_is_strong(modified, stored))
}

// === Range ===

/// One `range-spec` of the `bytes` unit (RFC 9110 §14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `int-range = first-pos "-" [ last-pos ]`.
    Int { first: u64, last: Option<u64> },
    /// `suffix-range = "-" suffix-length`.
    Suffix { length: u64 },
}

/// What one range-spec selects from content of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    /// Bytes `start..=end`.
    Bytes(u64, u64),
    /// Satisfiable but selecting nothing: a non-zero suffix of empty content. Served as the
    /// (empty) full response, since a 206 cannot describe zero bytes.
    Empty,
    /// Does not overlap the content.
    Unsatisfiable,
}

/// Parses a `Range` value and applies it to content of `len` bytes.
fn resolve(value: &[u8], len: u64) -> RangeAnswer {
    let Some(set) = byte_range_set(value) else {
        return RangeAnswer::Full;
    };
    let mut count = 0_usize;
    let mut first_satisfiable = None;
    for element in set.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            // RFC 9110 §5.6.1.2: empty list elements are ignored.
            continue;
        }
        let Some(spec) = parse_spec(element) else {
            // An invalid range-spec makes the whole field invalid: ignore it.
            return RangeAnswer::Full;
        };
        count += 1;
        let selection = select(spec, len);
        if selection != Selection::Unsatisfiable && first_satisfiable.is_none() {
            first_satisfiable = Some(selection);
        }
    }
    match (count, first_satisfiable) {
        // `range-set = 1#range-spec`: at least one.
        (0, _) => RangeAnswer::Full,
        // RFC 9110 §14.1.3: unsatisfiable only when no range-spec is satisfiable.
        (_, None) => RangeAnswer::Unsatisfiable,
        (1, Some(Selection::Bytes(start, end))) => RangeAnswer::Partial { start, end },
        // Several ranges (a 200 is allowed, §14.2), or an empty selection.
        _ => RangeAnswer::Full,
    }
}

/// The range-set of a `bytes=...` value; `None` for another unit or no `=`.
///
/// `ranges-specifier = range-unit "=" range-set` with no whitespace around `=`; range units
/// are case-insensitive (RFC 9110 §14.1).
fn byte_range_set(value: &[u8]) -> Option<&[u8]> {
    let value = trim_ows(value);
    let eq = value.iter().position(|&b| b == b'=')?;
    let (unit, set) = value.split_at(eq);
    unit.eq_ignore_ascii_case(b"bytes").then_some(&set[1..])
}

/// Parses one range-spec; `None` when it is not a valid `int-range` or `suffix-range`.
fn parse_spec(element: &[u8]) -> Option<Spec> {
    let dash = element.iter().position(|&b| b == b'-')?;
    let (first, last) = (&element[..dash], &element[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix {
            length: parse_digits(last)?,
        });
    }
    let first = parse_digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_digits(last)?)
    };
    // "An int-range is invalid if the last-pos value is present and less than the first-pos."
    if last.is_some_and(|last| last < first) {
        return None;
    }
    Some(Spec::Int { first, last })
}

/// `1*DIGIT` as a number, saturating at `u64::MAX`: positions that large are past any content
/// anyway, and saturation keeps them ordered for the validity check.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0_u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// RFC 9110 §14.1.3: what a range-spec selects from content of `len` bytes.
fn select(spec: Spec, len: u64) -> Selection {
    match spec {
        // "If the first-pos ... is greater than or equal to the current length ... the
        // int-range is unsatisfiable"; a last-pos past the end means "the remainder".
        Spec::Int { first, .. } if first >= len => Selection::Unsatisfiable,
        Spec::Int { first, last } => {
            let end = last.map_or(len - 1, |last| last.min(len - 1));
            Selection::Bytes(first, end)
        }
        // A zero suffix-length is unsatisfiable; a longer one than the content is all of it.
        Spec::Suffix { length: 0 } => Selection::Unsatisfiable,
        Spec::Suffix { .. } if len == 0 => Selection::Empty,
        Spec::Suffix { length } => Selection::Bytes(len - length.min(len), len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderName;

    const FULL: RangeAnswer = RangeAnswer::Full;
    const UNSATISFIABLE: RangeAnswer = RangeAnswer::Unsatisfiable;

    fn partial(start: u64, end: u64) -> RangeAnswer {
        RangeAnswer::Partial { start, end }
    }

    fn map(lines: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn get(range: &str, len: u64) -> RangeAnswer {
        evaluate(
            &Method::GET,
            &map(&[("range", range)]),
            StatusCode::OK,
            &HeaderMap::new(),
            len,
        )
    }

    #[test]
    fn range_table() {
        // (Range, content length, expected) -- RFC 9110 §14.1.2, §14.1.3 examples included
        let cases: &[(&str, u64, RangeAnswer)] = &[
            ("bytes=0-499", 10000, partial(0, 499)),
            ("bytes=500-999", 10000, partial(500, 999)),
            ("bytes=-500", 10000, partial(9500, 9999)),
            ("bytes=9500-", 10000, partial(9500, 9999)),
            ("bytes=0-0", 10000, partial(0, 0)),
            ("bytes=-1", 10000, partial(9999, 9999)),
            ("bytes=0-", 10000, partial(0, 9999)),
            // last-pos past the end is clamped
            ("bytes=0-99999", 10000, partial(0, 9999)),
            ("bytes=9999-10000", 10000, partial(9999, 9999)),
            ("bytes=5-18446744073709551615", 10, partial(5, 9)),
            ("bytes=5-99999999999999999999999", 10, partial(5, 9)),
            // suffix longer than the content: all of it
            ("bytes=-20000", 10000, partial(0, 9999)),
            ("bytes=-99999999999999999999999", 10, partial(0, 9)),
            // the unit is case-insensitive (§14.1)
            ("Bytes=0-1", 10, partial(0, 1)),
            ("BYTES=0-1", 10, partial(0, 1)),
            // OWS around list elements, empty elements
            ("bytes=0-1 ", 10, partial(0, 1)),
            ("bytes=,0-1", 10, partial(0, 1)),
            ("bytes=0-1,", 10, partial(0, 1)),
            ("bytes= 0-1", 10, partial(0, 1)),
            // unsatisfiable: first-pos at or past the end, or -0
            ("bytes=10000-", 10000, UNSATISFIABLE),
            ("bytes=10000-20000", 10000, UNSATISFIABLE),
            ("bytes=99999999999999999999999-", 10, UNSATISFIABLE),
            ("bytes=-0", 10000, UNSATISFIABLE),
            ("bytes=0-", 0, UNSATISFIABLE),
            ("bytes=0-0", 0, UNSATISFIABLE),
            ("bytes=-0", 0, UNSATISFIABLE),
            // only when *all* ranges are unsatisfiable
            ("bytes=10-20, 30-", 5, UNSATISFIABLE),
            ("bytes=-0, 5-", 5, UNSATISFIABLE),
            ("bytes=10-20, 0-1", 5, FULL),
            ("bytes=-0, -1", 5, FULL),
            // a non-zero suffix of empty content is satisfiable but selects nothing: 200
            ("bytes=-5", 0, FULL),
            // more than one range: a full 200 (§14.2 allows ignoring Range)
            ("bytes=0-1,3-4", 10, FULL),
            ("bytes=0-1, 0-1", 10, FULL),
            ("bytes=500-600,601-999", 10000, FULL),
            // syntactically invalid: ignored
            ("bytes=5-4", 10, FULL),
            ("bytes=5-4, 0-1", 10, FULL),
            ("bytes=0-1, x", 10, FULL),
            ("bytes=", 10, FULL),
            ("bytes=,", 10, FULL),
            ("bytes=-", 10, FULL),
            ("bytes=a-b", 10, FULL),
            ("bytes=0-1-2", 10, FULL),
            ("bytes=+1-2", 10, FULL),
            ("bytes=0 - 1", 10, FULL),
            ("bytes=1", 10, FULL),
            ("bytes 0-1", 10, FULL),
            ("bytes =0-1", 10, FULL),
            ("=0-1", 10, FULL),
            ("0-1", 10, FULL),
            ("", 10, FULL),
            // other units are not understood: ignored
            ("items=0-1", 10, FULL),
            ("byte=0-1", 10, FULL),
            ("bytesx=0-1", 10, FULL),
        ];
        for (range, len, want) in cases {
            assert_eq!(get(range, *len), *want, "Range: {range} (len {len})");
        }
    }

    #[test]
    fn only_get_on_a_stored_200() {
        let request = map(&[("range", "bytes=0-1")]);
        let stored = HeaderMap::new();
        let cases: &[(Method, StatusCode, RangeAnswer)] = &[
            (Method::GET, StatusCode::OK, partial(0, 1)),
            (Method::HEAD, StatusCode::OK, FULL),
            (Method::POST, StatusCode::OK, FULL),
            (Method::PUT, StatusCode::OK, FULL),
            (Method::GET, StatusCode::NON_AUTHORITATIVE_INFORMATION, FULL),
            (Method::GET, StatusCode::PARTIAL_CONTENT, FULL),
            (Method::GET, StatusCode::NOT_FOUND, FULL),
            (Method::GET, StatusCode::MOVED_PERMANENTLY, FULL),
        ];
        for (method, status, want) in cases {
            assert_eq!(
                evaluate(method, &request, *status, &stored, 10),
                *want,
                "{method} {status}"
            );
        }
    }

    #[test]
    fn no_range_or_repeated_range_is_full() {
        let stored = HeaderMap::new();
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("range", "bytes=0-1"), ("range", "bytes=2-3")],
            &[("range", "bytes=0-1"), ("range", "bytes=0-1")],
            // If-Range without Range is ignored (§13.1.5)
            &[("if-range", "\"a\"")],
        ];
        for request in cases {
            assert_eq!(
                evaluate(&Method::GET, &map(request), StatusCode::OK, &stored, 10),
                FULL,
                "{request:?}"
            );
        }
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const LM_ASCTIME: &str = "Sun Nov  6 08:49:37 1994";
    const LM_PLUS_1: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
    const LM_MINUS_1: &str = "Sun, 06 Nov 1994 08:49:36 GMT";

    #[test]
    fn if_range_table() {
        // (If-Range lines, stored lines, expected for "bytes=0-1" on 10 bytes)
        type Lines<'a> = &'a [(&'a str, &'a str)];
        let hit = partial(0, 1);
        let cases: &[(&[&str], Lines, RangeAnswer)] = &[
            // entity-tag: strong comparison only (§13.1.5, §8.8.3.2)
            (&["\"a\""], &[("etag", "\"a\"")], hit),
            (&["\"a\""], &[("etag", "\"b\"")], FULL),
            (&["W/\"a\""], &[("etag", "W/\"a\"")], FULL),
            (&["W/\"a\""], &[("etag", "\"a\"")], FULL),
            (&["\"a\""], &[("etag", "W/\"a\"")], FULL),
            (&["\"a\""], &[], FULL),
            (
                &["\"a\""],
                &[("last-modified", LM), ("date", LM_PLUS_1)],
                FULL,
            ),
            (&["\"a,b\""], &[("etag", "\"a,b\"")], hit),
            (&[" \"a\" "], &[("etag", "\"a\"")], hit),
            // a list is not an If-Range value
            (&["\"a\", \"b\""], &[("etag", "\"a\"")], FULL),
            // HTTP-date: exact match with a strong Last-Modified (Date >= LM + 1s, §8.8.2.2)
            (&[LM], &[("last-modified", LM), ("date", LM_PLUS_1)], hit),
            (
                &[LM_ASCTIME],
                &[("last-modified", LM), ("date", LM_PLUS_1)],
                hit,
            ),
            (&[LM], &[("last-modified", LM), ("date", LM)], FULL),
            (&[LM], &[("last-modified", LM)], FULL),
            (
                &[LM_PLUS_1],
                &[("last-modified", LM), ("date", LM_PLUS_1)],
                FULL,
            ),
            (
                &[LM_MINUS_1],
                &[("last-modified", LM), ("date", LM_PLUS_1)],
                FULL,
            ),
            (&[LM], &[("etag", "\"a\""), ("date", LM_PLUS_1)], FULL),
            (
                &[LM],
                &[
                    ("last-modified", LM),
                    ("date", LM_PLUS_1),
                    ("etag", "\"a\""),
                ],
                hit,
            ),
            // neither an entity-tag nor a date: false
            (&["a"], &[("etag", "\"a\"")], FULL),
            (
                &["tomorrow"],
                &[("last-modified", LM), ("date", LM_PLUS_1)],
                FULL,
            ),
            (&[""], &[("etag", "\"a\"")], FULL),
            // repeated If-Range: not a valid single value
            (&["\"a\"", "\"a\""], &[("etag", "\"a\"")], FULL),
        ];
        for (if_range, stored, want) in cases {
            let mut request: Vec<_> = if_range.iter().map(|v| ("if-range", *v)).collect();
            request.push(("range", "bytes=0-1"));
            let got = evaluate(
                &Method::GET,
                &map(&request),
                StatusCode::OK,
                &map(stored),
                10,
            );
            assert_eq!(got, *want, "If-Range {if_range:?} vs {stored:?}");
        }
    }

    #[test]
    fn if_range_false_beats_unsatisfiable() {
        // §13.1.5: when If-Range is false, Range is ignored entirely -- a 200, not a 416.
        let request = map(&[("range", "bytes=100-"), ("if-range", "\"old\"")]);
        let stored = map(&[("etag", "\"new\"")]);
        assert_eq!(
            evaluate(&Method::GET, &request, StatusCode::OK, &stored, 10),
            FULL
        );
        let request = map(&[("range", "bytes=100-"), ("if-range", "\"new\"")]);
        assert_eq!(
            evaluate(&Method::GET, &request, StatusCode::OK, &stored, 10),
            UNSATISFIABLE
        );
    }

    #[test]
    fn content_range_of_a_206() {
        // (Content-Range lines, (first, last, complete length))
        type Case<'a> = (&'a [&'a str], Option<(u64, u64, u64)>);
        let cases: &[Case] = &[
            (&["bytes 0-3/10"], Some((0, 3, 10))),
            (&["bytes 9-9/10"], Some((9, 9, 10))),
            (&["bytes 0-9/10"], Some((0, 9, 10))),
            // the length must be known, and the range inside it
            (&["bytes 0-3/*"], None),
            (&["bytes 0-10/10"], None),
            (&["bytes 4-3/10"], None),
            (&["bytes */10"], None),
            // another unit, malformed, repeated, absent
            (&["items 0-3/10"], None),
            (&["bytes=0-3/10"], None),
            (&["bytes 0-3"], None),
            (&["bytes 0 -3/10"], None),
            (&["bytes 0-3/10/"], None),
            (&["bytes 0-3/99999999999999999999999"], None),
            (&["bytes 0-3/10", "bytes 0-3/10"], None),
            (&[], None),
        ];
        for (lines, want) in cases {
            let fields: Vec<_> = lines.iter().map(|v| ("content-range", *v)).collect();
            assert_eq!(content_range_of(&map(&fields)), *want, "{lines:?}");
        }
        assert_eq!(byte_range(5, 9), "bytes=5-9");
    }

    #[test]
    fn content_range_values() {
        let cases: &[(HeaderValue, &str)] = &[
            (content_range(0, 99, 1000), "bytes 0-99/1000"),
            (content_range(0, 0, 1), "bytes 0-0/1"),
            (content_range(999, 999, 1000), "bytes 999-999/1000"),
            (
                content_range(u64::MAX - 2, u64::MAX - 2, u64::MAX),
                "bytes 18446744073709551613-18446744073709551613/18446744073709551615",
            ),
            (unsatisfied_range(1000), "bytes */1000"),
            (unsatisfied_range(0), "bytes */0"),
        ];
        for (value, want) in cases {
            assert_eq!(value, want);
        }
    }
}
