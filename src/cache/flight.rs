//! Single-flight: at most one load per key at a time, with the waiters woken when it completes.
//!
//! [`Flight::join`] makes the caller either the [`Leader`] of a new load or a [`Follower`] of the
//! one already under way. The roles are types:
//!
//! - the leader holds a [`Leader`] permit and must [`publish`](Leader::publish) an [`Published`];
//!   a permit dropped without publishing (its task panicked or was cancelled) tells every follower
//!   the load is [`Dangling`](Wait::Dangling), so they elect a new leader instead of hanging;
//! - a follower holds a [`Follower`] handle and [`wait`](Follower::wait)s on a watch channel: it is
//!   woken the moment the outcome is published (no polling), and it waits no longer than the bound
//!   it is given;
//! - a leader whose caller has gone may [abandon](Abandonment::try_abandon) its load, but only
//!   while no follower has ever joined it: a load that several callers asked for is worth
//!   finishing;
//! - a load has at most as many followers as the flight allows
//!   ([`with_max_followers`](Flight::with_max_followers)); a caller beyond them is told the load
//!   is [`Full`](Role::Full) and is not queued.
//!
//! A load may also carry a *context* of the caller's choosing (type parameter `C`, `()` by
//! default): the leader [sets](Leader::set_context) it once, and every follower can read it
//! ([`Follower::context`]), e.g. to tell which load it waited on.
//!
//! This module knows nothing about HTTP or about where values are stored; [`super::loading`]
//! builds the read-through cache on it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

/// What a finished load tells the followers.
#[derive(Debug)]
pub enum Published<V, E> {
    /// A value every follower may use (each still judges it against its own request).
    Shared(V),
    /// The leader's answer was meant for the leader's caller only; each follower loads on its own.
    NotShareable,
    /// The leader's answer was meant for the leader's caller only because of what the leader's
    /// request carried (its credentials): it says nothing about the followers' requests, so they
    /// elect a new leader among themselves.
    ElectAgain,
    /// The load failed; the error is shared, never stored.
    Failed(Arc<E>),
}

impl<V: Clone, E> Clone for Published<V, E> {
    fn clone(&self) -> Self {
        match self {
            Self::Shared(value) => Self::Shared(value.clone()),
            Self::NotShareable => Self::NotShareable,
            Self::ElectAgain => Self::ElectAgain,
            Self::Failed(error) => Self::Failed(Arc::clone(error)),
        }
    }
}

/// How a follower's wait ended.
#[derive(Debug)]
pub enum Wait<V, E> {
    /// The leader published an outcome.
    Done(Published<V, E>),
    /// The leader went away without publishing; join again to elect a new one.
    Dangling,
    /// The wait bound passed first; the follower should load on its own.
    TimedOut,
}

/// The state of one load as followers see it.
#[derive(Debug)]
enum State<V, E> {
    Loading,
    Finished(Published<V, E>),
    Dangling,
}

/// One load under way: its identity, the channel its followers wait on, and its context.
struct Call<V, E, C> {
    /// Distinguishes this load from a later one for the same key, so a finishing leader never
    /// removes its successor's entry.
    id: u64,
    state: watch::Sender<State<V, E>>,
    /// Set once by the leader, read by the followers.
    context: OnceLock<C>,
    /// Whether a follower ever joined; set under the table's lock, so that a leader abandoning
    /// its load under that lock cannot miss a follower joining at the same moment.
    followed: AtomicBool,
    /// Whether the key was invalidated while this load ran: what it loaded predates the
    /// invalidation, so it may answer the callers that asked before it but must not be kept.
    invalidated: AtomicBool,
}

/// The loads under way, by key.
type Calls<K, V, E, C> = HashMap<K, Arc<Call<V, E, C>>>;

/// Coordinates loads so that only one per key runs at a time.
///
/// Cheap to share: wrap it in an `Arc` (the permits keep a reference to it).
pub struct Flight<K, V, E, C = ()> {
    /// Loads under way. A std mutex: it is held only to look up, insert or remove, never across
    /// an `.await`.
    calls: Mutex<Calls<K, V, E, C>>,
    next_id: AtomicU64,
    /// Most followers one load takes, so one hot key cannot queue callers without bound.
    max_followers: usize,
}

