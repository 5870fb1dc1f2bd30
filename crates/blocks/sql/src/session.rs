//! Sessions: statements in and results out, with transactions.
//!
//! A session runs each statement in the open transaction (after BEGIN) or in a transaction of
//! its own (autocommit, retried when it loses a write-write race, since no client saw its
//! effects). Transactions use snapshot isolation (PostgreSQL's REPEATABLE READ): a write-write
//! conflict fails COMMIT with 40001. After an error inside BEGIN ... COMMIT, the transaction
//! is aborted (25P02) until ROLLBACK, as in PostgreSQL.

use crate::catalog::{self, CatalogCache, ColumnDef, IndexDef, TableDef};
use crate::error::{SqlError, SqlResult};
use crate::exec::Executor;
use crate::expr::{Env, Expr};
use crate::feed::{self, RowOp};
use crate::locks::RowLocks;
use crate::plan::{self, Binder, Column, Plan, Query, object_name};
use crate::row::Row;
use crate::shapes::{Lookup, Shapes};
use crate::table::{KeyedRow, RowTable, TableStorage};
use crate::types::{DataType, Value};
use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use strata_core::{Error, Keyspace, Store, Txn};

/// How many times an autocommit statement is re-run after a write-write conflict.
const AUTOCOMMIT_RETRIES: usize = 16;

/// Most bytes of SQL text accepted in one query.
pub const MAX_QUERY_BYTES: usize = 1024 * 1024;

/// The result of one statement.
#[derive(Debug)]
pub enum Outcome {
    Rows { columns: Vec<Column>, rows: Vec<Row>, tag: String },
    Command { tag: String },
}

/// The relational block. Cheap to clone.
#[derive(Clone)]
pub struct Sql {
    store: Store,
    ks: Keyspace,
    options: SqlOptions,
    locks: Arc<RowLocks>,
    next_session: Arc<AtomicU64>,
    catalog: Arc<CatalogCache>,
    metrics: Arc<OnceLock<StatementMetrics>>,
    /// Simple-protocol statements parsed once per shape.
    shapes: Arc<Shapes>,
}

/// Statement kinds as the metrics label them.
const KINDS: [&str; 6] = ["select", "insert", "update", "delete", "transaction", "other"];

fn kind(statement: &ast::Statement) -> usize {
    match statement {
        ast::Statement::Query(_) => 0,
        ast::Statement::Insert(_) => 1,
        ast::Statement::Update(_) => 2,
        ast::Statement::Delete(_) => 3,
        ast::Statement::StartTransaction { .. }
        | ast::Statement::Commit { .. }
        | ast::Statement::Rollback { .. } => 4,
        _ => 5,
    }
}

/// Handles of the successful-statement counters and the latency histograms, by kind. The
/// macros with labels look their series up in the registry on every call; these are
/// registered once, at first use (after the binary has installed its recorder).
struct StatementMetrics {
    ok: [metrics::Counter; KINDS.len()],
    seconds: [metrics::Histogram; KINDS.len()],
}

impl StatementMetrics {
    fn register() -> Self {
        Self {
            ok: KINDS.map(
                |kind| metrics::counter!("strata_sql_statements_total", "kind" => kind, "status" => "ok"),
            ),
            seconds: KINDS.map(|kind| metrics::histogram!("strata_sql_statement_seconds", "kind" => kind)),
        }
    }
}

/// Transaction isolation, as SQL names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationLevel {
    /// A fresh snapshot per statement; writers of a row wait for each other.
    ReadCommitted,
    /// One snapshot per transaction (snapshot isolation); write-write conflicts are 40001.
    RepeatableRead,
    /// Snapshot isolation plus read checks: any anomaly is 40001.
    Serializable,
}

impl IsolationLevel {
    /// Parses `read committed`, `repeatable read` or `serializable` (any case).
    pub fn parse(text: &str) -> Option<IsolationLevel> {
        match text.trim().to_lowercase().replace(['_', '-'], " ").as_str() {
            "read committed" | "read uncommitted" => Some(IsolationLevel::ReadCommitted),
            "repeatable read" | "snapshot" => Some(IsolationLevel::RepeatableRead),
            "serializable" => Some(IsolationLevel::Serializable),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "read committed",
            IsolationLevel::RepeatableRead => "repeatable read",
            IsolationLevel::Serializable => "serializable",
        }
    }
}

/// Settings of the block.
#[derive(Clone, Debug)]
pub struct SqlOptions {
    /// The isolation of transactions that do not ask for one.
    pub default_isolation: IsolationLevel,
    /// How long a READ COMMITTED writer waits for a row lock before reporting a deadlock.
    pub lock_timeout: Duration,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self { default_isolation: IsolationLevel::RepeatableRead, lock_timeout: Duration::from_secs(2) }
    }
}

impl Sql {
    pub fn open(store: Store) -> SqlResult<Sql> {
        Self::open_with(store, SqlOptions::default())
    }

    pub fn open_with(store: Store, options: SqlOptions) -> SqlResult<Sql> {
        let ks = store.keyspace("sql")?;
        Ok(Sql {
            store,
            ks,
            options,
            locks: Arc::default(),
            next_session: Arc::default(),
            catalog: Arc::default(),
            metrics: Arc::default(),
            shapes: Arc::default(),
        })
    }

    /// Makes `table` a feed (see `feed.rs`): from the returned commit on, statements that
    /// begin after it write their row changes to the change feed. The table need not exist
    /// yet; a table created later under the name is a feed too.
    pub fn enable_feed(&self, table: &str) -> SqlResult<u64> {
        let mut attempts = 0;
        loop {
            let mut txn = self.store.begin();
            catalog::mark_feed(&mut txn, &self.ks, table)?;
            if let Some(mut def) = catalog::get_table(&txn, &self.ks, table)?
                && !def.feed
            {
                def.feed = true;
                catalog::put_table(&mut txn, &self.ks, &def)?;
            }
            match self.catalog.commit_change(txn) {
                Err(strata_core::Error::Conflict) if attempts < 10 => attempts += 1,
                other => return Ok(other?),
            }
        }
    }

    /// Visits every row of `table` in `txn`'s snapshot as a feed would send it: its id and
    /// its columns as JSON. A missing table has no rows.
    pub fn feed_rows(
        &self,
        txn: &Txn,
        table: &str,
        visit: &mut dyn FnMut(String, serde_json::Map<String, serde_json::Value>),
    ) -> SqlResult<()> {
        let Some(def) = catalog::get_table(txn, &self.ks, table)? else { return Ok(()) };
        RowTable { ks: &self.ks, def: &def }.scan_ordered(txn, None, None, None, false, &mut |(key, row)| {
            visit(feed::row_id(&def, &key, &row), feed::row_json(&def, &row));
            Ok(true)
        })
    }

    pub fn session(&self) -> Session {
        Session {
            sql: self.clone(),
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            default_isolation: self.options.default_isolation,
            txn: None,
            aborted: false,
            cancel: Arc::default(),
        }
    }
}

/// A parsed statement with its parameter and result types, for the extended protocol.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub statement: Option<ast::Statement>,
    pub params: Vec<DataType>,
    /// Result columns, if the statement returns rows.
    pub columns: Vec<Column>,
    /// The bound plan of a SELECT, kept across executions (see [`Session::execute_prepared`]).
    plan: PlanSlot,
}

/// Where a prepared SELECT keeps its bound plan; clones of the statement share it.
pub(crate) type PlanSlot = Arc<Mutex<Option<CachedPlan>>>;

/// A bound query, valid while the catalog stays at `version` and for parameters of
/// `param_types`.
#[derive(Debug)]
pub(crate) struct CachedPlan {
    version: u64,
    param_types: Vec<DataType>,
    query: Arc<Query>,
}

pub struct Session {
    sql: Sql,
    /// Owner id of this session's row locks.
    id: u64,
    /// The isolation of the next transaction (`SET default_transaction_isolation`).
    default_isolation: IsolationLevel,
    /// The open transaction block.
    txn: Option<Block>,
    aborted: bool,
    /// Set from another thread to cancel the running statement (see [`Session::cancel_flag`]).
    cancel: Arc<AtomicBool>,
}

/// An open transaction block (BEGIN ... COMMIT).
struct Block {
    txn: Txn,
    level: IsolationLevel,
    /// Whether the block ran DDL, so it must not use the catalog cache.
    changed_catalog: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.sql.locks.release_all(self.id);
    }
}

/// What a READ COMMITTED statement needs to lock rows.
#[derive(Clone, Copy)]
struct RowLocking<'a> {
    locks: &'a RowLocks,
    owner: u64,
    timeout: Duration,
}

