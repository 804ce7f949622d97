//! [`Uncached`]: a per-layer filter that tracing asks about every span and event.
//!
//! tracing-subscriber hands a per-layer filter's answer from `enabled` to the span's or event's
//! creation through a thread-local. A callsite whose interest is cached as "always" skips
//! `enabled`, so its creation reads whatever the previous question on that thread left there,
//! and when that question was turned down the span or event is silently dropped
//! (tokio-rs/tracing#2519). Here that would drop a miss's `cache lookup` span whenever the
//! access line's `enabled!` check, asked just before, is turned down by the span layer. Capping every filter's interest at "sometimes" makes tracing ask each time,
//! which refreshes the thread-local; a callsite nobody wants stays "never" and costs nothing.

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};

/// `F`, except that no callsite is ever "always" interesting: see the [module](self).
#[derive(Debug, Clone)]
pub(super) struct Uncached<F>(pub F);

impl<S: Subscriber, F: Filter<S>> Filter<S> for Uncached<F> {
    fn enabled(&self, metadata: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        self.0.enabled(metadata, cx)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        let interest = self.0.callsite_enabled(metadata);
        if interest.is_never() {
            interest
        } else {
            Interest::sometimes()
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        self.0.event_enabled(event, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, cx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        self.0.on_record(id, values, cx);
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        self.0.on_enter(id, cx);
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        self.0.on_exit(id, cx);
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        self.0.on_close(id, cx);
    }
}
