//! The `sidecache` binary as a user runs it: the demo with no origin, SIGTERM, bad configuration,
//! tracing configured by the standard OpenTelemetry variables.

use crate::support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use std::thread::JoinHandle;

use support::otlp::{Receiver, Spans};
use support::{Gate, Reply, TestClient, TestOrigin};

/// Starts the binary with JSON logs and returns it with the proxy and admin addresses it logged.
fn start(args: &[&str]) -> (Child, SocketAddr, SocketAddr) {
    let (child, proxy, admin, _log) = start_logged(args, &[]);
    (child, proxy, admin)
}

/// The flags of every logged start: ports the system chooses, JSON logs, counters in memory.
fn logged<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-level",
        "info",
        "--writebehind-sink",
        "sqlite::memory:",
    ];
    all.extend_from_slice(args);
    all
}

/// Like [`start`], with environment variables, and with the rest of its log: every line after
/// the listening line, once the process has exited.
fn start_logged(
    args: &[&str],
    vars: &[(&str, &str)],
) -> (Child, SocketAddr, SocketAddr, JoinHandle<Vec<String>>) {
    let mut child = spawn(&logged(args), vars);
    let listening = support::binary::listening(&mut child);
    (child, listening.proxy, listening.admin, listening.log)
}

/// Like [`start_logged`], with what the binary writes to stdout (its access log), every line
/// of it once the process has exited.
fn start_with_stdout(args: &[&str]) -> (Child, SocketAddr, SocketAddr, JoinHandle<Vec<String>>) {
    let mut child = command(&logged(args), &[])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sidecache");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::thread::spawn(move || {
        std::io::BufRead::lines(std::io::BufReader::new(stdout))
            .map_while(Result::ok)
            .collect()
    });
    let listening = support::binary::listening(&mut child);
    (child, listening.proxy, listening.admin, lines)
}

/// Spawns the binary with `args` and `vars` and no other `SIDECACHE_*` variable (nor
/// `RUST_LOG`) from the test's environment, its stderr piped.
fn spawn(args: &[&str], vars: &[(&str, &str)]) -> Child {
    command(args, vars).spawn().expect("spawn sidecache")
}

/// The command [`spawn`] runs.
fn command(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sidecache"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SIDECACHE_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env_remove("RUST_LOG")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn terminate(child: &mut Child) -> i32 {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("wait").code().expect("an exit code")
}

#[tokio::test]
async fn with_no_origin_the_demo_runs_and_sigterm_exits_cleanly() {
    let (mut child, proxy, admin) = start(&[]);
    let client = TestClient::new();
    let url = format!("http://{proxy}/slow/1?delay_ms=20");
    let first = client.get(&url).await;
    assert_eq!(first.status, 200);
    assert!(
        first.cache_status().contains("fwd=uri-miss"),
        "{}",
        first.cache_status()
    );
    let second = client.get(&url).await;
    assert!(
        second.cache_status().contains("; hit"),
        "{}",
        second.cache_status()
    );
    assert_eq!(second.body, first.body);
    let ready = client.get(&format!("http://{admin}/readyz")).await;
    assert_eq!(ready.status, 200);
    assert_eq!(terminate(&mut child), 0);
}

#[test]
fn a_bad_configuration_exits_64_and_names_every_problem() {
    let output = Command::new(env!("CARGO_BIN_EXE_sidecache"))
        .args(["--cache-capacity", "12XB", "--origin-timeout", "0s"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run sidecache");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cache-capacity"), "{stderr}");
}

#[test]
fn bad_freshness_rules_and_an_origin_with_a_query_exit_64_naming_each() {
    let output = Command::new(env!("CARGO_BIN_EXE_sidecache"))
        .args(["--origin", "http://127.0.0.1:9/api/?debug=1"])
        .env("SIDECACHE_TTL_OVERRIDES", "/api/=30s; static/=1d,force")
        .env_remove("RUST_LOG")
        .output()
        .expect("run sidecache");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SIDECACHE_TTL_OVERRIDES")
            && stderr.contains("rule \"static/=1d,force\": the prefix must be a path"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--origin") && stderr.contains("must not have a query"),
        "{stderr}"
    );
}

