//! Writes the final windows of stream views into SQL tables (a view's `sql_table`), so
//! dashboards query them over the pg front: one row per (key, window_start), upserted.
//! The table is created on first use with a column per aggregate.

use std::sync::Mutex;
use strata_stream::views::{ResultSink, ViewDef, WindowResult};

pub struct SqlSink {
    session: Mutex<strata_sql::Session>,
}

impl SqlSink {
    pub fn new(sql: &strata_sql::Sql) -> SqlSink {
        SqlSink { session: Mutex::new(sql.session()) }
    }
}

fn identifier(name: &str) -> Result<&str, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok { Ok(name) } else { Err(format!("{name:?} is not a lower-case SQL identifier")) }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn number(value: Option<&serde_json::Value>) -> String {
    value.and_then(serde_json::Value::as_f64).map_or("NULL".to_string(), |x| format!("{x:?}"))
}

impl ResultSink for SqlSink {
    fn write(&self, view: &ViewDef, results: &[WindowResult]) -> Result<(), String> {
        let Some(table) = &view.sql_table else { return Ok(()) };
        let table = identifier(table)?;
        let columns: Vec<String> = view.aggregates.iter().map(|a| a.output_name()).collect();
        for column in &columns {
            identifier(column)?;
        }
        let mut session = self.session.lock().map_err(|_| "sql sink lock poisoned".to_string())?;
        let defs: String = columns.iter().map(|c| format!(", {c} DOUBLE PRECISION")).collect();
        session
            .execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (key TEXT NOT NULL, window_start BIGINT NOT NULL, \
                 window_end BIGINT NOT NULL{defs}, PRIMARY KEY (key, window_start))"
            ))
            .map_err(|e| e.to_string())?;
        let rows: Vec<String> = results
            .iter()
            .map(|r| {
                let values: String =
                    columns.iter().map(|c| format!(", {}", number(r.values.get(c)))).collect();
                format!("({}, {}, {}{values})", quote(&r.key), r.window_start, r.window_end)
            })
            .collect();
        let updates: Vec<String> = std::iter::once("window_end".to_string())
            .chain(columns.iter().cloned())
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let names: String = columns.iter().map(|c| format!(", {c}")).collect();
        session
            .execute(&format!(
                "INSERT INTO {table} (key, window_start, window_end{names}) VALUES {} \
                 ON CONFLICT (key, window_start) DO UPDATE SET {}",
                rows.join(", "),
                updates.join(", ")
            ))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
