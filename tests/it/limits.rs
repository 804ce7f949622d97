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
use support::{Failed, Gate, Reply, Sidecache, TestClient, TestOrigin, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

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

/// Reads one response with a `Content-Length` body; returns the head (as text) and the body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
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
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().expect("a length"));
    let mut body = received[head_end..].to_vec();
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

/// Scrapes until `series` has `value` (state gauges, and counters of connections, follow
/// connection tasks that end on their own), at most [`BOUND`].
async fn wait_for_value(sidecache: &Sidecache, series: &str, value: f64) {
    let deadline = Instant::now() + BOUND;
    loop {
        let now = sidecache.metrics().await.value(series);
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {now}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

// === slow and idle clients ===

#[tokio::test]
async fn a_client_that_drips_its_head_is_cut_off_after_the_header_timeout() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-header-timeout",
            "300ms",
            "--client-idle-timeout",
            "30s",
        ],
    )
    .await;
    let mut stream = connect(&sidecache).await;
    let started = Instant::now();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: limits.test\r\n")
        .await
        .expect("write");
    // A slowloris: one more field every 50 ms, never the blank line. The drip stops when the
    // server closes (a write fails) or the bound passes.
    let (mut reader, mut writer) = stream.split();
    let drip = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writer
                .write_all(format!("X-Drip-{i}: x\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let mut received = Vec::new();
    let read = async {
        let _ = reader.read_to_end(&mut received).await;
    };
    tokio::select! {
        () = read => {}
        () = drip => {}
        () = tokio::time::sleep(BOUND) => panic!("the dripping client was not cut off"),
    }
    let elapsed = started.elapsed();
    assert!(received.is_empty(), "no answer: {received:?}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "cut off after {elapsed:?}"
    );
    assert_eq!(origin.count("/slow"), 0);
    wait_for_value(&sidecache, &closed("header_timeout"), 1.0).await;
    assert_eq!(
        sidecache.metrics().await.value(&closed("idle_timeout")),
        0.0
    );
    sidecache.stop().await;
}

/// The HTTP/2 connection preface a prior-knowledge client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// "P" could begin "POST" or the HTTP/2 preface: a first segment of just that leaves the protocol
/// undecided, and the header clock runs from it all the same.
#[tokio::test]
async fn a_first_byte_that_leaves_the_protocol_undecided_starts_the_header_clock() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-header-timeout",
            "300ms",
            "--client-idle-timeout",
            "30s",
        ],
    )
    .await;
    for first in [&b"P"[..], &H2_PREFACE[..10]] {
        let mut stream = connect(&sidecache).await;
        let started = Instant::now();
        stream.write_all(first).await.expect("write");
        let (received, _) = read_to_end(&mut stream).await;
        let elapsed = started.elapsed();
        assert!(received.is_empty(), "no answer: {received:?}");
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
            "cut off after {elapsed:?}"
        );
    }
    wait_for_value(&sidecache, &closed("header_timeout"), 2.0).await;
    sidecache.stop().await;
}

/// A client whose first segment leaves the protocol undecided is served in whichever protocol
/// the next bytes tell, with nothing of what it sent lost.
#[tokio::test]
async fn clients_whose_first_segment_leaves_the_protocol_undecided_are_served() {
    let origin = TestOrigin::start(|seen, _| Reply::ok(seen.body.clone())).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    // A pause after the first bytes, so they arrive alone (a timing condition, not
    // synchronisation: the requests must be served either way).
    let pause = || tokio::time::sleep(Duration::from_millis(50));

    let mut stream = connect(&sidecache).await;
    stream.write_all(b"P").await.expect("write");
    pause().await;
    stream
        .write_all(b"OST /echo HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .expect("write");
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"hello");

    let mut stream = connect(&sidecache).await;
    stream.write_all(&H2_PREFACE[..10]).await.expect("write");
    pause().await;
    // The client sends the whole preface itself; the part already sent is left out.
    let io = SkipFirst {
        inner: stream,
        skip: 10,
    };
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let request = Request::post("http://limits.test/echo")
        .body(Full::new(Bytes::from("over h2")))
        .expect("request");
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"over h2");
    assert_eq!(origin.count("/echo"), 2);
    sidecache.stop().await;
}

/// A stream whose first `skip` bytes written are dropped (they were sent already).
struct SkipFirst {
    inner: TcpStream,
    skip: usize,
}

