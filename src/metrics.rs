//! The Prometheus registry sidecache owns, and the helpers every metric set registers with.
//!
//! Each subsystem declares one `*Metrics` struct built by `register(&Registry)` (see
//! [`crate::proxy::metrics`], [`crate::origin::metrics`]). Labelled families are resolved into
//! one handle per label value at registration, so recording is a single atomic operation — no
//! lookup, lock or allocation per request — and every series exists from the start with value 0.
//! Label values come only from enums; nothing is ever labelled by key, URL or host.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    PullingGauge, TextEncoder,
};

use crate::build;

pub use prometheus::Registry;

/// Latency buckets in seconds: fine below a millisecond for hits, up to half a minute for slow
/// origin loads.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Result of registering metrics.
pub type Result<T> = prometheus::Result<T>;

/// A registry holding `sidecache_build_info` and, on Linux, the process collector
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, open file descriptors, ...).
///
/// # Errors
/// Registration failed (a name clash; a bug).
pub fn new_registry() -> Result<Registry> {
    let registry = Registry::new();
    let build_info = IntGaugeVec::new(
        Opts::new(
            "sidecache_build_info",
            "Always 1; the labels say which build is running: the crate version, the git \
             commit and the Cargo profile.",
        ),
        &["version", "commit", "profile"],
    )?;
    build_info
        .with_label_values(&[build::VERSION, build::COMMIT, build::PROFILE])
        .set(1);
    registry.register(Box::new(build_info))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(registry)
}

/// Registers a counter family with one `label`, returning one counter per value, in order.
///
/// # Errors
/// Registration failed.
pub fn counters(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> Result<Vec<IntCounter>> {
    let family = IntCounterVec::new(Opts::new(name, help), &[label])?;
    let handles = values
        .iter()
        .map(|value| family.with_label_values(&[value]))
        .collect();
    registry.register(Box::new(family))?;
    Ok(handles)
}

/// Registers an unlabelled counter.
///
/// # Errors
/// Registration failed.
pub fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter> {
    let counter = IntCounter::new(name, help)?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

/// Registers a latency histogram family with one `label`, returning one histogram per value.
///
/// # Errors
/// Registration failed.
pub fn histograms(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> Result<Vec<Histogram>> {
    let family = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        &[label],
    )?;
    let handles = values
        .iter()
        .map(|value| family.with_label_values(&[value]))
        .collect();
    registry.register(Box::new(family))?;
    Ok(handles)
}

/// Registers an unlabelled latency histogram.
///
/// # Errors
/// Registration failed.
pub fn histogram(registry: &Registry, name: &str, help: &str) -> Result<Histogram> {
    let histogram =
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))?;
    registry.register(Box::new(histogram.clone()))?;
    Ok(histogram)
}

/// Registers a gauge whose value is read from a component at scrape time, so it never drifts
/// from the component's own state.
///
/// # Errors
/// Registration failed.
pub fn state_gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    read: impl Fn() -> f64 + Send + Sync + 'static,
) -> Result<()> {
    let gauge = PullingGauge::new(name, help, Box::new(read))?;
    registry.register(Box::new(gauge) as Box<dyn Collector>)
}

/// The registry's text exposition (Prometheus format 0.0.4).
pub fn encode(registry: &Registry) -> String {
    let mut text = Vec::new();
    // Encoding into a Vec cannot fail for well-formed families; a failure would be a bug in a
    // collector, and an empty scrape is the safe answer then.
    if TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .is_err()
    {
        tracing::error!("metrics could not be encoded");
        return String::new();
    }
    String::from_utf8(text).unwrap_or_default()
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
