//! The span pipeline: sampler → the SDK's batch span processor (a bounded queue on its own
//! thread) → OTLP over gRPC or HTTP protobuf, and its flush at shutdown.
//!
//! Requests never wait for export: an ended span is handed to the processor's bounded queue with
//! a non-blocking send, and when the queue is full the span is dropped. The SDK counts those drops
//! only for a log line at shutdown, so a gate in front of the processor holds the bound itself and
//! counts every span exported, failed or dropped as it happens ([`SpanCounts`]).
//!
//! The processor's thread has no Tokio runtime, and both OTLP clients (tonic, hyper) need one, so
//! every export is run as a task on the runtime the pipeline was started in (`OnRuntime`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfig, BatchConfigBuilder, BatchSpanProcessor, Sampler, SamplingDecision, SamplingResult,
    SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
};
use tokio::runtime::Handle;
use tracing_subscriber::{Layer, Registry};

use super::config::{OtlpProtocol, Ratio, SamplerKind, TracingConfig};
use super::sampling::{DecidedIds, RequestSampler};
use super::span_counts::SpanCounts;
use super::uncached::Uncached;

/// The instrumentation scope spans are reported under.
const SCOPE: &str = "sidecache";

/// Whether spans are exported, and the pipeline that does it.
///
/// Cheap to clone: clones share the pipeline.
#[derive(Clone, Default)]
pub struct Tracing {
    /// `None`: tracing is off (no endpoint configured).
    provider: Option<SdkTracerProvider>,
    /// The configured sampler, applied to each request before it opens any span.
    requests: RequestSampler,
    /// What became of the finished spans.
    spans: SpanCounts,
}

/// Why the span pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The OTLP exporter rejected its configuration.
    #[error("cannot build the OTLP exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// [`Tracing::start`] was called outside a Tokio runtime.
    #[error("the OTLP exporter needs a Tokio runtime")]
    NoRuntime,
}

// === impl Tracing ===

impl Tracing {
    /// Tracing off: no exporter, and the request path opens no spans.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the pipeline `config` describes, or returns [`disabled`](Self::disabled) when it
    /// names no endpoint. Exports run on the current Tokio runtime, which must outlive the
    /// pipeline (flush it with [`shutdown`](Self::shutdown) before the runtime stops).
    ///
    /// # Errors
    /// The exporter cannot be built, or there is no current Tokio runtime.
    pub fn start(config: &TracingConfig) -> Result<Self, TracingError> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(Self::disabled());
        };
        let runtime = Handle::try_current().map_err(|_| TracingError::NoRuntime)?;
        let exporter = match config.otlp_protocol {
            OtlpProtocol::Grpc => OnRuntime::new(
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.to_string())
                    .with_timeout(config.export_timeout)
                    .build()?,
                runtime,
                config.export_timeout,
            ),
            OtlpProtocol::HttpProtobuf => OnRuntime::new(
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(traces_url(endpoint))
                    .with_timeout(config.export_timeout)
                    .build()?,
                runtime,
                config.export_timeout,
            ),
        };
        // Every knob is set here from the configuration (which read OTEL_BSP_* through the
        // config's own sources), overriding what the SDK reads from the process environment.
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.max_queue_size)
            .with_max_export_batch_size(config.max_export_batch_size)
            .with_scheduled_delay(config.batch_delay)
            .build();
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        Ok(Self::pipeline(
            exporter,
            (batch, config.max_queue_size),
            resource,
            config.sampler,
            config.sampler_arg,
        ))
    }

    /// Tracing on through `exporter` (tests and benchmarks bring their own), batched with the
    /// SDK's defaults and sampled by `sampler` / `sampler_arg` exactly as [`start`](Self::start)
    /// samples.
    pub fn with_exporter(
        exporter: impl SpanExporter + 'static,
        sampler: SamplerKind,
        sampler_arg: Option<Ratio>,
    ) -> Self {
        let queue_size = crate::config::Config::default().tracing.max_queue_size;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(queue_size)
            .build();
        Self::pipeline(
            exporter,
            (batch, queue_size),
            Resource::builder().build(),
            sampler,
            sampler_arg,
        )
    }

    /// The pipeline through `exporter`, batched as `batch` says with a queue of `queue_size`
    /// spans (the same size `batch` was given).
    fn pipeline(
        exporter: impl SpanExporter + 'static,
        (batch, queue_size): (BatchConfig, usize),
        resource: Resource,
        kind: SamplerKind,
        arg: Option<Ratio>,
    ) -> Self {
        let spans = SpanCounts::default();
        let processor = BatchSpanProcessor::builder(spans.exporter(exporter))
            .with_batch_config(batch)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(spans.gate(processor, queue_size))
            .with_sampler(PreDecided(sampler(kind, arg)))
            // Root spans take the trace id their request's sampling was decided on.
            .with_id_generator(DecidedIds::default())
            .with_resource(resource)
            .build();
        Self {
            provider: Some(provider),
            requests: RequestSampler::new(kind, arg),
            spans,
        }
    }

    /// What became of the finished spans (all zero while tracing is off).
    pub fn span_counts(&self) -> &SpanCounts {
        &self.spans
    }

    /// The sampler requests apply before opening a span (`None` when tracing is off).
    pub fn request_sampler(&self) -> Option<RequestSampler> {
        self.provider.as_ref().map(|_| self.requests)
    }

    /// Whether spans are exported.
    pub fn is_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// The layer that turns sidecache's `tracing` spans into OpenTelemetry spans (`None` when
    /// tracing is off). It takes only sidecache's own spans, never events or the spans of its
    /// dependencies (the exporter's own HTTP/2 client among them).
    pub fn layer(&self) -> Option<impl Layer<Registry> + Send + Sync + 'static> {
        let tracer = self.provider.as_ref()?.tracer(SCOPE);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            // No code location, thread, target or busy/idle attributes: they cost on every span
            // and say nothing an operator looks for.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false);
        Some(layer.with_filter(Uncached(super::sidecache_spans())))
    }

    /// Exports every span still queued and stops the pipeline, waiting at most `within`.
    /// Returns whether it finished in time. Call it once the proxy has drained, so the last
    /// requests' spans are among them.
    pub async fn shutdown(&self, within: Duration) -> bool {
        let Some(provider) = self.provider.clone() else {
            return true;
        };
        // The SDK's shutdown blocks until its thread has exported; the exports themselves run
        // on this runtime, so block another thread.
        let flush = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(within));
        match tokio::time::timeout(within, flush).await {
            Ok(Ok(Ok(()))) => true,
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "spans could not all be exported at shutdown");
                false
            }
            Ok(Err(_panicked)) => {
                tracing::warn!("the span exporter failed at shutdown");
                false
            }
            Err(_elapsed) => {
                tracing::warn!("the span exporter did not finish within the shutdown grace");
                false
            }
        }
    }
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// The SDK's sampler: a request's server span was already chosen by [`RequestSampler`] (a span
/// is only opened for a kept request), so server spans are recorded; a child follows its parent;
/// any other root span (e.g. a write-behind flush) goes to the configured sampler.
#[derive(Debug, Clone)]
struct PreDecided(Sampler);