impl tokio::io::AsyncRead for SkipFirst {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SkipFirst {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.skip > 0 {
            let skipped = self.skip.min(buf.len());
            self.skip -= skipped;
            return std::task::Poll::Ready(Ok(skipped));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(&origin.url(), &["--client-idle-timeout", "300ms"]).await;
    let started = Instant::now();
    let mut stream = connect(&sidecache).await;
    let (received, _) = read_to_end(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(received.is_empty());
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    wait_for_value(&sidecache, "sidecache_client_connections", 0.0).await;
    assert_eq!(
        sidecache.metrics().await.value(&closed("idle_timeout")),
        1.0
    );
    sidecache.stop().await;
}

/// The idle clock and the header clock are apart: a keep-alive connection may sit idle longer than
/// the header timeout, and is closed once the idle timeout passes.
#[tokio::test]
async fn a_keep_alive_connection_lives_until_the_idle_timeout_not_the_header_timeout() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-header-timeout",
            "200ms",
            "--client-idle-timeout",
            "1s",
        ],
    )
    .await;
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(get_head("/a", "").as_bytes())
        .await
        .expect("write");
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Idle for longer than the header timeout (a timing condition, not synchronisation).
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream
        .write_all(get_head("/b", "").as_bytes())
        .await
        .expect("write");
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "still open: {head}");
    let idle_from = Instant::now();
    let (received, _) = read_to_end(&mut stream).await;
    let idle = idle_from.elapsed();
    assert!(received.is_empty());
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle"
    );
    wait_for_value(&sidecache, &closed("idle_timeout"), 1.0).await;
    assert_eq!(
        sidecache.metrics().await.value(&closed("header_timeout")),
        0.0
    );
    sidecache.stop().await;
}

/// An HTTP/2 frame (RFC 9113 §4.1) on stream `stream`.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a short payload");
    let mut frame = length.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HTTP/2 request head is a header block: a HEADERS frame and CONTINUATION frames up to one
/// flagged END_HEADERS, with nothing between them, and h2 reads a frame only once all of it has
/// arrived. A client that drips a block's bytes holds the whole connection, and is cut off once
/// the block has taken longer than the header timeout, however steadily it drips.
#[tokio::test]
async fn an_http2_header_block_dripped_byte_by_byte_is_cut_off() {
    const HEADERS: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    const END_STREAM: u8 = 0x1;
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-header-timeout",
            "300ms",
            "--client-idle-timeout",
            "30s",
        ],
    )
    .await;
    let mut stream = connect(&sidecache).await;
    let mut opening = H2_PREFACE.to_vec();
    opening.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS, none changed
    // A HEADERS frame of 1000 bytes (`:method: GET`, HPACK static index 2, then `:path: /`,
    // index 4, over and over), of which only the frame header and the first byte come at once.
    let mut block = vec![0x84; 1000];
    block[0] = 0x82;
    let headers = h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
    let (first, rest) = headers.split_at(10);
    opening.extend_from_slice(first);
    let started = Instant::now();
    stream.write_all(&opening).await.expect("write");
    let (mut reader, mut writer) = stream.split();
    // One more byte of the block every 50 ms.
    let drip = async {
        for byte in rest.chunks(1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writer.write_all(byte).await.is_err() {
                break;
            }
        }
    };
    let read = async {
        let mut received = Vec::new();
        let _ = reader.read_to_end(&mut received).await;
    };
    tokio::select! {
        () = read => {}
        () = drip => {}
        () = tokio::time::sleep(BOUND) => panic!("the dripping client was not cut off"),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "cut off after {elapsed:?}"
    );
    assert_eq!(origin.seen().len(), 0);
    wait_for_value(&sidecache, &closed("header_timeout"), 1.0).await;
    sidecache.stop().await;
}

/// The most streams the server lets an HTTP/2 client have open at once, as its SETTINGS say (the
/// connection is driven until one request has been answered, by when they have arrived).
async fn advertised_max_streams(sidecache: &Sidecache) -> usize {
    let (client, mut connection) = h2::client::handshake(connect(sidecache).await)
        .await
        .expect("h2 handshake");
    let mut client = client.ready().await.expect("ready");
    let request = Request::get("http://limits.test/settings")
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    let response = tokio::select! {
        response = response => response.expect("a response"),
        ended = &mut connection => panic!("the connection ended first: {ended:?}"),
        () = tokio::time::sleep(BOUND) => panic!("no answer in time"),
    };
    assert_eq!(response.status(), 200);
    connection.max_concurrent_send_streams()
}

