//! Field primitives the caching rules share: the `Cache-Status` field name (RFC 9211), entity
//! tags (RFC 9110 §8.8.3), HTTP-dates (RFC 9110 §5.6.7), singleton fields and optional
//! whitespace (RFC 9110 §5.6.3).

use std::time::{Duration, SystemTime};

use http::header::{DATE, ETAG, HeaderName};
use http::{HeaderMap, HeaderValue};

/// The `Cache-Status` field (RFC 9211).
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// An entity tag (RFC 9110 §8.8.3), borrowed from a header value.
///
/// ```text
/// entity-tag = [ weak ] opaque-tag
/// weak       = %s"W/"
/// opaque-tag = DQUOTE *etagc DQUOTE
/// etagc      = %x21 / %x23-7E / obs-text
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    /// Whether the tag carried the (case-sensitive) `W/` prefix.
    weak: bool,
    /// The opaque-tag including its quotes; the comparison functions compare exactly this.
    opaque: &'a [u8],
}

// === impl EntityTag ===

impl<'a> EntityTag<'a> {
    /// Parses a whole field value holding exactly one entity tag (an `ETag` or `If-Range`
    /// value), allowing surrounding whitespace; `None` when malformed.
    pub(crate) fn parse(value: &'a [u8]) -> Option<Self> {
        let (tag, rest) = Self::parse_prefix(trim_ows(value))?;
        rest.is_empty().then_some(tag)
    }

    /// The entity tag of a stored response: its single `ETag` field, if valid.
    pub(crate) fn of(headers: &'a HeaderMap) -> Option<Self> {
        single_value(headers, &ETAG).and_then(|value| Self::parse(value.as_bytes()))
    }

    /// The tag of a field value taken as received: the weak prefix split off, the rest kept
    /// without checking its syntax. A well-formed tag comes out as [`parse`](Self::parse) gives
    /// it; a malformed one still compares, byte for byte. RFC 9111 §4.3.4 matches the
    /// validators of a 304 with the stored ones this way.
    pub(super) fn loose(value: &'a HeaderValue) -> Self {
        let bytes = value.as_bytes().trim_ascii();
        // The weak prefix is case-sensitive: `weak = %s"W/"`.
        match bytes.strip_prefix(b"W/") {
            Some(opaque) => Self { weak: true, opaque },
            None => Self {
                weak: false,
                opaque: bytes,
            },
        }
    }

    /// Whether the tag is weak (`W/"..."`).
    pub(crate) fn is_weak(&self) -> bool {
        self.weak
    }

    /// RFC 9110 §8.8.3.2 strong comparison: both strong and the opaque-tags identical.
    pub(crate) fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// RFC 9110 §8.8.3.2 weak comparison: the opaque-tags identical, weak or not.
    pub(crate) fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }

    /// Parses one entity tag at the start of `input`, returning it and the bytes after it.
    ///
    /// The opaque-tag ends at the first `"` after the opening one: `etagc` excludes DQUOTE and
    /// has no escapes, while it does include `,` -- so lists must be split by this parser, not
    /// at commas.
    pub(super) fn parse_prefix(input: &'a [u8]) -> Option<(Self, &'a [u8])> {
        let (weak, quoted) = match input.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let after_open = quoted.strip_prefix(b"\"")?;
        let close = after_open.iter().position(|&b| b == b'"')?;
        if !after_open[..close].iter().all(|&b| is_etagc(b)) {
            return None;
        }
        let (opaque, rest) = quoted.split_at(close + 2);
        Some((Self { weak, opaque }, rest))
    }
}

// === field helpers ===

/// The value of a field that must appear on exactly one line; `None` when absent or repeated.
pub(crate) fn single_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Option<&'a HeaderValue> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    lines.next().is_none().then_some(first)
}

/// Parses an HTTP-date in any of the three formats recipients must accept (RFC 9110 §5.6.7):
/// IMF-fixdate, the obsolete RFC 850 and asctime formats. Like lenient caches, it also takes
/// day names, month names and `GMT` in the wrong case ("tue, 15 NOV 1994 08:12:31 gmt").
pub(crate) fn http_date(value: &HeaderValue) -> Option<SystemTime> {
    let text = value.to_str().ok()?.trim_matches(|c| c == ' ' || c == '\t');
    httpdate::parse_http_date(text)
        .or_else(|_| httpdate::parse_http_date(&canonical_case(text)))
        .ok()
}

/// `text` with each word in the case the date formats spell it: `GMT` in capitals, day and month
/// names with a capital initial.
fn canonical_case(text: &str) -> String {
    let mut canonical = String::with_capacity(text.len());
    let mut word_start = true;
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            canonical.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            word_start = false;
        } else {
            canonical.push(c);
            word_start = true;
        }
    }
    canonical.replace("Gmt", "GMT")
}

