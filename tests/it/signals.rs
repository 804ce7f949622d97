//! The binary's signals: a second SIGTERM or SIGINT during the drain stops the process at once;
//! SIGHUP reloads the configuration file.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use http::Method;

use crate::support::{self, Gate, Reply, TempDir, TestClient, TestOrigin};

/// A started binary: the child, its addresses and the rest of its log.
struct Started {
    child: Child,
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    log: JoinHandle<Vec<String>>,
}

/// Starts the binary in `dir` with JSON logs (at the default level), counters in a SQLite file there and `args`.
fn start_in(dir: &TempDir, args: &[&str]) -> Started {
    let sink = format!("sqlite:{}", dir.0.join("counts.db").display());
    let recovery = dir.0.join("recovery").display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidecache"))
        .current_dir(&dir.0)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .args([
            "--writebehind-sink",
            &sink,
            "--writebehind-recovery-file",
            &recovery,
        ])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("SIDECACHE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sidecache");
    let listening = support::binary::listening(&mut child);
    Started {
        child,
        proxy: listening.proxy,
        admin: listening.admin,
        log: listening.log,
    }
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The exit code, or `None` (and the child killed) if it has not exited within 10 s.
fn exit_code_within_10s(child: Child) -> Option<i32> {
    let pid = child.id().to_string();
    let (exited, exit) = mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        exited.send(child.wait())
    });
    match exit.recv_timeout(Duration::from_secs(10)) {
        Ok(status) => status.expect("wait").code(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            None
        }
    }
}