/// The caller's role for one key, as decided by [`Flight::join`].
pub enum Role<K: Hash + Eq + Clone, V, E, C = ()> {
    /// No load was under way: this caller now owns one.
    Leader(Leader<K, V, E, C>),
    /// A load is under way: wait for it.
    Follower(Follower<V, E, C>),
    /// A load is under way and already has as many followers as it takes: this caller is not
    /// queued.
    Full,
}

/// The permit to run the one load for a key. Publish exactly once; dropping it unpublished marks
/// the load dangling.
pub struct Leader<K: Hash + Eq + Clone, V, E, C = ()> {
    flight: Arc<Flight<K, V, E, C>>,
    key: K,
    call: Arc<Call<V, E, C>>,
    published: bool,
}

/// The right to end a leader's load before it publishes, held beside the load (which owns the
/// [`Leader`] permit itself).
pub struct Abandonment<K: Hash + Eq + Clone, V, E, C = ()> {
    flight: Arc<Flight<K, V, E, C>>,
    key: K,
    call: Arc<Call<V, E, C>>,
}

/// A handle to wait for another caller's load.
pub struct Follower<V, E, C = ()> {
    call: Arc<Call<V, E, C>>,
    state: watch::Receiver<State<V, E>>,
}

/// A point in the sequence of loads ([`Flight::mark`]): a follower can tell whether the load it
/// waits on started after it ([`Follower::started_since`]).
#[derive(Debug, Clone, Copy)]
pub struct LoadMark(u64);

// === impl Flight ===

impl<K, V, E, C> Flight<K, V, E, C>
where
    K: Hash + Eq + Clone,
{
    /// An empty flight table whose loads take any number of followers.
    pub fn new() -> Self {
        Self::with_max_followers(usize::MAX)
    }

    /// An empty flight table whose loads take at most `max_followers` followers each.
    pub fn with_max_followers(max_followers: usize) -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            max_followers,
        }
    }

    /// Becomes the leader of a new load for `key`, or a follower of the load already under way.
    ///
    /// # Concurrent calls on the same key
    /// Exactly one caller becomes the leader; the others that arrive before it publishes become
    /// its followers, up to the flight's bound, and the rest are told it is [`Full`](Role::Full).
    /// After it publishes (or is dropped), the next caller leads a new load.
    pub fn join(self: &Arc<Self>, key: &K) -> Role<K, V, E, C> {
        let mut calls = self.lock_calls();
        if let Some(call) = calls.get(key) {
            // Counted under the table's lock, so concurrent joins cannot overshoot the bound.
            if call.state.receiver_count() >= self.max_followers {
                return Role::Full;
            }
            call.followed.store(true, Ordering::Relaxed);
            return Role::Follower(Follower {
                call: Arc::clone(call),
                state: call.state.subscribe(),
            });
        }
        let (state, _) = watch::channel(State::Loading);
        let call = Arc::new(Call {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            state,
            context: OnceLock::new(),
            followed: AtomicBool::new(false),
            invalidated: AtomicBool::new(false),
        });
        calls.insert(key.clone(), Arc::clone(&call));
        Role::Leader(Leader {
            flight: Arc::clone(self),
            key: key.clone(),
            call,
            published: false,
        })
    }

    /// Marks the load under way for `key`, if any, as invalidated ([`Leader::is_invalidated`])
    /// and frees the key: a caller arriving from now on leads a new load instead of joining one
    /// that began before the invalidation. The old load's followers still get its outcome.
    pub fn invalidate(&self, key: &K) {
        if let Some(call) = self.lock_calls().remove(key) {
            call.invalidated.store(true, Ordering::SeqCst);
        }
    }

    /// [`invalidate`](Self::invalidate)s every load under way whose key matches.
    pub fn invalidate_matching(&self, mut matches: impl FnMut(&K) -> bool) {
        self.lock_calls().retain(|key, call| {
            let invalidated = matches(key);
            if invalidated {
                call.invalidated.store(true, Ordering::SeqCst);
            }
            !invalidated
        });
    }

    /// Marks this moment: every load that starts from now on [`started_since`] the mark.
    ///
    /// [`started_since`]: Follower::started_since
    pub fn mark(&self) -> LoadMark {
        LoadMark(self.next_id.load(Ordering::SeqCst))
    }

    /// How many loads are under way (a saturation gauge).
    pub fn in_flight(&self) -> usize {
        self.lock_calls().len()
    }

    /// How many followers are waiting on the loads under way (a saturation gauge).
    pub fn waiting(&self) -> usize {
        self.lock_calls()
            .values()
            .map(|call| call.state.receiver_count())
            .sum()
    }

    fn lock_calls(&self) -> MutexGuard<'_, Calls<K, V, E, C>> {
        // A panic while the lock is held can only come from the HashMap itself; the map is still
        // consistent then, so carry on with it rather than poisoning every later request.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes `call` from the table if it is still the current load for `key`.
    fn finish(&self, key: &K, call: &Arc<Call<V, E, C>>) {
        let mut calls = self.lock_calls();
        if calls.get(key).is_some_and(|current| current.id == call.id) {
            calls.remove(key);
        }
    }
}

