//! Tests of loading: defaults, the sources and their precedence, and the TOML file. Errors,
//! validation, `--help` and the write-behind options are tested in `validation`.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::ArgAction;

use super::error::{Place, Problem};
use super::sources::testing;
use super::*;
use crate::origin::HostHeader;
use crate::proxy::ttl_overrides::TtlOverrides;
use crate::proxy::{AccessLogFormat, ClientCacheControl, RangeMiss};
use crate::telemetry::{LogFormat, OtlpProtocol, Ratio, SamplerKind};
use crate::writebehind::SinkAddress;

mod formats;
mod safe_defaults;
mod validation;

// === helpers ===

/// Environment variables as (name, value) pairs.
type Vars<'a> = &'a [(&'a str, &'a str)];

fn env(pairs: Vars<'_>) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn load(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let argv = std::iter::once("sidecache").chain(args.iter().copied());
    Config::load_from(argv, &env(vars))
}

fn load_ok(args: &[&str], vars: &[(&str, &str)]) -> Config {
    load(args, vars).unwrap_or_else(|error| panic!("{args:?} {vars:?} should load: {error}"))
}

fn load_err(args: &[&str], vars: &[(&str, &str)]) -> ConfigError {
    match load(args, vars) {
        Ok(config) => panic!("{args:?} {vars:?} should fail, loaded {config:#?}"),
        Err(error) => error,
    }
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

/// A directory under the system temp dir, unique to this test, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sidecache-config-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from a crashed earlier run with the same pid is ours to replace.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create temp dir");
        Self { path }
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(name);
        fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

fn has_problem(error: &ConfigError, place: &Place, needle: &str) -> bool {
    error
        .problems()
        .iter()
        .any(|problem| &problem.place == place && problem.message.contains(needle))
}

fn flag(long: &str) -> Place {
    Place::flag(long)
}

fn env_var(var: &str) -> Place {
    Place::Env {
        var: var.to_owned(),
    }
}

// === defaults ===

#[test]
fn defaults_when_nothing_is_given() {
    let expected = Config {
        proxy: ProxyConfig {
            listen: addr("127.0.0.1:8080"),
            host_header: HostHeader::Preserve,
            allow_trace: false,
            client_cache_control: ClientCacheControl::Honor,
            access_log: AccessLogFormat::Off,
        },
        client: ClientLimitsConfig {
            max_connections: 10_000,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            header_timeout: secs(10),
            idle_timeout: secs(60),
            send_timeout: secs(60),
            body_timeout: secs(20),
            http2_max_concurrent_streams: 128,
            max_origin_requests_per_connection: 32,
            max_abandoned_requests: 250,
            max_request_body_bytes: 10 * 1024 * 1024,
            max_uri_bytes: 8 * 1024,
        },
        origin: OriginConfig {
            url: None,
            connect_timeout: secs(5),
            first_byte_timeout: secs(30),
            body_timeout: secs(60),
            read_timeout: secs(30),
            pool_idle_timeout: secs(90),
            max_connections: 1024,
            demo: false,
        },
        cache: CacheConfig {
            capacity_bytes: 256 * 1024 * 1024,
            max_object_bytes: 8 * 1024 * 1024,
            coalesce_timeout: secs(5),
            max_waiters_per_key: 10_000,
            hit_for_miss_ttl: secs(10),
            grace: secs(60),
            max_heuristic_freshness: secs(120),
            default_ttl: None,
            ttl_overrides: TtlOverrides::default(),
            range_miss: RangeMiss::Whole,
        },
        admin: AdminConfig {
            listen: addr("127.0.0.1:8081"),
            token: None,
            insecure: false,
        },
        log: LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        },
        telemetry: TelemetryConfig {
            stats_window: secs(60),
        },
        tracing: TracingConfig {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            service_name: "sidecache".to_owned(),
            sampler: SamplerKind::ParentbasedAlwaysOn,
            sampler_arg: None,
            batch_delay: secs(5),
            max_queue_size: 2048,
            max_export_batch_size: 512,
            export_timeout: secs(30),
        },
        writebehind: WriteBehindConfig {
            sink: SinkAddress::Sqlite(PathBuf::from(":memory:")),
            interval: secs(1),
            max_pending_keys: 100_000,
            count_requests: false,
            count_query: false,
            request_retention: secs(30 * 24 * 60 * 60),
            recovery_file: None,
        },
        shutdown_grace: secs(10),
    };
    assert_eq!(load_ok(&[], &[]), expected);
    assert_eq!(Config::default(), expected);
    assert!(expected.validate().is_ok());
}