/// An admin port other hosts can reach, with no token, would open purges and counters to the
/// network: refused before any port is bound, unless `--admin-insecure true` says so.
#[test]
fn an_admin_port_open_to_the_network_without_a_token_exits_64() {
    let (code, stderr) = run_to_exit(
        &["--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"],
        &[],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("admin-listen"), "{stderr}");
    assert!(stderr.contains("--admin-token"), "{stderr}");
}

#[test]
fn configuration_comes_from_the_environment_too() {
    let output = Command::new(env!("CARGO_BIN_EXE_sidecache"))
        .env("SIDECACHE_ORIGIN", "ftp://example.com")
        .env_remove("RUST_LOG")
        .output()
        .expect("run sidecache");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SIDECACHE_ORIGIN"), "{stderr}");
}

#[tokio::test]
async fn otel_variables_turn_tracing_on_and_sigterm_flushes_the_spans() {
    let Some(receiver) = Receiver::start().await else {
        return;
    };
    let (origin, gate) = origin_holding_left("body").await;
    let endpoint = receiver.endpoint("grpc");
    let (mut child, proxy, admin, log) = start_logged(
        &[
            "--origin",
            &origin.url(),
            "--log-level",
            "info,sidecache::access=debug",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "sidecache-binary"),
            // An hour: only the flush at SIGTERM sends the spans.
            ("OTEL_BSP_SCHEDULE_DELAY", "3600000"),
        ],
    );
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let got = TestClient::new()
        .get_with(
            &format!("http://{proxy}/traced"),
            &[("traceparent", &format!("00-{trace_id}-b7ad6b7169203331-01"))],
        )
        .await;
    assert_eq!(got.status, 200);
    // A request its client leaves before the answer.
    let left_trace = "0af7651916cd43dd8448eb211c80319d";
    let traceparent = format!("traceparent: 00-{left_trace}-b7ad6b7169203331-01\r\n");
    leave_before_the_answer(proxy, admin, &origin, &traceparent).await;
    gate.open();
    assert_eq!(terminate(&mut child), 0);
    let spans = receiver.stop().await;

    let server = spans.server(trace_id);
    assert_eq!(server.service_name(), "sidecache-binary");
    assert_eq!(server.attr("cache.result"), "miss");
    spans.child(spans.child(server, "cache load"), "GET");
    let traceparent = origin.seen()[0].headers["traceparent"].clone();
    assert!(
        traceparent
            .to_str()
            .is_ok_and(|value| value.starts_with(&format!("00-{trace_id}-"))),
        "{traceparent:?}"
    );

    // The access line carries the trace.
    let log = log.join().expect("log reader");
    let access = log
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry["target"] == "sidecache::access")
        .unwrap_or_else(|| panic!("no access line in {log:#?}"));
    assert_eq!(access["trace_id"], trace_id, "{access}");
    assert_eq!(access["span_id"], server.span_id(), "{access}");

    // The request left unanswered has its line, and its span failed with how it ended.
    let left = spans.server(left_trace);
    assert_eq!(left.attr("error.type"), "client_closed");
    assert_eq!(left.status(), "error");
    assert!(left.attr("http.response.status_code").is_null());
    let unanswered = log
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry["fields"]["message"] == "request unanswered")
        .unwrap_or_else(|| panic!("no unanswered access line in {log:#?}"));
    assert_eq!(unanswered["target"], "sidecache::access", "{unanswered}");
    assert_eq!(
        unanswered["fields"]["ended"], "client_closed",
        "{unanswered}"
    );
    assert_eq!(unanswered["fields"]["path"], "/left", "{unanswered}");
    assert_eq!(unanswered["trace_id"], left_trace, "{unanswered}");
}

/// The JSON log lines of `log` on `target`.
fn lines_on(log: &[String], target: &str) -> Vec<serde_json::Value> {
    log.iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["target"] == target)
        .collect()
}

