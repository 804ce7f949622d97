//! Write-behind counters end to end, against real databases: a SQLite file, and a PostgreSQL
//! server each test starts for itself (see `support::postgres`).
//!
//! - the admin endpoint and per-key request counts, with their bounds and metrics;
//! - SIGTERM to the real binary in the middle of 8 tasks × thousands of increments: the sink
//!   holds exactly the acknowledged increments, per name (SQLite and PostgreSQL);
//! - PostgreSQL stopped during increments and started again: exact totals;
//! - PostgreSQL unreachable at shutdown: the recovery file, replayed at the next start;
//! - a connection cut at COMMIT (before and after the server committed): no double count.

use crate::support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use sidecache::metrics::Registry;
use sidecache::writebehind::postgres::PostgresSink;
use sidecache::writebehind::{
    IncrementSource, WriteBehind, WriteBehindMetrics, WriteBehindSettings,
};
use support::postgres::{CommitCutter, Cut, PgServer};
use support::{Reply, Sidecache, TempDir, TestClient, TestOrigin};
use tokio::sync::watch;

mod durability;

const NAMES: [&str; 5] = ["views", "likes", "shares", "page views/home", "ünïcode"];

/// Per-name sums.
type Totals = HashMap<String, i64>;

// === helpers ===

fn counter_url(admin: SocketAddr, name: &str, delta: Option<i64>) -> String {
    let encoded: String = name
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    match delta {
        Some(delta) => format!("http://{admin}/v1/counters/{encoded}?delta={delta}"),
        None => format!("http://{admin}/v1/counters/{encoded}"),
    }
}

async fn post(client: &TestClient, url: &str, token: Option<&str>) -> support::Got {
    send(client, Method::POST, url, token).await
}

async fn send(client: &TestClient, method: Method, url: &str, token: Option<&str>) -> support::Got {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    client.send(method, url, &headers, Bytes::new()).await
}

fn json(got: &support::Got) -> serde_json::Value {
    serde_json::from_slice(&got.body).unwrap_or_else(|_| panic!("JSON: {}", got.text()))
}

/// What 8 concurrent tasks got acknowledged.
struct Load {
    acked: Totals,
    acked_count: usize,
    attempted: usize,
}

/// 8 tasks, each sending up to `per_task` increments over [`NAMES`] (deltas from -2 to 4) to
/// the admin endpoint, one after another on a keep-alive connection. A task stops at the first
/// answer that is not 2xx or at a broken connection (shutdown). Every 2xx is counted in
/// `progress` and in the result.
async fn increment_from_8_tasks(
    admin: SocketAddr,
    per_task: usize,
    progress: watch::Sender<usize>,
) -> Load {
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let progress = progress.clone();
            tokio::spawn(async move {
                let client = TestClient::new();
                let mut acked = Totals::new();
                let (mut acked_count, mut attempted) = (0, 0);
                for i in 0..per_task {
                    let name = NAMES[(task + i) % NAMES.len()];
                    let delta = (i % 7) as i64 - 2;
                    attempted += 1;
                    let sent = client
                        .try_send(
                            Method::POST,
                            &counter_url(admin, name, Some(delta)),
                            &[],
                            Bytes::new(),
                        )
                        .await;
                    match sent {
                        Ok(got) if got.status.is_success() => {
                            *acked.entry(name.to_owned()).or_default() += delta;
                            acked_count += 1;
                            progress.send_modify(|n| *n += 1);
                        }
                        Ok(got) => {
                            assert_eq!(got.status, 503, "{}", got.text());
                            break;
                        }
                        Err(_) => break,
                    }
                }
                (acked, acked_count, attempted)
            })
        })
        .collect();
    let mut load = Load {
        acked: Totals::new(),
        acked_count: 0,
        attempted: 0,
    };
    for task in tasks {
        let (acked, acked_count, attempted) = task.await.expect("increment task");
        for (name, sum) in acked {
            *load.acked.entry(name).or_default() += sum;
        }
        load.acked_count += acked_count;
        load.attempted += attempted;
    }
    load
}

async fn reached(progress: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|done| *done >= n),
    )
    .await
    .expect("increments in time")
    .expect("tasks alive");
}

