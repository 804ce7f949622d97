//! A real Prometheus scraping loaded sidecaches, and the demo load generator.

use super::*;

// === a real Prometheus, scraping loaded sidecaches ===

/// Grafana's rendering of a multi-value variable in a Prometheus query: each value regex-escaped,
/// alternatives in parentheses.
fn grafana_regex(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|value| {
            let mut out = String::new();
            for c in value.chars() {
                if "\\^$*+?.()|{}[]'".contains(c) {
                    out.push_str("\\\\");
                }
                out.push(c);
            }
            out
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// Replaces `$name` and `${name}` with their values; an unknown variable fails the test.
fn substitute(expr: &str, variables: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced {
            assert_eq!(chars.next(), Some('}'), "{expr}: ${{{name} not closed");
        }
        let value = variables
            .get(&name)
            .unwrap_or_else(|| panic!("{expr}: unknown variable ${name}"));
        out.push_str(value);
    }
    out
}

/// The scrape targets of the live test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// Mostly hits, a few misses, one origin error, a purge: no alert may fire for it.
    Healthy,
    /// A cache far too small for its traffic, an origin failing one request in six, nothing
    /// asked twice, and sixty requests parked behind one hanging origin load.
    Troubled,
    /// A port that accepts connections and never answers: its scrapes time out.
    Dead,
}

/// The instances each alert's expression must select under the load; every other must be quiet.
/// Every alert of the rules file is listed (the test checks): a new alert needs a line here.
const ALERTS: &[(&str, &[Target])] = &[
    ("SidecacheDown", &[Target::Dead]),
    ("SidecacheHitRatioLow", &[Target::Troubled]),
    ("SidecacheOriginErrorsHigh", &[Target::Troubled]),
    ("SidecacheEvictingHot", &[Target::Troubled]),
    ("SidecacheCoalescingWaitersPilingUp", &[Target::Troubled]),
];

/// How many requests wait on the troubled instance's hanging load (above the alert's 50).
const PARKED_WAITERS: usize = 60;

/// The range `$__rate_interval`, `$__interval` and `$__range` stand for: the whole test run fits
/// in it, and it holds many of the 200 ms scrapes.
const GRAFANA_RANGE: &str = "1m";

fn origin_script(
    burst: &Gate,
    hold: &Gate,
) -> impl Fn(&support::Seen, usize) -> Reply + Send + Sync + 'static {
    let (burst, hold) = (burst.clone(), hold.clone());
    move |seen, n| {
        let path = seen.path.as_str();
        if path == "/burst" {
            Reply::ok("burst")
                .header("cache-control", "max-age=60")
                .gated(&burst)
        } else if path == "/hold" {
            Reply::ok("held")
                .header("cache-control", "max-age=60")
                .gated(&hold)
        } else if path == "/private" {
            Reply::ok(format!("private {n}")).header("cache-control", "private")
        } else if path == "/fail" {
            Reply::new(503, "down")
        } else if path.starts_with("/big/") {
            Reply::ok(vec![b'x'; 7000]).header("cache-control", "max-age=60")
        } else {
            Reply::ok("cacheable").header("cache-control", "max-age=60")
        }
    }
}

