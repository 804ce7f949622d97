//! The settings a reload applies: the log filter and the admin token.

use super::{Change, Reloadable};
use crate::admin::AdminToken;
use crate::config::Config;
use crate::telemetry::{self, LogFilterHandle};

/// `--log-level`: the log lines' filter. `RUST_LOG`, when it was set at start, still wins.
#[derive(Debug)]
pub struct LogFilterSetting {
    handle: LogFilterHandle,
    rust_log: Option<String>,
}

impl LogFilterSetting {
    /// Replaces the filter through `handle`; `rust_log` is `RUST_LOG` as the process started with.
    pub fn new(handle: LogFilterHandle, rust_log: Option<String>) -> Self {
        Self { handle, rust_log }
    }
}

impl Reloadable for LogFilterSetting {
    fn options(&self) -> &'static [&'static str] {
        &["log-level"]
    }

    fn prepare(&self, config: &Config) -> Result<Change, String> {
        let filter = telemetry::log_filter(&config.log, self.rust_log.as_deref())
            .map_err(|error| error.to_string())?;
        let handle = self.handle.clone();
        Ok(Box::new(move || {
            if let Err(error) = handle.replace(filter) {
                // Only when the subscriber is gone, i.e. the process is ending.
                tracing::warn!(%error, "the log filter could not be replaced");
            }
        }))
    }
}

/// `--admin-token`: the bearer token of the admin endpoints.
#[derive(Debug)]
pub struct AdminTokenSetting(AdminToken);

impl AdminTokenSetting {
    /// Replaces `token`, which the admin endpoints read.
    pub fn new(token: AdminToken) -> Self {
        Self(token)
    }
}

impl Reloadable for AdminTokenSetting {
    fn options(&self) -> &'static [&'static str] {
        &["admin-token"]
    }

    fn prepare(&self, config: &Config) -> Result<Change, String> {
        let (token, next) = (self.0.clone(), config.admin.token.clone());
        Ok(Box::new(move || token.replace(next)))
    }
}
