//! Tests of errors, validation, `--help` and the conventions every option follows, and the
//! write-behind options.

use super::*;

// === errors ===

#[test]
fn all_problems_are_reported_together() {
    let error = load_err(
        &[
            "--cache-capacity",
            "1MiB",
            "--max-object-size",
            "2MiB",
            "--origin-timeout",
            "0s",
        ],
        &[],
    );
    let message = error.to_string();
    assert!(
        message.contains("--max-object-size: 2MiB exceeds --cache-capacity (1MiB)"),
        "{message}"
    );
    assert!(
        message.contains("--origin-timeout: must be greater than zero"),
        "{message}"
    );
    assert_eq!(error.problems().len(), 2, "{message}");
}

#[test]
fn problems_from_every_source_are_reported_together() {
    let dir = TempDir::new();
    let file = dir.file("mixed.toml", "grace = \"soon\"\nbogus = true\n");
    let error = load_err(
        &["--config", path_str(&file), "--coalesce-timeout", "0s"],
        &[
            ("SIDECACHE_CACHE_CAPACITY", "12XB"),
            ("SIDECACHE_SHUTDOWN_GRACE", "0s"),
            ("SIDECACHE_HOST_HEADER", "client"),
        ],
    );
    let grace_key = Place::FileKey {
        path: file.clone(),
        key: "grace".to_owned(),
    };
    assert!(
        has_problem(&error, &grace_key, "invalid value \"soon\""),
        "{error}"
    );
    assert!(
        has_problem(&error, &Place::File { path: file }, "unknown keys: bogus"),
        "{error}"
    );
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_CACHE_CAPACITY"),
            "unknown unit \"XB\""
        ),
        "{error}"
    );
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_HOST_HEADER"),
            "expected one of preserve, origin"
        ),
        "{error}"
    );
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_SHUTDOWN_GRACE"),
            "must be greater than zero"
        ),
        "{error}"
    );
    assert!(
        has_problem(
            &error,
            &flag("coalesce-timeout"),
            "must be greater than zero"
        ),
        "{error}"
    );
    assert_eq!(error.problems().len(), 6, "{error}");
}

#[test]
fn a_problem_names_the_source_its_value_came_from() {
    let dir = TempDir::new();
    let file = dir.file("zero.toml", "origin-timeout = \"0s\"\n");
    let config = path_str(&file);
    let file_key = Place::FileKey {
        path: file.clone(),
        key: "origin-timeout".to_owned(),
    };
    let runs: [(&[&str], Vars<'_>, Place); 3] = [
        (&["--config", config], &[], file_key),
        (
            &["--config", config],
            &[("SIDECACHE_ORIGIN_TIMEOUT", "0ms")],
            env_var("SIDECACHE_ORIGIN_TIMEOUT"),
        ),
        (
            &["--config", config, "--origin-timeout", "0ns"],
            &[("SIDECACHE_ORIGIN_TIMEOUT", "0ms")],
            flag("origin-timeout"),
        ),
    ];
    for (args, vars, place) in runs {
        let error = load_err(args, vars);
        assert_eq!(
            error.problems(),
            [Problem::new(place, "must be greater than zero")],
            "{args:?} {vars:?}"
        );
    }
}

#[test]
fn bad_byte_sizes_are_rejected_with_the_reason() {
    let cases = [
        ("18446744073709551616", "too large"),
        ("17179869184GiB", "too large"),
        ("12XB", "unknown unit \"XB\""),
        ("1.5GiB", "whole number; use a smaller unit"),
        ("-5", "must not be negative"),
        ("-5MiB", "must not be negative"),
        ("MiB", "whole number"),
        ("", "empty"),
    ];
    for (value, reason) in cases {
        let error = load_err(&[], &[("SIDECACHE_MAX_OBJECT_SIZE", value)]);
        assert!(
            has_problem(
                &error,
                &env_var("SIDECACHE_MAX_OBJECT_SIZE"),
                &format!("invalid value {value:?}: ")
            ) && error.to_string().contains(reason),
            "{value:?}: {error}"
        );
    }
}

#[test]
fn bad_ttl_overrides_name_the_source_and_the_rule() {
    let dir = TempDir::new();
    let file = dir.file("rules.toml", "ttl-overrides = \"/a/=1s; b/=2s\"\n");
    let error = load_err(
        &["--config", path_str(&file)],
        &[("SIDECACHE_DEFAULT_TTL", "-1s")],
    );
    let key = Place::FileKey {
        path: file.clone(),
        key: "ttl-overrides".to_owned(),
    };
    assert!(
        has_problem(
            &error,
            &key,
            "invalid value \"/a/=1s; b/=2s\": rule \"b/=2s\": the prefix must be a path"
        ),
        "{error}"
    );
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_DEFAULT_TTL"),
            "invalid value \"-1s\""
        ),
        "{error}"
    );
    assert_eq!(error.problems().len(), 2, "{error}");

    let error = load_err(&["--ttl-overrides", "/a/=1s,always"], &[]);
    assert_eq!(error.exit_code(), EX_USAGE);
    let message = error.to_string();
    assert!(
        message.contains("--ttl-overrides") && message.contains("only \"force\" may follow"),
        "{message}"
    );
}

