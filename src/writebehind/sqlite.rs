//! The embedded default sink: a SQLite file in WAL mode.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, ffi, params};

use super::sink::{
    Applied, Batch, PRUNE_EVERY, Retention, SCHEMA, Sink, SinkError, SinkFuture, retention_cutoff,
    unix_seconds,
};

/// Records the batch id; changes no row when the id is already there.
const INSERT_BATCH: &str = "INSERT INTO sidecache_writebehind_batches (id, committed_at) \
     VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING";

/// Adds `?2` to `?1`'s value, saturating at `?3` (i64::MAX) and `?4` (i64::MIN), and sets its
/// `updated_at` to `?5`. The nested `CASE`s make sure `?3 - delta` is only computed for a
/// positive delta and `?4 - delta` only for a negative one, so neither can overflow.
const UPSERT: &str = "INSERT INTO sidecache_counters (name, value, updated_at) VALUES (?1, ?2, ?5) \
     ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at, value = CASE \
       WHEN excluded.value > 0 THEN CASE \
         WHEN sidecache_counters.value > ?3 - excluded.value THEN ?3 \
         ELSE sidecache_counters.value + excluded.value END \
       WHEN excluded.value < 0 THEN CASE \
         WHEN sidecache_counters.value < ?4 - excluded.value THEN ?4 \
         ELSE sidecache_counters.value + excluded.value END \
       ELSE sidecache_counters.value END";

const PRUNE: &str = "DELETE FROM sidecache_writebehind_batches WHERE committed_at < ?1";

/// Deletes the rows named `?1`… not written since `?2`.
const PRUNE_ROWS: &str = "DELETE FROM sidecache_counters \
     WHERE substr(name, 1, length(?1)) = ?1 AND updated_at < ?2";

/// Whether the counters table has `updated_at` (tables created by earlier versions lack it).
const HAS_UPDATED_AT: &str =
    "SELECT COUNT(*) FROM pragma_table_info('sidecache_counters') WHERE name = 'updated_at'";

const SELECT_VALUE: &str = "SELECT value FROM sidecache_counters WHERE name = ?1";

/// How long a statement waits for another process's lock on the file before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A SQLite database file holding the counters.
///
/// One connection, behind a std `Mutex`: SQLite calls block, so they run on tokio's blocking
/// pool, and the mutex is only ever held there, never across an `.await`.
pub(crate) struct SqliteSink {
    connection: Arc<Mutex<Connection>>,
    /// Transactions started, to prune old batch ids in one of every [`PRUNE_EVERY`].
    applied: AtomicU64,
    /// What is pruned besides old batch ids.
    retention: Retention,
}

// === impl SqliteSink ===

impl SqliteSink {
    /// Opens (creating when missing) the database at `path` — `:memory:` for one that lives as
    /// long as the sink — in WAL mode with full `fsync` on commit, and creates the tables.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created, or is not a SQLite database.
    pub(crate) fn open(path: &Path) -> Result<Self, SinkError> {
        let mut connection = if path == Path::new(":memory:") {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        }
        .map_err(SinkError::unavailable)?;
        // SQLite opens a file it may not write read-only, without an error: every flush would
        // then fail. Refused here, the start stops and names the file.
        if connection
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(SinkError::unavailable)?
        {
            return Err(SinkError::unavailable("the file is not writable"));
        }
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(SinkError::unavailable)?;
        // WAL: readers (another process inspecting the file) do not block the flusher. An
        // in-memory database answers "memory" and stays so.
        let _mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(SinkError::unavailable)?;
        // FULL: an acknowledged commit survives a power cut, not only a crash of the process.
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(SinkError::unavailable)?;
        connection
            .execute_batch(SCHEMA)
            .map_err(SinkError::unavailable)?;
        add_updated_at(&mut connection).map_err(SinkError::unavailable)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            applied: AtomicU64::new(0),
            retention: Retention::default(),
        })
    }

    /// Prunes rows as `retention` says (see [`super::sink`], "Pruning").
    pub(crate) fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }
}

/// Gives a counters table created by an earlier version its `updated_at` column, stamped with
/// now: rows written before the upgrade are kept a whole retention period from it. In one
/// IMMEDIATE transaction, so two processes opening the file at once add it once.
fn add_updated_at(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has_it: i64 = transaction.query_row(HAS_UPDATED_AT, [], |row| row.get(0))?;
    if has_it == 0 {
        transaction.execute_batch(
            "ALTER TABLE sidecache_counters ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0",
        )?;
        transaction.execute(
            "UPDATE sidecache_counters SET updated_at = ?1",
            [unix_seconds()],
        )?;
    }
    transaction.commit()
}

impl Sink for SqliteSink {
    fn apply(&self, batch: Arc<Batch>) -> SinkFuture<'_, Applied> {
        let connection = Arc::clone(&self.connection);
        let prune = self
            .applied
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
            .then_some(self.retention);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || apply(&connection, &batch, prune))
                .await
                // The blocking task panicked: whether it committed is not known.
                .map_err(SinkError::outcome_unknown)?
        })
    }

    fn stored<'a>(&'a self, name: &'a str) -> SinkFuture<'a, i64> {
        let connection = Arc::clone(&self.connection);
        let name = name.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
                connection
                    .query_row(SELECT_VALUE, [&name], |row| row.get::<_, i64>(0))
                    .optional()
                    .map(Option::unwrap_or_default)
                    .map_err(SinkError::unavailable)
            })
            .await
            .map_err(SinkError::unavailable)?
        })
    }
}

