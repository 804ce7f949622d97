//! Where the loader reads environment variables from, so tests pass a map instead of mutating the
//! process environment.

use std::collections::HashMap;

/// A source of environment variables.
pub trait Env {
    /// The value of the variable `name`, or `None` when it is unset.
    fn var(&self, name: &str) -> Option<String>;

    /// The names of every variable that is set, so that unknown `SIDECACHE_*` names can be
    /// refused rather than ignored.
    fn names(&self) -> Vec<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    /// A value that is not valid Unicode is converted lossily rather than treated as unset, so a
    /// variable that is set is never silently ignored (an unset `SIDECACHE_ADMIN_TOKEN` would open
    /// the admin endpoints).
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|value| {
            value
                .into_string()
                .unwrap_or_else(|raw| raw.to_string_lossy().into_owned())
        })
    }

    /// A name that is not valid Unicode is converted lossily, so it is still checked.
    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_answers_only_for_its_keys() {
        let env = HashMap::from([("SIDECACHE_LISTEN".to_owned(), "0.0.0.0:80".to_owned())]);
        assert_eq!(env.var("SIDECACHE_LISTEN").as_deref(), Some("0.0.0.0:80"));
        assert_eq!(env.var("SIDECACHE_ORIGIN"), None);
        assert_eq!(env.names(), ["SIDECACHE_LISTEN"]);
    }

    #[test]
    fn the_process_env_reads_std_env() {
        // Read-only: PATH is set wherever cargo runs tests; nothing is mutated.
        assert_eq!(ProcessEnv.var("PATH"), std::env::var("PATH").ok());
        assert_eq!(ProcessEnv.var("SIDECACHE_TEST_SURELY_UNSET_VARIABLE"), None);
        assert!(ProcessEnv.names().iter().any(|name| name == "PATH"));
    }
}
