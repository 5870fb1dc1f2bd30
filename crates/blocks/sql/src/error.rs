//! SQL errors: a message with its SQLSTATE code, and optionally a position in the query.

use std::fmt;

/// An error reported to the client with a SQLSTATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    /// The five-character SQLSTATE code (`42P01`, `23505`, ...).
    pub code: &'static str,
    pub message: String,
    /// 1-based character position in the query text, when known.
    pub position: Option<usize>,
}

pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), position: None }
    }

    pub fn with_position(mut self, position: usize) -> Self {
        self.position = Some(position);
        self
    }

    pub fn unsupported(what: impl fmt::Display) -> Self {
        Self::new("0A000", format!("{what} is not supported"))
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new("42601", message)
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for SqlError {}

impl From<strata_core::Error> for SqlError {
    fn from(err: strata_core::Error) -> Self {
        use strata_core::Error;
        match err {
            Error::Conflict => SqlError::new("40001", "could not serialize access due to concurrent update"),
            Error::InvalidInput(msg) => SqlError::new("54000", msg),
            Error::Unavailable(msg) => SqlError::new("57P03", msg),
            other => SqlError::new("XX000", other.to_string()),
        }
    }
}
