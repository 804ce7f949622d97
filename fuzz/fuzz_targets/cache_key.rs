//! The cache-key builder: a request target and `Host` lines, as a client could send them.
//!
//! Input: the `Host` field lines, one per line, then an empty line, then the request target.
//! Checks that building a key never panics and that a key is stable: built again from its own
//! host and path (as a purge does), it is the same key.

#![no_main]

use http::Uri;
use http::header::{HOST, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sidecache::http::key::CacheKey;

fuzz_target!(|data: &[u8]| {
    let (hosts, target) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (&b""[..], data),
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in hosts.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(HOST, value);
        }
    }
    let Ok(key) = CacheKey::from_request(&uri, &headers) else {
        return;
    };
    let (host, path) = (key.host(), key.path_and_query());
    assert_eq!(format!("{host}{path}"), key.as_str());
    assert!(!host.is_empty(), "a key names a host: {key:?}");
    assert!(
        !host.bytes().any(|b| b.is_ascii_uppercase()),
        "the host is lower-cased: {key:?}"
    );
    assert!(
        path.starts_with('/') || path == "*",
        "the path starts where the host ends: {key:?}"
    );
    let rebuilt = CacheKey::new(host, path);
    assert_eq!(rebuilt, key, "normalising twice changes nothing");
    assert_eq!(rebuilt.host(), host);
});
