//! The stored representation of a response: what the store holds for one URL, and its header
//! fields kept compact.

pub(crate) mod answer_fields;
pub mod object;
pub(crate) mod packed;
pub(crate) mod parts;
