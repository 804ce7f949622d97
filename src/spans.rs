//! Span helpers every layer may use: `tracing` only, nothing of OpenTelemetry, so the cache core
//! and the store can open spans without knowing what they are exported as.

/// Whether code runs inside a span: child spans are opened only then, so a request the sampler
/// dropped (which opens no span) opens none below it either.
pub fn in_span() -> bool {
    tracing::dispatcher::get_default(|dispatch| dispatch.current_span().id().is_some())
}
