//! Tests of the flusher against a scriptable in-memory sink (paused time) and real SQLite.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicUsize;

use tokio::sync::watch;

use super::*;
use crate::metrics::{self, Registry};
use crate::testing::CapturedLog;
use crate::writebehind::sink::{Applied, BatchId, SinkFuture};

// === a scriptable sink ===

/// What the next call to `apply` does instead of simply committing.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Fails before anything is written.
    Unavailable,
    /// Commits, then reports the outcome as unknown (the reply to COMMIT was lost).
    UnknownAfterCommit,
    /// Reports the outcome as unknown without committing (the connection broke before COMMIT
    /// reached the server).
    UnknownBeforeCommit,
}

#[derive(Default)]
struct FakeState {
    values: HashMap<String, i64>,
    committed: HashSet<BatchId>,
    faults: VecDeque<Fault>,
    /// Every batch id `apply` was called with, in order.
    attempts: Vec<BatchId>,
    /// A batch holding a name that starts with this is refused whole, as a table constraint
    /// refuses a row.
    refused_prefix: Option<&'static str>,
    /// Batches refused for a row.
    row_refusals: usize,
}

struct FakeSink {
    state: Mutex<FakeState>,
    /// Fails every call while set.
    down: AtomicBool,
    /// Batches committed so far (a signal tests wait on).
    commits: watch::Sender<usize>,
}

impl FakeSink {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            down: AtomicBool::new(false),
            commits: watch::channel(0).0,
        })
    }

    fn fail_next(&self, fault: Fault) {
        self.state.lock().expect("state").faults.push_back(fault);
    }

    fn value(&self, name: &str) -> i64 {
        self.state
            .lock()
            .expect("state")
            .values
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    fn attempts(&self) -> Vec<BatchId> {
        self.state.lock().expect("state").attempts.clone()
    }

    async fn committed(&self, n: usize) {
        let mut commits = self.commits.subscribe();
        commits
            .wait_for(|&done| done >= n)
            .await
            .expect("sink alive");
    }
}

impl Sink for FakeSink {
    fn apply(&self, batch: Arc<Batch>) -> SinkFuture<'_, Applied> {
        Box::pin(async move {
            let mut state = self.state.lock().expect("state");
            state.attempts.push(batch.id().clone());
            if self.down.load(Ordering::SeqCst) {
                return Err(SinkError::unavailable("down"));
            }
            if let Some(prefix) = state.refused_prefix
                && batch
                    .entries()
                    .iter()
                    .any(|(name, _)| name.starts_with(prefix))
            {
                state.row_refusals += 1;
                return Err(SinkError::row_rejected("violates a check constraint"));
            }
            let fault = state.faults.pop_front();
            if let Some(Fault::Unavailable) = fault {
                return Err(SinkError::unavailable("refused"));
            }
            if let Some(Fault::UnknownBeforeCommit) = fault {
                return Err(SinkError::outcome_unknown("reset before commit"));
            }
            let applied = if state.committed.insert(batch.id().clone()) {
                for (name, delta) in batch.entries() {
                    *state.values.entry(name.to_string()).or_default() += delta;
                }
                self.commits.send_modify(|n| *n += 1);
                Applied::Committed
            } else {
                Applied::AlreadyCommitted
            };
            if let Some(Fault::UnknownAfterCommit) = fault {
                return Err(SinkError::outcome_unknown("reset after commit"));
            }
            Ok(applied)
        })
    }

    fn stored<'a>(&'a self, name: &'a str) -> SinkFuture<'a, i64> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(SinkError::unavailable("down"));
            }
            Ok(self.value(name))
        })
    }
}

// === helpers ===

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sidecache-flusher-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn settings(dir: &TempDir, interval: Duration, max_pending_keys: usize) -> WriteBehindSettings {
    WriteBehindSettings {
        interval,
        max_pending_keys,
        recovery_file: Some(dir.0.join("recovery.json")),
    }
}

fn component(sink: Arc<dyn Sink>, settings: WriteBehindSettings) -> (Arc<WriteBehind>, Registry) {
    let registry = Registry::new();
    let metrics = WriteBehindMetrics::register(&registry).expect("metrics");
    let writebehind =
        Arc::new(WriteBehind::new(sink, "fake".to_owned(), settings, metrics).expect("component"));
    writebehind.register_pending_keys(&registry).expect("gauge");
    (writebehind, registry)
}

