//! The access log (`--access-log text|json`): one line per request on stdout, with the fields of
//! nginx's `combined` format plus the host, `Cache-Status`, the request and upstream times, how
//! the request ended and its trace id.
//!
//! A line is written when the request is over: for an answered request when its response body
//! has been sent (or broke off), so that it carries the bytes actually sent and the whole
//! duration; for a request dropped before its answer, then. Off (the default), a request keeps
//! nothing for it and pays one branch.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode, Uri, Version};
use opentelemetry::trace::TraceId;

use crate::server::RequestEnd;

/// Whether and how access lines are written (`--access-log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccessLogFormat {
    /// No access lines.
    #[default]
    Off,
    /// nginx's `combined` line, followed by `key=value` fields.
    Text,
    /// One JSON object per line.
    Json,
}

/// What an access line needs from the request head, kept from its arrival.
#[derive(Debug)]
pub(crate) struct AccessRequest {
    client: SocketAddr,
    method: Method,
    uri: Uri,
    version: Version,
    host: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

/// An access line, all but how the request ended and the bytes sent.
#[derive(Debug)]
pub(crate) struct AccessLine {
    /// Text or JSON (never off: then there is no line).
    pub format: AccessLogFormat,
    /// The request.
    pub request: AccessRequest,
    /// When the request head arrived.
    pub started: Instant,
    /// The status answered; `None` for a request dropped before its answer.
    pub status: Option<StatusCode>,
    /// The `Cache-Status` answered.
    pub cache_status: Option<HeaderValue>,
    /// How long the answer waited on the origin (or on the load it shared); `None` for an
    /// answer from the store or of sidecache's own.
    pub upstream: Option<Duration>,
    /// The request's trace, when tracing is on.
    pub trace_id: Option<TraceId>,
}

/// How a request ended, for its line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending {
    /// How it ended.
    pub end: RequestEnd,
    /// Body bytes handed to the connection.
    pub bytes_sent: u64,
    /// When it ended.
    pub at: SystemTime,
    /// How long it took, from its head's arrival.
    pub elapsed: Duration,
}

// === impl AccessRequest ===

impl AccessRequest {
    /// What the line of the request `parts` from `client` needs.
    pub(crate) fn of(parts: &Parts, client: SocketAddr) -> Self {
        let field = |name| parts.headers.get(name).cloned();
        Self {
            client,
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            host: parts
                .uri
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
                .or_else(|| field(header::HOST)),
            referer: field(header::REFERER),
            user_agent: field(header::USER_AGENT),
        }
    }

    /// The request target as the client sent it in origin form: path and query.
    fn target(&self) -> &str {
        self.uri
            .path_and_query()
            .map_or("/", |target| target.as_str())
    }
}

// === impl AccessLine ===

