//! The deployment kit, checked against the real thing: `promtool` accepts the Prometheus
//! configuration and the rules and passes the alerts' unit tests; a real Prometheus scraping
//! loaded sidecaches evaluates every PromQL expression of the dashboards, the Grafana data sources
//! and the rules; the dashboard passes a lint; docker-compose.yml and the Dockerfile give
//! sidecache only options it really has, and mount only files that exist.

use crate::support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use sidecache::config::Config;
use support::prometheus::{self, Prometheus, Sample};
use support::{Gate, Reply, Sidecache, TestClient, TestOrigin};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

// === the kit's files ===

const PROMETHEUS_CONFIG: &str = "prometheus.yml";
const RULES: &str = "rules/sidecache.rules.yml";
const RULE_TESTS: &str = "rules/sidecache.rules.test.yml";
const COMPOSE: &str = "docker-compose.yml";
const DOCKERFILE: &str = "Dockerfile";
const DATASOURCES: &str = "deploy/grafana/provisioning/datasources/sidecache.yml";
const DASHBOARD_PROVIDERS: &str = "deploy/grafana/provisioning/dashboards/sidecache.yml";
const DASHBOARDS: &str = "dashboards";
/// The alert runbooks, one section per alert.
const RUNBOOK: &str = "docs/runbook.md";
/// What every alert's `runbook_url` starts with; its anchor follows.
const RUNBOOK_URL: &str = "docs/runbook.md#";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml(relative: &str) -> Yaml {
    serde_norway::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn text(value: &Yaml) -> &str {
    value.as_str().unwrap_or("")
}

fn items(value: &Yaml) -> &[Yaml] {
    value.as_sequence().map_or(&[], Vec::as_slice)
}

/// Every dashboard in `dashboards/`, by file name.
fn dashboards() -> Vec<(String, Json)> {
    let mut found: Vec<_> = std::fs::read_dir(repo_path(DASHBOARDS))
        .expect("dashboards/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let json = std::fs::read_to_string(&path).expect("read a dashboard");
            let dashboard = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, dashboard)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty(), "no dashboards in {DASHBOARDS}/");
    found
}

// === rules ===

/// One rule of the rules file.
struct Rule {
    /// The recorded series or the alert's name.
    name: String,
    alert: bool,
    expr: String,
    labels: Yaml,
    annotations: Yaml,
}

fn rules() -> Vec<Rule> {
    let file = yaml(RULES);
    let mut rules = Vec::new();
    for group in items(&file["groups"]) {
        for rule in items(&group["rules"]) {
            let alert = !rule["alert"].is_null();
            let name = if alert {
                &rule["alert"]
            } else {
                &rule["record"]
            };
            rules.push(Rule {
                name: text(name).to_owned(),
                alert,
                expr: text(&rule["expr"]).trim().to_owned(),
                labels: rule["labels"].clone(),
                annotations: rule["annotations"].clone(),
            });
        }
    }
    assert!(rules.iter().any(|r| r.alert) && rules.iter().any(|r| !r.alert));
    rules
}

fn alert_names() -> BTreeSet<String> {
    rules()
        .into_iter()
        .filter(|r| r.alert)
        .map(|r| r.name)
        .collect()
}

// === promtool ===

