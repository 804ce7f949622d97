//! The primary cache key: which resource a request is for (RFC 9111 §2).
//!
//! RFC 9111 §2 makes the primary key "at a minimum" the request method and target URI; sidecache
//! only stores `GET` answers (a `HEAD` is answered from the same entry), so the method is left out
//! and the key is the target URI reduced to `host` + `path?query`.
//!
//! Normalisation (RFC 9110 §4.2.3, applied identically by [`CacheKey::from_request`] and
//! [`CacheKey::new`], so purges find what requests stored):
//!
//! - the host is lower-cased (hosts are case-insensitive);
//! - an empty port, `:80` and `:443` are removed. The key carries no scheme (sidecache fronts one
//!   origin and keys `http` and `https` requests alike), so a port is dropped when it is the
//!   default of *either* scheme; otherwise `a.example` and `a.example:80` would be two entries
//!   and a purge of one would leave the other;
//! - an empty path becomes `/`;
//! - the path and query are kept exactly as received: no percent-decoding, no reordering, and
//!   `/a?` stays distinct from `/a`, because the origin may treat them differently.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrayvec::ArrayString;
use http::header::HOST;
use http::{HeaderMap, Uri};

use crate::store::WeighedKey;

/// The primary cache key: the request's host (lower-cased, from the URI authority for
/// absolute-form / HTTP/2 requests, else the `Host` header) and path-and-query as received.
///
/// Cheap to clone and hash: the text is `host` followed by `path?query`, kept inside the key
/// when it is short (`KeyText`). Equality and hashing look at that text, so a key hashes like
/// its [`as_str`](Self::as_str).
#[derive(Clone)]
pub struct CacheKey {
    text: KeyText,
    /// Where the host ends in `text`, so `host()` and `path_and_query()` need no search.
    host_len: usize,
}

/// Longest key text kept inside the key itself: the most that keeps the key, in the
/// reference-counted cell the store wraps it in, within a 96-byte allocation (the cell's two
/// counts and a 72-byte key; glibc's smallest chunk above that is 112 bytes). Most URLs of an
/// API fit.
const INLINE_TEXT_BYTES: usize = 54;

/// A key's text: `host` immediately followed by `path?query`.
#[derive(Clone)]
enum KeyText {
    /// A short text inside the key: keying a request allocates nothing, and the store compares
    /// a stored key without reading any memory beyond the key.
    Inline(ArrayString<INLINE_TEXT_BYTES>),
    /// A longer text in one shared allocation, so that clones made for the store, the
    /// single-flight map and spans cost a reference count, not a copy.
    Shared(Arc<str>),
}

/// Why no cache key could be built; the proxy answers 400 (Bad Request) to both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Neither the request target nor a `Host` header names a host (RFC 9112 §3.2: an HTTP/1.1
    /// request without `Host` gets a 400).
    MissingHost,
    /// The host is malformed, or the request has more than one `Host` field line
    /// (RFC 9112 §3.2: both get a 400).
    InvalidHost,
}

// === impl CacheKey ===

impl CacheKey {
    /// Builds the key for a request from its target URI and header fields.
    ///
    /// The host comes from the URI's authority when there is one (absolute-form, HTTP/2
    /// `:authority`): RFC 9112 §3.2.2 says a received `Host` field is then ignored. Otherwise it
    /// comes from the single `Host` header.
    ///
    /// # Errors
    ///
    /// - [`KeyError::MissingHost`] when neither the URI nor a `Host` header names a host.
    /// - [`KeyError::InvalidHost`] when there is more than one `Host` field line, when the host
    ///   is empty, not ASCII, or not `uri-host [ ":" port ]` (for example it contains `/`,
    ///   whitespace or `@`), or when the URI authority carries userinfo (RFC 9110 §4.2.4 asks
    ///   recipients to treat `user@host` as an error).
    pub fn from_request(uri: &Uri, headers: &HeaderMap) -> Result<Self, KeyError> {
        let mut host_lines = headers.get_all(HOST).iter();
        let host_header = host_lines.next();
        // RFC 9112 §3.2: "more than one Host header field line" is a 400, whatever the target.
        if host_lines.next().is_some() {
            return Err(KeyError::InvalidHost);
        }
        let text = match uri.authority() {
            // Userinfo is refused (RFC 9110 §4.2.4): `@` is not a host character, so
            // `user@host` fails the `uri-host [ ":" port ]` check below.
            Some(authority) => authority.as_str(),
            None => {
                let value = host_header.ok_or(KeyError::MissingHost)?;
                let text = value.to_str().map_err(|_| KeyError::InvalidHost)?;
                text.trim_matches(|c| c == ' ' || c == '\t')
            }
        };
        // Validated and split once; the same normalisation as `new`'s.
        let (host, port) = split_host_port(text).ok_or(KeyError::InvalidHost)?;
        let host = if is_default_port(port) { host } else { text };
        let path_and_query = uri.path_and_query().map_or("", |pq| pq.as_str());
        Ok(Self::join(host, path_and_query))
    }

