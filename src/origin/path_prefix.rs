//! The path an origin URL names (`--origin http://svc:9000/api/`): every client path is asked for
//! under it, and the origin's references into it are turned back into client paths.
//!
//! Clients see the origin's `/api/users` as `/users`, as nginx's `proxy_pass http://svc/api/;`
//! in `location /` shows it. The cache keys, purges and `--ttl-overrides` prefixes are all in
//! the clients' paths. On the way back, a `Location` or `Content-Location` that points under the
//! prefix (a path such as `/api/users/5`, or an absolute URL on the origin's authority or on the
//! `Host` the request carried) is rewritten to the client's path (`/users/5`), as nginx's
//! `proxy_redirect default` does for `Location`; so clients follow redirects to the URLs they can
//! reach, and an unsafe request invalidates what clients stored (RFC 9111 §4.4). Other references
//! (other hosts, paths outside the prefix, relative paths, which resolve alike on both sides) are
//! left as they are.

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, InvalidUri, PathAndQuery};

/// The origin URL's path, without its trailing `/`: empty when the URL names none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PathPrefix(String);

// === impl PathPrefix ===

impl PathPrefix {
    /// The prefix `path` (an origin URL's path) names; `/` and the empty path name none, and
    /// `/api` is the same prefix as `/api/`.
    pub(crate) fn new(path: &str) -> Self {
        Self(path.trim_end_matches('/').to_owned())
    }

    /// The path and query to ask the origin for, for a client's `path_and_query`. Anything but
    /// a path (`*` of `OPTIONS *`) goes as it is.
    ///
    /// # Errors
    /// The joined text is not a valid request target (cannot happen for a valid prefix and
    /// path, which are both made of valid target characters).
    pub(crate) fn outgoing(
        &self,
        path_and_query: PathAndQuery,
    ) -> Result<PathAndQuery, InvalidUri> {
        if self.0.is_empty() || !path_and_query.as_str().starts_with('/') {
            return Ok(path_and_query);
        }
        PathAndQuery::try_from(format!("{}{}", self.0, path_and_query.as_str()))
    }

    /// Rewrites the `Location` and `Content-Location` of an origin response to the client's
    /// paths (module docs). `host` is the `Host` the request carried to the origin.
    pub(crate) fn incoming(
        &self,
        headers: &mut HeaderMap,
        origin: &Authority,
        host: Option<&HeaderValue>,
    ) {
        if self.0.is_empty() {
            return;
        }
        let host = host.and_then(|host| host.to_str().ok());
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let rewritten = headers
                .get(&name)
                .and_then(|value| value.to_str().ok())
                .and_then(|reference| self.client_reference(reference, origin, host))
                .and_then(|reference| HeaderValue::try_from(reference).ok());
            if let Some(rewritten) = rewritten {
                headers.insert(name, rewritten);
            }
        }
    }

    /// What `reference` is for a client, when it points under the prefix.
    fn client_reference(
        &self,
        reference: &str,
        origin: &Authority,
        host: Option<&str>,
    ) -> Option<String> {
        let path = match absolute_parts(reference) {
            Some((authority, path)) => {
                let ours = authority.eq_ignore_ascii_case(origin.as_str())
                    || host.is_some_and(|host| authority.eq_ignore_ascii_case(host));
                ours.then_some(path)?
            }
            None if reference.starts_with('/') && !reference.starts_with("//") => reference,
            None => return None,
        };
        let rest = path.strip_prefix(self.0.as_str())?;
        match rest.chars().next() {
            None => Some("/".to_owned()),
            Some('/') => Some(rest.to_owned()),
            Some('?' | '#') => Some(format!("/{rest}")),
            // `/apiary` is not under `/api`.
            Some(_) => None,
        }
    }
}

/// The authority and the rest (path, query, fragment) of an absolute `http`/`https` URL.
fn absolute_parts(reference: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = reference.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &'static str) -> PathAndQuery {
        PathAndQuery::from_static(text)
    }

    #[test]
    fn client_paths_are_asked_for_under_the_prefix() {
        let cases = [
            ("/api/", "/users?page=2", "/api/users?page=2"),
            ("/api", "/users", "/api/users"),
            ("/api/v1//", "/", "/api/v1/"),
            ("/", "/users", "/users"),
            ("", "/users", "/users"),
            ("/api/", "*", "*"),
        ];
        for (prefix, client, expected) in cases {
            let outgoing = PathPrefix::new(prefix)
                .outgoing(target(client))
                .expect("a valid target");
            assert_eq!(outgoing.as_str(), expected, "{prefix} {client}");
        }
    }

    #[test]
    fn references_under_the_prefix_become_client_paths() {
        let prefix = PathPrefix::new("/api/");
        let origin: Authority = "svc:9000".parse().expect("an authority");
        let host = HeaderValue::from_static("www.example");
        // (Location sent by the origin, Location the client gets)
        let cases = [
            ("/api/users/5", "/users/5"),
            ("/api", "/"),
            ("/api/", "/"),
            ("/api?x=1", "/?x=1"),
            ("/api/a?b#c", "/a?b#c"),
            ("http://svc:9000/api/users/5", "/users/5"),
            ("HTTP://SVC:9000/api/users", "/users"),
            ("https://www.example/api/users?x", "/users?x"),
            ("http://www.example/api", "/"),
            // Not under the prefix, or not the origin's: left alone.
            ("/apiary", "/apiary"),
            ("/other/5", "/other/5"),
            ("http://svc:9000/other", "http://svc:9000/other"),
            (
                "http://elsewhere.example/api/users",
                "http://elsewhere.example/api/users",
            ),
            ("//svc:9000/api/users", "//svc:9000/api/users"),
            ("users/5", "users/5"),
            ("ftp://svc:9000/api/users", "ftp://svc:9000/api/users"),
        ];
        for (sent, expected) in cases {
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                let mut headers = HeaderMap::new();
                headers.insert(name.clone(), HeaderValue::from_static(sent));
                prefix.incoming(&mut headers, &origin, Some(&host));
                assert_eq!(headers[&name], expected, "{name}: {sent}");
            }
        }
    }

    #[test]
    fn without_a_prefix_nothing_changes() {
        let origin: Authority = "svc:9000".parse().expect("an authority");
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, HeaderValue::from_static("/api/users"));
        PathPrefix::new("/").incoming(&mut headers, &origin, None);
        assert_eq!(headers[header::LOCATION], "/api/users");
    }
}