fn admin(writebehind: &WriteBehind, name: &str, delta: i64) {
    writebehind
        .increment(IncrementSource::Admin, name, delta)
        .expect("accepted");
}

/// The value of one exposed series, e.g. `sidecache_writebehind_flushes_total{outcome="failed"}`.
fn sample(registry: &Registry, series: &str) -> f64 {
    metrics::encode(registry)
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|value| value.parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("{series} not exposed"))
}

// === tests ===

#[tokio::test]
async fn a_flush_writes_everything_pending_as_one_batch() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let (writebehind, registry) =
        component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    admin(&writebehind, "views", 3);
    admin(&writebehind, "views", 4);
    admin(&writebehind, "likes", -2);
    assert!(writebehind.needs_flush());
    assert_eq!(writebehind.pending("views"), 7);
    assert_eq!(sample(&registry, "sidecache_writebehind_pending_keys"), 2.0);

    assert_eq!(writebehind.flush().await.expect("flush"), 1);
    assert_eq!((sink.value("views"), sink.value("likes")), (7, -2));
    assert!(!writebehind.needs_flush());
    assert_eq!(
        writebehind.value("views").await.expect("value"),
        CounterValue {
            stored: 7,
            pending: 0
        }
    );
    assert_eq!(sink.attempts().len(), 1);
    assert_eq!(writebehind.flush().await.expect("nothing to do"), 0);
    assert_eq!(
        sink.attempts().len(),
        1,
        "an empty flush does not call the sink"
    );
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"committed\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_increments_total{outcome=\"accepted\",source=\"admin\"}"
        ),
        3.0
    );
    assert_eq!(sample(&registry, "sidecache_writebehind_pending_keys"), 0.0);
}

#[tokio::test]
async fn a_failed_batch_is_kept_whole_and_retried_under_the_same_id() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let (writebehind, registry) =
        component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    admin(&writebehind, "a", 1);
    sink.fail_next(Fault::Unavailable);
    let error = writebehind.flush().await.expect_err("refused");
    assert!(!error.is_outcome_unknown());
    // Still pending, and counted in the pending view and gauge.
    assert_eq!(writebehind.pending("a"), 1);
    admin(&writebehind, "a", 10);
    admin(&writebehind, "b", 5);
    assert_eq!(writebehind.pending("a"), 11);
    assert_eq!(
        writebehind.pending_keys(),
        3,
        "a in the batch, a and b in memory"
    );
    let view = writebehind.pending_view();
    assert_eq!(view["pending"]["a"], 11);
    assert_eq!(
        view["unconfirmed_batches"].as_array().map(Vec::len),
        Some(1)
    );

    assert_eq!(writebehind.flush().await.expect("retry"), 2);
    assert_eq!((sink.value("a"), sink.value("b")), (11, 5));
    let attempts = sink.attempts();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0], attempts[1], "the retry keeps the batch id");
    assert_ne!(attempts[1], attempts[2], "new increments go in a new batch");
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"failed\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_batch_whose_commit_outcome_was_unknown_is_not_counted_twice() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let (writebehind, registry) =
        component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    admin(&writebehind, "views", 5);
    sink.fail_next(Fault::UnknownAfterCommit);
    assert!(
        writebehind
            .flush()
            .await
            .expect_err("unknown")
            .is_outcome_unknown()
    );
    assert_eq!(sink.value("views"), 5, "it did commit");
    admin(&writebehind, "views", 1);
    writebehind.flush().await.expect("retry");
    assert_eq!(sink.value("views"), 6);
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"unknown\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"duplicate\"}"
        ),
        1.0
    );

    // The other way an outcome is unknown: it did not commit. The retry applies it, once.
    admin(&writebehind, "views", 2);
    sink.fail_next(Fault::UnknownBeforeCommit);
    writebehind.flush().await.expect_err("unknown");
    assert_eq!(sink.value("views"), 6);
    writebehind.flush().await.expect("retry");
    assert_eq!(sink.value("views"), 8);
}