    /// Builds a key from a host and a path-and-query given separately (purge calls, tests).
    ///
    /// Applies the same normalisation as [`from_request`](Self::from_request) (see the module
    /// docs) but does not validate: pass a host that `from_request` would accept.
    #[must_use]
    pub fn new(host: &str, path_and_query: &str) -> Self {
        Self::build(host, path_and_query)
    }

    /// `text` (`uri-host [ ":" port ]`, as a `Host` header carries it) normalised exactly as a
    /// key's host is: lower-cased, an empty, `:80` or `:443` port dropped. For callers that
    /// match keys by host (purges), so they find what requests stored.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidHost`] when `text` is not a host [`from_request`](Self::from_request)
    /// would accept.
    pub fn normalize_host(text: &str) -> Result<String, KeyError> {
        let (host, port) = split_host_port(text).ok_or(KeyError::InvalidHost)?;
        let kept = if is_default_port(port) { host } else { text };
        Ok(kept.to_ascii_lowercase())
    }

    /// The normalised host, e.g. `example.com` or `example.com:8080`.
    pub fn host(&self) -> &str {
        &self.as_str()[..self.host_len]
    }

    /// The path and query as received, e.g. `/search?q=a&x=1` (`/` when the path was empty).
    pub fn path_and_query(&self) -> &str {
        &self.as_str()[self.host_len..]
    }

    /// The whole key text, host directly followed by path-and-query: `example.com/a?b`.
    pub fn as_str(&self) -> &str {
        match &self.text {
            KeyText::Inline(text) => text,
            KeyText::Shared(text) => text,
        }
    }

    /// Normalises and joins the parts.
    fn build(host: &str, path_and_query: &str) -> Self {
        Self::join(strip_default_port(host), path_and_query)
    }

    /// Joins a host whose default port is already dropped and a path-and-query, lower-casing
    /// the host; the single place both constructors go through.
    fn join(host: &str, path_and_query: &str) -> Self {
        // RFC 9110 §4.2.3: an empty path is equivalent to "/". A query without a path (possible
        // in absolute-form, "http://h?q") gets the "/" too, so the text after the host always
        // starts with '/' (or is "*" for asterisk-form) and the boundary stays unambiguous.
        let slash = if path_and_query.is_empty() || path_and_query.starts_with('?') {
            "/"
        } else {
            ""
        };
        let parts = [host, slash, path_and_query];
        let len = host.len() + slash.len() + path_and_query.len();
        let text = if len <= INLINE_TEXT_BYTES {
            let mut text = ArrayString::new();
            parts.iter().for_each(|part| text.push_str(part));
            text[..host.len()].make_ascii_lowercase();
            KeyText::Inline(text)
        } else {
            let mut text = parts.concat();
            text[..host.len()].make_ascii_lowercase();
            KeyText::Shared(Arc::from(text))
        };
        Self {
            text,
            host_len: host.len(),
        }
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        // `host_len` too, as a cheap guard against the (malformed-input-only) case of two
        // different host/path splits producing the same text.
        self.host_len == other.host_len && self.as_str() == other.as_str()
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Text only, so the hash equals that of `as_str()`; equal keys have equal text.
        self.as_str().hash(state);
    }
}

impl WeighedKey for CacheKey {
    /// A short key lives inside the store's entry (its fixed overhead covers it); a longer one
    /// holds its text and the shared cell's two counts.
    fn weight_bytes(&self) -> u32 {
        match &self.text {
            KeyText::Inline(_) => 0,
            KeyText::Shared(text) => {
                u32::try_from(text.len() + 2 * std::mem::size_of::<usize>()).unwrap_or(u32::MAX)
            }
        }
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CacheKey").field(&self.as_str()).finish()
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cache key of `reference` (a `Location` or `Content-Location` value) resolved against
/// `base`, if it has the same origin (RFC 9111 §4.4 invalidates only same-origin URIs).
pub fn same_origin_key(base: &CacheKey, reference: &str) -> Option<CacheKey> {
    let lower = reference.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let uri: http::Uri = reference.parse().ok()?;
        let authority = uri.authority()?;
        let host = match authority.port_u16() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_owned(),
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        // Built as a key, so the host is normalised exactly as the base's was.
        let target = CacheKey::new(&host, path);
        return (target.host() == base.host()).then_some(target);
    }
    if reference.starts_with("//") {
        // A network-path reference names another authority: resolve it like an absolute URI.
        return same_origin_key(base, &format!("http:{reference}"));
    }
    if reference.starts_with('/') {
        return Some(CacheKey::new(base.host(), reference));
    }
    if reference.is_empty() || reference.contains(':') {
        return None;
    }
    // A relative path: resolve against the base path's directory (RFC 3986 §5.2.3).
    let base_path = base.path_and_query();
    let base_path = base_path.split(['?', '#']).next().unwrap_or("/");
    let directory = &base_path[..base_path.rfind('/').map_or(0, |slash| slash + 1)];
    Some(CacheKey::new(
        base.host(),
        &format!("{directory}{reference}"),
    ))
}

// === impl KeyError ===

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingHost => "request names no host",
            Self::InvalidHost => "request host is invalid",
        })
    }
}

