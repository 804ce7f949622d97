//! What write-behind counts: increments by source and outcome, flushes by outcome, flush
//! duration.
//!
//! Recorded in two places only: [`super::WriteBehind::increment`] records the outcome the
//! counters returned, and the flusher records each batch's result. The pending-keys gauge is read
//! from the component at scrape time, so the component registers it
//! ([`super::WriteBehind::register_pending_keys`]) and this module knows nothing of it.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};

use super::counters::Refused;
use super::sink::{Applied, SinkError};
use crate::metrics::{self, LATENCY_BUCKETS, Registry, Result};

/// Who asked for an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrementSource {
    /// `POST /v1/counters/{name}` on the admin port.
    Admin,
    /// The per-cache-key request count (`--writebehind-count-requests`).
    Request,
}

/// How one attempt to apply a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Committed.
    Committed,
    /// Its id had been committed before; skipped.
    Duplicate,
    /// Failed and rolled back (or never started); the batch is retried.
    Failed,
    /// The commit's outcome is unknown; the batch is retried under the same id.
    Unknown,
    /// The sink refused a row's content and rolled back; the batch is split (a single row is
    /// dropped).
    Rejected,
}

/// Why rows (a name and its delta) were dropped without reaching the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The sink refused the row's content even alone.
    Rejected,
    /// A name read back from the recovery file that no sink can store (see
    /// [`super::name`]): written by an earlier version, or by hand.
    InvalidName,
}

/// The write-behind metric set, with every label value resolved up front.
#[derive(Clone)]
pub struct WriteBehindMetrics {
    /// `sidecache_writebehind_increments_total{source, outcome}`, indexed by
    /// [`IncrementSource`] × (accepted, then [`Refused::ALL`]).
    increments: Vec<IntCounter>,
    /// `sidecache_writebehind_flushes_total{outcome}`, indexed by [`FlushOutcome`].
    flushes: Vec<IntCounter>,
    /// `sidecache_writebehind_flush_duration_seconds`.
    flush_duration: Histogram,
    /// `sidecache_writebehind_rows_dropped_total{reason}`, indexed by [`DropReason`].
    dropped: Vec<IntCounter>,
}

// === impl IncrementSource ===

impl IncrementSource {
    /// Every variant, in metric-label order.
    pub const ALL: [IncrementSource; 2] = [IncrementSource::Admin, IncrementSource::Request];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            IncrementSource::Admin => "admin",
            IncrementSource::Request => "request",
        }
    }
}

// === impl FlushOutcome ===

impl FlushOutcome {
    /// Every variant, in metric-label order.
    pub const ALL: [FlushOutcome; 5] = [
        FlushOutcome::Committed,
        FlushOutcome::Duplicate,
        FlushOutcome::Failed,
        FlushOutcome::Unknown,
        FlushOutcome::Rejected,
    ];

    /// The outcome of a sink's answer.
    pub fn of(result: &std::result::Result<Applied, SinkError>) -> Self {
        match result {
            Ok(Applied::Committed) => FlushOutcome::Committed,
            Ok(Applied::AlreadyCommitted) => FlushOutcome::Duplicate,
            Err(error) if error.is_outcome_unknown() => FlushOutcome::Unknown,
            Err(error) if error.is_row_rejected() => FlushOutcome::Rejected,
            Err(_) => FlushOutcome::Failed,
        }
    }

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushOutcome::Committed => "committed",
            FlushOutcome::Duplicate => "duplicate",
            FlushOutcome::Failed => "failed",
            FlushOutcome::Unknown => "unknown",
            FlushOutcome::Rejected => "rejected",
        }
    }
}

// === impl DropReason ===

impl DropReason {
    /// Every variant, in metric-label order.
    pub const ALL: [DropReason; 2] = [DropReason::Rejected, DropReason::InvalidName];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Rejected => "rejected",
            DropReason::InvalidName => "invalid_name",
        }
    }
}

// === impl WriteBehindMetrics ===

/// The increment outcomes in label order: accepted, then every refusal.
fn increment_outcomes() -> impl Iterator<Item = &'static str> {
    std::iter::once("accepted").chain(Refused::ALL.iter().map(|refused| refused.as_str()))
}

fn increment_index(source: IncrementSource, outcome: std::result::Result<(), Refused>) -> usize {
    let outcome = match outcome {
        Ok(()) => 0,
        Err(refused) => 1 + refused as usize,
    };
    source as usize * (1 + Refused::ALL.len()) + outcome
}

impl WriteBehindMetrics {
    /// Registers the write-behind metrics in `registry` (all but the pending-keys gauge, which
    /// [`WriteBehind::register_pending_keys`](super::WriteBehind::register_pending_keys) adds once
    /// the component exists).
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register(registry: &Registry) -> Result<Self> {
        let family = IntCounterVec::new(
            Opts::new(
                "sidecache_writebehind_increments_total",
                "Write-behind increments asked for, by source (admin, request) and outcome: \
                 accepted, or refused because too many names were pending (full), shutdown had \
                 begun (closed), the pending sum would overflow (overflow) or the name could not \
                 be stored (invalid_name: empty, over 1024 bytes, or with control characters).",
            ),
            &["source", "outcome"],
        )?;
        let mut increments = Vec::new();
        for source in IncrementSource::ALL {
            for outcome in increment_outcomes() {
                increments.push(family.with_label_values(&[source.as_str(), outcome]));
            }
        }
        registry.register(Box::new(family))?;
        let outcomes: Vec<_> = FlushOutcome::ALL.iter().map(|o| o.as_str()).collect();
        let flush_duration = Histogram::with_opts(
            HistogramOpts::new(
                "sidecache_writebehind_flush_duration_seconds",
                "Time to apply one write-behind batch to the sink, whatever the outcome.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(flush_duration.clone()))?;
        Ok(Self {
            increments,
            flushes: metrics::counters(
                registry,
                "sidecache_writebehind_flushes_total",
                "Attempts to apply a write-behind batch, by outcome: committed, duplicate (committed \
                 before, skipped), failed (rolled back, retried), unknown (commit outcome unknown, \
                 retried under the same batch id), rejected (a row's content refused, rolled back; \
                 the batch is split).",
                "outcome",
                &outcomes,
            )?,
            flush_duration,
            dropped: metrics::counters(
                registry,
                "sidecache_writebehind_rows_dropped_total",
                "Counter rows (a name and its delta) dropped without reaching the sink, by reason: \
                 rejected (the sink refused the row's content, even alone), invalid_name (a name \
                 in the recovery file that no sink can store).",
                "reason",
                &DropReason::ALL.map(DropReason::as_str),
            )?,
        })
    }

    /// One increment and how it ended.
    pub fn record_increment(
        &self,
        source: IncrementSource,
        outcome: std::result::Result<(), Refused>,
    ) {
        self.increments[increment_index(source, outcome)].inc();
    }

    /// `rows` rows dropped for `reason`.
    pub fn record_dropped(&self, reason: DropReason, rows: usize) {
        self.dropped[reason as usize].inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
    }

    /// One attempt to apply a batch, and how long it took.
    pub fn record_flush(&self, outcome: FlushOutcome, elapsed: Duration) {
        self.flushes[outcome as usize].inc();
        self.flush_duration.observe(elapsed.as_secs_f64());
    }
}