/// A batch the sink refuses for one row's content is split until the good rows commit and each
/// refused row stands alone; those are dropped and counted, and nothing is retried for ever.
#[tokio::test]
async fn a_batch_refused_for_a_row_is_split_so_the_good_rows_commit_and_the_bad_are_dropped() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    sink.state.lock().expect("state").refused_prefix = Some("bad");
    let (writebehind, registry) =
        component(sink.clone(), settings(&dir, Duration::from_secs(1), 100));
    let good: Vec<String> = (0..13).map(|i| format!("good-{i:02}")).collect();
    for (i, name) in good.iter().enumerate() {
        admin(&writebehind, name, i as i64 + 1);
    }
    admin(&writebehind, "bad-1", 5);
    admin(&writebehind, "bad-2", -5);

    let confirmed = writebehind.flush().await.expect("the good rows commit");
    assert!(confirmed >= 2, "{confirmed} batches");
    for (i, name) in good.iter().enumerate() {
        assert_eq!(sink.value(name), i as i64 + 1, "{name}");
    }
    assert_eq!((sink.value("bad-1"), sink.value("bad-2")), (0, 0));
    assert!(!writebehind.needs_flush(), "nothing left to retry");
    assert_eq!(writebehind.pending("bad-1"), 0);
    let refusals = sink.state.lock().expect("state").row_refusals;
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_rows_dropped_total{reason=\"rejected\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"rejected\"}"
        ),
        refusals as f64
    );
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"committed\"}"
        ),
        confirmed as f64
    );
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"failed\"}"
        ),
        0.0
    );
    // Later increments of the good names flush as usual.
    admin(&writebehind, "good-00", 1);
    assert_eq!(writebehind.flush().await.expect("flush"), 1);
    assert_eq!(sink.value("good-00"), 2);
}

#[tokio::test(start_paused = true)]
async fn the_flusher_runs_every_interval_and_backs_off_while_the_sink_is_down() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let interval = Duration::from_secs(1);
    let (writebehind, registry) = component(sink.clone(), settings(&dir, interval, 10));
    let stop = CancellationToken::new();
    let flusher = tokio::spawn(Arc::clone(&writebehind).run(stop.clone()));
    let started = tokio::time::Instant::now();

    admin(&writebehind, "a", 1);
    sink.committed(1).await;
    assert_eq!(started.elapsed(), interval);
    assert_eq!(sink.value("a"), 1);

    // Down: every attempt fails; retries come at 100, 200, 400 ms ... after the failure.
    sink.down.store(true, Ordering::SeqCst);
    admin(&writebehind, "a", 2);
    tokio::time::sleep(interval * 3).await;
    let failed = sample(
        &registry,
        "sidecache_writebehind_flushes_total{outcome=\"failed\"}",
    );
    // At 2 s (first failure), then +0.1, +0.2, +0.4, +0.8 s: 5 attempts by 4 s.
    assert_eq!(failed, 5.0);
    assert_eq!(writebehind.pending("a"), 2);

    sink.down.store(false, Ordering::SeqCst);
    sink.committed(2).await;
    assert_eq!(sink.value("a"), 3);
    assert!(!writebehind.needs_flush());
    stop.cancel();
    flusher.await.expect("flusher");
}

#[tokio::test(start_paused = true)]
async fn reaching_the_cap_wakes_the_flusher_before_the_interval() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let interval = Duration::from_secs(3600);
    let (writebehind, registry) = component(sink.clone(), settings(&dir, interval, 2));
    let stop = CancellationToken::new();
    let flusher = tokio::spawn(Arc::clone(&writebehind).run(stop.clone()));
    let started = tokio::time::Instant::now();
    admin(&writebehind, "a", 1);
    admin(&writebehind, "b", 1);
    assert_eq!(
        writebehind.increment(IncrementSource::Request, "c", 1),
        Err(Refused::Full)
    );
    sink.committed(1).await;
    assert!(started.elapsed() < interval, "woken, not on the interval");
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_increments_total{outcome=\"full\",source=\"request\"}"
        ),
        1.0
    );
    // Room again.
    writebehind
        .increment(IncrementSource::Request, "c", 1)
        .expect("room after the flush");
    stop.cancel();
    flusher.await.expect("flusher");
}