/// Browsers open up to about 100 streams on one connection; nginx allows 128 by default, and so
/// does sidecache (hyper's own default is 200, and may change).
#[tokio::test]
async fn http2_clients_are_told_the_most_streams_they_may_open() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    assert_eq!(advertised_max_streams(&sidecache).await, 128);
    sidecache.stop().await;
    let sidecache = Sidecache::start(&origin.url(), &["--http2-max-concurrent-streams", "7"]).await;
    assert_eq!(advertised_max_streams(&sidecache).await, 7);
    sidecache.stop().await;
}

/// HTTP/2 clients send frames while idle, so only the idle clock applies: a connection with no
/// stream open for the idle timeout is closed.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-header-timeout",
            "100ms",
            "--client-idle-timeout",
            "500ms",
        ],
    )
    .await;
    let stream = connect(&sidecache).await;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let request = Request::get("http://limits.test/h2")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"ok");
    let idle_from = Instant::now();
    let _ = tokio::time::timeout(BOUND, connection)
        .await
        .expect("the server closed the idle connection in time");
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle"
    );
    wait_for_value(&sidecache, &closed("idle_timeout"), 1.0).await;
    sidecache.stop().await;
}

// === clients that do not read ===

/// An answer far larger than every socket buffer between the origin and a client that reads
/// nothing, so that it stalls part-way.
const STALLING_BODY: usize = 48 << 20;

/// An origin that answers every request with `size` bytes that must not be stored, and closes
/// each connection after its answer (so an open connection is one still answering).
async fn large_uncacheable_origin(size: usize) -> FaultOrigin {
    let body = Bytes::from(vec![b's'; size]);
    FaultOrigin::start(move |_| {
        Behaviour::Respond(
            Answer::ok(body.clone())
                .header("cache-control", "no-store")
                .header("connection", "close"),
        )
    })
    .await
}

/// A connection whose receive buffer holds `bytes` (the kernel doubles it), so the server's
/// writes stall soon once it reads slower than they come.
async fn connect_with_window(sidecache: &Sidecache, bytes: u32) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(bytes).expect("receive buffer");
    socket.connect(sidecache.proxy_addr).await.expect("connect")
}

/// A client that stops reading a large streamed answer is cut off after --client-send-timeout:
/// the connection closes and the origin connection the answer held is released then, not when
/// the client finally goes.
#[tokio::test]
async fn an_http1_client_that_stops_reading_is_cut_off_after_the_send_timeout() {
    let origin = large_uncacheable_origin(STALLING_BODY).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-send-timeout",
            "300ms",
            "--client-idle-timeout",
            "30s",
        ],
    )
    .await;
    let mut stream = connect_with_window(&sidecache, 4096).await;
    stream
        .write_all(get_head("/large", "").as_bytes())
        .await
        .expect("write");
    origin.arrivals(1).await;
    // The client reads nothing: once the buffers are full sidecache waits on it, and after the
    // send timeout it lets go of both ends while the client is still connected.
    origin.open_at_most(0).await;
    let (received, _) = read_to_end(&mut stream).await;
    assert_eq!(status_of(&received), 200);
    assert!(received.len() < STALLING_BODY, "cut off part-way");

    wait_for_value(&sidecache, &closed("send_timeout"), 1.0).await;
    let scrape = sidecache.metrics().await;
    assert_eq!(scrape.value(&closed("idle_timeout")), 0.0);
    assert_eq!(scrape.value(&closed("header_timeout")), 0.0);
    sidecache.stop().await;
}