/// Runs `promtool ARGS` in the repository and asserts it succeeds.
fn promtool(args: &[&str]) {
    let Some(promtool) = support::require_tool("promtool") else {
        return;
    };
    let output = Command::new(promtool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run promtool");
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_prometheus_config_and_its_rule_files() {
    promtool(&["check", "config", PROMETHEUS_CONFIG]);
}

#[test]
fn promtool_accepts_the_rules() {
    promtool(&["check", "rules", RULES]);
}

#[test]
fn the_alerts_promtool_unit_tests_pass() {
    promtool(&["test", "rules", RULE_TESTS]);
}

#[test]
fn prometheus_yml_loads_the_rules_file() {
    let config = yaml(PROMETHEUS_CONFIG);
    let files: Vec<&str> = items(&config["rule_files"]).iter().map(text).collect();
    assert_eq!(files, [RULES]);
}

#[test]
fn every_alert_has_unit_tests_where_it_fires_and_where_it_does_not() {
    let alerts = alert_names();
    let tests = yaml(RULE_TESTS);
    let files: Vec<&str> = items(&tests["rule_files"]).iter().map(text).collect();
    assert_eq!(
        files,
        ["sidecache.rules.yml"],
        "the tests load the rules file"
    );
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for test in items(&tests["tests"]) {
        for case in items(&test["alert_rule_test"]) {
            let name = text(&case["alertname"]).to_owned();
            assert!(alerts.contains(&name), "a test of an unknown alert {name}");
            if items(&case["exp_alerts"]).is_empty() {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    assert_eq!(fires, alerts, "alerts with a test where they fire");
    assert_eq!(quiet, alerts, "alerts with a test where they do not fire");
}

#[test]
fn every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section() {
    let anchors = runbook_anchors();
    for rule in rules().into_iter().filter(|r| r.alert) {
        let name = &rule.name;
        assert!(
            ["critical", "warning"].contains(&text(&rule.labels["severity"])),
            "{name}: severity"
        );
        for annotation in ["summary", "description"] {
            assert!(
                !text(&rule.annotations[annotation]).trim().is_empty(),
                "{name}: {annotation}"
            );
        }
        let runbook = text(&rule.annotations["runbook_url"]);
        let anchor = runbook.strip_prefix(RUNBOOK_URL).unwrap_or_else(|| {
            panic!("{name}: runbook_url {runbook:?} is not {RUNBOOK_URL}anchor")
        });
        assert_eq!(
            anchor,
            name.to_lowercase(),
            "{name}: the runbook is named after the alert"
        );
        assert!(
            anchors.contains(anchor),
            "{name}: {RUNBOOK} has no section #{anchor}"
        );
    }
}

/// The anchors of the runbook's headings, as GitHub makes them.
fn runbook_anchors() -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in read(RUNBOOK).lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let anchor: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        anchors.insert(anchor);
    }
    anchors
}

// === the dashboards ===

/// A PromQL query of a dashboard panel.
struct PanelQuery {
    at: String,
    expr: String,
    /// The variable the panel's row repeats over, if any.
    repeat: Option<String>,
}

/// Every panel, rows' nested panels included, with the variable its row repeats over.
fn panels(dashboard: &Json) -> Vec<(&Json, Option<String>)> {
    let mut found = Vec::new();
    let mut repeat = None;
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            repeat = panel["repeat"].as_str().map(str::to_owned);
            found.push((panel, None));
            for nested in panel["panels"].as_array().into_iter().flatten() {
                found.push((nested, repeat.clone()));
            }
        } else {
            found.push((panel, repeat.clone()));
        }
    }
    found
}

fn panel_queries(name: &str, dashboard: &Json) -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    for (panel, repeat) in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(PanelQuery {
                at: format!(
                    "{name} / {} / {}",
                    panel["title"].as_str().unwrap_or("?"),
                    target["refId"].as_str().unwrap_or("?")
                ),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                repeat: repeat.clone(),
            });
        }
    }
    queries
}

/// A dashboard's query variables, in order: (name, `label_values(selector, label)` parts).
fn query_variables(dashboard: &Json) -> Vec<(String, String, String)> {
    let mut variables = Vec::new();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"]
            .as_str()
            .expect("a variable name")
            .to_owned();
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or_else(|| panic!("${name}: no query"));
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("${name}: {query} is not label_values(selector, label)"));
        let (selector, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("${name}: {query} has no selector"));
        variables.push((name, selector.trim().to_owned(), label.trim().to_owned()));
    }
    variables
}