#[tokio::test]
async fn each_failed_origin_request_is_one_warning_naming_the_origin_the_key_and_the_cause() {
    // Nothing listens on the origin's port: every connection is refused.
    let origin = format!("http://127.0.0.1:{}", support::free_port());
    let (mut child, proxy, _admin, log) = start_logged(&["--origin", &origin], &[]);
    let client = TestClient::new();
    let loaded = client.get(&format!("http://{proxy}/a?x=1")).await;
    assert_eq!(loaded.status, 502);
    let forwarded = client
        .send(
            http::Method::POST,
            &format!("http://{proxy}/b"),
            &[],
            bytes::Bytes::from_static(b"form"),
        )
        .await;
    assert_eq!(forwarded.status, 502);
    assert_eq!(terminate(&mut child), 0);

    let log = log.join().expect("log reader");
    let failures = lines_on(&log, "sidecache::origin");
    let keys: Vec<_> = failures.iter().map(|line| &line["fields"]["key"]).collect();
    assert_eq!(
        keys,
        [&format!("{proxy}/a?x=1"), &format!("{proxy}/b")],
        "{log:#?}"
    );
    for line in &failures {
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["fields"]["message"], "origin request failed", "{line}");
        assert_eq!(line["fields"]["origin"], format!("{origin}/"), "{line}");
        assert_eq!(line["fields"]["error"], "origin-connect-failed", "{line}");
        let cause = line["fields"]["cause"].as_str().unwrap_or_default();
        assert!(cause.to_lowercase().contains("refused"), "{line}");
    }
}

#[tokio::test]
async fn a_load_many_clients_wait_on_fails_with_one_warning() {
    let gate = Gate::new();
    let held = gate.clone();
    let origin = TestOrigin::start(move |_, _| Reply::ok("late").gated(&held)).await;
    let (mut child, proxy, admin, log) =
        start_logged(&["--origin", &origin.url(), "--origin-timeout", "2s"], &[]);
    let url = format!("http://{proxy}/slow");
    let first = tokio::spawn({
        let url = url.clone();
        async move { TestClient::new().get(&url).await.status }
    });
    origin.arrivals(1).await;
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { TestClient::new().get(&url).await.status })
        })
        .collect();
    support::wait_for_value_at(admin, "sidecache_coalesce_waiting", 4.0).await;
    for answer in std::iter::once(first).chain(waiters) {
        assert_eq!(answer.await.expect("client"), 504);
    }
    gate.open();
    assert_eq!(terminate(&mut child), 0);

    let log = log.join().expect("log reader");
    let failures = lines_on(&log, "sidecache::origin");
    assert_eq!(failures.len(), 1, "{log:#?}");
    assert_eq!(failures[0]["fields"]["error"], "origin-timeout");
    assert_eq!(failures[0]["fields"]["key"], format!("{proxy}/slow"));
    assert_eq!(origin.count("/slow"), 1);
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_with_what_was_sent() {
    let (origin, gate) = origin_holding_left("0123456789").await;
    let (mut child, proxy, admin, stdout) =
        start_with_stdout(&["--origin", &origin.url(), "--access-log", "json"]);
    let client = TestClient::new();
    let url = format!("http://{proxy}/page?x=1");
    let headers = [
        ("referer", "http://shop.test/"),
        ("user-agent", "probe/1.0"),
    ];
    for _ in 0..2 {
        assert_eq!(client.get_with(&url, &headers).await.status, 200);
    }
    leave_before_the_answer(proxy, admin, &origin, "").await;
    gate.open();
    assert_eq!(terminate(&mut child), 0);

    let lines = stdout.join().expect("stdout reader");
    let entries: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(entries.len(), 3, "{lines:#?}");
    let (miss, hit, unanswered) = (&entries[0], &entries[1], &entries[2]);
    for entry in [miss, hit] {
        assert_eq!(entry["remote_addr"], "127.0.0.1", "{entry}");
        assert_eq!(entry["request_method"], "GET", "{entry}");
        assert_eq!(entry["request_uri"], "/page?x=1", "{entry}");
        assert_eq!(entry["server_protocol"], "HTTP/1.1", "{entry}");
        assert_eq!(entry["status"], 200, "{entry}");
        assert_eq!(entry["body_bytes_sent"], 10, "{entry}");
        assert_eq!(entry["http_referer"], "http://shop.test/", "{entry}");
        assert_eq!(entry["http_user_agent"], "probe/1.0", "{entry}");
        assert_eq!(entry["host"], proxy.to_string(), "{entry}");
        assert_eq!(entry["ended"], "completed", "{entry}");
        assert!(entry["request_time"].is_f64(), "{entry}");
        assert!(entry["trace_id"].is_null(), "tracing is off: {entry}");
    }
    let cache_status =
        |entry: &serde_json::Value| entry["cache_status"].as_str().map(str::to_owned);
    assert!(
        cache_status(miss).is_some_and(|status| status.contains("fwd=uri-miss")),
        "{miss}"
    );
    assert!(miss["upstream_time"].is_f64(), "{miss}");
    assert!(
        cache_status(hit).is_some_and(|status| status.starts_with("sidecache; hit")),
        "{hit}"
    );
    assert!(hit["upstream_time"].is_null(), "{hit}");
    assert_eq!(unanswered["request_uri"], "/left", "{unanswered}");
    assert!(unanswered["status"].is_null(), "{unanswered}");
    assert_eq!(unanswered["body_bytes_sent"], 0, "{unanswered}");
    assert_eq!(unanswered["ended"], "client_closed", "{unanswered}");
}

