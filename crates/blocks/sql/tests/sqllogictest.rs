//! Runs every `tests/slt/*.slt` file against a fresh in-memory session.
//!
//! Each SELECT runs twice and must give the same answer both times: the second run takes
//! the session's cached statement shape (literals as parameters), the first does not.
//!
//! Expected results were written to match PostgreSQL 15; values print in PostgreSQL's text
//! form, NULL as `NULL` and the empty string as `(empty)`.

use sqllogictest::{DBOutput, DefaultColumnType};
use strata_core::Store;
use strata_sql::{Outcome, Session, Sql, SqlError};

struct Db(Session);

#[derive(Debug)]
struct Failure(SqlError);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.0.message, self.0.code)
    }
}

impl std::error::Error for Failure {}

impl sqllogictest::DB for Db {
    type Error = Failure;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Failure> {
        let first = self.output(sql);
        if sql.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("select")) {
            let again = self.output(sql);
            assert_eq!(summary(&first), summary(&again), "a second run of {sql} differs");
        }
        first
    }

    fn error_sql_state(err: &Failure) -> Option<String> {
        Some(err.0.code.to_string())
    }
}

impl Db {
    fn output(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Failure> {
        let mut outcomes = self.0.execute(sql).map_err(Failure)?;
        Ok(match outcomes.pop() {
            Some(Outcome::Rows { columns, rows, .. }) => DBOutput::Rows {
                types: columns.iter().map(|_| DefaultColumnType::Any).collect(),
                rows: rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|v| match v {
                                strata_sql::Value::Null => "NULL".to_string(),
                                v if v.to_text().is_empty() => "(empty)".to_string(),
                                v => v.to_text(),
                            })
                            .collect()
                    })
                    .collect(),
            },
            Some(Outcome::Command { tag }) => {
                DBOutput::StatementComplete(tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0))
            }
            None => DBOutput::StatementComplete(0),
        })
    }
}

/// An output as text, to compare two runs.
fn summary(output: &Result<DBOutput<DefaultColumnType>, Failure>) -> String {
    match output {
        Ok(DBOutput::Rows { rows, .. }) => format!("{rows:?}"),
        Ok(DBOutput::StatementComplete(n)) => format!("complete {n}"),
        Ok(_) => "other".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn sqllogictest_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in files {
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok::<_, Failure>(Db(Sql::open(Store::memory()).unwrap().session()))
        });
        runner.with_column_validator(|_, _| true);
        if let Err(err) = runner.run_file(&file) {
            failures.push(format!("{}: {err}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
