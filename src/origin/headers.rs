//! Header hygiene at the two hops: hop-by-hop fields out, `Via` and `X-Forwarded-For` in, and
//! the fields that could make one client's request shape what others are served stripped.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The `Via` entry sidecache adds (RFC 9110 §7.6.3): protocol version and a pseudonym.
pub const VIA_ENTRY: &str = "1.1 sidecache";

/// `X-Forwarded-For`, the de-facto header naming the client of a proxy.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Fields that describe one connection only and are never forwarded or stored (RFC 9110 §7.6.1,
/// RFC 9111 §3.1), besides those the `Connection` field itself nominates.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Non-standard fields that frameworks and servers honour to rewrite the request's host, scheme or
/// path (for links, redirects, routing), yet that the cache key does not contain. Forwarded, one
/// client's value would shape a response stored for everyone (cache poisoning; also the
/// `X-Original-URL` access-control bypass and host-header injection into password-reset links),
/// so they are removed from every request before it goes to the origin. The client's `Host` is
/// kept (`--host-header preserve`) and is part of the key, so an origin loses nothing it needs.
/// `X-Forwarded-Proto` and `Forwarded` are left alone: ingresses set them on every request.
pub const UNKEYED_OVERRIDES: [HeaderName; 7] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-forwarded-scheme"),
];

/// Fields that tell an origin to treat a request as another method. On a shared load (a `GET`
/// whose answer is stored) a `DELETE` or `POST` answer would be stored for the `GET`, so a load
/// never carries them; a request that passes through keeps them (it affects its client only).
pub const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Removes every field in `names`.
pub fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        headers.remove(name);
    }
}

/// Removes hop-by-hop fields: the fixed list, `Transfer-Encoding`, and every field the
/// `Connection` field nominates.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let nominated: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in nominated.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Appends sidecache's entry to `Via`.
pub fn append_via(headers: &mut HeaderMap) {
    headers.append(header::VIA, HeaderValue::from_static(VIA_ENTRY));
}

/// Appends the client's address to `X-Forwarded-For`.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let client =
        HeaderValue::from_str(&client.to_string()).expect("an IP address is a valid header value");
    headers.append(X_FORWARDED_FOR, client);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_nominated_fields_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn via_and_forwarded_for_are_appended_to_what_is_there() {
        let mut headers = HeaderMap::new();
        headers.insert(header::VIA, HeaderValue::from_static("1.1 edge"));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        append_via(&mut headers);
        append_forwarded_for(&mut headers, "127.0.0.1".parse().expect("ip"));
        let via: Vec<_> = headers.get_all(header::VIA).iter().collect();
        assert_eq!(via, ["1.1 edge", VIA_ENTRY]);
        let xff: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff, ["203.0.113.9", "127.0.0.1"]);
    }
}
