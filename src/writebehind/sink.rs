//! Where batches go: the [`Sink`] trait, batches and their ids, the sink's errors, and the
//! `--writebehind-sink` address.
//!
//! # Schema
//!
//! Both sinks create these tables when they are missing:
//!
//! ```sql
//! CREATE TABLE sidecache_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL, updated_at BIGINT NOT NULL);
//! CREATE TABLE sidecache_writebehind_batches (id TEXT PRIMARY KEY, committed_at BIGINT NOT NULL);
//! ```
//!
//! `updated_at` (seconds since the Unix epoch) is when a row was last written; a table created
//! before it existed gets the column, with the time of that upgrade in every row.
//!
//! A batch is one transaction: insert its id into `sidecache_writebehind_batches` (if the id is
//! already there, the batch was committed before: roll back and report
//! [`Applied::AlreadyCommitted`]), then upsert every name with `value = value + delta` and
//! `updated_at = now`. The sum saturates at the bounds of a 64-bit integer instead of failing, so
//! one huge counter cannot block every later batch.
//!
//! # Pruning
//!
//! The first transaction after a start, and one in every 1024 after it, also deletes
//! batch ids older than [`BATCH_ID_RETENTION`] and, with a [`Retention`] for request counts, the
//! request-count rows (named [`REQUEST_COUNTER_PREFIX`]…) not written for that long: one row per
//! URL ever requested would otherwise grow the table for ever. Other counters are never pruned.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::REQUEST_COUNTER_PREFIX;

/// How long a committed batch id is remembered: a batch retried (or replayed from a recovery
/// file) later than this could be applied twice.
pub const BATCH_ID_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Old batch ids are pruned in one of this many transactions.
pub(crate) const PRUNE_EVERY: u64 = 1024;

/// How long rows are kept, beyond the batch ids' fixed [`BATCH_ID_RETENTION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Request-count rows not written for this long are deleted; `None` keeps them for ever.
    pub request_rows: Option<Duration>,
}

/// The tables, created when missing.
pub(crate) const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS sidecache_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS sidecache_writebehind_batches (id TEXT PRIMARY KEY, committed_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS sidecache_writebehind_batches_committed_at ON sidecache_writebehind_batches (committed_at);
";

/// The future a [`Sink`] returns.
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SinkError>> + Send + 'a>>;

/// A durable home for counters.
///
/// # Concurrency
///
/// The flusher applies one batch at a time, but [`stored`](Self::stored) may be called while a
/// batch is being applied.
pub trait Sink: Send + Sync + 'static {
    /// Applies `batch` in one transaction: records its id and adds every delta. A batch whose
    /// id was committed before is not applied again.
    ///
    /// # Errors
    ///
    /// A [`SinkError`]; [`SinkError::is_outcome_unknown`] says whether the batch may have been
    /// committed all the same (it is then retried under the same id).
    fn apply(&self, batch: Arc<Batch>) -> SinkFuture<'_, Applied>;

    /// The value stored for `name`; 0 if there is none.
    ///
    /// # Errors
    ///
    /// The sink cannot be reached or refused the query.
    fn stored<'a>(&'a self, name: &'a str) -> SinkFuture<'a, i64>;
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The batch was committed now.
    Committed,
    /// A batch with this id had been committed before (a retry after an unknown outcome, or a
    /// replayed recovery file): nothing was changed.
    AlreadyCommitted,
}

/// The unique id of a batch, recorded in the sink with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchId(String);

/// Hands out batch ids: a random per-process prefix and a sequence number.
#[derive(Debug)]
pub struct BatchIds {
    prefix: String,
    next: AtomicU64,
}

/// Increments taken out of the counters together, applied in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    id: BatchId,
    /// Sorted by name, names unique, no zero deltas. Sorted so that two writers lock rows in
    /// the same order and cannot deadlock.
    entries: Vec<(Box<str>, i64)>,
}

/// A sink failed. The cause, if any, is the [`source`](StdError::source).
#[derive(Debug)]
pub struct SinkError {
    kind: SinkErrorKind,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// What a caller needs to know about a sink failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// The sink could not be reached or opened; nothing was written.
    Unavailable,
    /// The sink refused a statement; the transaction was rolled back.
    Rejected,
    /// The sink refused the content of a row (a name it cannot store, a constraint of the
    /// table); the transaction was rolled back, and the same rows would be refused again.
    RowRejected,
    /// The connection broke or timed out while the commit was under way: the batch may or may
    /// not have been committed.
    OutcomeUnknown,
}

/// Where counters are written: `sqlite:PATH` or a `postgres://` URL.
#[derive(Clone, PartialEq, Eq)]
pub enum SinkAddress {
    /// A SQLite database file (`:memory:` for one that lives only as long as the process).
    Sqlite(PathBuf),
    /// A PostgreSQL server, as libpq-style connection settings.
    Postgres(Box<tokio_postgres::Config>),
}

/// Why a `--writebehind-sink` value was not understood.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkAddressError {
    message: String,
}

// === impl BatchId ===