#[tokio::test]
async fn the_access_log_is_off_by_default() {
    let origin = TestOrigin::start(|_, _| Reply::ok("body")).await;
    let (mut child, proxy, _admin, stdout) = start_with_stdout(&["--origin", &origin.url()]);
    let got = TestClient::new().get(&format!("http://{proxy}/page")).await;
    assert_eq!(got.status, 200);
    assert_eq!(terminate(&mut child), 0);
    let lines = stdout.join().expect("stdout reader");
    assert!(lines.is_empty(), "{lines:#?}");
}

/// An origin that answers `body` (fresh for a minute) at once, but holds its answer to `/left`
/// until the gate opens.
async fn origin_holding_left(body: &'static str) -> (TestOrigin, Gate) {
    let gate = Gate::new();
    let held = gate.clone();
    let origin = TestOrigin::start(move |seen, _| {
        Reply::ok(body)
            .header("cache-control", "max-age=60")
            .gated_if(seen.path == "/left", &held)
    })
    .await;
    (origin, gate)
}

/// Sends `GET /left` (with `fields`, each ending in CRLF) to `proxy` as the origin's second
/// request, and leaves before the answer; returns once the proxy counted it `client_closed`.
async fn leave_before_the_answer(
    proxy: SocketAddr,
    admin: SocketAddr,
    origin: &TestOrigin,
    fields: &str,
) {
    let mut left = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    let head = format!("GET /left HTTP/1.1\r\nHost: binary.test\r\n{fields}\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut left, head.as_bytes())
        .await
        .expect("write");
    origin.arrivals(2).await;
    drop(left);
    let client_closed = "sidecache_requests_ended_total{outcome=\"client_closed\"}";
    support::wait_for_value_at(admin, client_closed, 1.0).await;
}

#[tokio::test]
async fn a_text_access_line_is_nginx_combined_followed_by_the_cache_fields() {
    let origin = TestOrigin::start(|_, _| Reply::ok("text")).await;
    let (mut child, proxy, _admin, stdout) =
        start_with_stdout(&["--origin", &origin.url(), "--access-log", "text"]);
    let got = TestClient::new()
        .get_with(
            &format!("http://{proxy}/t?q=1"),
            &[("user-agent", "probe \"2\"")],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(terminate(&mut child), 0);
    let lines = stdout.join().expect("stdout reader");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    let (combined, cache_fields) = line.split_once("] ").expect("a bracketed time");
    assert!(combined.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        cache_fields.starts_with(&format!(
            "\"GET /t?q=1 HTTP/1.1\" 200 4 \"-\" \"probe \\x222\\x22\" host=\"{proxy}\" cache_status=\""
        )),
        "{line}"
    );
    assert!(cache_fields.contains(" request_time="), "{line}");
    assert!(
        cache_fields.ends_with(" ended=completed trace_id=-"),
        "{line}"
    );
    assert!(!line.contains('\x1b'), "no colour codes: {line:?}");
}

#[tokio::test]
async fn an_access_line_counts_the_bytes_sent_before_the_body_broke_off() {
    use support::fault_origin::{Answer, Behaviour, FaultOrigin};
    let origin = FaultOrigin::start(|_| Behaviour::ShortBody {
        answer: Answer::ok(vec![b'x'; 1000]).header("cache-control", "no-store"),
        sent: 100,
    })
    .await;
    let (mut child, proxy, _admin, stdout) =
        start_with_stdout(&["--origin", &origin.url(), "--access-log", "json"]);
    let got = TestClient::new()
        .try_send(
            http::Method::GET,
            &format!("http://{proxy}/short"),
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert!(got.is_err(), "the body broke off");
    assert_eq!(terminate(&mut child), 0);
    let lines = stdout.join().expect("stdout reader");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let entry: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
    assert_eq!(entry["status"], 200, "{entry}");
    assert_eq!(entry["body_bytes_sent"], 100, "{entry}");
    assert_eq!(entry["ended"], "body_aborted", "{entry}");
}

/// Runs the binary to its exit with `args` (after a loopback admin port) and `vars`, at most 10 s: a binary that starts instead of refusing is killed
/// and the test fails.
fn run_to_exit(args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
    let mut all = vec!["--admin-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let child = spawn(&all, vars);
    let pid = child.id().to_string();
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait_with_output()));
    let Ok(output) = exit.recv_timeout(std::time::Duration::from_secs(10)) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("sidecache started with {args:?} {vars:?}, where it should have refused");
    };
    let output = output.expect("wait for sidecache");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().expect("an exit code"), stderr)
}

