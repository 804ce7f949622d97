//! Test support: a scriptable origin, a sidecache started in-process on port 0, and a client.
//! Each is one line in a test.

#![allow(dead_code)] // each test binary uses a different part of the support module

pub mod binary;
pub mod fault_origin;
pub mod machine;
pub mod otlp;
pub mod postgres;
pub mod prometheus;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sidecache::app::App;
use sidecache::config::Config;
use sidecache::proxy::service::Proxy;
use sidecache::server::Drained;
use sidecache::telemetry::{self, Tracing};
use sidecache::writebehind::WriteBehind;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

// === origin ===

/// What the test origin answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Wait this long before answering (the origin's own slowness, not test synchronisation).
    pub delay: Duration,
    /// Wait until this gate opens before answering.
    pub gate: Option<Gate>,
    /// Send the body in several chunks with no `Content-Length` (chunked transfer coding).
    pub chunked: bool,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("status"),
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            gate: None,
            chunked: false,
        }
    }

    pub fn ok(body: impl Into<Bytes>) -> Self {
        Self::new(200, body)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn gated(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }

    /// [`gated`](Self::gated) when `held` (the one request of several a test holds back).
    pub fn gated_if(self, held: bool, gate: &Gate) -> Self {
        if held { self.gated(gate) } else { self }
    }

    /// Sends the body chunked, without a `Content-Length`.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

/// The test origin's response body: one frame with a known length, or several frames of
/// unknown total length (which hyper sends with chunked transfer coding).
pub struct OriginBody {
    chunks: std::collections::VecDeque<Bytes>,
    exact_len: Option<u64>,
}

impl OriginBody {
    fn new(body: Bytes, chunked: bool) -> Self {
        if !chunked {
            let exact_len = Some(body.len() as u64);
            let chunks = if body.is_empty() {
                Default::default()
            } else {
                [body].into()
            };
            return Self { chunks, exact_len };
        }
        const CHUNK: usize = 8 * 1024;
        let chunks = (0..body.len())
            .step_by(CHUNK)
            .map(|start| body.slice(start..(start + CHUNK).min(body.len())))
            .collect();
        Self {
            chunks,
            exact_len: None,
        }
    }
}

impl http_body::Body for OriginBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(
            self.chunks
                .pop_front()
                .map(|c| Ok(http_body::Frame::data(c))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.exact_len.is_some() && self.chunks.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.exact_len {
            Some(len) => http_body::SizeHint::with_exact(len),
            None => http_body::SizeHint::default(),
        }
    }
}

/// A gate the test opens to let gated origin replies through.
#[derive(Clone, Debug)]
pub struct Gate(watch::Sender<bool>);

impl Gate {
    pub fn new() -> Self {
        Self(watch::channel(false).0)
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn passed(&self) {
        let mut open = self.0.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

/// A request as the origin saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the origin finished sending its answer head.
    pub answered_at: Option<Instant>,
}

type Script = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

struct OriginState {
    script: Box<Script>,
    seen: Mutex<Vec<Seen>>,
    /// Requests received so far (a signal tests wait on).
    arrivals: watch::Sender<usize>,
    in_flight: Mutex<HashMap<String, (usize, usize)>>,
}

/// A scriptable origin on a loopback port. The script gets each request and its per-path
/// sequence number (1-based) and says what to answer.
pub struct TestOrigin {
    pub addr: SocketAddr,
    state: Arc<OriginState>,
    stop: Option<oneshot::Sender<()>>,
    /// Turns true once the origin has stopped and every connection it had is closed.
    closed: watch::Receiver<bool>,
}

impl TestOrigin {
    pub async fn start(script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        Self::serve(listener, script)
    }

    /// Serves on an already bound listener (to restart an origin on the same port).
    pub fn serve(
        listener: TcpListener,
        script: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let addr = listener.local_addr().expect("origin addr");
        let state = Arc::new(OriginState {
            script: Box::new(script),
            seen: Mutex::new(Vec::new()),
            arrivals: watch::channel(0).0,
            in_flight: Mutex::new(HashMap::new()),
        });
        let (stop, mut stopped) = oneshot::channel::<()>();
        let (closed_tx, closed) = watch::channel(false);
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let state = Arc::clone(&serving);
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |request| {
                                let state = Arc::clone(&state);
                                async move { Ok::<_, Infallible>(answer(&state, request).await) }
                            });
                            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                }
            }
            // Stopping the origin drops every connection: the port refuses from now on.
            drop(listener);
            connections.shutdown().await;
            closed_tx.send_replace(true);
        });
        Self {
            addr,
            state,
            stop: Some(stop),
            closed,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("seen").clone()
    }

    /// How many requests for `path` (path and query) arrived.
    pub fn count(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    /// The most requests for `path` that were being answered at the same time.
    pub fn max_concurrency(&self, path: &str) -> usize {
        self.state
            .in_flight
            .lock()
            .expect("in flight")
            .get(path)
            .map_or(0, |(_, max)| *max)
    }

    /// Waits until at least `n` requests have arrived in total.
    pub async fn arrivals(&self, n: usize) {
        let mut arrivals = self.state.arrivals.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            arrivals.wait_for(|seen| *seen >= n),
        )
        .await
        .expect("origin requests did not arrive in time")
        .expect("origin alive");
    }

    /// Stops serving: later connections are refused.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops serving and waits until the listener and every open connection are closed, so
    /// that no request sent afterwards can still reach the origin.
    pub async fn shut_down(&mut self) {
        self.stop();
        tokio::time::timeout(
            Duration::from_secs(10),
            self.closed.wait_for(|closed| *closed),
        )
        .await
        .expect("origin did not shut down in time")
        .expect("origin task alive");
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(state: &OriginState, request: Request<Incoming>) -> Response<OriginBody> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let mut seen = Seen {
        method: parts.method,
        path: path.clone(),
        headers: parts.headers,
        body,
        answered_at: None,
    };
    let (index, sequence) = {
        let mut all = state.seen.lock().expect("seen");
        let sequence = all.iter().filter(|s| s.path == path).count() + 1;
        all.push(seen.clone());
        (all.len() - 1, sequence)
    };
    state.arrivals.send_modify(|n| *n += 1);
    let reply = (state.script)(&seen, sequence);
    {
        let mut in_flight = state.in_flight.lock().expect("in flight");
        let entry = in_flight.entry(path.clone()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
    }
    if let Some(gate) = &reply.gate {
        gate.passed().await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some((current, _)) = state.in_flight.lock().expect("in flight").get_mut(&path) {
        *current -= 1;
    }
    seen.answered_at = Some(Instant::now());
    state.seen.lock().expect("seen")[index].answered_at = seen.answered_at;
    let mut response = Response::new(OriginBody::new(reply.body, reply.chunked));
    *response.status_mut() = reply.status;
    for (name, value) in reply.headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(&value).expect("header value"),
        );
    }
    response
}

