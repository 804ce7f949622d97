//! A real PostgreSQL server for tests (Debian's postgresql package): a fresh cluster in a
//! temporary directory, on a free loopback port, stopped when dropped. And a TCP proxy in
//! front of it that can cut the connection at `COMMIT`.
//!
//! PostgreSQL refuses to run as root; as root, the server runs as the `postgres` user (which
//! the Debian package creates) or `nobody`, through `setpriv`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::NoTls;

use super::{TempDir, free_port};

/// A PostgreSQL server of the test's own.
pub struct PgServer {
    /// Holds `run/` (owned by the server's user): the cluster in `run/data`, the log in
    /// `run/server.log`, the Unix socket.
    _dir: TempDir,
    run: PathBuf,
    bin: PathBuf,
    /// The user to run the server tools as (`setpriv`), when running as root.
    run_as: Option<(u32, u32)>,
    pub port: u16,
}

impl PgServer {
    /// Creates and starts a cluster. `None` (skipped loudly) when PostgreSQL is not installed,
    /// except in CI (`CI=true`), where that fails the test.
    pub fn start(label: &str) -> Option<Self> {
        let bin = find_bin_dir()?;
        let dir = TempDir::new(&format!("pg-{label}"));
        let run = dir.0.join("run");
        std::fs::create_dir(&run).expect("run dir");
        let run_as = if running_as_root() {
            let (uid, gid) = ["postgres", "nobody"]
                .iter()
                .find_map(|name| passwd_ids(name))
                .expect("a non-root user to run PostgreSQL as (postgres or nobody)");
            std::os::unix::fs::chown(&run, Some(uid), Some(gid)).expect("chown run dir");
            Some((uid, gid))
        } else {
            None
        };
        let mut server = Self {
            _dir: dir,
            run,
            bin,
            run_as,
            port: 0,
        };
        let data = server.data_dir();
        server.tool(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "sidecache",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        // A port that was free a moment ago may be taken by the time the server binds it.
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start() {
                return Some(server);
            }
        }
        panic!("PostgreSQL did not start:\n{}", server.log());
    }

    fn data_dir(&self) -> PathBuf {
        self.run.join("data")
    }

    /// `postgres://` URL of the server (trust authentication, no TLS).
    pub fn url(&self) -> String {
        format!(
            "postgres://sidecache@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// The same URL with another port (for a proxy in front of the server).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!(
            "postgres://sidecache@{}:{}/postgres?sslmode=disable",
            addr.ip(),
            addr.port()
        )
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts the server again on the same port, waiting until it accepts connections.
    pub fn start_again(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not restart:\n{}",
            self.log()
        );
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=50",
            self.port,
            self.run.display()
        );
        let log = self.run.join("server.log");
        let data = self.data_dir();
        self.run_tool(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .status
        .success()
    }

    /// Stops the server (fast shutdown: connections are closed, the server process exits) and
    /// waits until it is gone.
    pub fn stop(&self) {
        let data = self.data_dir();
        self.tool("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"]);
    }

    /// A client connected to the server.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(connection);
        client
    }

    /// Every counter in `sidecache_counters`.
    pub async fn counters(&self) -> HashMap<String, i64> {
        self.client()
            .await
            .query("SELECT name, value FROM sidecache_counters", &[])
            .await
            .expect("read the counters")
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run.join("server.log")).unwrap_or_default()
    }

    fn tool(&self, name: &str, args: &[&str]) -> Output {
        let output = self.run_tool(name, args);
        assert!(
            output.status.success(),
            "{name} {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        output
    }

    fn run_tool(&self, name: &str, args: &[&str]) -> Output {
        let program = self.bin.join(name);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(&program);
                command
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .current_dir(&self.run)
            .env("LC_ALL", "C")
            .output()
            .unwrap_or_else(|error| panic!("run {name}: {error}"))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run_tool(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp paths")
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: on the PATH, else Debian's
/// `/usr/lib/postgresql/VERSION/bin` (the newest).
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).find(|dir| has_tools(dir)));
    let debian = || {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, bin)| has_tools(bin))
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    };
    let found = on_path.or_else(debian);
    if found.is_none() {
        super::missing_component(
            "PostgreSQL (initdb, pg_ctl, postgres)",
            "scripts/install-test-deps installs it",
        );
    }
    found
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// The uid and gid of `user` in /etc/passwd.
fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

// === a proxy that cuts connections at COMMIT ===