/// One batch, one transaction; with `prune`, old batch ids and rows go too.
fn apply(
    connection: &Mutex<Connection>,
    batch: &Batch,
    prune: Option<Retention>,
) -> Result<Applied, SinkError> {
    // A panic while the lock was held happened inside a transaction that rusqlite rolled back
    // when unwinding dropped it, so the connection is still consistent.
    let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
    // IMMEDIATE: take the write lock now, so a busy database fails here, before any work.
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(SinkError::unavailable)?;
    let now = unix_seconds();
    let fresh = transaction
        .execute(INSERT_BATCH, params![batch.id().as_str(), now])
        .map_err(SinkError::rejected)?;
    if fresh == 0 {
        // Committed before; dropping the transaction rolls it back.
        return Ok(Applied::AlreadyCommitted);
    }
    {
        let mut upsert = transaction
            .prepare_cached(UPSERT)
            .map_err(SinkError::rejected)?;
        for (name, delta) in batch.entries() {
            upsert
                .execute(params![&**name, delta, i64::MAX, i64::MIN, now])
                .map_err(row_or_statement)?;
        }
    }
    if let Some(retention) = prune {
        transaction
            .execute(PRUNE, [retention_cutoff(now)])
            .map_err(SinkError::rejected)?;
        if let Some((prefix, oldest)) = retention.request_rows_cutoff(now) {
            let pruned = transaction
                .execute(PRUNE_ROWS, params![prefix, oldest])
                .map_err(SinkError::rejected)?;
            if pruned > 0 {
                tracing::info!(pruned, "request-count rows past their retention deleted");
            }
        }
    }
    // A failed COMMIT is rolled back by SQLite in most cases, but an I/O error can leave it
    // undecided until the journal is recovered: treat it as unknown, which is always safe.
    transaction.commit().map_err(SinkError::outcome_unknown)?;
    Ok(Applied::Committed)
}

/// An upsert refused for the row's content — too big for SQLite, or refused by a `CHECK`
/// constraint or a trigger a DBA added — or else for the statement.
fn row_or_statement(error: rusqlite::Error) -> SinkError {
    let refuses_the_row = error.sqlite_error().is_some_and(|cause| {
        cause.code == ErrorCode::TooBig
            || matches!(
                cause.extended_code,
                ffi::SQLITE_CONSTRAINT_CHECK | ffi::SQLITE_CONSTRAINT_TRIGGER
            )
    });
    if refuses_the_row {
        SinkError::row_rejected(error)
    } else {
        SinkError::rejected(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writebehind::sink::BatchId;

    fn batch(id: &str, entries: &[(&str, i64)]) -> Arc<Batch> {
        Arc::new(Batch::new(
            BatchId::new(id),
            entries
                .iter()
                .map(|&(name, delta)| (Box::from(name), delta))
                .collect(),
        ))
    }

    fn temp_db(label: &str) -> (std::path::PathBuf, impl Drop) {
        struct Remove(std::path::PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "sidecache-sqlite-{label}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        (dir.join("counters.db"), Remove(dir))
    }

    #[tokio::test]
    async fn a_batch_is_applied_once_however_often_it_is_sent() {
        let (path, _cleanup) = temp_db("once");
        let sink = SqliteSink::open(&path).expect("open");
        let first = batch("b1", &[("views", 3), ("likes", -1)]);
        assert_eq!(
            sink.apply(Arc::clone(&first)).await.expect("apply"),
            Applied::Committed
        );
        assert_eq!(
            sink.apply(first).await.expect("retry"),
            Applied::AlreadyCommitted
        );
        sink.apply(batch("b2", &[("views", 4)]))
            .await
            .expect("apply");
        assert_eq!(sink.stored("views").await.expect("read"), 7);
        assert_eq!(sink.stored("likes").await.expect("read"), -1);
        assert_eq!(sink.stored("nothing").await.expect("read"), 0);

        // Reopened: the values and the ids are on disk, and the file is in WAL mode.
        drop(sink);
        let sink = SqliteSink::open(&path).expect("reopen");
        assert_eq!(
            sink.apply(batch("b2", &[("views", 4)]))
                .await
                .expect("retry"),
            Applied::AlreadyCommitted
        );
        assert_eq!(sink.stored("views").await.expect("read"), 7);
        let connection = Connection::open(&path).expect("inspect");
        let mode: String = connection
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .expect("journal mode");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn sums_saturate_at_the_bounds_of_i64() {
        let sink = SqliteSink::open(Path::new(":memory:")).expect("open");
        sink.apply(batch(
            "1",
            &[("big", i64::MAX - 1), ("small", i64::MIN + 1)],
        ))
        .await
        .expect("apply");
        sink.apply(batch("2", &[("big", 5), ("small", -5)]))
            .await
            .expect("apply");
        assert_eq!(sink.stored("big").await.expect("read"), i64::MAX);
        assert_eq!(sink.stored("small").await.expect("read"), i64::MIN);
        sink.apply(batch("3", &[("big", i64::MIN), ("small", i64::MAX)]))
            .await
            .expect("apply");
        assert_eq!(sink.stored("big").await.expect("read"), -1);
        assert_eq!(sink.stored("small").await.expect("read"), -1);
    }

    #[tokio::test]
    async fn a_missing_directory_is_unavailable() {
        let error = SqliteSink::open(Path::new("/nonexistent-dir/x/counters.db"))
            .err()
            .expect("cannot open");
        assert_eq!(error.kind(), super::super::sink::SinkErrorKind::Unavailable);
    }
}
