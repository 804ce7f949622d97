//! Telling a connection's protocol by its first bytes: HTTP/2 with prior knowledge begins with
//! the connection preface, anything else is taken for HTTP/1.1.
//!
//! The first bytes are peeked, not read, so a decided connection is served on the bare socket
//! with nothing in front of its reads for its whole life. Only a first segment that is a part of
//! the preface ("P" could as well begin "POST") leaves it undecided: such a connection is read on
//! until its bytes tell, and served behind a [`Rewind`](super::rewind::Rewind) that gives those
//! bytes back.

use std::io;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The HTTP/2 connection preface a prior-knowledge client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Http1,
    Http2,
}

/// Peeks at the connection's first bytes (waiting for at least one): their protocol, or `None`
/// when they are a part of the preface and do not tell yet. A connection closed before sending
/// anything counts as HTTP/1.1 (hyper then ends it).
pub(super) async fn peek(stream: &TcpStream) -> io::Result<Option<Protocol>> {
    let mut first = [0u8; H2_PREFACE.len()];
    let peeked = stream.peek(&mut first).await?;
    Ok(decide(&first[..peeked], peeked == 0))
}

/// Reads on from a connection whose first bytes did not tell its protocol, until they do (at
/// most the preface's length) or the client closes: the protocol, and every byte read, to be
/// given back.
pub(super) async fn read_on(stream: &mut TcpStream) -> io::Result<(Protocol, Bytes)> {
    let mut first = [0u8; H2_PREFACE.len()];
    let mut filled = 0;
    loop {
        let read = stream.read(&mut first[filled..]).await?;
        filled += read;
        if let Some(protocol) = decide(&first[..filled], read == 0) {
            return Ok((protocol, Bytes::copy_from_slice(&first[..filled])));
        }
    }
}

/// The protocol `first` (the connection's first bytes, up to the preface's length) tells, or
/// `None` while it is a strict part of the preface and the client may send more.
fn decide(first: &[u8], closed: bool) -> Option<Protocol> {
    if first == H2_PREFACE {
        Some(Protocol::Http2)
    } else if closed || first.is_empty() || first != &H2_PREFACE[..first.len()] {
        Some(Protocol::Http1)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: the client's end and the server's.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    /// What `peek` says about a connection whose client wrote `first` (then closed, if
    /// `close`).
    async fn peeked(first: &[u8], close: bool) -> Option<Protocol> {
        let (mut client, server) = pair().await;
        client.write_all(first).await.expect("write");
        if close {
            client.shutdown().await.expect("shutdown");
        }
        peek(&server).await.expect("peek")
    }

    #[tokio::test]
    async fn the_first_bytes_tell_the_protocol() {
        assert_eq!(peeked(H2_PREFACE, false).await, Some(Protocol::Http2));
        assert_eq!(
            peeked(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false).await,
            Some(Protocol::Http1)
        );
        assert_eq!(peeked(b"PUT /", false).await, Some(Protocol::Http1));
        assert_eq!(peeked(b"", true).await, Some(Protocol::Http1));
        // "P" could begin either "POST" or the preface: undecided.
        assert_eq!(peeked(b"PRI * HTTP", false).await, None);
    }

    #[tokio::test]
    async fn reading_on_gives_the_protocol_and_every_byte_read() {
        let (mut client, mut server) = pair().await;
        let reading = tokio::spawn(async move { read_on(&mut server).await.expect("read") });
        client.write_all(b"P").await.expect("write");
        client
            .write_all(b"OST / HTTP/1.1\r\n")
            .await
            .expect("write");
        let (protocol, read) = reading.await.expect("task");
        assert_eq!(protocol, Protocol::Http1);
        assert!(b"POST / HTTP/1.1\r\n".starts_with(&read), "{read:?}");
        assert!(read.len() >= 2, "read until the bytes told: {read:?}");

        let (mut client, mut server) = pair().await;
        let reading = tokio::spawn(async move { read_on(&mut server).await.expect("read") });
        client.write_all(&H2_PREFACE[..3]).await.expect("write");
        client.write_all(&H2_PREFACE[3..]).await.expect("write");
        client.write_all(b"frames").await.expect("write");
        let (protocol, read) = reading.await.expect("task");
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(&read[..], H2_PREFACE, "no further than the preface");

        let (mut client, mut server) = pair().await;
        client.write_all(b"PRI").await.expect("write");
        client.shutdown().await.expect("shutdown");
        let (protocol, read) = read_on(&mut server).await.expect("read");
        assert_eq!((protocol, &read[..]), (Protocol::Http1, &b"PRI"[..]));
    }
}
