//! Secondary cache keys: selecting a stored response by the request fields its `Vary` names
//! (RFC 9111 §4.1).
//!
//! RFC 9111 §4.1 lets two requests' nominated fields match after these transformations only:
//! adding or removing whitespace where the field's syntax allows it, combining field lines
//! with the same name, and normalisations known to keep the field's semantics. sidecache
//! applies a conservative, field-agnostic subset:
//!
//! - field names are case-insensitive (RFC 9110 §5.1);
//! - all field lines of one name are combined, members joined by `", "` (RFC 9110 §5.3);
//! - each comma-separated member is trimmed of surrounding whitespace and empty members are
//!   dropped (the list rules of RFC 9110 §5.6.1), so `gzip,deflate` matches `gzip, deflate`;
//!   commas inside quoted strings do not separate members;
//! - for the content negotiation fields whose syntax is known (`Accept`, `Accept-Encoding`,
//!   `Accept-Language`), member order, case and the whitespace around a member's parameters are
//!   not significant either: preference is carried by quality values, and media types, content
//!   codings, language tags and parameter names are case-insensitive (RFC 9110 §8.3.1, §8.4.1,
//!   §12.5.1; RFC 5646 §2.1.1). So `gzip, deflate, br` matches `br,GZIP,deflate`, and every
//!   browser's spelling of `Accept-Encoding` does not make a variant of its own;
//! - every other field keeps its values' case and member order, since only some fields define
//!   those as insignificant. A stricter comparison costs a cache miss; a looser one could serve
//!   the wrong variant.

use bytes::Bytes;
use http::HeaderMap;
use http::header::{ACCEPT, ACCEPT_ENCODING, ACCEPT_LANGUAGE, HeaderName, VARY};

use super::fields::trim_ows;

/// The request header values a stored response was selected by (the fields its `Vary`
/// nominates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaryKey {
    /// The nominated fields, sorted by name and without duplicates, so that keys compare equal
    /// whatever order `Vary` listed them in. Each holds the normalised value the original
    /// request sent, or `None` when it did not send the field: absence is part of the match
    /// (RFC 9111 §4.1). A boxed slice: every stored response holds a key, most of them empty.
    fields: Box<[(HeaderName, Option<Bytes>)]>,
}

// === impl VaryKey ===

impl VaryKey {
    /// Captures the secondary key from a response's `Vary` fields and the request that produced
    /// the response.
    ///
    /// Returns `None` when `Vary` contains `*` (RFC 9111 §4.1: such a response "always fails to
    /// match", so it is not stored) or a member that is not a valid field name (treated like
    /// `*`: we cannot tell what the response depends on). An absent or empty `Vary` gives an
    /// empty key, which matches every request.
    #[must_use]
    pub fn capture(response_headers: &HeaderMap, request_headers: &HeaderMap) -> Option<Self> {
        let names = nominated_fields(response_headers)?;
        let fields = names
            .into_iter()
            .map(|name| {
                let value = normalized_value(request_headers, &name).map(Bytes::from);
                (name, value)
            })
            .collect();
        Some(Self { fields })
    }

    /// Whether a new request selects the stored response this key was captured for.
    ///
    /// RFC 9111 §4.1: every nominated field must match after normalisation (see the module
    /// docs); a field absent from both requests matches, a field absent from only one does not.
    #[must_use]
    pub fn matches(&self, request_headers: &HeaderMap) -> bool {
        self.fields.iter().all(|(name, stored)| {
            normalized_value(request_headers, name).as_deref() == stored.as_deref()
        })
    }

    /// Whether two responses vary on the same field names (so a new variant replaces, rather
    /// than sits beside, an old one whose values match).
    pub fn same_fields(&self, other: &Self) -> bool {
        self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .zip(&other.fields)
                .all(|((a, _), (b, _))| a == b)
    }

    /// Whether the response nominated no fields, so the key matches every request.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Approximate bytes held, for the store's weigher.
    pub fn weight(&self) -> usize {
        let entries = self.fields.len() * std::mem::size_of::<(HeaderName, Option<Bytes>)>();
        let text: usize = self
            .fields
            .iter()
            .map(|(name, value)| name.as_str().len() + value.as_ref().map_or(0, Bytes::len))
            .sum();
        std::mem::size_of::<Self>() + entries + text
    }
}

// === parsing ===