/// Per-name sums with zero sums left out (the sinks never store a name that only ever summed
/// to zero in its batches; a stored 0 is the same as no row for the comparison).
fn nonzero(totals: &Totals) -> Totals {
    totals
        .iter()
        .filter(|(_, sum)| **sum != 0)
        .map(|(name, sum)| (name.clone(), *sum))
        .collect()
}

fn sqlite_counters(path: &Path) -> Totals {
    let connection = rusqlite::Connection::open(path).expect("open the counters file");
    let mut statement = connection
        .prepare("SELECT name, value FROM sidecache_counters")
        .expect("query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read rows")
}

/// The real binary, with its log kept for assertions.
struct Binary {
    child: Child,
    admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    /// Reads the log until the process closes its end of the pipe.
    reader: std::thread::JoinHandle<()>,
}

impl Binary {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sidecache"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--log-format", "json", "--log-level", "info"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sidecache");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let listening = loop {
            let line = lines
                .next()
                .expect("sidecache exited before listening")
                .expect("read log");
            log.lock().expect("log").push(line.clone());
            let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
            if entry["fields"]["message"] == "sidecache listening" {
                break entry;
            }
        };
        // Keep reading so the child never blocks on a full pipe, and keep the lines.
        let reader = std::thread::spawn({
            let log = Arc::clone(&log);
            move || {
                for line in lines.map_while(Result::ok) {
                    log.lock().expect("log").push(line);
                }
            }
        });
        let admin = listening["fields"]["admin"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("the admin address in the log");
        Self {
            child,
            admin,
            log,
            reader,
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    async fn terminate(mut self) -> (i32, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let (code, log) = tokio::task::spawn_blocking(move || {
            let code = self
                .child
                .wait()
                .expect("wait")
                .code()
                .expect("an exit code");
            // The reader ends with the pipe, after the last lines: without waiting for it, the
            // last lines may still be unread.
            self.reader.join().expect("log reader");
            (code, self.log)
        })
        .await
        .expect("wait task");
        let log = log.lock().expect("log").clone();
        (code, log)
    }
}

async fn any_origin() -> TestOrigin {
    TestOrigin::start(|_, _| Reply::ok("origin").header("cache-control", "max-age=60")).await
}

// === the admin endpoint ===

#[tokio::test]
async fn the_admin_endpoint_counts_validates_and_reports_stored_plus_pending() {
    let origin = any_origin().await;
    let dir = TempDir::new("wb-admin");
    let db = dir.0.join("counters.db");
    let sink = format!("sqlite:{}", db.display());
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--writebehind-sink",
            &sink,
            "--writebehind-interval",
            "1h",
            "--writebehind-max-pending-keys",
            "3",
            "--admin-token",
            "t0ken",
        ],
    )
    .await;
    let admin = sidecache.admin_addr;
    let client = TestClient::new();
    let token = Some("t0ken");

    let got = post(&client, &counter_url(admin, "views", None), token).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(json(&got)["pending"], 1, "delta defaults to 1");
    let got = post(&client, &counter_url(admin, "views", Some(-3)), token).await;
    assert_eq!(json(&got)["pending"], -2);

    // Every call needs the token, reads too.
    let got = post(&client, &counter_url(admin, "views", Some(5)), None).await;
    assert_eq!(got.status, 401);
    let got = client.get(&counter_url(admin, "views", None)).await;
    assert_eq!(got.status, 401);
    for bad in [
        "abc",
        "1.5",
        "",
        "9223372036854775808",
        "-9223372036854775809",
    ] {
        let url = format!("{}?delta={bad}", counter_url(admin, "views", None));
        let got = post(&client, &url, token).await;
        assert_eq!(got.status, 400, "delta={bad}: {}", got.text());
    }
    let got = post(&client, &counter_url(admin, "big", Some(1 << 62)), token).await;
    assert_eq!(got.status, 200);
    let got = post(&client, &counter_url(admin, "big", Some(1)), token).await;
    assert_eq!(
        got.status,
        400,
        "an overflowing pending sum: {}",
        got.text()
    );
    let got = send(
        &client,
        Method::PUT,
        &counter_url(admin, "views", None),
        token,
    )
    .await;
    assert_eq!(got.status, 405);

    let get = async |url: &str| send(&client, Method::GET, url, token).await;
    let got = get(&counter_url(admin, "views", None)).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        json(&got),
        serde_json::json!({"name": "views", "value": -2, "stored": 0, "pending": -2})
    );
    sidecache.writebehind.flush().await.expect("flush");
    let got = get(&counter_url(admin, "views", None)).await;
    assert_eq!(
        json(&got),
        serde_json::json!({"name": "views", "value": -2, "stored": -2, "pending": 0})
    );

    // Three names fit; a fourth is refused (and not acknowledged) until a flush makes room.
    for name in ["a", "b", "page views/home"] {
        let got = post(&client, &counter_url(admin, name, None), token).await;
        assert_eq!(got.status, 200, "{name}");
    }
    let view = json(&get(&format!("http://{admin}/v1/counters")).await);
    assert_eq!(view["pending"]["page views/home"], 1);
    assert_eq!(view["pending_keys"], 3);
    let got = post(&client, &counter_url(admin, "d", None), token).await;
    assert_eq!(got.status, 503, "{}", got.text());
    assert_eq!(got.header("retry-after"), "1");

    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value("sidecache_writebehind_increments_total{outcome=\"full\",source=\"admin\"}"),
        1.0
    );
    assert_eq!(
        scrape
            .value("sidecache_writebehind_increments_total{outcome=\"overflow\",source=\"admin\"}"),
        1.0
    );
    assert_eq!(
        scrape
            .value("sidecache_writebehind_increments_total{outcome=\"accepted\",source=\"admin\"}"),
        6.0
    );
    assert!(scrape.value("sidecache_writebehind_flushes_total{outcome=\"committed\"}") >= 1.0);
    assert!(scrape.value("sidecache_writebehind_flush_duration_seconds_count") >= 1.0);
    scrape.value("sidecache_writebehind_pending_keys");

    sidecache.stop().await;
    let stored = sqlite_counters(&db);
    assert_eq!(
        stored,
        [
            ("views", -2),
            ("big", 1 << 62),
            ("a", 1),
            ("b", 1),
            ("page views/home", 1)
        ]
        .into_iter()
        .map(|(name, sum)| (name.to_owned(), sum))
        .collect::<Totals>(),
        "no per-key request counts unless asked for"
    );
}

