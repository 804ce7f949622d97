//! sidecache: a caching reverse proxy that runs beside a slow origin service.
//!
//! It answers from an in-memory cache when it can, loads from the origin **once per key however
//! many clients ask at the same moment** (single-flight), serves stale when the origin is down,
//! and tells every client how it was answered (`Cache-Status`, RFC 9211).
//!
//! # Layout
//!
//! Dependencies point inward: `app → proxy → http, cache → store`, and no two modules import
//! each other. `cache` and `store` know neither HTTP nor telemetry.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the typed configuration: flags > environment > TOML file > defaults |
//! | [`app`] | builds the parts from a `Config`, binds, serves, drains in order |
//! | [`server`] | the accept loop both listeners share: client limits and timeouts, graceful drain |
//! | [`proxy`] | the request path: classify, key, lookup, load (or answer from stored parts), respond, record; the server span; the HTTP loader |
//! | [`cache`] | the HTTP-free core: single-flight ([`cache::flight`]), the read-through cache ([`cache::loading`]) and what it answers each caller ([`cache::outcome`]) |
//! | [`http`] | the HTTP caching rules (RFC 9110/9111/9211/9213): keys, `Cache-Control`, freshness and reuse, `Vary`, conditionals, ranges, 304 freshening; the stored response |
//! | [`store`] | the [`store::Store`] trait; the byte-bounded moka store with per-entry expiry, and a plain locked map for tests |
//! | [`spans`] | span helpers on `tracing` alone, for the layers that must not know OpenTelemetry |
//! | [`origin`] | the pooled client to the origin: timeouts, header hygiene, error classification, the client span and `traceparent` |
//! | [`admin`] | the admin listener, on a thread and runtime of its own: metrics, stats, health, readiness, purge, counters |
//! | [`metrics`] | the Prometheus registry and the helpers every metric set registers with |
//! | [`stats`] | the windowed stats behind `GET /stats` |
//! | [`body`] | the body types of both directions |
//! | [`build`] | which build is running: version, git commit, profile |
//! | [`byte_size`] | byte sizes with units, as the options take them |
//! | [`duration`] | durations with units or in seconds, as the options take them |
//! | [`listen_addr`] | listener addresses, host names resolved, as the options take them |
//! | [`demo`] | the embedded demo origin |
//! | [`telemetry`] | logs (with trace ids), the OTLP span pipeline, sampling, W3C propagation |
//! | [`shutdown`] | the shutdown signals: a drain, then a stop at once |
//! | [`reload`] | SIGHUP: re-reads the configuration and applies what can change while serving (log filter, admin token) |
//! | [`writebehind`] | counters kept in memory and flushed in batches to SQLite or PostgreSQL |
//!
//! Configuration has one naming scheme: a component declares the options a user sets as its
//! `*Config` (a section of `--help`: [`origin::OriginConfig`], [`proxy::CacheConfig`], ...),
//! [`config::Config`] gathers them, and a component is built from `*Settings` derived from them
//! ([`origin::OriginSettings`], [`cache::loading::LoadingSettings`], ...).
//!
//! The generic core can be used without HTTP: implement [`cache::loading::Loader`] and put a
//! [`cache::loading::LoadingCache`] over it (the [`cache`] module shows one).

pub mod admin;
pub mod app;
pub mod body;
pub mod build;
pub mod byte_size;
pub mod cache;
pub mod config;
pub mod demo;
pub mod duration;
pub mod http;
pub mod listen_addr;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod shutdown;
pub mod spans;
pub mod stats;
pub mod store;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod writebehind;