impl BatchId {
    /// An id read back from a recovery file.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of part `part` of this batch, when it is split: unique, since no id handed out
    /// by [`BatchIds`] contains a `.`, and the same whenever the same batch is split.
    pub fn part(&self, part: u8) -> Self {
        Self(format!("{}.{part}", self.0))
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl BatchIds ===

impl BatchIds {
    /// Ids with a fresh random prefix (128 bits), so that ids of different processes, and of
    /// one process across restarts, never collide.
    pub fn new() -> Self {
        let prefix = format!("{:016x}{:016x}", random_u64(), random_u64());
        Self {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> BatchId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        BatchId(format!("{}-{n}", self.prefix))
    }
}

impl Default for BatchIds {
    fn default() -> Self {
        Self::new()
    }
}

/// 64 random bits from the standard library's randomly keyed hasher (seeded from the operating
/// system), mixed with the time and the process id.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    hasher.write_u128(now);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

// === impl Batch ===

impl Batch {
    /// A batch of `entries` under `id`. Entries are sorted by name, repeated names added up
    /// (saturating), and zero deltas dropped.
    pub fn new(id: BatchId, mut entries: Vec<(Box<str>, i64)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(Box<str>, i64)> = Vec::with_capacity(entries.len());
        for (name, delta) in entries {
            match merged.last_mut() {
                Some((last, sum)) if *last == name => *sum = sum.saturating_add(delta),
                _ => merged.push((name, delta)),
            }
        }
        merged.retain(|(_, delta)| *delta != 0);
        Self {
            id,
            entries: merged,
        }
    }

    /// The batch's id.
    pub fn id(&self) -> &BatchId {
        &self.id
    }

    /// Every (name, delta), sorted by name.
    pub fn entries(&self) -> &[(Box<str>, i64)] {
        &self.entries
    }

    /// The delta for `name`, if the batch has one.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.entries
            .binary_search_by(|(entry, _)| (**entry).cmp(name))
            .ok()
            .map(|index| self.entries[index].1)
    }

    /// How many names the batch holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keeps only the rows whose name `keep` accepts; returns how many went.
    pub fn retain_names(&mut self, mut keep: impl FnMut(&str) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(name, _)| keep(name));
        before - self.entries.len()
    }

    /// The batch's two halves, each under an id of its own ([`BatchId::part`]), for a batch
    /// with at least two rows; `None` for a single row.
    pub fn split(&self) -> Option<(Batch, Batch)> {
        if self.entries.len() < 2 {
            return None;
        }
        let (first, second) = self.entries.split_at(self.entries.len() / 2);
        let half = |part, entries: &[(Box<str>, i64)]| Batch {
            id: self.id.part(part),
            entries: entries.to_vec(),
        };
        Some((half(0, first), half(1, second)))
    }
}

// === impl SinkError ===

impl SinkError {
    /// The sink could not be reached; nothing was written.
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(SinkErrorKind::Unavailable, source)
    }

    /// The sink refused; the transaction was rolled back.
    pub fn rejected(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(SinkErrorKind::Rejected, source)
    }

    /// The sink refused a row's content; the transaction was rolled back.
    pub fn row_rejected(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(SinkErrorKind::RowRejected, source)
    }

    /// The commit may or may not have happened.
    pub fn outcome_unknown(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::new(SinkErrorKind::OutcomeUnknown, source)
    }

    fn new(kind: SinkErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong, as far as a caller branches on it.
    pub fn kind(&self) -> SinkErrorKind {
        self.kind
    }

    /// Whether the batch may have been committed despite the error.
    pub fn is_outcome_unknown(&self) -> bool {
        self.kind == SinkErrorKind::OutcomeUnknown
    }

    /// Whether the sink refused the content of one of the batch's rows: sending the same rows
    /// again cannot help, sending fewer can.
    pub fn is_row_rejected(&self) -> bool {
        self.kind == SinkErrorKind::RowRejected
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            SinkErrorKind::Unavailable => "the write-behind sink cannot be reached",
            SinkErrorKind::Rejected => "the write-behind sink refused the batch",
            SinkErrorKind::RowRejected => "the write-behind sink refused a row of the batch",
            SinkErrorKind::OutcomeUnknown => {
                "the write-behind sink's commit outcome is unknown (the batch is retried under its id)"
            }
        })
    }
}

impl StdError for SinkError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

// === impl SinkAddress ===

impl SinkAddress {
    /// Parses `sqlite:PATH`, `postgres://...` or `postgresql://...` (the clap value parser).
    ///
    /// # Errors
    ///
    /// Another scheme, an empty path, or a PostgreSQL URL libpq would not accept.
    pub fn parse(text: &str) -> Result<Self, SinkAddressError> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(SinkAddressError::new(
                    "sqlite: needs a file path, e.g. sqlite:/var/lib/sidecache/counters.db",
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let mut config = tokio_postgres::Config::from_str(text).map_err(|error| {
                SinkAddressError::new(format!("not a usable PostgreSQL URL: {error}"))
            })?;
            if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                return Err(SinkAddressError::new(
                    "sslmode=require is not supported: sidecache talks to PostgreSQL without TLS",
                ));
            }
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(Duration::from_secs(5));
            }
            if config.get_application_name().is_none() {
                config.application_name("sidecache");
            }
            return Ok(Self::Postgres(Box::new(config)));
        }
        Err(SinkAddressError::new(
            "expected sqlite:PATH or a postgres:// URL",
        ))
    }
}

