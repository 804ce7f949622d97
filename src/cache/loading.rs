//! The read-through cache: L1 store, then one coalesced load per key through a [`Loader`].
//!
//! This is the generic, HTTP-free core (the proxy is one user of it). A lookup goes:
//!
//! 1. **L1** (a [`Store`]): the loader [judges](Loader::judge) the stored value for this
//!    request: fresh → answered; usable while refreshing → answered, and exactly one background
//!    refresh is started; otherwise the value is kept as the base of the load (revalidation, or
//!    the stand-in if the load fails).
//! 2. **hit-for-miss**: a key whose last load was not shareable skips the queue and loads on its
//!    own for a short while, so nobody waits behind a load that cannot help them.
//! 3. **flight**: one load per key ([`Flight`]). The load runs in a spawned task that owns it, so
//!    a caller that goes away does not stall the others. The task loads from the source
//!    ([`Loader::load_source`]), stores a shareable result, and wakes every follower.
//! 4. **followers** judge the shared value against their own request; if it does not fit (or the
//!    leader's answer was private) they load on their own. If the leader's answer was private
//!    only because of the leader's own request (its credentials), they elect a new leader among
//!    themselves instead. A failed load is shared as an error, never stored; a stale value stands
//!    in where the loader allows.
//! 5. **a slow load**: a follower still waiting when its bound
//!    ([`LoadingSettings::coalesce_timeout`]) passes is served the stored value if the loader
//!    allows it ([`Loader::usable_while_loading`]); otherwise it keeps waiting for the same load,
//!    at most [`LoadingSettings::load_timeout`] in all, and is then answered [`Served::TimedOut`].
//!    It never starts a load of its own: that would send every waiter to a slow source at once.
//!
//! # Loads nobody waits for
//!
//! A load runs in a task of its own, so the caller that started it may go away. The load is then
//! abandoned (the source request dropped) unless it is worth finishing for the cache: it is a
//! background refresh, it refreshes a value the store holds, or another caller joined it. A
//! load of a key nobody else asked for, whose one caller left, is not worth a source request
//! (and could otherwise be used to send the source any number of requests for the price of
//! their heads).
//!
//! # Spans
//!
//! A leader's load runs in a `cache load` [`tracing`] span, a child of the span the leader's
//! caller was in. The flight carries that span to the followers, and each follower's
//! [`Outcome`] hands it back ([`Waited::leader`]) so the caller's edge can link to the load it
//! waited on. Nothing here knows what the spans are exported as.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span};

use super::flight::{Flight, Follower, Leader, LoadMark, Published, Role, Wait};
pub use super::judgement::{Judgement, LoadCause};
use super::outcome::{Outcome, Served, WaitResult, Waited};
use crate::spans;
use crate::store::{MemoryStore, Store, WALK_SLICE, Weighed, WeighedKey};

/// What a source load produced.
#[derive(Debug)]
pub enum Source<V, P> {
    /// A new value that may be stored and shared.
    Fetched(V),
    /// The stored value, confirmed unchanged by the source and refreshed.
    Revalidated(V),
    /// An answer for the requesting caller only: not stored, not shared.
    Private {
        /// The answer.
        answer: P,
        /// Whether the key should skip the queue for a while (hit-for-miss): true when the
        /// source's answer itself is unshareable, false when only this request made it so (its
        /// credentials), which says nothing about the next request: then the key is neither
        /// marked nor is its stored value removed, and the followers elect a new leader.
        hit_for_miss: bool,
    },
}