#[test]
fn command_line_syntax_errors_are_clap_errors_with_exit_code_64() {
    for args in [
        &["--cache-capacity", "12XB"][..],
        &["--origin-timeout", "soon"],
        &["--listen", "localhost"],
        &["--bogus"],
        &["--log-format"],
    ] {
        let error = load_err(args, &[]);
        assert!(!error.is_help_or_version(), "{args:?}");
        assert_eq!(error.exit_code(), EX_USAGE, "{args:?}");
        assert!(
            error.to_string().starts_with("error: "),
            "{args:?}: {error}"
        );
        assert!(error.to_string().contains(args[0]), "{args:?}: {error}");
    }
}

// === validation ===

#[test]
fn the_origin_must_be_an_absolute_http_url_without_a_query() {
    for accepted in [
        "http://127.0.0.1:9000",
        "http://origin.internal:9000/",
        "http://[::1]",
        "http://origin.internal/api",
        "http://origin.internal:9000/api/v1/",
    ] {
        let config = load_ok(&["--origin", accepted], &[]);
        let expected: http::Uri = accepted.parse().expect("test URL");
        assert_eq!(config.origin.url, Some(expected));
    }
    let rejected = [
        (
            "https://origin.internal",
            "TLS to the origin is not supported yet",
        ),
        ("ftp://origin.internal", "scheme ftp:// is not supported"),
        ("127.0.0.1:9000", "must be an absolute http:// URL"),
        ("/api", "must be an absolute http:// URL"),
        (
            "http://origin.internal/?debug=1",
            "must not have a query (got \"debug=1\")",
        ),
        ("http://origin.internal/api?", "must not have a query"),
    ];
    for (url, reason) in rejected {
        let error = load_err(&["--origin", url], &[]);
        assert!(
            has_problem(&error, &flag("origin"), reason),
            "{url}: {error}"
        );
    }
}

#[test]
fn zero_is_an_error_for_timeouts_but_turns_off_grace_and_hit_for_miss() {
    let config = load_ok(
        &[
            "--grace",
            "0s",
            "--hit-for-miss-ttl",
            "0s",
            "--max-heuristic-freshness",
            "0s",
        ],
        &[],
    );
    assert_eq!(config.cache.grace, Duration::ZERO);
    assert_eq!(config.cache.hit_for_miss_ttl, Duration::ZERO);

    for long in [
        "coalesce-timeout",
        "origin-connect-timeout",
        "origin-timeout",
        "origin-body-timeout",
        "origin-pool-idle-timeout",
        "origin-read-timeout",
        "client-header-timeout",
        "client-idle-timeout",
        "client-send-timeout",
        "client-body-timeout",
        "shutdown-grace",
    ] {
        let error = load_err(&[&format!("--{long}"), "0s"], &[]);
        assert_eq!(
            error.problems(),
            [Problem::new(flag(long), "must be greater than zero")],
            "{long}"
        );
    }
}