/// A client that reads a large answer slowly but steadily is still being answered: the idle
/// timeout does not cut it off while what sidecache has left to write waits on the client (the
/// request is over once the last bytes are queued, long before they are sent).
#[tokio::test]
async fn a_client_reading_a_large_answer_slowly_gets_all_of_it() {
    const SIZE: usize = 8 << 20;
    let body = Bytes::from(vec![b'r'; SIZE]);
    let reply = body.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok(reply.clone()).header("cache-control", "max-age=60")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--client-idle-timeout", "300ms"]).await;
    let mut stream = connect_with_window(&sidecache, 64 * 1024).await;
    stream
        .write_all(get_head("/large", "").as_bytes())
        .await
        .expect("write");
    // 128 KiB every 20 ms: about 1.3 s for the whole answer, far longer than the idle timeout,
    // with never more than 20 ms between two reads. (The send timeout is left long: the kernel
    // tells a writer there is room only once half of what it holds has gone, so writes stall
    // for a while even behind a steady reader.)
    let mut received = Vec::with_capacity(SIZE + 1024);
    let mut buffer = vec![0u8; 128 * 1024];
    let head_len = loop {
        let n = tokio::time::timeout(BOUND, stream.read(&mut buffer))
            .await
            .expect("read in time")
            .expect("read");
        assert!(n > 0, "closed after {} bytes", received.len());
        received.extend_from_slice(&buffer[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    while received.len() < head_len + SIZE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = tokio::time::timeout(BOUND, stream.read(&mut buffer))
            .await
            .expect("read in time")
            .expect("read");
        assert!(
            n > 0,
            "cut off after {} body bytes",
            received.len() - head_len
        );
        received.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(status_of(&received), 200);
    assert!(received[head_len..] == body[..], "whole");
    // (Once sidecache has handed the last bytes to the kernel, the connection is idle, and may
    // be closed while the kernel delivers them: the answer arrives whole all the same.)
    sidecache.stop().await;
}

/// The same over HTTP/2, where the client paces the answer with its flow-control window: a
/// stored answer is one buffer, which must not be handed to the HTTP/2 layer whole (ending the
/// request while most of it still waits on the window).
#[tokio::test]
async fn an_http2_client_reading_a_large_answer_slowly_gets_all_of_it() {
    const SIZE: usize = 8 << 20;
    let body = Bytes::from(vec![b'r'; SIZE]);
    let reply = body.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok(reply.clone()).header("cache-control", "max-age=60")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--client-idle-timeout", "300ms"]).await;
    let sender = h2_connection(&sidecache).await;
    let request = Request::get("http://limits.test/large")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = tokio::time::timeout(BOUND, sender.clone().send_request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(response.status(), 200);
    // The client takes 128 KiB every 20 ms (its window opens as it does): about 1.3 s for the
    // whole answer, far longer than the idle timeout.
    let mut body_stream = response.into_body();
    let mut received = Vec::with_capacity(SIZE);
    let mut since_pause = 0;
    while let Some(frame) = tokio::time::timeout(BOUND, body_stream.frame())
        .await
        .expect("a frame in time")
    {
        let frame =
            frame.unwrap_or_else(|error| panic!("cut off after {} bytes: {error}", received.len()));
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
            since_pause += data.len();
        }
        if since_pause >= 128 * 1024 {
            since_pause = 0;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        received == body[..],
        "whole: {} of {SIZE} bytes",
        received.len()
    );
    sidecache.stop().await;
}

/// Over HTTP/2 a client can take nothing of an answer and still read its connection: it keeps
/// the stream's flow-control window shut. Each such stream is reset after --client-send-timeout,
/// releasing the origin connection behind it, while the connection stays up.
#[tokio::test]
async fn an_http2_stream_whose_window_stays_shut_is_reset_after_the_send_timeout() {
    const STREAMS: usize = 3;
    // Larger than the buffers between the origin and sidecache, which stops reading it.
    let origin = large_uncacheable_origin(16 << 20).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-send-timeout",
            "300ms",
            "--client-idle-timeout",
            "30s",
        ],
    )
    .await;
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(TokioIo::new(connect(&sidecache).await))
        .await
        .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let mut responses = Vec::new();
    for i in 0..STREAMS {
        let request = Request::get(format!("http://limits.test/shut/{i}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = tokio::time::timeout(BOUND, sender.send_request(request))
            .await
            .expect("a response head in time")
            .expect("a response");
        assert_eq!(response.status(), 200);
        responses.push(response);
    }
    origin.arrivals(STREAMS).await;
    // No body byte can flow; after the send timeout each stream is given up and its origin
    // connection released, with the client still connected.
    origin.open_at_most(0).await;
    for response in responses {
        let body = tokio::time::timeout(BOUND, response.into_body().collect())
            .await
            .expect("the stream ended in time");
        assert!(body.is_err(), "reset, not completed");
    }
    assert!(!connection.is_finished(), "the connection stays up");

    let series = r#"sidecache_client_streams_reset_total{reason="send_timeout"}"#;
    wait_for_value(&sidecache, series, STREAMS as f64).await;
    assert_eq!(
        sidecache.metrics().await.value(&closed("send_timeout")),
        0.0
    );
    sidecache.stop().await;
}

// === connections ===

#[tokio::test]
async fn beyond_max_connections_new_clients_wait_until_one_closes() {
    let origin = TestOrigin::start(|_, _| cached_origin_reply()).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-connections", "2"]).await;
    let scrape = sidecache.metrics().await;
    assert_eq!(scrape.value("sidecache_client_connections_max"), 2.0);
    assert_eq!(scrape.value("sidecache_client_connections"), 0.0);

    let mut first = connect(&sidecache).await;
    let mut second = connect(&sidecache).await;
    for stream in [&mut first, &mut second] {
        stream
            .write_all(get_head("/x", "").as_bytes())
            .await
            .expect("write");
        let (head, _) = read_response(stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
    }
    wait_for_value(&sidecache, "sidecache_client_connections", 2.0).await;

    // The third is queued by the kernel, not served: its request gets no answer...
    let mut third = connect(&sidecache).await;
    third
        .write_all(get_head("/x", "").as_bytes())
        .await
        .expect("write");
    let mut byte = [0u8; 1];
    let waiting = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(waiting.is_err(), "answered beyond the limit: {waiting:?}");
    assert_eq!(
        sidecache
            .metrics()
            .await
            .value("sidecache_client_connections"),
        2.0
    );
    // ...until a slot frees up.
    drop(first);
    let (head, _) = read_response(&mut third).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    wait_for_value(&sidecache, "sidecache_client_connections", 2.0).await;
    drop((second, third));
    wait_for_value(&sidecache, "sidecache_client_connections", 0.0).await;
    sidecache.stop().await;
}

// === the origin's share of one connection ===

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

/// One HTTP/2 connection may have at most --max-origin-requests-per-connection requests at the
/// origin; the others wait their turn (a browser's cold page is many misses at once) and are
/// all answered. A streamed answer keeps its turn until its body is sent.
#[tokio::test]
async fn one_connection_has_at_most_its_share_of_requests_at_the_origin() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| Reply::ok("done").gated(&origin_gate)).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--max-origin-requests-per-connection", "2"],
    )
    .await;
    let sender = h2_connection(&sidecache).await;
    let posts: Vec<_> = (0..5)
        .map(|_| {
            let request = Request::post("http://limits.test/work")
                .body(Full::new(Bytes::from("x")))
                .expect("request");
            spawn_h2(&sender, request)
        })
        .collect();
    origin.arrivals(2).await;
    sidecache.in_flight(5).await;
    gate.open();
    for post in posts {
        let (status, _, body) = post.await.expect("request task");
        assert_eq!((status, &body[..]), (200, &b"done"[..]));
    }
    assert_eq!(origin.count("/work"), 5);
    assert_eq!(origin.max_concurrency("/work"), 2);
    sidecache.stop().await;
}

/// A request that waited for its connection's turn at the origin is answered from what was
/// loaded meanwhile (the cache's leader looks again before it loads): waiting costs no second
/// origin load.
#[tokio::test]
async fn a_request_that_waited_its_turn_is_answered_from_what_was_loaded_meanwhile() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| cached_origin_reply().gated(&origin_gate)).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--max-origin-requests-per-connection", "1"],
    )
    .await;
    let sender = h2_connection(&sidecache).await;
    let get = || {
        let request = Request::get("http://limits.test/page")
            .body(Full::new(Bytes::new()))
            .expect("request");
        spawn_h2(&sender, request)
    };
    let (first, second) = (get(), get());
    origin.arrivals(1).await;
    sidecache.in_flight(2).await;
    gate.open();
    let mut statuses = Vec::new();
    for answer in [first, second] {
        let (status, cache_status, body) = answer.await.expect("request task");
        assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        statuses.push(cache_status);
    }
    // Without the ttl, which may have ticked meanwhile.
    let mut statuses: Vec<_> = statuses
        .iter()
        .map(|status| status.split("; ttl=").next().unwrap_or_default())
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [
            "sidecache; fwd=uri-miss; fwd-status=200; stored",
            "sidecache; hit"
        ],
    );
    assert_eq!(origin.count("/page"), 1, "one load");
    sidecache.stop().await;
}

