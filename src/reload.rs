//! Reloading the configuration while serving (SIGHUP): the settings that can change without a
//! restart are re-read and applied, in one place.
//!
//! A reload loads the configuration again from the same command line and environment, so the
//! `--config` file is read afresh and flags and variables still win over it, as at start. The
//! whole configuration is checked as at start; if anything is wrong, nothing changes. Otherwise
//! every [`Reloadable`] setting whose options changed applies its part, and the changed options
//! no setting applies are named as needing a restart.
//!
//! A setting joins by implementing [`Reloadable`] (see `settings` for the log filter and the
//! admin token) and being added with [`Reloader::with`].

mod settings;

use std::ffi::OsString;

use crate::config::{Config, Env, Invocation};
use prometheus::IntCounter;

use crate::metrics::{self, Registry};

pub use self::settings::{AdminTokenSetting, LogFilterSetting};

/// A setting that can change while serving.
pub trait Reloadable: Send {
    /// The options it applies, by long flag name (the config file's keys).
    fn options(&self) -> &'static [&'static str];

    /// Checks its part of the new `config` and returns the change that applies it, without
    /// applying it: no setting changes unless every changed setting is ready.
    ///
    /// # Errors
    /// Why the new value cannot be applied, for the operator.
    fn prepare(&self, config: &Config) -> Result<Change, String>;
}

/// A prepared change, applied once every changed setting has prepared its own.
pub type Change = Box<dyn FnOnce() + Send>;

/// How a reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The configuration was valid: `applied` options took effect, `need_restart` ones did not.
    Applied {
        /// The changed options now in effect.
        applied: Vec<String>,
        /// The changed options that take effect only at the next start.
        need_restart: Vec<String>,
    },
    /// The configuration was invalid (or a setting could not take its value): nothing changed.
    Failed,
}

/// Reloads the configuration and applies what can change while serving.
pub struct Reloader {
    /// The command line the process started with (argv\[0\] first).
    args: Vec<OsString>,
    env: Box<dyn Env + Send>,
    /// What is in effect: the start's values, with each applied reload's reloadable options.
    running: Invocation,
    settings: Vec<Box<dyn Reloadable>>,
    applied: IntCounter,
    failed: IntCounter,
}

// === impl Reloader ===

impl Reloader {
    /// Reloads from `args` and `env` (those the process started with) onto `running`, counting
    /// reloads in `registry` as `sidecache_config_reloads_total{outcome="applied|failed"}`.
    ///
    /// # Errors
    /// The counter could not be registered.
    pub fn new(
        args: Vec<OsString>,
        env: impl Env + Send + 'static,
        running: Invocation,
        registry: &Registry,
    ) -> metrics::Result<Self> {
        let [applied, failed]: [IntCounter; 2] = metrics::counters(
            registry,
            "sidecache_config_reloads_total",
            "Configuration reloads (SIGHUP), by outcome: applied (the file was valid; options \
             needing a restart were left as they were) or failed (nothing changed).",
            "outcome",
            &["applied", "failed"],
        )?
        .try_into()
        .expect("one counter per outcome");
        Ok(Self {
            args,
            env: Box::new(env),
            running,
            settings: Vec::new(),
            applied,
            failed,
        })
    }

    /// Adds a setting that reloads apply.
    #[must_use]
    pub fn with(mut self, setting: impl Reloadable + 'static) -> Self {
        self.settings.push(Box::new(setting));
        self
    }

    /// Loads the configuration again and applies what changed and can be applied; logs one INFO
    /// line naming the options applied and one WARN line naming those that need a restart, or
    /// one ERROR line when nothing changed because the configuration is invalid.
    pub fn reload(&mut self) -> Reloaded {
        match self.try_reload() {
            Ok((applied, need_restart)) => {
                self.applied.inc();
                tracing::info!(applied = %listed(&applied), "configuration reloaded");
                if !need_restart.is_empty() {
                    tracing::warn!(
                        options = %listed(&need_restart),
                        "changed options take effect only after a restart"
                    );
                }
                Reloaded::Applied {
                    applied,
                    need_restart,
                }
            }
            Err(error) => {
                self.failed.inc();
                tracing::error!(
                    %error,
                    "configuration reload failed; the running configuration is kept"
                );
                Reloaded::Failed
            }
        }
    }

    /// The changed options applied and those needing a restart, or why nothing was applied.
    fn try_reload(&mut self) -> Result<(Vec<String>, Vec<String>), String> {
        let next = Invocation::load_from(self.args.iter().cloned(), &*self.env)
            .map_err(|error| error.to_string())?;
        let changed = self.running.changed_options(&next);
        let changes = self
            .settings
            .iter()
            .filter(|setting| changed.iter().any(|name| applies(setting.as_ref(), name)))
            .map(|setting| setting.prepare(&next.config))
            .collect::<Result<Vec<Change>, String>>()?;
        changes.into_iter().for_each(|change| change());
        let (applied, need_restart): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|name| {
                self.settings
                    .iter()
                    .any(|setting| applies(setting.as_ref(), name))
            });
        self.running.adopt(&next, &applied);
        Ok((applied, need_restart))
    }

    /// Reloads on every SIGHUP `hangups` delivers; never completes.
    pub async fn serve(mut self, mut hangups: Hangups) {
        loop {
            hangups.next().await;
            tracing::info!("SIGHUP received, reloading the configuration");
            self.reload();
        }
    }
}

/// Whether `setting` applies the option `name`.
fn applies(setting: &dyn Reloadable, name: &str) -> bool {
    setting.options().contains(&name)
}

/// Options as one comma-separated value for a log line; `none` for none.
fn listed(options: &[String]) -> String {
    if options.is_empty() {
        "none".to_owned()
    } else {
        options.join(", ")
    }
}

/// SIGHUP deliveries, from the moment [`listen`](Self::listen) was called: from then on a SIGHUP
/// no longer ends the process, and one that arrives before [`Reloader::serve`] runs is kept.
#[derive(Debug)]
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    /// Starts listening; a SIGHUP that cannot be listened for is logged.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signal = signal(SignalKind::hangup())
                .inspect_err(|error| {
                    tracing::warn!(%error, "cannot listen for SIGHUP: it ends the process at once");
                })
                .ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for the next SIGHUP.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal
            && signal.recv().await.is_some()
        {
            return;
        }
        // No SIGHUP here, or its stream ended with the runtime.
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests;
