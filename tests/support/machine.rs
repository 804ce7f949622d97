//! The test that loads the whole machine on purpose, kept apart from the tests whose latency
//! bounds a loaded machine would break.
//!
//! The integration tests run in parallel threads of one process. The soak keeps every core busy
//! for its whole run (tens of seconds); a test that asserts an answer within a few hundred
//! milliseconds does not hold beside it. Such a test holds [`quiet`] for its run and the soak
//! holds [`whole`]: the two exclude each other, while every other test runs beside either.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Shared by the latency-bound tests, exclusive to the soak. A tokio lock, not a std one: each
/// test has a runtime of its own and holds its guard across awaits.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// Waits until no test loads the machine on purpose, and keeps it so while the guard lives. For
/// a test that asserts a latency bound; any number of them hold it at once.
pub async fn quiet() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// Waits until no latency-bound test runs, and keeps it so while the guard lives. For a test
/// that loads every core on purpose.
pub async fn whole() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}