// === sidecache ===

/// A sidecache running in-process, exactly as the binary runs it.
pub struct Sidecache {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    pub writebehind: Arc<WriteBehind>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Drained>>,
    /// Holds this instance's write-behind recovery file (unless the test named its own): every
    /// sidecache replays and removes the file at its start, so a shared one would hand what one
    /// test spilled to another test running at the same time.
    _recovery: Option<TempDir>,
}

impl Sidecache {
    /// Starts sidecache in front of `origin` with extra command-line flags.
    pub async fn start(origin: &str, flags: &[&str]) -> Self {
        let (config, recovery) = Self::config(origin, flags);
        Self::run(App::bind(&config).await.expect("bind sidecache"), recovery)
    }

    /// Starts sidecache with tracing as `flags` configure it (`--otlp-endpoint` and so on). Its
    /// spans and logs go through a subscriber scoped to this thread for as long as the returned
    /// guard lives, so the test must run on a current-thread runtime (`#[tokio::test]`).
    pub async fn start_traced(
        origin: &str,
        flags: &[&str],
    ) -> (Self, tracing::subscriber::DefaultGuard) {
        let (config, recovery) = Self::config(origin, flags);
        let tracing = Tracing::start(&config.tracing).expect("start the span pipeline");
        assert!(tracing.is_enabled(), "tracing needs --otlp-endpoint");
        let subscriber = telemetry::subscriber(&config.log, &tracing, None).expect("subscriber");
        let guard = tracing::subscriber::set_default(subscriber);
        let app = App::bind_with(&config, tracing)
            .await
            .expect("bind sidecache");
        (Self::run(app, recovery), guard)
    }

    /// The configuration `flags` give, with the directory of its own recovery file when the
    /// flags name none.
    fn config(origin: &str, flags: &[&str]) -> (Config, Option<TempDir>) {
        let recovery = (!flags
            .iter()
            .any(|flag| flag.starts_with("--writebehind-recovery-file")))
        .then(|| TempDir::new("recovery"));
        let recovery_file = recovery
            .as_ref()
            .map(|dir| dir.0.join("recovery.json").display().to_string());
        let mut args = vec![
            "sidecache",
            "--origin",
            origin,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            // No counters file in the working directory; tests that need one pass their own.
            "--writebehind-sink",
            "sqlite::memory:",
        ];
        if let Some(file) = &recovery_file {
            args.extend(["--writebehind-recovery-file", file]);
        }
        args.extend_from_slice(flags);
        let config = Config::load_from(args, &HashMap::<String, String>::new()).expect("config");
        (config, recovery)
    }

    pub async fn start_with(config: &Config) -> Self {
        Self::run(App::bind(config).await.expect("bind sidecache"), None)
    }

