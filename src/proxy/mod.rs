//! The caching proxy: the request path and the HTTP loader behind it.
//!
//! A request runs through a fixed list of phases, each in a module of its own:
//!
//! | phase | module | what |
//! |---|---|---|
//! | guard and classify | [`classify`] | refusals sidecache answers itself; the request keyed and sorted: through the cache, or around it |
//! | lookup | [`lookup`] | what the store alone says: served, or a load is needed |
//! | load | [`crate::cache::loading`], [`load`], [`forward`] | the single-flight load (or a load for this client alone, or a request around the cache) |
//! | respond | [`respond`] | the response and the one [`decision::Decision`] everything reported is derived from |
//! | record | [`record`] | metrics, stats, the span, per-key counts, the access line |
//!
//! [`service::Proxy`] runs them; [`loader::OriginLoader`] is the HTTP loader the cache core loads
//! through.

pub mod cache_status;
pub(crate) mod classify;
pub mod decision;
pub(crate) mod forward;
pub(crate) mod load;
pub mod loader;
pub(crate) mod lookup;
pub mod metrics;
pub mod purge;
pub mod recent_values;
pub(crate) mod record;
pub mod request;
pub mod request_counts;
pub mod respond;
pub mod service;
pub mod trace;

use crate::cache::loading::LoadingCache;

use self::loader::OriginLoader;

/// The cache the proxy answers from: the read-through cache over the HTTP loader, in the moka
/// store.
pub type HttpCache = LoadingCache<OriginLoader>;