#[test]
fn client_limits_and_waiters_must_be_positive_and_heads_bounded() {
    for long in [
        "max-connections",
        "max-header-size",
        "max-headers",
        "max-request-body",
        "max-waiters-per-key",
        "http2-max-concurrent-streams",
        "max-origin-requests-per-connection",
        "max-abandoned-requests",
    ] {
        let error = load_err(&[&format!("--{long}"), "0"], &[]);
        assert_eq!(
            error.problems(),
            [Problem::new(flag(long), "must be greater than zero")],
            "{long}"
        );
        assert_eq!(error.exit_code(), EX_USAGE);
    }
    let error = load_err(&[], &[("SIDECACHE_MAX_HEADER_SIZE", "1MiB")]);
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_MAX_HEADER_SIZE"),
            "1MiB exceeds the largest supported request head (256KiB)"
        ),
        "{error}"
    );
    let config = load_ok(&["--max-header-size", "256KiB"], &[]);
    assert_eq!(config.client.max_header_bytes, 256 * 1024);
}

#[test]
fn cache_sizes_must_be_positive_and_fit_together() {
    let error = load_err(&["--cache-capacity", "0"], &[]);
    assert!(
        has_problem(&error, &flag("cache-capacity"), "must be greater than zero"),
        "{error}"
    );
    let error = load_err(&["--max-object-size", "0B"], &[]);
    assert!(
        has_problem(
            &error,
            &flag("max-object-size"),
            "must be greater than zero"
        ),
        "{error}"
    );
    let config = load_ok(
        &["--cache-capacity", "8MiB", "--max-object-size", "8MiB"],
        &[],
    );
    assert_eq!(config.cache.max_object_bytes, config.cache.capacity_bytes);
}

#[test]
fn the_admin_token_must_be_usable_in_an_authorization_header() {
    for (args, vars) in [
        (&["--admin-token", ""][..], &[][..]),
        (&[], &[("SIDECACHE_ADMIN_TOKEN", "")]),
    ] {
        let error = load_err(args, vars);
        assert!(error.to_string().contains("must not be empty"), "{error}");
    }
    let error = load_err(&["--admin-token", "two words"], &[]);
    let message = error.to_string();
    assert!(message.contains("must be visible ASCII"), "{message}");
    assert!(
        !message.contains("two words"),
        "the token is a secret: {message}"
    );

    let config = load_ok(&[], &[("SIDECACHE_ADMIN_TOKEN", "s3cret-token_1")]);
    assert_eq!(config.admin.token.as_deref(), Some("s3cret-token_1"));
}

#[test]
fn the_admin_port_is_separate_from_the_proxy_port() {
    let error = load_err(
        &[
            "--listen",
            "127.0.0.1:9000",
            "--admin-listen",
            "127.0.0.1:9000",
        ],
        &[],
    );
    assert!(
        has_problem(&error, &flag("admin-listen"), "must be separate"),
        "{error}"
    );
    // Port 0 asks the OS for a fresh port for each listener.
    load_ok(
        &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        &[],
    );
}

#[test]
fn an_admin_port_reachable_from_other_hosts_needs_a_token_or_admin_insecure() {
    for listen in [
        "0.0.0.0:8081",
        "[::]:8081",
        "192.0.2.7:8081",
        "[2001:db8::1]:8081",
    ] {
        let error = load_err(&["--admin-listen", listen], &[]);
        assert_eq!(error.exit_code(), EX_USAGE, "{listen}");
        assert!(
            has_problem(&error, &flag("admin-listen"), "--admin-token"),
            "{listen}: {error}"
        );
        assert!(error.to_string().contains("--admin-insecure"), "{error}");
        // From the environment, the problem names the variable.
        let error = load_err(&[], &[("SIDECACHE_ADMIN_LISTEN", listen)]);
        assert!(
            has_problem(&error, &env_var("SIDECACHE_ADMIN_LISTEN"), "--admin-token"),
            "{listen}: {error}"
        );
        let with_token = load_ok(&["--admin-listen", listen, "--admin-token", "t"], &[]);
        assert!(!with_token.admin.insecure);
        let insecure = load_ok(&["--admin-listen", listen, "--admin-insecure", "true"], &[]);
        assert!(insecure.admin.insecure);
        load_ok(
            &[],
            &[
                ("SIDECACHE_ADMIN_LISTEN", listen),
                ("SIDECACHE_ADMIN_INSECURE", "true"),
            ],
        );
    }
    // Loopback is 127.0.0.0/8 and ::1 (also written as an IPv4-mapped address).
    for listen in [
        "127.0.0.1:8081",
        "127.3.2.1:0",
        "[::1]:8081",
        "[::ffff:127.0.0.1]:8081",
    ] {
        load_ok(&["--admin-listen", listen], &[]);
    }
    let error = load_err(&["--admin-insecure", "yes"], &[]);
    assert!(error.to_string().contains("admin-insecure"), "{error}");
}