#[test]
fn the_dashboards_are_valid_and_lint_clean() {
    for (name, dashboard) in dashboards() {
        assert!(
            dashboard["schemaVersion"].as_u64() >= Some(39),
            "{name}: a current schema"
        );
        assert!(
            dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{name}: uid"
        );
        assert!(
            dashboard["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: title"
        );

        let variables = dashboard["templating"]["list"]
            .as_array()
            .expect("templating");
        let variable = |wanted: &str| {
            variables
                .iter()
                .find(|v| v["name"] == wanted)
                .unwrap_or_else(|| panic!("{name}: no ${wanted} variable"))
        };
        let datasource = variable("datasource");
        assert_eq!(datasource["type"], "datasource", "{name}: $datasource");
        assert_eq!(datasource["query"], "prometheus", "{name}: $datasource");
        for wanted in ["job", "instance"] {
            let v = variable(wanted);
            assert_eq!(v["type"], "query", "{name}: ${wanted}");
            assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}: ${wanted}");
            assert_eq!(v["multi"], true, "{name}: ${wanted} is multi-valued");
        }
        assert_eq!(
            query_variables(&dashboard).len(),
            2,
            "{name}: job and instance"
        );

        let mut ids = BTreeSet::new();
        let mut repeated = false;
        for (panel, _) in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("?");
            let at = format!("{name} / {title}");
            assert!(ids.insert(panel["id"].as_u64().expect("an id")), "{at}: id");
            assert!(panel["gridPos"]["w"].as_u64().is_some(), "{at}: gridPos");
            if panel["type"] == "row" {
                repeated |= panel["repeat"] == "instance";
                continue;
            }
            assert!(
                panel["description"].as_str().is_some_and(|d| d.len() > 20),
                "{at}: a description"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{at}: datasource"
            );
            let defaults = &panel["fieldConfig"]["defaults"];
            assert!(
                defaults["unit"].as_str().is_some_and(|u| !u.is_empty()),
                "{at}: unit"
            );
            assert!(
                defaults["thresholds"]["steps"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty()),
                "{at}: thresholds"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{at}: targets");
            for target in targets {
                let expr = target["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{at}: an empty query");
                assert!(
                    target["datasource"].is_null()
                        || target["datasource"]["uid"] == "${datasource}",
                    "{at}: the target's datasource"
                );
                assert!(
                    expr.contains("job=~\"$job\""),
                    "{at}: not filtered by $job: {expr}"
                );
                if expr.contains("sidecache_") || expr.contains("process_") {
                    assert!(
                        expr.contains("instance=~\"$instance\""),
                        "{at}: not filtered by $instance: {expr}"
                    );
                }
                // Rate windows follow the scrape interval; a fixed window breaks at other ones.
                assert!(
                    !expr.contains("[1m]") && !expr.contains("[5m]"),
                    "{at}: a fixed range instead of $__rate_interval: {expr}"
                );
            }
        }
        assert!(repeated, "{name}: a row repeated per instance");
    }
}

// === the Grafana provisioning ===

/// The Jaeger data source's trace-to-metrics queries.
fn trace_to_metrics_queries() -> Vec<(String, String)> {
    let file = yaml(DATASOURCES);
    let jaeger = items(&file["datasources"])
        .iter()
        .find(|d| d["type"] == "jaeger")
        .expect("a Jaeger data source");
    items(&jaeger["jsonData"]["tracesToMetrics"]["queries"])
        .iter()
        .map(|q| (text(&q["name"]).to_owned(), text(&q["query"]).to_owned()))
        .collect()
}

#[test]
fn the_grafana_data_sources_link_traces_to_the_prometheus_they_provision() {
    let file = yaml(DATASOURCES);
    let sources = items(&file["datasources"]);
    let prometheus = sources
        .iter()
        .find(|d| d["type"] == "prometheus")
        .expect("a Prometheus data source");
    let jaeger = sources
        .iter()
        .find(|d| d["type"] == "jaeger")
        .expect("a Jaeger data source");
    let links = &jaeger["jsonData"]["tracesToMetrics"];
    assert_eq!(links["datasourceUid"], prometheus["uid"]);
    let tags: Vec<(&str, &str)> = items(&links["tags"])
        .iter()
        .map(|t| (text(&t["key"]), text(&t["value"])))
        .collect();
    assert_eq!(tags, [("service.name", "job")]);
    let queries = trace_to_metrics_queries();
    assert!(!queries.is_empty());
    for (name, query) in queries {
        assert!(
            query.contains("{$__tags"),
            "{name}: not filtered by the span's tags"
        );
    }
    // $__rate_interval is derived from timeInterval: it must be the scrape interval.
    let config = yaml(PROMETHEUS_CONFIG);
    assert_eq!(
        prometheus["jsonData"]["timeInterval"],
        config["global"]["scrape_interval"]
    );
}

// === sidecache's real options ===

/// The flags and environment variables `sidecache --help` documents.
struct Options {
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
}