/// The field names a response's `Vary` nominates, lower-cased, sorted, deduplicated; `None`
/// for `*` or an invalid member.
///
/// RFC 9110 §12.5.5: `Vary = #( "*" / field-name )`, a list that may span several field lines.
fn nominated_fields(response_headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for line in response_headers.get_all(VARY) {
        for member in line.as_bytes().split(|&b| b == b',') {
            let member = trim_ows(member);
            if member.is_empty() {
                // RFC 9110 §5.6.1.2: recipients ignore empty list elements.
                continue;
            }
            if member == b"*" || !member.iter().all(|&b| is_tchar(b)) {
                return None;
            }
            // HeaderName lower-cases, which is the case-insensitivity of field names.
            names.push(HeaderName::from_bytes(member).ok()?);
        }
    }
    names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

/// A field's value with its lines combined and its list members normalised (see the module
/// docs); `None` when the request has no such field.
fn normalized_value(headers: &HeaderMap, name: &HeaderName) -> Option<Vec<u8>> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let members = lines
        .flat_map(|line| split_members(line.as_bytes()))
        .map(trim_ows)
        .filter(|member| !member.is_empty());
    let mut out = Vec::new();
    if is_negotiation_field(name) {
        let mut canonical: Vec<Vec<u8>> = members.map(canonical_member).collect();
        canonical.sort_unstable();
        join(&mut out, canonical.iter().map(Vec::as_slice));
    } else {
        join(&mut out, members);
    }
    Some(out)
}

/// The content negotiation fields whose members may be reordered and recased without changing
/// what they ask for (see the module docs).
fn is_negotiation_field(name: &HeaderName) -> bool {
    name == ACCEPT || name == ACCEPT_ENCODING || name == ACCEPT_LANGUAGE
}

/// One member of a negotiation field in lower case, without whitespace around its `;` and `=`
/// (`text/HTML ; Q=0.9` → `text/html;q=0.9`). Quoted strings are kept as they are.
fn canonical_member(member: &[u8]) -> Vec<u8> {
    let mut canonical = Vec::with_capacity(member.len());
    let mut in_quotes = false;
    let mut escaped = false;
    for &b in member {
        if in_quotes {
            canonical.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
            canonical.push(b);
        } else if b == b' ' || b == b'\t' {
            // Whitespace outside a quoted string can only sit around `;` and `=`.
        } else {
            canonical.push(b.to_ascii_lowercase());
        }
    }
    canonical
}

/// Appends `members` to `out`, separated by `", "`.
fn join<'a>(out: &mut Vec<u8>, members: impl Iterator<Item = &'a [u8]>) {
    for member in members {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(member);
    }
}

/// Splits a field value at commas that are outside quoted strings (RFC 9110 §5.6.4: a
/// quoted-string may contain commas and `\`-escaped quotes).
fn split_members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let value = rest?;
        let mut in_quotes = false;
        let mut escaped = false;
        for (i, &b) in value.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if in_quotes && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = !in_quotes;
            } else if b == b',' && !in_quotes {
                rest = Some(&value[i + 1..]);
                return Some(&value[..i]);
            }
        }
        rest = None;
        Some(value)
    })
}