#[tokio::test]
async fn requests_are_counted_per_cache_key_within_the_cap_and_drops_are_counted() {
    let origin = any_origin().await;
    let dir = TempDir::new("wb-requests");
    let db = dir.0.join("counters.db");
    let sink = format!("sqlite:{}", db.display());
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--writebehind-sink",
            &sink,
            "--writebehind-interval",
            "1h",
            "--writebehind-count-requests",
            "true",
            "--writebehind-max-pending-keys",
            "3",
        ],
    )
    .await;
    // The cache key's host is the Host the client sends: sidecache's own address.
    let host = sidecache.proxy_addr.to_string();
    let client = TestClient::new();
    for path in ["/a", "/a", "/a", "/b", "/c?x=1", "/d"] {
        assert_eq!(client.get(&sidecache.url(path)).await.status, 200);
    }
    // /d found the map full: dropped, counted, and the flusher woken. Wait for that flush.
    sidecache.writebehind.flush().await.expect("flush");
    let scrape = sidecache.metrics().await;
    assert_eq!(
        scrape.value("sidecache_writebehind_increments_total{outcome=\"full\",source=\"request\"}"),
        1.0
    );
    assert_eq!(
        scrape.value(
            "sidecache_writebehind_increments_total{outcome=\"accepted\",source=\"request\"}"
        ),
        5.0
    );
    assert_eq!(client.get(&sidecache.url("/a")).await.status, 200);
    sidecache.stop().await;

    let stored = sqlite_counters(&db);
    let expected: Totals = [("/a", 4), ("/b", 1), ("/c", 1)]
        .into_iter()
        .map(|(path, count)| (format!("requests:{host}{path}"), count))
        .collect();
    assert_eq!(stored, expected);
}

