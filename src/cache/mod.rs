//! The HTTP-free cache core: generic single-flight loading and the read-through cache over it.
//! The HTTP rules the proxy applies through it live in [`crate::http`].

pub mod flight;
pub mod loading;
pub mod outcome;
