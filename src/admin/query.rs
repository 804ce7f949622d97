//! The query strings of the admin calls that name stored URLs (`/purge`, `/debug/cache`), read
//! as an operator types them.
//!
//! A path with a query is taken as a client sends it: in `url=/search?q=a&page=2`, everything
//! after the value's first `?`, `&`s included, belongs to the value, up to an `&host=`. Values
//! that start with `/` are not percent-decoded, because cache keys keep the path and query
//! exactly as received (`url=/caf%C3%A9` is the key a client's `/caf%C3%A9` was stored under).
//! A value written wholly percent-encoded (`url=%2Fsearch%3Fq%3Da`) is decoded once. Other
//! parameters are ordinary form fields.

use std::borrow::Cow;

use crate::http::host_match::HostMatch;

/// The parameters whose value is a path and query (see the [module docs](self)).
const PATH_PARAMETERS: [&str; 2] = ["url", "prefix"];

/// The parameter that ends a path parameter's query: the one parameter documented to follow it.
const AFTER_PATH: &str = "host=";

/// The parameters of `query` in order, names and values decoded as the [module docs](self) say.
pub(super) fn parameters(query: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut parameters = Vec::new();
    let mut rest = query;
    while !rest.is_empty() {
        let (field, after) = next_field(rest);
        rest = after;
        if field.is_empty() {
            continue;
        }
        let (name, value) = field.split_once('=').unwrap_or((field, ""));
        let name = decode(name);
        let value = if PATH_PARAMETERS.contains(&&*name) && value.starts_with('/') {
            Cow::Borrowed(value)
        } else {
            decode(value)
        };
        parameters.push((name, value));
    }
    parameters
}

/// The first field of `query` and what follows its `&`. A path parameter's field with a `?` in
/// its value runs on past `&`s, to the next `&host=` or the end.
fn next_field(query: &str) -> (&str, &str) {
    let end = query.find('&').unwrap_or(query.len());
    let (name, value) = query[..end].split_once('=').unwrap_or((&query[..end], ""));
    let is_path_with_query = PATH_PARAMETERS.contains(&name) && value.starts_with('/');
    let end = match query.find('?') {
        Some(question) if is_path_with_query && question < end => query[question..]
            .find(&format!("&{AFTER_PATH}"))
            .map_or(query.len(), |at| question + at),
        _ => end,
    };
    (&query[..end], query.get(end + 1..).unwrap_or(""))
}

/// The hosts a `host=` value matches (see [`HostMatch::parse`]), or what is wrong with it.
pub(super) fn host(value: &str) -> Result<HostMatch, String> {
    HostMatch::parse(value).map_err(|_| {
        format!("host={value:?} is not a host name or address with an optional port\n")
    })
}

/// A form field's name or value, percent-decoded (`+` is a space).
fn decode(text: &str) -> Cow<'_, str> {
    form_urlencoded::parse(text.as_bytes())
        .next()
        .map_or(Cow::Borrowed(""), |(decoded, _)| decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> Vec<(String, String)> {
        parameters(query)
            .into_iter()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn a_path_and_query_is_taken_as_a_client_writes_it() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("url=/a?b=1&c=2", &[("url", "/a?b=1&c=2")]),
            (
                "url=/a?b=1&c=2&host=x",
                &[("url", "/a?b=1&c=2"), ("host", "x")],
            ),
            (
                "host=x&url=/a?b=1&c=2",
                &[("host", "x"), ("url", "/a?b=1&c=2")],
            ),
            ("url=/a?prefix=/b&url=c", &[("url", "/a?prefix=/b&url=c")]),
            ("url=/a?q=x+y%20z", &[("url", "/a?q=x+y%20z")]),
            ("url=/caf%C3%A9", &[("url", "/caf%C3%A9")]),
            (
                "prefix=/search?q=&host=x",
                &[("prefix", "/search?q="), ("host", "x")],
            ),
            ("url=/a?", &[("url", "/a?")]),
        ];
        for (query, expected) in cases {
            assert_eq!(parsed(query), pairs(expected), "{query}");
        }
    }

    #[test]
    fn without_a_query_in_the_value_ampersands_separate_parameters() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("url=/a&prefix=/b", &[("url", "/a"), ("prefix", "/b")]),
            ("url=/a&host=x", &[("url", "/a"), ("host", "x")]),
            ("limit=5&prefix=/p/", &[("limit", "5"), ("prefix", "/p/")]),
            ("host=a%20b&&x", &[("host", "a b"), ("x", "")]),
            ("nope=1?2&url=/a", &[("nope", "1?2"), ("url", "/a")]),
            (
                "url=/a&prefix=/b?c&d",
                &[("url", "/a"), ("prefix", "/b?c&d")],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(parsed(query), pairs(expected), "{query}");
        }
    }

    #[test]
    fn a_wholly_encoded_value_is_decoded_once() {
        assert_eq!(
            parsed("url=%2Fa%3Fb%3D1%26c%3D2&host=x"),
            pairs(&[("url", "/a?b=1&c=2"), ("host", "x")])
        );
        assert_eq!(
            parsed("url=%2Fcaf%25C3%25A9"),
            pairs(&[("url", "/caf%C3%A9")])
        );
    }
}