// === abandoned requests ===

const ABANDONED: &str = "sidecache_client_requests_abandoned_total";

/// A client that resets stream after stream before its answer is ready has sidecache start work
/// for nothing, over and over, at the cost of a few bytes each: past --max-abandoned-requests
/// (while it abandons more than it waits for) its connection is closed. Each abandoned request
/// is counted.
#[tokio::test]
async fn a_connection_that_keeps_abandoning_its_requests_is_closed() {
    const LIMIT: usize = 5;
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| cached_origin_reply().gated(&origin_gate)).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-abandoned-requests", "5"]).await;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(&sidecache).await),
    )
    .await
    .expect("h2 handshake");
    let mut connection = tokio::spawn(connection);
    for i in 0..LIMIT {
        assert!(
            !connection.is_finished(),
            "open before the {}th abandoned request",
            i + 1
        );
        let request = Request::get(format!("http://limits.test/abandoned/{i}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let waiting = spawn_h2(&sender, request);
        origin.arrivals(i + 1).await;
        // The client resets the stream while sidecache waits on the origin.
        waiting.abort();
        let proxy = Arc::clone(&sidecache.proxy);
        wait_until(move || proxy.in_flight_requests() == 0).await;
    }
    // However the client's side of it ends, it ends.
    let _ = tokio::time::timeout(BOUND, &mut connection)
        .await
        .expect("the connection was closed");
    wait_for_value(&sidecache, &closed("abandoned_requests"), 1.0).await;
    assert_eq!(sidecache.metrics().await.value(ABANDONED), LIMIT as f64);
    gate.open();
    sidecache.stop().await;
}

/// Over HTTP/1.1 a client abandons its request by closing the connection: counted the same.
#[tokio::test]
async fn an_http1_client_that_closes_while_its_answer_is_loaded_has_abandoned_it() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| cached_origin_reply().gated(&origin_gate)).await;
    let sidecache = Sidecache::start(&origin.url(), &[]).await;
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(get_head("/left", "").as_bytes())
        .await
        .expect("write");
    origin.arrivals(1).await;
    drop(stream);
    wait_for_value(&sidecache, ABANDONED, 1.0).await;
    // A request answered at once (a hit) is never abandoned, however soon the client goes.
    gate.open();
    let got = TestClient::new().get(&sidecache.url("/left")).await;
    assert_eq!(got.status, 200);
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(get_head("/left", "").as_bytes())
        .await
        .expect("write");
    let _ = read_response(&mut stream).await;
    drop(stream);
    let scrape = sidecache.metrics().await;
    assert_eq!(scrape.value(ABANDONED), 1.0);
    assert_eq!(scrape.value(&closed("abandoned_requests")), 0.0);
    sidecache.stop().await;
}

