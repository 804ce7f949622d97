//! [`Invocation`]: what the command line asks for, and the configuration it comes to.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;

use super::{Config, ConfigError, Env, ProcessEnv, sources};

/// A loaded configuration with what else the command line said: whether only a check was asked
/// for, which file was read, and the effective value of each option (to tell which options a
/// later load changed).
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The validated configuration.
    pub config: Config,
    /// The TOML file read (`--config`, else `SIDECACHE_CONFIG`), if any.
    pub file: Option<PathBuf>,
    /// `--check-config`: check and summarise the configuration, then exit without serving.
    pub check_only: bool,
    /// Each option's effective value as text, by long flag name. Holds secrets: compared, never
    /// shown.
    pub(super) values: BTreeMap<String, String>,
}

// === impl Invocation ===

impl Invocation {
    /// Loads from the process's arguments and environment.
    ///
    /// # Errors
    ///
    /// See [`Config::load_from`].
    pub fn load() -> Result<Invocation, ConfigError> {
        Self::load_from(std::env::args_os(), &ProcessEnv)
    }

    /// Loads from the given arguments (argv\[0\] first) and environment, as
    /// [`Config::load_from`] does.
    ///
    /// # Errors
    ///
    /// See [`Config::load_from`].
    pub fn load_from<I, T>(args: I, env: &dyn Env) -> Result<Invocation, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        sources::load_invocation(args.into_iter().map(Into::into).collect(), env)
    }

    /// The long flag names of the options whose effective value differs in `other` (set in one
    /// and not the other included), in alphabetical order.
    pub fn changed_options(&self, other: &Invocation) -> Vec<String> {
        let names: BTreeSet<&String> = self.values.keys().chain(other.values.keys()).collect();
        names
            .into_iter()
            .filter(|name| self.values.get(*name) != other.values.get(*name))
            .cloned()
            .collect()
    }

    /// Takes `options`' values from `newer`: the reloadable options a reload applied, so that
    /// the next reload compares with what is in effect.
    pub fn adopt(&mut self, newer: &Invocation, options: &[String]) {
        for option in options {
            match newer.values.get(option) {
                Some(value) => self.values.insert(option.clone(), value.clone()),
                None => self.values.remove(option),
            };
        }
    }
}
