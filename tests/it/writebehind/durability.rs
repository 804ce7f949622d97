//! SIGTERM in the middle of increments, PostgreSQL going away, and a connection cut at COMMIT.

use super::*;

// === SIGTERM in the middle of increments ===

/// Starts the binary with `sink`, runs 8 × 2500 increments, sends SIGTERM once 10 000 are
/// acknowledged, and returns what was acknowledged after the process exited 0.
async fn sigterm_in_the_middle(sink: &str) -> Load {
    let binary = Binary::start(&["--writebehind-sink", sink, "--writebehind-interval", "50ms"]);
    let (progress, mut acked) = watch::channel(0);
    let load = tokio::spawn(increment_from_8_tasks(binary.admin, 2500, progress));
    reached(&mut acked, 10_000).await;
    let (code, log) = binary.terminate().await;
    assert_eq!(code, 0, "{log:#?}");
    let load = load.await.expect("load");
    assert!(load.acked_count >= 10_000);
    assert!(
        load.acked_count < load.attempted,
        "SIGTERM came after every increment: {} of {}",
        load.acked_count,
        load.attempted
    );
    assert!(
        log.iter()
            .any(|line| line.contains("write-behind counters flushed")),
        "{log:#?}"
    );
    load
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigterm_in_the_middle_keeps_exactly_the_acknowledged_increments() {
    let dir = TempDir::new("wb-sigterm-sqlite");
    let db = dir.0.join("counters.db");
    let load = sigterm_in_the_middle(&format!("sqlite:{}", db.display())).await;
    assert_eq!(nonzero(&sqlite_counters(&db)), nonzero(&load.acked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigterm_in_the_middle_keeps_exactly_the_acknowledged_increments() {
    let Some(pg) = PgServer::start("sigterm") else {
        return;
    };
    let load = sigterm_in_the_middle(&pg.url()).await;
    assert_eq!(nonzero(&pg.counters().await), nonzero(&load.acked));
}

// === PostgreSQL going away ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_during_increments_then_started_again_ends_with_exact_totals() {
    let Some(pg) = PgServer::start("outage") else {
        return;
    };
    let pg = Arc::new(pg);
    let origin = any_origin().await;
    let sidecache = Sidecache::start(
        &origin.url(),
        &[
            "--writebehind-sink",
            &pg.url(),
            "--writebehind-interval",
            "20ms",
        ],
    )
    .await;
    let (progress, mut acked) = watch::channel(0);
    let load = tokio::spawn(increment_from_8_tasks(sidecache.admin_addr, 1500, progress));

    reached(&mut acked, 2000).await;
    let stopping = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .expect("stop PostgreSQL");
    // Increments go on, acknowledged from memory, while every flush fails.
    let stopped_at = *acked.borrow();
    reached(&mut acked, stopped_at + 4000).await;
    let starting = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .expect("start PostgreSQL again");

    let load = load.await.expect("load");
    assert_eq!(load.acked_count, load.attempted, "nothing refused");
    flush_within(&sidecache, Duration::from_secs(30)).await;
    assert_eq!(nonzero(&pg.counters().await), nonzero(&load.acked));
    let scrape = sidecache.metrics().await;
    let failed = scrape.value("sidecache_writebehind_flushes_total{outcome=\"failed\"}")
        + scrape.value("sidecache_writebehind_flushes_total{outcome=\"unknown\"}");
    assert!(failed >= 1.0, "flushes failed while the server was down");
    sidecache.stop().await;
    assert_eq!(nonzero(&pg.counters().await), nonzero(&load.acked));
}

/// Flushes, retrying while the restarted server is not yet reachable (there is no signal for
/// that, so this polls the external database, with a deadline).
async fn flush_within(sidecache: &Sidecache, deadline: Duration) {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        match sidecache.writebehind.flush().await {
            Ok(_) if !sidecache.writebehind.needs_flush() => return,
            Ok(_) => {}
            Err(error) => assert!(
                tokio::time::Instant::now() < until,
                "still failing after {deadline:?}: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_at_shutdown_spills_to_the_recovery_file_replayed_at_the_next_start() {
    let Some(pg) = PgServer::start("spill") else {
        return;
    };
    let dir = TempDir::new("wb-spill");
    let recovery = dir.0.join("recovery.json");
    let recovery_arg = recovery.display().to_string();
    let url = pg.url();
    let args = [
        "--writebehind-sink",
        url.as_str(),
        "--writebehind-interval",
        "50ms",
        "--writebehind-recovery-file",
        recovery_arg.as_str(),
        "--shutdown-grace",
        "1s",
    ];
    let binary = Binary::start(&args);
    let client = TestClient::new();
    let mut acked = Totals::new();
    let mut increment = async |name: &str, delta: i64| {
        let got = post(&client, &counter_url(binary.admin, name, Some(delta)), None).await;
        assert_eq!(got.status, 200, "{}", got.text());
        *acked.entry(name.to_owned()).or_default() += delta;
    };
    for i in 0..100 {
        increment(NAMES[i % NAMES.len()], 1 + i as i64 % 3).await;
    }
    pg.stop();
    for i in 0..100 {
        increment(NAMES[i % 3], 2).await;
    }
    let (code, log) = binary.terminate().await;
    assert_eq!(code, 0, "{log:#?}");
    assert!(recovery.exists(), "{log:#?}");
    assert!(
        log.iter()
            .any(|line| line.contains("written to the recovery file") && line.contains("ERROR")),
        "the log says where the increments went: {log:#?}"
    );

    // The next start, with the server back: the file is replayed, each batch at most once.
    pg.start_again();
    let origin = any_origin().await;
    let sidecache = Sidecache::start(&origin.url(), &args).await;
    assert!(sidecache.writebehind.needs_flush());
    flush_within(&sidecache, Duration::from_secs(30)).await;
    assert!(!recovery.exists(), "removed once replayed");
    assert_eq!(nonzero(&pg.counters().await), nonzero(&acked));
    sidecache.stop().await;
}

// === a connection cut at COMMIT ===

#[tokio::test]
async fn postgres_a_commit_cut_before_or_after_the_server_committed_counts_once() {
    let Some(pg) = PgServer::start("cut") else {
        return;
    };
    let cutter = CommitCutter::start(pg.addr()).await;
    let dir = TempDir::new("wb-cut");
    let config: tokio_postgres::Config = pg.url_via(cutter.addr).parse().expect("URL");
    let registry = Registry::new();
    let writebehind = WriteBehind::new(
        Arc::new(PostgresSink::new(config)),
        "postgres via the cutter".into(),
        WriteBehindSettings {
            interval: Duration::from_secs(3600),
            max_pending_keys: 100,
            recovery_file: Some(dir.0.join("recovery.json")),
        },
        WriteBehindMetrics::register(&registry).expect("metrics"),
    )
    .expect("component");
    let add = |name: &str, delta: i64| {
        writebehind
            .increment(IncrementSource::Admin, name, delta)
            .expect("accepted");
    };

    // After: the server committed, the client never heard. The retry is skipped by id.
    add("views", 5);
    add("likes", 2);
    cutter.cut_next_commit(Cut::AfterCommit);
    let error = writebehind.flush().await.expect_err("cut");
    assert!(error.is_outcome_unknown(), "{error}");
    assert_eq!(cutter.cuts(), 1);
    let stored = pg.counters().await;
    assert_eq!((stored["views"], stored["likes"]), (5, 2), "it did commit");
    add("views", 1);
    assert_eq!(writebehind.flush().await.expect("retry"), 2);
    let stored = pg.counters().await;
    assert_eq!((stored["views"], stored["likes"]), (6, 2));

    // Before: COMMIT never reached the server, which rolled back. The retry applies it once.
    add("views", 10);
    cutter.cut_next_commit(Cut::BeforeCommit);
    assert!(
        writebehind
            .flush()
            .await
            .expect_err("cut")
            .is_outcome_unknown()
    );
    assert_eq!(cutter.cuts(), 2);
    assert_eq!(pg.counters().await["views"], 6, "rolled back");
    assert_eq!(writebehind.flush().await.expect("retry"), 1);
    assert_eq!(pg.counters().await["views"], 16);

    let text = sidecache::metrics::encode(&registry);
    for (series, value) in [
        (
            "sidecache_writebehind_flushes_total{outcome=\"unknown\"}",
            2,
        ),
        (
            "sidecache_writebehind_flushes_total{outcome=\"duplicate\"}",
            1,
        ),
        (
            "sidecache_writebehind_flushes_total{outcome=\"committed\"}",
            2,
        ),
    ] {
        assert!(
            text.contains(&format!("{series} {value}\n")),
            "{series}:\n{text}"
        );
    }
}
