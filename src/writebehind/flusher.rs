//! The component: counters, the batches they were drained into, the flusher task, the final
//! flush and the recovery file.

use std::collections::VecDeque;
use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::config::WriteBehindConfig;
use super::counters::{Counters, Refused};
use super::metrics::{DropReason, FlushOutcome, IncrementSource, WriteBehindMetrics};
use super::name;
use super::postgres::PostgresSink;
use super::recovery::{self, RecoveryError};
use super::sink::{Batch, BatchIds, Retention, Sink, SinkAddress, SinkError};
use super::sqlite::SqliteSink;
use crate::metrics::{self, Registry};

/// The first wait before retrying a failed flush; doubled after each failure.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between retries.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// How the write-behind component runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBehindSettings {
    /// How often pending increments are flushed.
    pub interval: Duration,
    /// The most counter names held in memory between flushes.
    pub max_pending_keys: usize,
    /// Where unconfirmed batches go when the sink cannot be reached at shutdown; with none, they
    /// are lost (and logged).
    pub recovery_file: Option<PathBuf>,
}

/// In-memory counters written behind to a [`Sink`].
///
/// Shared as an `Arc`: the admin endpoint and the proxy increment, [`run`](Self::run) flushes
/// on the interval, and [`close`](Self::close) does the final flush.
pub struct WriteBehind {
    counters: Counters,
    sink: Arc<dyn Sink>,
    /// The sink's address for logs (never with a password).
    sink_name: String,
    ids: BatchIds,
    /// Batches drained from the counters but not yet confirmed by the sink, oldest first; they
    /// are applied in this order, each under its own id, and leave only once confirmed. A std
    /// mutex: held only to push, peek, pop or read, never across an `.await`.
    retained: Mutex<VecDeque<Arc<Batch>>>,
    /// One flush at a time (the interval task, [`flush`](Self::flush) callers, the final flush
    /// and exact reads). A tokio mutex, as it is held while the sink works.
    flushing: tokio::sync::Mutex<()>,
    /// Woken when the counters reach their cap, so room is made before the next interval.
    wake: Notify,
    /// Set while batches replayed from the recovery file are unconfirmed; the file is removed
    /// once none is left.
    replaying: AtomicBool,
    settings: WriteBehindSettings,
    metrics: WriteBehindMetrics,
}

/// How the final flush ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Everything pending is in the sink.
    Flushed,
    /// The sink could not be reached in time: this many batches (with this many names) were
    /// written to the recovery file, to be replayed at the next start.
    Spilled {
        /// The recovery file.
        path: PathBuf,
        /// Batches written.
        batches: usize,
        /// Names in them.
        keys: usize,
    },
    /// The sink could not be reached and the recovery file could not be written: the pending
    /// increments are lost.
    Lost {
        /// Names lost.
        keys: usize,
    },
}

/// A counter's value: what the sink holds plus what is still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterValue {
    /// Confirmed in the sink.
    pub stored: i64,
    /// Accepted, not yet confirmed by the sink.
    pub pending: i64,
}

/// Why the component could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The sink could not be opened.
    #[error("cannot open the write-behind sink {address}")]
    Sink {
        /// The sink's address (without a password).
        address: String,
        /// The cause.
        source: SinkError,
    },
    /// The recovery file left by an earlier run could not be read.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
}

// === impl WriteBehindSettings ===

impl From<&WriteBehindConfig> for WriteBehindSettings {
    fn from(config: &WriteBehindConfig) -> Self {
        Self {
            interval: config.interval,
            max_pending_keys: config.max_pending_keys,
            recovery_file: config.recovery_file.clone(),
        }
    }
}

// === impl WriteBehind ===

