//! The accept loop both listeners share: one task per connection, HTTP/1.1 and HTTP/2
//! (cleartext, prior knowledge, told apart by the first bytes), and a graceful drain bounded in
//! time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};

use crate::body::Body;

/// Something that answers requests. It never fails: errors are answered as responses.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` from the client at `peer`.
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// The HTTP/2 connection preface a prior-knowledge client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks, as far as its first bytes tell.
enum Detected {
    Http1,
    Http2,
    /// Only part of the preface has arrived: let hyper-util's auto builder read on.
    Undecided,
}

/// Connection builders for HTTP/1.1 and HTTP/2 (cleartext, prior knowledge).
///
/// The protocol is told by peeking at the first bytes, without consuming them, so a decided
/// connection is served by its own builder on the bare socket. hyper-util's auto builder would
/// tell it too, but keeps a rewind wrapper in every read for the connection's whole life; it
/// serves only the rare connection whose first segment is a partial preface.
#[derive(Clone)]
struct Protocols {
    http1: Arc<http1::Builder>,
    http2: Arc<http2::Builder<TokioExecutor>>,
    auto: Arc<auto::Builder<TokioExecutor>>,
}

impl Protocols {
    fn new() -> Self {
        let mut http1 = http1::Builder::new();
        http1.timer(TokioTimer::new());
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1().timer(TokioTimer::new());
        auto.http2().timer(TokioTimer::new());
        Self {
            http1: Arc::new(http1),
            http2: Arc::new(http2),
            auto: Arc::new(auto),
        }
    }

    /// Serves one connection to its end (or its graceful shutdown).
    async fn serve<S>(
        &self,
        stream: TcpStream,
        service: S,
        watcher: Watcher,
    ) -> Result<(), BoxError>
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<Body>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        match detect(&stream).await? {
            Detected::Http1 => {
                let connection = self.http1.serve_connection(TokioIo::new(stream), service);
                Ok(watcher.watch(connection).await?)
            }
            Detected::Http2 => {
                let connection = self.http2.serve_connection(TokioIo::new(stream), service);
                Ok(watcher.watch(connection).await?)
            }
            Detected::Undecided => {
                let connection = self
                    .auto
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                watcher.watch(connection).await
            }
        }
    }
}

/// Peeks at the connection's first bytes: the HTTP/2 preface, something else, or too little to
/// tell yet. A connection closed before sending anything counts as HTTP/1 (hyper then ends it).
async fn detect(stream: &TcpStream) -> std::io::Result<Detected> {
    let mut first = [0u8; H2_PREFACE.len()];
    let read = stream.peek(&mut first).await?;
    Ok(if read == H2_PREFACE.len() && first == *H2_PREFACE {
        Detected::Http2
    } else if read == 0 || first[..read] != H2_PREFACE[..read] {
        Detected::Http1
    } else {
        Detected::Undecided
    })
}

/// An error from a connection, whatever its protocol.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a server drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished its requests within the grace period.
    Cleanly,
    /// The grace period ran out with connections still open; they were dropped.
    TimedOut,
}

/// Serves `handler` on `listener` until `shutdown` completes, then stops accepting, asks every
/// connection to finish (HTTP/1.1: after the current request; HTTP/2: GOAWAY), and waits at most
/// `grace` for them.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Drained {
    let protocols = Protocols::new();
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before accept: not fatal.
                    // Back off briefly so a persistent condition does not spin the loop.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |request| {
            let handler = Arc::clone(&handler);
            async move { Ok::<_, std::convert::Infallible>(handler.handle(request, peer).await) }
        });
        let (protocols, watcher) = (protocols.clone(), connections.watcher());
        tokio::spawn(async move {
            if let Err(error) = protocols.serve(stream, service, watcher).await {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    match tokio::time::timeout(grace, connections.shutdown()).await {
        Ok(()) => Drained::Cleanly,
        Err(_) => Drained::TimedOut,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// What `detect` says about a connection whose client wrote `first` (then closed, if
    /// `close`).
    async fn detected(first: &[u8], close: bool) -> Detected {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        client.write_all(first).await.expect("write");
        if close {
            client.shutdown().await.expect("shutdown");
        }
        detect(&server).await.expect("peek")
    }

    #[tokio::test]
    async fn the_first_bytes_tell_the_protocol() {
        assert!(matches!(detected(H2_PREFACE, false).await, Detected::Http2));
        assert!(matches!(
            detected(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false).await,
            Detected::Http1
        ));
        // "P" could begin either "POST" or the preface: hyper-util's auto builder reads on.
        assert!(matches!(
            detected(b"PRI * HTTP", false).await,
            Detected::Undecided
        ));
        assert!(matches!(detected(b"PUT /", false).await, Detected::Http1));
        assert!(matches!(detected(b"", true).await, Detected::Http1));
    }
}
