//! Conditional requests answered from the cache (RFC 9110 §13, RFC 9111 §4.3.2).
//!
//! A cache evaluates only the validation preconditions, `If-None-Match` and `If-Modified-Since`,
//! against a stored response; `If-Match` and `If-Unmodified-Since` "are not applicable to a
//! cache" (RFC 9111 §4.3.2) and go to the origin. `If-Range` belongs to range handling
//! (`range.rs`). The proxy evaluates these before `Range`: RFC 9110 §14.2 ignores `Range` when
//! a conditional `GET` results in 304.

use http::header::{
    CONNECTION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    DATE, ETAG, HeaderName, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, Method, StatusCode};

use super::fields::{EntityTag, http_date, single_value, trim_ows};

/// What a conditional request asks of a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// A validation precondition is false: answer 304 (Not Modified) with
    /// [`not_modified_headers`].
    NotModified,
    /// No precondition stops the request: answer normally (full or range response).
    Proceed,
}

/// Evaluates a request's validation preconditions against a stored response (RFC 9110
/// §13.2.2 steps 3 and 4, as RFC 9111 §4.3.2 applies them to caches).
///
/// - Only `GET` and `HEAD` are evaluated: the cache answers no other method, and for those
///   a false `If-None-Match` means 412 from the origin, not 304 (RFC 9110 §13.1.2).
/// - Only a 2xx stored response is evaluated: RFC 9110 §13.2.1 ignores preconditions when the
///   unconditional answer would not be 2xx (a cached 404 is sent as is).
/// - `If-None-Match` (RFC 9110 §13.1.2) uses the weak comparison; `*` matches the stored
///   representation. A malformed field is ignored, giving [`Precondition::Proceed`].
/// - `If-Modified-Since` (RFC 9110 §13.1.3) is evaluated only when `If-None-Match` is absent,
///   and ignored when it is not a single valid HTTP-date. It compares with the stored
///   `Last-Modified`, or the stored `Date` when there is no (valid) `Last-Modified` (RFC 9111
///   §4.3.2). RFC 9111 then falls back to the time the response was received: callers ensure
///   a stored response has a `Date`, which RFC 9110 §6.6.1 requires of a cache anyway.
#[must_use]
pub(crate) fn evaluate(
    method: &Method,
    request: &HeaderMap,
    stored_status: StatusCode,
    stored: &HeaderMap,
) -> Precondition {
    if (method != Method::GET && method != Method::HEAD) || !stored_status.is_success() {
        return Precondition::Proceed;
    }
    // RFC 9110 §13.1.3: "A recipient MUST ignore If-Modified-Since if the request contains an
    // If-None-Match header field" -- even a malformed one.
    if request.contains_key(IF_NONE_MATCH) {
        return if_none_match(request, stored);
    }
    if_modified_since(request, stored)
}

/// Fields never copied from a stored response into a 304.
///
/// RFC 9110 §15.4.5: a 304 has no content, and "a sender SHOULD NOT generate representation
/// metadata other than the above listed fields [Content-Location, Date, ETag, Vary,
/// Cache-Control, Expires] unless said metadata exists for the purpose of guiding cache
/// updates". Content-Type, Content-Encoding and Content-Language (RFC 9110 §8.3-8.5) are such
/// metadata. Content-Length is only permitted when it equals the 200's length (RFC 9110 §8.6,
/// "MAY"), and some recipients take it as the 304's own body length, so it is left out.
/// Content-Range does not describe a 200. The rest are framing or hop-by-hop fields of another
/// message (RFC 9112 §6.1, §7; RFC 9110 §7.6.1) and digests of content the 304 does not carry.
const NOT_IN_304: [HeaderName; 15] = [
    CONTENT_TYPE,
    CONTENT_ENCODING,
    CONTENT_LANGUAGE,
    CONTENT_LENGTH,
    CONTENT_RANGE,
    TRANSFER_ENCODING,
    TRAILER,
    CONNECTION,
    TE,
    UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("content-md5"),
    HeaderName::from_static("content-digest"),
    HeaderName::from_static("repr-digest"),
];

/// The header fields of a 304 (Not Modified) built from a stored 200 response.
///
/// RFC 9110 §15.4.5: "The server generating a 304 response MUST generate any of the following
/// header fields that would have been sent in a 200 (OK) response to the same request:
/// Content-Location, Date, ETag, and Vary; Cache-Control and Expires". Those are kept, as are
/// fields that are not representation metadata (for example `Accept-Ranges`, `Link`, custom
/// fields), which a downstream cache uses to update its stored copy (RFC 9111 §4.3.4). Removed:
/// the fields in the list above, and `Last-Modified` when there is an `ETag`, since
/// §15.4.5 keeps `Last-Modified` only as a validator to guide cache updates ("might be useful
/// if the response does not have an ETag field").
#[must_use]
pub(crate) fn not_modified_headers(mut headers: HeaderMap) -> HeaderMap {
    for name in &NOT_IN_304 {
        headers.remove(name);
    }
    if headers.contains_key(ETAG) {
        headers.remove(LAST_MODIFIED);
    }
    headers
}