fn sidecache_options() -> Options {
    let output = Command::new(env!("CARGO_BIN_EXE_sidecache"))
        .arg("--help")
        .output()
        .expect("run sidecache --help");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let mut options = Options {
        flags: BTreeSet::new(),
        env: BTreeSet::new(),
    };
    for line in help.lines() {
        if let Some(flag) = line.trim_start().strip_prefix("--") {
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            options.flags.insert(format!("--{name}"));
        }
        let mut rest = line;
        while let Some(at) = rest.find("[env: ") {
            let after = &rest[at + "[env: ".len()..];
            let end = after.find(']').expect("a closing ]");
            options.env.insert(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    assert!(options.flags.contains("--origin") && options.env.contains("SIDECACHE_ORIGIN"));
    options
}

/// The standard OpenTelemetry SDK variables (opentelemetry.io, "Environment Variable
/// Specification") sidecache's tracing is configured with. Only these OTEL_* names are accepted.
const OTEL_VARIABLES: &[&str] = &[
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// `${NAME:-default}` and `${NAME-default}` as compose interpolates them with `NAME` unset.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}').expect("a closing }");
        let inner = &after[..end];
        let default = inner
            .split_once(":-")
            .or_else(|| inner.split_once('-'))
            .map_or("", |(_, default)| default);
        out.push_str(default);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A service's environment, in either of compose's forms, interpolated.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    let env = &service["environment"];
    if let Some(list) = env.as_sequence() {
        return list
            .iter()
            .map(|entry| {
                let (k, v) = text(entry).split_once('=').expect("KEY=VALUE");
                (k.to_owned(), interpolate(v))
            })
            .collect();
    }
    env.as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Number(n) => n.to_string(),
                Yaml::Bool(b) => b.to_string(),
                other => panic!("environment value {other:?}"),
            };
            (text(k).to_owned(), interpolate(&value))
        })
        .collect()
}

/// Checks that `env` and `args` name only options sidecache has, then loads them with
/// sidecache's own configuration loader (so every value is checked too).
fn load_sidecache_config(
    options: &Options,
    env: &BTreeMap<String, String>,
    args: &[String],
    at: &str,
) -> Config {
    for name in env.keys() {
        if name.starts_with("SIDECACHE_") {
            assert!(options.env.contains(name), "{at}: sidecache has no {name}");
        } else {
            assert!(
                OTEL_VARIABLES.contains(&name.as_str()),
                "{at}: {name} is neither a sidecache option nor a standard OTEL_* variable"
            );
        }
    }
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().expect("a flag");
        assert!(
            options.flags.contains(flag),
            "{at}: sidecache has no {flag}"
        );
    }
    let sidecache_env: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("SIDECACHE_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut argv = vec!["sidecache".to_owned()];
    argv.extend(args.iter().cloned());
    Config::load_from(argv, &sidecache_env)
        .unwrap_or_else(|e| panic!("{at}: sidecache rejects its configuration: {e}"))
}

// === docker-compose.yml ===

struct Compose(Yaml);

impl Compose {
    fn load() -> Self {
        Self(yaml(COMPOSE))
    }

    fn service(&self, name: &str) -> &Yaml {
        let service = &self.0["services"][name];
        assert!(!service.is_null(), "{COMPOSE}: no service {name}");
        service
    }

    fn service_names(&self) -> BTreeSet<String> {
        self.0["services"]
            .as_mapping()
            .expect("services")
            .keys()
            .map(|k| text(k).to_owned())
            .collect()
    }

    /// The one service built from this repository: sidecache.
    fn sidecache(&self) -> (String, &Yaml) {
        let built: Vec<String> = self
            .service_names()
            .into_iter()
            .filter(|name| !self.service(name)["build"].is_null())
            .collect();
        assert_eq!(
            built.len(),
            1,
            "{COMPOSE}: one service built here: {built:?}"
        );
        let name = built.into_iter().next().expect("one");
        let service = self.service(&name);
        (name, service)
    }

    /// A service's bind mounts: (repository path, container path).
    fn mounts(&self, service: &str) -> Vec<(String, String)> {
        items(&self.service(service)["volumes"])
            .iter()
            .filter_map(|volume| {
                let (source, target) = match volume {
                    Yaml::String(short) => {
                        let mut parts = short.split(':');
                        let source = parts.next().expect("a source").to_owned();
                        let target = parts.next().expect("a target").to_owned();
                        (source, target)
                    }
                    long => (
                        text(&long["source"]).to_owned(),
                        text(&long["target"]).to_owned(),
                    ),
                };
                // Named volumes live in Docker, not in the repository.
                let bind = source.starts_with("./") || source.starts_with('/');
                bind.then(|| (source.trim_start_matches("./").to_owned(), target))
            })
            .collect()
    }

