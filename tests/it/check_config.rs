//! `sidecache --check-config`: the configuration is checked as at start, summarised without its
//! secrets, and nothing is bound, written or served.

use std::process::{Command, Output};

use crate::support::TempDir;

/// Runs `sidecache --check-config ARGS` in `dir` with `vars` (and nothing from the test's
/// environment that sidecache reads).
fn check(dir: &TempDir, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sidecache"))
        .arg("--check-config")
        .args(args)
        .current_dir(&dir.0)
        .env_remove("RUST_LOG")
        .env_remove("SIDECACHE_CONFIG")
        .env_remove("SIDECACHE_ADMIN_TOKEN")
        .envs(vars.iter().copied())
        .output()
        .expect("run sidecache --check-config")
}

#[test]
fn a_valid_configuration_exits_0_with_a_summary_and_binds_and_writes_nothing() {
    let dir = TempDir::new("check-config-valid");
    let file = dir.0.join("sidecache.toml");
    std::fs::write(&file, "cache-capacity = \"64MiB\"\nlog-level = \"warn\"\n").expect("write");
    // A port held by this test: binding it would fail, so exit 0 shows nothing was bound.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let output = check(
        &dir,
        &["--config", "sidecache.toml", "--listen", &taken],
        &[
            ("SIDECACHE_ORIGIN", "http://127.0.0.1:9"),
            ("SIDECACHE_ADMIN_TOKEN", "s3cret-admin-token"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("the configuration is valid"), "{stdout}");
    assert!(
        stdout.contains("config file:    sidecache.toml"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("listen:         {taken}")),
        "{stdout}"
    );
    assert!(stdout.contains("cache-capacity: 64MiB"), "{stdout}");
    assert!(stdout.contains("log-level:      warn"), "{stdout}");
    assert!(
        stdout.contains("origin:         http://127.0.0.1:9"),
        "{stdout}"
    );
    assert!(stdout.contains("(token set)"), "{stdout}");
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));
    // Not even the write-behind database a start would create in the working directory.
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .expect("read dir")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["sidecache.toml"]);
}

#[test]
fn a_bad_config_file_exits_64_naming_the_file_and_key() {
    let dir = TempDir::new("check-config-bad-file");
    std::fs::write(
        dir.0.join("bad.toml"),
        "origin-timeout = \"0s\"\ncache-capasity = 1\n",
    )
    .expect("write");
    let output = check(&dir, &["--config", "bad.toml"], &[]);
    assert_eq!(output.status.code(), Some(64));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml: origin-timeout"), "{stderr}");
    assert!(stderr.contains("unknown keys: cache-capasity"), "{stderr}");
}

#[test]
fn a_bad_environment_variable_exits_64_naming_it() {
    let dir = TempDir::new("check-config-bad-env");
    let output = check(&dir, &[], &[("SIDECACHE_ORIGIN", "ftp://example.com")]);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SIDECACHE_ORIGIN"), "{stderr}");
}

/// The log filter is only parsed when logging starts: the check parses it too.
#[test]
fn a_bad_log_filter_exits_64_naming_the_value_and_what_is_accepted() {
    let dir = TempDir::new("check-config-bad-filter");
    let output = check(&dir, &["--log-level", "sidecache=loud"], &[]);
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"sidecache=loud\""), "{stderr}");
    assert!(stderr.contains("--log-level"), "{stderr}");
    assert!(
        stderr.contains("preset (prod, development, debug)"),
        "{stderr}"
    );
}
