//! `Cache-Control`, `Vary` and the RFC 9111 policy built on them, from arbitrary request and
//! response fields.
//!
//! Input: the first byte picks the status; then request field lines (`name: value`), an empty
//! line, and response field lines. Checks that nothing panics and that the answers agree with
//! each other: a `Vary` key matches the request it was captured from, freshness and `ttl` agree,
//! and a revalidation never merges a cookie into the shared copy.

#![no_main]

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderName, HeaderValue, SET_COOKIE, VARY};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use sidecache::http::directives::{RequestDirectives, ResponseDirectives};
use sidecache::http::freshen::{freshen_headers, not_modified_selects};
use sidecache::http::policy::{OriginFailure, PolicySettings, ResponsePolicy, Reuse};
use sidecache::http::vary::VaryKey;

/// Statuses with different caching rules (final, heuristic, partial, 304, never stored, errors).
const STATUSES: [u16; 12] = [200, 203, 204, 206, 301, 304, 404, 410, 429, 500, 503, 599];

fn fields(text: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim_ascii()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let status =
        StatusCode::from_u16(STATUSES[usize::from(pick) % STATUSES.len()]).expect("a valid status");
    let (request_text, response_text) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &b""[..]),
    };
    let request = fields(request_text);
    let response = fields(response_text);

    let request_directives = RequestDirectives::from_request(&request);
    let _ = ResponseDirectives::from_response(&response);

    match VaryKey::capture(&response, &request) {
        Some(key) => {
            assert!(key.matches(&request), "a Vary key matches its own request");
            assert!(key.same_fields(&key));
            assert!(key.weight() > 0);
        }
        None => assert!(
            response.contains_key(VARY),
            "only a Vary field can make a response unmatchable"
        ),
    }

    let requested = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let received = requested + Duration::from_millis(u64::from(pick));
    let policy = ResponsePolicy::new(
        &Method::GET,
        &request,
        status,
        &response,
        requested,
        received,
        &PolicySettings::default(),
    );
    let stored = policy.storable();
    if response.contains_key(SET_COOKIE) {
        assert!(
            stored.is_err(),
            "a response with Set-Cookie is never stored"
        );
    }
    if stored.is_ok() {
        assert!(!policy.retain_for(received).is_zero());
    }
    let _ = policy.has_validator();
    let mut previous_age = Duration::ZERO;
    for later in [0, 1, 59, 3_600, 86_400 * 400, 1 << 40] {
        let now = received + Duration::from_secs(later);
        let age = policy.current_age(now);
        assert!(age >= previous_age, "age never goes back");
        previous_age = age;
        let ttl = policy.ttl_seconds(now);
        if policy.is_fresh(now) {
            assert!(ttl >= 0, "fresh but ttl {ttl}");
        } else {
            assert!(ttl <= 0, "stale but ttl {ttl}");
        }
        if policy.reuse(&request_directives, now) == Reuse::Fresh {
            assert!(policy.is_fresh(now), "reused as fresh while stale");
        }
        let _ = policy.age_header_seconds(now);
        let _ = policy.retain_for(now);
        for failure in [OriginFailure::Unreachable, OriginFailure::ErrorStatus] {
            let _ = policy.usable_on_error(&request_directives, failure, now);
        }
    }

    // The request's fields stand in for a 304's.
    let _ = not_modified_selects(|name| response.get(name).cloned(), &request);
    let freshened = freshen_headers(&response, &request);
    let cookies = |map: &HeaderMap| map.get_all(SET_COOKIE).iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        cookies(&freshened),
        cookies(&response),
        "a 304's Set-Cookie is never merged into the stored response"
    );
});
