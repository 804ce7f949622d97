//! What the read-through cache gives a caller: one [`Outcome`], whose [`Served`] says both what
//! the caller gets and how it came about, with the two facts that stand beside any of them (what
//! the store held, and whether the caller waited on another's load).

use std::sync::Arc;

use tracing::Span;

use super::judgement::LoadCause;

/// What the caller gets, and how it came about.
#[derive(Debug)]
pub enum Served<V, P, E> {
    /// From the store without a load.
    Hit(V),
    /// A stored value, served at once while exactly one background refresh runs.
    StaleWhileRefresh(V),
    /// A stored value, served to a caller whose wait for the load under way passed its bound.
    StaleWhileLoading(V),
    /// This caller's own load fetched it from the source and stored it.
    Fetched(V),
    /// This caller's own load had the source confirm the stored value, and refreshed it.
    Revalidated(V),
    /// Another caller's load, shared.
    Shared(V),
    /// This caller's own load gave an answer for this caller only: not stored, not shared.
    Private(P),
    /// The load failed; the stored value stands in.
    StandIn(V, Arc<E>),
    /// The load failed and nothing could stand in.
    Failed(Arc<E>),
    /// The load under way for the key already had as many waiters as it takes; the caller was
    /// neither queued nor sent to the source (which is busy with that key already).
    Busy,
    /// The load this caller waited for took longer than any load may
    /// ([`LoadingSettings::load_timeout`](super::loading::LoadingSettings::load_timeout)), and
    /// nothing could stand in.
    TimedOut,
}

/// A caller's outcome: what it is served, and the facts beside it.
#[derive(Debug)]
pub struct Outcome<V, P, E> {
    /// What the caller gets, and how it came about.
    pub served: Served<V, P, E>,
    /// Why the value the store held did not serve the request directly; `None` when the store
    /// held nothing (or served it).
    pub found: Option<LoadCause>,
    /// Whether the key was marked hit-for-miss, so this caller loaded on its own without
    /// queueing.
    pub bypassed: bool,
    /// For a caller that waited on another caller's load: how the wait ended.
    pub waited: Option<Waited>,
    /// Whether this caller's own load was not kept: its key was invalidated while it ran, so
    /// the value ([`Served::Fetched`], [`Served::Revalidated`]) answers this caller only.
    pub dropped: bool,
}

/// How a caller's wait on another caller's load went.
#[derive(Debug)]
pub struct Waited {
    /// How the wait ended.
    pub result: WaitResult,
    /// The span the load ran in, for the caller's edge to link to (`None`, or disabled, when
    /// nothing records spans).
    pub leader: Option<Span>,
}

/// How a follower's wait ended, for the coalescing counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// The leader's value served this follower.
    Shared,
    /// The leader's answer could not serve this follower (private, or not fitting its request):
    /// it loaded on its own.
    RefetchUncacheable,
    /// The wait bound passed: a stale value served it, or (nothing could) it waited as long as
    /// any load may take and was answered [`Served::TimedOut`].
    Timeout,
    /// The leader's load failed.
    LeaderError,
    /// The load already had as many waiters as it takes: this caller was not queued.
    QueueFull,
}

// === impl Outcome ===

impl<V, P, E> Outcome<V, P, E> {
    /// `served`, with nothing beside it.
    pub fn of(served: Served<V, P, E>) -> Self {
        Self {
            served,
            found: None,
            bypassed: false,
            waited: None,
            dropped: false,
        }
    }

    /// `served` by this caller's own load, which was kept in the store unless `kept` is false.
    pub fn loaded(served: Served<V, P, E>, kept: bool) -> Self {
        Self {
            dropped: !kept,
            ..Self::of(served)
        }
    }

    /// How the caller's wait ended, if it waited on another caller's load.
    pub fn wait_result(&self) -> Option<WaitResult> {
        self.waited.as_ref().map(|waited| waited.result)
    }
}

// === impl WaitResult ===

impl WaitResult {
    /// Every result, in declaration order (for creating every metric series up front).
    pub const ALL: [WaitResult; 5] = [
        Self::Shared,
        Self::RefetchUncacheable,
        Self::Timeout,
        Self::LeaderError,
        Self::QueueFull,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::RefetchUncacheable => "refetch_uncacheable",
            Self::Timeout => "timeout",
            Self::LeaderError => "leader_error",
            Self::QueueFull => "queue_full",
        }
    }
}
