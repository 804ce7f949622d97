//! The PostgreSQL sink: one connection, made when first needed and remade after any failure.
//!
//! A batch is one transaction of three statements: record the batch id, upsert every name at
//! once (`UNNEST` of two arrays), commit. An error answered by the server means the transaction
//! was rolled back; one that refuses a row's content (a character the encoding lacks, a value
//! too long for its column or index, a `CHECK` constraint) is reported as such, so the flusher
//! can split the batch. A connection that breaks or stalls while `COMMIT`
//! is under way leaves the outcome unknown, and the batch is retried under the same id.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::sink::{
    Applied, Batch, PRUNE_EVERY, Retention, SCHEMA, Sink, SinkError, SinkFuture, retention_cutoff,
    unix_seconds,
};

/// How long one batch (or one read) may take once connected, so a stalled server cannot hold
/// the flusher forever; the connection's own connect timeout bounds connecting.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

const INSERT_BATCH: &str = "INSERT INTO sidecache_writebehind_batches (id, committed_at) \
     VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";

/// Adds each delta to its name's value, saturating at `$3` (i64::MAX) and `$4` (i64::MIN), and
/// sets `updated_at` to `$5`; nested `CASE`s fix the evaluation order so that neither bound check
/// can overflow.
const UPSERT: &str = "INSERT INTO sidecache_counters AS c (name, value, updated_at) \
     SELECT name, value, $5::bigint FROM UNNEST($1::text[], $2::bigint[]) AS u (name, value) \
     ON CONFLICT (name) DO UPDATE SET updated_at = EXCLUDED.updated_at, value = CASE \
       WHEN EXCLUDED.value > 0 THEN CASE \
         WHEN c.value > $3::bigint - EXCLUDED.value THEN $3::bigint \
         ELSE c.value + EXCLUDED.value END \
       WHEN EXCLUDED.value < 0 THEN CASE \
         WHEN c.value < $4::bigint - EXCLUDED.value THEN $4::bigint \
         ELSE c.value + EXCLUDED.value END \
       ELSE c.value END";

const PRUNE: &str = "DELETE FROM sidecache_writebehind_batches WHERE committed_at < $1";

/// Deletes the rows named `$1`… not written since `$2`.
const PRUNE_ROWS: &str = "DELETE FROM sidecache_counters \
     WHERE substr(name, 1, length($1::text)) = $1::text AND updated_at < $2";

/// Gives a counters table created by an earlier version its `updated_at` column. The default is
/// evaluated once, by the `ALTER`: rows written before the upgrade carry its time, and are kept
/// a whole retention period from it. The catalog is asked first, as every connection runs this
/// and an `ALTER TABLE` takes the table's strongest lock even when it has nothing to do (it would
/// wait behind, and then hold up, every reader of the table); `IF NOT EXISTS` covers two
/// sidecaches upgrading at once.
const ADD_UPDATED_AT: &str = "DO $$ BEGIN \
     IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'sidecache_counters'::regclass \
       AND attname = 'updated_at' AND NOT attisdropped) THEN \
       ALTER TABLE sidecache_counters ADD COLUMN IF NOT EXISTS \
         updated_at BIGINT NOT NULL DEFAULT CAST(extract(epoch FROM now()) AS BIGINT); \
     END IF; \
     END $$";

/// The errors with which the server refuses a row's content rather than the statement: a name
/// its encoding cannot hold (NUL, a character outside the database's encoding), one too long for
/// the column or for an index entry, a constraint a DBA added. The same rows would be refused
/// again; fewer rows can commit.
const ROW_REFUSALS: [SqlState; 5] = [
    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
    SqlState::UNTRANSLATABLE_CHARACTER,
    SqlState::STRING_DATA_RIGHT_TRUNCATION,
    SqlState::PROGRAM_LIMIT_EXCEEDED,
    SqlState::CHECK_VIOLATION,
];

const SELECT_VALUE: &str = "SELECT value FROM sidecache_counters WHERE name = $1";

/// A PostgreSQL server holding the counters.
pub struct PostgresSink {
    config: tokio_postgres::Config,
    /// The connection, when there is a healthy one. A tokio mutex: it is held across the
    /// statements of a batch.
    client: Mutex<Option<Client>>,
    /// Transactions started, to prune old batch ids in one of every [`PRUNE_EVERY`].
    applied: AtomicU64,
    /// What is pruned besides old batch ids.
    retention: Retention,
}

/// Holds the connection for one operation and throws it away unless the operation finished
/// cleanly — also when the operation's future is dropped half-way, since the connection's
/// state is then unknown.
struct Checkout<'a> {
    slot: MutexGuard<'a, Option<Client>>,
    clean: bool,
}

// === impl PostgresSink ===

