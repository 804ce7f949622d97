//! Tests of the read-through cache with a counting, gated loader.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::store::PlainStore;

use super::*;
use crate::cache::outcome::{Outcome, Served, WaitResult};

/// A value tagged with the variant it was loaded for.
#[derive(Debug, Clone, PartialEq)]
struct Val {
    load: usize,
    variant: &'static str,
    stale: bool,
}

impl Weighed for Val {
    fn weight_bytes(&self) -> u32 {
        100
    }
    fn retain_for(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Fetch,
    FetchStale,
    Private,
    Personal,
    Fail,
    Panic,
}

/// Counts its loads; each load waits for a permit on `gate` so tests decide when it finishes.
struct TestLoader {
    loads: AtomicUsize,
    /// Loads dropped before they finished.
    abandoned: Arc<AtomicUsize>,
    /// The requests the loads were made with.
    requests: Mutex<Vec<&'static str>>,
    gate: Arc<Semaphore>,
    behaviour: Mutex<Behaviour>,
    stale_ok_on_error: bool,
}

#[derive(Debug, PartialEq)]
struct Failure;

impl Loader for Arc<TestLoader> {
    type Key = &'static str;
    type Request = &'static str;
    type Value = Val;
    type Private = String;
    type Error = Failure;

    fn judge(&self, value: &Val, request: &&'static str) -> Judgement {
        if *request == "no-cache" {
            // Like a request's `no-cache`: nothing stored answers it without a load.
            Judgement::Load(LoadCause::Requested)
        } else if value.variant != *request {
            Judgement::Load(LoadCause::Unmatched)
        } else if value.stale {
            Judgement::ServeAndRefresh
        } else {
            Judgement::Fresh
        }
    }

    fn usable_on_error(&self, _value: &Val, _request: &&'static str, _error: &Failure) -> bool {
        self.stale_ok_on_error
    }

    fn usable_while_loading(&self, _value: &Val, _request: &&'static str) -> bool {
        self.stale_ok_on_error
    }

    fn background_request(&self, request: &&'static str) -> &'static str {
        match *request {
            "personal v" => "v",
            other => other,
        }
    }

    async fn load_source(
        &self,
        _key: &&'static str,
        request: &&'static str,
        _current: Option<Val>,
    ) -> Result<Source<Val, String>, Failure> {
        let load = self.loads.fetch_add(1, Ordering::SeqCst) + 1;
        self.requests.lock().expect("requests").push(request);
        let unfinished = Unfinished(Arc::clone(&self.abandoned));
        self.gate.acquire().await.expect("gate open").forget();
        std::mem::forget(unfinished);
        let behaviour = *self.behaviour.lock().expect("behaviour");
        match behaviour {
            Behaviour::Fetch => Ok(Source::Fetched(Val {
                load,
                variant: request,
                stale: false,
            })),
            Behaviour::FetchStale => Ok(Source::Fetched(Val {
                load,
                variant: request,
                stale: true,
            })),
            Behaviour::Private => Ok(Source::Private {
                answer: format!("private {load}"),
                hit_for_miss: true,
            }),
            Behaviour::Personal => Ok(Source::Private {
                answer: format!("personal {load}"),
                hit_for_miss: false,
            }),
            Behaviour::Fail => Err(Failure),
            Behaviour::Panic => {
                *self.behaviour.lock().expect("behaviour") = Behaviour::Fetch;
                panic!("loader bug")
            }
        }
    }
}

/// Counts a load as abandoned if it is dropped before its gate opens.
struct Unfinished(Arc<AtomicUsize>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Fixture {
    loader: Arc<TestLoader>,
    cache: LoadingCache<Arc<TestLoader>, PlainStore<&'static str, Val>>,
}

fn fixture(behaviour: Behaviour) -> Fixture {
    fixture_with(behaviour, false, Duration::from_secs(60))
}

fn fixture_with(
    behaviour: Behaviour,
    stale_ok_on_error: bool,
    coalesce_timeout: Duration,
) -> Fixture {
    let loader = Arc::new(TestLoader {
        loads: AtomicUsize::new(0),
        abandoned: Arc::new(AtomicUsize::new(0)),
        requests: Mutex::new(Vec::new()),
        gate: Arc::new(Semaphore::new(0)),
        behaviour: Mutex::new(behaviour),
        stale_ok_on_error,
    });
    let cache = LoadingCache::new(
        Arc::clone(&loader),
        PlainStore::new(),
        LoadingSettings {
            coalesce_timeout,
            load_timeout: Duration::from_secs(600),
            hit_for_miss_ttl: Duration::from_secs(60),
            hit_for_miss_capacity_bytes: 1 << 20,
            max_waiters_per_key: usize::MAX,
        },
    );
    Fixture { loader, cache }
}

impl Fixture {
    fn loads(&self) -> usize {
        self.loader.loads.load(Ordering::SeqCst)
    }

    fn release(&self, loads: usize) {
        self.loader.gate.add_permits(loads);
    }

    fn set(&self, behaviour: Behaviour) {
        *self.loader.behaviour.lock().expect("behaviour") = behaviour;
    }

    /// Starts `n` concurrent lookups and lets each run until it blocks.
    async fn start(
        &self,
        n: usize,
        request: &'static str,
    ) -> Vec<tokio::task::JoinHandle<Outcome<Val, String, Failure>>> {
        let handles = (0..n)
            .map(|_| {
                let cache = self.cache.clone();
                tokio::spawn(async move { cache.get(&"k", &request).await })
            })
            .collect();
        settle().await;
        handles
    }
}

/// On the current-thread runtime, lets every ready task run until it blocks.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn finish(
    handles: Vec<tokio::task::JoinHandle<Outcome<Val, String, Failure>>>,
) -> Vec<Outcome<Val, String, Failure>> {
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.expect("caller task"));
    }
    answers
}