impl<K: Hash + Eq + Clone, V, E, C> Default for Flight<K, V, E, C> {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Leader ===

impl<K: Hash + Eq + Clone, V, E, C> Leader<K, V, E, C> {
    /// The key this permit loads.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The right to abandon this load later (see [`Abandonment::try_abandon`]).
    pub fn abandonment(&self) -> Abandonment<K, V, E, C> {
        Abandonment {
            flight: Arc::clone(&self.flight),
            key: self.key.clone(),
            call: Arc::clone(&self.call),
        }
    }

    /// Whether the key was invalidated since this load began ([`Flight::invalidate`]): then
    /// what it loaded must not be kept.
    pub fn is_invalidated(&self) -> bool {
        self.call.invalidated.load(Ordering::SeqCst)
    }

    /// Gives the load its context, for every follower to read. Only the first call counts.
    pub fn set_context(&self, context: C) {
        let first = self.call.context.set(context).is_ok();
        debug_assert!(first, "a load's context is set once");
    }

    /// Ends the load: the key becomes free for a new load, then every follower is woken with
    /// `outcome`.
    ///
    /// Publish only after the value is in the store, so that a request arriving between the two
    /// finds it there instead of starting a second load.
    pub fn publish(mut self, outcome: Published<V, E>) {
        self.published = true;
        self.flight.finish(&self.key, &self.call);
        self.call.state.send_replace(State::Finished(outcome));
    }
}

impl<K: Hash + Eq + Clone, V, E, C> Drop for Leader<K, V, E, C> {
    fn drop(&mut self) {
        if !self.published {
            self.flight.finish(&self.key, &self.call);
            self.call.state.send_replace(State::Dangling);
        }
    }
}

// === impl Abandonment ===

impl<K: Hash + Eq + Clone, V, E, C> Abandonment<K, V, E, C> {
    /// Ends the load if no follower ever joined it: the key is free for a new load from now on,
    /// and the caller may drop the load (its permit then changes nothing). Returns `false`, and
    /// changes nothing, when a follower joined: the load is then worth finishing.
    ///
    /// # Concurrent calls on the same key
    /// Decided under the table's lock: a caller joining at the same moment either joined before
    /// (and the load goes on) or finds the key free and leads a new load.
    pub fn try_abandon(&self) -> bool {
        let mut calls = self.flight.lock_calls();
        if self.call.followed.load(Ordering::Relaxed) {
            return false;
        }
        if calls
            .get(&self.key)
            .is_some_and(|current| current.id == self.call.id)
        {
            calls.remove(&self.key);
        }
        true
    }
}

// === impl Follower ===

impl<V: Clone, E, C> Follower<V, E, C> {
    /// Whether the load this follower waits on started after `mark` was taken.
    pub fn started_since(&self, mark: LoadMark) -> bool {
        self.call.id >= mark.0
    }

    /// The context the leader gave the load, if it has given one yet (a leader that sets one
    /// before it starts loading has always set it by the time a wait ends).
    pub fn context(&self) -> Option<&C> {
        self.call.context.get()
    }

