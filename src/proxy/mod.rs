//! The caching proxy: the request path and the HTTP loader behind it.

pub mod cache_status;
pub mod loader;
pub mod metrics;
pub mod recent_values;
pub mod request;
pub mod request_counts;
pub mod respond;
pub mod service;
pub mod trace;
