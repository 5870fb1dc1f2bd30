//! # strata-sql: relational tables over the storage core
//!
//! SQL text is parsed by `sqlparser` (PostgreSQL dialect), bound and type-checked by our
//! own binder ([`plan`]), planned into a tree of operators and run by our executor
//! ([`exec`]). Tables live in the core keyspace `sql` (layout in `docs/format/sql.md`):
//!
//! ```text
//!   Session ──parse──► ast ──Binder──► Plan ──Executor──► rows
//!      │                                  │
//!      └── Txn (snapshot isolation) ──────┴──► TableStorage (RowTable: rows + indexes)
//! ```
//!
//! - Rows are keyed by their primary key (keycode tuples), so a primary-key equality is one
//!   point read; secondary indexes map index values to row keys and are written in the same
//!   transaction as their rows. [`TableStorage`] is the seam where column tables plug in.
//! - The planner uses a primary key or an index when WHERE pins its columns by equality,
//!   hash joins for equi-joins, nested loops otherwise; EXPLAIN prints the plan.
//! - Sessions run statements in snapshot-isolation transactions (REPEATABLE READ, the
//!   default; a write-write conflict is SQLSTATE 40001), READ COMMITTED (a fresh snapshot per
//!   statement, and row locks so concurrent writers of a row wait instead of failing), or
//!   SERIALIZABLE (reads are checked too).
//! - A table marked as a feed ([`Sql::enable_feed`], used by search indices that follow a
//!   table) writes its row changes to the core change feed in the same transaction
//!   ([`feed`]).
//!
//! ## Limitations
//!
//! - Operators materialize their results (bounded by [`exec::MAX_ROWS`]); index range scans
//!   and ORDER BY ... LIMIT through an index are not used yet.
//! - No SERIAL/sequences, views, window functions, recursive CTEs, or UPDATE ... FROM.
//! - The catalog is read (and JSON-decoded) per statement.

mod cancel;
pub mod catalog;
pub mod error;
pub mod exec;
pub mod expr;
pub mod feed;
mod functions;
mod keys;
mod locks;
pub mod plan;
mod row;
pub mod session;
mod shapes;
pub mod table;
pub mod types;

pub use error::{SqlError, SqlResult};
pub use feed::{RowChange, RowOp};
pub use plan::Column;
pub use session::{IsolationLevel, Outcome, Prepared, Session, Sql, SqlOptions};
pub use table::TableStorage;
pub use types::{DataType, Value};