impl std::error::Error for KeyError {}

// === host parsing ===

/// Splits `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2) into the host and the port
/// part including its colon (`""`, `":"` or `":8080"`); `None` when it is not of that form.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    let (host, port) = if text.starts_with('[') {
        // IP-literal: the brackets enclose colons, so the port starts after ']'.
        let end = text.find(']')?;
        let (host, port) = text.split_at(end + 1);
        let inner = &host[1..end];
        let valid = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| HOST_BYTES[usize::from(b)] == HostByte::Literal || b == b':');
        if !valid {
            return None;
        }
        (host, port)
    } else {
        // reg-name / IPv4address: unreserved, pct-encoded ('%' HEXDIG HEXDIG) and sub-delims,
        // up to the port's colon; one pass over a table, as every request is keyed.
        // RFC 3986 allows an empty reg-name, but an http(s) URI must name a host.
        let mut end = text.len();
        for (at, b) in text.bytes().enumerate() {
            match HOST_BYTES[usize::from(b)] {
                HostByte::Name | HostByte::Literal => {}
                HostByte::Colon => {
                    end = at;
                    break;
                }
                HostByte::Invalid => return None,
            }
        }
        if end == 0 {
            return None;
        }
        text.split_at(end)
    };
    // port = *DIGIT, so ":" alone is allowed (and normalised away).
    match port.strip_prefix(':') {
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Some((host, port)),
        None if port.is_empty() => Some((host, port)),
        _ => None,
    }
}

/// Whether a port part (as [`split_host_port`] returns it) is empty or a default port, which
/// the key drops (see the module docs for why both defaults).
fn is_default_port(port: &str) -> bool {
    matches!(port, "" | ":" | ":80" | ":443")
}

/// Drops an empty port, `:80` or `:443`.
fn strip_default_port(text: &str) -> &str {
    match split_host_port(text) {
        Some((host, port)) if is_default_port(port) => host,
        _ => text,
    }
}

/// What a byte may be in a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostByte {
    /// Allowed in a reg-name / IPv4address and in an IP-literal: RFC 3986 §2.3 `unreserved`
    /// and §2.2 `sub-delims`.
    Literal,
    /// Allowed in a reg-name only: `%` of pct-encoded.
    Name,
    /// Ends a reg-name: the port follows.
    Colon,
    /// Never allowed.
    Invalid,
}