impl WriteBehind {
    /// Opens the configured sink (SQLite at once; PostgreSQL on first use, so sidecache starts
    /// while the server is down) and loads the recovery file, if an earlier run left one.
    ///
    /// # Errors
    ///
    /// The SQLite file cannot be opened, or the recovery file cannot be read.
    pub fn open(
        config: &WriteBehindConfig,
        metrics: WriteBehindMetrics,
    ) -> Result<Self, OpenError> {
        let retention = Retention {
            request_rows: Some(config.request_retention).filter(|kept| !kept.is_zero()),
        };
        let sink: Arc<dyn Sink> = match &config.sink {
            SinkAddress::Sqlite(path) => Arc::new(
                SqliteSink::open(path)
                    .map_err(|source| OpenError::Sink {
                        address: config.sink.to_string(),
                        source,
                    })?
                    .with_retention(retention),
            ),
            SinkAddress::Postgres(postgres) => {
                Arc::new(PostgresSink::new((**postgres).clone()).with_retention(retention))
            }
        };
        Self::new(sink, config.sink.to_string(), config.into(), metrics)
    }

    /// Counters written behind to `sink` (named `sink_name` in logs). Batches found in the
    /// recovery file are applied first, under their own ids.
    ///
    /// # Errors
    ///
    /// The recovery file exists and cannot be read or is not valid.
    pub fn new(
        sink: Arc<dyn Sink>,
        sink_name: String,
        settings: WriteBehindSettings,
        metrics: WriteBehindMetrics,
    ) -> Result<Self, OpenError> {
        let mut replayed = match &settings.recovery_file {
            Some(path) => {
                recovery::check_writable(path)?;
                recovery::read(path)?
            }
            None => Vec::new(),
        };
        let found = !replayed.is_empty();
        // A name no sink can store (an earlier version's, or written by hand) would fail its
        // batch at every replay: it is dropped here, once, and counted.
        let invalid: usize = replayed
            .iter_mut()
            .map(|batch| batch.retain_names(|name| name::check(name).is_ok()))
            .sum();
        replayed.retain(|batch| !batch.is_empty());
        if invalid > 0 {
            metrics.record_dropped(DropReason::InvalidName, invalid);
            tracing::warn!(
                path = settings
                    .recovery_file
                    .as_deref()
                    .map(|path| tracing::field::display(path.display())),
                rows = invalid,
                "the write-behind recovery file holds counter names no sink can store \
                 (empty, over 1024 bytes, or with control characters): those rows are dropped"
            );
        }
        if !replayed.is_empty() {
            tracing::warn!(
                path = settings
                    .recovery_file
                    .as_deref()
                    .map(|path| tracing::field::display(path.display())),
                batches = replayed.len(),
                keys = replayed.iter().map(Batch::len).sum::<usize>(),
                "write-behind recovery file found: its batches are replayed to the sink (each at most once)"
            );
        }
        let writebehind = Self {
            counters: Counters::new(settings.max_pending_keys),
            sink,
            sink_name,
            ids: BatchIds::new(),
            replaying: AtomicBool::new(!replayed.is_empty()),
            retained: Mutex::new(replayed.into_iter().map(Arc::new).collect()),
            flushing: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            settings,
            metrics,
        };
        if found && !writebehind.needs_flush() {
            // Nothing in it could be replayed; read again, it would be dropped and counted again.
            writebehind.replay_done();
        }
        Ok(writebehind)
    }

    /// Adds `delta` to `name` in memory and returns the name's pending sum. Cheap and safe from
    /// any thread: see [`Counters`].
    ///
    /// # Errors
    ///
    /// [`Refused::InvalidName`] for a name a sink could not store (see `super::name`), else
    /// see [`Counters::increment`]. At the cap, the flusher is woken to make room.
    pub fn increment(
        &self,
        source: IncrementSource,
        name: &str,
        delta: i64,
    ) -> Result<i64, Refused> {
        let result = match name::check(name) {
            Ok(()) => self.counters.increment(name, delta),
            Err(_) => Err(Refused::InvalidName),
        };
        self.metrics.record_increment(source, result.map(drop));
        if result == Err(Refused::Full) {
            self.wake.notify_one();
        }
        result
    }

    /// Registers `sidecache_writebehind_pending_keys`, read from this component at scrape time.
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register_pending_keys(self: &Arc<Self>, registry: &Registry) -> metrics::Result<()> {
        let writebehind = Arc::clone(self);
        metrics::state_gauge(
            registry,
            "sidecache_writebehind_pending_keys",
            "Counter names with increments not yet confirmed by the sink (in memory and in an \
             unconfirmed batch).",
            move || writebehind.pending_keys() as f64,
        )
    }