// === request bodies ===

#[tokio::test]
async fn a_declared_body_over_the_limit_gets_413_without_reaching_the_origin() {
    let origin = TestOrigin::start(|_, _| Reply::ok("stored")).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-request-body", "1KiB"]).await;

    // At the limit: passed through whole.
    let got = TestClient::new()
        .send(
            Method::POST,
            &sidecache.url("/upload"),
            &[],
            Bytes::from(vec![b'b'; 1024]),
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(origin.seen()[0].body.len(), 1024);

    // Past it, by the declared length: 413 at once, nothing sent on, the connection closed.
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .expect("write");
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        head.contains("cache-status: sidecache; fwd=method; detail=request-body-too-large"),
        "{head}"
    );
    assert_eq!(body, b"request body too large\n");
    let (_, end) = read_to_end(&mut stream).await;
    assert_eq!(end, End::Closed);
    assert_eq!(origin.seen().len(), 1, "the origin was not asked");

    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="pass"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="2xx"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="aborted"}"#),
        0.0
    );
    sidecache.stop().await;
}

#[tokio::test]
async fn a_chunked_body_running_past_the_limit_aborts_the_origin_request_and_gets_413() {
    let origin = TestOrigin::start(|_, _| Reply::ok("stored")).await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-request-body", "1KiB"]).await;
    let mut stream = connect(&sidecache).await;
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("write");
    // Three chunks of 512 bytes, no last chunk: the third runs past 1KiB.
    for _ in 0..3 {
        let mut chunk = b"200\r\n".to_vec();
        chunk.extend_from_slice(&[b'c'; 512]);
        chunk.extend_from_slice(b"\r\n");
        stream.write_all(&chunk).await.expect("write");
    }
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        head.contains("cache-status: sidecache; fwd=method; detail=request-body-too-large"),
        "{head}"
    );
    assert_eq!(body, b"request body too large\n");
    let (_, end) = read_to_end(&mut stream).await;
    assert_eq!(end, End::Closed);

    // The origin got the head and part of the body, then its connection broke: it never had a
    // whole request to act on (the test origin records a broken body as empty).
    origin.arrivals(1).await;
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].body.is_empty(), "{} body bytes", seen[0].body.len());

    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="aborted"}"#),
        1.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="protocol_error"}"#),
        0.0,
        "not counted as the origin's failure"
    );
    sidecache.stop().await;
}