#[test]
fn the_log_level_must_not_be_empty() {
    let error = load_err(&[], &[("SIDECACHE_LOG_LEVEL", " ")]);
    assert!(
        has_problem(&error, &env_var("SIDECACHE_LOG_LEVEL"), "must not be empty"),
        "{error}"
    );
}

#[test]
fn validate_reports_every_broken_rule_of_a_config_built_in_code() {
    let mut config = Config::default();
    config.origin.url = Some(http::Uri::from_static("https://origin.internal/api"));
    config.origin.connect_timeout = Duration::ZERO;
    config.origin.first_byte_timeout = Duration::ZERO;
    config.origin.body_timeout = Duration::ZERO;
    config.origin.pool_idle_timeout = Duration::ZERO;
    config.cache.coalesce_timeout = Duration::ZERO;
    config.shutdown_grace = Duration::ZERO;
    config.cache.capacity_bytes = 0;
    config.cache.max_object_bytes = 0;
    config.admin.listen = config.proxy.listen;
    config.admin.token = Some(String::new());
    config.log.level = String::new();
    config.writebehind.interval = Duration::ZERO;
    config.writebehind.max_pending_keys = 0;

    let error = config.validate().expect_err("everything is broken");
    assert_eq!(error.exit_code(), EX_USAGE);
    let declared: Vec<String> = testing::options()
        .into_iter()
        .map(|(long, _)| long)
        .collect();
    let mut named = Vec::new();
    for problem in error.problems() {
        let Place::Flag { long } = &problem.place else {
            panic!("validation names options by flag: {problem}");
        };
        assert!(declared.contains(long), "{long} is not a declared flag");
        named.push(long.as_str());
    }
    named.dedup();
    assert_eq!(
        named,
        [
            "origin",
            "origin-connect-timeout",
            "origin-timeout",
            "origin-body-timeout",
            "origin-pool-idle-timeout",
            "coalesce-timeout",
            "shutdown-grace",
            "cache-capacity",
            "max-object-size",
            "admin-listen",
            "admin-token",
            "log-level",
            "writebehind-interval",
            "writebehind-max-pending-keys",
        ]
    );
}

// === help, version, conventions ===

#[test]
fn help_documents_every_option_with_its_env_name_and_default() {
    let command = testing::command();
    for args in [["--help"], ["-h"]] {
        let error = load_err(&args, &[]);
        assert!(error.is_help_or_version());
        assert_eq!(error.exit_code(), 0);
        let help = error.to_string();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            // Actions, not options: they take no value and have no variable.
            if matches!(long, "help" | "version" | "check-config") {
                continue;
            }
            // A flag whose value may be left out (`--demo`) shows it in brackets.
            assert!(
                help.contains(&format!("--{long} <")) || help.contains(&format!("--{long} [<")),
                "{args:?}: --{long} missing"
            );
            let env = testing::options()
                .into_iter()
                .find_map(|(option, env)| (option == long).then_some(env))
                .expect("every option has an environment variable");
            let note = match STANDARD_ENV.iter().find(|standard| standard.long == long) {
                Some(standard) => format!("[env: {env}, else {}]", standard.var),
                None => format!("[env: {env}]"),
            };
            assert!(help.contains(&note), "{args:?}: {note} missing");
            match arg.get_default_values() {
                [default] => assert!(
                    help.contains(&format!("[default: {}]", default.to_string_lossy())),
                    "{args:?}: --{long} default missing"
                ),
                _ => assert!(
                    arg.get_help()
                        .is_some_and(|h| h.to_string().contains("Unset by default")),
                    "--{long} without a default must say what unset means"
                ),
            }
        }
        // Units of BYTES and DURATION are explained once.
        assert!(
            help.contains("KiB/MiB/GiB") && help.contains("250ms"),
            "{help}"
        );
    }
}

