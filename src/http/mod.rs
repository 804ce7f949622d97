//! The HTTP caching rules (RFC 9110, RFC 9111, RFC 9211, RFC 9213): pure functions and values
//! over header fields, no I/O. The proxy applies them through the HTTP-free core in
//! [`crate::cache`].

pub(crate) mod conditional;
pub mod directives;
pub(crate) mod fields;
pub mod freshen;
pub mod host_match;
pub mod key;
pub mod policy;
pub(crate) mod range;
mod sf;
pub mod stored;
pub mod vary;
