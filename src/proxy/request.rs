//! The client's request as the cache sees it: classified, keyed and cleaned once.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri};

use crate::http::directives::RequestDirectives;
use crate::http::key::{CacheKey, KeyError};
use crate::origin::headers::{
    UNKEYED_OVERRIDES, append_via, remove_all, remove_hop_by_hop, replace_forwarding,
};
use crate::telemetry::context;
use crate::telemetry::logs::TraceIds;

/// Which of the request fields the cache reads beyond `Host` a request carries, found in one
/// pass over its head: a request without them (most requests) skips looking each one up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarriedFields {
    /// `Cache-Control` or `Pragma`.
    pub directives: bool,
    /// `If-None-Match` or `If-Modified-Since`: preconditions a cache answers itself.
    pub validators: bool,
    /// `If-Match` or `If-Unmodified-Since`: preconditions only the origin can judge.
    pub state_preconditions: bool,
    /// `Range` (and with it `If-Range`).
    pub range: bool,
    /// `traceparent`: the client continues a trace (read only with tracing on).
    pub trace_context: bool,
    /// `Connection`, which may nominate other fields as hop-by-hop.
    pub connection: bool,
}

impl CarriedFields {
    /// What `headers` carry.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut carried = Self::default();
        for name in headers.keys() {
            if name == header::CACHE_CONTROL || name == header::PRAGMA {
                carried.directives = true;
            } else if name == header::IF_NONE_MATCH || name == header::IF_MODIFIED_SINCE {
                carried.validators = true;
            } else if name == header::IF_MATCH || name == header::IF_UNMODIFIED_SINCE {
                carried.state_preconditions = true;
            } else if name == header::RANGE {
                carried.range = true;
            } else if name == context::TRACEPARENT {
                carried.trace_context = true;
            } else if name == header::CONNECTION {
                carried.connection = true;
            }
        }
        carried
    }
}

/// What the proxy will do with a request, decided from its method and preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// GET or HEAD: answered from the cache where possible.
    Cacheable,
    /// Any method not known to be safe (POST, PUT, DELETE, PATCH, and every extension method
    /// not registered as safe): sent through; a success invalidates what it touched (RFC 9110
    /// §9.2.1, RFC 9111 §4.4).
    Unsafe,
    /// The other safe methods (OPTIONS, TRACE, the WebDAV reads), or a GET carrying
    /// preconditions the origin must judge: sent through, invalidating nothing.
    Pass,
}

/// The request head, lent to the cache and cloned into a load only when one starts (a hit
/// copies nothing).
///
/// It keeps the client's end-to-end fields as they arrived: a hit needs them only to select a
/// variant and answer conditions, so the fields to forward are built only when a request goes to
/// the origin ([`forwarded_headers`](Self::forwarded_headers)). Fields the client's `Connection`
/// nominates are removed at once: the origin never sees them, so no variant may be selected or
/// stored by them.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The client's method.
    pub method: Method,
    /// The client's fields, as received.
    pub headers: HeaderMap,
    /// The request's cache directives, parsed once.
    pub directives: RequestDirectives,
    /// Which of the fields the cache reads the request carries.
    pub carried: CarriedFields,
    /// The cache key: host and path-and-query.
    pub key: CacheKey,
    /// The client's address, for `X-Forwarded-For` and `Forwarded`.
    client: IpAddr,
    /// The trace ids to pass on when no span of ours does (a request the sampler dropped).
    unsampled_trace: Option<TraceIds>,
}

impl Class {
    /// The class of a request with this method, carrying these fields.
    pub(crate) fn of(method: &Method, carried: CarriedFields) -> Self {
        match *method {
            // RFC 9111 §4.3.2: If-Match and If-Unmodified-Since are "not applicable to a cache",
            // so such a request goes to the origin.
            Method::GET | Method::HEAD if carried.state_preconditions => Self::Pass,
            Method::GET | Method::HEAD => Self::Cacheable,
            Method::OPTIONS | Method::TRACE => Self::Pass,
            _ if SAFE_EXTENSION_METHODS.contains(&method.as_str()) => Self::Pass,
            _ => Self::Unsafe,
        }
    }
}

/// The extension methods the IANA HTTP Method Registry records as safe (WebDAV's reads). Any
/// other method the cache does not know may change the resource, so it is treated as unsafe.
const SAFE_EXTENSION_METHODS: [&str; 3] = ["PROPFIND", "REPORT", "SEARCH"];

impl RequestHead {
    /// Builds the head from the client's request, what [`CarriedFields::of`] found in its
    /// `headers` (the caller has made that pass already) and the client's address.
    ///
    /// # Errors
    /// The request names no valid host (the client is answered 400).
    pub fn new(
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        carried: CarriedFields,
        client: IpAddr,
    ) -> Result<Self, KeyError> {
        if carried.connection {
            remove_hop_by_hop(&mut headers);
        }
        let key = CacheKey::from_request(uri, &headers)?;
        let directives = if carried.directives {
            RequestDirectives::from_request(&headers)
        } else {
            RequestDirectives::default()
        };
        Ok(Self {
            method,
            headers,
            directives,
            carried,
            key,
            client,
            unsampled_trace: None,
        })
    }

    /// Makes the origin request carry `ids` as an unsampled `traceparent` (see
    /// [`RequestTrace::unsampled_ids`](super::trace::RequestTrace::unsampled_ids)).
    pub fn passing_on(mut self, ids: Option<TraceIds>) -> Self {
        self.unsampled_trace = ids;
        self
    }