#[test]
fn version_is_not_a_failure() {
    let error = load_err(&["--version"], &[]);
    assert!(error.is_help_or_version());
    assert_eq!(error.exit_code(), 0);
    assert!(error.to_string().starts_with("sidecache "), "{error}");
}

#[test]
fn version_names_the_commit_and_the_build_profile() {
    let version = load_err(&["--version"], &[]).to_string();
    assert_eq!(
        version.trim_end(),
        format!(
            "sidecache {} (commit {}, {})",
            crate::build::VERSION,
            crate::build::COMMIT,
            crate::build::PROFILE
        )
    );
    let commit = crate::build::COMMIT.trim_end_matches("-dirty");
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|byte| byte.is_ascii_hexdigit())),
        "{commit}"
    );
    assert_eq!(
        crate::build::PROFILE,
        "debug",
        "tests build the debug profile"
    );
}

#[test]
fn every_option_follows_the_conventions() {
    let mut command = testing::command();
    command.build();
    command.clone().debug_assert();
    let options = testing::options();
    let mut envs: Vec<_> = options.iter().map(|(_, env)| env.as_str()).collect();
    envs.sort_unstable();
    envs.dedup();
    assert_eq!(
        envs.len(),
        options.len(),
        "environment variables are unique"
    );

    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        // Actions, not options: they take no value and have no variable.
        if matches!(id, "help" | "version" | "check-config") {
            continue;
        }
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("{id} has no long flag"));
        let env = options
            .iter()
            .find_map(|(option, env)| (option == long).then_some(env))
            .unwrap_or_else(|| panic!("--{long} has no env = \"SIDECACHE_...\""));
        assert!(env.starts_with("SIDECACHE_"), "--{long}: {env}");
        assert!(
            arg.get_env().is_none(),
            "--{long}: clap must not read the process environment"
        );
        // Sources are layered by giving an option again, so it must take exactly one value.
        assert!(
            matches!(arg.get_action(), ArgAction::Set),
            "--{long} must use ArgAction::Set"
        );
        assert!(
            arg.get_value_names().is_some(),
            "--{long} needs a value_name (its unit)"
        );
        assert!(arg.get_help().is_some(), "--{long} needs a doc comment");
    }

    // A standard OpenTelemetry variable is a second name for one option, never a first.
    let standard = testing::standard_vars();
    assert_eq!(standard.len(), STANDARD_ENV.len(), "each names an option");
    for (long, var) in standard {
        assert!(var.starts_with("OTEL_"), "--{long}: {var}");
        assert!(
            !options.iter().any(|(_, env)| env == var),
            "--{long}: {var} is some option's own variable"
        );
    }
}

#[test]
fn debug_output_hides_the_admin_token() {
    let config = load_ok(&["--admin-token", "s3cret"], &[]);
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

// === write-behind ===

#[test]
fn the_writebehind_sink_is_sqlite_or_postgres_and_its_password_stays_hidden() {
    let config = load_ok(&["--writebehind-sink", "sqlite:/data/c.db"], &[]);
    assert_eq!(
        config.writebehind.sink,
        SinkAddress::Sqlite(PathBuf::from("/data/c.db"))
    );
    let error = load_err(&[], &[("SIDECACHE_WRITEBEHIND_SINK", "mysql://db")]);
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_WRITEBEHIND_SINK"),
            "expected sqlite:PATH or a postgres:// URL"
        ),
        "{error}"
    );
    let config = load_ok(
        &[
            "--writebehind-sink",
            "postgres://app:s3cret@db:5432/metrics",
        ],
        &[],
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[test]
fn writebehind_interval_and_cap_must_be_positive() {
    for (args, long) in [
        (["--writebehind-interval", "0s"], "writebehind-interval"),
        (
            ["--writebehind-max-pending-keys", "0"],
            "writebehind-max-pending-keys",
        ),
    ] {
        let error = load_err(&args, &[]);
        assert!(
            has_problem(&error, &flag(long), "must be greater than zero"),
            "{error}"
        );
    }
    let error = load_err(&["--writebehind-count-requests", "yes"], &[]);
    assert_eq!(error.exit_code(), EX_USAGE);
}