#[tokio::test]
async fn close_flushes_everything_and_refuses_later_increments() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let (writebehind, registry) =
        component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    admin(&writebehind, "a", 4);
    assert_eq!(
        writebehind.close(Duration::from_secs(5)).await,
        Closed::Flushed
    );
    assert_eq!(sink.value("a"), 4);
    assert_eq!(
        writebehind.increment(IncrementSource::Admin, "a", 1),
        Err(Refused::Closed)
    );
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_increments_total{outcome=\"closed\",source=\"admin\"}"
        ),
        1.0
    );
    assert!(
        !writebehind
            .recovery_file()
            .expect("the tests' settings name one")
            .exists()
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_sink_at_shutdown_spills_to_the_recovery_file_replayed_at_the_next_start() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let (writebehind, _) = component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    // A first batch whose commit succeeded but whose answer was lost, then the sink goes down.
    admin(&writebehind, "views", 5);
    sink.fail_next(Fault::UnknownAfterCommit);
    writebehind.flush().await.expect_err("unknown");
    sink.down.store(true, Ordering::SeqCst);
    admin(&writebehind, "views", 2);
    admin(&writebehind, "likes", 1);

    let closed = writebehind.close(Duration::from_secs(2)).await;
    let path = dir.0.join("recovery.json");
    assert_eq!(
        closed,
        Closed::Spilled {
            path: path.clone(),
            batches: 2,
            keys: 3
        }
    );
    assert!(path.exists());
    let attempts_while_closing = sink.attempts().len();
    assert!(attempts_while_closing > 3, "retried within the bound");

    // The next start: the sink is back; the replay skips the batch that had committed.
    sink.down.store(false, Ordering::SeqCst);
    let (restarted, registry) = component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    assert!(restarted.needs_flush());
    assert_eq!(restarted.pending("views"), 7);
    assert_eq!(restarted.flush().await.expect("replay"), 2);
    assert_eq!((sink.value("views"), sink.value("likes")), (7, 1));
    assert!(!path.exists(), "the file is removed once replayed");
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"duplicate\"}"
        ),
        1.0
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_recovery_file_an_unreachable_sink_at_shutdown_loses_the_pending_keys() {
    let dir = TempDir::new();
    let sink = FakeSink::new();
    let settings = WriteBehindSettings {
        recovery_file: None,
        ..settings(&dir, Duration::from_secs(1), 10)
    };
    let (writebehind, _) = component(sink.clone(), settings);
    sink.down.store(true, Ordering::SeqCst);
    admin(&writebehind, "views", 2);
    admin(&writebehind, "likes", 1);

    let closed = writebehind.close(Duration::from_secs(2)).await;
    assert_eq!(closed, Closed::Lost { keys: 2 });
    let written: Vec<_> = std::fs::read_dir(&dir.0).expect("read dir").collect();
    assert!(written.is_empty(), "{written:?}");
}

/// A recovery file written by an earlier version (or by hand) may hold names no sink can
/// store: they are dropped and counted at the start, so they cannot fail the replay, and the
/// other rows are replayed under their batch ids.
#[tokio::test]
async fn names_a_sink_cannot_store_are_dropped_from_the_recovery_file_and_counted() {
    let dir = TempDir::new();
    let path = dir.0.join("recovery.json");
    let long = "x".repeat(3000);
    let batches = [
        Batch::new(
            BatchId::new("old-1"),
            vec![
                ("views".into(), 3),
                ("a\0b".into(), 1),
                (long.as_str().into(), 1),
                ("".into(), 2),
            ],
        ),
        Batch::new(BatchId::new("old-2"), vec![("line\nbreak".into(), 1)]),
        Batch::new(BatchId::new("old-3"), vec![("views".into(), 4)]),
    ];
    recovery::write(&path, &batches.map(Arc::new)).expect("write");

    let sink = FakeSink::new();
    let (writebehind, registry) =
        component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_rows_dropped_total{reason=\"invalid_name\"}"
        ),
        4.0
    );
    assert_eq!(writebehind.pending("views"), 7);
    assert_eq!(writebehind.pending_keys(), 2);
    assert_eq!(writebehind.flush().await.expect("replay"), 2);
    assert_eq!(sink.value("views"), 7);
    let attempts: Vec<_> = sink.attempts().iter().map(|id| id.to_string()).collect();
    assert_eq!(
        attempts,
        ["old-1", "old-3"],
        "under their own ids; the empty one is gone"
    );
    assert!(!path.exists(), "removed once replayed");
}

