//! The `sidecache` binary as a user runs it: the demo with no origin, SIGTERM, bad configuration.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use support::TestClient;

/// Starts the binary with JSON logs and returns it with the proxy and admin addresses it logged.
fn start(args: &[&str]) -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidecache"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--log-format", "json", "--log-level", "info"])
        .args(["--writebehind-sink", "sqlite::memory:"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sidecache");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let listening = loop {
        let line = lines
            .next()
            .expect("sidecache exited before listening")
            .expect("read log");
        let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        if entry["fields"]["message"] == "sidecache listening" {
            break entry;
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = |name: &str| {
        listening["fields"][name]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("an address in the log")
    };
    (child, addr("proxy"), addr("admin"))
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