/// [`HostByte`] for every byte value.
const HOST_BYTES: [HostByte; 256] = {
    let mut table = [HostByte::Invalid; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            ) {
            HostByte::Literal
        } else if c == b'%' {
            HostByte::Name
        } else if c == b':' {
            HostByte::Colon
        } else {
            HostByte::Invalid
        };
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::collections::hash_map::DefaultHasher;

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for host in hosts {
            map.append(HOST, HeaderValue::from_str(host).unwrap());
        }
        map
    }

    fn key(uri: &str, hosts: &[&str]) -> Result<CacheKey, KeyError> {
        CacheKey::from_request(&uri.parse().unwrap(), &headers(hosts))
    }

    #[test]
    fn from_request_table() {
        // (request target, Host lines, expected key text or error)
        let cases: &[(&str, &[&str], Result<&str, KeyError>)] = &[
            // origin-form takes the Host header
            ("/a/b?x=1", &["example.com"], Ok("example.com/a/b?x=1")),
            ("/", &["Example.COM"], Ok("example.com/")),
            ("/", &["example.com:8080"], Ok("example.com:8080/")),
            // default ports and the empty port are dropped (RFC 9110 §4.2.3)
            ("/", &["example.com:80"], Ok("example.com/")),
            ("/", &["example.com:443"], Ok("example.com/")),
            ("/", &["example.com:"], Ok("example.com/")),
            ("/", &["example.com:8443"], Ok("example.com:8443/")),
            // IP literals
            ("/", &["[::1]:8080"], Ok("[::1]:8080/")),
            ("/", &["[::1]:80"], Ok("[::1]/")),
            ("/", &["[FE80::1]"], Ok("[fe80::1]/")),
            ("/", &["192.0.2.1"], Ok("192.0.2.1/")),
            // the query is kept exactly: order, case, encoding, an empty "?"
            ("/p?b=2&a=1", &["h"], Ok("h/p?b=2&a=1")),
            ("/P%2fQ?A=B", &["h"], Ok("h/P%2fQ?A=B")),
            ("/p?", &["h"], Ok("h/p?")),
            // absolute-form: the URI authority wins and Host is ignored (RFC 9112 §3.2.2)
            (
                "http://Origin.Example/x?y",
                &["other.example"],
                Ok("origin.example/x?y"),
            ),
            ("http://origin.example/x", &[], Ok("origin.example/x")),
            ("http://origin.example", &[], Ok("origin.example/")),
            ("http://origin.example:80/x", &[], Ok("origin.example/x")),
            ("https://origin.example:443/x", &[], Ok("origin.example/x")),
            ("http://origin.example:81/x", &[], Ok("origin.example:81/x")),
            ("http://origin.example?x=1", &[], Ok("origin.example/?x=1")),
            // asterisk-form (OPTIONS *): kept as is, never starts with '/'
            ("*", &["h"], Ok("h*")),
            // errors (RFC 9112 §3.2: each of these is a 400)
            ("/", &[], Err(KeyError::MissingHost)),
            ("/", &["a.example", "a.example"], Err(KeyError::InvalidHost)),
            (
                "http://a.example/",
                &["a.example", "b.example"],
                Err(KeyError::InvalidHost),
            ),
            ("/", &[""], Err(KeyError::InvalidHost)),
            ("/", &["a.example/b"], Err(KeyError::InvalidHost)),
            ("/", &["a example"], Err(KeyError::InvalidHost)),
            ("/", &["user@a.example"], Err(KeyError::InvalidHost)),
            ("/", &["a.example:8o"], Err(KeyError::InvalidHost)),
            ("/", &["a:b:80"], Err(KeyError::InvalidHost)),
            ("/", &["[::1"], Err(KeyError::InvalidHost)),
            ("/", &["[]"], Err(KeyError::InvalidHost)),
            ("/", &[":80"], Err(KeyError::InvalidHost)),
            ("/", &["a.example?x"], Err(KeyError::InvalidHost)),
            ("http://user@a.example/", &[], Err(KeyError::InvalidHost)),
        ];
        for (uri, hosts, want) in cases {
            let got = key(uri, hosts);
            assert_eq!(
                got.as_ref().map(CacheKey::as_str),
                want.as_ref().map(|s| *s),
                "{uri} {hosts:?}"
            );
        }
    }

    #[test]
    fn a_key_fits_the_stores_cell() {
        // The cell is the key and two reference counts; 88 bytes is what a 96-byte glibc chunk
        // holds (INLINE_TEXT_BYTES).
        assert!(
            size_of::<CacheKey>() + 16 <= 88,
            "{} bytes",
            size_of::<CacheKey>()
        );
    }

    #[test]
    fn long_keys_behave_as_short_ones() {
        for path in ["/a", &format!("/{}", "x".repeat(INLINE_TEXT_BYTES))] {
            let key = CacheKey::new("Example.COM:80", path);
            assert_eq!(key.host(), "example.com");
            assert_eq!(key.path_and_query(), path);
            assert_eq!(key.as_str(), format!("example.com{path}"));
            assert_eq!(key, CacheKey::new("example.com", path));
            assert_eq!(hash_of(&key), hash_of(key.as_str()));
        }
        let path = "/".repeat(INLINE_TEXT_BYTES - 1);
        let (inline, shared) = (CacheKey::new("a", &path), CacheKey::new("ab", &path));
        assert!(matches!(inline.text, KeyText::Inline(_)));
        let KeyText::Shared(text) = &shared.text else {
            panic!("{} bytes kept inline", shared.as_str().len());
        };
        let KeyText::Shared(cloned) = &shared.clone().text else {
            panic!("a clone kept its text inline");
        };
        assert!(Arc::ptr_eq(text, cloned), "clones share a long text");
    }

    #[test]
    fn hosts_normalise_as_the_keys_of_requests_do() {
        for host in [
            "x.example",
            "X.Example:80",
            "x.example:443",
            "x.example:",
            "[::1]:8080",
        ] {
            let from_request = key("/", &[host]).expect("a valid host");
            assert_eq!(
                CacheKey::normalize_host(host).as_deref(),
                Ok(from_request.host()),
                "{host}"
            );
        }
        for bad in [
            "",
            ":80",
            "x y",
            "x/y",
            "u@x",
            "x:8o",
            "caf\u{e9}.example",
            "[]",
        ] {
            assert_eq!(
                CacheKey::normalize_host(bad),
                Err(KeyError::InvalidHost),
                "{bad}"
            );
        }
    }

    #[test]
    fn host_with_surrounding_whitespace_is_trimmed() {
        // Field values exclude leading/trailing OWS (RFC 9110 §5.5); hyper already strips it, a
        // HeaderMap built by hand may not.
        let got = key("/", &[" a.example\t"]).unwrap();
        assert_eq!(got.as_str(), "a.example/");
    }

    #[test]
    fn non_ascii_host_is_invalid() {
        let mut map = HeaderMap::new();
        map.insert(
            HOST,
            HeaderValue::from_bytes(b"caf\xc3\xa9.example").unwrap(),
        );
        let got = CacheKey::from_request(&"/".parse().unwrap(), &map);
        assert_eq!(got, Err(KeyError::InvalidHost));
    }

    #[test]
    fn parts_are_split_where_the_host_ends() {
        let cases = [
            (
                CacheKey::new("A.example:80", "/x?y=1"),
                "a.example",
                "/x?y=1",
            ),
            (CacheKey::new("a.example:8080", ""), "a.example:8080", "/"),
            (CacheKey::new("a.example", "?q"), "a.example", "/?q"),
            (key("/z", &["B.example"]).unwrap(), "b.example", "/z"),
        ];
        for (k, host, pq) in cases {
            assert_eq!(k.host(), host, "{k:?}");
            assert_eq!(k.path_and_query(), pq, "{k:?}");
            assert_eq!(k.as_str(), format!("{host}{pq}"));
        }
    }

    #[test]
    fn new_and_from_request_agree_for_purges() {
        let from_request = key("/a?b", &["Example.com:80"]).unwrap();
        assert_eq!(CacheKey::new("example.com", "/a?b"), from_request);
        assert_eq!(CacheKey::new("EXAMPLE.COM:443", "/a?b"), from_request);
        assert_ne!(CacheKey::new("example.com", "/a?B"), from_request);
        assert_ne!(CacheKey::new("example.com", "/a"), from_request);
    }

    fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        hasher.finish()
    }

    #[test]
    fn hash_and_eq_follow_the_text() {
        let a = CacheKey::new("h", "/p");
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(hash_of(&a), hash_of("h/p"));
    }

    #[test]
    fn debug_and_display_print_the_text() {
        let k = CacheKey::new("h", "/p?q");
        assert_eq!(format!("{k:?}"), r#"CacheKey("h/p?q")"#);
        assert_eq!(k.to_string(), "h/p?q");
    }

    #[test]
    fn errors_display() {
        assert_eq!(KeyError::MissingHost.to_string(), "request names no host");
        assert_eq!(KeyError::InvalidHost.to_string(), "request host is invalid");
        let _: &dyn std::error::Error = &KeyError::InvalidHost;
    }

    #[test]
    fn location_targets_resolve_to_same_origin_keys_only() {
        let base = CacheKey::new("example.com", "/a/b?x=1");
        let cases = [
            ("/c", Some("example.com/c")),
            ("c", Some("example.com/a/c")),
            ("http://example.com/d?q", Some("example.com/d?q")),
            ("HTTP://EXAMPLE.COM/e", Some("example.com/e")),
            ("http://other.example/f", None),
            ("//other.example/g", None),
            ("//example.com/h", Some("example.com/h")),
            // The authority is compared as the key normalises it (default port, case).
            ("http://example.com:80/i", Some("example.com/i")),
            ("https://Example.COM:443/j", Some("example.com/j")),
            ("http://example.com:8080/k", None),
            ("mailto:x@example.com", None),
            ("", None),
        ];
        let ipv6 = CacheKey::new("[::1]:8080", "/a");
        assert_eq!(
            same_origin_key(&ipv6, "http://[::1]:8080/b")
                .as_ref()
                .map(CacheKey::as_str),
            Some("[::1]:8080/b")
        );
        for (reference, expected) in cases {
            let key = same_origin_key(&base, reference);
            assert_eq!(
                key.as_ref().map(CacheKey::as_str),
                expected,
                "reference {reference:?}"
            );
        }
    }
}