    /// Waits for the leader's outcome, at most `bound`.
    ///
    /// The follower is woken by the leader's publish (or its drop); it never polls.
    pub async fn wait(&mut self, bound: Duration) -> Wait<V, E> {
        let finished = self
            .state
            .wait_for(|state| !matches!(state, State::Loading));
        match tokio::time::timeout(bound, finished).await {
            Err(_elapsed) => Wait::TimedOut,
            // The sender lives in the `Call` the leader holds, and the leader marks the call
            // dangling before dropping it; a closed channel therefore means the same thing.
            Ok(Err(_closed)) => Wait::Dangling,
            Ok(Ok(state)) => match &*state {
                State::Finished(outcome) => Wait::Done(outcome.clone()),
                State::Dangling | State::Loading => Wait::Dangling,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestFlight = Flight<&'static str, u32, &'static str>;

    fn leader(
        flight: &Arc<TestFlight>,
        key: &'static str,
    ) -> Leader<&'static str, u32, &'static str> {
        match flight.join(&key) {
            Role::Leader(leader) => leader,
            Role::Follower(_) | Role::Full => panic!("expected to lead {key}"),
        }
    }

    fn follower(flight: &Arc<TestFlight>, key: &'static str) -> Follower<u32, &'static str> {
        match flight.join(&key) {
            Role::Follower(follower) => follower,
            Role::Leader(_) | Role::Full => panic!("expected to follow {key}"),
        }
    }

    #[tokio::test]
    async fn followers_receive_the_published_value() {
        let flight = Arc::new(TestFlight::new());
        let permit = leader(&flight, "k");
        let waiters: Vec<_> = (0..10).map(|_| follower(&flight, "k")).collect();
        assert_eq!((flight.in_flight(), flight.waiting()), (1, 10));

        let handles: Vec<_> = waiters
            .into_iter()
            .map(|mut f| tokio::spawn(async move { f.wait(Duration::from_secs(60)).await }))
            .collect();
        permit.publish(Published::Shared(7));
        for handle in handles {
            let wait = handle.await.expect("waiter task");
            assert!(matches!(wait, Wait::Done(Published::Shared(7))), "{wait:?}");
        }
        assert_eq!((flight.in_flight(), flight.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn different_keys_load_independently() {
        let flight = Arc::new(TestFlight::new());
        let _a = leader(&flight, "a");
        let _b = leader(&flight, "b");
        assert_eq!(flight.in_flight(), 2);
    }

    #[tokio::test]
    async fn an_invalidated_load_is_marked_and_its_key_freed_while_its_followers_still_wait() {
        let flight = Arc::new(TestFlight::new());
        let old = leader(&flight, "k");
        let mut waiter = follower(&flight, "k");
        let other = leader(&flight, "other");
        let kept = leader(&flight, "kept");
        flight.invalidate(&"k");
        flight.invalidate_matching(|key| key.starts_with('o'));
        assert!(old.is_invalidated() && other.is_invalidated());
        assert!(!kept.is_invalidated());
        // A caller from after the invalidation leads a load of its own.
        let new = leader(&flight, "k");
        assert!(!new.is_invalidated());
        // The old leader's end leaves the new load's entry alone and still reaches its follower.
        old.publish(Published::Shared(1));
        let wait = waiter.wait(Duration::from_secs(60)).await;
        assert!(matches!(wait, Wait::Done(Published::Shared(1))), "{wait:?}");
        assert!(matches!(flight.join(&"k"), Role::Follower(_)));
        drop((new, other, kept));
    }

    #[tokio::test]
    async fn after_publish_the_next_caller_leads_a_new_load() {
        let flight = Arc::new(TestFlight::new());
        leader(&flight, "k").publish(Published::NotShareable);
        let _next = leader(&flight, "k");
    }

    #[tokio::test]
    async fn a_dropped_leader_wakes_followers_as_dangling_and_one_new_leader_is_elected() {
        let flight = Arc::new(TestFlight::new());
        let permit = leader(&flight, "k");
        let waiters: Vec<_> = (0..5).map(|_| follower(&flight, "k")).collect();
        drop(permit);
        for mut waiter in waiters {
            assert!(matches!(
                waiter.wait(Duration::from_secs(60)).await,
                Wait::Dangling
            ));
        }
        // The woken followers re-join: the first leads, the rest follow it.
        let roles: Vec<_> = (0..5).map(|_| flight.join(&"k")).collect();
        let leaders = roles
            .iter()
            .filter(|role| matches!(role, Role::Leader(_)))
            .count();
        assert_eq!(leaders, 1);
    }

    #[tokio::test]
    async fn errors_reach_every_follower_and_are_not_kept() {
        let flight = Arc::new(TestFlight::new());
        let permit = leader(&flight, "k");
        let mut waiter = follower(&flight, "k");
        permit.publish(Published::Failed(Arc::new("origin down")));
        match waiter.wait(Duration::from_secs(60)).await {
            Wait::Done(Published::Failed(error)) => assert_eq!(*error, "origin down"),
            other => panic!("unexpected {other:?}"),
        }
        let _fresh_load = leader(&flight, "k");
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_waits_no_longer_than_its_bound() {
        let flight = Arc::new(TestFlight::new());
        let _permit = leader(&flight, "k");
        let mut waiter = follower(&flight, "k");
        let started = tokio::time::Instant::now();
        assert!(matches!(
            waiter.wait(Duration::from_millis(250)).await,
            Wait::TimedOut
        ));
        assert_eq!(started.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test]
    async fn followers_read_the_context_the_leader_set() {
        let flight = Arc::new(Flight::<&'static str, u32, &'static str, u64>::new());
        let Role::Leader(permit) = flight.join(&"k") else {
            panic!("expected to lead");
        };
        let Role::Follower(mut early) = flight.join(&"k") else {
            panic!("expected to follow");
        };
        assert_eq!(early.context(), None, "not set yet");
        permit.set_context(42);
        let Role::Follower(late) = flight.join(&"k") else {
            panic!("expected to follow");
        };
        assert_eq!(late.context(), Some(&42));
        permit.publish(Published::Shared(1));
        assert!(matches!(
            early.wait(Duration::from_secs(60)).await,
            Wait::Done(Published::Shared(1))
        ));
        assert_eq!(early.context(), Some(&42));
    }

    #[tokio::test]
    async fn a_load_takes_no_more_followers_than_its_bound() {
        let flight = Arc::new(TestFlight::with_max_followers(2));
        let permit = leader(&flight, "k");
        let mut first = follower(&flight, "k");
        let second = follower(&flight, "k");
        assert!(matches!(flight.join(&"k"), Role::Full));
        assert_eq!(flight.waiting(), 2, "the refused caller is not queued");
        // Another key has its own bound.
        let _other = leader(&flight, "other");
        let _other_follower = follower(&flight, "other");
        // A follower that goes away frees its place.
        drop(second);
        let _third = follower(&flight, "k");
        assert!(matches!(flight.join(&"k"), Role::Full));
        permit.publish(Published::Shared(1));
        assert!(matches!(
            first.wait(Duration::from_secs(60)).await,
            Wait::Done(Published::Shared(1))
        ));
        // The next load starts with an empty queue.
        let _next = leader(&flight, "k");
        let _ = follower(&flight, "k");
    }

    #[tokio::test]
    async fn a_load_nobody_joined_can_be_abandoned_and_the_key_is_free_again() {
        let flight = Arc::new(TestFlight::new());
        let permit = leader(&flight, "k");
        let abandonment = permit.abandonment();
        assert!(abandonment.try_abandon());
        assert_eq!(flight.in_flight(), 0);
        let next = leader(&flight, "k");
        // The abandoned permit, dropped late, leaves its successor alone.
        drop(permit);
        assert_eq!(flight.in_flight(), 1);
        drop(next);
    }

    #[tokio::test]
    async fn a_load_a_follower_joined_is_not_abandoned_even_after_the_follower_left() {
        let flight = Arc::new(TestFlight::new());
        let permit = leader(&flight, "k");
        drop(follower(&flight, "k"));
        assert!(!permit.abandonment().try_abandon());
        assert_eq!(flight.in_flight(), 1);
        let mut late = follower(&flight, "k");
        permit.publish(Published::Shared(3));
        assert!(matches!(
            late.wait(Duration::from_secs(60)).await,
            Wait::Done(Published::Shared(3))
        ));
    }

    #[tokio::test]
    async fn a_stale_permit_does_not_remove_its_successor() {
        let flight = Arc::new(TestFlight::new());
        let first = leader(&flight, "k");
        // Simulate the table losing the first call (as after publish) and a successor starting.
        flight.finish(&"k", &first.call);
        let _second = leader(&flight, "k");
        drop(first);
        assert_eq!(
            flight.in_flight(),
            1,
            "the successor's load must stay registered"
        );
    }
}