/// A container without `SIDECACHE_ORIGIN` (a typo, a variable that did not render) must not
/// serve demo pages on a port other hosts reach.
#[test]
fn no_origin_on_a_listener_other_hosts_reach_exits_64_naming_the_origin() {
    let (code, stderr) = run_to_exit(&[], &[("SIDECACHE_LISTEN", "0.0.0.0:0")]);
    let (flag_code, flag_stderr) = run_to_exit(&["--listen", "0.0.0.0:0"], &[]);
    for (code, stderr) in [(code, stderr), (flag_code, flag_stderr)] {
        assert_eq!(code, 64, "{stderr}");
        assert!(
            stderr.contains("--origin: not set (SIDECACHE_ORIGIN)"),
            "{stderr}"
        );
        assert!(stderr.contains("--demo"), "{stderr}");
    }
}

#[tokio::test]
async fn demo_serves_the_demo_on_a_listener_other_hosts_reach() {
    let (mut child, proxy, _admin) = start(&["--demo", "--listen", "0.0.0.0:0"]);
    assert!(proxy.ip().is_unspecified(), "{proxy}");
    let local = SocketAddr::from(([127, 0, 0, 1], proxy.port()));
    let got = TestClient::new()
        .get(&format!("http://{local}/slow/1?delay_ms=1"))
        .await;
    assert_eq!(got.status, 200);
    assert!(
        got.body.starts_with(b"slow resource /slow/1"),
        "{:?}",
        got.body
    );
    assert_eq!(terminate(&mut child), 0);
}

/// A mistyped variable is refused, as a mistyped file key is, rather than silently ignored.
#[test]
fn an_unknown_sidecache_variable_exits_64_naming_it_and_the_closest_known_one() {
    let (code, stderr) = run_to_exit(
        &["--listen", "127.0.0.1:0"],
        &[("SIDECACHE_ORIGN", "http://127.0.0.1:9000")],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.contains(
            "SIDECACHE_ORIGN: not a variable sidecache reads; the closest is SIDECACHE_ORIGIN"
        ),
        "{stderr}"
    );
}