/// What the cache asks of the code that knows the values: how a stored value may serve a request
/// (the judgement), and the load from the source (in the spirit of a single-flight cache's
/// `LoadSourceData`).
///
/// All methods may be called concurrently, for the same key too.
pub trait Loader: Send + Sync + 'static {
    /// Identifies a cached value.
    type Key: Hash + Eq + Clone + Send + Sync + fmt::Debug + WeighedKey + 'static;
    /// What a caller asks with (e.g. an HTTP request head). Cloned into the load task.
    type Request: Clone + Send + Sync + 'static;
    /// A shareable value (cheap to clone: an `Arc`).
    type Value: Weighed + Clone + Send + Sync + 'static;
    /// An answer for one caller only (e.g. a streaming response).
    type Private: Send + 'static;
    /// Why a load failed.
    type Error: Send + Sync + 'static;

    /// How `value` may serve `request`.
    fn judge(&self, value: &Self::Value, request: &Self::Request) -> Judgement;

    /// Whether `value` may stand in for `request` when a load failed with `error`.
    fn usable_on_error(
        &self,
        value: &Self::Value,
        request: &Self::Request,
        error: &Self::Error,
    ) -> bool;

    /// Whether `value` may serve `request` while the load under way for it is slower than a
    /// follower's bound. The default: no.
    fn usable_while_loading(&self, _value: &Self::Value, _request: &Self::Request) -> bool {
        false
    }

    /// The request a background refresh is made with, when `request` triggered it: the refresh
    /// is for the cache, so it carries nothing personal to the caller. The default: a copy.
    fn background_request(&self, request: &Self::Request) -> Self::Request {
        request.clone()
    }

    /// Loads from the source. `current` is the stored value, if any, to revalidate or build on.
    fn load_source(
        &self,
        key: &Self::Key,
        request: &Self::Request,
        current: Option<Self::Value>,
    ) -> impl Future<Output = Result<Source<Self::Value, Self::Private>, Self::Error>> + Send;
}

/// What L1 alone said for a request ([`LoadingCache::lookup`]).
#[derive(Debug)]
pub enum Lookup<V, O> {
    /// L1 served the request.
    Served(O),
    /// A load is needed; pass this on to [`LoadingCache::load`].
    Load(Miss<V>),
}

/// What a load needs from the lookup before it.
#[derive(Debug)]
pub struct Miss<V> {
    /// The stored value, if any: revalidated or built on by the load, and a stand-in if it fails.
    current: Option<V>,
    /// Why the stored value did not serve the request; `None` when L1 held nothing.
    found: Option<LoadCause>,
}

impl<V> Miss<V> {
    /// Whether L1 held nothing for the key.
    pub fn held_nothing(&self) -> bool {
        self.current.is_none()
    }
}

/// Knobs of the read-through cache.
#[derive(Debug, Clone)]
pub struct LoadingSettings {
    /// A follower waits this long for the leader's load before a stale value may serve it.
    pub coalesce_timeout: Duration,
    /// The longest a load can take (the source's own timeouts added up): no follower waits
    /// longer.
    pub load_timeout: Duration,
    /// How long a key whose load was not shareable bypasses the queue (hit-for-miss).
    pub hit_for_miss_ttl: Duration,
    /// Most bytes the hit-for-miss markers may hold (their keys' text and bookkeeping).
    pub hit_for_miss_capacity_bytes: u64,
    /// Most followers waiting on one load; callers beyond it are answered [`Served::Busy`].
    pub max_waiters_per_key: usize,
}

/// A generic single-flight read-through cache over a [`Loader`], keeping its values in a
/// [`Store`] (by default the byte-bounded [`MemoryStore`]).
///
/// Cloning is cheap; clones share everything.
pub struct LoadingCache<L: Loader, S = MemoryStore<<L as Loader>::Key, <L as Loader>::Value>> {
    inner: Arc<Inner<L, S>>,
}

/// The flight of a loader's loads; each carries the span its load runs in.
type LoadFlight<L> = Flight<<L as Loader>::Key, <L as Loader>::Value, <L as Loader>::Error, Span>;

/// A caller's outcome, for a loader's types.
pub type LoadOutcome<L> =
    Outcome<<L as Loader>::Value, <L as Loader>::Private, <L as Loader>::Error>;