/// Whether a `Last-Modified` value is a strong validator for a cache comparing it with its own
/// stored entry (RFC 9110 §8.8.2.2): the entry's `Date` is at least one second later.
pub(crate) fn last_modified_is_strong(last_modified: SystemTime, stored: &HeaderMap) -> bool {
    single_value(stored, &DATE)
        .and_then(http_date)
        .is_some_and(|date| date >= last_modified + Duration::from_secs(1))
}

/// Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3) from both ends.
pub(super) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// RFC 9110 §8.8.3 `etagc = %x21 / %x23-7E / obs-text`.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7E).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const T_BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const T_AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

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

    #[test]
    fn entity_tag_parse() {
        // (input, Some((weak, opaque including quotes)) or None)
        type Parsed<'a> = Option<(bool, &'a [u8])>;
        let cases: &[(&[u8], Parsed)] = &[
            (b"\"xyzzy\"", Some((false, b"\"xyzzy\""))),
            (b"W/\"xyzzy\"", Some((true, b"\"xyzzy\""))),
            (b"\"\"", Some((false, b"\"\""))),
            (b"W/\"\"", Some((true, b"\"\""))),
            (b"  \"a\"\t", Some((false, b"\"a\""))),
            // etagc includes ',' and '\' and obs-text; there are no escapes
            (b"\"a,b\"", Some((false, b"\"a,b\""))),
            (b"\"a\\\"", Some((false, b"\"a\\\""))),
            (b"\"caf\xe9\"", Some((false, b"\"caf\xe9\""))),
            // malformed
            (b"xyzzy", None),
            (b"\"xyzzy", None),
            (b"w/\"xyzzy\"", None), // weak = %s"W/" is case-sensitive
            (b"W/ \"x\"", None),
            (b"W/xyzzy", None),
            (b"\"a\"b\"", None),
            (b"\"a\" \"b\"", None),
            (b"\"a\", \"b\"", None),
            (b"\"a b\"", None), // SP is not etagc
            (b"", None),
            (b"*", None),
        ];
        for (input, want) in cases {
            let got = EntityTag::parse(input).map(|t| (t.is_weak(), t.opaque));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn entity_tag_comparison() {
        // RFC 9110 §8.8.3.2 example table.
        let cases: &[(&str, &str, bool, bool)] = &[
            // (tag 1, tag 2, strong match, weak match)
            ("W/\"1\"", "W/\"1\"", false, true),
            ("W/\"1\"", "W/\"2\"", false, false),
            ("W/\"1\"", "\"1\"", false, true),
            ("\"1\"", "\"1\"", true, true),
        ];
        for (a, b, strong, weak) in cases {
            let a = EntityTag::parse(a.as_bytes()).unwrap();
            let b = EntityTag::parse(b.as_bytes()).unwrap();
            assert_eq!(a.strong_eq(&b), *strong, "{a:?} {b:?}");
            assert_eq!(b.strong_eq(&a), *strong, "{a:?} {b:?}");
            assert_eq!(a.weak_eq(&b), *weak, "{a:?} {b:?}");
            assert_eq!(b.weak_eq(&a), *weak, "{a:?} {b:?}");
        }
    }

    #[test]
    fn entity_tag_of_stored_response() {
        assert!(EntityTag::of(&map(&[("etag", "\"a\"")])).is_some());
        assert!(EntityTag::of(&map(&[])).is_none());
        assert!(EntityTag::of(&map(&[("etag", "a")])).is_none());
        assert!(EntityTag::of(&map(&[("etag", "\"a\""), ("etag", "\"b\"")])).is_none());
    }

    #[test]
    fn last_modified_strength() {
        let lm = httpdate::parse_http_date(T0).unwrap();
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("date", T_AFTER)], true),
            (&[("date", T0)], false),
            (&[("date", T_BEFORE)], false),
            (&[], false),
            (&[("date", "junk")], false),
        ];
        for (stored, want) in cases {
            assert_eq!(
                last_modified_is_strong(lm, &map(stored)),
                *want,
                "{stored:?}"
            );
        }
    }

    #[test]
    fn http_dates_in_every_format_and_any_case() {
        let expected = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let parse = |text: &str| http_date(&HeaderValue::from_str(text).unwrap());
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            " Sun, 06 Nov 1994 08:49:37 GMT\t",
            "sun, 06 nov 1994 08:49:37 gmt",
            "SUN, 06 NOV 1994 08:49:37 GMT",
            "SUNDAY, 06-NOV-94 08:49:37 gmt",
            "sun nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(text), Some(expected), "{text:?}");
        }
        for junk in [
            "0",
            "-1",
            "",
            "Sun, 06 Nov 1994",
            "Sun, 32 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }
}