    /// Whether anything is waiting to be written: pending increments or an unconfirmed batch.
    pub fn needs_flush(&self) -> bool {
        !self.counters.is_empty() || !self.lock_retained().is_empty()
    }

    /// Names with increments not yet confirmed: in memory plus in unconfirmed batches.
    pub fn pending_keys(&self) -> usize {
        let retained: usize = self.lock_retained().iter().map(|batch| batch.len()).sum();
        self.counters.len() + retained
    }

    /// The sink's address, for logs and the pending view.
    pub fn sink_name(&self) -> &str {
        &self.sink_name
    }

    /// `name`'s increments not yet confirmed by the sink (in memory and in unconfirmed batches).
    pub fn pending(&self, name: &str) -> i64 {
        // The counters are read under the retained lock, which a drain holds while it moves
        // increments into a batch, so nothing is seen twice or missed.
        let retained = self.lock_retained();
        let in_batches = retained
            .iter()
            .filter_map(|batch| batch.get(name))
            .fold(0_i64, i64::saturating_add);
        self.counters
            .get(name)
            .unwrap_or(0)
            .saturating_add(in_batches)
    }

    /// `name`'s stored and pending values, read while no flush is under way so that no batch is
    /// in both or in neither.
    ///
    /// While a batch's commit outcome is unknown it counts as pending; if it had in fact
    /// committed, it is in `stored` too until the retry confirms it.
    ///
    /// # Errors
    ///
    /// The sink could not be read.
    pub async fn value(&self, name: &str) -> Result<CounterValue, SinkError> {
        let _no_flush = self.flushing.lock().await;
        let stored = self.sink.stored(name).await?;
        Ok(CounterValue {
            stored,
            pending: self.pending(name),
        })
    }

    /// What is pending, as JSON (like Go's expvar): every name's pending sum, the number of
    /// names, the unconfirmed batches, and whether a flush is needed.
    pub fn pending_view(&self) -> Value {
        let retained = self.lock_retained();
        let mut pending = Map::new();
        let mut add = |name: &str, delta: i64| {
            let sum = pending
                .get(name)
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .saturating_add(delta);
            pending.insert(name.to_owned(), Value::from(sum));
        };
        for batch in retained.iter() {
            for (name, delta) in batch.entries() {
                add(name, *delta);
            }
        }
        for (name, delta) in self.counters.snapshot() {
            add(&name, delta);
        }
        let unconfirmed: Vec<_> = retained
            .iter()
            .map(|batch| json!({"id": batch.id().as_str(), "keys": batch.len()}))
            .collect();
        json!({
            "sink": self.sink_name,
            "interval_seconds": self.settings.interval.as_secs_f64(),
            "max_pending_keys": self.counters.max_keys(),
            "pending_keys": self.counters.len(),
            "needs_flush": !self.counters.is_empty() || !retained.is_empty(),
            "unconfirmed_batches": unconfirmed,
            "pending": pending,
        })
    }

    /// Writes everything pending to the sink now: first the unconfirmed batches, oldest first,
    /// then what the counters hold at this moment, as one new batch. Returns how many batches
    /// were confirmed.
    ///
    /// # Errors
    ///
    /// The first batch the sink did not confirm; it and everything after it stay pending (the
    /// batch under its id), and are tried again by the next flush.
    ///
    /// # Concurrency
    ///
    /// Flushes run one at a time; a call made during another flush waits for it and then
    /// flushes what is left.
    pub async fn flush(&self) -> Result<usize, SinkError> {
        let _turn = self.flushing.lock().await;
        let mut drained = false;
        let mut confirmed = 0;
        loop {
            let front = self.lock_retained().front().cloned();
            let batch = match front {
                Some(batch) => batch,
                // The counters are drained once per flush, so a flush ends under constant load.
                None if drained => break,
                None => {
                    drained = true;
                    match self.drain_into_batch() {
                        Some(batch) => batch,
                        None => break,
                    }
                }
            };
            let parts = match self.apply(&batch).await {
                Ok(()) => {
                    confirmed += 1;
                    Vec::new()
                }
                // The same rows would be refused again, fewer can commit: split, not retried.
                Err(error) if error.is_row_rejected() => self.parts_of_refused(&batch, &error),
                Err(error) => return Err(error),
            };
            self.replace_front(&batch, parts);
        }
        Ok(confirmed)
    }

