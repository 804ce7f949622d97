//! Slow and idle clients, and clients that do not read.

use super::*;

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
    // The answer began and broke off: its request ends so.
    let ended = |outcome: &str| {
        scrape.value(&format!(
            "sidecache_requests_ended_total{{outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!(ended("body_aborted"), 1.0);
    assert_eq!(ended("completed"), 0.0);
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