// === If-None-Match ===

/// RFC 9110 §13.1.2: `If-None-Match = "*" / #entity-tag`, possibly over several field lines.
/// The condition is false (so 304) for `*` when a representation exists, which a stored
/// response is, or when a listed tag weakly matches the stored `ETag`.
fn if_none_match(request: &HeaderMap, stored: &HeaderMap) -> Precondition {
    let stored_tag = EntityTag::of(stored);
    let mut stars = 0;
    let mut tags = 0;
    let mut matched = false;
    for line in request.get_all(IF_NONE_MATCH) {
        let value = trim_ows(line.as_bytes());
        if value == b"*" {
            stars += 1;
            continue;
        }
        for tag in tag_list(value) {
            let Some(tag) = tag else {
                // Malformed: ignore the whole field.
                return Precondition::Proceed;
            };
            tags += 1;
            matched |= stored_tag.is_some_and(|stored| tag.weak_eq(&stored));
        }
    }
    match (stars, tags) {
        (0, _) if matched => Precondition::NotModified,
        (0, _) => Precondition::Proceed,
        // "*" alone: the stored response is a current representation.
        (1, 0) => Precondition::NotModified,
        // "*" must be the whole field value; with tags (or twice) the field is malformed.
        _ => Precondition::Proceed,
    }
}

/// Iterates the entity tags of a `#entity-tag` list value (RFC 9110 §5.6.1: elements separated
/// by commas with optional whitespace; empty elements ignored). Yields `None` once, then stops,
/// when the list is malformed.
fn tag_list(value: &[u8]) -> impl Iterator<Item = Option<EntityTag<'_>>> {
    let mut rest = value;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        // Skip separators and empty elements.
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return None;
        }
        let parsed = EntityTag::parse_prefix(rest).and_then(|(tag, tail)| {
            let tail = trim_ows(tail);
            // After a tag comes the end of the value or a comma, nothing else.
            (tail.is_empty() || tail.starts_with(b",")).then_some((tag, tail))
        });
        match parsed {
            Some((tag, tail)) => {
                rest = tail;
                Some(Some(tag))
            }
            None => {
                failed = true;
                Some(None)
            }
        }
    })
}

// === If-Modified-Since ===