    /// What stands in for a batch the sink refused for a row's content: its two halves, each
    /// tried in turn, so the good rows commit. A single row refused alone is dropped, counted
    /// and logged: kept, it would be refused at every flush, and spilled and refused again after
    /// every restart.
    fn parts_of_refused(&self, batch: &Batch, error: &SinkError) -> Vec<Arc<Batch>> {
        if let Some((first, second)) = batch.split() {
            return vec![Arc::new(first), Arc::new(second)];
        }
        self.metrics
            .record_dropped(DropReason::Rejected, batch.len());
        for (name, delta) in batch.entries() {
            tracing::warn!(
                sink = %self.sink_name,
                batch_id = %batch.id(),
                name = ?shown(name),
                name_bytes = name.len(),
                delta,
                error = %error,
                cause = error.source().map(tracing::field::display),
                "the write-behind sink refused a counter row on its own: the row is dropped"
            );
        }
        Vec::new()
    }

    /// Takes `batch`, confirmed or set aside, off the front of the retained queue and puts
    /// `parts` there in its place; once a replayed recovery file has nothing left unconfirmed,
    /// removes it.
    fn replace_front(&self, batch: &Arc<Batch>, parts: Vec<Arc<Batch>>) {
        let mut retained = self.lock_retained();
        let popped = retained.pop_front();
        debug_assert!(popped.is_some_and(|popped| Arc::ptr_eq(&popped, batch)));
        for part in parts.into_iter().rev() {
            retained.push_front(part);
        }
        if retained.is_empty() && self.replaying.swap(false, Ordering::SeqCst) {
            drop(retained);
            self.replay_done();
        }
    }

    /// Moves the counters' increments into a new batch at the back of the retained queue.
    fn drain_into_batch(&self) -> Option<Arc<Batch>> {
        let mut retained = self.lock_retained();
        let entries = self.counters.drain();
        if entries.is_empty() {
            return None;
        }
        let batch = Arc::new(Batch::new(self.ids.next_id(), entries));
        retained.push_back(Arc::clone(&batch));
        Some(batch)
    }