/// Parses SQL text, turning sqlparser's "Line: l, Column: c" into a 1-based position.
pub fn parse(text: &str) -> SqlResult<Vec<ast::Statement>> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(SqlError::new(
            "54000",
            format!("query of {} bytes is over the limit of {MAX_QUERY_BYTES}", text.len()),
        ));
    }
    Parser::parse_sql(&PostgreSqlDialect {}, text).map_err(|e| {
        let message = e.to_string();
        let mut err = SqlError::syntax(message.trim_start_matches("sql parser error: ").to_string());
        if let Some(at) = message.rfind("Line: ") {
            let nums: Vec<usize> =
                message[at..].split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
            if let [line, column, ..] = nums[..] {
                let offset: usize =
                    text.lines().take(line.saturating_sub(1)).map(|l| l.chars().count() + 1).sum();
                err = err.with_position(offset + column);
            }
        }
        err
    })
}

impl Session {
    /// The flag that cancels this session's running statement when set (from any thread):
    /// the statement fails with 57014. A flag set while no statement runs cancels nothing.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Whether a transaction block is open.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some() || self.aborted
    }

    /// Whether the open transaction block failed and awaits ROLLBACK.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    fn begin(&self, level: IsolationLevel) -> Txn {
        match level {
            IsolationLevel::Serializable => self.sql.store.begin(),
            _ => self.sql.store.begin_snapshot(),
        }
    }

    /// Commits `txn`. Its row locks are released as soon as the commit is visible, before
    /// its fsync: a writer waiting for one of those rows then commits after this transaction
    /// in the journal, so it cannot be acknowledged unless this one is durable too. (PostgreSQL
    /// holds row locks until the commit record is flushed; on a hot row that adds an fsync to
    /// every waiter's wait.)
    fn commit(&self, txn: Txn, changed_catalog: bool) -> strata_core::Result<u64> {
        if changed_catalog {
            return self.sql.catalog.commit_change(txn);
        }
        txn.commit_visible(|| self.sql.locks.release_all(self.id))
    }

    /// Runs every statement of a query string, stopping at the first error.
    pub fn execute(&mut self, text: &str) -> SqlResult<Vec<Outcome>> {
        self.execute_each(text)?.into_iter().collect()
    }

    /// Runs the statements of a query string one by one until one fails, as the simple query
    /// protocol does: an error parsing the text, else each statement's result (none for a
    /// text without statements). A text seen before with other numbers skips the parser
    /// (see [`crate::shapes`]).
    pub fn execute_each(&mut self, text: &str) -> SqlResult<Vec<SqlResult<Outcome>>> {
        if let Lookup::Hit(shape, literals) = self.sql.shapes.lookup(text) {
            let result = literals
                .params()
                .and_then(|params| self.execute_with_plan(&shape.statement, &params, Some(&shape.plan)));
            return Ok(vec![result]);
        }
        let mut results = Vec::new();
        for statement in parse(text)? {
            let result = self.execute_statement(&statement, &[]);
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        Ok(results)
    }

    /// Parses and binds one statement to learn its parameter and result types.
    pub fn prepare(&mut self, text: &str, param_types: &[DataType]) -> SqlResult<Prepared> {
        let mut statements = parse(text)?;
        if statements.len() > 1 {
            return Err(SqlError::new("42601", "cannot insert multiple commands into a prepared statement"));
        }
        let Some(statement) = statements.pop() else {
            return Ok(Prepared {
                statement: None,
                params: Vec::new(),
                columns: Vec::new(),
                plan: PlanSlot::default(),
            });
        };
        let txn = self.sql.store.begin_read_only();
        let txn_ref = self.txn.as_ref().map_or(&txn, |block| &block.txn);
        let mut binder = Binder::new(txn_ref, &self.sql.ks, param_types.to_vec());
        let columns = describe(&mut binder, &statement)?;
        let params = binder
            .params
            .iter()
            .map(|t| if *t == DataType::Unknown { DataType::Text } else { t.clone() })
            .collect();
        Ok(Prepared { statement: Some(statement), params, columns, plan: PlanSlot::default() })
    }

    /// Runs one statement with parameter values.
    pub fn execute_statement(&mut self, statement: &ast::Statement, params: &[Value]) -> SqlResult<Outcome> {
        self.execute_with_plan(statement, params, None)
    }

    /// Runs a prepared statement with parameter values. A SELECT is bound once and its plan
    /// reused while the catalog does not change, as PostgreSQL reuses a generic plan.
    pub fn execute_prepared(&mut self, prepared: &Prepared, params: &[Value]) -> SqlResult<Outcome> {
        let Some(statement) = &prepared.statement else {
            return Err(SqlError::new("26000", "the prepared statement is empty"));
        };
        self.execute_with_plan(statement, params, Some(&prepared.plan))
    }

    fn execute_with_plan(
        &mut self,
        statement: &ast::Statement,
        params: &[Value],
        plan: Option<&PlanSlot>,
    ) -> SqlResult<Outcome> {
        let started = std::time::Instant::now();
        let result = {
            let _cancel = crate::cancel::Scope::enter(&self.cancel);
            self.execute_statement_inner(statement, params, plan)
        };
        let kind = kind(statement);
        let metrics = self.sql.metrics.get_or_init(StatementMetrics::register);
        match &result {
            Ok(_) => metrics.ok[kind].increment(1),
            Err(e) => {
                metrics::counter!("strata_sql_statements_total", "kind" => KINDS[kind], "status" => e.code)
                    .increment(1)
            }
        }
        metrics.seconds[kind].record(started.elapsed().as_secs_f64());
        result
    }

    fn execute_statement_inner(
        &mut self,
        statement: &ast::Statement,
        params: &[Value],
        plan: Option<&PlanSlot>,
    ) -> SqlResult<Outcome> {
        match statement {
            ast::Statement::StartTransaction { modes, .. } => {
                if self.in_transaction() {
                    // PostgreSQL warns and carries on.
                    return Ok(Outcome::Command { tag: "BEGIN".into() });
                }
                let mut level = self.default_isolation;
                for mode in modes {
                    if let ast::TransactionMode::IsolationLevel(l) = mode {
                        level = match l {
                            ast::TransactionIsolationLevel::ReadUncommitted
                            | ast::TransactionIsolationLevel::ReadCommitted => IsolationLevel::ReadCommitted,
                            ast::TransactionIsolationLevel::Serializable => IsolationLevel::Serializable,
                            _ => IsolationLevel::RepeatableRead,
                        };
                    }
                }
                self.txn = Some(Block { txn: self.begin(level), level, changed_catalog: false });
                return Ok(Outcome::Command { tag: "BEGIN".into() });
            }
            ast::Statement::Commit { .. } => {
                let block = self.txn.take();
                let aborted = std::mem::take(&mut self.aborted);
                let result = match block {
                    Some(block) if !aborted => self.commit(block.txn, block.changed_catalog).map(|_| ()),
                    _ => Ok(()),
                };
                self.sql.locks.release_all(self.id);
                result?;
                return Ok(Outcome::Command { tag: if aborted { "ROLLBACK" } else { "COMMIT" }.into() });
            }
            ast::Statement::Rollback { .. } => {
                self.txn = None;
                self.aborted = false;
                self.sql.locks.release_all(self.id);
                return Ok(Outcome::Command { tag: "ROLLBACK".into() });
            }
            ast::Statement::Set(set) => {
                if let ast::Set::SingleAssignment { variable, values, .. } = set
                    && object_name(variable)? == "default_transaction_isolation"
                {
                    let text = values
                        .first()
                        .map(|v| v.to_string().trim_matches('\'').to_string())
                        .unwrap_or_default();
                    self.default_isolation = IsolationLevel::parse(&text).ok_or_else(|| {
                        SqlError::new(
                            "22023",
                            format!(
                                "invalid value for parameter \"default_transaction_isolation\": \"{text}\""
                            ),
                        )
                    })?;
                }
                return Ok(Outcome::Command { tag: "SET".into() });
            }
            ast::Statement::ShowVariable { variable } => {
                let name = variable.iter().map(|v| v.value.to_lowercase()).collect::<Vec<_>>().join(" ");
                let value = match name.as_str() {
                    "transaction isolation level" => {
                        self.txn.as_ref().map_or(self.default_isolation, |block| block.level).name()
                    }
                    "default_transaction_isolation" => self.default_isolation.name(),
                    "server_version" => "15.0",
                    "standard_conforming_strings" => "on",
                    "client_encoding" | "server_encoding" => "UTF8",
                    _ => {
                        return Err(SqlError::new(
                            "42704",
                            format!("unrecognized configuration parameter \"{name}\""),
                        ));
                    }
                };
                let columns = vec![Column { table: None, name: name.replace(' ', "_"), ty: DataType::Text }];
                return Ok(Outcome::Rows {
                    columns,
                    rows: vec![vec![Value::Text(value.into())]],
                    tag: "SHOW".into(),
                });
            }
            _ => {}
        }
        if self.aborted {
            return Err(SqlError::new(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        let ks = self.sql.ks.clone();
        let locking =
            RowLocking { locks: &self.sql.locks, owner: self.id, timeout: self.sql.options.lock_timeout };
        let changes_catalog = changes_catalog(statement);
        if let Some(Block { txn, level, changed_catalog }) = self.txn.as_mut() {
            *changed_catalog |= changes_catalog;
            let catalog = (!*changed_catalog).then_some(&*self.sql.catalog);
            let read_committed = *level == IsolationLevel::ReadCommitted;
            let result = (|| {
                if read_committed {
                    // Each statement of a READ COMMITTED transaction sees every commit so far.
                    txn.refresh_snapshot()?;
                }
                run(txn, &ks, catalog, plan, statement, params, read_committed.then_some(locking))
            })();
            if result.is_err() {
                self.txn = None;
                self.aborted = true;
                self.sql.locks.release_all(self.id);
            }
            return result;
        }
        let read_only = matches!(statement, ast::Statement::Query(_) | ast::Statement::Explain { .. });
        let level = self.default_isolation;
        let mut result = Err(Error::Conflict.into());
        for _ in 0..AUTOCOMMIT_RETRIES {
            let mut txn = if read_only { self.sql.store.begin_read_only() } else { self.begin(level) };
            let locking = (level == IsolationLevel::ReadCommitted).then_some(locking);
            let catalog = (!changes_catalog).then_some(&*self.sql.catalog);
            result = run(&mut txn, &ks, catalog, plan, statement, params, locking).and_then(|outcome| {
                self.commit(txn, changes_catalog).map(|_| outcome).map_err(SqlError::from)
            });
            self.sql.locks.release_all(self.id);
            if !matches!(&result, Err(e) if e.code == "40001") {
                break;
            }
        }
        result
    }
}

/// Result columns of a statement, binding it without running it.
fn describe(binder: &mut Binder, statement: &ast::Statement) -> SqlResult<Vec<Column>> {
    match statement {
        ast::Statement::Query(q) => Ok(binder.bind_query(q)?.columns),
        ast::Statement::Insert(insert) => {
            let table = catalog::must_table(binder.txn, binder.ks, &table_object_name(&insert.table)?)?;
            let scope = table_scope(&table, None);
            bind_dml_params(binder, &table, insert)?;
            returning_columns(binder, insert.returning.as_deref(), &scope)
        }
        ast::Statement::Update(update) => {
            let (table, label) = dml_target(binder, &update.table.relation)?;
            let scope = table_scope(&table, Some(&label));
            for a in &update.assignments {
                let column = assignment_column(&table, a)?;
                let (e, _) = binder.bind_expr(&a.value, &scope)?;
                param_type(binder, &e, &table.columns[column].ty);
            }
            if let Some(w) = &update.selection {
                binder.bind_predicate(w, &scope)?;
            }
            returning_columns(binder, update.returning.as_deref(), &scope)
        }
        ast::Statement::Delete(delete) => {
            let (table, label) = delete_target(binder, delete)?;
            let scope = table_scope(&table, Some(&label));
            if let Some(w) = &delete.selection {
                binder.bind_predicate(w, &scope)?;
            }
            returning_columns(binder, delete.returning.as_deref(), &scope)
        }
        ast::Statement::Explain { .. } => {
            Ok(vec![Column { table: None, name: "QUERY PLAN".into(), ty: DataType::Text }])
        }
        ast::Statement::ShowVariable { variable } => Ok(vec![Column {
            table: None,
            name: variable.iter().map(|v| v.value.to_lowercase()).collect::<Vec<_>>().join("_"),
            ty: DataType::Text,
        }]),
        _ => Ok(Vec::new()),
    }
}

/// Infers the types of parameters in an INSERT's VALUES from the target columns.
fn bind_dml_params(binder: &mut Binder, table: &TableDef, insert: &ast::Insert) -> SqlResult<()> {
    let targets = insert_columns(table, insert)?;
    if let Some(source) = &insert.source
        && let ast::SetExpr::Values(values) = source.body.as_ref()
    {
        for row in &values.rows {
            for (e, &col) in row.content.iter().zip(&targets) {
                if matches!(e, ast::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default")) {
                    continue;
                }
                let (bound, _) = binder.bind_expr(e, &[])?;
                param_type(binder, &bound, &table.columns[col].ty);
            }
        }
    }
    Ok(())
}

fn param_type(binder: &mut Binder, e: &Expr, ty: &DataType) {
    if let Expr::Param(i, DataType::Unknown) = e {
        if binder.params.len() <= *i {
            binder.params.resize(i + 1, DataType::Unknown);
        }
        binder.params[*i] = ty.clone();
    }
}

fn returning_columns(
    binder: &mut Binder,
    returning: Option<&[ast::SelectItem]>,
    scope: &[Column],
) -> SqlResult<Vec<Column>> {
    Ok(match returning {
        Some(items) => bind_returning(binder, items, scope)?.1,
        None => Vec::new(),
    })
}

fn table_scope(table: &TableDef, label: Option<&str>) -> Vec<Column> {
    let label = label.unwrap_or(&table.name).to_string();
    table
        .columns
        .iter()
        .map(|c| Column { table: Some(label.clone()), name: c.name.clone(), ty: c.ty.clone() })
        .collect()
}

fn table_object_name(t: &ast::TableObject) -> SqlResult<String> {
    match t {
        ast::TableObject::TableName(name) => object_name(name),
        _ => Err(SqlError::unsupported("INSERT into a table function")),
    }
}

fn dml_target(binder: &Binder, factor: &ast::TableFactor) -> SqlResult<(TableDef, String)> {
    match factor {
        ast::TableFactor::Table { name, alias, .. } => {
            let table = binder.must_table(&object_name(name)?)?;
            let label =
                alias.as_ref().map(|a| a.name.value.to_lowercase()).unwrap_or_else(|| table.name.clone());
            Ok((table, label))
        }
        other => Err(SqlError::unsupported(format!("UPDATE of {other}"))),
    }
}

fn delete_target(binder: &Binder, delete: &ast::Delete) -> SqlResult<(TableDef, String)> {
    let from = match &delete.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    match from.as_slice() {
        [item] if item.joins.is_empty() => dml_target(binder, &item.relation),
        _ => Err(SqlError::unsupported("DELETE from several tables")),
    }
}

fn bind_returning(
    binder: &mut Binder,
    items: &[ast::SelectItem],
    scope: &[Column],
) -> SqlResult<(Vec<Expr>, Vec<Column>)> {
    let mut exprs = Vec::new();
    let mut columns = Vec::new();
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) => {
                for (i, c) in scope.iter().enumerate() {
                    exprs.push(Expr::Column { depth: 0, index: i });
                    columns.push(c.clone());
                }
            }
            ast::SelectItem::UnnamedExpr(e) => {
                let (b, ty) = binder.bind_expr(e, scope)?;
                let name = match e {
                    ast::Expr::Identifier(i) => i.value.to_lowercase(),
                    ast::Expr::CompoundIdentifier(p) => {
                        p.last().map(|i| i.value.to_lowercase()).unwrap_or_default()
                    }
                    _ => "?column?".into(),
                };
                exprs.push(b);
                columns.push(Column { table: None, name, ty });
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                let (b, ty) = binder.bind_expr(expr, scope)?;
                exprs.push(b);
                columns.push(Column { table: None, name: alias.value.to_lowercase(), ty });
            }
            other => return Err(SqlError::unsupported(format!("RETURNING {other}"))),
        }
    }
    Ok((exprs, columns))
}

