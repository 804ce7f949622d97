//! What became of every finished span: exported, failed (the collector refused it or did not
//! answer in time), or dropped (the export queue was full), counted as it happens.
//!
//! The SDK's batch processor drops spans when its queue is full, and counts them only for a log
//! line at shutdown. So a gate in front of it ([`CountingGate`]) holds the queue's bound itself:
//! it counts the spans handed on and not yet through an export (the ones queued and the batch
//! being sent), and drops, counting, any span beyond the bound. The processor's own queue, of the
//! same size, then never fills, and every span handed on ends in the exporter, where
//! [`CountingExporter`] counts it exported or failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus::IntCounter;

use crate::metrics::{self, Registry};

/// The span pipeline's counters and the number of spans it holds.
///
/// Cheap to clone: clones share the counts.
#[derive(Debug, Clone)]
pub struct SpanCounts(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    /// `sidecache_trace_spans_exported_total`.
    exported: IntCounter,
    /// `sidecache_trace_spans_failed_total`.
    failed: IntCounter,
    /// `sidecache_trace_spans_dropped_total`.
    dropped: IntCounter,
    /// Spans handed to the batch processor and not yet through an export.
    held: AtomicUsize,
    /// The most spans held at once: the processor's queue size.
    bound: AtomicUsize,
}

/// The span processor in front of the batch processor: it hands a span on while fewer than the
/// queue's size are held, and drops it (counted) otherwise.
#[derive(Debug)]
pub(super) struct CountingGate<P> {
    next: P,
    counts: SpanCounts,
}

/// The exporter behind the batch processor: it counts each batch exported or failed, and
/// releases the spans it held.
#[derive(Debug)]
pub(super) struct CountingExporter<E> {
    next: E,
    counts: SpanCounts,
}

// === impl SpanCounts ===

impl Default for SpanCounts {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).expect("a valid metric name and help")
        };
        Self(Arc::new(Counts {
            exported: counter(
                "sidecache_trace_spans_exported_total",
                "Finished spans the collector accepted.",
            ),
            failed: counter(
                "sidecache_trace_spans_failed_total",
                "Finished spans whose export failed: the collector refused them or did not answer within --trace-export-timeout.",
            ),
            dropped: counter(
                "sidecache_trace_spans_dropped_total",
                "Finished spans dropped because --trace-queue-size spans were already waiting for export.",
            ),
            held: AtomicUsize::new(0),
            bound: AtomicUsize::new(0),
        }))
    }
}

impl SpanCounts {
    /// Registers the counters in `registry` (they read zero while tracing is off).
    ///
    /// # Errors
    /// Registration failed (a name registered twice).
    pub fn register(&self, registry: &Registry) -> metrics::Result<()> {
        for counter in [&self.0.exported, &self.0.failed, &self.0.dropped] {
            registry.register(Box::new(counter.clone()))?;
        }
        Ok(())
    }

    /// A gate in front of `next` that holds at most `bound` spans (`next`'s queue size).
    pub(super) fn gate<P: SpanProcessor>(&self, next: P, bound: usize) -> CountingGate<P> {
        self.0.bound.store(bound, Ordering::Release);
        CountingGate {
            next,
            counts: self.clone(),
        }
    }

    /// An exporter that counts what `next` exports.
    pub(super) fn exporter<E: SpanExporter>(&self, next: E) -> CountingExporter<E> {
        CountingExporter {
            next,
            counts: self.clone(),
        }
    }

    /// Takes a place for one span, unless `bound` are held.
    fn admit(&self) -> bool {
        let bound = self.0.bound.load(Ordering::Acquire);
        self.0
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < bound).then_some(held + 1)
            })
            .is_ok()
    }

    /// `spans` went through an export that succeeded or not.
    fn exported_batch(&self, spans: usize, result: &OTelSdkResult) {
        let counter = if result.is_ok() {
            &self.0.exported
        } else {
            &self.0.failed
        };
        counter.inc_by(spans as u64);
        self.0.held.fetch_sub(spans, Ordering::AcqRel);
    }
}

// === impl CountingGate ===

impl<P: SpanProcessor> SpanProcessor for CountingGate<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.next.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.counts.admit() {
            self.next.on_end(span);
        } else {
            self.counts.0.dropped.inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.next.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.next.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.next.set_resource(resource);
    }
}

// === impl CountingExporter ===

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.next.export(batch).await;
        self.counts.exported_batch(spans, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.next.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.next.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.next.set_resource(resource);
    }
}
