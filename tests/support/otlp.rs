//! A real OTLP receiver for the tracing tests: `tests/otlp/receiver.py`, started on free loopback
//! ports, built on the official OTLP protobuf definitions (`opentelemetry-proto`) with gRPC and
//! HTTP protobuf endpoints. Every span it receives comes back as a [`Span`].
//!
//! The receiver writes a span before it answers the export that carried it, so once sidecache's
//! exporter has flushed, [`Receiver::stop`] (close stdin, read to the end) sees every span.
//!
//! Python: `TEST_SIDECACHE_PYTHON` (scripts/test points it at the venv it installs the receiver's
//! requirements into), else `target/otlp-venv/bin/python`, else `python3`. Under CI (`CI=true`)
//! a receiver that cannot start fails the test; elsewhere the test is skipped with a loud note.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// One received span, as the receiver wrote it.
#[derive(Debug, Clone)]
pub struct Span(pub Value);

impl Span {
    pub fn name(&self) -> &str {
        self.0["name"].as_str().unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.0["kind"].as_str().unwrap_or("")
    }

    pub fn trace_id(&self) -> &str {
        self.0["trace_id"].as_str().unwrap_or("")
    }

    pub fn span_id(&self) -> &str {
        self.0["span_id"].as_str().unwrap_or("")
    }

    pub fn parent_span_id(&self) -> &str {
        self.0["parent_span_id"].as_str().unwrap_or("")
    }

    pub fn service_name(&self) -> &str {
        self.0["service_name"].as_str().unwrap_or("")
    }

    pub fn status(&self) -> &str {
        self.0["status"].as_str().unwrap_or("")
    }

    /// An attribute's value (`Null` when absent).
    pub fn attr(&self, key: &str) -> &Value {
        &self.0["attributes"][key]
    }

    /// The (trace id, span id) of each link.
    pub fn links(&self) -> Vec<(String, String)> {
        self.0["links"]
            .as_array()
            .map(|links| {
                links
                    .iter()
                    .map(|link| {
                        (
                            link["trace_id"].as_str().unwrap_or("").to_owned(),
                            link["span_id"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Spans, searchable.
pub trait Spans {
    /// Every span named `name` in trace `trace_id`.
    fn named<'a>(&'a self, trace_id: &str, name: &str) -> Vec<&'a Span>;
    /// The one server span in `trace_id`.
    fn server(&self, trace_id: &str) -> &Span;
    /// The spans whose parent is `parent`.
    fn children_of<'a>(&'a self, parent: &Span) -> Vec<&'a Span>;
    /// The names of the spans whose parent is `parent`.
    fn child_names<'a>(&'a self, parent: &Span) -> Vec<&'a str>;
    /// The one child of `parent` named `name`.
    fn child(&self, parent: &Span, name: &str) -> &Span;
}

impl Spans for [Span] {
    fn named<'a>(&'a self, trace_id: &str, name: &str) -> Vec<&'a Span> {
        self.iter()
            .filter(|span| span.trace_id() == trace_id && span.name() == name)
            .collect()
    }

    fn server(&self, trace_id: &str) -> &Span {
        let servers: Vec<_> = self
            .iter()
            .filter(|span| span.trace_id() == trace_id && span.kind() == "server")
            .collect();
        match servers.as_slice() {
            [span] => span,
            other => panic!(
                "expected one server span in trace {trace_id}, found {}: {self:#?}",
                other.len()
            ),
        }
    }

    fn children_of<'a>(&'a self, parent: &Span) -> Vec<&'a Span> {
        self.iter()
            .filter(|span| {
                span.trace_id() == parent.trace_id() && span.parent_span_id() == parent.span_id()
            })
            .collect()
    }

    fn child_names<'a>(&'a self, parent: &Span) -> Vec<&'a str> {
        self.children_of(parent)
            .into_iter()
            .map(Span::name)
            .collect()
    }

    fn child(&self, parent: &Span, name: &str) -> &Span {
        match self
            .children_of(parent)
            .into_iter()
            .filter(|span| span.name() == name)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [span] => span,
            other => panic!(
                "expected one {name:?} child of {}, found {}: {self:#?}",
                parent.name(),
                other.len()
            ),
        }
    }
}

/// The receiver process.
pub struct Receiver {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub grpc_port: u16,
    pub http_port: u16,
    /// Spans read so far.
    pub spans: Vec<Span>,
}

impl Receiver {
    /// Starts the receiver. `None` means "skip this test": the receiver could not start and this
    /// is not CI.
    pub async fn start() -> Option<Self> {
        match Self::try_start().await {
            Ok(receiver) => Some(receiver),
            Err(problem) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("the OTLP test receiver must run under CI: {problem}")
            }
            Err(problem) => {
                // Straight to the process's stderr: the test harness captures `eprintln!`, and a
                // skip must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!!!!!!!\n!!! SKIPPED: the OTLP test receiver could not start: {problem}\n\
                     !!! run scripts/test (it installs tests/otlp/requirements.txt), or set\n\
                     !!! TEST_SIDECACHE_PYTHON to a Python with them installed\n!!!!!!!!\n"
                );
                None
            }
        }
    }

    async fn try_start() -> Result<Self, String> {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var("TEST_SIDECACHE_PYTHON")
            .map(PathBuf::from)
            .ok()
            .or_else(|| {
                let venv = manifest.join("target/otlp-venv/bin/python");
                venv.exists().then_some(venv)
            })
            .unwrap_or_else(|| PathBuf::from("python3"));
        let mut child = Command::new(&python)
            .arg(manifest.join("tests/otlp/receiver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("cannot run {}: {error}", python.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| "no ready line within 30 s".to_owned())?
            .map_err(|error| format!("reading its output: {error}"))?
            .ok_or_else(|| format!("{} exited before it was ready", python.display()))?;
        let ready: Value =
            serde_json::from_str(&first).map_err(|_| format!("unexpected first line {first:?}"))?;
        let port = |name: &str| {
            ready["ready"][name]
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
                .ok_or_else(|| format!("no {name} port in {first:?}"))
        };
        Ok(Self {
            grpc_port: port("grpc")?,
            http_port: port("http")?,
            child,
            lines,
            spans: Vec::new(),
        })
    }

    /// The endpoint to give sidecache for `protocol` (`grpc` or `http/protobuf`).
    pub fn endpoint(&self, protocol: &str) -> String {
        match protocol {
            "grpc" => format!("http://127.0.0.1:{}", self.grpc_port),
            _ => format!("http://127.0.0.1:{}", self.http_port),
        }
    }

    /// Reads spans until `done` holds for all read so far; panics after `within`.
    pub async fn wait_for(&mut self, within: Duration, done: impl Fn(&[Span]) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.spans) {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the receiver did not get the expected spans in {within:?}; got {:#?}",
                        self.spans
                    )
                })
                .expect("reading the receiver")
                .expect("the receiver exited early");
            self.spans.push(parse(&line));
        }
    }

    /// Stops the receiver and returns every span it received. Call it after sidecache has
    /// flushed: everything exported is in the pipe by then.
    pub async fn stop(mut self) -> Vec<Span> {
        drop(self.child.stdin.take());
        let read_all = async {
            while let Some(line) = self.lines.next_line().await.expect("reading the receiver") {
                self.spans.push(parse(&line));
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read_all)
            .await
            .expect("the receiver did not stop in 10 s");
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        self.spans
    }
}

fn parse(line: &str) -> Span {
    Span(serde_json::from_str(line).unwrap_or_else(|_| panic!("not a span: {line}")))
}
