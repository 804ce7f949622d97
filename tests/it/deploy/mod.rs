//! The deployment kit, checked against the real thing: `promtool` accepts the Prometheus
//! configuration and the rules and passes the alerts' unit tests; a real Prometheus scraping
//! loaded sidecaches evaluates every PromQL expression of the dashboards, the Grafana data sources
//! and the rules; the dashboard passes a lint; docker-compose.yml and the Dockerfile give
//! sidecache only options it really has, and mount only files that exist; the Kubernetes kit
//! renders and validates offline and agrees with sidecache's options.

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

mod compose;
mod kubernetes;
mod live_prometheus;

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

// === the image ===

/// The Dockerfile's instructions, continuation lines joined: (instruction, its arguments).
fn dockerfile_instructions() -> Vec<(String, String)> {
    read(DOCKERFILE)
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (instruction, rest) = l.split_once(' ').unwrap_or((l, ""));
            (instruction.to_owned(), rest.trim().to_owned())
        })
        .collect()
}

/// The environment the image gives every container run from it (its `ENV` instructions).
fn image_env() -> BTreeMap<String, String> {
    dockerfile_instructions()
        .iter()
        .filter(|(instruction, _)| instruction.eq_ignore_ascii_case("ENV"))
        .flat_map(|(_, pairs)| pairs.split_whitespace())
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

// === docker-compose.yml, as the submodules read it ===

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

/// The job that scrapes sidecache: the one the alert rules select.
const SIDECACHE_JOB: &str = "sidecache";