/// The path an outcome took, as these tests name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Hit,
    StaleWhileRefresh,
    StaleWhileLoading,
    Miss,
    Revalidated,
    Coalesced,
    Pass,
    StaleOnError,
    Error,
    Busy,
}

fn route(outcome: &Outcome<Val, String, Failure>) -> Route {
    match outcome.served {
        Served::Hit(_) => Route::Hit,
        Served::StaleWhileRefresh(_) => Route::StaleWhileRefresh,
        Served::StaleWhileLoading(_) => Route::StaleWhileLoading,
        Served::Fetched(_) | Served::Private(_) if outcome.bypassed => Route::Pass,
        Served::Fetched(_) | Served::Private(_) => Route::Miss,
        Served::Revalidated(_) => Route::Revalidated,
        Served::Shared(_) => Route::Coalesced,
        Served::StandIn(..) => Route::StaleOnError,
        Served::Failed(_) | Served::TimedOut => Route::Error,
        Served::Busy => Route::Busy,
    }
}

fn value(outcome: &Outcome<Val, String, Failure>) -> &Val {
    match &outcome.served {
        Served::Hit(value)
        | Served::StaleWhileRefresh(value)
        | Served::StaleWhileLoading(value)
        | Served::Fetched(value)
        | Served::Revalidated(value)
        | Served::Shared(value) => value,
        other => panic!("expected a value, got {other:?}"),
    }
}

#[tokio::test]
async fn a_caller_elected_after_a_load_finished_takes_its_value_instead_of_loading_again() {
    let f = fixture(Behaviour::Fetch);
    let first = f.start(1, "v").await;
    f.release(1);
    let stored = value(&finish(first).await[0]).clone();
    // As a caller whose L1 lookup missed just before that load stored its value, and who
    // joined the flight just after the load left it. (A second load, were one started, could
    // run: it would be counted, not hang.)
    f.release(1);
    let late = f.cache.load_coalesced(&"k", &"v", None).await;
    assert_eq!(f.loads(), 1, "no second load");
    assert_eq!(route(&late), Route::Hit);
    assert_eq!(value(&late), &stored);
}

#[tokio::test]
async fn concurrent_misses_share_one_load() {
    let f = fixture(Behaviour::Fetch);
    let handles = f.start(50, "v").await;
    assert_eq!(f.loads(), 1);
    assert_eq!(f.cache.in_flight(), 1);
    f.release(1);
    let answers = finish(handles).await;
    assert_eq!(f.loads(), 1);
    let leaders = answers.iter().filter(|a| route(a) == Route::Miss).count();
    let coalesced = answers
        .iter()
        .filter(|a| route(a) == Route::Coalesced && a.wait_result() == Some(WaitResult::Shared))
        .count();
    assert_eq!((leaders, coalesced), (1, 49));
    assert!(answers.iter().all(|a| value(a).load == 1));

    let hit = f.cache.get(&"k", &"v").await;
    assert_eq!(route(&hit), Route::Hit);
    assert_eq!(f.loads(), 1);
}

