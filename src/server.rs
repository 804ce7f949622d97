//! The accept loop both listeners share: one task per connection, HTTP/1.1 and HTTP/2
//! (cleartext, prior knowledge, told apart by the first bytes), the client limits, and a graceful
//! drain bounded in time.
//!
//! # Client limits
//!
//! - At most [`ClientSettings::max_connections`] connections are open at once: the loop stops
//!   accepting until one closes, so further clients wait in the kernel's listen backlog.
//! - An HTTP/2 client may have at most [`ClientSettings::http2_max_concurrent_streams`] streams
//!   open at once (advertised in its SETTINGS; h2 refuses streams beyond it), and at most
//!   [`ClientSettings::max_origin_requests_per_connection`] of them at the origin (the others wait
//!   their turn: [`Client::in_turn`]).
//! - A connection whose client abandons more than [`ClientSettings::max_abandoned_requests`]
//!   requests (and more than it waits for) is closed (the `abandon` module).
//! - A request head larger than [`ClientSettings::max_header_bytes`] (HTTP/1.1: or with more than
//!   [`ClientSettings::max_headers`] fields) is answered 431 by hyper, with an empty body, and the
//!   connection closed; over HTTP/2 the limit is advertised as `SETTINGS_MAX_HEADER_LIST_SIZE` and
//!   a larger head is answered 431 and its stream reset.
//! - A connection with no request under way is closed after [`ClientSettings::idle_timeout`]; a
//!   request head (HTTP/2: a header block) must be complete within
//!   [`ClientSettings::header_timeout`] of its first byte, or the connection is closed without an
//!   answer; a write that the client leaves waiting for [`ClientSettings::send_timeout`] closes
//!   the connection (the `timeouts` module), and an HTTP/2 stream whose answer waits that long
//!   on its flow-control window is reset (the `streams` module). Each such cutoff is counted by
//!   [`ClientMetrics`].

mod abandon;
mod answering;
mod budget;
mod config;
mod cutoff;
mod detect;
mod header_blocks;
mod metrics;
mod request_end;
mod rewind;
mod streams;
mod timeouts;
mod tracked_body;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;

pub use self::config::ClientLimitsConfig;
pub use self::metrics::ClientMetrics;
pub use self::request_end::RequestEnd;
pub use self::tracked_body::{OnBodyEnd, TrackedBody};

use self::abandon::Abandonment;
use self::answering::Answering;
use self::budget::OriginBudget;
use self::cutoff::Cutoff;
use self::detect::Protocol;
use self::rewind::Rewind;
use self::streams::StreamExecutor;
use self::timeouts::{Activity, Clocks, TimedIo};
use crate::body::{Body, RequestBody};