impl AccessLine {
    /// Writes the line of the request that ended as `end` after `bytes_sent` body bytes, now.
    pub(crate) fn write(&self, end: RequestEnd, bytes_sent: u64) {
        let ending = Ending {
            end,
            bytes_sent,
            at: SystemTime::now(),
            elapsed: self.started.elapsed(),
        };
        let mut line = match self.format {
            AccessLogFormat::Off => return,
            AccessLogFormat::Text => self.text(&ending),
            AccessLogFormat::Json => self.json(&ending),
        };
        line.push('\n');
        // One write of the whole line under stdout's lock: lines of concurrent requests never
        // interleave. A failed write (stdout closed) has nowhere to be reported.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }

    /// The text line: nginx's `combined` (`$remote_addr - $remote_user [$time] "$request"
    /// $status $body_bytes_sent "$http_referer" "$http_user_agent"`, the time in ISO 8601 UTC),
    /// then `host`, `cache_status`, `request_time`, `upstream_time`, `ended`, `trace_id`. A
    /// missing value is `-`; quoted values escape `"`, `\` and bytes outside printable ASCII as
    /// `\xHH`, as nginx does.
    pub(crate) fn text(&self, ending: &Ending) -> String {
        let request = &self.request;
        let mut line = String::with_capacity(256);
        let _ = write!(
            line,
            "{} - - [{}] \"{} ",
            request.client.ip(),
            humantime::format_rfc3339_millis(ending.at),
            request.method
        );
        escape_into(&mut line, request.target().as_bytes());
        let _ = write!(line, " {:?}\" ", request.version);
        match self.status {
            Some(status) => {
                let _ = write!(line, "{}", status.as_u16());
            }
            None => line.push('-'),
        }
        let _ = write!(line, " {} ", ending.bytes_sent);
        quoted_into(&mut line, request.referer.as_ref());
        line.push(' ');
        quoted_into(&mut line, request.user_agent.as_ref());
        line.push_str(" host=");
        quoted_into(&mut line, request.host.as_ref());
        line.push_str(" cache_status=");
        quoted_into(&mut line, self.cache_status.as_ref());
        let _ = write!(
            line,
            " request_time={:.3} upstream_time=",
            ending.elapsed.as_secs_f64()
        );
        match self.upstream {
            Some(upstream) => {
                let _ = write!(line, "{:.3}", upstream.as_secs_f64());
            }
            None => line.push('-'),
        }
        let _ = write!(line, " ended={} trace_id=", ending.end.as_str());
        match self.trace_id {
            Some(trace_id) => {
                let _ = write!(line, "{trace_id}");
            }
            None => line.push('-'),
        }
        line
    }

    /// The JSON object, with the same fields as the text line under nginx's variable names
    /// (`null` where the text line says `-`; times in seconds).
    pub(crate) fn json(&self, ending: &Ending) -> String {
        let request = &self.request;
        let text = |value: Option<&HeaderValue>| {
            value.map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        };
        serde_json::json!({
            "time": humantime::format_rfc3339_millis(ending.at).to_string(),
            "remote_addr": request.client.ip().to_string(),
            "request_method": request.method.as_str(),
            "request_uri": request.target(),
            "server_protocol": format!("{:?}", request.version),
            "status": self.status.map(|status| status.as_u16()),
            "body_bytes_sent": ending.bytes_sent,
            "http_referer": text(request.referer.as_ref()),
            "http_user_agent": text(request.user_agent.as_ref()),
            "host": text(request.host.as_ref()),
            "cache_status": text(self.cache_status.as_ref()),
            "request_time": ending.elapsed.as_secs_f64(),
            "upstream_time": self.upstream.map(|upstream| upstream.as_secs_f64()),
            "ended": ending.end.as_str(),
            "trace_id": self.trace_id.map(|trace_id| trace_id.to_string()),
        })
        .to_string()
    }
}

/// `value` in double quotes, escaped; `"-"` when there is none.
fn quoted_into(line: &mut String, value: Option<&HeaderValue>) {
    line.push('"');
    match value {
        Some(value) => escape_into(line, value.as_bytes()),
        None => line.push('-'),
    }
    line.push('"');
}

/// Appends `bytes`, with `"`, `\` and anything outside printable ASCII written as `\xHH`, so a
/// client cannot end a field or a line early.
fn escape_into(line: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' || byte == b' ' {
            line.push(char::from(byte));
        } else {
            let _ = write!(line, "\\x{byte:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn line(status: Option<StatusCode>) -> AccessLine {
        let (parts, ()) = http::Request::builder()
            .method(Method::GET)
            .uri("/items?page=2&q=a%20b")
            .header(header::HOST, "shop.example")
            .header(header::USER_AGENT, "curl/8.5 \"quoted\"\té")
            .body(())
            .expect("request")
            .into_parts();
        AccessLine {
            format: AccessLogFormat::Text,
            request: AccessRequest::of(&parts, "192.0.2.7:51000".parse().expect("addr")),
            started: Instant::now(),
            status,
            cache_status: Some(HeaderValue::from_static("sidecache; fwd=uri-miss; stored")),
            upstream: Some(Duration::from_millis(1250)),
            trace_id: Some(TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex")),
        }
    }

    fn ending(end: RequestEnd, bytes_sent: u64) -> Ending {
        Ending {
            end,
            bytes_sent,
            at: UNIX_EPOCH + Duration::from_millis(1_796_681_525_042),
            elapsed: Duration::from_millis(1500),
        }
    }

    #[test]
    fn a_text_line_is_nginx_combined_then_the_cache_fields() {
        let text = line(Some(StatusCode::OK)).text(&ending(RequestEnd::Completed, 5120));
        assert_eq!(
            text,
            "192.0.2.7 - - [2026-12-07T22:12:05.042Z] \"GET /items?page=2&q=a%20b HTTP/1.1\" 200 5120 \
             \"-\" \"curl/8.5 \\x22quoted\\x22\\x09\\xC3\\xA9\" host=\"shop.example\" \
             cache_status=\"sidecache; fwd=uri-miss; stored\" request_time=1.500 \
             upstream_time=1.250 ended=completed trace_id=4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn an_unanswered_request_has_no_status_and_a_store_answer_no_upstream_time() {
        let mut unanswered = line(None);
        unanswered.upstream = None;
        unanswered.trace_id = None;
        let text = unanswered.text(&ending(RequestEnd::ClientClosed, 0));
        assert!(
            text.contains("HTTP/1.1\" - 0 \"-\""),
            "status and bytes: {text}"
        );
        assert!(
            text.ends_with("upstream_time=- ended=client_closed trace_id=-"),
            "{text}"
        );
    }

    #[test]
    fn a_json_line_has_every_field_under_nginx_names() {
        let json = line(Some(StatusCode::OK)).json(&ending(RequestEnd::BodyAborted, 4096));
        let object: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(
            object,
            serde_json::json!({
                "time": "2026-12-07T22:12:05.042Z",
                "remote_addr": "192.0.2.7",
                "request_method": "GET",
                "request_uri": "/items?page=2&q=a%20b",
                "server_protocol": "HTTP/1.1",
                "status": 200,
                "body_bytes_sent": 4096,
                "http_referer": null,
                "http_user_agent": "curl/8.5 \"quoted\"\té",
                "host": "shop.example",
                "cache_status": "sidecache; fwd=uri-miss; stored",
                "request_time": 1.5,
                "upstream_time": 1.25,
                "ended": "body_aborted",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            })
        );
        assert!(!json.contains('\n'), "one line: {json}");
    }
}