#[tokio::test]
async fn a_leader_that_goes_away_does_not_stop_the_load() {
    let f = fixture(Behaviour::Fetch);
    let mut handles = f.start(3, "v").await;
    // The first caller led the load: abort it while the load is still gated.
    handles.remove(0).abort();
    settle().await;
    f.release(1);
    let answers = finish(handles).await;
    assert_eq!(f.loads(), 1);
    assert!(answers.iter().all(|a| route(a) == Route::Coalesced));
    f.cache.drain().await;
    assert_eq!(
        route(&f.cache.get(&"k", &"v").await),
        Route::Hit,
        "the load was stored"
    );
}

#[tokio::test]
async fn a_private_answer_goes_to_its_caller_only_and_followers_load_in_parallel() {
    let f = fixture(Behaviour::Private);
    let handles = f.start(5, "v").await;
    assert_eq!(f.loads(), 1);
    f.release(1);
    settle().await;
    // The four followers now load on their own, all at once, not one after another.
    assert_eq!(f.loads(), 5);
    f.release(4);
    let answers = finish(handles).await;
    let mut privates: Vec<_> = answers
        .iter()
        .map(|a| match &a.served {
            Served::Private(p) => p.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    privates.sort();
    privates.dedup();
    assert_eq!(privates.len(), 5, "each caller got its own answer");
    let refetched = answers
        .iter()
        .filter(|a| a.wait_result() == Some(WaitResult::RefetchUncacheable))
        .count();
    assert_eq!(refetched, 4);

    // Hit-for-miss: the next callers do not queue behind one another.
    let handles = f.start(3, "v").await;
    assert_eq!(f.loads(), 8);
    f.release(3);
    let answers = finish(handles).await;
    assert!(
        answers
            .iter()
            .all(|a| route(a) == Route::Pass && a.wait_result().is_none())
    );
}

#[tokio::test]
async fn a_failed_load_reaches_every_waiter_once_and_is_not_kept() {
    let f = fixture(Behaviour::Fail);
    let handles = f.start(4, "v").await;
    f.release(1);
    let answers = finish(handles).await;
    assert_eq!(f.loads(), 1);
    assert!(answers.iter().all(|a| route(a) == Route::Error));
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.wait_result() == Some(WaitResult::LeaderError))
            .count(),
        3
    );

    f.set(Behaviour::Fetch);
    let handles = f.start(1, "v").await;
    f.release(1);
    let answers = finish(handles).await;
    assert_eq!(
        route(&answers[0]),
        Route::Miss,
        "the next request starts a fresh load"
    );
    assert_eq!(f.loads(), 2);
}