/// Counters kept in memory by default: a run in a read-only directory (Kubernetes'
/// `readOnlyRootFilesystem`) starts, and no run leaves files behind.
#[tokio::test]
async fn by_default_no_file_is_written_in_the_working_directory() {
    let dir = support::TempDir::new("working-directory");
    let mut child = command(
        &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        &[],
    )
    .args(["--log-format", "json", "--log-level", "info"])
    .current_dir(&dir.0)
    .spawn()
    .expect("spawn sidecache");
    let listening = support::binary::listening(&mut child);
    let client = TestClient::new();
    let page = client
        .get(&format!("http://{}/slow/1?delay_ms=1", listening.proxy))
        .await;
    assert_eq!(page.status, 200);
    let counted = client
        .send(
            http::Method::POST,
            &format!("http://{}/v1/counters/views?delta=2", listening.admin),
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(counted.status, 200, "{:?}", counted.body);
    let read = client
        .get(&format!("http://{}/v1/counters/views", listening.admin))
        .await;
    assert!(
        String::from_utf8_lossy(&read.body).contains("\"value\":2"),
        "{:?}",
        read.body
    );
    assert_eq!(terminate(&mut child), 0);
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("read the working directory")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "sidecache left {left:?} behind");
}

/// A configured file that cannot be written stops the start, naming it, before any port
/// serves: here under a path whose "directory" is a file, which no user can write into.
#[test]
fn an_unwritable_counters_file_or_recovery_file_exits_64_naming_it() {
    let dir = support::TempDir::new("unwritable");
    let not_a_directory = dir.0.join("plain-file");
    std::fs::write(&not_a_directory, "").expect("write a plain file");
    let counters = not_a_directory.join("counters.db").display().to_string();
    let recovery = not_a_directory
        .join("writebehind.recovery")
        .display()
        .to_string();
    for (flag, value) in [
        ("--writebehind-sink", format!("sqlite:{counters}")),
        ("--writebehind-recovery-file", recovery.clone()),
    ] {
        let (code, stderr) = run_to_exit(&["--listen", "127.0.0.1:0", flag, &value], &[]);
        assert_eq!(code, 64, "{flag}: {stderr}");
        let path = if flag == "--writebehind-sink" {
            &counters
        } else {
            &recovery
        };
        assert!(stderr.contains(path.as_str()), "{flag}: {stderr}");
    }
}

/// A port already taken is a configuration error like any other: exit 64, naming the option.
#[test]
fn a_port_in_use_exits_64_naming_the_flag_and_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    for flag in ["--listen", "--admin-listen"] {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend([flag, addr.as_str()]);
        let (code, stderr) = run_to_exit(&args, &[]);
        assert_eq!(code, 64, "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} {addr}: cannot listen there")),
            "{flag}: {stderr}"
        );
        assert!(stderr.contains("choose a free port"), "{stderr}");
    }
}

/// The spellings an nginx user reaches for start the binary.
#[tokio::test]
async fn host_names_nginx_sizes_and_bare_seconds_are_accepted() {
    let (mut child, proxy, _admin) = start(&[
        "--listen",
        "localhost:0",
        "--cache-capacity",
        "64M",
        "--origin-timeout",
        "30",
    ]);
    assert_eq!(proxy.ip().to_string(), "127.0.0.1");
    assert_eq!(terminate(&mut child), 0);
}

/// `--version` says which source and profile the binary was built from, as git reports them.
#[test]
fn version_prints_the_git_commit_and_the_build_profile() {
    let output = command(&["--version"], &[])
        .stdout(Stdio::piped())
        .output()
        .expect("run sidecache");
    assert_eq!(output.status.code(), Some(0));
    let version = String::from_utf8_lossy(&output.stdout).into_owned();
    let Ok(head) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
    else {
        return support::missing_component("git", "to compare the commit --version prints");
    };
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert!(
        version.starts_with(&format!("sidecache 0.1.0 (commit {head}")),
        "{version} (HEAD is {head})"
    );
    assert!(version.trim_end().ends_with(", debug)"), "{version}");
}