#[tokio::test]
async fn a_recovery_file_with_only_names_a_sink_cannot_store_is_removed_at_the_start() {
    let dir = TempDir::new();
    let path = dir.0.join("recovery.json");
    let batch = Batch::new(BatchId::new("old-1"), vec![("a\0b".into(), 1)]);
    recovery::write(&path, &[Arc::new(batch)]).expect("write");
    let (writebehind, registry) =
        component(FakeSink::new(), settings(&dir, Duration::from_secs(1), 10));
    assert!(!writebehind.needs_flush());
    assert!(!path.exists(), "nothing left to replay");
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_rows_dropped_total{reason=\"invalid_name\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_malformed_recovery_file_stops_the_start() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("recovery.json"), "garbage").expect("write");
    let registry = Registry::new();
    let metrics = WriteBehindMetrics::register(&registry).expect("metrics");
    let error = WriteBehind::new(
        FakeSink::new(),
        "fake".into(),
        settings(&dir, Duration::from_secs(1), 10),
        metrics,
    )
    .err()
    .expect("refused");
    assert!(matches!(
        error,
        OpenError::Recovery(RecoveryError::Malformed { .. })
    ));
}

/// A real SQLite sink whose first commit "loses its answer": it commits, then reports the
/// outcome as unknown, like a connection that drops right after COMMIT.
struct LostAnswer {
    inner: crate::writebehind::sqlite::SqliteSink,
    lose_next: AtomicBool,
}

impl Sink for LostAnswer {
    fn apply(&self, batch: Arc<Batch>) -> SinkFuture<'_, Applied> {
        Box::pin(async move {
            let applied = self.inner.apply(batch).await?;
            if self.lose_next.swap(false, Ordering::SeqCst) {
                return Err(SinkError::outcome_unknown("the answer to COMMIT was lost"));
            }
            Ok(applied)
        })
    }

    fn stored<'a>(&'a self, name: &'a str) -> SinkFuture<'a, i64> {
        self.inner.stored(name)
    }
}

#[tokio::test]
async fn sqlite_a_commit_whose_answer_is_lost_is_not_applied_twice() {
    let dir = TempDir::new();
    let inner =
        crate::writebehind::sqlite::SqliteSink::open(&dir.0.join("counters.db")).expect("open");
    let sink = Arc::new(LostAnswer {
        inner,
        lose_next: AtomicBool::new(true),
    });
    let (writebehind, registry) =
        component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    admin(&writebehind, "views", 5);
    admin(&writebehind, "likes", 2);
    assert!(
        writebehind
            .flush()
            .await
            .expect_err("lost")
            .is_outcome_unknown()
    );
    admin(&writebehind, "views", 1);
    assert_eq!(writebehind.flush().await.expect("retry"), 2);
    assert_eq!(sink.stored("views").await.expect("read"), 6);
    assert_eq!(sink.stored("likes").await.expect("read"), 2);
    assert_eq!(
        sample(
            &registry,
            "sidecache_writebehind_flushes_total{outcome=\"duplicate\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn every_attempt_to_apply_a_batch_has_a_span_with_its_outcome() {
    let captured = CapturedLog::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    // tracing caches each callsite's interest process-wide. While only one dispatcher is
    // registered, a callsite first reached on another thread (another test flushing) is judged
    // by that thread's default alone — "never" — for good. A second registered dispatcher makes
    // tracing ask the current thread's dispatcher on every call instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = TempDir::new();
    let sink = FakeSink::new();
    let (writebehind, _) = component(sink.clone(), settings(&dir, Duration::from_secs(1), 10));
    admin(&writebehind, "a", 1);
    admin(&writebehind, "b", 1);
    sink.fail_next(Fault::Unavailable);
    writebehind.flush().await.expect_err("refused");
    writebehind.flush().await.expect("retry");

    let text = captured.text();
    let closed: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("writebehind_flush{") && line.contains("close"))
        .collect();
    assert_eq!(closed.len(), 2, "{text}");
    assert!(
        closed[0].contains("keys=2") && closed[0].contains("outcome=\"failed\""),
        "{text}"
    );
    assert!(closed[1].contains("outcome=\"committed\""), "{text}");
}