#[test]
fn an_empty_argument_list_is_the_same_as_no_flags() {
    let config = Config::load_from(Vec::<String>::new(), &env(&[])).expect("defaults load");
    assert_eq!(config, Config::default());
}

// === precedence ===

/// One option set at each level; `expected` is what wins with
/// [nothing, file, file + env, file + env + flag].
struct PrecedenceCase {
    long: &'static str,
    env: &'static str,
    toml_value: &'static str,
    env_value: &'static str,
    flag_value: &'static str,
    read: fn(&Config) -> String,
    expected: [&'static str; 4],
}

#[test]
fn each_source_overrides_the_one_below() {
    let cases = [
        PrecedenceCase {
            long: "listen",
            env: "SIDECACHE_LISTEN",
            toml_value: "\"10.0.0.1:1001\"",
            env_value: "10.0.0.2:1002",
            flag_value: "10.0.0.3:1003",
            read: |config| config.proxy.listen.to_string(),
            expected: [
                "127.0.0.1:8080",
                "10.0.0.1:1001",
                "10.0.0.2:1002",
                "10.0.0.3:1003",
            ],
        },
        PrecedenceCase {
            long: "cache-capacity",
            env: "SIDECACHE_CACHE_CAPACITY",
            // A TOML integer where the flag takes a number.
            toml_value: "1048576",
            env_value: "2 MiB",
            flag_value: "3000KB",
            read: |config| config.cache.capacity_bytes.to_string(),
            expected: ["268435456", "1048576", "2097152", "3000000"],
        },
        PrecedenceCase {
            long: "origin-timeout",
            env: "SIDECACHE_ORIGIN_TIMEOUT",
            toml_value: "\"250ms\"",
            env_value: "1m 30s",
            flag_value: "2h",
            read: |config| format!("{:?}", config.origin.first_byte_timeout),
            expected: ["30s", "250ms", "90s", "7200s"],
        },
        PrecedenceCase {
            long: "ttl-overrides",
            env: "SIDECACHE_TTL_OVERRIDES",
            // Each source's list replaces the one below it whole: rules never add up.
            toml_value: "\"/file/=1s; /both/=1s\"",
            env_value: "/env/=2s,force",
            flag_value: "none",
            read: |config| {
                let rules = &config.cache.ttl_overrides;
                ["/file/", "/both/", "/env/"]
                    .map(|path| rules.for_path(path).is_some())
                    .map(|found| if found { "1" } else { "0" })
                    .concat()
            },
            expected: ["000", "110", "001", "000"],
        },
        PrecedenceCase {
            long: "log-format",
            env: "SIDECACHE_LOG_FORMAT",
            toml_value: "\"json\"",
            env_value: "text",
            flag_value: "json",
            read: |config| format!("{:?}", config.log.format),
            expected: ["Text", "Json", "Text", "Json"],
        },
        PrecedenceCase {
            long: "origin",
            env: "SIDECACHE_ORIGIN",
            toml_value: "\"http://file.example:1\"",
            env_value: "http://env.example:2",
            flag_value: "http://flag.example:3/",
            read: |config| format!("{:?}", config.origin.url.as_ref().map(ToString::to_string)),
            expected: [
                "None",
                "Some(\"http://file.example:1/\")",
                "Some(\"http://env.example:2/\")",
                "Some(\"http://flag.example:3/\")",
            ],
        },
        PrecedenceCase {
            long: "log-level",
            env: "SIDECACHE_LOG_LEVEL",
            toml_value: "\"warn\"",
            // Values that look like flags are still values.
            env_value: "-weird",
            flag_value: "sidecache=debug",
            read: |config| config.log.level.clone(),
            expected: ["info", "warn", "-weird", "sidecache=debug"],
        },
    ];

    let dir = TempDir::new();
    for case in cases {
        // Keeps max-object-size within every capacity above; an origin, as the listeners above
        // are not loopback.
        let origin = if case.long == "origin" {
            ""
        } else {
            "origin = \"http://127.0.0.1:9000\"\n"
        };
        let file = dir.file(
            &format!("{}.toml", case.long),
            &format!(
                "max-object-size = \"1KiB\"\n{origin}{} = {}\n",
                case.long, case.toml_value
            ),
        );
        let file = path_str(&file);
        let flag = format!("--{}", case.long);
        let runs: [(Vec<&str>, Vars<'_>); 4] = [
            (vec![], &[]),
            (vec!["--config", file], &[]),
            (vec!["--config", file], &[(case.env, case.env_value)]),
            (
                vec!["--config", file, &flag, case.flag_value],
                &[(case.env, case.env_value)],
            ),
        ];
        for ((args, vars), expected) in runs.iter().zip(case.expected) {
            let config = load_ok(args, vars);
            assert_eq!(
                (case.read)(&config),
                expected,
                "{} with {args:?} {vars:?}",
                case.long
            );
        }
    }
}

#[test]
fn the_config_file_comes_from_sidecache_config_unless_the_flag_names_one() {
    let dir = TempDir::new();
    let from_env = dir.file("env.toml", "grace = \"1s\"\n");
    let from_flag = dir.file("flag.toml", "grace = \"2s\"\n");
    let vars = [("SIDECACHE_CONFIG", path_str(&from_env))];

    assert_eq!(load_ok(&[], &vars).cache.grace, secs(1));
    assert_eq!(
        load_ok(&["--config", path_str(&from_flag)], &vars)
            .cache
            .grace,
        secs(2)
    );
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
    let config = load_ok(
        &["--demo", "--listen", "10.0.0.1:1", "--listen", "10.0.0.2:2"],
        &[],
    );
    assert_eq!(config.proxy.listen, addr("10.0.0.2:2"));
}

#[test]
fn every_option_is_read_from_its_environment_variable() {
    let vars = [
        ("SIDECACHE_ORIGIN", "http://127.0.0.1:9000"),
        ("SIDECACHE_LISTEN", "0.0.0.0:80"),
        ("SIDECACHE_ADMIN_LISTEN", "0.0.0.0:81"),
        ("SIDECACHE_ADMIN_TOKEN", "s3cret"),
        ("SIDECACHE_HOST_HEADER", "origin"),
        ("SIDECACHE_CACHE_CAPACITY", "1GiB"),
        ("SIDECACHE_MAX_OBJECT_SIZE", "1MB"),
        ("SIDECACHE_COALESCE_TIMEOUT", "1s"),
        ("SIDECACHE_HIT_FOR_MISS_TTL", "2s"),
        ("SIDECACHE_GRACE", "3s"),
        ("SIDECACHE_MAX_HEURISTIC_FRESHNESS", "4s"),
        ("SIDECACHE_DEFAULT_TTL", "26s"),
        ("SIDECACHE_TTL_OVERRIDES", "/api/=27s,force"),
        ("SIDECACHE_RANGE_MISS", "part"),
        ("SIDECACHE_ORIGIN_CONNECT_TIMEOUT", "5s"),
        ("SIDECACHE_ORIGIN_TIMEOUT", "6s"),
        ("SIDECACHE_ORIGIN_BODY_TIMEOUT", "7s"),
        ("SIDECACHE_ORIGIN_POOL_IDLE_TIMEOUT", "8s"),
        ("SIDECACHE_ORIGIN_READ_TIMEOUT", "13s"),
        ("SIDECACHE_MAX_CONNECTIONS", "14"),
        ("SIDECACHE_MAX_HEADER_SIZE", "15KiB"),
        ("SIDECACHE_MAX_HEADERS", "16"),
        ("SIDECACHE_CLIENT_HEADER_TIMEOUT", "17s"),
        ("SIDECACHE_CLIENT_IDLE_TIMEOUT", "18s"),
        ("SIDECACHE_CLIENT_SEND_TIMEOUT", "21s"),
        ("SIDECACHE_CLIENT_BODY_TIMEOUT", "25s"),
        ("SIDECACHE_HTTP2_MAX_CONCURRENT_STREAMS", "22"),
        ("SIDECACHE_MAX_ORIGIN_REQUESTS_PER_CONNECTION", "23"),
        ("SIDECACHE_MAX_ABANDONED_REQUESTS", "24"),
        ("SIDECACHE_MAX_REQUEST_BODY", "19MiB"),
        ("SIDECACHE_MAX_URI_LENGTH", "21KiB"),
        ("SIDECACHE_ALLOW_TRACE", "true"),
        ("SIDECACHE_CLIENT_CACHE_CONTROL", "ignore"),
        ("SIDECACHE_ACCESS_LOG", "json"),
        ("SIDECACHE_ORIGIN_MAX_CONNECTIONS", "22"),
        ("SIDECACHE_MAX_WAITERS_PER_KEY", "20"),
        ("SIDECACHE_LOG_FORMAT", "json"),
        ("SIDECACHE_LOG_LEVEL", "debug"),
        ("SIDECACHE_SHUTDOWN_GRACE", "9s"),
        ("SIDECACHE_STATS_WINDOW", "10s"),
        ("SIDECACHE_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("SIDECACHE_OTLP_PROTOCOL", "grpc"),
        ("SIDECACHE_SERVICE_NAME", "edge-cache"),
        ("SIDECACHE_TRACE_SAMPLER", "parentbased_traceidratio"),
        ("SIDECACHE_TRACE_SAMPLER_ARG", "0.25"),
        ("SIDECACHE_TRACE_BATCH_DELAY", "11s"),
        ("SIDECACHE_TRACE_QUEUE_SIZE", "100"),
        ("SIDECACHE_TRACE_BATCH_SIZE", "10"),
        ("SIDECACHE_TRACE_EXPORT_TIMEOUT", "12s"),
        (
            "SIDECACHE_WRITEBEHIND_SINK",
            "postgres://app:pw@db.internal:5433/metrics",
        ),
        ("SIDECACHE_WRITEBEHIND_INTERVAL", "11s"),
        ("SIDECACHE_WRITEBEHIND_MAX_PENDING_KEYS", "12"),
        ("SIDECACHE_WRITEBEHIND_COUNT_REQUESTS", "true"),
        ("SIDECACHE_WRITEBEHIND_COUNT_QUERY", "true"),
        ("SIDECACHE_WRITEBEHIND_REQUEST_RETENTION", "21s"),
        ("SIDECACHE_ADMIN_INSECURE", "true"),
        // With an origin, --demo must stay off; its variable is read in the demo's own tests.
        ("SIDECACHE_DEMO", "false"),
        (
            "SIDECACHE_WRITEBEHIND_RECOVERY_FILE",
            "/var/lib/sidecache/recovery",
        ),
    ];
    // Every option has a variable in the table above.
    let mut listed: Vec<_> = vars.iter().map(|&(var, _)| var).collect();
    listed.push("SIDECACHE_CONFIG");
    listed.sort_unstable();
    let mut declared: Vec<_> = testing::options().into_iter().map(|(_, var)| var).collect();
    declared.sort_unstable();
    assert_eq!(listed, declared);

    let config = load_ok(&[], &vars);
    let expected = Config {
        proxy: ProxyConfig {
            listen: addr("0.0.0.0:80"),
            host_header: HostHeader::Origin,
            allow_trace: true,
            client_cache_control: ClientCacheControl::Ignore,
            access_log: AccessLogFormat::Json,
        },
        client: ClientLimitsConfig {
            max_connections: 14,
            max_header_bytes: 15 * 1024,
            max_headers: 16,
            header_timeout: secs(17),
            idle_timeout: secs(18),
            send_timeout: secs(21),
            body_timeout: secs(25),
            http2_max_concurrent_streams: 22,
            max_origin_requests_per_connection: 23,
            max_abandoned_requests: 24,
            max_request_body_bytes: 19 * 1024 * 1024,
            max_uri_bytes: 21 * 1024,
        },
        origin: OriginConfig {
            url: Some(http::Uri::from_static("http://127.0.0.1:9000")),
            connect_timeout: secs(5),
            first_byte_timeout: secs(6),
            body_timeout: secs(7),
            read_timeout: secs(13),
            pool_idle_timeout: secs(8),
            max_connections: 22,
            demo: false,
        },
        cache: CacheConfig {
            capacity_bytes: 1 << 30,
            max_object_bytes: 1_000_000,
            coalesce_timeout: secs(1),
            max_waiters_per_key: 20,
            hit_for_miss_ttl: secs(2),
            grace: secs(3),
            max_heuristic_freshness: secs(4),
            default_ttl: Some(secs(26)),
            ttl_overrides: "/api/=27s,force".parse().expect("valid rules"),
            range_miss: RangeMiss::Part,
        },
        admin: AdminConfig {
            listen: addr("0.0.0.0:81"),
            token: Some("s3cret".to_owned()),
            insecure: true,
        },
        log: LogConfig {
            format: LogFormat::Json,
            level: "debug".to_owned(),
        },
        telemetry: TelemetryConfig {
            stats_window: secs(10),
        },
        tracing: expected_tracing(),
        writebehind: WriteBehindConfig {
            sink: SinkAddress::parse("postgres://app:pw@db.internal:5433/metrics")
                .expect("a valid URL"),
            interval: secs(11),
            max_pending_keys: 12,
            count_requests: true,
            count_query: true,
            request_retention: secs(21),
            recovery_file: Some(PathBuf::from("/var/lib/sidecache/recovery")),
        },
        shutdown_grace: secs(9),
    };
    assert_eq!(config, expected);
}

/// The tracing options the environment tests set, by either name.
fn expected_tracing() -> TracingConfig {
    TracingConfig {
        otlp_endpoint: Some(http::Uri::from_static("http://127.0.0.1:4317")),
        otlp_protocol: OtlpProtocol::Grpc,
        service_name: "edge-cache".to_owned(),
        sampler: SamplerKind::ParentbasedTraceIdRatio,
        sampler_arg: Some(Ratio::new(0.25).expect("ratio")),
        batch_delay: secs(11),
        max_queue_size: 100,
        max_export_batch_size: 10,
        export_timeout: secs(12),
    }
}

#[test]
fn tracing_options_are_read_from_the_standard_opentelemetry_variables() {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_SERVICE_NAME", "edge-cache"),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        // Milliseconds, as the specification has them.
        ("OTEL_BSP_SCHEDULE_DELAY", "11000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "12000"),
    ];
    // Every standard variable in the table above, and no other.
    let mut listed: Vec<_> = vars.iter().map(|&(var, _)| var).collect();
    listed.sort_unstable();
    let mut declared: Vec<_> = STANDARD_ENV.iter().map(|standard| standard.var).collect();
    declared.sort_unstable();
    assert_eq!(listed, declared);
    assert_eq!(load_ok(&[], &vars).tracing, expected_tracing());
}

#[test]
fn sidecache_variables_win_over_the_standard_ones_and_flags_over_both() {
    let vars = [
        ("OTEL_SERVICE_NAME", "from-otel"),
        ("SIDECACHE_SERVICE_NAME", "from-sidecache"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
    ];
    let config = load_ok(&[], &vars);
    assert_eq!(config.tracing.service_name, "from-sidecache");
    assert_eq!(config.tracing.sampler, SamplerKind::AlwaysOff);
    let config = load_ok(&["--service-name", "from-flag"], &vars);
    assert_eq!(config.tracing.service_name, "from-flag");
    // The standard variable is still above the file.
    let dir = TempDir::new();
    let file = dir.file("tracing.toml", "trace-sampler = \"always_on\"\n");
    let config = load_ok(&["--config", path_str(&file)], &vars);
    assert_eq!(config.tracing.sampler, SamplerKind::AlwaysOff);
}

#[test]
fn bad_tracing_values_name_the_variable_they_came_from() {
    let error = load_err(
        &[],
        &[
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
        ],
    );
    for (var, needle) in [
        ("OTEL_TRACES_SAMPLER_ARG", "from 0 to 1"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc, http/protobuf"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "TLS"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "exceeds"),
    ] {
        assert!(has_problem(&error, &env_var(var), needle), "{var}: {error}");
    }
}

// === the TOML file ===

#[test]
fn unknown_toml_keys_are_all_listed_with_the_file_name() {
    let dir = TempDir::new();
    let file = dir.file(
        "unknown.toml",
        "cache-size = \"1MiB\"\nlisten = \"127.0.0.1:1\"\nfoo = 1\n# --config is not a file key\nconfig = \"other.toml\"\n\n[cache]\ncapacity = 5\n",
    );
    let error = load_err(&["--config", path_str(&file)], &[]);
    let message = error.to_string();
    assert_eq!(error.exit_code(), EX_USAGE);
    assert_eq!(error.problems().len(), 1, "{message}");
    assert!(
        message.contains(&format!(
            "{}: unknown keys: cache (closest: cache-capacity), cache-size (closest: cache-capacity), config (closest: ",
            file.display()
        )),
        "{message}"
    );
    assert!(message.contains(", foo (closest: "), "{message}");
}

#[test]
fn toml_values_of_the_wrong_type_or_syntax_name_file_and_key() {
    let dir = TempDir::new();
    let file = dir.file("types.toml", "grace = 1.5\ncoalesce-timeout = -5\n");
    let error = load_err(&["--config", path_str(&file)], &[]);
    let key = |key: &str| Place::FileKey {
        path: file.clone(),
        key: key.to_owned(),
    };
    assert!(
        has_problem(
            &error,
            &key("grace"),
            "expected a string, integer or boolean, found float"
        ),
        "{error}"
    );
    // An integer is accepted as TOML, then rejected by the duration parser: no unit.
    assert!(
        has_problem(&error, &key("coalesce-timeout"), "invalid value \"-5\""),
        "{error}"
    );
}

#[test]
fn an_unreadable_or_malformed_file_is_a_config_error() {
    let dir = TempDir::new();
    let missing = dir.path.join("missing.toml");
    let error = load_err(&["--config", path_str(&missing)], &[]);
    assert_eq!(error.exit_code(), EX_USAGE);
    assert!(
        has_problem(
            &error,
            &Place::File {
                path: missing.clone()
            },
            "cannot read the config file"
        ),
        "{error}"
    );

    let malformed = dir.file("malformed.toml", "listen = \n");
    let error = load_err(&["--config", path_str(&malformed)], &[]);
    assert!(
        has_problem(
            &error,
            &Place::File { path: malformed },
            "not a valid TOML file"
        ),
        "{error}"
    );
}
