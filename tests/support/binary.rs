//! The real binary as a child process: where it listens, read from its JSON log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;
use std::thread::JoinHandle;

/// Where a started binary listens, and the rest of its log.
pub struct Listening {
    /// The proxy port's address.
    pub proxy: SocketAddr,
    /// The admin port's address.
    pub admin: SocketAddr,
    /// Every log line after the listening line, once the process has exited.
    pub log: JoinHandle<Vec<String>>,
}

/// Reads `child`'s stderr (JSON logs, piped) up to its "sidecache listening" line, and keeps
/// draining the rest on a thread so the child never blocks on a full pipe.
pub fn listening(child: &mut Child) -> Listening {
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
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    let addr = |name: &str| {
        listening["fields"][name]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("an address in the log")
    };
    Listening {
        proxy: addr("proxy"),
        admin: addr("admin"),
        log,
    }
}