/// Counts `paths` with `flags` and returns what reached the sink, by counter name.
async fn count_requests_to(paths: &[&str], flags: &[&str]) -> (String, Totals) {
    let origin = any_origin().await;
    let dir = TempDir::new("wb-query");
    let db = dir.0.join("counters.db");
    let sink = format!("sqlite:{}", db.display());
    let mut args = vec![
        "--writebehind-sink",
        &sink,
        "--writebehind-interval",
        "1h",
        "--writebehind-count-requests",
        "true",
    ];
    args.extend_from_slice(flags);
    let sidecache = Sidecache::start(&origin.url(), &args).await;
    let host = sidecache.proxy_addr.to_string();
    let client = TestClient::new();
    for path in paths {
        assert_eq!(client.get(&sidecache.url(path)).await.status, 200, "{path}");
    }
    sidecache.stop().await;
    (host, sqlite_counters(&db))
}

/// A query string can carry a secret (a password-reset link) and makes every request a name of
/// its own: request counts leave it out unless asked to keep it.
#[tokio::test]
async fn request_counts_leave_the_query_out_unless_asked_to_keep_it() {
    let paths = [
        "/reset?token=s3cret-1",
        "/reset?token=s3cret-2",
        "/reset",
        "/a?",
    ];
    let (host, stored) = count_requests_to(&paths, &[]).await;
    let expected: Totals = [("/reset", 3), ("/a", 1)]
        .into_iter()
        .map(|(path, count)| (format!("requests:{host}{path}"), count))
        .collect();
    assert_eq!(stored, expected);

    let (host, stored) = count_requests_to(&paths, &["--writebehind-count-query", "true"]).await;
    let expected: Totals = paths
        .iter()
        .map(|path| (format!("requests:{host}{path}"), 1))
        .collect();
    assert_eq!(stored, expected);
}

// === names a sink cannot store ===

/// A name with NUL (which PostgreSQL's text cannot hold), a control character or past the
/// length cap is refused when it is incremented — 400 from the admin port, dropped and counted
/// for request counts — so it never reaches the sink, where it would fail every flush.
#[tokio::test]
async fn postgres_names_a_sink_cannot_store_are_refused_at_increment_and_poison_nothing() {
    let Some(pg) = PgServer::start("names") else {
        return;
    };
    let origin = any_origin().await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--writebehind-sink",
            &pg.url(),
            "--writebehind-interval",
            "1h",
            "--writebehind-count-requests",
            "true",
        ],
    )
    .await;
    let admin = sidecache.admin_addr;
    let client = TestClient::new();
    let longest = "x".repeat(1024);
    for bad in [
        "a\0b",
        "line\nbreak",
        "tab\there",
        "del\u{7f}",
        &"x".repeat(1025),
    ] {
        let got = post(&client, &counter_url(admin, bad, None), None).await;
        assert_eq!(got.status, 400, "{bad:?}: {}", got.text());
        let got = client.get(&counter_url(admin, bad, None)).await;
        assert_eq!(got.status, 400, "reading {bad:?}: {}", got.text());
    }
    for good in ["views", longest.as_str()] {
        let got = post(&client, &counter_url(admin, good, None), None).await;
        assert_eq!(got.status, 200, "{good}: {}", got.text());
    }
    // An anonymous client's random 3 KB URL, and an ordinary one.
    let random: String = (0..1500u32)
        .map(|i| format!("{:02x}", i.wrapping_mul(2_654_435_761) >> 24))
        .collect();
    let long_path = format!("/{random}");
    assert_eq!(client.get(&sidecache.url(&long_path)).await.status, 200);
    assert_eq!(client.get(&sidecache.url("/ok")).await.status, 200);

    assert_eq!(sidecache.writebehind.flush().await.expect("flush"), 1);
    let host = sidecache.proxy_addr.to_string();
    let expected: Totals = [
        ("views".to_owned(), 1),
        (longest.clone(), 1),
        (format!("requests:{host}/ok"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(pg.counters().await, expected);
    let scrape = sidecache.metrics().await;
    for (series, value) in [
        ("outcome=\"invalid_name\",source=\"admin\"", 5.0),
        ("outcome=\"accepted\",source=\"admin\"", 2.0),
        ("outcome=\"invalid_name\",source=\"request\"", 1.0),
        ("outcome=\"accepted\",source=\"request\"", 1.0),
    ] {
        let series = format!("sidecache_writebehind_increments_total{{{series}}}");
        assert_eq!(scrape.value(&series), value, "{series}");
    }
    assert_eq!(
        scrape.value("sidecache_writebehind_flushes_total{outcome=\"failed\"}"),
        0.0
    );
    sidecache.stop().await;
}

// === rows a sink refuses ===

/// The table as a DBA might have tightened it: a constraint that refuses some names.
const CONSTRAINED_TABLE: &str = "CREATE TABLE sidecache_counters (name TEXT PRIMARY KEY, \
     value BIGINT NOT NULL, CHECK (name NOT LIKE 'forbidden%'))";

/// Increments two names the table accepts and one it refuses, flushes, stops, and returns the
/// metrics scrape taken after the flush.
async fn flush_past_a_refused_row(sink: &str, recovery: &Path) -> support::Scrape {
    let origin = any_origin().await;
    let recovery = recovery.display().to_string();
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--writebehind-sink",
            sink,
            "--writebehind-interval",
            "1h",
            "--writebehind-recovery-file",
            &recovery,
        ],
    )
    .await;
    let client = TestClient::new();
    for name in ["ok-1", "forbidden-1", "ok-2"] {
        let got = post(
            &client,
            &counter_url(sidecache.admin_addr, name, None),
            None,
        )
        .await;
        assert_eq!(got.status, 200, "{name}");
    }
    sidecache
        .writebehind
        .flush()
        .await
        .expect("the good rows commit");
    assert!(!sidecache.writebehind.needs_flush());
    let scrape = sidecache.metrics().await;
    assert_eq!(sidecache.stop().await, sidecache::server::Drained::Cleanly);
    scrape
}

