//! The HTTP-free cache core: generic single-flight loading ([`flight`]) and the read-through
//! cache over it ([`loading`]), which answers each caller with an [`outcome::Outcome`].
//!
//! Neither knows HTTP nor telemetry: keys, requests and values are whatever a [`loading::Loader`]
//! says, the values are kept in any [`Store`](crate::store::Store), and the only trace of a load
//! is a [`tracing`] span. The proxy is one user; the HTTP rules it applies through a loader live
//! in [`crate::http`].
//!
//! # Example
//!
//! A read-through cache of squares, in front of a "source" that counts its loads: concurrent
//! callers of one key share one load, and the next caller is answered from the store.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//!
//! use sidecache::cache::loading::{Judgement, Loader, LoadingCache, LoadingSettings, Source};
//! use sidecache::cache::outcome::Served;
//! use sidecache::store::{PlainStore, Weighed};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct Square(u64);
//!
//! impl Weighed for Square {
//!     fn weight_bytes(&self) -> u32 {
//!         8
//!     }
//!     fn retain_for(&self) -> Duration {
//!         Duration::from_secs(60)
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Squares {
//!     loads: AtomicUsize,
//! }
//!
//! impl Loader for Squares {
//!     type Key = u64;
//!     type Request = ();
//!     type Value = Square;
//!     type Private = ();
//!     type Error = String;
//!
//!     fn judge(&self, _value: &Square, _request: &()) -> Judgement {
//!         Judgement::Fresh
//!     }
//!
//!     fn usable_on_error(&self, _value: &Square, _request: &(), _error: &String) -> bool {
//!         false
//!     }
//!
//!     async fn load_source(
//!         &self,
//!         key: &u64,
//!         _request: &(),
//!         _current: Option<Square>,
//!     ) -> Result<Source<Square, ()>, String> {
//!         self.loads.fetch_add(1, Ordering::SeqCst);
//!         tokio::task::yield_now().await;
//!         Ok(Source::Fetched(Square(key * key)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = LoadingSettings {
//!     coalesce_timeout: Duration::from_secs(1),
//!     load_timeout: Duration::from_secs(5),
//!     hit_for_miss_ttl: Duration::from_secs(10),
//!     hit_for_miss_capacity_bytes: 1 << 20,
//!     max_waiters_per_key: 100,
//! };
//! let cache = LoadingCache::new(Squares::default(), PlainStore::new(), config);
//!
//! let (first, second) = tokio::join!(cache.get(&12, &()), cache.get(&12, &()));
//! assert!(matches!(first.served, Served::Fetched(Square(144))));
//! assert!(matches!(second.served, Served::Shared(Square(144))));
//! assert!(matches!(cache.get(&12, &()).await.served, Served::Hit(Square(144))));
//! assert_eq!(cache.loader().loads.load(Ordering::SeqCst), 1);
//! # }
//! ```

pub mod flight;
mod judgement;
pub mod loading;
pub mod outcome;
