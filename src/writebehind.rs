//! Write-behind counters: cheap in-memory increments, flushed in batches to a durable sink.
//!
//! Some numbers change too often for a datastore write each time: view counts, per-key request
//! counts. They are added up in memory ([`Counters`], no global lock) and written behind, one
//! transaction per batch, to SQLite (the default, embedded) or PostgreSQL ([`Sink`]).
//!
//! # How increments travel
//!
//! ```text
//! increment(name, delta) ──► Counters (dashmap of AtomicI64, bounded in keys)
//!                                │ drained shard by shard under the shard's write lock
//!                                ▼
//!                            Batch { id, sorted (name, delta) } ──► retained until confirmed
//!                                │ Sink::apply: one transaction
//!                                ▼
//!        sidecache_writebehind_batches (id)  +  sidecache_counters (name, value += delta)
//! ```
//!
//! # Never lost, never counted twice
//!
//! - An increment is acknowledged ([`WriteBehind::increment`] returns `Ok`) only once it is in
//!   the map. Draining takes each shard's write lock, so an increment is either wholly in a
//!   batch or wholly left for the next one.
//! - A drained batch gets a unique id and is *retained* — kept, unchanged, under that id — until
//!   a sink confirms it. The id is inserted into `sidecache_writebehind_batches` in the same
//!   transaction as the counter updates; a batch whose id is already there is skipped. So a
//!   batch whose commit outcome is unknown (the connection dropped at `COMMIT`) is simply sent
//!   again: if it had committed, the retry is a no-op, and if not, it applies once.
//! - A failed batch is therefore not merged back into the live map: merging would give its
//!   increments a new id, and if the failed commit had in fact succeeded they would count twice.
//!   New increments wait in the live map until the retained batch is confirmed.
//! - At shutdown, increments are refused from the moment the final flush starts
//!   ([`WriteBehind::close`]). If the sink cannot be reached within the bound, every unconfirmed
//!   batch is written, ids included, to a recovery file (`recovery`) that is replayed at the
//!   next start — so a replayed batch that had committed after all is skipped too.
//!
//! Batch ids are kept in the sink for [`sink::BATCH_ID_RETENTION`]; a recovery file older than
//! that could be applied twice.
//!
//! # Names
//!
//! A name is 1 to [`MAX_NAME_BYTES`] bytes of UTF-8 without control characters (`name`),
//! checked at increment: a name a sink cannot store (PostgreSQL's `text` holds no NUL, its index
//! no entry past 2704 bytes) would otherwise fail every batch it is in. An increment of such a
//! name is refused ([`Refused::InvalidName`]): the admin endpoint answers 400, a request count
//! is dropped, and both are counted in
//! `sidecache_writebehind_increments_total{outcome="invalid_name"}`.
//!
//! # Rows a sink refuses
//!
//! A sink may still refuse a row for its content (a `CHECK` constraint or trigger a DBA added,
//! a column narrowed to `varchar(n)`, a database encoding that lacks a character):
//! [`SinkError::is_row_rejected`]. The transaction is rolled back, and sending the same rows again
//! cannot help, so the batch is not retried but split in two halves, each under an id of its own
//! ([`BatchId::part`]), and each half applied in turn: the good rows commit in the same flush.
//! A row refused on its own is dropped, logged and counted in
//! `sidecache_writebehind_rows_dropped_total{reason="rejected"}`, so one bad row never blocks
//! the others, at runtime or after a restart.
//!
//! # Bounds
//!
//! The live map holds at most `max_pending_keys` names. At the cap, increments of names already
//! pending are still accepted (they need no memory); an increment that would add a new name is
//! refused with [`Refused::Full`] and counted in `sidecache_writebehind_increments_total{outcome="full"}`,
//! and the flusher is woken to make room. Per-key request counts are dropped then; the admin
//! endpoint answers 503 so the caller knows. One retained batch (at most the cap's worth of
//! names) may exist besides the live map while the sink is down.

mod config;
pub(crate) mod counters;
pub(crate) mod flusher;
pub(crate) mod metrics;
pub(crate) mod name;
pub mod postgres;
pub(crate) mod recovery;
pub mod sink;
pub(crate) mod sqlite;

/// The prefix of the per-cache-key request counters (`--writebehind-count-requests`).
pub const REQUEST_COUNTER_PREFIX: &str = "requests:";

pub use config::WriteBehindConfig;
pub use counters::{Counters, Refused};
pub use flusher::{Closed, WriteBehind, WriteBehindSettings};
pub use metrics::{IncrementSource, WriteBehindMetrics};
pub use name::{MAX_NAME_BYTES, NameError};
pub use sink::{Applied, Batch, BatchId, Retention, Sink, SinkAddress, SinkError};
