//! # strata-core: Strata's floor 1
//!
//! A transactional, ordered key-value store that every block builds on. It owns:
//!
//! - **[`Store`]**: named keyspaces (one or a few per block) over a storage engine — fjall, an
//!   LSM-tree with a journal, on disk; or a multi-version map in memory for tests, with the
//!   same semantics because everything above the engine is shared.
//! - **[`Txn`]**: read-write transactions spanning keyspaces, reading one snapshot and
//!   seeing their own writes; forward and reverse range and prefix scans. Conflicts are
//!   detected optimistically at commit ([`Isolation::Serializable`] by default, or snapshot
//!   isolation) and reported as the retryable [`Error::Conflict`], never as a lost update.
//! - **Group commit**: a commit returns only once fsynced, and concurrent commits share one
//!   engine batch and one fsync ([`SyncMode::Always`]); or fsync runs on an interval
//!   ([`SyncMode::Periodic`]).
//! - **[`keycode`]**: the order-preserving encoding blocks use to lay out their keys.
//! - **The change feed**: each commit has a sequence number; blocks append change records in
//!   their transactions ([`Txn::emit`]) and subscribers resume from a sequence number.
//!
//! ```text
//!   blocks ──► Txn (snapshot + write buffer + read set)
//!                │ commit
//!                ▼
//!   Store: conflict check ─► seq ─► Engine::apply ─► group fsync ─► ack ─► feed subscribers
//!                                     │
//!                       FjallEngine (disk) | MemoryEngine (tests)
//! ```
//!
//! The engine is synchronous and blocking: fronts call it from blocking threads
//! (`tokio::task::spawn_blocking`), never from a reactor thread.
//!
//! ## Limitations
//!
//! - Conflict checks keep the written keys of every commit newer than the oldest open
//!   read-write transaction: a transaction left open for long makes commits pay for it.
//! - A commit is visible to new snapshots once applied, a moment before its fsync completes;
//!   a read-only reader can see data that a power loss in that moment would lose.
//! - The memory engine never collects old versions.
//! - The disk engine fsyncs fjall's active journal through its own file handle, relying on
//!   fjall 3.1's journal layout (see `engine/fjall.rs`; a test pins it).

mod clock;
mod engine;
mod error;
mod feed;
pub mod keycode;
mod store;
mod txn;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use feed::Change;
pub use store::{Keyspace, KeyspaceTuning, Options, Store, SyncMode};
pub use txn::{Isolation, Scan, Txn};
