//! sidecache's integration tests: one crate, so that the library, the support code and the test
//! harness are compiled and linked once. Each module tests one area; `support` starts origins,
//! sidecaches, clients and real external components for all of them.
//!
//! Every test of this crate runs in one process, in parallel threads. So a test keeps its state
//! to itself: ports bound as port 0, its own temporary directories and write-behind recovery
//! file, a log subscriber scoped to its thread, nothing set in the process's environment. The
//! one test that loads the whole machine on purpose (the soak) runs apart from the tests whose
//! latency bounds a loaded machine would break (`support::machine`).

#[path = "../support/mod.rs"]
mod support;

mod amplification;
mod binary;
mod check_config;
mod deploy;
mod http_caching;
mod isolation;
mod lifecycle;
mod limits;
mod observability;
mod origin_faults;
mod poisoning;
mod send;
mod signals;
mod single_flight;
mod soak;
mod tracing;
mod writebehind;
