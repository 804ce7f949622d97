//! `GET /debug/cache`: a bounded page of the stored URLs, each with its age, TTL, size and
//! number of variants, for an operator to see what is cached (and what a purge with the same
//! `prefix=` and `host=` would remove).

use std::time::SystemTime;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::purge::path_value;
use super::query;
use super::{json as json_response, text_owned};
use crate::body::Body;
use crate::http::host_match::HostMatch;
use crate::http::key::CacheKey;
use crate::http::stored::object::CachedObject;
use crate::proxy::HttpCache;
use crate::store::{Store, WeighedKey};

/// Entries listed when the call gives no `limit=`.
pub(super) const DEFAULT_LIMIT: usize = 100;

/// The most entries one call lists: the page is built in memory and sent in one piece.
pub(super) const MAX_LIMIT: usize = 1000;

/// Which stored URLs a listing asks for.
#[derive(Debug, PartialEq, Eq)]
struct ListingQuery {
    /// Only paths starting with this (`/` when not given: all).
    prefix: String,
    /// Only these hosts.
    host: HostMatch,
    /// At most this many.
    limit: usize,
}

// === impl ListingQuery ===

impl ListingQuery {
    /// The listing `query` asks for (read as [`query`] says), or what is wrong with it.
    fn parse(query: &str) -> Result<Self, String> {
        let mut listing = Self {
            prefix: "/".into(),
            host: HostMatch::Any,
            limit: DEFAULT_LIMIT,
        };
        for (name, value) in query::parameters(query) {
            match &*name {
                "prefix" => listing.prefix = path_value("prefix", &value)?,
                "host" => listing.host = query::host(&value)?,
                "limit" => listing.limit = limit(&value)?,
                _ => {
                    return Err(format!(
                        "unknown parameter {name:?}: give prefix=PATH, host=HOST and limit=N\n"
                    ));
                }
            }
        }
        Ok(listing)
    }
}

/// `GET /debug/cache?…`: the stored URLs the query asks for, as JSON.
pub(super) async fn handle(cache: &HttpCache, query: &str) -> Response<Body> {
    let asked = match ListingQuery::parse(query) {
        Ok(asked) => asked,
        Err(message) => return text_owned(StatusCode::BAD_REQUEST, message),
    };
    let ListingQuery {
        prefix,
        host,
        limit,
    } = asked;
    let mut listing = cache
        .store()
        .list_matching(
            move |key: &CacheKey| {
                key.path_and_query().starts_with(&prefix) && host.matches(key.host())
            },
            limit,
        )
        .await;
    listing
        .entries
        .sort_unstable_by(|(a, _), (b, _)| a.as_str().cmp(b.as_str()));
    let now = SystemTime::now();
    let entries: Vec<Value> = listing
        .entries
        .iter()
        .map(|(key, object)| describe(key, object, now))
        .collect();
    let page = json!({
        "entries": entries,
        "listed": listing.entries.len(),
        "limit": limit,
        "truncated": listing.truncated,
    });
    json_response(StatusCode::OK, format!("{page}\n"))
}

/// One stored URL: its key, the age and TTL of its newest response (RFC 9211's `ttl`: negative
/// once stale), the bytes it costs the cache and how many responses (`Vary` variants) it holds.
fn describe(key: &CacheKey, object: &CachedObject, now: SystemTime) -> Value {
    let newest = object.variants().next().map(|variant| &variant.policy);
    json!({
        "host": key.host(),
        "path": key.path_and_query(),
        "age_seconds": newest.map_or(0, |policy| policy.age_header_seconds(now)),
        "ttl_seconds": newest.map_or(0, |policy| policy.ttl_seconds(now)),
        // As the store weighs the entry: a long key's text counts too.
        "size_bytes": object.weight_bytes() + key.weight_bytes() as usize,
        "variants": object.variants().count(),
    })
}

/// A `limit=` value: a whole number from 1 to [`MAX_LIMIT`].
fn limit(value: &str) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
        .ok_or_else(|| format!("limit={value:?} is not a whole number from 1 to {MAX_LIMIT}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_queries_are_parsed_and_bad_ones_rejected() {
        assert_eq!(
            ListingQuery::parse(""),
            Ok(ListingQuery {
                prefix: "/".into(),
                host: HostMatch::Any,
                limit: DEFAULT_LIMIT,
            })
        );
        assert_eq!(
            ListingQuery::parse("prefix=/search?q=a&b&host=x.example&limit=1000"),
            Ok(ListingQuery {
                prefix: "/search?q=a&b".into(),
                host: HostMatch::AnyPort("x.example".into()),
                limit: MAX_LIMIT,
            })
        );
        for (bad, says) in [
            (
                "limit=0",
                "limit=\"0\" is not a whole number from 1 to 1000",
            ),
            ("limit=1001", "limit=\"1001\""),
            ("limit=-1", "limit=\"-1\""),
            ("limit=ten", "limit=\"ten\""),
            ("prefix=p", "starting with /"),
            ("host=a/b", "host=\"a/b\""),
            ("url=/a", "unknown parameter \"url\""),
        ] {
            let error = ListingQuery::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