fn command(tag: impl Into<String>) -> Outcome {
    Outcome::Command { tag: tag.into() }
}

/// Whether `statement` writes table definitions.
fn changes_catalog(statement: &ast::Statement) -> bool {
    matches!(
        statement,
        ast::Statement::CreateTable(_)
            | ast::Statement::CreateIndex(_)
            | ast::Statement::Drop { .. }
            | ast::Statement::AlterTable(_)
    )
}

/// Binds a SELECT, or takes its plan from `slot` when one was bound at the catalog version
/// `txn` sees (only transactions that use the catalog cache have a version).
fn bound_query(
    txn: &Txn,
    ks: &Keyspace,
    catalog: Option<&CatalogCache>,
    slot: Option<&PlanSlot>,
    query: &ast::Query,
    param_types: Vec<DataType>,
) -> SqlResult<Arc<Query>> {
    let version = || catalog.and_then(|c| c.version_for(txn));
    let bind = |types| Binder::new(txn, ks, types).with_catalog(catalog).bind_query(query).map(Arc::new);
    let Some((slot, at)) = slot.zip(version()) else { return bind(param_types) };
    if let Some(cached) = &*slot.lock().expect("plan lock poisoned")
        && cached.version == at
        && cached.param_types == param_types
    {
        return Ok(cached.query.clone());
    }
    let bound = bind(param_types.clone())?;
    if version() == Some(at) {
        *slot.lock().expect("plan lock poisoned") =
            Some(CachedPlan { version: at, param_types, query: bound.clone() });
    }
    Ok(bound)
}