    /// The repository path that `container_path` is in `service`, through its bind mounts.
    fn resolve(&self, service: &str, container_path: &str) -> Option<PathBuf> {
        self.mounts(service)
            .into_iter()
            .filter(|(_, target)| {
                container_path == target
                    || container_path.starts_with(&format!("{}/", target.trim_end_matches('/')))
            })
            .max_by_key(|(_, target)| target.len())
            .map(|(source, target)| {
                let rest = container_path[target.len()..].trim_start_matches('/');
                let path = repo_path(&source);
                if rest.is_empty() {
                    path
                } else {
                    path.join(rest)
                }
            })
    }

    /// The container ports a service publishes.
    fn published_ports(&self, service: &str) -> BTreeSet<u16> {
        items(&self.service(service)["ports"])
            .iter()
            .map(|port| {
                let spec = match port {
                    Yaml::Number(n) => n.to_string(),
                    other => text(other).to_owned(),
                };
                let container = spec.rsplit(':').next().expect("a port");
                let container = container.split('/').next().expect("a port");
                container.parse().unwrap_or_else(|_| panic!("port {spec}"))
            })
            .collect()
    }
}

/// `http://host:port[/...]` → (host, port).
fn host_port(url: &str) -> (String, u16) {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .expect("an authority");
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{url}: no port"));
    (host.to_owned(), port.parse().expect("a port number"))
}

/// The targets of the scrape job named `job` in prometheus.yml.
fn scrape_targets(job: &str) -> Vec<String> {
    let config = yaml(PROMETHEUS_CONFIG);
    let scrape = items(&config["scrape_configs"])
        .iter()
        .find(|s| s["job_name"] == job)
        .unwrap_or_else(|| panic!("{PROMETHEUS_CONFIG}: no job {job}"));
    items(&scrape["static_configs"])
        .iter()
        .flat_map(|s| items(&s["targets"]))
        .map(|t| text(t).to_owned())
        .collect()
}

/// The job that scrapes sidecache: the one the alert rules select.
const SIDECACHE_JOB: &str = "sidecache";

#[test]
fn every_file_the_compose_stack_mounts_or_builds_from_exists() {
    let compose = Compose::load();
    for service in compose.service_names() {
        for (source, target) in compose.mounts(&service) {
            assert!(
                repo_path(&source).exists(),
                "{service} mounts ./{source} at {target}, which is not in the repository"
            );
        }
    }
    let (name, sidecache) = compose.sidecache();
    let context = sidecache["build"]
        .as_str()
        .or(sidecache["build"]["context"].as_str());
    assert_eq!(
        context,
        Some("."),
        "{name} is built from the repository root"
    );
    assert!(repo_path(DOCKERFILE).is_file());
}

#[test]
fn the_compose_stack_gives_sidecache_only_options_it_has_and_wires_its_ports() {
    let options = sidecache_options();
    let compose = Compose::load();
    let (name, service) = compose.sidecache();
    let env = environment(service);
    let args: Vec<String> = items(&service["command"])
        .iter()
        .map(|a| text(a).to_owned())
        .collect();
    let config = load_sidecache_config(&options, &env, &args, &format!("{COMPOSE} {name}"));

    // Reachable from the other containers, and published on the ports it listens on.
    for listen in [config.proxy.listen, config.admin.listen] {
        assert!(
            listen.ip().is_unspecified(),
            "{name} listens on {listen}: not reachable"
        );
    }
    // An admin port reachable from the other containers carries a token.
    assert!(
        config.admin.token.is_some() && !config.admin.insecure,
        "{name}: the admin port is open without a token"
    );
    let (proxy_port, admin_port) = (config.proxy.listen.port(), config.admin.listen.port());
    assert_eq!(
        compose.published_ports(&name),
        BTreeSet::from([proxy_port, admin_port])
    );

    // Prometheus scrapes the admin port.
    assert_eq!(
        scrape_targets(SIDECACHE_JOB),
        [format!("{name}:{admin_port}")]
    );

    // The load generator talks to the proxy and admin ports.
    let loadgen = environment(compose.service("loadgen"));
    assert_eq!(host_port(&loadgen["PROXY"]), (name.clone(), proxy_port));
    assert_eq!(host_port(&loadgen["ADMIN"]), (name.clone(), admin_port));
    assert_eq!(
        loadgen.get("ADMIN_TOKEN"),
        config.admin.token.as_ref(),
        "the load generator's purges carry sidecache's admin token"
    );
    let script = text(&items(&compose.service("loadgen")["entrypoint"])[1]).to_owned();
    assert!(
        compose
            .resolve("loadgen", &script)
            .is_some_and(|p| p.is_file()),
        "the load generator's script {script} is mounted"
    );
}