fn assert_one_row_dropped(scrape: &support::Scrape) {
    assert_eq!(
        scrape.value("sidecache_writebehind_rows_dropped_total{reason=\"rejected\"}"),
        1.0
    );
    assert_eq!(
        scrape.value("sidecache_writebehind_flushes_total{outcome=\"failed\"}"),
        0.0
    );
}

#[tokio::test]
async fn sqlite_a_row_the_table_refuses_is_dropped_and_counted_and_the_rest_commit() {
    let dir = TempDir::new("wb-refused-sqlite");
    let db = dir.0.join("counters.db");
    rusqlite::Connection::open(&db)
        .expect("create the file")
        .execute_batch(CONSTRAINED_TABLE)
        .expect("create the table");
    let recovery = dir.0.join("recovery.json");
    let scrape = flush_past_a_refused_row(&format!("sqlite:{}", db.display()), &recovery).await;
    assert_one_row_dropped(&scrape);
    let expected: Totals = [("ok-1".to_owned(), 1), ("ok-2".to_owned(), 1)].into();
    assert_eq!(sqlite_counters(&db), expected);
    assert!(!recovery.exists(), "nothing left for the next start");
}

#[tokio::test]
async fn postgres_a_row_the_table_refuses_is_dropped_and_counted_and_the_rest_commit() {
    let Some(pg) = PgServer::start("refused") else {
        return;
    };
    pg.client()
        .await
        .batch_execute(CONSTRAINED_TABLE)
        .await
        .expect("create the table");
    let dir = TempDir::new("wb-refused-pg");
    let recovery = dir.0.join("recovery.json");
    let scrape = flush_past_a_refused_row(&pg.url(), &recovery).await;
    assert_one_row_dropped(&scrape);
    let expected: Totals = [("ok-1".to_owned(), 1), ("ok-2".to_owned(), 1)].into();
    assert_eq!(pg.counters().await, expected);
    assert!(!recovery.exists(), "nothing left for the next start");
}

// === retention of request counts ===

const DAY: i64 = 24 * 60 * 60;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// The counters table as sidecache created it before rows carried the time of their last write.
const TABLE_WITHOUT_TIMES: &str =
    "CREATE TABLE sidecache_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
     INSERT INTO sidecache_counters VALUES ('requests:h/legacy', 5), ('views', 1);";

/// Ages rows as if they were last written `days` ago.
fn aged(names: &[&str], days: i64) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("'{name}'")).collect();
    format!(
        "UPDATE sidecache_counters SET updated_at = {} WHERE name IN ({});",
        unix_now() - days * DAY,
        quoted.join(", ")
    )
}