/// Where to cut the next `COMMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Drop both connections instead of forwarding `COMMIT`: the server rolls back.
    BeforeCommit,
    /// Forward `COMMIT`, wait for the server's answer (so it surely committed), then drop both
    /// connections without passing the answer on.
    AfterCommit,
}

/// A TCP proxy in front of PostgreSQL that understands just enough of the wire protocol to
/// find a simple-query `COMMIT` from the client.
pub struct CommitCutter {
    pub addr: SocketAddr,
    armed: Arc<Mutex<Option<Cut>>>,
    cuts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CommitCutter {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let armed = Arc::new(Mutex::new(None));
        let cuts = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (armed, cuts) = (Arc::clone(&armed), Arc::clone(&cuts));
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let (armed, cuts) = (Arc::clone(&armed), Arc::clone(&cuts));
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            relay(client, server, &armed, &cuts).await;
                        }
                    });
                }
            }
        });
        Self {
            addr,
            armed,
            cuts,
            task,
        }
    }

    /// Cuts the next `COMMIT` any client sends.
    pub fn cut_next_commit(&self, at: Cut) {
        *self.armed.lock().expect("armed") = Some(at);
    }

    /// How many `COMMIT`s were cut so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CommitCutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A complete message (type byte, length, body) at the front of `buf`, taken out.
fn take_message(buf: &mut BytesMut) -> Option<BytesMut> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    (buf.len() > len).then(|| buf.split_to(1 + len))
}

fn is_commit(message: &[u8]) -> bool {
    message[0] == b'Q'
        && std::str::from_utf8(&message[5..]).is_ok_and(|query| {
            query
                .trim_end_matches('\0')
                .trim()
                .eq_ignore_ascii_case("COMMIT")
        })
}

async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: &Mutex<Option<Cut>>,
    cuts: &AtomicUsize,
) {
    // The startup message has no type byte: a length (counting itself), then the rest. An
    // SSL or GSS encryption request (8 bytes) is answered with one byte before the real one.
    let mut from_client = BytesMut::new();
    loop {
        while from_client.len() < 4 {
            if client.read_buf(&mut from_client).await.unwrap_or(0) == 0 {
                return;
            }
        }
        let len = u32::from_be_bytes([
            from_client[0],
            from_client[1],
            from_client[2],
            from_client[3],
        ]) as usize;
        while from_client.len() < len {
            if client.read_buf(&mut from_client).await.unwrap_or(0) == 0 {
                return;
            }
        }
        let startup = from_client.split_to(len);
        let code = (len == 8)
            .then(|| u32::from_be_bytes([startup[4], startup[5], startup[6], startup[7]]));
        if server.write_all(&startup).await.is_err() {
            return;
        }
        if matches!(code, Some(80_877_103 | 80_877_104)) {
            let mut answer = [0u8; 1];
            if server.read_exact(&mut answer).await.is_err()
                || client.write_all(&answer).await.is_err()
            {
                return;
            }
            continue;
        }
        break;
    }
    let mut from_server = BytesMut::new();
    loop {
        tokio::select! {
            read = client.read_buf(&mut from_client) => {
                if read.unwrap_or(0) == 0 {
                    return;
                }
                while let Some(message) = take_message(&mut from_client) {
                    let cut = if is_commit(&message) { armed.lock().expect("armed").take() } else { None };
                    match cut {
                        None => {
                            if server.write_all(&message).await.is_err() {
                                return;
                            }
                        }
                        Some(Cut::BeforeCommit) => {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        Some(Cut::AfterCommit) => {
                            if server.write_all(&message).await.is_err() {
                                return;
                            }
                            // Everything before COMMIT was answered and passed on already;
                            // what comes now is COMMIT's answer, ending with ReadyForQuery.
                            from_server.clear();
                            loop {
                                if server.read_buf(&mut from_server).await.unwrap_or(0) == 0 {
                                    break;
                                }
                                let mut ready = false;
                                while let Some(answer) = take_message(&mut from_server) {
                                    ready |= answer[0] == b'Z';
                                }
                                if ready {
                                    break;
                                }
                            }
                            cuts.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            }
            read = server.read_buf(&mut from_server) => {
                if read.unwrap_or(0) == 0 {
                    return;
                }
                if client.write_all(&from_server).await.is_err() {
                    return;
                }
                from_server.advance(from_server.len());
            }
        }
    }
}