/// RFC 9110 §13.1.3 with RFC 9111 §4.3.2: 304 when the stored response's modification time
/// (`Last-Modified`, else `Date`) is earlier than or equal to the field's date.
fn if_modified_since(request: &HeaderMap, stored: &HeaderMap) -> Precondition {
    // "MUST ignore ... if the received field value is not a valid HTTP-date, [or] the field
    // value has more than one member"; several field lines are several members.
    let Some(since) = single_value(request, &IF_MODIFIED_SINCE).and_then(http_date) else {
        return Precondition::Proceed;
    };
    let modified = single_value(stored, &LAST_MODIFIED)
        .and_then(http_date)
        .or_else(|| single_value(stored, &DATE).and_then(http_date));
    match modified {
        Some(modified) if modified <= since => Precondition::NotModified,
        // Modified since, or no modification time at all ("MUST ignore If-Modified-Since if
        // the resource does not have a modification date available").
        _ => Precondition::Proceed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::{ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LOCATION, EXPIRES, VARY};

    const GET: &Method = &Method::GET;
    const OK: StatusCode = StatusCode::OK;
    const NOT_MODIFIED: Precondition = Precondition::NotModified;
    const PROCEED: Precondition = Precondition::Proceed;

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
    fn if_none_match_table() {
        // (If-None-Match lines, stored ETag lines, expected)
        let cases: &[(&[&str], &[&str], Precondition)] = &[
            (&["\"a\""], &["\"a\""], NOT_MODIFIED),
            (&["\"a\""], &["\"b\""], PROCEED),
            // weak comparison either way (RFC 9110 §13.1.2)
            (&["W/\"a\""], &["\"a\""], NOT_MODIFIED),
            (&["\"a\""], &["W/\"a\""], NOT_MODIFIED),
            (&["W/\"a\""], &["W/\"a\""], NOT_MODIFIED),
            // lists, OWS, empty elements, several field lines
            (&["\"x\", \"a\""], &["\"a\""], NOT_MODIFIED),
            (&["\"x\",\"a\""], &["\"a\""], NOT_MODIFIED),
            (&[" , \"x\" ,, W/\"a\" ,"], &["\"a\""], NOT_MODIFIED),
            (&["\"x\"", "\"a\""], &["\"a\""], NOT_MODIFIED),
            (&["\"x\", \"y\""], &["\"a\""], PROCEED),
            // commas inside the opaque-tag are part of it
            (&["\"a,b\""], &["\"a,b\""], NOT_MODIFIED),
            (&["\"a,b\""], &["\"a\""], PROCEED),
            (&["\"x\", \"a,b\""], &["\"a,b\""], NOT_MODIFIED),
            // "*" matches any stored representation, with or without an ETag
            (&["*"], &["\"a\""], NOT_MODIFIED),
            (&["*"], &[], NOT_MODIFIED),
            (&[" * "], &[], NOT_MODIFIED),
            // no stored ETag: a list never matches
            (&["\"a\""], &[], PROCEED),
            // an unparsable stored ETag never matches
            (&["\"a\""], &["a"], PROCEED),
            // malformed If-None-Match is ignored (Proceed) -- even if a tag would match
            (&["a"], &["\"a\""], PROCEED),
            (&["\"a\" \"b\""], &["\"a\""], PROCEED),
            (&["\"a\", b"], &["\"a\""], PROCEED),
            (&["\"a\", *"], &["\"a\""], PROCEED),
            (&["*", "\"a\""], &["\"a\""], PROCEED),
            (&["*", "*"], &["\"a\""], PROCEED),
            (&["\"a\"", "junk"], &["\"a\""], PROCEED),
            (&["w/\"a\""], &["\"a\""], PROCEED),
            // an empty list is valid and matches nothing
            (&[""], &["\"a\""], PROCEED),
        ];
        for (inm, etags, want) in cases {
            let request: Vec<_> = inm.iter().map(|v| ("if-none-match", *v)).collect();
            let stored: Vec<_> = etags.iter().map(|v| ("etag", *v)).collect();
            let got = evaluate(GET, &map(&request), OK, &map(&stored));
            assert_eq!(got, *want, "If-None-Match {inm:?}, ETag {etags:?}");
        }
    }

    const T0: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const T0_RFC850: &str = "Sunday, 06-Nov-94 08:49:37 GMT";
    const T0_ASCTIME: &str = "Sun Nov  6 08:49:37 1994";
    const T_BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const T_AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    #[test]
    fn if_modified_since_table() {
        // (request lines, stored lines, expected)
        type Lines<'a> = &'a [(&'a str, &'a str)];
        let ims = "if-modified-since";
        let cases: &[(Lines, Lines, Precondition)] = &[
            // Last-Modified earlier than or equal to the date: 304 (RFC 9110 §13.1.3)
            (&[(ims, T0)], &[("last-modified", T0)], NOT_MODIFIED),
            (&[(ims, T_AFTER)], &[("last-modified", T0)], NOT_MODIFIED),
            (&[(ims, T_BEFORE)], &[("last-modified", T0)], PROCEED),
            // all three HTTP-date formats (RFC 9110 §5.6.7)
            (&[(ims, T0_RFC850)], &[("last-modified", T0)], NOT_MODIFIED),
            (&[(ims, T0_ASCTIME)], &[("last-modified", T0)], NOT_MODIFIED),
            (&[(ims, T0)], &[("last-modified", T0_ASCTIME)], NOT_MODIFIED),
            // no Last-Modified: the stored Date (RFC 9111 §4.3.2)
            (&[(ims, T0)], &[("date", T0)], NOT_MODIFIED),
            (&[(ims, T_BEFORE)], &[("date", T0)], PROCEED),
            // Last-Modified takes precedence over Date
            (
                &[(ims, T0)],
                &[("last-modified", T_AFTER), ("date", T_BEFORE)],
                PROCEED,
            ),
            (
                &[(ims, T0)],
                &[("last-modified", T_BEFORE), ("date", T_AFTER)],
                NOT_MODIFIED,
            ),
            // an invalid Last-Modified: fall back to Date
            (
                &[(ims, T0)],
                &[("last-modified", "yesterday"), ("date", T0)],
                NOT_MODIFIED,
            ),
            // no modification date at all: ignore the field
            (&[(ims, T0)], &[], PROCEED),
            // invalid If-Modified-Since is ignored
            (&[(ims, "yesterday")], &[("last-modified", T0)], PROCEED),
            (&[(ims, "")], &[("last-modified", T0)], PROCEED),
            (
                &[(ims, "Sun, 06 Nov 1994 08:49:37")],
                &[("last-modified", T0)],
                PROCEED,
            ),
            // more than one member is ignored
            (
                &[(ims, T_AFTER), (ims, T_AFTER)],
                &[("last-modified", T0)],
                PROCEED,
            ),
            (
                &[(ims, &format!("{T_AFTER}, {T_AFTER}"))],
                &[("last-modified", T0)],
                PROCEED,
            ),
            // If-None-Match present (even malformed, even not matching): IMS is ignored
            (
                &[(ims, T_AFTER), ("if-none-match", "\"b\"")],
                &[("last-modified", T0), ("etag", "\"a\"")],
                PROCEED,
            ),
            (
                &[(ims, T_AFTER), ("if-none-match", "junk")],
                &[("last-modified", T0)],
                PROCEED,
            ),
            (
                &[(ims, T_BEFORE), ("if-none-match", "\"a\"")],
                &[("last-modified", T0), ("etag", "\"a\"")],
                NOT_MODIFIED,
            ),
            // no preconditions at all
            (&[], &[("last-modified", T0), ("etag", "\"a\"")], PROCEED),
        ];
        for (request, stored, want) in cases {
            let got = evaluate(GET, &map(request), OK, &map(stored));
            assert_eq!(got, *want, "{request:?} vs {stored:?}");
        }
    }

    #[test]
    fn only_get_and_head_on_a_2xx() {
        let request = map(&[("if-none-match", "*"), ("if-modified-since", T_AFTER)]);
        let stored = map(&[("etag", "\"a\""), ("last-modified", T0)]);
        let ims_only = map(&[("if-modified-since", T_AFTER)]);
        let cases: &[(Method, StatusCode, &HeaderMap, Precondition)] = &[
            (Method::GET, OK, &request, NOT_MODIFIED),
            (Method::HEAD, OK, &request, NOT_MODIFIED),
            (Method::HEAD, OK, &ims_only, NOT_MODIFIED),
            (Method::POST, OK, &request, PROCEED),
            (Method::PUT, OK, &request, PROCEED),
            (Method::DELETE, OK, &request, PROCEED),
            (Method::OPTIONS, OK, &ims_only, PROCEED),
            (
                Method::GET,
                StatusCode::NON_AUTHORITATIVE_INFORMATION,
                &request,
                NOT_MODIFIED,
            ),
            (
                Method::GET,
                StatusCode::PARTIAL_CONTENT,
                &request,
                NOT_MODIFIED,
            ),
            // RFC 9110 §13.2.1: not 2xx without the preconditions => ignore them
            (Method::GET, StatusCode::NOT_FOUND, &request, PROCEED),
            (
                Method::GET,
                StatusCode::MOVED_PERMANENTLY,
                &ims_only,
                PROCEED,
            ),
            (Method::GET, StatusCode::GONE, &ims_only, PROCEED),
        ];
        for (method, status, request, want) in cases {
            assert_eq!(
                evaluate(method, request, *status, &stored),
                *want,
                "{method} {status}"
            );
        }
    }

    #[test]
    fn not_modified_keeps_the_fields_rfc_9110_lists() {
        let stored = map(&[
            ("cache-control", "max-age=60"),
            ("content-location", "/doc.en"),
            ("date", T0),
            ("etag", "\"a\""),
            ("expires", T_AFTER),
            ("vary", "accept-encoding"),
            ("vary", "accept"),
            ("accept-ranges", "bytes"),
            ("x-custom", "1"),
            ("last-modified", T_BEFORE),
            ("content-type", "text/html"),
            ("content-encoding", "gzip"),
            ("content-language", "en"),
            ("content-length", "1234"),
            ("content-range", "bytes 0-1/2"),
            ("transfer-encoding", "chunked"),
            ("trailer", "x"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("content-digest", "sha-256=:x:"),
        ]);
        let headers = not_modified_headers(stored.clone());
        for kept in [
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            ACCEPT_RANGES,
        ] {
            assert_eq!(headers.get(&kept), stored.get(&kept), "{kept}");
        }
        assert_eq!(headers.get_all(VARY).iter().count(), 2);
        assert_eq!(headers.get("x-custom").unwrap(), "1");
        for dropped in [
            "last-modified",
            "content-type",
            "content-encoding",
            "content-language",
            "content-length",
            "content-range",
            "transfer-encoding",
            "trailer",
            "connection",
            "keep-alive",
            "content-digest",
        ] {
            assert!(!headers.contains_key(dropped), "{dropped}");
        }
    }

    #[test]
    fn not_modified_keeps_last_modified_without_etag() {
        let stored = map(&[("last-modified", T0), ("content-type", "text/plain")]);
        let headers = not_modified_headers(stored);
        assert_eq!(headers.get(LAST_MODIFIED).unwrap(), T0);
        assert!(!headers.contains_key(CONTENT_TYPE));
    }
}