struct Inner<L: Loader, S> {
    loader: L,
    store: S,
    /// Loads under way; each carries the span its load runs in.
    flight: Arc<LoadFlight<L>>,
    /// Keys whose last load was not shareable (hit-for-miss markers with a short TTL), bounded
    /// by the bytes their keys hold ([`LoadingSettings::hit_for_miss_capacity_bytes`]).
    uncacheable: moka::sync::Cache<L::Key, ()>,
    /// Owns the spawned loads, so shutdown can wait for them.
    loads: TaskTracker,
    /// Invalidations so far, for the loads outside the flight to tell whether one came while
    /// they ran (the flight marks its own loads, key by key).
    invalidations: AtomicU64,
    config: LoadingSettings,
}

/// How many times a caller joins again after its leader vanished (or its leader's answer was for
/// the leader alone) before loading on its own.
const MAX_ELECTIONS: usize = 3;

/// What a hit-for-miss marker holds besides its key's text (moka's entry and the key itself).
const MARKER_OVERHEAD_BYTES: u32 = 128;

// === impl LoadingCache ===

impl<L: Loader, S> Clone for LoadingCache<L, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L, S> LoadingCache<L, S>
where
    L: Loader,
    S: Store<Key = L::Key, Value = L::Value>,
{
    /// A cache over `store`, loading through `loader`.
    pub fn new(loader: L, store: S, config: LoadingSettings) -> Self {
        let uncacheable = moka::sync::Cache::builder()
            .time_to_live(config.hit_for_miss_ttl.max(Duration::from_millis(1)))
            .weigher(|key: &L::Key, _| key.weight_bytes().saturating_add(MARKER_OVERHEAD_BYTES))
            .max_capacity(config.hit_for_miss_capacity_bytes)
            .build();
        Self {
            inner: Arc::new(Inner {
                loader,
                store,
                flight: Arc::new(Flight::with_max_followers(config.max_waiters_per_key)),
                uncacheable,
                loads: TaskTracker::new(),
                invalidations: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// The loader.
    pub fn loader(&self) -> &L {
        &self.inner.loader
    }

    /// The L1 store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Loads under way (a saturation gauge).
    pub fn in_flight(&self) -> usize {
        self.inner.flight.in_flight()
    }

    /// Callers waiting on another caller's load (a saturation gauge).
    pub fn waiting(&self) -> usize {
        self.inner.flight.waiting()
    }

    /// The value for `key` as `request` needs it: from L1, from a load another caller started,
    /// or from a load this call starts. The same as [`lookup`](Self::lookup), then
    /// [`load`](Self::load) when L1 could not answer.
    ///
    /// # Concurrent calls on the same key
    /// At most one load per key runs at a time (plus the loads of followers that could not use
    /// it). If this call's future is dropped, a load it started carries on for the others.
    pub async fn get(&self, key: &L::Key, request: &L::Request) -> LoadOutcome<L> {
        match self.lookup(key, request) {
            Lookup::Served(answer) => answer,
            Lookup::Load(miss) => self.load(key, request, miss).await,
        }
    }

    /// What L1 alone says for `key` and `request`, without waiting: an answer (fresh, or stale
    /// while exactly one background refresh starts), or what a load needs to know.
    ///
    /// A hit is answered synchronously, so a caller can answer it without a future of its own
    /// and keep the waiting for [`load`](Self::load).
    pub fn lookup(&self, key: &L::Key, request: &L::Request) -> Lookup<L::Value, LoadOutcome<L>> {
        let Some(value) = self.inner.store.get(key) else {
            return Lookup::Load(Miss {
                current: None,
                found: None,
            });
        };
        match self.inner.loader.judge(&value, request) {
            Judgement::Fresh => Lookup::Served(Outcome::of(Served::Hit(value))),
            Judgement::ServeAndRefresh => {
                self.refresh_in_background(key, request, value.clone());
                Lookup::Served(Outcome::of(Served::StaleWhileRefresh(value)))
            }
            Judgement::Load(cause) => Lookup::Load(Miss {
                current: Some(value),
                found: Some(cause),
            }),
        }
    }

    /// Loads `key` after [`lookup`](Self::lookup) found that L1 could not answer: joins the
    /// load under way or leads a new one (or, for a key marked hit-for-miss, loads on its own).
    ///
    /// # Concurrent calls on the same key
    /// As for [`get`](Self::get).
    pub async fn load(
        &self,
        key: &L::Key,
        request: &L::Request,
        miss: Miss<L::Value>,
    ) -> LoadOutcome<L> {
        let Miss { current, found } = miss;
        // Boxed: the loads' state is large, and keeping it out of this future keeps the
        // callers' futures small.
        let bypassed = self.inner.uncacheable.contains_key(key);
        let mut outcome = if bypassed {
            Box::pin(self.load_alone(key, request, current)).await
        } else {
            Box::pin(self.load_coalesced(key, request, current)).await
        };
        outcome.found = found;
        outcome.bypassed = bypassed;
        outcome
    }

    /// Whether `key` is marked hit-for-miss: its last load was not shareable, so its next loads
    /// run on their own and what they get is not expected to be stored.
    pub fn is_hit_for_miss(&self, key: &L::Key) -> bool {
        self.inner.uncacheable.contains_key(key)
    }

    /// The stored value for `key` and its judgement for `request`, without loading anything
    /// (for `only-if-cached`).
    pub fn peek(&self, key: &L::Key, request: &L::Request) -> Option<(L::Value, Judgement)> {
        let value = self.inner.store.get(key)?;
        let judgement = self.inner.loader.judge(&value, request);
        Some((value, judgement))
    }

    /// Loads `key` from the source on this caller's behalf, outside the flight and without
    /// storing the result (for requests that must not be stored or coalesced).
    pub async fn load_uncached(
        &self,
        key: &L::Key,
        request: &L::Request,
    ) -> Result<Source<L::Value, L::Private>, L::Error> {
        self.inner.loader.load_source(key, request, None).await
    }

    /// Removes `key` from L1, and its hit-for-miss mark; returns whether L1 held it. A load of
    /// `key` under way keeps nothing it loaded (it still answers the callers that asked before),
    /// and the next caller starts a new load rather than joining it.
    pub fn invalidate(&self, key: &L::Key) -> bool {
        // Loads marked before the store is emptied: see `keep`.
        self.inner.flight.invalidate(key);
        self.inner.invalidations.fetch_add(1, Ordering::SeqCst);
        self.inner.uncacheable.invalidate(key);
        self.inner.store.remove(key)
    }

    /// Removes from L1 every key that matches, and their hit-for-miss marks; returns how many L1
    /// held. The store is walked in slices, yielding between them (see
    /// [`Store::remove_matching`]).
    pub async fn invalidate_matching(&self, matches: impl Fn(&L::Key) -> bool + Send) -> usize {
        // Loads marked before the store is emptied: see `keep`.
        self.inner.flight.invalidate_matching(&matches);
        self.inner.invalidations.fetch_add(1, Ordering::SeqCst);
        let mut removed_keys = Vec::new();
        let collected = &mut removed_keys;
        let removed = self
            .inner
            .store
            .remove_matching(move |key| {
                let hit = matches(key);
                if hit {
                    collected.push(key.clone());
                }
                hit
            })
            .await;
        // Slices again: a purge can remove most of the store.
        for slice in removed_keys.chunks(WALK_SLICE) {
            for key in slice {
                self.inner.uncacheable.invalidate(key);
            }
            tokio::task::yield_now().await;
        }
        removed
    }

    /// Stops accepting new background loads and waits for those under way.
    pub async fn drain(&self) {
        self.inner.loads.close();
        self.inner.loads.wait().await;
    }

    async fn load_coalesced(
        &self,
        key: &L::Key,
        request: &L::Request,
        current: Option<L::Value>,
    ) -> LoadOutcome<L> {
        let arrived = self.inner.flight.mark();
        for _ in 0..MAX_ELECTIONS {
            match self.inner.flight.join(key) {
                Role::Leader(permit) => {
                    let (reply, outcome) = oneshot::channel();
                    self.spawn_load(permit, request.clone(), current.clone(), Some(reply));
                    match outcome.await {
                        Ok(outcome) => return outcome,
                        // The load task died without answering (it panicked); its permit marked
                        // the load dangling, so join again.
                        Err(_) => continue,
                    }
                }
                Role::Follower(follower) => {
                    let followed = self.follow(follower, arrived, key, request, &current);
                    if let Some(outcome) = followed.await {
                        return outcome;
                    }
                }
                Role::Full => {
                    // A full queue means the load is slow and in demand: what may stand in for a
                    // load slower than a waiter's bound (stale-if-error, max-stale, grace) serves
                    // rather than a refusal.
                    let stand_in = current
                        .filter(|value| self.inner.loader.usable_while_loading(value, request));
                    return Outcome {
                        waited: Some(Waited {
                            result: WaitResult::QueueFull,
                            leader: None,
                        }),
                        ..Outcome::of(stand_in.map_or(Served::Busy, Served::StaleWhileLoading))
                    };
                }
            }
        }
        self.load_alone(key, request, current).await
    }

    /// Waits on another caller's load. `None` means join again: the leader vanished, its answer
    /// was for its own caller only because of its own request, or this request asks for a load
    /// that starts after it `arrived` and the one it waited on had started before.
    async fn follow(
        &self,
        mut follower: Follower<L::Value, L::Error, Span>,
        arrived: LoadMark,
        key: &L::Key,
        request: &L::Request,
        current: &Option<L::Value>,
    ) -> Option<LoadOutcome<L>> {
        let config = &self.inner.config;
        let mut wait = follower.wait(config.coalesce_timeout).await;
        if matches!(wait, Wait::TimedOut) {
            // The load is slow. A stored value that may serve meanwhile does; otherwise this
            // caller keeps waiting for the same load rather than adding one of its own.
            if let Some(value) = current
                .as_ref()
                .filter(|value| self.inner.loader.usable_while_loading(value, request))
            {
                return Some(Outcome {
                    waited: Some(Waited {
                        result: WaitResult::Timeout,
                        leader: follower.context().cloned(),
                    }),
                    ..Outcome::of(Served::StaleWhileLoading(value.clone()))
                });
            }
            let rest = config.load_timeout.saturating_sub(config.coalesce_timeout);
            wait = follower.wait(rest).await;
        }
        // The span of the load waited on, for the caller to link to. The handle goes now: a
        // follower that loads on its own is no longer waiting.
        let leader = follower.context().cloned();
        let loaded_since_arrival = follower.started_since(arrived);
        drop(follower);
        let (mut outcome, result) = match wait {
            Wait::Dangling | Wait::Done(Published::ElectAgain) => return None,
            Wait::Done(Published::Shared(value)) => {
                match self.inner.loader.judge(&value, request) {
                    Judgement::Fresh => (Outcome::of(Served::Shared(value)), WaitResult::Shared),
                    // The request itself asks for a load (`no-cache`, `max-age=0`): one that
                    // started after it arrived answers it (RFC 9111 §4), so concurrent such
                    // requests share one origin exchange.
                    Judgement::Load(LoadCause::Requested) if loaded_since_arrival => {
                        (Outcome::of(Served::Shared(value)), WaitResult::Shared)
                    }
                    // One that started before it does not: the callers in this position join
                    // again and elect a new leader, so that one more load answers them all.
                    Judgement::Load(LoadCause::Requested) => return None,
                    // The value does not fit this request (another variant, or not fresh enough
                    // for it): build on it with an own load.
                    _ => (
                        self.load_alone(key, request, Some(value)).await,
                        WaitResult::RefetchUncacheable,
                    ),
                }
            }
            Wait::Done(Published::Failed(error)) => (
                self.fall_back(current.clone(), request, error),
                WaitResult::LeaderError,
            ),
            Wait::Done(Published::NotShareable) => (
                self.load_alone(key, request, current.clone()).await,
                WaitResult::RefetchUncacheable,
            ),
            Wait::TimedOut => (Outcome::of(Served::TimedOut), WaitResult::Timeout),
        };
        outcome.waited = Some(Waited { result, leader });
        Some(outcome)
    }

    /// Loads on this caller's own behalf, outside the flight, storing a shareable result.
    async fn load_alone(
        &self,
        key: &L::Key,
        request: &L::Request,
        current: Option<L::Value>,
    ) -> LoadOutcome<L> {
        let invalidations = self.inner.invalidations.load(Ordering::SeqCst);
        // Outside the flight nothing marks this load: any invalidation since it began may have
        // been of its key.
        let invalidated = || self.inner.invalidations.load(Ordering::SeqCst) != invalidations;
        match self
            .inner
            .loader
            .load_source(key, request, current.clone())
            .await
        {
            Ok(Source::Fetched(value)) => {
                self.inner.uncacheable.invalidate(key);
                let kept = self.keep(key.clone(), &value, invalidated);
                Outcome::loaded(Served::Fetched(value), kept)
            }
            Ok(Source::Revalidated(value)) => {
                let kept = self.keep(key.clone(), &value, invalidated);
                Outcome::loaded(Served::Revalidated(value), kept)
            }
            Ok(Source::Private {
                answer: private, ..
            }) => Outcome::of(Served::Private(private)),
            Err(error) => self.fall_back(current, request, Arc::new(error)),
        }
    }

    /// Stores what a load produced, unless `key` was invalidated while it ran: then the value
    /// predates the invalidation and is not kept (it still answers the callers that asked
    /// before it).
    ///
    /// Inserted first and checked after, while an invalidation marks the loads before it
    /// empties the store: in whichever order the two interleave, either the invalidation removes
    /// the value or the load sees the mark and removes it itself.
    fn keep(&self, key: L::Key, value: &L::Value, invalidated: impl Fn() -> bool) -> bool {
        self.inner.store.insert(key.clone(), value.clone());
        if invalidated() {
            self.inner.store.remove(&key);
            return false;
        }
        true
    }

    /// A failed load: the stored value if it may stand in, else the error.
    fn fall_back(
        &self,
        current: Option<L::Value>,
        request: &L::Request,
        error: Arc<L::Error>,
    ) -> LoadOutcome<L> {
        match current {
            Some(value) if self.inner.loader.usable_on_error(&value, request, &error) => {
                Outcome::of(Served::StandIn(value, error))
            }
            _ => Outcome::of(Served::Failed(error)),
        }
    }

    /// Starts the one background refresh for `key`, unless a load is already under way.
    fn refresh_in_background(&self, key: &L::Key, request: &L::Request, current: L::Value) {
        if let Role::Leader(permit) = self.inner.flight.join(key) {
            let request = self.inner.loader.background_request(request);
            self.spawn_load(permit, request, Some(current), None);
        }
        // A follower role means a load is already under way: it will refresh the entry.
    }

    /// Runs the leader's load in a task of its own; the initiating caller (if any) is told the
    /// result on `reply`.
    fn spawn_load(
        &self,
        permit: Leader<L::Key, L::Value, L::Error, Span>,
        request: L::Request,
        current: Option<L::Value>,
        reply: Option<oneshot::Sender<LoadOutcome<L>>>,
    ) {
        // A child of the caller's span (none when the caller is not traced); set before the
        // load starts, so every follower finds it.
        let span = if spans::in_span() {
            tracing::debug_span!("cache load")
        } else {
            Span::none()
        };
        permit.set_context(span.clone());
        // Worth finishing for the cache alone: a background refresh, or a load that refreshes
        // what the store holds. Any other load is abandoned when its caller goes away, unless
        // another caller joined it (the module docs).
        let abandonment = (reply.is_some() && current.is_none()).then(|| permit.abandonment());
        let cache = self.clone();
        let load = async move {
            let lead = cache.lead(permit, &request, current);
            let Some(mut reply) = reply else {
                lead.await;
                return;
            };
            let mut lead = std::pin::pin!(lead);
            let answer = match abandonment {
                None => lead.await,
                Some(abandonment) => {
                    let finished = tokio::select! {
                        answer = &mut lead => Some(answer),
                        () = reply.closed() => None,
                    };
                    match finished {
                        Some(answer) => answer,
                        // Dropping the load drops its source request.
                        None if abandonment.try_abandon() => return,
                        None => lead.await,
                    }
                }
            };
            // The initiating caller may have gone away; the load has done its job for the
            // store and the followers either way.
            let _ = reply.send(answer);
        };
        // Boxed on purpose. tokio allocates a task (its header and its future together) aligned
        // to 128 bytes on x86_64, and glibc serves an aligned request of n bytes only from a
        // free block of at least n + alignment: the cell a finished load frees (~2.4 KiB with
        // the future inline) is too small for the next load's, so cells freed between
        // long-lived entries stayed as holes (~130 B per stored entry at 1M entries, measured
        // with malloc_info). Boxed, the future is an ordinary allocation that the next load
        // reuses, and the aligned cell is small.
        self.inner.loads.spawn(Box::pin(load.instrument(span)));
    }

    /// The leader's load: L1 once more, then the source; store, then wake the followers.
    async fn lead(
        &self,
        permit: Leader<L::Key, L::Value, L::Error, Span>,
        request: &L::Request,
        current: Option<L::Value>,
    ) -> LoadOutcome<L> {
        let key = permit.key().clone();
        let inner = &self.inner;
        // Another load of this key may have finished between the caller's L1 lookup and its
        // election: its value is in L1 now, and loading again would be a second origin request
        // for the same key (rule 1). So L1 is asked once more, under the permit.
        if let Some(value) = inner.store.get(&key) {
            if inner.loader.judge(&value, request) == Judgement::Fresh {
                permit.publish(Published::Shared(value.clone()));
                return Outcome::of(Served::Hit(value));
            }
        }
        match inner
            .loader
            .load_source(&key, request, current.clone())
            .await
        {
            Ok(Source::Fetched(value)) => {
                let kept = self.keep(key, &value, || permit.is_invalidated());
                permit.publish(Published::Shared(value.clone()));
                Outcome::loaded(Served::Fetched(value), kept)
            }
            Ok(Source::Revalidated(value)) => {
                let kept = self.keep(key, &value, || permit.is_invalidated());
                permit.publish(Published::Shared(value.clone()));
                Outcome::loaded(Served::Revalidated(value), kept)
            }
            Ok(Source::Private {
                answer: private,
                hit_for_miss,
            }) => {
                if hit_for_miss {
                    // The source no longer lets this key be shared: what L1 held is superseded.
                    inner.uncacheable.insert(key.clone(), ());
                    inner.store.remove(&key);
                    permit.publish(Published::NotShareable);
                } else {
                    // Private because of this caller's own request: what L1 holds still serves
                    // the others, and they may share a load of their own.
                    permit.publish(Published::ElectAgain);
                }
                Outcome::of(Served::Private(private))
            }
            Err(error) => {
                let error = Arc::new(error);
                permit.publish(Published::Failed(Arc::clone(&error)));
                self.fall_back(current, request, error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