/// Runs one statement inside `txn`, with table definitions from `catalog` and a SELECT's
/// plan from `plan` when given.
fn run(
    txn: &mut Txn,
    ks: &Keyspace,
    catalog: Option<&CatalogCache>,
    plan: Option<&PlanSlot>,
    statement: &ast::Statement,
    params: &[Value],
    locking: Option<RowLocking>,
) -> SqlResult<Outcome> {
    let param_types = params.iter().map(Value::data_type).collect();
    match statement {
        ast::Statement::Query(q) => {
            let query = bound_query(txn, ks, catalog, plan, q, param_types)?;
            let rows = Executor { txn, ks, params }.run(&query.plan, None)?;
            let tag = format!("SELECT {}", rows.len());
            Ok(Outcome::Rows { columns: query.columns.clone(), rows, tag })
        }
        ast::Statement::Explain { statement, .. } => {
            let ast::Statement::Query(q) = statement.as_ref() else {
                return Err(SqlError::unsupported("EXPLAIN of anything but a query"));
            };
            let mut binder = Binder::new(txn, ks, param_types);
            let query = binder.bind_query(q)?;
            let rows = plan::explain(&query.plan).into_iter().map(|l| vec![Value::Text(l)]).collect();
            let columns = vec![Column { table: None, name: "QUERY PLAN".into(), ty: DataType::Text }];
            Ok(Outcome::Rows { columns, rows, tag: "EXPLAIN".into() })
        }
        ast::Statement::CreateTable(create) => create_table(txn, ks, create),
        ast::Statement::CreateIndex(create) => create_index(txn, ks, create),
        ast::Statement::Drop { object_type, if_exists, names, .. } => {
            drop(txn, ks, object_type, *if_exists, names)
        }
        ast::Statement::AlterTable(alter) => alter_table(txn, ks, alter),
        ast::Statement::Truncate(truncate) => {
            for target in &truncate.table_names {
                let table = catalog::must_table(txn, ks, &object_name(&target.name)?)?;
                RowTable { ks, def: &table }.truncate(txn)?;
            }
            Ok(command("TRUNCATE TABLE"))
        }
        ast::Statement::Insert(insert) => insert_rows(txn, ks, catalog, insert, params),
        ast::Statement::Update(update) => update_rows(txn, ks, catalog, update, params, locking),
        ast::Statement::Delete(delete) => delete_rows(txn, ks, catalog, delete, params, locking),
        other => Err(SqlError::unsupported(format!("statement {}", first_words(&other.to_string())))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

// ---------- DDL ----------

fn parse_expr_text(text: &str) -> SqlResult<ast::Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::syntax(e.to_string()))
}

fn column_def(txn: &Txn, ks: &Keyspace, c: &ast::ColumnDef, table: &mut TableDef) -> SqlResult<()> {
    let name = c.name.value.to_lowercase();
    if table.column_index(&name).is_some() {
        return Err(SqlError::new("42701", format!("column \"{name}\" specified more than once")));
    }
    let type_name = c.data_type.to_string();
    let ty = DataType::parse(&type_name)?;
    let position = table.columns.len();
    let mut column = ColumnDef { name: name.clone(), ty, nullable: true, default: None };
    let serial = matches!(type_name.to_uppercase().as_str(), "SERIAL" | "BIGSERIAL");
    if serial {
        return Err(SqlError::unsupported("SERIAL (use an explicit key or gen_random_uuid())"));
    }
    for option in &c.options {
        match &option.option {
            ast::ColumnOption::Null => column.nullable = true,
            ast::ColumnOption::NotNull => column.nullable = false,
            ast::ColumnOption::Default(e) => {
                // Check now that the default binds, so errors surface at CREATE time.
                let mut binder = Binder::new(txn, ks, Vec::new());
                binder.bind_expr(e, &[])?;
                column.default = Some(e.to_string());
            }
            ast::ColumnOption::PrimaryKey(_) => {
                if !table.primary_key.is_empty() {
                    return Err(SqlError::new(
                        "42P16",
                        format!("multiple primary keys for table \"{}\" are not allowed", table.name),
                    ));
                }
                table.primary_key = vec![position];
                column.nullable = false;
            }
            ast::ColumnOption::Unique(_) => table.indexes.push(IndexDef {
                id: 0,
                name: format!("{}_{}_key", table.name, name),
                columns: vec![position],
                unique: true,
            }),
            ast::ColumnOption::Check(check) => {
                let constraint = format!("{}_{}_check", table.name, name);
                table.checks.push((constraint, check.expr.to_string()));
            }
            other => return Err(SqlError::unsupported(format!("column option {other}"))),
        }
    }
    table.columns.push(column);
    Ok(())
}

fn index_columns(table: &TableDef, columns: &[ast::IndexColumn]) -> SqlResult<Vec<usize>> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            ast::Expr::Identifier(i) => table.must_column(&i.value.to_lowercase()),
            other => Err(SqlError::unsupported(format!("index on expression {other}"))),
        })
        .collect()
}

fn create_table(txn: &mut Txn, ks: &Keyspace, create: &ast::CreateTable) -> SqlResult<Outcome> {
    let name = object_name(&create.name)?;
    if catalog::get_table(txn, ks, &name)?.is_some() {
        if create.if_not_exists {
            return Ok(command("CREATE TABLE"));
        }
        return Err(SqlError::new("42P07", format!("relation \"{name}\" already exists")));
    }
    if create.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE AS"));
    }
    let mut table = TableDef {
        id: 0,
        name: name.clone(),
        columns: Vec::new(),
        primary_key: Vec::new(),
        checks: Vec::new(),
        indexes: Vec::new(),
        feed: catalog::is_feed(txn, ks, &name)?,
    };
    for c in &create.columns {
        column_def(txn, ks, c, &mut table)?;
    }
    for constraint in &create.constraints {
        match constraint {
            ast::TableConstraint::PrimaryKey(pk) => {
                if !table.primary_key.is_empty() {
                    return Err(SqlError::new(
                        "42P16",
                        format!("multiple primary keys for table \"{name}\" are not allowed"),
                    ));
                }
                table.primary_key = index_columns(&table, &pk.columns)?;
                for &c in &table.primary_key {
                    table.columns[c].nullable = false;
                }
            }
            ast::TableConstraint::Unique(u) => {
                let columns = index_columns(&table, &u.columns)?;
                let index_name = u.name.as_ref().map(|n| n.value.to_lowercase()).unwrap_or_else(|| {
                    let names: Vec<&str> = columns.iter().map(|&c| table.columns[c].name.as_str()).collect();
                    format!("{name}_{}_key", names.join("_"))
                });
                table.indexes.push(IndexDef { id: 0, name: index_name, columns, unique: true });
            }
            ast::TableConstraint::Check(check) => {
                let constraint = check
                    .name
                    .as_ref()
                    .map(|n| n.value.to_lowercase())
                    .unwrap_or_else(|| format!("{name}_check"));
                table.checks.push((constraint, check.expr.to_string()));
            }
            other => return Err(SqlError::unsupported(format!("constraint {other}"))),
        }
    }
    if table.columns.is_empty() {
        return Err(SqlError::unsupported("a table without columns"));
    }
    // Check constraints must bind over the table's columns.
    let scope = table_scope(&table, None);
    for (_, check) in &table.checks {
        Binder::new(txn, ks, Vec::new()).bind_predicate(&parse_expr_text(check)?, &scope)?;
    }
    table.id = catalog::next_id(txn, ks)?;
    for index in &mut table.indexes {
        index.id = catalog::next_id(txn, ks)?;
    }
    catalog::put_table(txn, ks, &table)?;
    Ok(command("CREATE TABLE"))
}