impl PostgresSink {
    /// A sink for the server `config` names. Nothing is connected until the first batch or
    /// read, so sidecache starts while the server is down.
    pub fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            client: Mutex::new(None),
            applied: AtomicU64::new(0),
            retention: Retention::default(),
        }
    }

    /// Prunes rows as `retention` says (see [`super::sink`], "Pruning").
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    async fn checkout(&self) -> Checkout<'_> {
        Checkout {
            slot: self.client.lock().await,
            clean: false,
        }
    }

    /// The connected client, connecting (and creating the tables) first if needed.
    async fn connected<'g>(
        &self,
        checkout: &'g mut Checkout<'_>,
    ) -> Result<&'g mut Client, SinkError> {
        if checkout.slot.as_ref().is_some_and(Client::is_closed) {
            *checkout.slot = None;
        }
        if checkout.slot.is_none() {
            let (client, connection) = self
                .config
                .connect(NoTls)
                .await
                .map_err(SinkError::unavailable)?;
            // The connection task is owned by the client: it ends when the client is dropped
            // (or the server goes away).
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "write-behind PostgreSQL connection ended");
                }
            });
            let schema = async {
                client.batch_execute(SCHEMA).await?;
                client.batch_execute(ADD_UPDATED_AT).await
            };
            tokio::time::timeout(STATEMENT_TIMEOUT, schema)
                .await
                .map_err(SinkError::unavailable)?
                .map_err(SinkError::unavailable)?;
            *checkout.slot = Some(client);
        }
        Ok(checkout.slot.as_mut().expect("connected just above"))
    }
}

impl Sink for PostgresSink {
    fn apply(&self, batch: Arc<Batch>) -> SinkFuture<'_, Applied> {
        let prune = self
            .applied
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
            .then_some(self.retention);
        Box::pin(async move {
            let mut checkout = self.checkout().await;
            let client = self.connected(&mut checkout).await?;
            let applied = tokio::time::timeout(STATEMENT_TIMEOUT, apply(client, &batch, prune))
                .await
                // Stalled somewhere in the transaction, perhaps at COMMIT.
                .map_err(SinkError::outcome_unknown)??;
            checkout.clean = true;
            Ok(applied)
        })
    }

    fn stored<'a>(&'a self, name: &'a str) -> SinkFuture<'a, i64> {
        Box::pin(async move {
            let mut checkout = self.checkout().await;
            let client = self.connected(&mut checkout).await?;
            let row =
                tokio::time::timeout(STATEMENT_TIMEOUT, client.query_opt(SELECT_VALUE, &[&name]))
                    .await
                    .map_err(SinkError::unavailable)?
                    .map_err(SinkError::unavailable)?;
            checkout.clean = true;
            Ok(row.map_or(0, |row| row.get(0)))
        })
    }
}

/// One batch, one transaction; with `prune`, old batch ids and rows go too.
async fn apply(
    client: &mut Client,
    batch: &Batch,
    prune: Option<Retention>,
) -> Result<Applied, SinkError> {
    let transaction = client.transaction().await.map_err(before_commit)?;
    let now = unix_seconds();
    let fresh = transaction
        .execute(INSERT_BATCH, &[&batch.id().as_str(), &now])
        .await
        .map_err(before_commit)?;
    if fresh == 0 {
        // Committed before. Whether this rollback succeeds changes nothing.
        let _ = transaction.rollback().await;
        return Ok(Applied::AlreadyCommitted);
    }
    let (names, deltas): (Vec<&str>, Vec<i64>) = batch
        .entries()
        .iter()
        .map(|(name, delta)| (&**name, *delta))
        .unzip();
    transaction
        .execute(UPSERT, &[&names, &deltas, &i64::MAX, &i64::MIN, &now])
        .await
        .map_err(|error| match error.code() {
            Some(code) if ROW_REFUSALS.contains(code) => SinkError::row_rejected(error),
            _ => before_commit(error),
        })?;
    if let Some(retention) = prune {
        transaction
            .execute(PRUNE, &[&retention_cutoff(now)])
            .await
            .map_err(before_commit)?;
        if let Some((prefix, oldest)) = retention.request_rows_cutoff(now) {
            let pruned = transaction
                .execute(PRUNE_ROWS, &[&prefix, &oldest])
                .await
                .map_err(before_commit)?;
            if pruned > 0 {
                tracing::info!(pruned, "request-count rows past their retention deleted");
            }
        }
    }
    transaction.commit().await.map_err(|error| {
        if error.as_db_error().is_some() {
            // The server answered: it rolled the transaction back.
            SinkError::rejected(error)
        } else {
            // The connection broke with COMMIT sent or about to be: it may have committed.
            SinkError::outcome_unknown(error)
        }
    })?;
    Ok(Applied::Committed)
}

/// An error before `COMMIT` was sent: nothing was committed, whoever is to blame.
fn before_commit(error: tokio_postgres::Error) -> SinkError {
    if error.as_db_error().is_some() {
        SinkError::rejected(error)
    } else {
        SinkError::unavailable(error)
    }
}

// === impl Checkout ===

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if !self.clean {
            *self.slot = None;
        }
    }
}
