//! The configuration loader: a TOML file and `SIDECACHE_*` / `OTEL_*` variables, as an operator
//! could write them.
//!
//! Input: the TOML file's text, then a NUL byte, then `NAME=VALUE` lines for the environment.
//! Checks that loading never panics, that what it accepts passes validation, and that loading
//! the same sources twice gives the same configuration.

#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sidecache::config::Config;

/// One file per fuzzing process, rewritten for every input.
fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("sidecache-fuzz-config-{}.toml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let (toml, env) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(env) = std::str::from_utf8(env) else {
        return;
    };
    let env: HashMap<String, String> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    std::fs::write(file(), toml).expect("write the config file");
    let args = [
        "sidecache",
        "--config",
        file().to_str().expect("a UTF-8 temp path"),
    ];
    let loaded = Config::load_from(args, &env);
    if let Ok(config) = &loaded {
        config.validate().expect("a loaded configuration is valid");
        let again = Config::load_from(args, &env).expect("the same sources load again");
        assert!(again == *config, "loading is deterministic");
    }
});