fn create_index(txn: &mut Txn, ks: &Keyspace, create: &ast::CreateIndex) -> SqlResult<Outcome> {
    let mut table = catalog::must_table(txn, ks, &object_name(&create.table_name)?)?;
    let columns = index_columns(&table, &create.columns)?;
    let name = match &create.name {
        Some(n) => object_name(n)?,
        None => {
            let names: Vec<&str> = columns.iter().map(|&c| table.columns[c].name.as_str()).collect();
            format!("{}_{}_idx", table.name, names.join("_"))
        }
    };
    for other in catalog::list_tables(txn, ks)? {
        if other.indexes.iter().any(|i| i.name == name) {
            if create.if_not_exists {
                return Ok(command("CREATE INDEX"));
            }
            return Err(SqlError::new("42P07", format!("relation \"{name}\" already exists")));
        }
    }
    let index = IndexDef { id: catalog::next_id(txn, ks)?, name, columns, unique: create.unique };
    // Build the index from the existing rows, enforcing uniqueness.
    let only_new = TableDef { indexes: vec![index.clone()], ..table.clone() };
    let storage = RowTable { ks, def: &only_new };
    let rows = RowTable { ks, def: &table }.scan(txn)?;
    for (key, row) in &rows {
        storage.index_row(txn, &index, key, row)?;
    }
    table.indexes.push(index);
    catalog::put_table(txn, ks, &table)?;
    Ok(command("CREATE INDEX"))
}

fn drop(
    txn: &mut Txn,
    ks: &Keyspace,
    object_type: &ast::ObjectType,
    if_exists: bool,
    names: &[ast::ObjectName],
) -> SqlResult<Outcome> {
    match object_type {
        ast::ObjectType::Table => {
            for n in names {
                let name = object_name(n)?;
                match catalog::get_table(txn, ks, &name)? {
                    Some(table) => {
                        RowTable { ks, def: &table }.truncate(txn)?;
                        catalog::delete_table(txn, ks, &name)?;
                    }
                    None if if_exists => {}
                    None => return Err(SqlError::new("42P01", format!("table \"{name}\" does not exist"))),
                }
            }
            Ok(command("DROP TABLE"))
        }
        ast::ObjectType::Index => {
            for n in names {
                let name = object_name(n)?;
                let mut found = false;
                for mut table in catalog::list_tables(txn, ks)? {
                    if let Some(pos) = table.indexes.iter().position(|i| i.name == name) {
                        let index = table.indexes.remove(pos);
                        let only = TableDef { indexes: vec![index], ..table.clone() };
                        RowTable { ks, def: &only }.drop_index_entries(txn)?;
                        catalog::put_table(txn, ks, &table)?;
                        found = true;
                    }
                }
                if !found && !if_exists {
                    return Err(SqlError::new("42704", format!("index \"{name}\" does not exist")));
                }
            }
            Ok(command("DROP INDEX"))
        }
        other => Err(SqlError::unsupported(format!("DROP {other}"))),
    }
}

fn alter_table(txn: &mut Txn, ks: &Keyspace, alter: &ast::AlterTable) -> SqlResult<Outcome> {
    let mut table = catalog::must_table(txn, ks, &object_name(&alter.name)?)?;
    for op in &alter.operations {
        match op {
            ast::AlterTableOperation::AddColumn { column_def: c, if_not_exists, .. } => {
                if *if_not_exists && table.column_index(&c.name.value.to_lowercase()).is_some() {
                    continue;
                }
                let old = table.clone();
                column_def(txn, ks, c, &mut table)?;
                if table.primary_key != old.primary_key || table.indexes.len() != old.indexes.len() {
                    return Err(SqlError::unsupported("ADD COLUMN with a key or unique constraint"));
                }
                let column = table.columns.last().expect("just added").clone();
                let rows = RowTable { ks, def: &old }.scan(txn)?;
                let default = default_value(txn, ks, &column)?;
                if default.is_null() && !column.nullable && !rows.is_empty() {
                    return Err(SqlError::new(
                        "23502",
                        format!(
                            "column \"{}\" of relation \"{}\" contains null values",
                            column.name, table.name
                        ),
                    ));
                }
                for (key, mut row) in rows {
                    row.push(default.clone());
                    RowTable { ks, def: &table }.put_row(txn, &key, &row)?;
                }
            }
            ast::AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
                for name in column_names {
                    let name = name.value.to_lowercase();
                    let Some(pos) = table.column_index(&name) else {
                        if *if_exists {
                            continue;
                        }
                        return Err(SqlError::new(
                            "42703",
                            format!("column \"{name}\" of relation \"{}\" does not exist", table.name),
                        ));
                    };
                    if table.primary_key.contains(&pos) {
                        return Err(SqlError::unsupported("dropping a primary key column"));
                    }
                    let rows = RowTable { ks, def: &table }.scan(txn)?;
                    // Drop the indexes on the column, then renumber the rest.
                    let (dropped, kept): (Vec<_>, Vec<_>) =
                        table.indexes.drain(..).partition(|i| i.columns.contains(&pos));
                    for index in dropped {
                        let only = TableDef { indexes: vec![index], ..table.clone() };
                        RowTable { ks, def: &only }.drop_index_entries(txn)?;
                    }
                    let shift = |c: usize| if c > pos { c - 1 } else { c };
                    let old_indexes = kept.clone();
                    let (old_columns, old_pk) = (table.columns.clone(), table.primary_key.clone());
                    table.indexes = kept
                        .into_iter()
                        .map(|mut i| {
                            i.columns = i.columns.into_iter().map(shift).collect();
                            i
                        })
                        .collect();
                    table.primary_key = table.primary_key.iter().map(|&c| shift(c)).collect();
                    table.columns.remove(pos);
                    let before = TableDef {
                        indexes: old_indexes,
                        columns: old_columns,
                        primary_key: old_pk,
                        ..table.clone()
                    };
                    for (key, mut row) in rows {
                        RowTable { ks, def: &before }.delete(txn, &key, &row)?;
                        row.remove(pos);
                        let after = RowTable { ks, def: &table };
                        after.put_row(txn, &key, &row)?;
                        after.index_all(txn, &key, &row)?;
                    }
                }
            }
            ast::AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                let pos = table.must_column(&old_column_name.value.to_lowercase())?;
                let new = new_column_name.value.to_lowercase();
                if table.column_index(&new).is_some() {
                    return Err(SqlError::new(
                        "42701",
                        format!("column \"{new}\" of relation \"{}\" already exists", table.name),
                    ));
                }
                table.columns[pos].name = new;
                // A feed's rows are JSON objects keyed by column name: send them anew.
                let storage = RowTable { ks, def: &table };
                if table.feed {
                    for (key, row) in storage.scan(txn)? {
                        storage.emit(txn, RowOp::Upsert, &key, &row)?;
                    }
                }
            }
            other => return Err(SqlError::unsupported(format!("ALTER TABLE {other}"))),
        }
    }
    catalog::put_table(txn, ks, &table)?;
    Ok(command("ALTER TABLE"))
}

// ---------- DML ----------

fn default_value(txn: &Txn, ks: &Keyspace, column: &ColumnDef) -> SqlResult<Value> {
    match &column.default {
        Some(text) => {
            let (e, _) = Binder::new(txn, ks, Vec::new()).bind_expr(&parse_expr_text(text)?, &[])?;
            let v =
                Executor { txn, ks, params: &[] }.run(&Plan::Project(Box::new(Plan::Unit), vec![e]), None)?;
            v[0][0].clone().coerce_to_column(&column.ty)
        }
        None => Ok(Value::Null),
    }
}

/// Coerces a full row to the table's types and checks NOT NULL and CHECK constraints.
fn validate(
    txn: &Txn,
    ks: &Keyspace,
    table: &TableDef,
    checks: &[(String, Expr)],
    row: Row,
    params: &[Value],
) -> SqlResult<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (value, column) in row.into_iter().zip(&table.columns) {
        let value = value.coerce_to_column(&column.ty).map_err(|e| {
            if e.code == "22P02" || e.code == "42846" {
                SqlError::new(
                    "42804",
                    format!(
                        "column \"{}\" is of type {} but expression is of another type: {}",
                        column.name, column.ty, e.message
                    ),
                )
            } else {
                e
            }
        })?;
        if value.is_null() && !column.nullable {
            return Err(SqlError::new(
                "23502",
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    column.name, table.name
                ),
            ));
        }
        out.push(value);
    }
    let exec = Executor { txn, ks, params };
    for (name, check) in checks {
        if check.eval(&exec, &Env { row: &out, outer: None })?.as_bool()? == Some(false) {
            return Err(SqlError::new(
                "23514",
                format!("new row for relation \"{}\" violates check constraint \"{name}\"", table.name),
            ));
        }
    }
    Ok(out)
}

