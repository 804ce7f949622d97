//! The admin listener's configuration: its address and who may call it.

use std::fmt;
use std::net::SocketAddr;

/// The admin listener, kept apart from the proxy port.
#[derive(Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Admin")]
pub struct AdminConfig {
    /// Address of the admin endpoints (metrics, stats, health, purge), separate from the proxy
    /// port so they answer even when the data plane is saturated.
    #[arg(
        id = "admin-listen",
        long = "admin-listen",
        env = "SIDECACHE_ADMIN_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8081",
        value_parser = crate::listen_addr::parse_listen_addr
    )]
    pub listen: SocketAddr,
    /// Bearer token that every admin call but /healthz, /readyz and /metrics must send
    /// (Authorization: Bearer TOKEN). Unset by default, which leaves those calls open to anyone
    /// who can reach the admin port; required when --admin-listen is not a loopback address.
    #[arg(
        long = "admin-token",
        env = "SIDECACHE_ADMIN_TOKEN",
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Allow an --admin-listen address other hosts can reach (not 127.0.0.0/8 or ::1) without
    /// --admin-token, leaving purges and counters open to the network. Without it, such a
    /// configuration is refused at start.
    #[arg(
        long = "admin-insecure",
        env = "SIDECACHE_ADMIN_INSECURE",
        value_name = "BOOL",
        default_value = "false",
        action = clap::ArgAction::Set
    )]
    pub insecure: bool,
}

// === impl AdminConfig ===

impl fmt::Debug for AdminConfig {
    /// Keeps the token out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .finish()
    }
}
