//! The write-behind counter endpoints of the admin port.
//!
//! | endpoint | method | what |
//! |---|---|---|
//! | `/v1/counters/{name}?delta=N` | POST | adds N (default 1, may be negative) in memory; 200 once recorded |
//! | `/v1/counters/{name}` | GET | `{"name", "value", "stored", "pending"}`: value = stored + pending |
//! | `/v1/counters` | GET | what is pending, as JSON (like Go's expvar) |
//!
//! `{name}` is percent-decoded UTF-8, 1 to [`MAX_NAME_BYTES`](crate::writebehind::MAX_NAME_BYTES) bytes without control characters
//! (see [`crate::writebehind::name`]); any other name is answered 400, reads included. A `delta`
//! that is not a 64-bit integer is answered 400, as is one that would take the name's pending sum
//! (what is added up between two flushes) past ±2^62. An
//! increment that cannot be recorded — too many names pending, or shutdown under way — is
//! answered 503 with `Retry-After`, so a 2xx always means "recorded".

use http::header::{self, HeaderValue};
use http::{Method, StatusCode};
use serde_json::json;

use super::{json, text};
use crate::body::Body;
use crate::writebehind::{IncrementSource, Refused, WriteBehind, name};

/// The endpoints' path prefix; a name follows it.
const PREFIX: &str = "/v1/counters";

/// Whether `path` belongs to these endpoints.
pub(super) fn is_counters_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/v1/counters/")
}

/// Answers a request for these endpoints (the caller has checked the admin token).
pub(super) async fn handle(
    writebehind: Option<&WriteBehind>,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> http::Response<Body> {
    let Some(writebehind) = writebehind else {
        return text(
            StatusCode::NOT_FOUND,
            "write-behind counters are not enabled\n",
        );
    };
    let name = match path.strip_prefix(PREFIX) {
        Some("" | "/") => None,
        Some(rest) => match decode_name(&rest[1..]) {
            Ok(name) => Some(name),
            Err(message) => return text(StatusCode::BAD_REQUEST, message),
        },
        None => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    match (method, name) {
        (&Method::GET | &Method::HEAD, None) => {
            json(StatusCode::OK, format!("{}\n", writebehind.pending_view()))
        }
        (&Method::GET | &Method::HEAD, Some(name)) => match name::check(&name) {
            Ok(()) => read(writebehind, &name).await,
            Err(invalid) => invalid_name(invalid),
        },
        (&Method::POST, Some(name)) => match parse_delta(query.unwrap_or("")) {
            Ok(delta) => increment(writebehind, &name, delta),
            Err(message) => text(StatusCode::BAD_REQUEST, message),
        },
        (&Method::POST, None) => text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST to /v1/counters/{name}\n",
        ),
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

fn increment(writebehind: &WriteBehind, name: &str, delta: i64) -> http::Response<Body> {
    match writebehind.increment(IncrementSource::Admin, name, delta) {
        Ok(pending) => json(
            StatusCode::OK,
            format!("{}\n", json!({"name": name, "pending": pending})),
        ),
        Err(Refused::Overflow) => text(
            StatusCode::BAD_REQUEST,
            "delta would take the counter's pending sum past ±2^62\n",
        ),
        Err(Refused::InvalidName) => match name::check(name) {
            Err(invalid) => invalid_name(invalid),
            Ok(()) => text(StatusCode::BAD_REQUEST, "invalid counter name\n"),
        },
        Err(refused @ (Refused::Full | Refused::Closed)) => {
            let mut response = json(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}\n", json!({"error": refused.to_string()})),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

async fn read(writebehind: &WriteBehind, name: &str) -> http::Response<Body> {
    match writebehind.value(name).await {
        Ok(value) => json(
            StatusCode::OK,
            format!(
                "{}\n",
                json!({
                    "name": name,
                    "value": value.stored.saturating_add(value.pending),
                    "stored": value.stored,
                    "pending": value.pending,
                })
            ),
        ),
        Err(error) => {
            tracing::warn!(%error, sink = writebehind.sink_name(), "counter read failed");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{}\n",
                    json!({
                        "name": name,
                        "error": "the sink cannot be read",
                        "pending": writebehind.pending(name),
                    })
                ),
            )
        }
    }
}

/// `delta=N` (default 1), nothing else.
fn parse_delta(query: &str) -> Result<i64, &'static str> {
    let mut delta = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "delta" if delta.is_none() => {
                delta = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| "delta must be an integer between -2^63 and 2^63-1\n")?,
                );
            }
            "delta" => return Err("give delta once\n"),
            _ => return Err("unknown parameter: only delta= is accepted\n"),
        }
    }
    Ok(delta.unwrap_or(1))
}

/// 400, saying which rule the name breaks.
fn invalid_name(invalid: name::NameError) -> http::Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        format!("{}\n", json!({"error": invalid.to_string()})),
    )
}

/// The percent-decoded name (whether it can be a counter's is checked by
/// [`crate::writebehind::name`]).
fn decode_name(raw: &str) -> Result<String, &'static str> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or("bad percent-encoding in the counter name\n")?;
            decoded.push(hex);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| "the counter name must be UTF-8\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writebehind::MAX_NAME_BYTES;

    #[test]
    fn deltas_default_to_one_and_must_be_one_integer() {
        assert_eq!(parse_delta(""), Ok(1));
        assert_eq!(parse_delta("delta=-5"), Ok(-5));
        assert_eq!(parse_delta("delta=%2B7"), Ok(7));
        assert_eq!(parse_delta("delta=9223372036854775807"), Ok(i64::MAX));
        for bad in [
            "delta=1.5",
            "delta=",
            "delta=abc",
            "delta=9223372036854775808",
            "delta=-9223372036854775809",
            "delta=1&delta=2",
            "other=1",
        ] {
            assert!(parse_delta(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_percent_decoded_utf8() {
        assert_eq!(decode_name("views").as_deref(), Ok("views"));
        assert_eq!(
            decode_name("page%20views%2Fhome").as_deref(),
            Ok("page views/home")
        );
        assert_eq!(decode_name("a/b").as_deref(), Ok("a/b"));
        // Decoded as given; the name rules are checked afterwards.
        assert_eq!(decode_name("a%00b").as_deref(), Ok("a\0b"));
        for bad in ["%", "%zz", "%ff"] {
            assert!(decode_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            decode_name(&"x".repeat(MAX_NAME_BYTES + 1)).map(|n| n.len()),
            Ok(1025)
        );
    }
}