impl ShouldSample for PreDecided {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[opentelemetry::KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        let parent = parent_context
            .filter(|context| context.has_active_span())
            .map(|context| context.span().span_context().clone());
        let recorded = match (&parent, span_kind) {
            (Some(parent), _) => parent.is_sampled(),
            (None, SpanKind::Server) => true,
            (None, _) => {
                return self.0.should_sample(
                    parent_context,
                    trace_id,
                    name,
                    span_kind,
                    attributes,
                    links,
                );
            }
        };
        SamplingResult {
            decision: if recorded {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: parent
                .map(|parent| parent.trace_state().clone())
                .unwrap_or_default(),
        }
    }
}

/// The sampler `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` describe; a ratio sampler
/// without an argument samples everything, as the specification says.
fn sampler(kind: SamplerKind, arg: Option<Ratio>) -> Sampler {
    let ratio = arg.unwrap_or(Ratio::ONE).get();
    match kind {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::TraceIdRatio => Sampler::TraceIdRatioBased(ratio),
        SamplerKind::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentbasedTraceIdRatio => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
        }
    }
}

/// The OTLP/HTTP traces URL for a base endpoint: `{endpoint}/v1/traces`, as the specification
/// builds it from `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(endpoint: &http::Uri) -> String {
    let base = endpoint.to_string();
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// Runs each export of `E` as a task on a Tokio runtime, bounded by a timeout, for the batch
/// processor's runtime-less thread. Logs when exports start failing and when they recover (not
/// every failed batch: a collector that is down would flood the log).
#[derive(Debug)]
struct OnRuntime<E> {
    exporter: Arc<E>,
    runtime: Handle,
    timeout: Duration,
    /// Whether the last export failed.
    failing: AtomicBool,
}

// === impl OnRuntime ===

impl<E> OnRuntime<E> {
    fn new(exporter: E, runtime: Handle, timeout: Duration) -> Self {
        Self {
            exporter: Arc::new(exporter),
            runtime,
            timeout,
            failing: AtomicBool::new(false),
        }
    }

    fn note(&self, result: &OTelSdkResult) {
        match result {
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("span export works again");
            }
            Err(error) if !self.failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(%error, "spans could not be exported; they are dropped until the collector answers");
            }
            _ => {}
        }
    }
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let exporter = Arc::clone(&self.exporter);
        let timeout = self.timeout;
        let export = self
            .runtime
            .spawn(async move { tokio::time::timeout(timeout, exporter.export(batch)).await });
        let result = match export.await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(OTelSdkError::Timeout(timeout)),
            // The runtime is shutting down (or the export panicked): the batch is lost.
            Err(error) => Err(OTelSdkError::InternalFailure(format!(
                "the export task did not finish: {error}"
            ))),
        };
        self.note(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.exporter.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, when the processor is built, before any export holds a clone.
        match Arc::get_mut(&mut self.exporter) {
            Some(exporter) => exporter.set_resource(resource),
            None => debug_assert!(false, "set_resource while an export is running"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_exporter_posts_to_v1_traces_under_the_endpoint() {
        for (endpoint, expected) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            ("http://gw/otlp/", "http://gw/otlp/v1/traces"),
        ] {
            let uri: http::Uri = endpoint.parse().expect("test URI");
            assert_eq!(traces_url(&uri), expected);
        }
    }

    #[test]
    fn samplers_follow_the_otel_names() {
        let one = Some(Ratio::ONE);
        assert!(matches!(
            sampler(SamplerKind::TraceIdRatio, None),
            Sampler::TraceIdRatioBased(ratio) if ratio == 1.0
        ));
        assert!(matches!(
            sampler(SamplerKind::ParentbasedAlwaysOn, one),
            Sampler::ParentBased(_)
        ));
        assert!(matches!(
            sampler(SamplerKind::AlwaysOff, one),
            Sampler::AlwaysOff
        ));
    }

    #[test]
    fn no_endpoint_means_tracing_off() {
        let config = crate::config::Config::default().tracing;
        let tracing = Tracing::start(&config).expect("disabled needs no runtime");
        assert!(!tracing.is_enabled());
    }
}