    /// Answers the request as if it carried no cache directives (`--client-cache-control
    /// ignore`). The origin still receives its fields as they came.
    pub fn ignoring_cache_directives(mut self) -> Self {
        self.directives = RequestDirectives::default();
        self
    }

    /// The same request without its credentials (`Cookie`, `Authorization`): for a load made
    /// for the cache rather than for this client.
    pub fn without_credentials(&self) -> Self {
        let mut request = self.clone();
        request.headers.remove(header::COOKIE);
        request.headers.remove(header::AUTHORIZATION);
        request
    }

    /// The path and query to ask the origin for.
    pub fn origin_uri(&self) -> Uri {
        Uri::builder()
            .path_and_query(self.key.path_and_query())
            .build()
            .expect("a cache key's path and query came from a valid request target")
    }

    /// The fields to send to the origin: hop-by-hop fields, the client's framing
    /// (`Content-Length`), the [`UNKEYED_OVERRIDES`] and the client's forwarding fields removed;
    /// `Via` and sidecache's own forwarding fields added; and `Host` as the key has it (lower
    /// case, no default port), so the origin builds its answer for the host it is stored under.
    pub fn forwarded_headers(&self) -> HeaderMap {
        let mut headers = self.headers.clone();
        remove_hop_by_hop(&mut headers);
        // The origin request is framed from the body actually sent (hyper writes the length of
        // a body it knows, or chunks): a load sends none, and a stale client length would make
        // the origin wait for bytes that never come, or read the next request as this body.
        headers.remove(header::CONTENT_LENGTH);
        remove_all(&mut headers, &UNKEYED_OVERRIDES);
        append_via(&mut headers);
        replace_forwarding(&mut headers, self.client, self.key.host());
        if let Some(ids) = &self.unsampled_trace {
            context::write_unsampled(ids, &mut headers);
        }
        // HTTP/2 and absolute-form requests carry the host in the URI, which wins over any Host
        // field (RFC 9112 §3.2.2); the origin gets it as a Host field either way.
        if let Ok(host) = HeaderValue::from_str(self.key.host()) {
            headers.insert(header::HOST, host);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(fields: &[(&'static str, &'static str)]) -> CarriedFields {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("a.example"));
        for (name, value) in fields {
            headers.append(*name, HeaderValue::from_static(value));
        }
        CarriedFields::of(&headers)
    }

    #[test]
    fn the_fields_the_cache_reads_are_found_in_one_pass() {
        let none = CarriedFields::default();
        let cases: &[(&[(&str, &str)], CarriedFields)] = &[
            (&[], none),
            (&[("accept", "*/*"), ("user-agent", "x")], none),
            (
                &[("cache-control", "no-cache")],
                CarriedFields {
                    directives: true,
                    ..none
                },
            ),
            (
                &[("pragma", "no-cache")],
                CarriedFields {
                    directives: true,
                    ..none
                },
            ),
            (
                &[("if-none-match", "\"a\"")],
                CarriedFields {
                    validators: true,
                    ..none
                },
            ),
            (
                &[("if-modified-since", "x")],
                CarriedFields {
                    validators: true,
                    ..none
                },
            ),
            (
                &[("if-match", "*")],
                CarriedFields {
                    state_preconditions: true,
                    ..none
                },
            ),
            (
                &[("if-unmodified-since", "x")],
                CarriedFields {
                    state_preconditions: true,
                    ..none
                },
            ),
            (
                &[("range", "bytes=0-1")],
                CarriedFields {
                    range: true,
                    ..none
                },
            ),
            (
                &[
                    (
                        "traceparent",
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    ),
                    ("tracestate", "vendor=1"),
                ],
                CarriedFields {
                    trace_context: true,
                    ..none
                },
            ),
            (
                &[
                    ("range", "bytes=0-1"),
                    ("if-match", "*"),
                    ("cache-control", "max-age=0"),
                ],
                CarriedFields {
                    directives: true,
                    state_preconditions: true,
                    range: true,
                    ..none
                },
            ),
        ];
        for (fields, want) in cases {
            assert_eq!(carried(fields), *want, "{fields:?}");
        }
    }

    #[test]
    fn state_changing_preconditions_pass_a_get_through() {
        let get = |fields| Class::of(&Method::GET, carried(fields));
        assert_eq!(get(&[]), Class::Cacheable);
        assert_eq!(get(&[("if-match", "\"a\"")]), Class::Pass);
        assert_eq!(get(&[("if-unmodified-since", "x")]), Class::Pass);
        assert_eq!(get(&[("if-none-match", "\"a\"")]), Class::Cacheable);
        assert_eq!(get(&[("if-range", "\"a\"")]), Class::Cacheable);
        assert_eq!(
            Class::of(&Method::POST, CarriedFields::default()),
            Class::Unsafe
        );
        assert_eq!(
            Class::of(&Method::OPTIONS, CarriedFields::default()),
            Class::Pass
        );
    }

    #[test]
    fn a_method_not_known_to_be_safe_is_unsafe() {
        let class = |method: &str| {
            let method = Method::from_bytes(method.as_bytes()).expect("a method token");
            Class::of(&method, CarriedFields::default())
        };
        for unsafe_method in [
            "POST", "PUT", "DELETE", "PATCH", "M-SEARCH", "PURGE", "propfind",
        ] {
            assert_eq!(class(unsafe_method), Class::Unsafe, "{unsafe_method}");
        }
        for safe in ["OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH"] {
            assert_eq!(class(safe), Class::Pass, "{safe}");
        }
    }
}