#[test]
fn the_compose_stack_sends_spans_to_jaeger_and_links_them_to_the_same_metrics() {
    let compose = Compose::load();
    let (_, service) = compose.sidecache();
    let env = environment(service);
    let services = compose.service_names();

    let protocol = env["OTEL_EXPORTER_OTLP_PROTOCOL"].as_str();
    let (host, port) = host_port(&env["OTEL_EXPORTER_OTLP_ENDPOINT"]);
    assert!(
        services.contains(&host),
        "OTLP goes to {host}, not a service"
    );
    assert!(
        text(&compose.service(&host)["image"]).contains("jaegertracing"),
        "OTLP goes to Jaeger"
    );
    match protocol {
        "grpc" => assert_eq!(port, 4317, "OTLP/gRPC is Jaeger's port 4317"),
        "http/protobuf" => assert_eq!(port, 4318, "OTLP/HTTP is Jaeger's port 4318"),
        other => panic!("OTEL_EXPORTER_OTLP_PROTOCOL={other}"),
    }
    assert!(
        [
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio"
        ]
        .contains(&env["OTEL_TRACES_SAMPLER"].as_str())
    );
    let ratio: f64 = env["OTEL_TRACES_SAMPLER_ARG"].parse().expect("a ratio");
    assert!((0.0..=1.0).contains(&ratio));
    // Grafana maps a span's service.name to the job label: they must be the same name.
    assert_eq!(env["OTEL_SERVICE_NAME"], SIDECACHE_JOB);
}

