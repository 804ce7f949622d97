//! Header hygiene at the two hops: hop-by-hop fields out, `Via` and sidecache's own forwarding
//! fields in, and the fields that could make one client's request shape what others are served
//! stripped.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The `Via` entry sidecache adds (RFC 9110 §7.6.3): protocol version and a pseudonym.
pub(crate) const VIA_ENTRY: &str = "1.1 sidecache";

/// `X-Forwarded-For`, the de-facto header naming the client of a proxy.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `X-Forwarded-Host`: the host the client asked for.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// `X-Forwarded-Proto`: the scheme the client used.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The standard field (RFC 7239) for what the `X-Forwarded-*` fields say.
pub(crate) const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The scheme clients reach sidecache by: the proxy listener speaks cleartext HTTP.
pub(crate) const CLIENT_SCHEME: &str = "http";

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

/// Non-standard fields that frameworks and servers honour to rewrite the request's host or path
/// (for links, redirects, routing), yet that the cache key does not contain. Forwarded, one
/// client's value would shape a response stored for everyone (cache poisoning; also the
/// `X-Original-URL` access-control bypass and host-header injection into password-reset links),
/// so they are removed from every request before it goes to the origin, as are `Forwarded` and
/// every `X-Forwarded-*` field ([`replace_forwarding`]). The host is sent as the key has it, so
/// an origin loses nothing it needs.
pub(crate) const UNKEYED_OVERRIDES: [HeaderName; 4] = [
    HeaderName::from_static("x-host"),
    HeaderName::from_static("x-original-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// Fields that tell an origin to treat a request as another method. On a shared load (a `GET`
/// whose answer is stored) a `DELETE` or `POST` answer would be stored for the `GET`, so a load
/// never carries them; a request that passes through keeps them (it affects its client only).
pub(crate) const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Removes every field in `names`.
pub(crate) fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        headers.remove(name);
    }
}

/// Removes hop-by-hop fields: the fixed list, `Transfer-Encoding`, and every field the
/// `Connection` field nominates, except `Host`, which names the resource and cannot describe a
/// connection.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let nominated: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| *name != header::HOST)
        .collect();
    for name in nominated.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Replaces whatever the client said about the route its request took (`Forwarded` and every
/// `X-Forwarded-*` field: for, host, proto, port, prefix, server, ssl, uri, ...) with what
/// sidecache knows itself: the client's address, the host the request is keyed on, and the
/// scheme the client used. Frameworks build links and redirects from these fields and the key
/// holds none of the client's values, so a client's own would shape a page stored for everyone.
pub(crate) fn replace_forwarding(headers: &mut HeaderMap, client: IpAddr, host: &str) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| *name == FORWARDED || name.as_str().starts_with("x-forwarded-"))
        .cloned()
        .collect();
    for name in &forged {
        headers.remove(name);
    }
    let client_text = client.to_string();
    let node = match client {
        IpAddr::V4(_) => client_text.clone(),
        // RFC 7239 §6: an IPv6 node is bracketed and quoted.
        IpAddr::V6(_) => format!("\"[{client_text}]\""),
    };
    let forwarded = format!("for={node};host=\"{host}\";proto={CLIENT_SCHEME}");
    for (name, value) in [
        (X_FORWARDED_FOR, client_text.as_str()),
        (X_FORWARDED_HOST, host),
        (X_FORWARDED_PROTO, CLIENT_SCHEME),
        (FORWARDED, forwarded.as_str()),
    ] {
        // A key's host is a valid field value; an address and a scheme are too.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

/// Appends sidecache's entry to `Via`.
pub(crate) fn append_via(headers: &mut HeaderMap) {
    headers.append(header::VIA, HeaderValue::from_static(VIA_ENTRY));
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
    fn via_is_appended_to_what_is_there() {
        let mut headers = HeaderMap::new();
        headers.insert(header::VIA, HeaderValue::from_static("1.1 edge"));
        append_via(&mut headers);
        let via: Vec<_> = headers.get_all(header::VIA).iter().collect();
        assert_eq!(via, ["1.1 edge", VIA_ENTRY]);
    }

    #[test]
    fn connection_cannot_remove_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("host"));
        headers.insert(header::HOST, HeaderValue::from_static("a.example"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers[header::HOST], "a.example");
    }

    #[test]
    fn forwarding_fields_are_replaced_by_what_sidecache_knows() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("forwarded", "for=203.0.113.9;host=evil"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-prefix", "/evil"),
            ("x-forwarded-port", "1"),
            ("accept", "*/*"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        replace_forwarding(&mut headers, "::1".parse().expect("ip"), "a.example:8080");
        let mut fields: Vec<_> = headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().expect("text")))
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "accept: */*",
                "forwarded: for=\"[::1]\";host=\"a.example:8080\";proto=http",
                "x-forwarded-for: ::1",
                "x-forwarded-host: a.example:8080",
                "x-forwarded-proto: http",
            ]
        );
    }
}
