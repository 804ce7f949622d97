//! 304 (Not Modified) handling in a shared cache (RFC 9111 §4.3.4, §3.2): whether a 304
//! received for a revalidation selects the stored response, and the stored header fields
//! freshened with the 304's.

use http::header::{
    AGE, CONNECTION, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderName, LAST_MODIFIED,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, SET_COOKIE, TE, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue};

use super::fields::{EntityTag, http_date};

/// §4.3.4: does a 304 received for a revalidation request select (apply to) this stored response?
///
/// `stored` is the one response the revalidation request was built from (its conditional fields
/// came from that response's validators), so:
/// * a strong ETag in the 304 selects it iff the stored ETag is the same strong validator;
/// * a weak ETag selects it iff the stored ETag matches by weak comparison (RFC 9110 §8.8.3.2);
/// * only a Last-Modified in the 304 selects it iff the stored Last-Modified is the same;
/// * no validator at all selects it: the 304 answers the one question asked, about that response
///   (§4.3.3: "the cache SHOULD use the 304 to update the selected stored response"). Many
///   frameworks send such bare 304s; asking again unconditionally would double the origin's load
///   of every revalidation against them.
///
/// `stored` looks up a stored field by name (the stored response keeps its values packed, and
/// only these two are read).
pub fn not_modified_selects(
    stored: impl Fn(&HeaderName) -> Option<HeaderValue>,
    not_modified: &HeaderMap,
) -> bool {
    if let Some(new) = not_modified.get(ETAG) {
        let Some(old) = stored(&ETAG) else {
            // "If none of the stored responses contain the same strong validator, then the
            // cache MUST NOT use the new response to update any stored responses."
            return false;
        };
        let (new, old) = (EntityTag::loose(new), EntityTag::loose(&old));
        return if new.is_weak() {
            new.weak_eq(&old)
        } else {
            new.strong_eq(&old)
        };
    }
    if let Some(new) = not_modified.get(LAST_MODIFIED) {
        return stored(&LAST_MODIFIED).is_some_and(|old| match (http_date(&old), http_date(new)) {
            (Some(old), Some(new)) => old == new,
            _ => old.as_bytes().trim_ascii() == new.as_bytes().trim_ascii(),
        });
    }
    true
}

/// §3.2: the stored header fields updated from a 304 (replace every field present in the 304, except
/// Content-Length, framing/hop-by-hop fields, and other exceptions in §3.2).
///
/// RFC 9111 §3.2: "the cache MUST add each header field in the provided response to the
/// stored response, replacing field values that are already present, with the following
/// exceptions:
///  * Header fields excepted from storage in Section 3.1,
///  * Header fields that the cache's stored response depends upon, as described below,
///  * Header fields that are automatically processed and removed by the recipient, as
///    described below, and
///  * The Content-Length header field."
///
/// How each exception applies here:
/// * §3.1: `Connection` and the fields it nominates, plus the fields RFC 9110 §7.6.1 says
///   are removed before forwarding (`Proxy-Connection`, `Keep-Alive`, `TE`,
///   `Transfer-Encoding`, `Upgrade`), and the proxy-specific `Proxy-Authenticate`,
///   `Proxy-Authentication-Info` and `Proxy-Authorization`.
/// * "depends upon": sidecache stores the response bytes as received, not the result of
///   processing them, so no field qualifies; `Content-Type` and `Content-Encoding` are updated.
/// * "automatically processed and removed": `Content-Range`, which §3.2 names as the example
///   ("Implementations MAY automatically omit such header fields from updates").
/// * `Content-Length`: the 304 describes no content.
///
/// Two further choices, both about information that is about the message and not the
/// stored content:
/// * `Age` belongs to the message it arrived on. When the 304 has none, the validated
///   response is first-hand as of the 304 (§4.2.3 recomputes its age from the 304's Date), so
///   the stored `Age` is dropped rather than carried into the new age calculation.
/// * `Set-Cookie` from a 304 was issued to the one client whose request caused the
///   revalidation; it is never merged, because sidecache never shares a cookie (see
///   [`RefuseReason::SetCookie`](super::policy::RefuseReason::SetCookie)).
pub fn freshen_headers(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let nominated = connection_nominated(not_modified);
    let mut out = stored.clone();
    if !not_modified.contains_key(AGE) {
        out.remove(AGE);
    }
    for name in not_modified.keys() {
        if *name == SET_COOKIE || excluded_from_update(name, &nominated) {
            continue;
        }
        replace_field(&mut out, not_modified, name);
    }
    out
}

/// Replaces every line of `name` in `target` with the lines `source` has.
fn replace_field(target: &mut HeaderMap, source: &HeaderMap, name: &HeaderName) {
    target.remove(name);
    for value in source.get_all(name) {
        target.append(name.clone(), value.clone());
    }
}

/// The §3.2 exceptions (see [`freshen_headers`]).
fn excluded_from_update(name: &HeaderName, nominated: &[String]) -> bool {
    // Not among `http`'s constants.
    const BY_NAME: [&str; 3] = [
        "proxy-connection",
        "keep-alive",
        "proxy-authentication-info",
    ];
    *name == CONNECTION
        || *name == TE
        || *name == TRANSFER_ENCODING
        || *name == UPGRADE
        || *name == PROXY_AUTHENTICATE
        || *name == PROXY_AUTHORIZATION
        || *name == CONTENT_LENGTH
        || *name == CONTENT_RANGE
        || BY_NAME.contains(&name.as_str())
        || nominated.iter().any(|n| n == name.as_str())
}

