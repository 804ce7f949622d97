//! Which build is running: the crate version, the git commit and the Cargo profile, as
//! `sidecache --version` prints them and `sidecache_build_info` labels them.

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (12 hex digits, `-dirty` with uncommitted changes),
/// `GIT_COMMIT` when the build set it (a container build has no `.git`), else `unknown`.
pub const COMMIT: &str = env!("BUILD_SIDECACHE_COMMIT");

/// The Cargo profile the binary was built with: `debug` or `release`.
pub const PROFILE: &str = env!("BUILD_SIDECACHE_PROFILE");

/// What `sidecache --version` prints after the name, e.g. `0.1.0 (commit 1a2b3c4d5e6f, release)`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUILD_SIDECACHE_COMMIT"),
    ", ",
    env!("BUILD_SIDECACHE_PROFILE"),
    ")"
);
