//! The one error type of Strata's storage core, shared by every block.
//!
//! Variants are semantic, not per-module: a front maps each variant to its wire form in one
//! function (SQLSTATE, RESP, HTTP status, ...). `Conflict` is the only retryable one: the
//! transaction lost an optimistic race and may be run again from the start.

use std::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong below the fronts.
#[derive(Debug)]
pub enum Error {
    /// The caller sent something invalid (bad key, oversize value, wrong type, ...).
    InvalidInput(String),
    /// The thing named does not exist.
    NotFound(String),
    /// A compare-and-set or precondition did not hold.
    PreconditionFailed(String),
    /// A concurrent transaction committed a conflicting write first. Retry the transaction.
    Conflict,
    /// A write was attempted in a read-only transaction.
    ReadOnly,
    /// The store cannot serve right now (shutting down, locked by another process, full).
    Unavailable(String),
    /// Stored data could not be decoded: a bug or on-disk corruption.
    Corrupt(String),
    /// An I/O error, with its source kept.
    Io(std::io::Error),
    /// The storage engine failed.
    Storage(String),
}

impl Error {
    /// Whether running the same transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            Error::NotFound(msg) => write!(f, "not found: {msg}"),
            Error::PreconditionFailed(msg) => write!(f, "precondition failed: {msg}"),
            Error::Conflict => write!(f, "transaction conflict: a concurrent commit won, retry"),
            Error::ReadOnly => write!(f, "write in a read-only transaction"),
            Error::Unavailable(msg) => write!(f, "unavailable: {msg}"),
            Error::Corrupt(msg) => write!(f, "corrupt data: {msg}"),
            Error::Io(err) => write!(f, "i/o error: {err}"),
            Error::Storage(msg) => write!(f, "storage engine error: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Io(err)
    }
}

impl From<fjall::Error> for Error {
    fn from(err: fjall::Error) -> Self {
        match err {
            fjall::Error::Io(io) => Error::Io(io),
            other => Error::Storage(other.to_string()),
        }
    }
}

/// Builds an [`Error::InvalidInput`] from a format string.
#[macro_export]
macro_rules! errinput {
    ($($args:tt)*) => { $crate::Error::InvalidInput(format!($($args)*)) };
}

/// Builds an [`Error::Corrupt`] from a format string.
#[macro_export]
macro_rules! errcorrupt {
    ($($args:tt)*) => { $crate::Error::Corrupt(format!($($args)*)) };
}