/// RFC 9110 §5.6.2 `tchar`: the characters of a token, and so of a field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// A header map from `(name, value)` lines, repeated names appended in order.
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

    fn names(key: &VaryKey) -> Vec<&str> {
        key.fields.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn capture_nominated_names() {
        // (Vary lines, expected names or None for "never matches")
        let cases: &[(&[&str], Option<&[&str]>)] = &[
            (&[], Some(&[])),
            (&[""], Some(&[])),
            (&[" , ,"], Some(&[])),
            (&["Accept-Encoding"], Some(&["accept-encoding"])),
            (
                &["accept-encoding, Accept-Language"],
                Some(&["accept-encoding", "accept-language"]),
            ),
            // order-insensitive, duplicates removed, case-insensitive (RFC 9110 §5.1)
            (&["B, a, A,b"], Some(&["a", "b"])),
            // several field lines form one list (RFC 9110 §5.3)
            (&["accept", "cookie"], Some(&["accept", "cookie"])),
            (&["  x-custom  ,\tother\t"], Some(&["other", "x-custom"])),
            // "*" never matches (RFC 9111 §4.1), wherever it appears
            (&["*"], None),
            (&["accept, *"], None),
            (&["accept", "*"], None),
            (&[" * "], None),
            // a member that is not a token: we cannot know what the response depends on
            (&["accept encoding"], None),
            (&["accept;q=1"], None),
            (&["\"accept\""], None),
            (&["accept/x"], None),
        ];
        for (vary, want) in cases {
            let response: Vec<(&str, &str)> = vary.iter().map(|v| ("vary", *v)).collect();
            let got = VaryKey::capture(&map(&response), &HeaderMap::new());
            assert_eq!(
                got.as_ref().map(names),
                want.map(|w| w.to_vec()),
                "{vary:?}"
            );
        }
    }

    #[test]
    fn capture_stores_normalised_values_and_absence() {
        let response = map(&[("vary", "Accept-Encoding, X-Absent, Accept")]);
        let request = map(&[
            ("accept-encoding", "gzip ,deflate,  br"),
            ("accept", "text/html"),
            ("accept", "  application/json "),
        ]);
        let key = VaryKey::capture(&response, &request).unwrap();
        let fields: Vec<(&str, Option<&[u8]>)> = key
            .fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect();
        assert_eq!(
            fields,
            vec![
                // The negotiation fields' members are sorted (see the module docs).
                ("accept", Some(&b"application/json, text/html"[..])),
                ("accept-encoding", Some(&b"br, deflate, gzip"[..])),
                ("x-absent", None),
            ]
        );
    }

    #[test]
    fn matches_table() {
        // (Vary, original request lines, new request lines, selects?)
        type Lines<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Lines, Lines, bool)] = &[
            // no Vary: every request matches
            ("", &[("accept", "a")], &[], true),
            // same value
            (
                "accept-encoding",
                &[("accept-encoding", "gzip")],
                &[("accept-encoding", "gzip")],
                true,
            ),
            // different value
            (
                "accept-encoding",
                &[("accept-encoding", "gzip")],
                &[("accept-encoding", "br")],
                false,
            ),
            // whitespace around commas is not significant (RFC 9111 §4.1)
            (
                "accept-encoding",
                &[("accept-encoding", "gzip,deflate")],
                &[("accept-encoding", "gzip, deflate")],
                true,
            ),
            (
                "accept-encoding",
                &[("accept-encoding", "gzip , deflate")],
                &[("accept-encoding", "gzip,\tdeflate")],
                true,
            ),
            // combining field lines (RFC 9111 §4.1, RFC 9110 §5.3)
            (
                "accept-encoding",
                &[("accept-encoding", "gzip"), ("accept-encoding", "deflate")],
                &[("accept-encoding", "gzip, deflate")],
                true,
            ),
            // empty list members are ignored (RFC 9110 §5.6.1.2)
            (
                "accept-encoding",
                &[("accept-encoding", "gzip,,deflate,")],
                &[("accept-encoding", "gzip, deflate")],
                true,
            ),
            // the negotiation fields: member order, case and whitespace around parameters do
            // not matter
            (
                "accept-encoding",
                &[("accept-encoding", "gzip, deflate, br")],
                &[("accept-encoding", "br,GZIP,deflate")],
                true,
            ),
            (
                "accept-language",
                &[("accept-language", "en-US, de;q=0.8")],
                &[
                    ("accept-language", "DE ; Q=0.8"),
                    ("accept-language", "en-us"),
                ],
                true,
            ),
            (
                "accept",
                &[("accept", "text/html;q=0.9, application/json")],
                &[("accept", "Application/JSON, text/html; q=0.9")],
                true,
            ),
            // ... but what they ask for still does
            (
                "accept-encoding",
                &[("accept-encoding", "gzip, br")],
                &[("accept-encoding", "gzip")],
                false,
            ),
            (
                "accept-language",
                &[("accept-language", "en, de;q=0.8")],
                &[("accept-language", "en, de;q=0.9")],
                false,
            ),
            (
                "accept",
                &[("accept", "text/html;level=\"A\"")],
                &[("accept", "text/html;level=\"a\"")],
                false,
            ),
            // other fields keep their member order, case and inner whitespace (conservative)
            ("x-foo", &[("x-foo", "a, b")], &[("x-foo", "b, a")], false),
            ("x-foo", &[("x-foo", "A")], &[("x-foo", "a")], false),
            (
                "x-foo",
                &[("x-foo", "a;q=1")],
                &[("x-foo", "a; q=1")],
                false,
            ),
            // absent in both matches; absent in one only does not (RFC 9111 §4.1)
            ("x-foo", &[], &[], true),
            ("x-foo", &[("x-foo", "1")], &[], false),
            ("x-foo", &[], &[("x-foo", "1")], false),
            // present but empty is not absent
            ("x-foo", &[("x-foo", "")], &[], false),
            ("x-foo", &[("x-foo", "")], &[("x-foo", "")], true),
            // the Vary name's case does not matter
            ("X-FOO", &[("x-foo", "1")], &[("X-Foo", "1")], true),
            // every nominated field must match
            (
                "a, b",
                &[("a", "1"), ("b", "2")],
                &[("a", "1"), ("b", "2")],
                true,
            ),
            (
                "a, b",
                &[("a", "1"), ("b", "2")],
                &[("a", "1"), ("b", "3")],
                false,
            ),
            ("a, b", &[("a", "1"), ("b", "2")], &[("a", "1")], false),
            // fields not nominated are irrelevant
            (
                "a",
                &[("a", "1"), ("b", "2")],
                &[("a", "1"), ("b", "9")],
                true,
            ),
            // commas inside quoted strings do not split members
            ("x", &[("x", "\"a,b\", c")], &[("x", "\"a,b\",c")], true),
            ("x", &[("x", "\"a, b\"")], &[("x", "\"a,b\"")], false),
            (
                "x",
                &[("x", r#""a\", b", c"#)],
                &[("x", r#""a\", b",c"#)],
                true,
            ),
        ];
        for (vary, original, new, want) in cases {
            let key = VaryKey::capture(&map(&[("vary", vary)]), &map(original)).unwrap();
            assert_eq!(
                key.matches(&map(new)),
                *want,
                "Vary: {vary}; {original:?} vs {new:?}"
            );
        }
    }

    #[test]
    fn matches_values_with_obs_text() {
        let mut original = HeaderMap::new();
        original.insert("x-name", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let key = VaryKey::capture(&map(&[("vary", "x-name")]), &original).unwrap();
        assert!(key.matches(&original));
        assert!(!key.matches(&map(&[("x-name", "cafe")])));
    }

    #[test]
    fn same_fields_and_is_empty() {
        let capture = |vary: &str, request: &[(&str, &str)]| {
            VaryKey::capture(&map(&[("vary", vary)]), &map(request)).unwrap()
        };
        let a = capture("accept, accept-encoding", &[("accept", "x")]);
        let b = capture("Accept-Encoding,ACCEPT", &[("accept", "y")]);
        let c = capture("accept", &[("accept", "x")]);
        let empty = capture("", &[]);
        assert!(a.same_fields(&b));
        assert_ne!(a, b, "same names, different values");
        assert!(!a.same_fields(&c));
        assert!(!c.same_fields(&a));
        assert!(empty.is_empty());
        assert!(!a.is_empty());
        assert!(empty.same_fields(&capture(" ", &[])));
    }

    #[test]
    fn equal_keys_regardless_of_vary_order() {
        let request = map(&[("a", "1"), ("b", "2")]);
        let one = VaryKey::capture(&map(&[("vary", "a, b")]), &request);
        let two = VaryKey::capture(&map(&[("vary", "b"), ("vary", "A")]), &request);
        assert_eq!(one, two);
    }

    #[test]
    fn weight_grows_with_content() {
        let empty = VaryKey::capture(&HeaderMap::new(), &HeaderMap::new()).unwrap();
        let small =
            VaryKey::capture(&map(&[("vary", "accept")]), &map(&[("accept", "a")])).unwrap();
        let long = "x".repeat(1000);
        let big =
            VaryKey::capture(&map(&[("vary", "accept")]), &map(&[("accept", &long)])).unwrap();
        assert!(empty.weight() >= std::mem::size_of::<VaryKey>());
        assert!(small.weight() > empty.weight());
        assert!(big.weight() >= small.weight() + 999);
    }

    #[test]
    fn split_members_respects_quotes() {
        let got: Vec<&[u8]> = split_members(br#"a, "b,c", "d\"e,f", g"#).collect();
        assert_eq!(got, vec![&b"a"[..], b" \"b,c\"", br#" "d\"e,f""#, b" g"]);
        let got: Vec<&[u8]> = split_members(b"").collect();
        assert_eq!(got, vec![&b""[..]]);
    }
}
