//! The caching proxy: the request path and the HTTP loader behind it. [`service::Proxy`] runs
//! the phases; [`loader::OriginLoader`] is the HTTP loader the cache core loads through.
//!
#![doc = include_str!("../../docs/request-path.md")]

pub(crate) mod access_log;
pub(crate) mod cache_status;
pub(crate) mod classify;
mod config;
pub(crate) mod decision;
pub(crate) mod forward;
pub(crate) mod load;
pub mod loader;
pub(crate) mod lookup;
pub mod metrics;
pub mod part_store;
pub(crate) mod partial;
pub(crate) mod purge;
pub(crate) mod recent_values;
pub(crate) mod record;
pub(crate) mod request;
pub(crate) mod request_counts;
pub(crate) mod respond;
pub mod service;
pub mod settings;
pub(crate) mod status_class;
pub(crate) mod trace;
pub mod ttl_overrides;

pub use self::access_log::AccessLogFormat;
pub use self::config::{CacheConfig, ClientCacheControl, ProxyConfig, RangeMiss};
use crate::cache::loading::LoadingCache;

use self::loader::OriginLoader;

/// The cache the proxy answers from: the read-through cache over the HTTP loader, in the moka
/// store.
pub type HttpCache = LoadingCache<OriginLoader>;