impl fmt::Display for SinkAddress {
    /// The address without its password, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Postgres(config) => {
                f.write_str("postgres://")?;
                if let Some(user) = config.get_user() {
                    write!(f, "{user}@")?;
                }
                for (i, host) in config.get_hosts().iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    match host {
                        tokio_postgres::config::Host::Tcp(name) => f.write_str(name)?,
                        tokio_postgres::config::Host::Unix(path) => {
                            write!(f, "{}", path.display())?
                        }
                    }
                    if let Some(port) = config.get_ports().get(i) {
                        write!(f, ":{port}")?;
                    }
                }
                if let Some(db) = config.get_dbname() {
                    write!(f, "/{db}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for SinkAddress {
    /// As [`Display`](fmt::Display): never shows the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SinkAddress({self})")
    }
}

// === impl SinkAddressError ===

impl SinkAddressError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Seconds since the Unix epoch, for `committed_at`.
pub(crate) fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The oldest `committed_at` still kept.
pub(crate) fn retention_cutoff(now: i64) -> i64 {
    cutoff(now, BATCH_ID_RETENTION)
}

/// The oldest time kept when rows are kept for `kept`.
fn cutoff(now: i64, kept: Duration) -> i64 {
    now.saturating_sub(i64::try_from(kept.as_secs()).unwrap_or(i64::MAX))
}

// === impl Retention ===

impl Retention {
    /// The request-count rows to prune at `now`, if any: their name prefix, and the oldest
    /// `updated_at` kept.
    pub(crate) fn request_rows_cutoff(&self, now: i64) -> Option<(&'static str, i64)> {
        self.request_rows
            .map(|kept| (REQUEST_COUNTER_PREFIX, cutoff(now, kept)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_sorted_merged_and_drop_zeros() {
        let batch = Batch::new(
            BatchId::new("x"),
            vec![
                ("b".into(), 2),
                ("a".into(), 1),
                ("b".into(), 3),
                ("c".into(), 4),
                ("c".into(), -4),
                ("d".into(), i64::MAX),
                ("d".into(), 1),
            ],
        );
        assert_eq!(
            batch.entries(),
            &[("a".into(), 1), ("b".into(), 5), ("d".into(), i64::MAX)]
        );
        assert_eq!(batch.get("b"), Some(5));
        assert_eq!(batch.get("c"), None);
    }

    #[test]
    fn a_batch_splits_into_halves_with_ids_of_their_own() {
        let batch = Batch::new(
            BatchId::new("b-7"),
            vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)],
        );
        let (first, second) = batch.split().expect("three rows");
        assert_eq!(
            (first.id().as_str(), second.id().as_str()),
            ("b-7.0", "b-7.1")
        );
        assert_eq!(first.entries(), &[("a".into(), 1)]);
        assert_eq!(second.entries(), &[("b".into(), 2), ("c".into(), 3)]);
        assert_eq!(
            second.split().map(|(a, b)| (a.id, b.id.0)).expect("two").1,
            "b-7.1.1"
        );
        assert!(first.split().is_none(), "one row stands alone");
        assert!(!BatchIds::new().next_id().as_str().contains('.'));
    }

    #[test]
    fn batch_ids_are_unique_within_and_across_generators() {
        let (first, second) = (BatchIds::new(), BatchIds::new());
        let ids = [
            first.next_id(),
            first.next_id(),
            second.next_id(),
            second.next_id(),
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn sink_addresses_parse_and_never_show_the_password() {
        assert_eq!(
            SinkAddress::parse("sqlite:/tmp/c.db").expect("sqlite"),
            SinkAddress::Sqlite("/tmp/c.db".into())
        );
        assert_eq!(
            SinkAddress::parse("sqlite::memory:").expect("memory"),
            SinkAddress::Sqlite(":memory:".into())
        );
        let postgres =
            SinkAddress::parse("postgres://app:s3cret@db.internal:5433/metrics").expect("url");
        let shown = format!("{postgres} {postgres:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://app@db.internal:5433/metrics"),
            "{shown}"
        );
        assert!(SinkAddress::parse("postgresql://localhost/db").is_ok());
        for bad in [
            "",
            "sqlite:",
            "mysql://x",
            "/tmp/c.db",
            "postgres://h/db?sslmode=require",
            "postgres://h/db?nonsense=1",
        ] {
            assert!(SinkAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sink_errors_describe_this_layer_and_keep_the_cause() {
        let error = SinkError::outcome_unknown("connection reset");
        assert!(error.is_outcome_unknown());
        assert!(!error.to_string().contains("reset"));
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("connection reset")
        );
        assert_eq!(
            SinkError::unavailable("x").kind(),
            SinkErrorKind::Unavailable
        );
    }
}
