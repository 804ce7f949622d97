//! docker-compose.yml: what it mounts and what it gives sidecache.

use super::*;

// === docker-compose.yml ===

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
    let instructions = dockerfile_instructions();
    let of = |name: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(i, _)| i.eq_ignore_ascii_case(name))
            .map(|(_, rest)| rest.as_str())
            .collect()
    };
    assert!(of("FROM").len() >= 2, "a multi-stage build");
    let user = of("USER");
    let user = user.last().expect("a USER");
    assert!(
        !["root", "0", "0:0", "root:root"].contains(user),
        "runs as root"
    );
    let env = image_env();
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