/// The rows the retention test writes before the flush: (name, value, days since written).
const AGED_ROWS: [(&str, i64, i64); 4] = [
    ("requests:h/stale", 7, 40),
    ("requests:h/recent", 8, 29),
    ("views-stale", 9, 40),
    ("requestsX", 10, 40),
];

fn insert_aged_rows() -> String {
    AGED_ROWS
        .iter()
        .map(|(name, value, days)| {
            format!(
                "INSERT INTO sidecache_counters (name, value, updated_at) VALUES ('{name}', {value}, {});",
                unix_now() - days * DAY
            )
        })
        .collect()
}

/// Starts sidecache on `sink` with `retention`, lets `prepare` age the database's rows, counts
/// one request and flushes: the first flush after a start prunes.
async fn count_then_flush(sink: &str, retention: &str, prepare: impl AsyncFnOnce()) -> String {
    let origin = any_origin().await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--writebehind-sink",
            sink,
            "--writebehind-interval",
            "1h",
            "--writebehind-count-requests",
            "true",
            "--writebehind-request-retention",
            retention,
        ],
    )
    .await;
    // The sink is open (SQLite) or opened by a first read (PostgreSQL): its tables exist.
    sidecache
        .writebehind
        .value("views")
        .await
        .expect("the sink answers");
    prepare().await;
    assert_eq!(
        TestClient::new().get(&sidecache.url("/new")).await.status,
        200
    );
    assert_eq!(sidecache.writebehind.flush().await.expect("flush"), 1);
    let host = sidecache.proxy_addr.to_string();
    sidecache.stop().await;
    format!("requests:{host}/new")
}

/// What is left after [`count_then_flush`] with a 30-day retention: request-count rows not
/// written for 30 days are gone; other counters, recent rows and rows written before the upgrade
/// (which count from the upgrade) stay.
fn expected_after_pruning(new: String) -> Totals {
    [
        ("requests:h/legacy".to_owned(), 5),
        ("views".to_owned(), 1),
        ("requests:h/recent".to_owned(), 8),
        ("views-stale".to_owned(), 9),
        ("requestsX".to_owned(), 10),
        (new, 1),
    ]
    .into()
}

#[tokio::test]
async fn sqlite_request_count_rows_not_written_within_the_retention_are_pruned() {
    let dir = TempDir::new("wb-retention-sqlite");
    let db = dir.0.join("counters.db");
    rusqlite::Connection::open(&db)
        .expect("create")
        .execute_batch(TABLE_WITHOUT_TIMES)
        .expect("an old table");
    let sink = format!("sqlite:{}", db.display());
    let age = async || {
        rusqlite::Connection::open(&db)
            .expect("open")
            .execute_batch(&insert_aged_rows())
            .expect("age rows");
    };
    let new = count_then_flush(&sink, "30d", age).await;
    assert_eq!(sqlite_counters(&db), expected_after_pruning(new));

    // 0 keeps every row.
    rusqlite::Connection::open(&db)
        .expect("open")
        .execute_batch(&aged(&["requests:h/recent"], 400))
        .expect("age");
    count_then_flush(&sink, "0s", async || {}).await;
    assert!(sqlite_counters(&db).contains_key("requests:h/recent"));
}

#[tokio::test]
async fn postgres_request_count_rows_not_written_within_the_retention_are_pruned() {
    let Some(pg) = PgServer::start("retention") else {
        return;
    };
    pg.client()
        .await
        .batch_execute(TABLE_WITHOUT_TIMES)
        .await
        .expect("an old table");
    let age = async || {
        pg.client()
            .await
            .batch_execute(&insert_aged_rows())
            .await
            .expect("age rows");
    };
    let new = count_then_flush(&pg.url(), "30d", age).await;
    assert_eq!(pg.counters().await, expected_after_pruning(new));

    pg.client()
        .await
        .batch_execute(&aged(&["requests:h/recent"], 400))
        .await
        .expect("age");
    count_then_flush(&pg.url(), "0s", async || {}).await;
    assert!(pg.counters().await.contains_key("requests:h/recent"));
}