    fn run(app: App, recovery: Option<TempDir>) -> Self {
        let proxy_addr = app.proxy_addr();
        let admin_addr = app.admin_addr();
        let proxy = Arc::clone(app.proxy());
        let writebehind = Arc::clone(app.writebehind());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            proxy_addr,
            admin_addr,
            proxy,
            writebehind,
            stop: Some(stop),
            task: Some(task),
            _recovery: recovery,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy_addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// Signals shutdown and waits for the drain.
    pub async fn stop(mut self) -> Drained {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .take()
            .expect("running")
            .await
            .expect("sidecache task")
    }

    /// Scrapes `GET /metrics` on the admin port.
    pub async fn metrics(&self) -> Scrape {
        let got = TestClient::new().get(&self.admin_url("/metrics")).await;
        assert_eq!(got.status, 200, "metrics scrape");
        Scrape::parse(&got.text())
    }

    /// Waits until sidecache has at least `n` requests in flight.
    pub async fn in_flight(&self, n: usize) {
        wait_until(|| self.proxy.in_flight_requests() >= n).await;
    }
}

/// Sends `raw` on a fresh connection to `addr` and reads until the peer closes (at most 5 s).
pub async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the connection is closed after the answer")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Waits (up to 10 s) for a condition that has no signal of its own, checking every millisecond.
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Scrapes `sidecache` until `series` has `value`, at most 10 s: for what follows tasks that end
/// on their own (connections, the end of a response body the client has already read).
pub async fn wait_for_value(sidecache: &Sidecache, series: &str, value: f64) {
    wait_for_value_at(sidecache.admin_addr, series, value).await;
}

/// Like [`wait_for_value`], for the sidecache whose admin port is `admin` (a child process).
pub async fn wait_for_value_at(admin: SocketAddr, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = TestClient::new()
            .get(&format!("http://{admin}/metrics"))
            .await;
        assert_eq!(got.status, 200, "metrics scrape");
        let now = Scrape::parse(&got.text()).value(series);
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

// === client ===

/// A response, read whole.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn cache_status(&self) -> &str {
        self.header("cache-status")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a request that did not produce a whole response failed.
#[derive(Debug)]
pub enum Failed {
    /// No response head arrived.
    NoResponse(String),
    /// The head arrived, the body broke off after `received` bytes.
    Body {
        status: StatusCode,
        received: usize,
        error: String,
    },
}

/// A pooled test client.
#[derive(Clone)]
pub struct TestClient(Client<HttpConnector, Full<Bytes>>);

impl TestClient {
    pub fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    pub async fn get(&self, url: &str) -> Got {
        self.send(Method::GET, url, &[], Bytes::new()).await
    }

    pub async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Got {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Got {
        match self.try_send(method, url, headers, body).await {
            Ok(got) => got,
            Err(Failed::NoResponse(error)) => panic!("response: {error}"),
            Err(Failed::Body { error, .. }) => panic!("body: {error}"),
        }
    }

    /// Like [`send`](Self::send), but a response or body that breaks off is returned as an
    /// error instead of panicking (for tests of broken origins).
    pub async fn try_send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Got, Failed> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(30), self.0.request(request))
            .await
            .expect("response in time")
            .map_err(|error| Failed::NoResponse(error.to_string()))?;
        let (parts, mut body) = response.into_parts();
        let mut received = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(30), body.frame())
                .await
                .expect("body in time")
            {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        received.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => {
                    return Err(Failed::Body {
                        status: parts.status,
                        received: received.len(),
                        error: error.to_string(),
                    });
                }
            }
        }
        Ok(Got {
            status: parts.status,
            headers: parts.headers,
            body: received.into(),
        })
    }
}

// === metrics ===

/// A parsed Prometheus text exposition: every sample by its series (`name{labels}` exactly as
/// exposed).
#[derive(Debug)]
pub struct Scrape {
    pub samples: HashMap<String, f64>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                (series.to_owned(), value.parse().expect("a sample value"))
            })
            .collect();
        Self {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of one series; panics if it is not exposed.
    pub fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} is not exposed"))
    }
}

// === external tools ===

/// The path of an external program a test needs (e.g. `promtool`). In CI (`CI=true`) a missing
/// program fails the test; elsewhere the test is skipped with a loud message.
pub fn require_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        missing_component(name, "scripts/install-test-deps installs it");
    }
    found
}

/// Whether the tests run under CI (`CI=true`), where every component they need must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `what`, which a test needs, is missing: in CI that fails the test; elsewhere the caller skips
/// it, and this says so loudly, with `remedy`.
pub fn missing_component(what: &str, remedy: &str) {
    assert!(!in_ci(), "{what} is required in CI; {remedy}");
    eprintln!("SKIPPED: {what} is missing ({remedy})");
}

/// A fresh, empty temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sidecache-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago (for external programs that cannot report the
/// port they bound).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