fn bind_checks(txn: &Txn, ks: &Keyspace, table: &TableDef) -> SqlResult<Vec<(String, Expr)>> {
    let scope = table_scope(table, None);
    table
        .checks
        .iter()
        .map(|(name, text)| {
            Ok((
                name.clone(),
                Binder::new(txn, ks, Vec::new()).bind_predicate(&parse_expr_text(text)?, &scope)?,
            ))
        })
        .collect()
}

fn insert_columns(table: &TableDef, insert: &ast::Insert) -> SqlResult<Vec<usize>> {
    if insert.columns.is_empty() {
        return Ok((0..table.columns.len()).collect());
    }
    insert.columns.iter().map(|c| table.must_column(&object_name(c)?)).collect()
}

fn rows_outcome(verb: &str, count: usize, returning: Option<(Vec<Column>, Vec<Row>)>) -> Outcome {
    let tag = if verb == "INSERT" { format!("INSERT 0 {count}") } else { format!("{verb} {count}") };
    match returning {
        Some((columns, rows)) => Outcome::Rows { columns, rows, tag },
        None => Outcome::Command { tag },
    }
}

fn insert_rows(
    txn: &mut Txn,
    ks: &Keyspace,
    catalog: Option<&CatalogCache>,
    insert: &ast::Insert,
    params: &[Value],
) -> SqlResult<Outcome> {
    let table = catalog::must_table_via(catalog, txn, ks, &table_object_name(&insert.table)?)?;
    let targets = insert_columns(&table, insert)?;
    let scope = table_scope(&table, None);
    let checks = bind_checks(txn, ks, &table)?;
    let param_types: Vec<DataType> = params.iter().map(Value::data_type).collect();
    let Some(source) = &insert.source else {
        return Err(SqlError::unsupported("INSERT without VALUES or SELECT"));
    };
    // Source rows: VALUES may say DEFAULT, so handle it here rather than in the binder.
    let mut source_rows: Vec<Vec<Option<Value>>> = Vec::new();
    {
        let exec = Executor { txn, ks, params };
        match source.body.as_ref() {
            ast::SetExpr::Values(values) if source.order_by.is_none() && source.limit_clause.is_none() => {
                for row in &values.rows {
                    if row.content.len() != targets.len() {
                        return Err(SqlError::new(
                            "42601",
                            "INSERT has more expressions than target columns",
                        ));
                    }
                    let mut out = Vec::with_capacity(row.content.len());
                    for e in &row.content {
                        if matches!(e, ast::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default")) {
                            out.push(None);
                            continue;
                        }
                        let (bound, _) = Binder::new(txn, ks, param_types.clone()).bind_expr(e, &[])?;
                        out.push(Some(bound.eval(&exec, &Env { row: &[], outer: None })?));
                    }
                    source_rows.push(out);
                }
            }
            _ => {
                let query = Binder::new(txn, ks, param_types.clone()).bind_query(source)?;
                if query.columns.len() != targets.len() {
                    return Err(SqlError::new("42601", "INSERT has more expressions than target columns"));
                }
                source_rows = exec
                    .run(&query.plan, None)?
                    .into_iter()
                    .map(|r| r.into_iter().map(Some).collect())
                    .collect();
            }
        }
    }
    let returning = match &insert.returning {
        Some(items) => Some(bind_returning(&mut Binder::new(txn, ks, param_types.clone()), items, &scope)?),
        None => None,
    };
    let on_conflict = match &insert.on {
        Some(ast::OnInsert::OnConflict(c)) => Some(c),
        Some(_) => return Err(SqlError::unsupported("ON DUPLICATE KEY")),
        None => None,
    };
    let defaults: Vec<Value> =
        table.columns.iter().map(|c| default_value(txn, ks, c)).collect::<SqlResult<_>>()?;
    let mut count = 0;
    let mut returned = Vec::new();
    for source_row in source_rows {
        let mut row = defaults.clone();
        for (value, &col) in source_row.into_iter().zip(&targets) {
            if let Some(v) = value {
                row[col] = v;
            }
        }
        let row = validate(txn, ks, &table, &checks, row, params)?;
        let storage = RowTable { ks, def: &table };
        match storage.insert(txn, &row) {
            Ok(()) => {
                count += 1;
                returned.push(row);
            }
            Err(e) if e.code == "23505" && on_conflict.is_some() => {
                let conflict = on_conflict.expect("checked");
                match &conflict.action {
                    ast::OnConflictAction::DoNothing => {}
                    ast::OnConflictAction::DoUpdate(update) => {
                        let existing = conflicting_row(txn, &storage, &table, &row)?
                            .ok_or_else(|| SqlError::new("XX000", "conflicting row vanished"))?;
                        // SET and WHERE see the existing row and `excluded`, the proposed one.
                        let mut scope2 = scope.clone();
                        scope2.extend(table_scope(&table, Some("excluded")));
                        let mut binder = Binder::new(txn, ks, param_types.clone());
                        let env_row: Row = existing.1.iter().chain(&row).cloned().collect();
                        let exec = Executor { txn, ks, params };
                        if let Some(w) = &update.selection {
                            let pred = binder.bind_predicate(w, &scope2)?;
                            if pred.eval(&exec, &Env { row: &env_row, outer: None })?.as_bool()? != Some(true)
                            {
                                continue;
                            }
                        }
                        let mut new_row = existing.1.clone();
                        for a in &update.assignments {
                            let col = assignment_column(&table, a)?;
                            let (e, _) = binder.bind_expr(&a.value, &scope2)?;
                            new_row[col] = e.eval(&exec, &Env { row: &env_row, outer: None })?;
                        }
                        let new_row = validate(txn, ks, &table, &checks, new_row, params)?;
                        storage.delete(txn, &existing.0, &existing.1)?;
                        storage.insert(txn, &new_row)?;
                        count += 1;
                        returned.push(new_row);
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    let returning = project_returning(txn, ks, params, returning, returned)?;
    Ok(rows_outcome("INSERT", count, returning))
}

/// The stored row that `row` conflicts with, by primary key or a unique index.
fn conflicting_row(
    txn: &Txn,
    storage: &RowTable,
    table: &TableDef,
    row: &Row,
) -> SqlResult<Option<KeyedRow>> {
    if !table.primary_key.is_empty() {
        let pk: Vec<Value> = table.primary_key.iter().map(|&c| row[c].clone()).collect();
        if let Some(found) = storage.get(txn, &pk)? {
            return Ok(Some(found));
        }
    }
    for index in table.indexes.iter().filter(|i| i.unique) {
        let values: Vec<Value> = index.columns.iter().map(|&c| row[c].clone()).collect();
        if let Some(found) = storage.index_lookup(txn, index, &values)?.into_iter().next() {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn project_returning(
    txn: &Txn,
    ks: &Keyspace,
    params: &[Value],
    returning: Option<(Vec<Expr>, Vec<Column>)>,
    rows: Vec<Row>,
) -> SqlResult<Option<(Vec<Column>, Vec<Row>)>> {
    let Some((exprs, columns)) = returning else { return Ok(None) };
    let exec = Executor { txn, ks, params };
    let rows = rows
        .iter()
        .map(|row| exprs.iter().map(|e| e.eval(&exec, &Env { row, outer: None })).collect())
        .collect::<SqlResult<_>>()?;
    Ok(Some((columns, rows)))
}

fn assignment_column(table: &TableDef, a: &ast::Assignment) -> SqlResult<usize> {
    match &a.target {
        ast::AssignmentTarget::ColumnName(name) => table.must_column(&object_name(name)?),
        ast::AssignmentTarget::Tuple(_) => Err(SqlError::unsupported("tuple assignment")),
    }
}

/// The rows of `table` that an UPDATE or DELETE with `filter` writes, with their keys;
/// locked and re-read first in READ COMMITTED (see `lock_rows`).
fn target_rows(
    txn: &mut Txn,
    ks: &Keyspace,
    table: &TableDef,
    filter: Option<&Expr>,
    params: &[Value],
    locking: Option<RowLocking>,
) -> SqlResult<Vec<KeyedRow>> {
    let exec = Executor { txn, ks, params };
    let access = match filter {
        Some(f) => plan::choose_access(table, f),
        None => plan::Access::Full,
    };
    let candidates = exec.fetch(table, &access, None)?;
    let targets = keep_matching(&exec, filter, candidates)?;
    lock_rows(txn, ks, table, filter, params, targets, locking)
}

/// The rows for which `filter` is true (all of them without a filter).
fn keep_matching(
    exec: &Executor,
    filter: Option<&Expr>,
    rows: impl IntoIterator<Item = KeyedRow>,
) -> SqlResult<Vec<KeyedRow>> {
    let mut out = Vec::new();
    for (key, row) in rows {
        if let Some(f) = filter
            && f.eval(exec, &Env { row: &row, outer: None })?.as_bool()? != Some(true)
        {
            continue;
        }
        out.push((key, row));
    }
    Ok(out)
}

/// In READ COMMITTED, locks each target row, then moves to a fresh snapshot and re-reads the
/// rows, keeping those that still match: a row another transaction changed meanwhile is
/// updated from its new version, not lost. Without locking the rows are returned as they are.
fn lock_rows(
    txn: &mut Txn,
    ks: &Keyspace,
    table: &TableDef,
    filter: Option<&Expr>,
    params: &[Value],
    targets: Vec<KeyedRow>,
    locking: Option<RowLocking>,
) -> SqlResult<Vec<KeyedRow>> {
    let Some(locking) = locking else { return Ok(targets) };
    if targets.is_empty() {
        return Ok(targets);
    }
    let mut keys: Vec<Vec<u8>> = targets.into_iter().map(|(key, _)| key).collect();
    // One order for every locker keeps two multi-row statements from deadlocking.
    keys.sort();
    for key in &keys {
        let lock_key = [table.id.to_be_bytes().as_slice(), key].concat();
        locking.locks.acquire(lock_key, locking.owner, locking.timeout)?;
    }
    txn.refresh_snapshot()?;
    let storage = RowTable { ks, def: table };
    let mut current = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(row) = storage.get_by_key(txn, &key)? {
            current.push((key, row));
        }
    }
    keep_matching(&Executor { txn, ks, params }, filter, current)
}

fn update_rows(
    txn: &mut Txn,
    ks: &Keyspace,
    catalog: Option<&CatalogCache>,
    update: &ast::Update,
    params: &[Value],
    locking: Option<RowLocking>,
) -> SqlResult<Outcome> {
    if update.from.is_some() {
        return Err(SqlError::unsupported("UPDATE ... FROM"));
    }
    let (table, label) =
        dml_target(&Binder::new(txn, ks, Vec::new()).with_catalog(catalog), &update.table.relation)?;
    let scope = table_scope(&table, Some(&label));
    let param_types: Vec<DataType> = params.iter().map(Value::data_type).collect();
    let mut binder = Binder::new(txn, ks, param_types);
    let filter = update.selection.as_ref().map(|w| binder.bind_predicate(w, &scope)).transpose()?;
    let mut sets = Vec::new();
    for a in &update.assignments {
        let col = assignment_column(&table, a)?;
        let value = if matches!(&a.value, ast::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("default"))
        {
            Expr::Literal(default_value(txn, ks, &table.columns[col])?)
        } else {
            binder.bind_expr(&a.value, &scope)?.0
        };
        sets.push((col, value));
    }
    let returning = match &update.returning {
        Some(items) => Some(bind_returning(&mut binder, items, &scope)?),
        None => None,
    };
    let checks = bind_checks(txn, ks, &table)?;
    let targets = target_rows(txn, ks, &table, filter.as_ref(), params, locking)?;
    let mut new_rows = Vec::with_capacity(targets.len());
    {
        let exec = Executor { txn, ks, params };
        for (key, old) in &targets {
            let mut new = old.clone();
            for (col, e) in &sets {
                new[*col] = e.eval(&exec, &Env { row: old, outer: None })?;
            }
            new_rows.push((key.clone(), old.clone(), validate(txn, ks, &table, &checks, new, params)?));
        }
    }
    let storage = RowTable { ks, def: &table };
    // Delete every old row first, so rows may swap unique values within one statement.
    for (key, old, _) in &new_rows {
        storage.delete(txn, key, old)?;
    }
    let mut returned = Vec::new();
    for (key, _, new) in new_rows {
        if table.primary_key.is_empty() {
            storage.put_row(txn, &key, &new)?;
            storage.index_all(txn, &key, &new)?;
        } else {
            storage.insert(txn, &new)?;
        }
        returned.push(new);
    }
    let count = returned.len();
    let returning = project_returning(txn, ks, params, returning, returned)?;
    Ok(rows_outcome("UPDATE", count, returning))
}

fn delete_rows(
    txn: &mut Txn,
    ks: &Keyspace,
    catalog: Option<&CatalogCache>,
    delete: &ast::Delete,
    params: &[Value],
    locking: Option<RowLocking>,
) -> SqlResult<Outcome> {
    let (table, label) = delete_target(&Binder::new(txn, ks, Vec::new()).with_catalog(catalog), delete)?;
    let scope = table_scope(&table, Some(&label));
    let param_types: Vec<DataType> = params.iter().map(Value::data_type).collect();
    let mut binder = Binder::new(txn, ks, param_types);
    let filter = delete.selection.as_ref().map(|w| binder.bind_predicate(w, &scope)).transpose()?;
    let returning = match &delete.returning {
        Some(items) => Some(bind_returning(&mut binder, items, &scope)?),
        None => None,
    };
    let targets = target_rows(txn, ks, &table, filter.as_ref(), params, locking)?;
    let storage = RowTable { ks, def: &table };
    let mut returned = Vec::new();
    for (key, row) in targets {
        storage.delete(txn, &key, &row)?;
        returned.push(row);
    }
    let count = returned.len();
    let returning = project_returning(txn, ks, params, returning, returned)?;
    Ok(rows_outcome("DELETE", count, returning))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(session: &mut Session, query: &str) -> String {
        match session.execute(&format!("EXPLAIN {query}")).unwrap().pop() {
            Some(Outcome::Rows { rows, .. }) => {
                rows.iter().map(|r| r[0].to_text()).collect::<Vec<_>>().join("\n")
            }
            other => panic!("EXPLAIN gave {other:?}"),
        }
    }

    /// The planner reaches rows through keys and indexes when the WHERE clause allows.
    #[test]
    fn explain_shows_the_access_path() {
        let mut session = Sql::open(Store::memory()).unwrap().session();
        session
            .execute(
                "CREATE TABLE t (id INT PRIMARY KEY, a INT, b TEXT, c INT);
                 CREATE INDEX t_a ON t (a); CREATE INDEX t_bc ON t (b, c);
                 CREATE TABLE u (id INT PRIMARY KEY, t_id INT)",
            )
            .unwrap();
        let cases = [
            ("SELECT * FROM t WHERE id = 1", "Primary Key Lookup on t"),
            ("SELECT * FROM t WHERE id > 1 AND id < 9", "Primary Key Range Scan on t"),
            ("SELECT * FROM t WHERE a = 3", "Index Scan using t_a on t (1 of 1 columns)"),
            ("SELECT * FROM t WHERE b = 'x'", "Index Scan using t_bc on t (1 of 2 columns)"),
            ("SELECT * FROM t WHERE b = 'x' AND c = 2", "Index Scan using t_bc on t (2 of 2 columns)"),
            ("SELECT * FROM t WHERE a BETWEEN 1 AND 5", "Index Range Scan using t_a on t"),
            ("SELECT * FROM t WHERE c = 2", "Seq Scan on t (filtered)"),
            ("SELECT * FROM t JOIN u ON u.t_id = t.id", "Hash Inner Join (1 keys)"),
            ("SELECT * FROM t JOIN u ON u.t_id < t.id", "Nested Loop Inner Join"),
        ];
        for (query, want) in cases {
            let plan = plan_of(&mut session, query);
            assert!(plan.contains(want), "{query}:\n{plan}");
        }
        // A correlated subquery looks its rows up by key for each outer row.
        let plan =
            plan_of(&mut session, "SELECT * FROM u WHERE EXISTS (SELECT 1 FROM t WHERE t.id = u.t_id)");
        assert!(plan.contains("Seq Scan on u"), "{plan}");
    }

    /// A table without a primary key keeps its rows in insertion order, as a PostgreSQL heap
    /// does before any update or vacuum: a scan without ORDER BY meets them that way, across
    /// one multi-row INSERT, several statements and several sessions.
    #[test]
    fn rows_without_a_primary_key_come_back_in_insertion_order() {
        let sql = Sql::open(Store::memory()).unwrap();
        let (mut a, mut b) = (sql.session(), sql.session());
        a.execute("CREATE TABLE log (n INT, note TEXT)").unwrap();
        let values: Vec<String> = (0..500).map(|n| format!("({n}, 'x')")).collect();
        a.execute(&format!("INSERT INTO log VALUES {}", values.join(", "))).unwrap();
        for n in 500..520 {
            let session = if n % 2 == 0 { &mut a } else { &mut b };
            session.execute(&format!("INSERT INTO log VALUES ({n}, 'y')")).unwrap();
        }
        let Some(Outcome::Rows { rows, .. }) = b.execute("SELECT n FROM log").unwrap().pop() else {
            panic!("SELECT gave no rows");
        };
        let seen: Vec<String> = rows.iter().map(|r| r[0].to_text()).collect();
        let want: Vec<String> = (0..520).map(|n| n.to_string()).collect();
        assert_eq!(seen, want);
    }

    fn column_names(session: &mut Session, query: &str) -> Vec<String> {
        match session.execute(query).unwrap().pop() {
            Some(Outcome::Rows { columns, .. }) => columns.into_iter().map(|c| c.name).collect(),
            other => panic!("{query} gave {other:?}"),
        }
    }

    /// Table definitions come from the shared catalog cache, yet every transaction still
    /// sees the catalog of its own snapshot and its own uncommitted DDL.
    #[test]
    fn cached_table_definitions_follow_snapshots_and_ddl() {
        let sql = Sql::open(Store::memory()).unwrap();
        let (mut a, mut b) = (sql.session(), sql.session());
        a.execute("CREATE TABLE t (id INT PRIMARY KEY, x INT); INSERT INTO t VALUES (1, 2)").unwrap();
        assert_eq!(column_names(&mut b, "SELECT * FROM t"), ["id", "x"]);

        // A REPEATABLE READ snapshot taken before an ALTER keeps the old definition.
        b.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM t").unwrap();
        a.execute("ALTER TABLE t ADD COLUMN y INT").unwrap();
        assert_eq!(column_names(&mut a, "SELECT * FROM t"), ["id", "x", "y"]);
        assert_eq!(column_names(&mut b, "SELECT * FROM t"), ["id", "x"]);
        b.execute("COMMIT").unwrap();
        assert_eq!(column_names(&mut b, "SELECT * FROM t"), ["id", "x", "y"]);

        // Uncommitted DDL is seen by its own transaction only, and gone after ROLLBACK.
        a.execute("BEGIN; ALTER TABLE t ADD COLUMN z INT").unwrap();
        assert_eq!(column_names(&mut a, "SELECT * FROM t"), ["id", "x", "y", "z"]);
        assert_eq!(column_names(&mut b, "SELECT * FROM t"), ["id", "x", "y"]);
        a.execute("ROLLBACK").unwrap();
        assert_eq!(column_names(&mut a, "SELECT * FROM t"), ["id", "x", "y"]);

        // DML reads definitions through the cache too: after DROP and CREATE under the same
        // name, statements see the new table.
        a.execute("DROP TABLE t; CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        b.execute("INSERT INTO t VALUES ('one')").unwrap();
        assert_eq!(b.execute("UPDATE t SET k = 'two'").unwrap().len(), 1);
        assert_eq!(column_names(&mut b, "SELECT * FROM t"), ["k"]);
        let err = b.execute("INSERT INTO t VALUES (1, 2)").unwrap_err();
        assert_eq!(err.code, "42601", "{}", err.message);
    }

    /// A prepared SELECT keeps its plan across executions, and binds again after DDL.
    #[test]
    fn prepared_plans_are_reused_until_the_catalog_changes() {
        let sql = Sql::open(Store::memory()).unwrap();
        let (mut a, mut b) = (sql.session(), sql.session());
        a.execute("CREATE TABLE t (id INT PRIMARY KEY, x INT); INSERT INTO t VALUES (1, 10), (2, 20)")
            .unwrap();
        let select = b.prepare("SELECT x FROM t WHERE id = $1", &[]).unwrap();
        let x = |b: &mut Session, id: i64| match b.execute_prepared(&select, &[Value::Int(id)]).unwrap() {
            Outcome::Rows { rows, .. } => rows.iter().map(|r| r[0].to_text()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(x(&mut b, 1), ["10"]);
        assert_eq!(x(&mut b, 2), ["20"], "the cached plan takes new parameter values");
        a.execute("UPDATE t SET x = 11 WHERE id = 1").unwrap();
        assert_eq!(x(&mut b, 1), ["11"]);
        // The table the plan was bound to is gone; the new one under its name is read.
        a.execute("DROP TABLE t; CREATE TABLE t (x INT, id INT PRIMARY KEY); INSERT INTO t VALUES (30, 1)")
            .unwrap();
        assert_eq!(x(&mut b, 1), ["30"]);
        // Inside a transaction with its own DDL, the plan is bound afresh.
        b.execute(
            "BEGIN; DROP TABLE t; CREATE TABLE t (id INT PRIMARY KEY, x INT); INSERT INTO t VALUES (1, 40)",
        )
        .unwrap();
        assert_eq!(x(&mut b, 1), ["40"]);
        b.execute("ROLLBACK").unwrap();
        assert_eq!(x(&mut b, 1), ["30"]);
    }

    fn ints(session: &mut Session, query: &str) -> Vec<i64> {
        match session.execute(query).unwrap().pop() {
            Some(Outcome::Rows { rows, .. }) => {
                rows.iter().map(|r| r[0].to_text().parse().unwrap()).collect()
            }
            other => panic!("{query} gave {other:?}"),
        }
    }

    /// ORDER BY on a key or NOT NULL index prefix reads in index order with no Sort, and a
    /// LIMIT stops the scan; results equal those of an explicit sort.
    #[test]
    fn order_by_limit_reads_through_the_index() {
        let mut session = Sql::open(Store::memory()).unwrap().session();
        session
            .execute(
                "CREATE TABLE e (id INT PRIMARY KEY, at INT NOT NULL, tag INT);
                 CREATE INDEX e_at ON e (at); CREATE INDEX e_tag ON e (tag)",
            )
            .unwrap();
        let values: Vec<String> = (0..200).map(|i| format!("({i}, {}, {})", (i * 37) % 200, i % 7)).collect();
        session.execute(&format!("INSERT INTO e VALUES {}", values.join(", "))).unwrap();
        let plans = [
            ("SELECT id FROM e ORDER BY id LIMIT 3", "Seq Scan on e in primary key order"),
            ("SELECT id FROM e ORDER BY id DESC LIMIT 3", "in primary key order (backward)"),
            ("SELECT id FROM e ORDER BY at LIMIT 3", "Seq Scan on e in e_at order"),
            (
                "SELECT id FROM e WHERE at > 50 ORDER BY at DESC LIMIT 3",
                "Index Range Scan using e_at on e in e_at order (backward)",
            ),
            ("SELECT id FROM e WHERE at % 2 = 0 ORDER BY id LIMIT 2", "in primary key order (filtered)"),
        ];
        for (query, expected) in plans {
            let plan = plan_of(&mut session, query);
            assert!(plan.contains(expected), "{query}:\n{plan}");
            assert!(!plan.contains("Sort"), "{query}:\n{plan}");
        }
        // A nullable column keeps the Sort (NULLs order differently in the index).
        assert!(plan_of(&mut session, "SELECT id FROM e ORDER BY tag LIMIT 3").contains("Sort"));
        assert_eq!(
            ints(&mut session, "SELECT id FROM e ORDER BY id DESC LIMIT 3 OFFSET 1"),
            vec![198, 197, 196]
        );
        let by_index = ints(&mut session, "SELECT id FROM e WHERE at > 50 ORDER BY at DESC LIMIT 5");
        let by_sort = ints(&mut session, "SELECT id FROM e WHERE at > 50 ORDER BY at + 0 DESC LIMIT 5");
        assert_eq!(by_index, by_sort);
        assert_eq!(ints(&mut session, "SELECT id FROM e WHERE at % 2 = 0 ORDER BY id LIMIT 2"), vec![0, 2]);
        // An equality on another index is still looked up there, then sorted.
        assert_eq!(ints(&mut session, "SELECT id FROM e WHERE tag = 3 ORDER BY id LIMIT 2"), vec![3, 10]);
        assert_eq!(ints(&mut session, "SELECT at FROM e ORDER BY at LIMIT 2"), vec![0, 1]);
    }
}