    /// One attempt to apply one batch: the span, the metrics, the log line.
    async fn apply(&self, batch: &Arc<Batch>) -> Result<(), SinkError> {
        let span = tracing::info_span!(
            "writebehind_flush",
            batch_id = %batch.id(),
            keys = batch.len(),
            outcome = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .sink
            .apply(Arc::clone(batch))
            .instrument(span.clone())
            .await;
        let outcome = FlushOutcome::of(&result);
        self.metrics.record_flush(outcome, started.elapsed());
        span.record("outcome", outcome.as_str());
        match outcome {
            FlushOutcome::Duplicate => tracing::info!(
                parent: &span,
                "write-behind batch had been committed before; skipped"
            ),
            FlushOutcome::Unknown => tracing::warn!(
                parent: &span,
                "write-behind commit outcome unknown; the batch is retried under its id"
            ),
            _ => {}
        }
        result.map(drop)
    }

    fn replay_done(&self) {
        // Batches are replayed only from a recovery file.
        let Some(path) = &self.settings.recovery_file else {
            return;
        };
        match recovery::remove(path) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "write-behind recovery file replayed and removed"
            ),
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "write-behind recovery file replayed but cannot be removed; replaying it again is harmless"
            ),
        }
    }

    /// Flushes every interval until `stop` is cancelled, and at once when the counters reach
    /// their cap. After a failure, retries with exponential backoff (100 ms doubling up to
    /// 10 s) instead of the interval.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut wait = self.settings.interval;
        let mut retry = FIRST_RETRY;
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                // While failing, a full map must not turn the backoff into a busy loop.
                () = self.wake.notified(), if !failing => {}
            }
            let flushed = tokio::select! {
                // An interrupted flush loses nothing: its batch stays retained under its id.
                () = stop.cancelled() => return,
                flushed = self.flush() => flushed,
            };
            match flushed {
                Ok(_) => {
                    failing = false;
                    wait = self.settings.interval;
                    retry = FIRST_RETRY;
                }
                Err(error) => {
                    tracing::warn!(
                        sink = %self.sink_name,
                        error = %error,
                        cause = error.source().map(tracing::field::display),
                        retry_in_ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX),
                        "write-behind flush failed; nothing is lost, the batch is kept and retried"
                    );
                    failing = true;
                    wait = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// The final flush: refuses increments from now on, flushes, retrying with backoff for at
    /// most `bound`, and if the sink still cannot be reached writes every unconfirmed batch to
    /// the recovery file (and says so in the log).
    ///
    /// # Concurrency
    ///
    /// Every increment that was accepted before this call, or that raced with it and was
    /// accepted, is in the final flush; every later one is refused with [`Refused::Closed`].
    pub async fn close(&self, bound: Duration) -> Closed {
        self.counters.close();
        let flushed = tokio::time::timeout(bound, async {
            let mut retry = FIRST_RETRY;
            loop {
                match self.flush().await {
                    Ok(_) => return,
                    Err(error) => {
                        tracing::warn!(
                            sink = %self.sink_name,
                            error = %error,
                            cause = error.source().map(tracing::field::display),
                            "final write-behind flush failed; retrying"
                        );
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
            }
        })
        .await;
        match flushed {
            Ok(()) => {
                tracing::info!(sink = %self.sink_name, "write-behind counters flushed");
                Closed::Flushed
            }
            Err(_) => self.spill().await,
        }
    }

    /// Writes every unconfirmed batch, and what the counters hold, to the recovery file.
    async fn spill(&self) -> Closed {
        // The timed-out flush dropped its turn; a sink call it left running (SQLite's blocking
        // task) may still commit its batch, which the batch id makes harmless at replay.
        let _turn = self.flushing.lock().await;
        self.drain_into_batch();
        let batches: Vec<Arc<Batch>> = self.lock_retained().iter().cloned().collect();
        let keys = batches.iter().map(|batch| batch.len()).sum();
        if batches.is_empty() {
            return Closed::Flushed;
        }
        let Some(path) = &self.settings.recovery_file else {
            tracing::error!(
                sink = %self.sink_name,
                batches = batches.len(),
                keys,
                "the write-behind sink could not be reached at shutdown and no \
                 --writebehind-recovery-file is set: pending increments are LOST"
            );
            return Closed::Lost { keys };
        };
        match recovery::write(path, &batches) {
            Ok(()) => {
                tracing::error!(
                    sink = %self.sink_name,
                    path = %path.display(),
                    batches = batches.len(),
                    keys,
                    "the write-behind sink could not be reached at shutdown: pending increments \
                     were written to the recovery file and will be replayed at the next start"
                );
                Closed::Spilled {
                    path: path.clone(),
                    batches: batches.len(),
                    keys,
                }
            }
            Err(error) => {
                tracing::error!(
                    sink = %self.sink_name,
                    path = %path.display(),
                    %error,
                    cause = error.source().map(tracing::field::display),
                    keys,
                    "the write-behind sink could not be reached at shutdown and the recovery \
                     file could not be written: pending increments are LOST"
                );
                Closed::Lost { keys }
            }
        }
    }

    /// The recovery file this component writes and replays, if it has one.
    pub fn recovery_file(&self) -> Option<&Path> {
        self.settings.recovery_file.as_deref()
    }

    fn lock_retained(&self) -> MutexGuard<'_, VecDeque<Arc<Batch>>> {
        // Nothing panics while holding this lock; if something did, the queue is still whole.
        self.retained.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// At most the first 128 bytes of `name`, for a log line: names can be long.
fn shown(name: &str) -> &str {
    let mut end = name.len().min(128);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests;
