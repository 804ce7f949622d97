//! A fault-injecting origin: a raw TCP server on a loopback port that answers each request as a
//! script says — properly, or with one of the ways a broken origin fails (a reset before or in
//! the middle of the answer, a hang, a slow drip, garbage, a body shorter than its
//! `Content-Length`, a server error) — and that can refuse connections altogether or stall its
//! accept loop.
//!
//! It speaks HTTP/1.1 by hand, so that it can break the protocol where a real server library
//! would not let it. It counts every request whose head it read (exact counts for assertions)
//! and signals each arrival, so tests wait on arrivals instead of sleeping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// A well-formed answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self::new(200, body)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The status line and header fields of an interim (1xx) response, which has no body.
    fn interim_head(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} Interim\r\n", self.status);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// The status line and header fields, declaring a `Content-Length` of the whole body.
    fn head(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} Fault Origin\r\n", self.status);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", self.body.len()));
        head.into_bytes()
    }

    /// Whether the answer says the connection closes after it.
    fn closes(&self) -> bool {
        self.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
        })
    }
}

/// What the origin does with one request, once it has read its head.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answers properly (a server error too: a burst of 5xx is a run of these). The connection
    /// stays open for the next request unless the answer says `Connection: close`.
    Respond(Answer),
    /// Resets the connection (TCP RST) without sending anything.
    ResetBeforeHead,
    /// Sends the head and the first `sent` bytes of the body, then resets the connection.
    ResetMidBody { answer: Answer, sent: usize },
    /// Never answers; the connection stays open until the peer closes it.
    Hang,
    /// Sends the head at once, then the body `chunk` bytes at a time, one chunk per `interval`.
    Drip {
        answer: Answer,
        chunk: usize,
        interval: Duration,
    },
    /// Sends bytes that are not HTTP, then closes.
    Garbage,
    /// Declares the whole body in `Content-Length`, sends only `sent` bytes of it, then closes
    /// cleanly (FIN).
    ShortBody { answer: Answer, sent: usize },
    /// Sends each interim (1xx) response head of `interim`, then answers properly.
    AfterInterim {
        interim: Vec<Answer>,
        answer: Answer,
    },
}

/// A request as the origin read it.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// 1-based: the how-manieth request for this path this is.
    pub sequence: usize,
}

type Script = dyn Fn(&Arrival) -> Behaviour + Send + Sync;

/// What the test and the connections share.
struct State {
    script: Box<Script>,
    /// Requests read so far, per path.
    per_path: Mutex<HashMap<String, usize>>,
    /// Requests read so far in total (a signal tests wait on).
    arrivals: watch::Sender<usize>,
    /// While true, a connection that has read a request waits before acting on it.
    held: watch::Sender<bool>,
    /// Connections open right now.
    open: watch::Sender<usize>,
}

/// Orders to the accept loop.
enum Order {
    /// Close the listening socket (new connections are refused) and every open connection.
    Refuse { done: oneshot::Sender<()> },
    /// Keep the port open but stop accepting: new connections wait in the listen backlog.
    Stall { done: oneshot::Sender<()> },
    /// Accept again (listening on the same port again if it was closed).
    Accept { done: oneshot::Sender<()> },
}

