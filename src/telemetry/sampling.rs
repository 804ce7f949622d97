//! The sampling decision, taken before a request opens any span.
//!
//! Opening a `tracing` span that the OpenTelemetry layer then drops still costs the whole
//! subscriber machinery (span data, filters, enter/exit, close) for every request. So the
//! configured sampler (`OTEL_TRACES_SAMPLER`) is applied here first: a request the sampler
//! drops opens no span at all and only passes an unsampled `traceparent` on; a request it keeps
//! opens its spans, which the SDK then records (its own sampler only follows the parent).

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use opentelemetry::trace::{SpanContext, SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use super::config::{Ratio, SamplerKind};
use super::logs::TraceIds;

/// Decides which requests are traced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestSampler {
    kind: SamplerKind,
    /// The share of traces a ratio sampler keeps.
    ratio: f64,
}

impl Default for RequestSampler {
    /// `parentbased_always_on`, the specification's default.
    fn default() -> Self {
        Self::new(SamplerKind::ParentbasedAlwaysOn, None)
    }
}

impl RequestSampler {
    /// The sampler `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` describe; a ratio sampler
    /// without an argument samples everything, as the specification says.
    pub fn new(kind: SamplerKind, arg: Option<Ratio>) -> Self {
        Self {
            kind,
            ratio: arg.unwrap_or(Ratio::ONE).get(),
        }
    }

    /// Whether a request continuing `parent` (or starting a trace) is traced, and in which
    /// trace. A new trace's id is drawn here and the ratio samplers decide on it, so the trace
    /// that is recorded (see [`with_root_trace_id`]) or passed on unsampled is that one: a
    /// service downstream that samples by the same ratio decides alike.
    pub fn decide(&self, parent: Option<&SpanContext>) -> Decision {
        let trace_id = parent.map_or_else(random_trace_id, SpanContext::trace_id);
        let by_ratio = || sampled_by_ratio(trace_id, self.ratio);
        let sampled = match (self.kind, parent) {
            (SamplerKind::AlwaysOn, _) => true,
            (SamplerKind::AlwaysOff, _) => false,
            (SamplerKind::TraceIdRatio, _) => by_ratio(),
            (
                SamplerKind::ParentbasedAlwaysOn
                | SamplerKind::ParentbasedAlwaysOff
                | SamplerKind::ParentbasedTraceIdRatio,
                Some(parent),
            ) => parent.is_sampled(),
            (SamplerKind::ParentbasedAlwaysOn, None) => true,
            (SamplerKind::ParentbasedAlwaysOff, None) => false,
            (SamplerKind::ParentbasedTraceIdRatio, None) => by_ratio(),
        };
        Decision { sampled, trace_id }
    }
}

/// What [`RequestSampler::decide`] decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is traced.
    pub sampled: bool,
    /// Its trace: the parent's, or the new one the decision was taken on.
    pub trace_id: TraceId,
}

impl Decision {
    /// The ids of a request the sampler dropped: its own span id in its trace. It passes them
    /// on with the sampled flag off (and the parent's `tracestate` as it came), so the next hop
    /// continues the same trace without recording it either.
    pub fn unsampled_ids(&self) -> TraceIds {
        TraceIds {
            trace_id: self.trace_id,
            span_id: random_span_id(),
        }
    }
}

thread_local! {
    /// The trace id the next root span started on this thread takes (see
    /// [`with_root_trace_id`]).
    static ROOT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Runs `start`, which starts a request's span on this thread, so that the span, if it is a
/// root, gets `trace_id`: the id its sampling was decided on. The SDK draws a root span's trace
/// id from its id generator, which is [`DecidedIds`].
pub(crate) fn with_root_trace_id<T>(trace_id: TraceId, start: impl FnOnce() -> T) -> T {
    ROOT_TRACE_ID.set(Some(trace_id));
    let started = start();
    ROOT_TRACE_ID.set(None);
    started
}

/// The SDK's random id generator, except that a root span started inside
/// [`with_root_trace_id`] takes the trace id given there.
#[derive(Debug, Default)]
pub(crate) struct DecidedIds(RandomIdGenerator);

impl IdGenerator for DecidedIds {
    fn new_trace_id(&self) -> TraceId {
        ROOT_TRACE_ID
            .take()
            .unwrap_or_else(|| self.0.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.0.new_span_id()
    }
}

/// The trace-id ratio rule of the OpenTelemetry SDK: the id's low 63 bits against the ratio, so
/// every service deciding on the same trace id decides alike.
fn sampled_by_ratio(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    let value = u64::from_be_bytes(low) >> 1;
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    value < bound
}

thread_local! {
    /// A per-thread xorshift state: ids for unsampled requests need to be unique, not secret,
    /// and taking them must cost next to nothing.
    static NEXT: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

fn next_random() -> u64 {
    NEXT.with(|state| {
        // xorshift64*: passes the usual statistical tests, one multiply per number.
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

fn random_trace_id() -> TraceId {
    let high = u128::from(next_random()) << 64;
    TraceId::from((high | u128::from(next_random())).max(1))
}

fn random_span_id() -> SpanId {
    SpanId::from(next_random().max(1))
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceFlags, TraceState};

    use super::*;

    fn parent(sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(7u128),
            SpanId::from(9u64),
            flags,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn each_sampler_follows_its_specification() {
        let (zero, all) = (0.0, 1.0);
        let cases = [
            (SamplerKind::AlwaysOn, all, None, true),
            (SamplerKind::AlwaysOn, all, Some(false), true),
            (SamplerKind::AlwaysOff, all, Some(true), false),
            (SamplerKind::TraceIdRatio, all, Some(false), true),
            (SamplerKind::TraceIdRatio, zero, Some(true), false),
            (SamplerKind::ParentbasedAlwaysOn, all, None, true),
            (SamplerKind::ParentbasedAlwaysOn, all, Some(false), false),
            (SamplerKind::ParentbasedAlwaysOff, all, None, false),
            (SamplerKind::ParentbasedAlwaysOff, all, Some(true), true),
            (SamplerKind::ParentbasedTraceIdRatio, zero, None, false),
            (SamplerKind::ParentbasedTraceIdRatio, zero, Some(true), true),
        ];
        for (kind, ratio, parent_sampled, expected) in cases {
            let parent = parent_sampled.map(parent);
            let sampler = RequestSampler { kind, ratio };
            assert_eq!(
                sampler.decide(parent.as_ref()).sampled,
                expected,
                "{kind:?} {parent_sampled:?}"
            );
        }
    }

    #[test]
    fn a_ratio_keeps_about_its_share_of_new_traces() {
        let sampler = RequestSampler {
            kind: SamplerKind::TraceIdRatio,
            ratio: 0.25,
        };
        let kept = (0..40_000).filter(|_| sampler.decide(None).sampled).count();
        assert!((9_000..11_000).contains(&kept), "{kept} of 40000");
    }

    #[test]
    fn an_unsampled_context_continues_its_parents_trace_or_starts_one() {
        let sampler = RequestSampler::default();
        let parent = parent(false);
        let child = sampler.decide(Some(&parent)).unsampled_ids();
        assert_eq!(child.trace_id, parent.trace_id());
        assert_ne!(child.span_id, parent.span_id());
        assert_ne!(child.span_id, SpanId::INVALID);
        let root = sampler.decide(None);
        assert_ne!(root.trace_id, TraceId::INVALID);
        assert_ne!(root.trace_id, sampler.decide(None).trace_id);
        assert_eq!(root.unsampled_ids().trace_id, root.trace_id);
    }
}