/// A client that stops sending its request body part-way is answered 408 after
/// --client-body-timeout (as nginx does at client_body_timeout), the origin request abandoned; it
/// is not the origin's failure.
#[tokio::test]
async fn a_request_body_that_stalls_gets_408_after_the_body_timeout() {
    let origin = TestOrigin::start(|_, _| Reply::ok("stored")).await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--client-body-timeout",
            "300ms",
            "--client-idle-timeout",
            "30s",
        ],
    )
    .await;
    let mut stream = connect(&sidecache).await;
    let started = Instant::now();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 100\r\n\r\nfirst ten.",
        )
        .await
        .expect("write");
    let (head, body) = read_response(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        head.contains("cache-status: sidecache; fwd=method; detail=request-body-timeout"),
        "{head}"
    );
    assert_eq!(body, b"request body timed out\n");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    let (_, end) = read_to_end(&mut stream).await;
    assert_eq!(end, End::Closed);

    // Over HTTP/2 the stream is answered the same way.
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(connect(&sidecache).await),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let request = Request::post("http://limits.test/upload")
        .body(StalledBody(Some(Bytes::from("first ten."))))
        .expect("request");
    let response = tokio::time::timeout(BOUND, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    assert_eq!(response.status(), 408);

    origin.arrivals(2).await;
    assert!(
        origin.seen().iter().all(|seen| seen.body.is_empty()),
        "no whole body reached the origin"
    );
    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_requests_total{cache_result="error"}"#),
        2.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="aborted"}"#),
        2.0
    );
    assert_eq!(
        scrape.value(r#"sidecache_origin_requests_total{outcome="timeout"}"#),
        0.0
    );
    sidecache.stop().await;
}

/// A request body that sends its first chunk and then nothing, without ending.
struct StalledBody(Option<Bytes>);

impl http_body::Body for StalledBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(first) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(first)))),
            None => std::task::Poll::Pending,
        }
    }
}

// === origin timeouts ===

/// An origin that answers each connection with `head` (and what body bytes it holds), then keeps
/// the connection open without sending more.
struct StallingOrigin {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingOrigin {
    async fn start(answer: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(answer).await;
                // Held open, silent, until the test ends.
                held.push(stream);
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StallingOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_hanging_origin_gives_a_pass_through_504_within_the_origin_timeout() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| Reply::ok("late").gated(&origin_gate)).await;
    let sidecache = Sidecache::start(&origin.url(), &["--origin-timeout", "300ms"]).await;
    let started = Instant::now();
    let got = TestClient::new()
        .send(Method::POST, &sidecache.url("/hang"), &[], Bytes::from("x"))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "origin timed out\n");
    assert!(
        got.cache_status().contains("detail=origin-timeout"),
        "{}",
        got.cache_status()
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    gate.open();
    sidecache.stop().await;
}

/// A load's whole exchange is bounded: the head within --origin-timeout, the body within
/// --origin-body-timeout. An origin that stops mid-body gives 504, and nothing is stored.
#[tokio::test]
async fn an_origin_that_stops_mid_body_gives_504_within_the_body_timeout() {
    let origin = StallingOrigin::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\nfirst ten.",
    )
    .await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--origin-body-timeout", "300ms", "--grace", "0s"],
    )
    .await;
    let client = TestClient::new();
    for round in 1..=2 {
        let started = Instant::now();
        let got = client.get(&sidecache.url("/stuck")).await;
        let elapsed = started.elapsed();
        assert_eq!(got.status, 504, "round {round}");
        assert!(
            got.cache_status().contains("detail=origin-body-timeout"),
            "{}",
            got.cache_status()
        );
        assert!(
            elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
        assert_eq!(origin.requests.load(Ordering::SeqCst), round, "not stored");
    }
    sidecache.stop().await;
}