#[test]
fn the_compose_stack_provisions_grafana_and_prometheus_from_the_repository() {
    let compose = Compose::load();
    let services = compose.service_names();

    // Prometheus reads prometheus.yml and, relative to it, the rule files.
    let config = compose
        .resolve("prometheus", "/etc/prometheus/prometheus.yml")
        .expect("prometheus.yml mounted at the image's default config path");
    assert_eq!(config, repo_path(PROMETHEUS_CONFIG));
    for rule_file in items(&yaml(PROMETHEUS_CONFIG)["rule_files"]) {
        let path = compose
            .resolve(
                "prometheus",
                &format!("/etc/prometheus/{}", text(rule_file)),
            )
            .unwrap_or_else(|| panic!("{} is not mounted", text(rule_file)));
        assert!(path.is_file(), "{}", path.display());
    }

    // Grafana's provisioning directories, its dashboards, its home dashboard.
    let datasources = compose
        .resolve("grafana", "/etc/grafana/provisioning/datasources")
        .expect("datasources provisioned");
    assert!(datasources.join("sidecache.yml").is_file());
    assert_eq!(datasources.join("sidecache.yml"), repo_path(DATASOURCES));
    let providers = compose
        .resolve("grafana", "/etc/grafana/provisioning/dashboards")
        .expect("dashboards provisioned");
    assert_eq!(
        providers.join("sidecache.yml"),
        repo_path(DASHBOARD_PROVIDERS)
    );
    let provider_file = yaml(DASHBOARD_PROVIDERS);
    for provider in items(&provider_file["providers"]) {
        let dir = compose
            .resolve("grafana", text(&provider["options"]["path"]))
            .expect("the dashboards' directory mounted");
        assert_eq!(dir, repo_path(DASHBOARDS));
    }
    let grafana_env = environment(compose.service("grafana"));
    let home = compose
        .resolve(
            "grafana",
            &grafana_env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"],
        )
        .expect("the home dashboard mounted");
    assert!(home.is_file(), "{}", home.display());

    // The data sources point at the stack's services, on the ports they serve.
    let file = yaml(DATASOURCES);
    for source in items(&file["datasources"]) {
        let (host, port) = host_port(text(&source["url"]));
        assert!(
            services.contains(&host),
            "data source {host} is not a service"
        );
        let expected = match text(&source["type"]) {
            "prometheus" => 9090,
            "jaeger" => 16686,
            other => panic!("unexpected data source type {other}"),
        };
        assert_eq!(port, expected, "{host}");
    }
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_sets_only_real_options() {
    let options = sidecache_options();
    let dockerfile = read(DOCKERFILE);
    // Join continuation lines.
    let joined = dockerfile.replace("\\\n", " ");
    let instructions: Vec<(&str, &str)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    let of = |name: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(i, _)| i.eq_ignore_ascii_case(name))
            .map(|(_, rest)| rest.trim())
            .collect()
    };
    assert!(of("FROM").len() >= 2, "a multi-stage build");
    let user = of("USER");
    let user = user.last().expect("a USER");
    assert!(
        !["root", "0", "0:0", "root:root"].contains(user),
        "runs as root"
    );
    let mut env = BTreeMap::new();
    for line in of("ENV") {
        for pair in line.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    // The image sets no token of its own (one baked into a public image is no secret): the
    // ports listen on every interface, so the image refuses to start until one is passed.
    assert!(
        !env.contains_key("SIDECACHE_ADMIN_TOKEN") && !env.contains_key("SIDECACHE_ADMIN_INSECURE"),
        "{DOCKERFILE} sets the admin token or turns the check off"
    );
    let sidecache_env: HashMap<String, String> = env.clone().into_iter().collect();
    let refused = Config::load_from(["sidecache"], &sidecache_env)
        .expect_err("the image starts without an admin token");
    assert!(refused.to_string().contains("--admin-token"), "{refused}");
    // Every documented `docker run` passes one, and then the image's configuration loads.
    let runs: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| {
            line.trim_start_matches('#')
                .trim()
                .strip_prefix("docker run ")
        })
        .collect();
    assert!(
        !runs.is_empty(),
        "{DOCKERFILE} documents how to run the image"
    );
    let mut configs = Vec::new();
    for run in &runs {
        let words: Vec<&str> = run.split_whitespace().collect();
        let mut run_env = env.clone();
        for pair in words.windows(2).filter(|pair| pair[0] == "-e") {
            let (name, value) = pair[1]
                .split_once('=')
                .unwrap_or((pair[1], "from-the-host"));
            run_env.insert(name.to_owned(), value.to_owned());
        }
        assert!(
            run_env.contains_key("SIDECACHE_ADMIN_TOKEN"),
            "docker run {run}: passes no SIDECACHE_ADMIN_TOKEN"
        );
        configs.push(load_sidecache_config(
            &options,
            &run_env,
            &[],
            &format!("docker run {run}"),
        ));
        for publish in words.windows(2).filter(|pair| pair[0] == "-p") {
            assert!(
                publish[1].starts_with("127.0.0.1:"),
                "docker run {run}: -p {} publishes beyond this host",
                publish[1]
            );
        }
    }
    let config = &configs[0];
    let exposed: BTreeSet<u16> = of("EXPOSE")
        .iter()
        .flat_map(|ports| ports.split_whitespace())
        .map(|p| p.parse().expect("a port"))
        .collect();
    assert_eq!(
        exposed,
        BTreeSet::from([config.proxy.listen.port(), config.admin.listen.port()])
    );
    assert!(config.proxy.listen.ip().is_unspecified() && config.admin.listen.ip().is_unspecified());
    assert!(of("ENTRYPOINT").iter().any(|e| e.contains("sidecache")));
}

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
            Reply::ok(vec![b'x'; 1500]).header("cache-control", "max-age=60")
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

/// Enough that the troubled instance's request rate over the rules' 5-minute window (where
/// Prometheus divides by the whole window, however short the test) passes the hit ratio alert's
/// traffic floor of 1 request/s.
const TROUBLED_URLS: usize = 400;

/// The troubled instance's load: every URL asked once, each too big for the cache to keep many
/// of, and one origin failure in six. Returns how many requests it made.
async fn troubled_load(sidecache: &Sidecache) -> u64 {
    let client = TestClient::new();
    let mut requests = 0;
    for key in 0..TROUBLED_URLS {
        client.get(&sidecache.url(&format!("/big/{key}"))).await;
        requests += 1;
        if key % 5 == 0 {
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
