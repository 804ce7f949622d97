//! The cache core: generic single-flight loading, and the HTTP caching rules (RFC 9111) the
//! proxy applies through it.

pub mod conditional;
pub mod directives;
pub mod fields;
pub mod flight;
pub mod key;
pub mod loading;
pub mod object;
pub mod outcome;
pub mod packed;
pub mod policy;
pub mod range;
pub mod vary;