/// Lowercase field names listed in `Connection` (RFC 9110 §7.6.1).
fn connection_nominated(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|line| {
            String::from_utf8_lossy(line.as_bytes())
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
            map.append(name, value.parse().expect("test header value"));
        }
        map
    }

    /// Header fields as written in a table row.
    type Fields<'a> = &'a [(&'a str, &'a str)];

    // --- §4.3.4 selecting the stored response for a 304 ---

    #[test]
    fn rfc9111_4_3_4_not_modified_selects() {
        let lm = "Tue, 14 Nov 2023 22:00:00 GMT";
        let lm_rfc850 = "Tuesday, 14-Nov-23 22:00:00 GMT";
        #[rustfmt::skip]
        let cases: &[(&str, Fields<'_>, Fields<'_>, bool)] = &[
            ("strong match", &[("etag", "\"a\"")], &[("etag", "\"a\"")], true),
            ("strong mismatch", &[("etag", "\"a\"")], &[("etag", "\"b\"")], false),
            ("strong vs stored weak", &[("etag", "W/\"a\"")], &[("etag", "\"a\"")], false),
            ("weak vs stored strong", &[("etag", "\"a\"")], &[("etag", "W/\"a\"")], true),
            ("weak vs stored weak", &[("etag", "W/\"a\"")], &[("etag", "W/\"a\"")], true),
            ("weak mismatch", &[("etag", "W/\"a\"")], &[("etag", "W/\"b\"")], false),
            ("weak prefix is case-sensitive", &[("etag", "w/\"a\"")], &[("etag", "W/\"a\"")], false),
            ("ETag in 304, none stored", &[("last-modified", lm)], &[("etag", "\"a\""), ("last-modified", lm)], false),
            ("ETag wins over Last-Modified", &[("etag", "\"a\""), ("last-modified", lm)], &[("etag", "\"b\""), ("last-modified", lm)], false),
            ("Last-Modified only, equal", &[("etag", "\"a\""), ("last-modified", lm)], &[("last-modified", lm)], true),
            ("Last-Modified only, other format", &[("last-modified", lm)], &[("last-modified", lm_rfc850)], true),
            ("Last-Modified only, different", &[("last-modified", lm)], &[("last-modified", "Tue, 14 Nov 2023 22:00:01 GMT")], false),
            ("Last-Modified only, none stored", &[("etag", "\"a\"")], &[("last-modified", lm)], false),
            ("no validators anywhere", &[("content-type", "text/plain")], &[("date", lm)], true),
            ("no validator in 304, stored ETag", &[("etag", "\"a\"")], &[("date", lm)], true),
            ("no validator in 304, stored weak ETag", &[("etag", "W/\"a\"")], &[("date", lm)], true),
            ("no validator in 304, stored Last-Modified", &[("last-modified", lm)], &[("date", lm)], true),
        ];
        for (name, stored, not_modified, expected) in cases {
            let stored = headers(stored);
            assert_eq!(
                not_modified_selects(|name| stored.get(name).cloned(), &headers(not_modified)),
                *expected,
                "{name}"
            );
        }
    }

    // --- §3.2 freshening stored header fields ---

    fn values(map: &HeaderMap, name: &str) -> Vec<String> {
        map.get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect()
    }

    #[test]
    fn rfc9111_3_2_freshen_headers() {
        let stored = headers(&[
            ("cache-control", "max-age=10"),
            ("content-type", "text/plain"),
            ("content-length", "42"),
            ("content-encoding", "gzip"),
            ("etag", "\"a\""),
            ("x-stored-only", "kept"),
            ("x-multi", "1"),
            ("x-multi", "2"),
            ("age", "30"),
            ("date", "Tue, 14 Nov 2023 22:00:00 GMT"),
        ]);
        let not_modified = headers(&[
            ("cache-control", "max-age=600"),
            ("content-type", "text/html"),
            ("content-length", "0"),
            ("content-range", "bytes 0-1/2"),
            ("x-multi", "3"),
            ("x-new", "new"),
            ("date", "Tue, 14 Nov 2023 22:10:00 GMT"),
            ("connection", "x-hop, close"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("proxy-authenticate", "Basic"),
            ("set-cookie", "session=secret"),
        ]);
        let out = freshen_headers(&stored, &not_modified);
        let expect: &[(&str, &[&str])] = &[
            // Replaced by the 304's values.
            ("cache-control", &["max-age=600"]),
            ("content-type", &["text/html"]),
            ("date", &["Tue, 14 Nov 2023 22:10:00 GMT"]),
            ("x-multi", &["3"]),
            ("x-new", &["new"]),
            // Kept from the stored response.
            ("content-length", &["42"]),
            ("content-encoding", &["gzip"]),
            ("etag", &["\"a\""]),
            ("x-stored-only", &["kept"]),
            // Never merged (§3.1 / §3.2 exceptions).
            ("content-range", &[]),
            ("connection", &[]),
            ("x-hop", &[]),
            ("keep-alive", &[]),
            ("transfer-encoding", &[]),
            ("upgrade", &[]),
            ("proxy-connection", &[]),
            ("te", &[]),
            ("proxy-authenticate", &[]),
            // Not public: one client's cookie is not stored for everyone.
            ("set-cookie", &[]),
            // The 304 carries no Age: the stored one no longer applies.
            ("age", &[]),
        ];
        for (name, expected) in expect {
            assert_eq!(values(&out, name), *expected, "{name}");
        }
    }

    #[test]
    fn rfc9111_3_2_freshen_age_and_never_set_cookie() {
        let stored = headers(&[("cache-control", "max-age=10"), ("age", "30")]);
        let not_modified = headers(&[
            ("cache-control", "public, max-age=60"),
            ("age", "5"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]);
        let out = freshen_headers(&stored, &not_modified);
        assert_eq!(values(&out, "age"), ["5"]);
        // Even a `public` 304's cookie is not merged into the shared copy.
        assert!(values(&out, "set-cookie").is_empty());
    }
}
