//! Tests of the spellings options accept (host names, nginx-style sizes, bare seconds) and of
//! the errors for the ones they do not: each names the source, the value and what is accepted.

use super::*;

#[test]
fn listeners_take_host_names() {
    let config = load_ok(
        &[
            "--listen",
            "localhost:8080",
            "--admin-listen",
            "localhost:8081",
        ],
        &[],
    );
    assert_eq!(config.proxy.listen, addr("127.0.0.1:8080"));
    assert_eq!(config.admin.listen, addr("127.0.0.1:8081"));
    // Resolved to loopback, so the demo may start there.
    assert_eq!(config.origin.url, None);
}

#[test]
fn sizes_take_nginx_units_and_durations_bare_seconds() {
    let config = load_ok(
        &["--cache-capacity", "1G", "--max-object-size", "256M"],
        &[("SIDECACHE_ORIGIN_TIMEOUT", "45"), ("SIDECACHE_GRACE", "0")],
    );
    assert_eq!(config.cache.capacity_bytes, 1 << 30);
    assert_eq!(config.cache.max_object_bytes, 256 << 20);
    assert_eq!(config.origin.first_byte_timeout, secs(45));
    assert_eq!(config.cache.grace, Duration::ZERO);
}

#[test]
fn a_bad_value_names_its_source_the_value_and_what_is_accepted() {
    let error = load_err(
        &[],
        &[
            ("SIDECACHE_CACHE_CAPACITY", "1.5GiB"),
            ("SIDECACHE_ORIGIN_TIMEOUT", "-5s"),
            ("SIDECACHE_LISTEN", "localhost"),
        ],
    );
    assert_eq!(error.exit_code(), EX_USAGE);
    for (var, needle) in [
        (
            "SIDECACHE_CACHE_CAPACITY",
            "invalid value \"1.5GiB\": byte size must be a whole number; use a smaller unit (e.g. 1536MiB",
        ),
        (
            "SIDECACHE_ORIGIN_TIMEOUT",
            "invalid value \"-5s\": a duration cannot be negative; expected e.g. 250ms",
        ),
        (
            "SIDECACHE_LISTEN",
            "invalid value \"localhost\": expected HOST:PORT",
        ),
    ] {
        assert!(has_problem(&error, &env_var(var), needle), "{var}: {error}");
    }
    // On the command line, clap's message names the flag and the value.
    for (flag, value, needle) in [
        ("--cache-capacity", "1.5GiB", "1536MiB"),
        ("--origin-timeout", "-5s", "cannot be negative"),
        ("--listen", "no-such-host.invalid:80", "does not resolve"),
    ] {
        let error = load_err(&[&format!("{flag}={value}")], &[]);
        assert_eq!(error.exit_code(), EX_USAGE);
        let message = error.to_string();
        assert!(message.contains(flag), "{message}");
        assert!(message.contains(value), "{message}");
        assert!(message.contains(needle), "{message}");
    }
}