/// A scriptable, fault-injecting origin on a loopback port. Dropping it stops it and closes
/// every connection.
pub struct FaultOrigin {
    pub addr: SocketAddr,
    state: Arc<State>,
    orders: mpsc::Sender<Order>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultOrigin {
    /// Starts an origin that answers every request as `script` says.
    pub async fn start(script: impl Fn(&Arrival) -> Behaviour + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin addr");
        let state = Arc::new(State {
            script: Box::new(script),
            per_path: Mutex::new(HashMap::new()),
            arrivals: watch::channel(0).0,
            held: watch::channel(false).0,
            open: watch::channel(0).0,
        });
        let (orders, received) = mpsc::channel(4);
        let task = tokio::spawn(accept_loop(
            Some(listener),
            addr,
            Arc::clone(&state),
            received,
        ));
        Self {
            addr,
            state,
            orders,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests read so far, in total.
    pub fn requests(&self) -> usize {
        *self.state.arrivals.borrow()
    }

    /// Requests read so far for `path` (path and query).
    pub fn count(&self, path: &str) -> usize {
        self.state
            .per_path
            .lock()
            .expect("per path")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        *self.state.open.borrow()
    }

    /// Waits (at most 10 s) until at most `n` connections are open.
    pub async fn open_at_most(&self, n: usize) {
        let mut open = self.state.open.subscribe();
        tokio::time::timeout(Duration::from_secs(10), open.wait_for(|open| *open <= n))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} origin connections still open after 10 s, expected at most {n}",
                    self.open_connections()
                )
            })
            .expect("origin alive");
    }

    /// Waits (at most 10 s) until at least `n` requests have been read in total.
    pub async fn arrivals(&self, n: usize) {
        let mut arrivals = self.state.arrivals.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            arrivals.wait_for(|seen| *seen >= n),
        )
        .await
        .unwrap_or_else(|_| panic!("{n} origin requests did not arrive in 10 s"))
        .expect("origin alive");
    }

    /// From now on, a request that has been read waits for [`release`](Self::release) before
    /// the origin acts on it (to gather waiters behind one load).
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Lets held requests (and later ones) go on.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// Closes the port and every open connection: from now on connections are refused. Returns
    /// once both are closed.
    pub async fn refuse(&self) {
        self.order(|done| Order::Refuse { done }).await;
    }

    /// Stops accepting connections while the port stays open (a stalled accept loop): a new
    /// connection completes its handshake in the kernel and waits, its request unread, until
    /// [`accept`](Self::accept). Connections already open are served as before.
    ///
    /// Unlike closing the port under load, this loses nothing: the kernel resets the connections
    /// still waiting in the backlog of a port that closes, so a request sent on one of them
    /// would count at the client and never at the origin.
    pub async fn stall(&self) {
        self.order(|done| Order::Stall { done }).await;
    }

    /// Accepts connections again after [`refuse`](Self::refuse) (listening on the same port
    /// again) or [`stall`](Self::stall).
    pub async fn accept(&self) {
        self.order(|done| Order::Accept { done }).await;
    }

    async fn order(&self, order: impl FnOnce(oneshot::Sender<()>) -> Order) {
        let (done, finished) = oneshot::channel();
        self.orders.send(order(done)).await.expect("origin running");
        tokio::time::timeout(Duration::from_secs(10), finished)
            .await
            .expect("origin obeyed in time")
            .expect("origin running");
    }
}

impl Drop for FaultOrigin {
    fn drop(&mut self) {
        // Aborting the accept loop drops its connection set, which aborts every connection.
        self.task.abort();
    }
}

/// Accepts connections and obeys orders; owns every connection's task.
async fn accept_loop(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    state: Arc<State>,
    mut orders: mpsc::Receiver<Order>,
) {
    let mut connections = JoinSet::new();
    let mut accepting = true;
    loop {
        let accepted = async {
            match &listener {
                Some(listener) if accepting => listener.accept().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = accepted => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    state.open.send_modify(|open| *open += 1);
                    serve(stream, &state).await;
                    state.open.send_modify(|open| *open -= 1);
                });
            }
            order = orders.recv() => match order {
                None => return,
                Some(Order::Refuse { done }) => {
                    listener = None;
                    connections.shutdown().await;
                    // Aborted tasks did not get to count themselves closed.
                    state.open.send_replace(0);
                    let _ = done.send(());
                }
                Some(Order::Stall { done }) => {
                    accepting = false;
                    let _ = done.send(());
                }
                Some(Order::Accept { done }) => {
                    if listener.is_none() {
                        listener = Some(rebind(addr).await);
                    }
                    accepting = true;
                    let _ = done.send(());
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Binds `addr` again; another socket may hold the port for a moment, so it tries for a while.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) if tries < 100 => {
                tries += 1;
                eprintln!("fault origin: rebinding {addr}: {error}; trying again");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("fault origin: cannot listen on {addr} again: {error}"),
        }
    }
}

/// Serves one connection: reads requests one after another and acts as the script says.
async fn serve(mut stream: TcpStream, state: &State) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let sequence = {
            let mut per_path = state.per_path.lock().expect("per path");
            let count = per_path.entry(request.path.clone()).or_insert(0);
            *count += 1;
            *count
        };
        let arrival = Arrival {
            method: request.method,
            path: request.path,
            sequence,
        };
        let behaviour = (state.script)(&arrival);
        state.arrivals.send_modify(|n| *n += 1);
        if !wait_while_held(&mut stream, state).await {
            return;
        }
        let head_only = arrival.method == "HEAD";
        let keep_open = act(&mut stream, behaviour, head_only).await;
        if !keep_open || request.closes {
            return;
        }
    }
}