#[tokio::test]
async fn a_stale_value_stands_in_for_a_failed_load_where_allowed() {
    let f = fixture_with(Behaviour::Fetch, true, Duration::from_secs(60));
    f.release(2);
    assert_eq!(route(&f.cache.get(&"k", &"v").await), Route::Miss);
    f.set(Behaviour::Fail);
    // Another variant of the key is requested: the stored value does not fit, the load fails,
    // and the loader allows the stored value to stand in.
    let answer = f.cache.get(&"k", &"w").await;
    assert_eq!(route(&answer), Route::StaleOnError);
    match &answer.served {
        Served::StandIn(value, error) => {
            assert_eq!((value.variant, &**error), ("v", &Failure));
        }
        other => panic!("expected a stand-in, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_its_bound_keeps_waiting_for_the_same_load() {
    let f = fixture_with(Behaviour::Fetch, false, Duration::from_millis(500));
    let leader = f.start(1, "v").await;
    let waiters = f.start(20, "v").await;
    tokio::time::sleep(Duration::from_millis(501)).await;
    settle().await;
    assert_eq!(f.loads(), 1, "no waiter went to the slow source itself");
    f.release(1);
    for waited in finish(waiters).await {
        assert_eq!(waited.wait_result(), Some(WaitResult::Shared));
        assert_eq!(route(&waited), Route::Coalesced);
    }
    assert_eq!(route(&finish(leader).await[0]), Route::Miss);
    assert_eq!(f.loads(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_its_bound_is_served_a_stored_value_where_allowed() {
    let f = fixture_with(Behaviour::Fetch, true, Duration::from_millis(500));
    f.release(1);
    let stored = value(&f.cache.get(&"k", &"w").await).clone();
    // Another variant is wanted: its load is slow, and the stored value may serve meanwhile.
    let leader = f.start(1, "v").await;
    let waiters = f.start(3, "v").await;
    tokio::time::sleep(Duration::from_millis(501)).await;
    for waited in finish(waiters).await {
        assert_eq!(
            (route(&waited), waited.wait_result()),
            (Route::StaleWhileLoading, Some(WaitResult::Timeout))
        );
        assert_eq!(value(&waited), &stored);
    }
    assert_eq!(f.loads(), 2);
    f.release(1);
    assert_eq!(value(&finish(leader).await[0]).variant, "v");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_answered_timed_out_after_the_longest_a_load_may_take() {
    let f = fixture_with(Behaviour::Fetch, false, Duration::from_millis(500));
    let _leader = f.start(1, "v").await;
    let waiter = f.start(1, "v").await;
    tokio::time::sleep(Duration::from_secs(601)).await;
    let waited = finish(waiter).await;
    assert!(
        matches!(waited[0].served, Served::TimedOut),
        "{:?}",
        waited[0]
    );
    assert_eq!(waited[0].wait_result(), Some(WaitResult::Timeout));
    assert_eq!(f.loads(), 1);
}

#[tokio::test]
async fn a_load_whose_only_caller_leaves_is_abandoned() {
    let f = fixture(Behaviour::Fetch);
    let leader = f.start(1, "v").await;
    assert_eq!(f.loads(), 1);
    leader.into_iter().for_each(|caller| caller.abort());
    settle().await;
    assert_eq!(f.loader.abandoned.load(Ordering::SeqCst), 1);
    assert_eq!(f.cache.in_flight(), 0);
    // The key is free for the next caller's load.
    let next = f.start(1, "v").await;
    assert_eq!((f.loads(), f.cache.in_flight()), (2, 1));
    f.release(1);
    assert_eq!(route(&finish(next).await[0]), Route::Miss);
}

#[tokio::test]
async fn a_load_that_refreshes_a_stored_value_finishes_without_its_caller() {
    let f = fixture(Behaviour::Fetch);
    f.release(1);
    f.cache.get(&"k", &"w").await;
    let caller = f.start(1, "v").await;
    caller.into_iter().for_each(|caller| caller.abort());
    settle().await;
    assert_eq!(f.loader.abandoned.load(Ordering::SeqCst), 0);
    f.release(1);
    f.cache.drain().await;
    assert_eq!(route(&f.cache.get(&"k", &"v").await), Route::Hit);
}

#[tokio::test]
async fn followers_of_an_answer_private_to_its_leader_elect_a_new_leader() {
    let f = fixture(Behaviour::Personal);
    let handles = f.start(5, "v").await;
    f.release(1);
    settle().await;
    assert_eq!(f.loads(), 2, "one new leader, not a load per follower");
    f.set(Behaviour::Fetch);
    f.release(1);
    let answers = finish(handles).await;
    let personal = answers
        .iter()
        .filter(|a| matches!(a.served, Served::Private(_)))
        .count();
    let shared = answers
        .iter()
        .filter(|a| route(a) == Route::Coalesced && a.wait_result() == Some(WaitResult::Shared))
        .count();
    assert_eq!((personal, shared), (1, 3));
}

#[tokio::test]
async fn a_background_refresh_is_made_with_the_background_request() {
    let f = fixture(Behaviour::FetchStale);
    f.release(1);
    f.cache.get(&"k", &"personal v").await;
    let stale = f.cache.get(&"k", &"personal v").await;
    assert_eq!(route(&stale), Route::StaleWhileRefresh);
    f.release(1);
    f.cache.drain().await;
    assert_eq!(
        *f.loader.requests.lock().expect("requests"),
        ["personal v", "v"]
    );
}

#[tokio::test]
async fn a_waiter_with_another_variant_loads_its_own() {
    let f = fixture(Behaviour::Fetch);
    let leader = f.start(1, "v").await;
    let other = f.start(1, "w").await;
    f.release(1);
    settle().await;
    assert_eq!(f.loads(), 2);
    f.release(1);
    let other = finish(other).await;
    assert_eq!(other[0].wait_result(), Some(WaitResult::RefetchUncacheable));
    assert_eq!(value(&other[0]).variant, "w");
    assert_eq!(value(&finish(leader).await[0]).variant, "v");
}

#[tokio::test]
async fn stale_while_refresh_serves_at_once_and_refreshes_exactly_once() {
    let f = fixture(Behaviour::FetchStale);
    f.release(1);
    assert_eq!(route(&f.cache.get(&"k", &"v").await), Route::Miss);
    f.set(Behaviour::Fetch);
    let handles = f.start(10, "v").await;
    let answers = finish(handles).await;
    assert!(
        answers
            .iter()
            .all(|a| route(a) == Route::StaleWhileRefresh && value(a).load == 1)
    );
    assert_eq!(f.loads(), 2, "exactly one background refresh");
    f.release(1);
    f.cache.drain().await;
    let refreshed = f.cache.get(&"k", &"v").await;
    assert_eq!((route(&refreshed), value(&refreshed).load), (Route::Hit, 2));
}

#[tokio::test]
async fn a_load_that_panics_is_taken_over_by_exactly_one_new_leader() {
    let f = fixture(Behaviour::Panic);
    let handles = f.start(6, "v").await;
    f.release(1);
    settle().await;
    // The panicking load is dangling now; one of the six leads the second load.
    assert_eq!(f.loads(), 2);
    f.release(1);
    let answers = finish(handles).await;
    assert_eq!(f.loads(), 2);
    assert!(answers.iter().all(|a| value(a).load == 2));
}

#[tokio::test]
async fn invalidation_removes_the_value_and_the_hit_for_miss_marker() {
    let f = fixture(Behaviour::Fetch);
    f.release(2);
    f.cache.get(&"k", &"v").await;
    assert!(f.cache.invalidate(&"k"));
    assert!(!f.cache.invalidate(&"k"));
    assert_eq!(route(&f.cache.get(&"k", &"v").await), Route::Miss);
    assert_eq!(
        f.cache
            .invalidate_matching(|key| key.starts_with('k'))
            .await,
        1
    );
}

/// A load under way when its key is invalidated answers the callers that asked before, but keeps
/// nothing: the next caller loads again instead of being served what the invalidation removed.
#[tokio::test]
async fn a_load_that_finishes_after_an_invalidation_keeps_nothing() {
    for prefix in [false, true] {
        let f = fixture(Behaviour::Fetch);
        let before = f.start(2, "v").await;
        if prefix {
            f.cache
                .invalidate_matching(|key| key.starts_with('k'))
                .await;
        } else {
            f.cache.invalidate(&"k");
        }
        // A caller arriving after the invalidation does not join the load that began before it.
        let after = f.start(1, "v").await;
        assert_eq!(
            f.loads(),
            2,
            "prefix {prefix}: a second load, after the invalidation"
        );
        f.release(1);
        let answers = finish(before).await;
        assert!(
            answers.iter().all(|a| value(a).load == 1),
            "prefix {prefix}: the callers from before get the first load"
        );
        assert!(
            f.cache.store().get(&"k").is_none(),
            "prefix {prefix}: nothing kept"
        );
        assert_eq!(
            answers.iter().filter(|a| a.dropped).count(),
            1,
            "prefix {prefix}: the leader is told its load was not kept"
        );
        f.release(1);
        let later = finish(after).await;
        assert_eq!(value(&later[0]).load, 2, "prefix {prefix}");
        assert!(!later[0].dropped, "prefix {prefix}: kept");
        assert_eq!(
            f.cache.store().get(&"k").map(|v| v.load),
            Some(2),
            "prefix {prefix}"
        );
    }
}

/// Requests that ask for a load themselves (`no-cache`) are answered by a load that started
/// after they arrived: ten at once cost two loads (the one under way when they came, and one
/// more for those that came during it), not one each.
#[tokio::test]
async fn requests_that_ask_for_a_load_share_one_that_started_after_them() {
    let f = fixture(Behaviour::Fetch);
    let first = f.start(1, "no-cache").await;
    let during = f.start(9, "no-cache").await;
    assert_eq!(f.loads(), 1);
    f.release(1);
    let first = finish(first).await;
    assert_eq!(route(&first[0]), Route::Miss);
    settle().await;
    assert_eq!(
        f.loads(),
        2,
        "one more load for the nine that came during the first"
    );
    f.release(1);
    let during = finish(during).await;
    assert_eq!(f.loads(), 2);
    let shared = during
        .iter()
        .filter(|a| route(a) == Route::Coalesced && value(a).load == 2)
        .count();
    let led = during.iter().filter(|a| route(a) == Route::Miss).count();
    assert_eq!((led, shared), (1, 8));
}

/// The same for a key marked hit-for-miss, whose loads run outside the flight.
#[tokio::test]
async fn a_load_outside_the_flight_keeps_nothing_after_an_invalidation() {
    let f = fixture(Behaviour::Private);
    f.release(1);
    f.cache.get(&"k", &"v").await;
    f.set(Behaviour::Fetch);
    let before = f.start(1, "v").await;
    assert!(before.iter().all(|handle| !handle.is_finished()));
    f.cache.invalidate(&"other");
    f.release(1);
    let answers = finish(before).await;
    assert_eq!(route(&answers[0]), Route::Pass);
    assert!(
        f.cache.store().get(&"k").is_none(),
        "an invalidation came while it ran"
    );
    assert!(
        answers[0].dropped,
        "the caller is told its load was not kept"
    );
    f.release(1);
    f.cache.get(&"k", &"v").await;
    assert!(
        f.cache.store().get(&"k").is_some(),
        "no invalidation this time"
    );
}

/// A purge walks the store in slices and yields between them: on a current-thread runtime (a
/// sidecar on one CPU) other tasks, such as hits, run while it goes on.
#[tokio::test]
async fn a_walk_of_the_store_lets_other_tasks_run_between_slices() {
    const KEYS: usize = 8_000;
    let f = fixture(Behaviour::Fetch);
    for i in 0..KEYS {
        let key: &'static str = Box::leak(format!("k{i}").into_boxed_str());
        let value = Val {
            load: 0,
            variant: "v",
            stale: false,
        };
        f.cache.store().insert(key, value);
    }
    let turns = Arc::new(AtomicUsize::new(0));
    let other = tokio::spawn({
        let turns = Arc::clone(&turns);
        async move {
            loop {
                turns.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    let removed = f.cache.invalidate_matching(|key| key.ends_with('7')).await;
    let during = turns.load(Ordering::SeqCst);
    other.abort();
    assert_eq!(removed, KEYS / 10);
    assert!(f.cache.store().get(&"k17").is_none());
    assert!(f.cache.store().get(&"k18").is_some());
    // A turn after every slice of the walk (8,000 keys) and of the 800 keys it removed.
    assert!(
        during >= KEYS.div_ceil(WALK_SLICE) + (KEYS / 10).div_ceil(WALK_SLICE),
        "the other task ran {during} times during the walk"
    );
}

#[tokio::test]
async fn an_answer_private_only_to_its_request_does_not_mark_the_key() {
    let f = fixture(Behaviour::Personal);
    f.release(2);
    assert!(matches!(
        f.cache.get(&"k", &"v").await.served,
        Served::Private(_)
    ));
    f.set(Behaviour::Fetch);
    let next = f.cache.get(&"k", &"v").await;
    assert_eq!(
        (route(&next), next.found),
        (Route::Miss, None),
        "no hit-for-miss pass"
    );
}

#[tokio::test]
async fn an_unshareable_answer_supersedes_what_was_stored() {
    let f = fixture(Behaviour::Fetch);
    f.release(3);
    f.cache.get(&"k", &"v").await;
    f.set(Behaviour::Private);
    let other = f.cache.get(&"k", &"w").await;
    assert_eq!(other.found, Some(LoadCause::Unmatched));
    assert!(matches!(other.served, Served::Private(_)));
    let again = f.cache.get(&"k", &"v").await;
    assert_eq!(
        (route(&again), again.found),
        (Route::Pass, None),
        "the stored value went"
    );
}
