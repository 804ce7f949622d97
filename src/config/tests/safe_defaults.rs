//! Tests of the rules that keep a mistake from reaching real clients: the demo origin only where
//! it is meant.

use super::*;

// === the demo origin ===

#[test]
fn without_an_origin_the_demo_runs_on_a_loopback_listener() {
    for listen in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.2:0"] {
        let config = load_ok(&["--listen", listen], &[]);
        assert_eq!(config.origin.url, None, "{listen}");
        assert!(!config.origin.demo, "{listen}");
    }
}

#[test]
fn without_an_origin_a_listener_other_hosts_reach_is_refused_naming_the_origin() {
    for listen in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:80"] {
        let error = load_err(&["--listen", listen], &[]);
        assert_eq!(error.exit_code(), EX_USAGE);
        assert!(
            has_problem(&error, &flag("origin"), "not set (SIDECACHE_ORIGIN)"),
            "{listen}: {error}"
        );
        assert!(
            has_problem(&error, &flag("origin"), &format!("listens on {listen}")),
            "{listen}: {error}"
        );
        assert!(has_problem(&error, &flag("origin"), "--demo"), "{error}");
    }
    // As the container image runs: listener from the environment, origin variable missing.
    let error = load_err(&[], &[("SIDECACHE_LISTEN", "0.0.0.0:8080")]);
    assert!(
        has_problem(&error, &flag("origin"), "not set (SIDECACHE_ORIGIN)"),
        "{error}"
    );
}

#[test]
fn demo_serves_the_demo_on_any_listener_by_flag_or_variable() {
    for (args, vars) in [
        (&["--demo"][..], &[][..]),
        (&["--demo", "true"][..], &[][..]),
        (&["--demo=true"][..], &[][..]),
        (&[][..], &[("SIDECACHE_DEMO", "true")][..]),
    ] {
        let mut all = vec!["--listen", "0.0.0.0:8080"];
        all.extend_from_slice(args);
        let config = load_ok(&all, vars);
        assert!(config.origin.demo, "{args:?} {vars:?}");
        assert_eq!(config.origin.url, None);
    }
    // A flag after a bare --demo is still a flag.
    let config = load_ok(&["--demo", "--listen", "0.0.0.0:8080"], &[]);
    assert!(config.origin.demo);
    assert_eq!(config.proxy.listen, addr("0.0.0.0:8080"));
}

#[test]
fn demo_and_an_origin_together_are_refused() {
    let error = load_err(&["--demo", "--origin", "http://127.0.0.1:9000"], &[]);
    assert!(
        has_problem(&error, &flag("demo"), "give one of them, not both"),
        "{error}"
    );
    let error = load_err(
        &["--origin", "http://127.0.0.1:9000"],
        &[("SIDECACHE_DEMO", "true")],
    );
    assert!(
        has_problem(&error, &env_var("SIDECACHE_DEMO"), "give one of them"),
        "{error}"
    );
}

// === the SIDECACHE_* namespace ===

#[test]
fn an_unknown_sidecache_variable_is_refused_naming_the_closest_known_one() {
    let error = load_err(
        &[],
        &[
            ("SIDECACHE_ORIGN", "http://127.0.0.1:9000"),
            ("SIDECACHE_CACHE_SIZE", "1GiB"),
            // Not sidecache's: left alone.
            ("ORIGIN", "x"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    assert_eq!(error.exit_code(), EX_USAGE);
    assert_eq!(error.problems().len(), 2, "{error}");
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_ORIGN"),
            "not a variable sidecache reads; the closest is SIDECACHE_ORIGIN "
        ),
        "{error}"
    );
    assert!(
        has_problem(
            &error,
            &env_var("SIDECACHE_CACHE_SIZE"),
            "the closest is SIDECACHE_CACHE_CAPACITY "
        ),
        "{error}"
    );
}

#[test]
fn an_unknown_file_key_names_the_closest_known_one() {
    let dir = TempDir::new();
    let file = dir.file("typo.toml", "orign = \"http://127.0.0.1:9000\"\n");
    let error = load_err(&["--config", path_str(&file)], &[]);
    assert!(
        error
            .to_string()
            .contains("unknown keys: orign (closest: origin)"),
        "{error}"
    );
}

#[test]
fn log_level_is_read_from_sidecache_log_level_and_its_former_name() {
    let level = |vars: Vars<'_>| load_ok(&[], vars).log.level;
    assert_eq!(level(&[("SIDECACHE_LOG_LEVEL", "debug")]), "debug");
    assert_eq!(level(&[("SIDECACHE_LOG", "warn")]), "warn");
    assert_eq!(
        level(&[("SIDECACHE_LOG", "warn"), ("SIDECACHE_LOG_LEVEL", "debug")]),
        "debug"
    );
    assert_eq!(
        load_ok(&["--log-level", "error"], &[("SIDECACHE_LOG", "warn")])
            .log
            .level,
        "error"
    );
    // A problem with the former name's value names the former name.
    let error = load_err(&[], &[("SIDECACHE_LOG", " ")]);
    assert!(
        has_problem(&error, &env_var("SIDECACHE_LOG"), "must not be empty"),
        "{error}"
    );
}