/// The healthy instance's load: hits, misses, a coalesced burst, uncacheable requests, an
/// unsafe method, one origin error and a purge. Returns how many requests it made.
async fn healthy_load(sidecache: &Sidecache, origin: &TestOrigin, burst: &Gate) -> u64 {
    let client = TestClient::new();
    let mut requests = 0;
    for key in 0..40 {
        for _ in 0..5 {
            client.get(&sidecache.url(&format!("/a/{key}"))).await;
            requests += 1;
        }
    }
    let arrived = origin.seen().len();
    let waiting: Vec<_> = (0..10)
        .map(|_| {
            let (client, url) = (client.clone(), sidecache.url("/burst"));
            tokio::spawn(async move { client.get(&url).await })
        })
        .collect();
    origin.arrivals(arrived + 1).await;
    let cache = sidecache.proxy.cache();
    support::wait_until(|| cache.waiting() == 9).await;
    burst.open();
    for request in waiting {
        assert_eq!(request.await.expect("a burst request").status, 200);
    }
    requests += 10;
    for _ in 0..4 {
        client.get(&sidecache.url("/private")).await;
    }
    let post = client
        .send(Method::POST, &sidecache.url("/a/1"), &[], Bytes::from("x"))
        .await;
    assert_eq!(post.status, 200);
    assert_eq!(client.get(&sidecache.url("/fail")).await.status, 503);
    requests += 4 + 1 + 1;
    let purge = client
        .send(
            Method::POST,
            &sidecache.admin_url("/purge?prefix=/a/"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(purge.status, 200);
    for key in 0..10 {
        client.get(&sidecache.url(&format!("/a/{key}"))).await;
    }
    requests + 10
}

/// The troubled instance's URLs come in phases, each phase's asked more often than the last's.
/// Six 7 KB answers fill its 48 KiB: each phase's URLs are refused until asked more often than
/// the entries they would push out, then admitted, evicting the last phase's (the evicting-hot
/// alert's case). Twelve phases are enough requests that its rate over the rules' 5-minute window
/// (where Prometheus divides by the whole window, however short the test) passes the hit ratio
/// alert's traffic floor of 1 request/s.
const TROUBLED_PHASES: u32 = 12;
const TROUBLED_URLS_PER_PHASE: u32 = 6;

/// The troubled instance's load (see [`TROUBLED_PHASES`]), with an origin failure after each
/// URL. Returns how many requests it made.
async fn troubled_load(sidecache: &Sidecache) -> u64 {
    let client = TestClient::new();
    let mut requests = 0;
    for phase in 0..TROUBLED_PHASES {
        let first = phase * TROUBLED_URLS_PER_PHASE;
        for key in first..first + TROUBLED_URLS_PER_PHASE {
            for _ in 0..phase + 2 {
                client.get(&sidecache.url(&format!("/big/{key}"))).await;
                requests += 1;
            }
            assert_eq!(client.get(&sidecache.url("/fail")).await.status, 503);
            requests += 1;
        }
    }
    requests
}

/// Sends `GET path` on a new connection and leaves the answer unread.
async fn park(proxy: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    let mut connection = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    connection
        .write_all(request.as_bytes())
        .await
        .expect("send a request");
    connection
}

/// The status line of the answer on a parked connection.
async fn status_line(connection: tokio::net::TcpStream) -> String {
    let mut lines = tokio::io::BufReader::new(connection).lines();
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("an answer in time")
        .expect("read an answer")
        .expect("a status line")
}

/// Waits (bounded) until `query`'s samples satisfy `ok`.
async fn eventually(prometheus: &Prometheus, query: &str, ok: impl Fn(&[Sample]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = prometheus
            .instant(query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        if ok(&samples) {
            return;
        }
        assert!(Instant::now() < deadline, "{query}: {samples:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn instances(samples: &[Sample]) -> BTreeSet<String> {
    samples
        .iter()
        .map(|s| s.label("instance").to_owned())
        .collect()
}

/// The active (pending or firing) alerts, as (alert name, instance).
async fn active_alerts(prometheus: &Prometheus) -> BTreeSet<(String, String)> {
    let answer = prometheus.api("/api/v1/alerts").await;
    answer["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                a["labels"]["instance"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Three scrape targets — a healthy sidecache, a troubled one, a dead port — and a real
/// Prometheus scraping them every 200 ms with the rules loaded, after the load has run and the
/// rules have been evaluated on it.
struct Lab {
    prometheus: Prometheus,
    healthy: Sidecache,
    troubled: Sidecache,
    dead: std::net::TcpListener,
    /// Connections waiting on the troubled instance's hanging load, and what releases it.
    parked: Vec<tokio::net::TcpStream>,
    hold: Gate,
    origin: TestOrigin,
}

impl Lab {
    async fn start(binary: PathBuf) -> Self {
        let (burst, hold) = (Gate::new(), Gate::new());
        let origin = TestOrigin::start(origin_script(&burst, &hold)).await;
        let healthy = Sidecache::start(&origin.url(), &[]).await;
        let troubled = Sidecache::start(
            &origin.url(),
            &[
                "--cache-capacity",
                "48KiB",
                "--max-object-size",
                "8KiB",
                "--coalesce-timeout",
                "120s",
                "--origin-timeout",
                "120s",
            ],
        )
        .await;
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the dead target");

        // Park the waiters before Prometheus starts, so every scrape it takes sees them. They
        // are raw connections, so no client timeout ends their wait before the test does.
        let mut parked = Vec::new();
        for _ in 0..=PARKED_WAITERS {
            parked.push(park(troubled.proxy_addr, "/hold").await);
        }
        let troubled_cache = troubled.proxy.cache();
        support::wait_until(|| troubled_cache.waiting() == PARKED_WAITERS).await;

        let targets = vec![
            healthy.admin_addr.to_string(),
            troubled.admin_addr.to_string(),
            dead.local_addr().expect("an address").to_string(),
        ];
        let rules_file = repo_path(RULES);
        let config = prometheus::config(
            Duration::from_millis(200),
            &[(SIDECACHE_JOB, targets)],
            &[&rules_file],
        );
        let prometheus = Prometheus::start(binary, &config).await;
        eventually(&prometheus, "up", |s| s.len() == 3).await;
        let lab = Self {
            prometheus,
            healthy,
            troubled,
            dead,
            parked,
            hold,
            origin,
        };

        // The load, then a scrape that has seen all of it.
        let healthy_requests = healthy_load(&lab.healthy, &lab.origin, &burst).await;
        let troubled_requests = troubled_load(&lab.troubled).await;
        for (target, requests) in [
            (Target::Healthy, healthy_requests),
            (Target::Troubled, troubled_requests),
        ] {
            let query = format!(
                "sum(sidecache_requests_total{{instance=\"{}\"}})",
                lab.instance(target)
            );
            lab.prometheus.wait_for(&query, requests as f64).await;
        }

        // The rules have been evaluated on that data once the alerts stand as expected.
        let expected: BTreeSet<(String, String)> = ALERTS
            .iter()
            .flat_map(|(alert, targets)| {
                targets
                    .iter()
                    .map(|t| ((*alert).to_owned(), lab.instance(*t)))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let active = active_alerts(&lab.prometheus).await;
            if active == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "active alerts {active:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        lab
    }

    /// The `instance` label Prometheus gives `target`.
    fn instance(&self, target: Target) -> String {
        match target {
            Target::Healthy => self.healthy.admin_addr.to_string(),
            Target::Troubled => self.troubled.admin_addr.to_string(),
            Target::Dead => self.dead.local_addr().expect("an address").to_string(),
        }
    }

    /// The instances that export sidecache's metrics.
    fn running(&self) -> BTreeSet<String> {
        [Target::Healthy, Target::Troubled]
            .map(|t| self.instance(t))
            .into()
    }

    /// Every rule is healthy in Prometheus; every recording rule has data for every running
    /// instance; every alert's condition selects exactly the instances [`ALERTS`] names.
    async fn check_rules(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let listed: BTreeSet<String> = ALERTS.iter().map(|(a, _)| (*a).to_owned()).collect();
        assert_eq!(listed, alert_names(), "ALERTS lists every alert of {RULES}");
        let rules_api = self.prometheus.api("/api/v1/rules").await;
        for group in rules_api["data"]["groups"].as_array().expect("rule groups") {
            for rule in group["rules"].as_array().expect("rules") {
                if rule["health"] != "ok" {
                    failures.push(format!(
                        "rule {}: {} {}",
                        rule["name"], rule["health"], rule["lastError"]
                    ));
                }
            }
        }
        for rule in rules() {
            let at = format!("{RULES} {}", rule.name);
            let samples = match self.prometheus.instant(&rule.expr).await {
                Ok(samples) => samples,
                Err(error) => {
                    failures.push(format!("{at}: {error}"));
                    continue;
                }
            };
            if rule.alert {
                // The condition is false for the healthy instance — no data is the correct
                // answer there — and true exactly for the instances ALERTS names.
                let (_, targets) = ALERTS
                    .iter()
                    .find(|(name, _)| *name == rule.name)
                    .expect("listed");
                let expected: BTreeSet<String> =
                    targets.iter().map(|t| self.instance(*t)).collect();
                if instances(&samples) != expected {
                    failures.push(format!(
                        "{at}: selects {:?}, expected {expected:?}",
                        instances(&samples)
                    ));
                }
                continue;
            }
            // A recording rule has data for every running instance (or, aggregated by job, has
            // data), and so has the series it records.
            let recorded = self
                .prometheus
                .instant(&rule.name)
                .await
                .unwrap_or_default();
            for (what, samples) in [("expr", &samples), ("recorded series", &recorded)] {
                let ok = if rule.name.starts_with("job:") {
                    !samples.is_empty()
                } else {
                    self.running().is_subset(&instances(samples))
                };
                if !ok {
                    failures.push(format!("{at}: {what} lacks an instance: {samples:?}"));
                }
            }
        }
        failures
    }

    /// Every panel query of every dashboard, rendered as Grafana renders it, parses and returns
    /// data. The one exception is explicit: the write-behind panels are empty, and must be, while
    /// sidecache exports no write-behind metrics; once it does, they must show data too.
    async fn check_dashboards(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let writebehind_exported = self
            .healthy
            .metrics()
            .await
            .text
            .contains("sidecache_writebehind_");
        for (name, dashboard) in dashboards() {
            let mut variables = BTreeMap::from([
                ("__rate_interval".to_owned(), GRAFANA_RANGE.to_owned()),
                ("__interval".to_owned(), GRAFANA_RANGE.to_owned()),
                ("__range".to_owned(), GRAFANA_RANGE.to_owned()),
            ]);
            let mut values_of = BTreeMap::new();
            for (variable, selector, label) in query_variables(&dashboard) {
                let selector = substitute(&selector, &variables);
                let values = self.prometheus.label_values(&label, &selector).await;
                variables.insert(variable.clone(), grafana_regex(&values));
                values_of.insert(variable, values);
            }
            assert_eq!(values_of["job"], [SIDECACHE_JOB], "{name}: $job");
            let offered: BTreeSet<String> = values_of["instance"].iter().cloned().collect();
            assert_eq!(offered, self.running(), "{name}: $instance");

            let queries = panel_queries(&name, &dashboard);
            assert!(queries.len() > 20, "{name}: {} queries", queries.len());
            for query in queries {
                // A repeated row's panels are drawn once per value, each with that value alone.
                let renderings: Vec<BTreeMap<String, String>> = match &query.repeat {
                    None => vec![variables.clone()],
                    Some(repeat) => values_of[repeat]
                        .iter()
                        .map(|value| {
                            let mut one = variables.clone();
                            let alone = grafana_regex(std::slice::from_ref(value));
                            one.insert(repeat.clone(), alone);
                            one
                        })
                        .collect(),
                };
                let empty_is_right =
                    !writebehind_exported && query.expr.contains("sidecache_writebehind_");
                for rendering in renderings {
                    let expr = substitute(&query.expr, &rendering);
                    match self.prometheus.instant(&expr).await {
                        Err(error) => failures.push(format!("{}: {error}\n  {expr}", query.at)),
                        Ok(samples) if samples.is_empty() != empty_is_right => {
                            let expected = if empty_is_right { "no data" } else { "data" };
                            failures.push(format!("{}: expected {expected}\n  {expr}", query.at));
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
        failures
    }

    /// The Jaeger data source's metric queries, with a span's `service.name` (sidecache's
    /// OTEL_SERVICE_NAME in docker-compose.yml) mapped to `job`, return data.
    async fn check_trace_links(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let compose = Compose::load();
        let service_name = environment(compose.sidecache().1)["OTEL_SERVICE_NAME"].clone();
        let tags = BTreeMap::from([("__tags".to_owned(), format!("job=\"{service_name}\""))]);
        for (name, query) in trace_to_metrics_queries() {
            let expr = substitute(&query, &tags);
            match self.prometheus.instant(&expr).await {
                Err(error) => failures.push(format!("trace to metrics {name}: {error}")),
                Ok(samples) if samples.is_empty() => {
                    failures.push(format!("trace to metrics {name}: no data\n  {expr}"));
                }
                Ok(_) => {}
            }
        }
        failures
    }

    async fn stop(self) {
        self.hold.open();
        for connection in self.parked {
            assert_eq!(status_line(connection).await, "HTTP/1.1 200 OK");
        }
        self.healthy.stop().await;
        self.troubled.stop().await;
    }
}

#[tokio::test]
async fn a_real_prometheus_evaluates_every_dashboard_and_rule_expression_against_loaded_sidecaches()
{
    let Some(binary) = support::require_tool("prometheus") else {
        return;
    };
    let lab = Lab::start(binary).await;
    let mut failures = lab.check_rules().await;
    failures.extend(lab.check_dashboards().await);
    failures.extend(lab.check_trace_links().await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    lab.stop().await;
}

// === the demo load generator ===

#[tokio::test]
async fn the_demo_load_generator_exercises_what_the_dashboard_shows() {
    let Some(_) = support::require_tool("curl") else {
        return;
    };
    let config = Config::load_from(
        [
            "sidecache",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token",
            "t0ken",
        ],
        &HashMap::<String, String>::new(),
    )
    .expect("config");
    // No --origin: the embedded demo origin, as in docker-compose.yml.
    let sidecache = Sidecache::start_with(&config).await;
    let script = repo_path("deploy/loadgen.sh");
    let status = tokio::process::Command::new("sh")
        .arg(&script)
        .env("PROXY", format!("http://{}", sidecache.proxy_addr))
        .env("ADMIN", format!("http://{}", sidecache.admin_addr))
        .env("ADMIN_TOKEN", "t0ken")
        .env("ROUNDS", "3")
        .env("PAUSE", "0")
        .env("DELAY_MS", "20")
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(60), status)
        .await
        .expect("the load generator finished in time")
        .expect("run sh");
    assert!(status.success());

    let scrape = sidecache.metrics().await;
    let requests = |result: &str| {
        scrape.value(&format!(
            "sidecache_requests_total{{cache_result=\"{result}\"}}"
        ))
    };
    for result in ["hit", "miss", "coalesced", "pass", "error"] {
        assert!(requests(result) > 0.0, "no {result} requests");
    }
    assert!(
        scrape.value("sidecache_invalidations_total") > 0.0,
        "no purge"
    );
    assert!(
        scrape.value("sidecache_coalesce_waiters_total{outcome=\"shared\"}") > 0.0,
        "no coalesced waiters"
    );
    sidecache.stop().await;
}
