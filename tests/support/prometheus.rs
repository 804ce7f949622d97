//! A real Prometheus server for tests: started on a free loopback port with its data in a
//! temporary directory, queried through its HTTP API, killed on drop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use super::{TempDir, TestClient, free_port};

/// How long any wait on Prometheus may take: it scrapes on its own schedule, so the tests wait
/// on its answers, bounded.
const DEADLINE: Duration = Duration::from_secs(30);

/// A Prometheus server on a loopback port.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: TempDir,
}

/// One sample of an instant query's answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// A `prometheus.yml` for tests: every `interval` it scrapes the targets of each job and
/// evaluates the rule files (absolute paths).
pub fn config(interval: Duration, jobs: &[(&str, Vec<String>)], rule_files: &[&Path]) -> String {
    let ms = interval.as_millis();
    let mut yaml = format!(
        "global:\n  scrape_interval: {ms}ms\n  scrape_timeout: {ms}ms\n  evaluation_interval: {ms}ms\n"
    );
    if !rule_files.is_empty() {
        yaml.push_str("rule_files:\n");
        for file in rule_files {
            writeln!(yaml, "  - '{}'", file.display()).expect("write to a String");
        }
    }
    yaml.push_str("scrape_configs:\n");
    for (job, targets) in jobs {
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        writeln!(
            yaml,
            "  - job_name: {job}\n    static_configs:\n      - targets: [{}]",
            targets.join(", ")
        )
        .expect("write to a String");
    }
    yaml
}

impl Prometheus {
    /// Starts Prometheus with `config` as its configuration file and waits until it is ready.
    pub async fn start(binary: PathBuf, config: &str) -> Self {
        let dir = TempDir::new("prometheus");
        let config_file = dir.0.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let client = TestClient::new();
        let ready = format!("{}/-/ready", prometheus.url);
        let deadline = Instant::now() + DEADLINE;
        while client
            .try_send(Method::GET, &ready, &[], Bytes::new())
            .await
            .map_or(true, |got| got.status != 200)
        {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        prometheus
    }

    /// Starts Prometheus scraping one sidecache (job `sidecache`) every 200 ms.
    pub async fn scraping(binary: PathBuf, target: SocketAddr) -> Self {
        let config = config(
            Duration::from_millis(200),
            &[("sidecache", vec![target.to_string()])],
            &[],
        );
        Self::start(binary, &config).await
    }

    /// `GET path` on the HTTP API, as JSON.
    pub async fn api(&self, path_and_query: &str) -> serde_json::Value {
        let got = TestClient::new()
            .get(&format!("{}{path_and_query}", self.url))
            .await;
        serde_json::from_slice(&got.body)
            .unwrap_or_else(|e| panic!("{path_and_query}: not JSON ({e}): {}", got.text()))
    }

    /// Evaluates `query` now: its samples, or Prometheus's error (a parse or evaluation error).
    pub async fn instant(&self, query: &str) -> Result<Vec<Sample>, String> {
        let answer = self
            .api(&format!("/api/v1/query?query={}", encode(query)))
            .await;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        let data = &answer["data"];
        let value = |pair: &serde_json::Value| -> f64 {
            pair[1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("a sample value in {pair}"))
        };
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .expect("a vector")
                .iter()
                .map(|sample| Sample {
                    labels: sample["metric"]
                        .as_object()
                        .expect("labels")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect(),
                    value: value(&sample["value"]),
                })
                .collect()),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value(&data["result"]),
            }]),
            other => Err(format!("unexpected result type {other:?} for {query}")),
        }
    }

    /// Evaluates `query` now; the first sample's value, if any. Panics if it does not evaluate.
    pub async fn query(&self, query: &str) -> Option<f64> {
        match self.instant(query).await {
            Ok(samples) => samples.first().map(|s| s.value),
            Err(error) => panic!("{query}: {error}"),
        }
    }

    /// Waits (bounded) until `query` evaluates to `expected`.
    pub async fn wait_for(&self, query: &str, expected: f64) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.query(query).await;
            if value == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query} = {value:?}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The values of `label` on the series `matcher` selects (Grafana's
    /// `label_values(matcher, label)`).
    pub async fn label_values(&self, label: &str, matcher: &str) -> Vec<String> {
        let answer = self
            .api(&format!(
                "/api/v1/label/{label}/values?match[]={}",
                encode(matcher)
            ))
            .await;
        assert_eq!(
            answer["status"], "success",
            "label_values({matcher}, {label}): {answer}"
        );
        answer["data"]
            .as_array()
            .expect("label values")
            .iter()
            .map(|v| v.as_str().expect("a label value").to_owned())
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
