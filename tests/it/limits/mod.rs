//! Limits and timeouts end to end: what a client sees when it breaks one (or the origin does), and
//! that the counters say what happened. Raw TCP clients show the bytes and the closed connection
//! exactly; every wait is bounded.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::fault_origin::{Answer, Behaviour, FaultOrigin};
use support::{Failed, Gate, Reply, Sidecache, TestClient, TestOrigin, wait_for_value, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

mod connections_and_bodies;
mod origin_and_store;
mod request_ends;
mod slow_clients;

/// The longest any single step of these tests may take before it counts as hanging.
const BOUND: Duration = Duration::from_secs(10);

// === raw client ===

/// How a connection ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The server closed it (FIN).
    Closed,
    /// The server reset it.
    Reset,
}

async fn connect(sidecache: &Sidecache) -> TcpStream {
    TcpStream::connect(sidecache.proxy_addr)
        .await
        .expect("connect")
}

/// A new connection to `sidecache` with a GET for `path` sent on it.
async fn send_get(sidecache: &Sidecache, path: &str) -> TcpStream {
    let mut stream = connect(sidecache).await;
    stream
        .write_all(get_head(path, "").as_bytes())
        .await
        .expect("write");
    stream
}

/// Reads until the server ends the connection (at most [`BOUND`]): everything it sent, and how.
async fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, End) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(BOUND, stream.read(&mut buffer))
            .await
            .expect("the server ended the connection in time");
        match read {
            Ok(0) => return (received, End::Closed),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (received, End::Reset),
        }
    }
}

/// Reads one response head; returns it (as text, lower case) and the bytes read after it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = tokio::time::timeout(BOUND, stream.read(&mut buffer))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed before a response head: {received:?}");
        received.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    (head, received.split_off(head_end))
}

/// Reads one response with a `Content-Length` body; returns the head (as text) and the body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let (head, mut body) = read_head(stream).await;
    let mut buffer = [0u8; 4096];
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().expect("a length"));
    while body.len() < length {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buffer))
            .await
            .expect("the body in time")
            .expect("read");
        assert!(n > 0, "closed mid-body");
        body.extend_from_slice(&buffer[..n]);
    }
    (head, body)
}

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {text:?}"))
}

/// A GET for `path` with `extra` header lines (each ending in CRLF).
fn get_head(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: limits.test\r\n{extra}\r\n")
}

/// The series counting client connections sidecache closed for `reason`.
fn closed(reason: &str) -> String {
    format!("sidecache_client_connections_closed_total{{reason=\"{reason}\"}}")
}

fn cached_origin_reply() -> Reply {
    Reply::ok("ok").header("cache-control", "max-age=60")
}

// === request heads ===

#[tokio::test]
async fn a_request_head_over_the_size_limit_gets_431_and_the_connection_closes() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-header-size", "8KiB"]).await;

    // Just under the limit: served.
    let mut stream = connect(&sidecache).await;
    let fits = format!("X-Fill: {}\r\n", "a".repeat(7 * 1024));
    stream
        .write_all(get_head("/fits", &fits).as_bytes())
        .await
        .expect("write");
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"ok");

    // Over it: 431 from the server (hyper answers it, with an empty body), then the close.
    let mut stream = connect(&sidecache).await;
    let over = format!("X-Fill: {}\r\n", "a".repeat(9 * 1024));
    stream
        .write_all(get_head("/over", &over).as_bytes())
        .await
        .expect("write");
    let (received, end) = read_to_end(&mut stream).await;
    assert_eq!(status_of(&received), 431);
    let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(text.contains("content-length: 0"), "{text}");
    assert_eq!(end, End::Closed, "{text}");
    assert_eq!(origin.count("/over"), 0, "never reaches the origin");
    sidecache.stop().await;
}

#[tokio::test]
async fn more_header_fields_than_the_limit_get_431() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-headers", "20"]).await;
    let fields = |n: usize| (0..n).map(|i| format!("X-F{i}: v\r\n")).collect::<String>();

    // Host plus 19 fields: 20, served.
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(get_head("/fits", &fields(19)).as_bytes())
        .await
        .expect("write");
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    let mut stream = connect(&sidecache).await;
    stream
        .write_all(get_head("/over", &fields(20)).as_bytes())
        .await
        .expect("write");
    let (received, end) = read_to_end(&mut stream).await;
    assert_eq!(status_of(&received), 431);
    assert_eq!(end, End::Closed);
    assert_eq!(origin.count("/over"), 0);
    sidecache.stop().await;
}

/// Over HTTP/2 the field count is checked by sidecache itself (a short text body), and the size by
/// the HTTP/2 layer, which answers 431 and resets the stream.
#[tokio::test]
async fn http2_requests_are_held_to_the_same_head_limits() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--max-headers", "20", "--max-header-size", "8KiB"],
    )
    .await;
    let stream = connect(&sidecache).await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut send = |path: &str, fields: usize, fill: usize| {
        let mut request = Request::get(format!("http://limits.test{path}"));
        for i in 0..fields {
            request = request.header(format!("x-f{i}"), "v");
        }
        if fill > 0 {
            request = request.header("x-fill", "a".repeat(fill));
        }
        let request = request.body(Empty::<Bytes>::new()).expect("request");
        let sent = sender.send_request(request);
        async move {
            let response = tokio::time::timeout(BOUND, sent)
                .await
                .expect("an answer in time")
                .expect("a response");
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            (status, body.unwrap_or_default())
        }
    };

    let (status, body) = send("/fits", 19, 0).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]));
    let (status, body) = send("/many", 21, 0).await;
    assert_eq!(status, 431);
    assert_eq!(&body[..], b"too many header fields\n");
    let (status, _) = send("/large", 0, 9 * 1024).await;
    assert_eq!(status, 431);
    assert_eq!(origin.count("/many") + origin.count("/large"), 0);
    sidecache.stop().await;
}

// === an HTTP/2 client ===

/// An HTTP/2 connection to `sidecache`, served in the background.
async fn h2_connection(
    sidecache: &Sidecache,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let (sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(sidecache).await),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    sender
}

/// Sends `request` on `sender` in the background: its status, `Cache-Status` and body.
fn spawn_h2(
    sender: &hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> tokio::task::JoinHandle<(u16, String, Bytes)> {
    let mut sender = sender.clone();
    tokio::spawn(async move {
        let response = tokio::time::timeout(BOUND, sender.send_request(request))
            .await
            .expect("an answer in time")
            .expect("a response");
        let status = response.status().as_u16();
        let cache_status = response
            .headers()
            .get("cache-status")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, cache_status, body)
    })
}