/// Something that answers requests. It never fails: errors are answered as responses.
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` from `client`.
    ///
    /// Called as soon as the request head has arrived. Work that needs no waiting is done in
    /// the call itself and answered [`Handled::Now`] (a cache hit): the server then keeps no
    /// future for the request at all. Otherwise the future returned owns whatever it still
    /// needs, so the connection keeps only that, not the request. Work that goes to the origin
    /// runs in a turn of the connection's share of it ([`Client::in_turn`]).
    fn handle(
        self: &Arc<Self>,
        request: Request<RequestBody>,
        client: &Client,
    ) -> Handled<impl Future<Output = Response<Body>> + Send + use<Self>>;
}

/// What a [`Handler`] made of a request.
pub enum Handled<F> {
    /// Answered in the call.
    Now(Response<Body>),
    /// To be answered by the future, which the server polls (and counts as abandoned if the
    /// client goes away first).
    Later(F),
}

/// The client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    /// How many of the connection's requests may be at the origin at once.
    origin_budget: OriginBudget,
    /// What the connection's requests share (why it was cut off).
    activity: Arc<Activity>,
}

impl Client {
    /// A connection from `addr` that may have `origin_requests` requests at the origin at once,
    /// for a handler driven outside a listener (a benchmark): what its requests abandon, and how
    /// they end, is counted nowhere.
    pub fn new(addr: SocketAddr, origin_requests: usize) -> Self {
        let metrics = ClientMetrics::unexposed();
        let abandonment = Abandonment::new(u32::MAX, metrics.abandoned());
        let activity = Arc::new(Activity::new(abandonment, metrics.ends()));
        Self::on_connection(addr, origin_requests, activity)
    }

    /// A listener's connection from `addr`, sharing `activity` with it, that may have
    /// `origin_requests` requests at the origin at once.
    fn on_connection(addr: SocketAddr, origin_requests: usize, activity: Arc<Activity>) -> Self {
        Self {
            addr,
            origin_budget: OriginBudget::new(origin_requests),
            activity,
        }
    }

    /// How a request of this connection dropped now, before its answer, ends: closed by its
    /// client, or cut off by sidecache (it counts it so itself).
    pub fn unanswered_end(&self) -> RequestEnd {
        self.activity.unanswered_end()
    }

    /// The client's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs `answer`, work that goes to the origin, in a turn of the connection's share of the
    /// origin (`--max-origin-requests-per-connection`): it starts once fewer than that many of
    /// the connection's requests are at the origin (first come, first served), and a body that
    /// streams from the origin keeps the turn until it is sent.
    ///
    /// # Cancel safety
    ///
    /// A request dropped while it waits loses its place and takes no turn.
    pub fn in_turn<F>(&self, answer: F) -> impl Future<Output = Response<Body>> + Send + use<F>
    where
        F: Future<Output = Response<Body>> + Send,
    {
        let budget = self.origin_budget.clone();
        async move {
            let turn = budget.take().await;
            let mut response = answer.await;
            // Back to the server, which keeps it with a streamed body (`TrackedBody::respond`).
            response.extensions_mut().insert(turn);
            response
        }
    }
}

/// What a listener allows its clients: the client limits of the configuration, in the units the
/// server applies them in.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1.1 request head.
    pub max_headers: usize,
    /// Longest time from a request head's first byte to its end (HTTP/2: a header block's).
    pub header_timeout: Duration,
    /// Longest time a connection stays open with no request under way.
    pub idle_timeout: Duration,
    /// Longest time a response may make no progress because its client takes none of it.
    pub send_timeout: Duration,
    /// Most streams an HTTP/2 client may have open at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// Most requests of one connection at the origin at once.
    pub max_origin_requests_per_connection: usize,
    /// Most requests a connection may abandon (while it abandons more than it waits for).
    pub max_abandoned_requests: u32,
}

/// The connection slots of one listener, and how many connections hold one.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    slots: Arc<Semaphore>,
    max: usize,
    /// Connections accepted and not yet closed (the accept loop may hold one more slot, free,
    /// while it waits for the next connection).
    open: Arc<AtomicUsize>,
}

/// A connection's slot, given back when the connection ends.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicUsize>,
}

impl ConnectionSlots {
    /// `max` slots, all free.
    pub fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The most connections open at once.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now (a saturation gauge).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Waits for a free slot.
    async fn reserve(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Gives a reserved slot to an accepted connection.
    fn occupy(&self, permit: OwnedSemaphorePermit) -> Slot {
        self.open.fetch_add(1, Ordering::SeqCst);
        Slot {
            _permit: permit,
            open: Arc::clone(&self.open),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// hyper's own default for the number of header fields; asking for exactly it keeps hyper's
/// parser on its allocation-free path.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Connection builders for HTTP/1.1 and HTTP/2 (cleartext, prior knowledge), and the timeouts
/// every connection is held to (the `detect` module tells the protocol).
#[derive(Clone)]
struct Protocols {
    http1: Arc<http1::Builder>,
    http2: Arc<http2::Builder<StreamExecutor>>,
    clocks: Clocks,
}

impl Protocols {
    fn new(limits: &ClientSettings, metrics: &ClientMetrics) -> Self {
        let mut http1 = http1::Builder::new();
        configure_http1(&mut http1, limits);
        let streams = StreamExecutor::new(limits.send_timeout, metrics.streams_reset());
        let mut http2 = http2::Builder::new(streams);
        configure_http2(&mut http2, limits);
        Self {
            http1: Arc::new(http1),
            http2: Arc::new(http2),
            clocks: Clocks {
                idle: limits.idle_timeout,
                header: limits.header_timeout,
                send: limits.send_timeout,
            },
        }
    }

    /// Serves one connection to its end (or its graceful shutdown).
    async fn serve<S>(
        &self,
        mut stream: TcpStream,
        activity: Arc<Activity>,
        service: S,
        watcher: Watcher,
        draining: CancellationToken,
    ) -> Result<(), BoxError>
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<TrackedBody>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        // A client that connects and sends nothing is idle: it gets no longer than the idle
        // timeout to show which protocol it speaks, and none at all once the drain starts (no
        // request is under way: hyper's graceful shutdown, which starts only after detection,
        // would close it the same way).
        let peeked = tokio::select! {
            peeked = tokio::time::timeout(self.clocks.idle, detect::peek(&stream)) => match peeked {
                Ok(peeked) => peeked?,
                Err(_) => {
                    activity.record_cutoff(Cutoff::Idle);
                    return Err(Cutoff::Idle.into());
                }
            },
            () = draining.cancelled() => return Ok(()),
        };
        if let Some(protocol) = peeked {
            return self
                .serve_as(protocol, stream, None, activity, service, watcher)
                .await;
        }
        // A part of the preface: a head has begun, whichever protocol it turns out to be, and
        // the header clock runs from its first byte.
        let begun = Instant::now();
        let told =
            tokio::time::timeout_at(begun + self.clocks.header, detect::read_on(&mut stream));
        let (protocol, prefix) = tokio::select! {
            told = told => match told {
                Ok(told) => told?,
                Err(_) => {
                    activity.record_cutoff(Cutoff::Header);
                    return Err(Cutoff::Header.into());
                }
            },
            () = draining.cancelled() => return Ok(()),
        };
        let io = Rewind::new(prefix, stream);
        self.serve_as(protocol, io, Some(begun), activity, service, watcher)
            .await
    }

    /// Serves a connection in `protocol` on `io`, whose first head began at `begun` if its first
    /// bytes were read already.
    async fn serve_as<I, S>(
        &self,
        protocol: Protocol,
        io: I,
        begun: Option<Instant>,
        activity: Arc<Activity>,
        service: S,
        watcher: Watcher,
    ) -> Result<(), BoxError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<TrackedBody>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        match protocol {
            Protocol::Http1 => {
                let mut timed = TimedIo::http1(io, activity, self.clocks);
                if let Some(begun) = begun {
                    timed = timed.head_begun_at(begun);
                }
                let connection = self.http1.serve_connection(TokioIo::new(timed), service);
                Ok(watcher.watch(connection).await?)
            }
            Protocol::Http2 => {
                let timed = TimedIo::http2(io, activity, self.clocks);
                let connection = self.http2.serve_connection(TokioIo::new(timed), service);
                Ok(watcher.watch(connection).await?)
            }
        }
    }
}

/// HTTP/1.1: the head limits, and no hyper header-read timeout (the `timeouts` module keeps the
/// idle and header clocks apart instead).
fn configure_http1(http1: &mut http1::Builder, limits: &ClientSettings) {
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
}

/// HTTP/2: the head size limit, and the streams a client may open at once.
fn configure_http2(http2: &mut http2::Builder<StreamExecutor>, limits: &ClientSettings) {
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(header_list_size(limits))
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
}

/// The HTTP/2 header list size limit (RFC 9113 §6.5.2): the head size limit.
fn header_list_size(limits: &ClientSettings) -> u32 {
    u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX)
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

/// Serves `handler` on `listener` under `limits`, taking a slot of `slots` for each connection
/// and counting the connections it cuts off in `metrics`, until `shutdown` completes; then stops
/// accepting, asks every connection to finish (HTTP/1.1: after the current request; HTTP/2:
/// GOAWAY), and waits at most `grace` for them.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: &ClientSettings,
    slots: ConnectionSlots,
    metrics: ClientMetrics,
) -> Drained {
    let protocols = Protocols::new(limits, &metrics);
    let connections = GracefulShutdown::new();
    // Cancelled when the drain starts, for connections that hyper does not serve yet.
    let draining = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        // At the limit, stop accepting: new clients wait in the listen backlog.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.reserve() => permit,
        };
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
        let slot = slots.occupy(permit);
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let abandonment = Abandonment::new(limits.max_abandoned_requests, metrics.abandoned());
        let activity = Arc::new(Activity::new(abandonment, metrics.ends()));
        let client = Client::on_connection(
            peer,
            limits.max_origin_requests_per_connection,
            Arc::clone(&activity),
        );
        let service = hyper::service::service_fn({
            let activity = Arc::clone(&activity);
            move |request| {
                // Taken when hyper hands the request over, so the connection is busy from then.
                let guard = activity.begin();
                match handler.handle(request.map(RequestBody::Streamed), &client) {
                    // Nothing to wait for: no future state, nothing the client could abandon.
                    Handled::Now(response) => {
                        Either::Left(std::future::ready(Ok::<_, std::convert::Infallible>(
                            TrackedBody::respond(response, guard),
                        )))
                    }
                    Handled::Later(answer) => Either::Right(async move {
                        let (response, guard) = Answering::new(guard).wait(answer).await;
                        Ok(TrackedBody::respond(response, guard))
                    }),
                }
            }
        });
        let (protocols, watcher) = (protocols.clone(), connections.watcher());
        let (draining, metrics) = (draining.clone(), metrics.clone());
        tokio::spawn(async move {
            let served = protocols.serve(stream, Arc::clone(&activity), service, watcher, draining);
            tokio::select! {
                // In this order: the connection is polled first, with no random draw per poll.
                biased;
                served = served => if let Err(error) = served {
                    tracing::debug!(%peer, error = %error, "connection ended with an error");
                },
                // Dropping the connection closes it, with the streams still open.
                () = activity.abandonment().closing() => {
                    activity.record_cutoff(Cutoff::AbandonedRequests);
                    tracing::debug!(%peer, "connection closed: too many requests abandoned");
                }
            }
            if let Some(cutoff) = activity.cutoff() {
                metrics.record_cutoff(cutoff);
            }
            drop(slot);
        });
    }
    drop(listener);
    draining.cancel();
    match tokio::time::timeout(grace, connections.shutdown()).await {
        Ok(()) => Drained::Cleanly,
        Err(_) => Drained::TimedOut,
    }
}