/// Waits until the admin port reports not-ready: the drain has begun.
async fn draining(admin: std::net::SocketAddr) {
    let client = TestClient::new();
    let readyz = format!("http://{admin}/readyz");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.get(&readyz).await.status != 503 {
        assert!(std::time::Instant::now() < deadline, "never draining");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn counter_in(db: &std::path::Path, name: &str) -> Option<i64> {
    let connection = rusqlite::Connection::open(db).expect("open the counters database");
    connection
        .query_row(
            "SELECT value FROM sidecache_counters WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .ok()
}

#[tokio::test]
async fn a_second_stop_signal_during_the_drain_exits_1_at_once_and_flushes_the_counters() {
    for (first, second) in [("TERM", "TERM"), ("TERM", "INT")] {
        let dir = TempDir::new("second-signal");
        let gate = Gate::new();
        let held = gate.clone();
        let origin = TestOrigin::start(move |_, _| Reply::ok("late").gated(&held)).await;
        // An hour: only a flush at exit can put the counts in the database.
        let Started {
            child,
            proxy,
            admin,
            log,
        } = start_in(
            &dir,
            &[
                "--origin",
                &origin.url(),
                "--shutdown-grace",
                "60s",
                "--writebehind-interval",
                "1h",
            ],
        );
        let client = TestClient::new();
        let counted = client
            .send(
                Method::POST,
                &format!("http://{admin}/v1/counters/visits?delta=5"),
                &[],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(counted.status, 200);
        // A request the origin never answers keeps the drain waiting for the whole grace.
        let in_flight = tokio::spawn({
            let url = format!("http://{proxy}/held");
            async move {
                TestClient::new()
                    .try_send(Method::GET, &url, &[], bytes::Bytes::new())
                    .await
            }
        });
        origin.arrivals(1).await;

        send_signal(&child, first);
        draining(admin).await;
        send_signal(&child, second);
        let code = tokio::task::spawn_blocking(move || exit_code_within_10s(child))
            .await
            .expect("waiter");
        assert_eq!(code, Some(1), "SIG{first} then SIG{second}");

        let log = log.join().expect("log reader");
        assert!(
            log.iter().any(|line| line.contains(&format!(
                "SIG{second} received again during the drain: exiting now"
            ))),
            "{log:#?}"
        );
        assert!(
            log.iter()
                .any(|line| line.contains("write-behind counters flushed")),
            "{log:#?}"
        );
        assert_eq!(counter_in(&dir.0.join("counts.db"), "visits"), Some(5));
        assert!(in_flight.await.expect("client task").is_err());
        gate.open();
    }
}

fn entries(log: &[String]) -> Vec<serde_json::Value> {
    log.iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn with_message<'a>(entries: &'a [serde_json::Value], message: &str) -> Vec<&'a serde_json::Value> {
    entries
        .iter()
        .filter(|entry| entry["fields"]["message"] == message)
        .collect()
}

#[tokio::test]
async fn sighup_reloads_the_log_filter_and_admin_token_from_the_file_and_counts_each_reload() {
    let dir = TempDir::new("sighup");
    let file = dir.0.join("sidecache.toml");
    let write = |text: &str| std::fs::write(&file, text).expect("write the config file");
    write("admin-token = \"old\"\n");
    let origin = TestOrigin::start(|_, _| Reply::ok("body")).await;
    let Started {
        child,
        proxy,
        admin,
        log,
    } = start_in(
        &dir,
        &["--config", "sidecache.toml", "--origin", &origin.url()],
    );
    let client = TestClient::new();
    let stats = |token: &'static str| {
        let client = &client;
        let url = format!("http://{admin}/stats");
        async move {
            let bearer = format!("Bearer {token}");
            client
                .get_with(&url, &[("authorization", &bearer)])
                .await
                .status
        }
    };
    assert_eq!(stats("old").await, 200);
    assert_eq!(
        client.get(&format!("http://{proxy}/before")).await.status,
        200
    );

    write(
        "admin-token = \"new\"\nlog-level = \"info,sidecache::access=debug\"\n\
         cache-capacity = \"128MiB\"\n",
    );
    send_signal(&child, "HUP");
    let applied = "sidecache_config_reloads_total{outcome=\"applied\"}";
    let failed = "sidecache_config_reloads_total{outcome=\"failed\"}";
    support::wait_for_value_at(admin, applied, 1.0).await;
    assert_eq!(stats("old").await, 401);
    assert_eq!(stats("new").await, 200);
    assert_eq!(
        client.get(&format!("http://{proxy}/after")).await.status,
        200
    );

    // An invalid file changes nothing.
    write("admin-token = \"newer\"\ncache-capacity = \"lots\"\n");
    send_signal(&child, "HUP");
    support::wait_for_value_at(admin, failed, 1.0).await;
    assert_eq!(stats("new").await, 200);
    let scrape = client.get(&format!("http://{admin}/metrics")).await;
    let scrape = support::Scrape::parse(&scrape.text());
    assert_eq!((scrape.value(applied), scrape.value(failed)), (1.0, 1.0));

    // SIGHUP did not end the process: SIGTERM drains it as usual.
    send_signal(&child, "TERM");
    let code = tokio::task::spawn_blocking(move || exit_code_within_10s(child))
        .await
        .expect("waiter");
    assert_eq!(code, Some(0));

    let entries = entries(&log.join().expect("log reader"));
    let reloaded = with_message(&entries, "configuration reloaded");
    assert_eq!(reloaded.len(), 1, "{entries:#?}");
    assert_eq!(reloaded[0]["level"], "INFO");
    assert_eq!(reloaded[0]["fields"]["applied"], "admin-token, log-level");
    let restart = with_message(&entries, "changed options take effect only after a restart");
    assert_eq!(restart.len(), 1, "{entries:#?}");
    assert_eq!(restart[0]["level"], "WARN");
    assert_eq!(restart[0]["fields"]["options"], "cache-capacity");
    let failures = with_message(
        &entries,
        "configuration reload failed; the running configuration is kept",
    );
    assert_eq!(failures.len(), 1, "{entries:#?}");
    assert_eq!(failures[0]["level"], "ERROR");
    let error = failures[0]["fields"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cache-capacity") && error.contains("lots"),
        "{error}"
    );
    // The access lines follow the reloaded filter.
    let access: Vec<_> = entries
        .iter()
        .filter(|entry| entry["target"] == "sidecache::access")
        .filter_map(|entry| entry["fields"]["path"].as_str())
        .collect();
    assert_eq!(access, ["/after"], "{entries:#?}");
}