/// A streamed body (here one that may not be stored) that stops mid-way is cut off after
/// --origin-read-timeout: the client sees the bytes sent so far, then the connection break.
#[tokio::test]
async fn a_streamed_origin_body_that_stalls_is_cut_off_after_the_read_timeout() {
    let origin = StallingOrigin::start(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: private\r\n\r\nfirst ten.",
    )
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--origin-read-timeout", "300ms"]).await;
    let started = Instant::now();
    let got = TestClient::new()
        .try_send(Method::GET, &sidecache.url("/drip"), &[], Bytes::new())
        .await;
    let elapsed = started.elapsed();
    match got {
        Err(Failed::Body {
            status, received, ..
        }) => assert_eq!((status.as_u16(), received), (200, 10)),
        other => panic!("expected a body cut off after 10 bytes, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    sidecache.stop().await;
}

// === stored objects ===

#[tokio::test]
async fn an_object_over_the_size_limit_is_passed_through_whole_and_counted_not_stored() {
    let body = Bytes::from(vec![b'z'; 4096]);
    let reply = body.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok(reply.clone()).header("cache-control", "max-age=60")
    })
    .await;
    let sidecache = Sidecache::start(&origin.url(), &["--max-object-size", "1KiB"]).await;
    let client = TestClient::new();
    for _ in 0..2 {
        let got = client.get(&sidecache.url("/big")).await;
        assert_eq!(got.status, 200);
        assert!(got.body == body, "whole");
    }
    assert_eq!(origin.count("/big"), 2, "not stored");
    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value(r#"sidecache_store_refused_total{reason="too_large"}"#),
        2.0
    );
    assert_eq!(scrape.value("sidecache_entries"), 0.0);
    sidecache.stop().await;
}

// === waiters per key ===

#[tokio::test]
async fn callers_beyond_the_waiter_limit_get_503_and_the_queue_is_served() {
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let origin = TestOrigin::start(move |_, _| {
        Reply::ok("loaded")
            .header("cache-control", "max-age=60")
            .gated(&origin_gate)
    })
    .await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &["--max-waiters-per-key", "2", "--coalesce-timeout", "30s"],
    )
    .await;
    let client = TestClient::new();
    let spawn_get = || {
        let (client, url) = (client.clone(), sidecache.url("/hot"));
        tokio::spawn(async move { client.get(&url).await })
    };
    let leader = spawn_get();
    origin.arrivals(1).await;
    let waiters = [spawn_get(), spawn_get()];
    let cache = sidecache.proxy.cache().clone();
    wait_until(|| cache.waiting() == 2).await;

    let refused = client.get(&sidecache.url("/hot")).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), "1");
    assert_eq!(
        refused.text(),
        "too many requests waiting for this URL; retry shortly\n"
    );
    assert!(
        refused.cache_status().contains("detail=too-many-waiters"),
        "{}",
        refused.cache_status()
    );
    assert_eq!(cache.waiting(), 2, "the refused caller was not queued");

    gate.open();
    let got = leader.await.expect("leader");
    assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "loaded"));
    for waiter in waiters {
        let got = waiter.await.expect("waiter");
        assert_eq!((got.status.as_u16(), got.text().as_str()), (200, "loaded"));
        assert!(
            got.cache_status().contains("collapsed"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(origin.count("/hot"), 1, "one load, no herd");

    let scrape = sidecache.metrics().await;
    let waited = |outcome: &str| {
        scrape.value(&format!(
            "sidecache_coalesce_waiters_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(waited("shared"), 2.0);
    assert_eq!(waited("queue_full"), 1.0);
    let requests = |result: &str| {
        scrape.value(&format!(
            "sidecache_requests_total{{cache_result=\"{result}\"}}"
        ))
    };
    assert_eq!(
        (requests("miss"), requests("coalesced"), requests("error")),
        (1.0, 2.0, 1.0)
    );
    sidecache.stop().await;
}
