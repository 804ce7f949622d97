//! The demo pod, run as a kubelet would run it but with no cluster (tests/kubernetes/pod.sh):
//! sidecache and the demo origin's nginx in network and mount namespaces of their own, with the
//! rendered manifests' arguments, environment, ConfigMaps, volumes, user and read-only root
//! filesystem. Then it is used as a cluster uses it: the probes and the Service's traffic reach the
//! pod's address, the README's requests get what the README says, and SIGTERM ends it in time.

use super::*;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::process::{ExitStatus, Stdio};

use tokio::io::{BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// The nginx-unprivileged image's main configuration, reduced to what the demo origin uses: the
/// pid file and temporary files in /tmp (the pod's emptyDir there) and the server blocks of
/// conf.d (the origin's ConfigMap).
const NGINX_MAIN_CONFIG: &str = "\
daemon off;
pid /tmp/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path /tmp/client_temp;
    proxy_temp_path /tmp/proxy_temp;
    fastcgi_temp_path /tmp/fastcgi_temp;
    uwsgi_temp_path /tmp/uwsgi_temp;
    scgi_temp_path /tmp/scgi_temp;
    include /etc/nginx/conf.d/*.conf;
}
";

/// How long the pod may take to become ready, and how often the probe asks.
const READY_WITHIN: Duration = Duration::from_secs(30);
const PROBE_PERIOD: Duration = Duration::from_millis(50);
/// How long the pod's script may take to report each step.
const STEP_WITHIN: Duration = Duration::from_secs(10);

/// The programs running a pod takes, or `None` (outside CI) where one is missing.
struct PodTools {
    nginx: PathBuf,
}

impl PodTools {
    fn find() -> Option<Self> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
        if !root {
            support::missing_component(
                "root, which running the demo pod needs (namespaces, mounts)",
                "run the tests as root",
            );
            return None;
        }
        for tool in ["unshare", "setpriv", "ip"] {
            support::require_tool(tool)?;
        }
        Some(Self {
            nginx: support::require_tool("nginx")?,
        })
    }
}

/// The demo pod's processes, running. Dropping it kills them; their namespaces, the veth pair and
/// the mounts go with them.
struct Pod {
    process: Child,
    /// The process group of everything the pod runs (the pod's script leads it).
    group: u32,
    lines: Lines<BufReader<ChildStdout>>,
    /// The pod IP.
    address: IpAddr,
    /// The sidecar's process id (setpriv execs sidecache in place).
    sidecar: String,
    /// Host directories holding the pod's volumes, by the path a container mounts them at.
    volumes: BTreeMap<String, PathBuf>,
    log: PathBuf,
    dir: PathBuf,
}

impl Pod {
    /// Starts the demo pod of `kit` and returns once its readiness probe passes.
    async fn start(kit: &Rendered, tools: &PodTools) -> Self {
        let id = std::process::id();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pod-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("scratch")).expect("the pod's directory");
        let volumes = host_volumes(kit, &dir);
        let mounts: String = volumes
            .iter()
            .map(|(path, (host, read_only))| {
                let mode = if *read_only { "ro" } else { "rw" };
                format!("{path} {} {mode}\n", host.display())
            })
            .collect();
        let nginx_config = dir.join("nginx.conf");
        std::fs::write(&nginx_config, NGINX_MAIN_CONFIG).expect("write nginx.conf");

        let sidecache = kit.sidecache();
        let (env, _) = container_env(sidecache);
        let security = &kit.pod()["securityContext"];
        let user = format!(
            "{}:{}",
            security["runAsUser"].as_u64().expect("runAsUser"),
            security["runAsGroup"].as_u64().expect("runAsGroup")
        );
        // A /30 of its own, from the process id, so runs on one machine do not collide.
        let subnet = id % (1 << 14);
        let (third, fourth) = ((subnet >> 6) as u8, ((subnet & 63) << 2) as u8);
        let host_address = Ipv4Addr::new(10, 251, third, fourth + 1);
        let pod_address = Ipv4Addr::new(10, 251, third, fourth + 2);
        let (host_interface, pod_interface) = (format!("sch{id}"), format!("scp{id}"));

        let log = dir.join("pod.log");
        let mut process = tokio::process::Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--fork",
                "--",
            ])
            .arg(repo_path("tests/kubernetes/pod.sh"))
            .arg(env!("CARGO_BIN_EXE_sidecache"))
            .args(container_args(sidecache))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&env)
            .env("POD_INTERFACE", &pod_interface)
            .env("POD_ADDRESS", format!("{pod_address}/30"))
            .env("POD_USER", &user)
            .env("POD_SCRATCH", dir.join("scratch"))
            .env("POD_MOUNTS", mounts)
            .env(
                "MAIN_COMMAND",
                format!(
                    "{} -c {} -e stderr",
                    tools.nginx.display(),
                    nginx_config.display()
                ),
            )
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("the pod's log"))
            .spawn()
            .expect("start unshare");
        let lines = BufReader::new(process.stdout.take().expect("stdout")).lines();
        let mut pod = Self {
            group: process.id().expect("a running process"),
            process,
            lines,
            address: IpAddr::V4(pod_address),
            sidecar: String::new(),
            volumes: volumes
                .into_iter()
                .map(|(path, (host, _))| (path, host))
                .collect(),
            log,
            dir,
        };

        // The pod's network: one end of a veth pair in its namespace, the other here.
        let namespace = pod.reported("namespace").await;
        for args in [
            vec![
                "link",
                "add",
                &host_interface,
                "type",
                "veth",
                "peer",
                "name",
                &pod_interface,
                "netns",
                &namespace,
            ],
            vec![
                "addr",
                "add",
                &format!("{host_address}/30"),
                "dev",
                &host_interface,
            ],
            vec!["link", "set", &host_interface, "up"],
        ] {
            let (ok, printed) = run(Path::new("ip"), &args);
            assert!(ok, "ip {args:?}: {printed}");
        }
        let stdin = pod.process.stdin.as_mut().expect("stdin");
        stdin.write_all(b"network\n").await.expect("tell the pod");
        stdin.flush().await.expect("tell the pod");
        pod.sidecar = pod.reported("sidecar").await;
        pod.reported("main").await;
        pod.until_ready(kit).await;
        pod
    }

    /// The value of the next line the pod's script prints, which must start with `what`.
    async fn reported(&mut self, what: &str) -> String {
        let line = tokio::time::timeout(STEP_WITHIN, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the pod did not report its {what}:\n{}", self.log()))
            .expect("read the pod's output")
            .unwrap_or_else(|| panic!("the pod ended before its {what}:\n{}", self.log()));
        line.strip_prefix(&format!("{what} "))
            .unwrap_or_else(|| panic!("expected the {what}, the pod said {line}"))
            .to_owned()
    }

    /// Probes every container's readiness as the kubelet does until all pass: an HTTP probe from
    /// outside the pod, to its address; an exec probe's command in the pod's network.
    async fn until_ready(&mut self, kit: &Rendered) {
        let deadline = Instant::now() + READY_WITHIN;
        for c in containers(kit.pod()) {
            let probe = &c["readinessProbe"];
            if probe.is_null() {
                continue;
            }
            while !self.probe_passes(kit, probe).await {
                if let Ok(Some(status)) = self.process.try_wait() {
                    panic!(
                        "the pod ended ({status}) before it was ready:\n{}",
                        self.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "{} was not ready within {READY_WITHIN:?}:\n{}",
                    text(&c["name"]),
                    self.log()
                );
                tokio::time::sleep(PROBE_PERIOD).await;
            }
        }
    }

    async fn probe_passes(&self, kit: &Rendered, probe: &Yaml) -> bool {
        let get = &probe["httpGet"];
        if get.is_mapping() {
            let url = format!(
                "http://{}{}",
                self.port(kit, text(&get["port"])),
                text(&get["path"])
            );
            return TestClient::new()
                .try_send(Method::GET, &url, &[], Bytes::new())
                .await
                .is_ok_and(|got| got.status.is_success());
        }
        let command: Vec<&str> = items(&probe["exec"]["command"]).iter().map(text).collect();
        assert!(
            !command.is_empty(),
            "a probe of a kind of its own: {probe:?}"
        );
        let network = format!("--net=/proc/{}/ns/net", self.sidecar);
        let mut args = vec![network.as_str(), "--"];
        args.extend(command);
        run(Path::new("nsenter"), &args).0
    }

    /// The pod's address and the port the sidecache container names `name`.
    fn port(&self, kit: &Rendered, name: &str) -> SocketAddr {
        SocketAddr::new(self.address, named_port(kit.sidecache(), name))
    }

    /// Waits for the pod's script to end: it ends when the sidecar does.
    async fn exited(&mut self, within: Duration) -> ExitStatus {
        tokio::time::timeout(within, self.process.wait())
            .await
            .unwrap_or_else(|_| panic!("the pod did not stop within {within:?}:\n{}", self.log()))
            .expect("wait for the pod")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Nothing left to kill is the usual case: the pod ended.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.group)])
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            eprintln!("the pod's log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pod's volumes as host directories, by the path a container mounts each at, with whether
/// the mount is read-only: a ConfigMap's files (always read-only), or an empty directory anyone
/// may write to, as an emptyDir is.
fn host_volumes(kit: &Rendered, dir: &Path) -> BTreeMap<String, (PathBuf, bool)> {
    let pod = kit.pod();
    let mut volumes = BTreeMap::new();
    for c in containers(pod) {
        for mount in items(&c["volumeMounts"]) {
            let name = text(&mount["name"]);
            let volume = items(&pod["volumes"])
                .iter()
                .find(|v| text(&v["name"]) == name)
                .unwrap_or_else(|| panic!("no volume {name}"));
            let host = dir.join("volumes").join(name);
            std::fs::create_dir_all(&host).expect("a volume's directory");
            let config_map = &volume["configMap"];
            if config_map.is_mapping() {
                let map = object(&kit.objects, "ConfigMap", text(&config_map["name"]));
                for (file, content) in map["data"].as_mapping().into_iter().flatten() {
                    std::fs::write(host.join(text(file)), text(content)).expect("write");
                }
            } else {
                assert!(
                    volume["emptyDir"].is_mapping(),
                    "volume {name}: a kind of its own"
                );
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777))
                    .expect("an emptyDir anyone may write to");
            }
            let read_only = config_map.is_mapping() || mount["readOnly"].as_bool() == Some(true);
            volumes.insert(text(&mount["mountPath"]).to_owned(), (host, read_only));
        }
    }
    volumes
}

#[tokio::test]
async fn the_demo_pod_serves_caches_and_stops_as_its_manifests_say() {
    let Some(tools) = tools() else { return };
    let Some(pod_tools) = PodTools::find() else {
        return;
    };
    let kit = Rendered::all(&tools)
        .into_iter()
        .find(|kit| kit.overlay == "single")
        .expect("the single overlay");
    let mut pod = Pod::start(&kit, &pod_tools).await;
    let client = TestClient::new();
    let proxy = format!("http://{}", pod.port(&kit, "http"));
    let admin = format!("http://{}", pod.port(&kit, "admin"));

    // The liveness probe passes too.
    let liveness = &kit.sidecache()["livenessProbe"]["httpGet"];
    let live = client
        .get(&format!(
            "http://{}{}",
            pod.port(&kit, text(&liveness["port"])),
            text(&liveness["path"])
        ))
        .await;
    assert_eq!(live.status, http::StatusCode::OK);

    // The origin listens on the pod's loopback only: nothing answers on its port at the pod IP.
    let origin_port = named_port(container(kit.pod(), ORIGIN_CONTAINER), "origin");
    assert!(
        tokio::net::TcpStream::connect(SocketAddr::new(pod.address, origin_port))
            .await
            .is_err(),
        "the origin is reachable from outside the pod"
    );

    // The README's requests: a miss that is stored, then a hit with the same page.
    let first = client.get(&format!("{proxy}/hello")).await;
    assert_eq!(first.status, http::StatusCode::OK);
    let status = first.cache_status();
    assert!(
        status.contains("fwd=uri-miss") && status.contains("stored"),
        "{status}"
    );
    assert!(
        first.text().starts_with("demo page /hello"),
        "{}",
        first.text()
    );
    let second = client.get(&format!("{proxy}/hello")).await;
    assert!(
        second.cache_status().starts_with("sidecache; hit"),
        "{}",
        second.cache_status()
    );
    assert_eq!(second.body, first.body);
    // One client's page always goes to the origin, a failing origin's answer is passed on.
    for _ in 0..2 {
        let private = client.get(&format!("{proxy}/private")).await;
        assert_eq!(private.status, http::StatusCode::OK);
        assert!(
            private.cache_status().contains("fwd="),
            "{}",
            private.cache_status()
        );
    }
    let failing = client.get(&format!("{proxy}/fail")).await;
    assert_eq!(failing.status, http::StatusCode::SERVICE_UNAVAILABLE);

    // The admin port wants the token from the Secret; /metrics is open to Prometheus.
    let purge = format!("{admin}/purge?prefix=/");
    let refused = client.send(Method::POST, &purge, &[], Bytes::new()).await;
    assert_eq!(refused.status, http::StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {SECRET_VALUE}");
    let purged = client
        .send(
            Method::POST,
            &purge,
            &[("authorization", &bearer)],
            Bytes::new(),
        )
        .await;
    assert_eq!(purged.status, http::StatusCode::OK, "{}", purged.text());
    assert!(purged.text().contains("\"purged\":1"), "{}", purged.text());
    let metrics = client.get(&format!("{admin}/metrics")).await;
    assert!(metrics.text().contains("sidecache_requests_total"));

    // SIGTERM, as the kubelet sends it after the preStop hook: sidecache drains and exits
    // cleanly within shutdown-grace.
    let (ok, printed) = run(Path::new("kill"), &["-TERM", &pod.sidecar]);
    assert!(ok, "{printed}");
    let status = pod.exited(kit.config.shutdown_grace + STOP_MARGIN).await;
    assert!(
        status.success(),
        "sidecache exited with {status}:\n{}",
        pod.log()
    );

    // It wrote its counters where the manifests put them, on the emptyDir: the root filesystem
    // was read-only, so it wrote nowhere else.
    let SinkAddress::Sqlite(counters) = &kit.config.writebehind.sink else {
        panic!("the demo keeps its counters in a SQLite file");
    };
    let (mount, host) = pod
        .volumes
        .iter()
        .find(|(mount, _)| counters.starts_with(mount))
        .expect("the counters' volume");
    let on_host = host.join(counters.strip_prefix(mount).expect("under the mount"));
    assert!(
        on_host.is_file(),
        "{} is not on its volume",
        counters.display()
    );
}
