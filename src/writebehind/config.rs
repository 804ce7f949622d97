//! The write-behind counters' configuration: the sink, the flush interval, the bounds.

use std::path::PathBuf;
use std::time::Duration;

use super::sink::SinkAddress;

/// Write-behind counters: kept in memory, flushed in batches to a durable sink.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Write-behind counters")]
pub struct WriteBehindConfig {
    /// Where counters are flushed: sqlite::memory: (the default: kept in memory while the process
    /// runs, lost when it stops; no file is written), sqlite:PATH (a file in WAL mode, created
    /// when missing; an unwritable one stops the start, exit 64) or a postgres:// URL (no TLS:
    /// keep the server on loopback or a private network). Tables are created when missing.
    #[arg(
        long = "writebehind-sink",
        env = "SIDECACHE_WRITEBEHIND_SINK",
        value_name = "SINK",
        default_value = "sqlite::memory:",
        value_parser = SinkAddress::parse
    )]
    pub sink: SinkAddress,
    /// How often pending increments are written to the sink, one transaction per flush.
    #[arg(
        long = "writebehind-interval",
        env = "SIDECACHE_WRITEBEHIND_INTERVAL",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = crate::duration::parse_duration
    )]
    pub interval: Duration,
    /// Most counter names held in memory between flushes, so a scan of random URLs cannot
    /// exhaust memory. At the cap, increments of pending names still count; one that would add a
    /// name is refused (admin: 503; request counts: dropped and counted in
    /// sidecache_writebehind_increments_total{outcome="full"}) and a flush starts at once.
    #[arg(
        long = "writebehind-max-pending-keys",
        env = "SIDECACHE_WRITEBEHIND_MAX_PENDING_KEYS",
        value_name = "COUNT",
        default_value = "100000"
    )]
    pub max_pending_keys: usize,
    /// Count proxied requests per cache key, in the counter named "requests:" followed by the
    /// key's host and path (HOST/PATH): the origin team's popularity data.
    #[arg(
        long = "writebehind-count-requests",
        env = "SIDECACHE_WRITEBEHIND_COUNT_REQUESTS",
        value_name = "BOOL",
        default_value = "false",
        action = clap::ArgAction::Set
    )]
    pub count_requests: bool,
    /// Keep the query string in request counters' names (requests:HOST/PATH?QUERY). Off by
    /// default: a query can carry a secret (a password-reset link) into the sink, and a random
    /// query per request makes every request a counter of its own.
    #[arg(
        long = "writebehind-count-query",
        env = "SIDECACHE_WRITEBEHIND_COUNT_QUERY",
        value_name = "BOOL",
        default_value = "false",
        action = clap::ArgAction::Set
    )]
    pub count_query: bool,
    /// How long a request counter's row is kept in the sink after its last increment: rows of
    /// URLs nobody asked for since are deleted (at the first flush after a start, then about
    /// every 1024 flushes), so one row per URL ever requested does not grow the table for ever.
    /// Other counters are never deleted. 0 keeps every row.
    #[arg(
        long = "writebehind-request-retention",
        env = "SIDECACHE_WRITEBEHIND_REQUEST_RETENTION",
        value_name = "DURATION",
        default_value = "30days",
        value_parser = crate::duration::parse_duration
    )]
    pub request_retention: Duration,
    /// Where pending increments are written if the sink cannot be reached at shutdown; replayed
    /// (each batch at most once) and removed at the next start. Its directory must be writable
    /// (checked at start, exit 64). Unset by default: no file is written, and what the sink cannot
    /// take at shutdown is lost (and logged); set it with a PostgreSQL sink.
    #[arg(
        long = "writebehind-recovery-file",
        env = "SIDECACHE_WRITEBEHIND_RECOVERY_FILE",
        value_name = "FILE"
    )]
    pub recovery_file: Option<PathBuf>,
}