/// Waits until the origin is not held. False if the peer closed the connection meanwhile.
async fn wait_while_held(stream: &mut TcpStream, state: &State) -> bool {
    let mut held = state.held.subscribe();
    if !*held.borrow_and_update() {
        return true;
    }
    tokio::select! {
        _ = held.wait_for(|held| !*held) => true,
        _ = closed_by_peer(stream) => false,
    }
}

/// Acts out `behaviour`; returns whether the connection may carry another request.
async fn act(stream: &mut TcpStream, behaviour: Behaviour, head_only: bool) -> bool {
    match behaviour {
        Behaviour::AfterInterim { interim, answer } => {
            let mut bytes = Vec::new();
            for head in interim {
                bytes.extend_from_slice(&head.interim_head());
            }
            bytes.extend_from_slice(&answer.head());
            if !head_only {
                bytes.extend_from_slice(&answer.body);
            }
            stream.write_all(&bytes).await.is_ok() && !answer.closes()
        }
        Behaviour::Respond(answer) => {
            let mut bytes = answer.head();
            if !head_only {
                bytes.extend_from_slice(&answer.body);
            }
            stream.write_all(&bytes).await.is_ok() && !answer.closes()
        }
        Behaviour::ResetBeforeHead => {
            reset(stream).await;
            false
        }
        Behaviour::ResetMidBody { answer, sent } => {
            let mut bytes = answer.head();
            bytes.extend_from_slice(&answer.body[..sent.min(answer.body.len())]);
            if stream.write_all(&bytes).await.is_ok() {
                reset(stream).await;
            }
            false
        }
        Behaviour::Hang => {
            closed_by_peer(stream).await;
            false
        }
        Behaviour::Drip {
            answer,
            chunk,
            interval,
        } => {
            if stream.write_all(&answer.head()).await.is_err() {
                return false;
            }
            if head_only {
                return !answer.closes();
            }
            for piece in answer.body.chunks(chunk.max(1)) {
                tokio::time::sleep(interval).await;
                if stream.write_all(piece).await.is_err() {
                    return false;
                }
            }
            !answer.closes()
        }
        Behaviour::Garbage => {
            let _ = stream
                .write_all(b"this is not HTTP at all\r\n\r\n\x00\x01\x02")
                .await;
            let _ = stream.shutdown().await;
            false
        }
        Behaviour::ShortBody { answer, sent } => {
            let mut bytes = answer.head();
            bytes.extend_from_slice(&answer.body[..sent.min(answer.body.len())]);
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
            false
        }
    }
}

/// Resets the connection: closing with a zero linger time sends RST instead of FIN.
async fn reset(stream: &mut TcpStream) {
    // Let what was written reach the peer first: a reset discards unsent data.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = stream.set_zero_linger();
    // The caller drops the stream right after, which closes it with the RST.
}

/// Resolves once the peer has closed the connection (or it broke). Whatever else it sends is
/// discarded.
async fn closed_by_peer(stream: &mut TcpStream) {
    let mut scratch = [0u8; 1024];
    while let Ok(read) = stream.read(&mut scratch).await {
        if read == 0 {
            return;
        }
    }
}

/// A request head as far as the origin needs it.
struct RequestHead {
    method: String,
    path: String,
    /// The client asked to close the connection after this request.
    closes: bool,
}

/// Reads one request (head and `Content-Length` body) from `stream`, keeping bytes that belong
/// to the next request in `buffer`. `None` when the connection ends or speaks nonsense.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<RequestHead> {
    let mut scratch = [0u8; 4096];
    let (head_len, head, body_len) = loop {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut fields);
        match request.parse(buffer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .find(|field| field.name.eq_ignore_ascii_case(name))
                        .and_then(|field| std::str::from_utf8(field.value).ok())
                };
                // Requests with a chunked body are not supported: none of the tests sends one.
                assert!(
                    header("transfer-encoding").is_none(),
                    "the fault origin reads Content-Length bodies only"
                );
                let body_len: usize = header("content-length")
                    .map_or(0, |length| length.trim().parse().expect("Content-Length"));
                let head = RequestHead {
                    method: request.method?.to_owned(),
                    path: request.path?.to_owned(),
                    closes: header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")),
                };
                break (head_len, head, body_len);
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return None,
        }
        let read = stream.read(&mut scratch).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&scratch[..read]);
    };
    while buffer.len() < head_len + body_len {
        let read = stream.read(&mut scratch).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&scratch[..read]);
    }
    buffer.drain(..head_len + body_len);
    Some(head)
}
