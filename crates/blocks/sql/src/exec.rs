//! The executor: runs a plan to completion and returns its rows.
//!
//! Operators materialize their output (a `Vec` of rows). That keeps each operator a few lines
//! and is fast for the OLTP queries this block serves; see the crate's Limitations.

use crate::cancel;
use crate::catalog::{IndexDef, TableDef};
use crate::error::{SqlError, SqlResult};
use crate::expr::{Context, Env, Expr};
use crate::plan::{Access, AggFunc, Aggregate, JoinKind, Plan, ScanOrder, SetOp, SortKey};
use crate::row::Row;
use crate::table::{KeyedRow, RowTable, TableStorage};
use crate::types::{DataType, Value};
use rust_decimal::Decimal;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use strata_core::{Keyspace, Txn};

/// Most rows one operator may hold; a query past it fails instead of exhausting memory.
pub const MAX_ROWS: usize = 10_000_000;

pub struct Executor<'a> {
    pub txn: &'a Txn,
    pub ks: &'a Keyspace,
    pub params: &'a [Value],
}

impl Context for Executor<'_> {
    fn param(&self, index: usize) -> SqlResult<Value> {
        self.params
            .get(index)
            .cloned()
            .ok_or_else(|| SqlError::new("08P01", format!("there is no parameter ${}", index + 1)))
    }

    fn run_subquery(&self, plan: &Plan, env: &Env) -> SqlResult<Vec<Row>> {
        self.run(plan, Some(env))
    }
}

/// A key for hashing rows by value (grouping, DISTINCT, hash joins, set operations).
fn hash_key(values: &[Value]) -> Vec<u8> {
    let normalized: Vec<Value> = values
        .iter()
        .map(|v| match v {
            // Equal numbers of different variants must hash alike.
            Value::Int(i) => Value::Numeric(Decimal::from(*i)),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::Numeric(Decimal::from(*f as i64)),
            Value::Numeric(d) => Value::Numeric(d.normalize()),
            other => other.clone(),
        })
        .collect();
    crate::row::encode(&normalized)
}

fn check_size(rows: &[Row]) -> SqlResult<()> {
    if rows.len() > MAX_ROWS {
        return Err(SqlError::new("54000", format!("a query step produced more than {MAX_ROWS} rows")));
    }
    Ok(())
}

impl Executor<'_> {
    fn eval(&self, e: &Expr, row: &[Value], outer: Option<&Env>) -> SqlResult<Value> {
        e.eval(self, &Env { row, outer })
    }

    fn truthy(&self, e: &Expr, row: &[Value], outer: Option<&Env>) -> SqlResult<bool> {
        Ok(self.eval(e, row, outer)?.as_bool()? == Some(true))
    }

    pub fn run(&self, plan: &Plan, outer: Option<&Env>) -> SqlResult<Vec<Row>> {
        let rows = match plan {
            Plan::Unit => vec![Vec::new()],
            Plan::Values(rows) => rows
                .iter()
                .map(|r| r.iter().map(|e| self.eval(e, &[], outer)).collect())
                .collect::<SqlResult<_>>()?,
            Plan::Scan { table, access, filter, order } => {
                self.scan(table, access, filter.as_ref(), order.as_ref(), usize::MAX, outer)?
            }
            Plan::Filter(input, predicate) => {
                let mut rows = self.run(input, outer)?;
                let mut keep = Vec::with_capacity(rows.len());
                for row in rows.drain(..) {
                    if self.truthy(predicate, &row, outer)? {
                        keep.push(row);
                    }
                }
                keep
            }
            Plan::Project(input, exprs) => self
                .run(input, outer)?
                .iter()
                .map(|row| exprs.iter().map(|e| self.eval(e, row, outer)).collect())
                .collect::<SqlResult<_>>()?,
            Plan::NestedLoopJoin { left, right, kind, on, widths } => {
                let (l, r) = (self.run(left, outer)?, self.run(right, outer)?);
                let all: Vec<usize> = (0..r.len()).collect();
                self.join(&l, &r, *kind, *widths, on.as_ref(), outer, |_| Ok(all.clone()))?
            }
            Plan::HashJoin { left, right, kind, keys, residual, widths } => {
                let (l, r) = (self.run(left, outer)?, self.run(right, outer)?);
                // NULL keys never match, so they are left out of the table.
                let key_of = |row: &Row, left_side: bool| -> SqlResult<Option<Vec<u8>>> {
                    let key: Vec<Value> = keys
                        .iter()
                        .map(|(lk, rk)| self.eval(if left_side { lk } else { rk }, row, outer))
                        .collect::<SqlResult<_>>()?;
                    Ok((!key.iter().any(Value::is_null)).then(|| hash_key(&key)))
                };
                let mut table: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
                for (ri, rrow) in r.iter().enumerate() {
                    if let Some(key) = key_of(rrow, false)? {
                        table.entry(key).or_default().push(ri);
                    }
                }
                self.join(&l, &r, *kind, *widths, residual.as_ref(), outer, |lrow| {
                    Ok(key_of(lrow, true)?.and_then(|k| table.get(&k).cloned()).unwrap_or_default())
                })?
            }
            Plan::Aggregate { input, group_by, aggregates } => {
                self.aggregate(input, group_by, aggregates, outer)?
            }
            Plan::Sort(input, keys) => {
                let rows = self.run(input, outer)?;
                self.sort(rows, keys, outer)?
            }
            Plan::Limit { input, limit, offset } => {
                let count = |e: &Option<Expr>| -> SqlResult<Option<usize>> {
                    match e.as_ref().map(|e| self.eval(e, &[], outer)).transpose()? {
                        Some(Value::Int(n)) if n < 0 => {
                            Err(SqlError::new("2201W", "LIMIT must not be negative"))
                        }
                        Some(Value::Int(n)) => Ok(Some(n as usize)),
                        _ => Ok(None),
                    }
                };
                let (limit, offset) = (count(limit)?, count(offset)?.unwrap_or(0));
                let cap = limit.map_or(usize::MAX, |l| l.saturating_add(offset));
                let rows = self.run_capped(input, cap, outer)?;
                rows.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).collect()
            }
            Plan::Distinct(input) => {
                let mut seen = HashSet::new();
                self.run(input, outer)?.into_iter().filter(|r| seen.insert(hash_key(r))).collect()
            }
            Plan::SetOp { op, all, left, right } => {
                let (l, r) = (self.run(left, outer)?, self.run(right, outer)?);
                set_op(*op, *all, l, r)
            }
        };
        check_size(&rows)?;
        Ok(rows)
    }

    /// Runs `plan` knowing only its first `cap` rows will be used: an ordered scan (under
    /// projections) then stops after `cap` rows; other plans run whole.
    fn run_capped(&self, plan: &Plan, cap: usize, outer: Option<&Env>) -> SqlResult<Vec<Row>> {
        match plan {
            Plan::Project(input, exprs) => self
                .run_capped(input, cap, outer)?
                .iter()
                .map(|row| exprs.iter().map(|e| self.eval(e, row, outer)).collect())
                .collect(),
            Plan::Scan { table, access, filter, order: Some(order) } => {
                let rows = self.scan(table, access, filter.as_ref(), Some(order), cap, outer)?;
                check_size(&rows)?;
                Ok(rows)
            }
            _ => self.run(plan, outer),
        }
    }

    /// The rows of a table scan that pass its filter: all of them, or with `order` the
    /// first `cap` in that order.
    fn scan(
        &self,
        table: &TableDef,
        access: &Access,
        filter: Option<&Expr>,
        order: Option<&ScanOrder>,
        cap: usize,
        outer: Option<&Env>,
    ) -> SqlResult<Vec<Row>> {
        let keep = |row: &Row| -> SqlResult<bool> {
            match filter {
                Some(f) => self.truthy(f, row, outer),
                None => Ok(true),
            }
        };
        let mut rows = Vec::new();
        let Some(order) = order else {
            for (_, row) in self.fetch(table, access, outer)? {
                if keep(&row)? {
                    rows.push(row);
                }
            }
            return Ok(rows);
        };
        let (lower, upper) = match access {
            Access::Range { index, lower, upper } => {
                match self.range_bounds(table, index.as_ref(), lower, upper, outer)? {
                    Some(bounds) => bounds,
                    None => return Ok(rows),
                }
            }
            _ => (None, None),
        };
        if cap == 0 {
            return Ok(rows);
        }
        let storage = RowTable { ks: self.ks, def: table };
        let mut failed = None;
        storage.scan_ordered(
            self.txn,
            order.index.as_ref(),
            lower.as_ref().map(|(v, i)| (v, *i)),
            upper.as_ref().map(|(v, i)| (v, *i)),
            order.desc,
            &mut |(_, row)| match keep(&row) {
                Ok(true) => {
                    rows.push(row);
                    Ok(rows.len() < cap && rows.len() <= MAX_ROWS)
                }
                Ok(false) => Ok(true),
                Err(e) => {
                    failed = Some(e);
                    Ok(false)
                }
            },
        )?;
        match failed {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Reads the rows of `table` that `access` reaches (a superset of those its predicate
    /// keeps: callers still filter).
    pub fn fetch(&self, table: &TableDef, access: &Access, outer: Option<&Env>) -> SqlResult<Vec<KeyedRow>> {
        let storage = RowTable { ks: self.ks, def: table };
        let types =
            |columns: &[usize]| columns.iter().map(|&c| table.columns[c].ty.clone()).collect::<Vec<_>>();
        Ok(match access {
            Access::Full => storage.scan(self.txn)?,
            Access::PrimaryKey(exprs) => match self.key_values(exprs, &types(&table.primary_key), outer)? {
                Some(pk) => storage.get(self.txn, &pk)?.into_iter().collect(),
                None => Vec::new(),
            },
            Access::Index(index, exprs) => match self.key_values(exprs, &types(&index.columns), outer)? {
                Some(values) => storage.index_lookup(self.txn, index, &values)?,
                None => Vec::new(),
            },
            Access::Range { index, lower, upper } => {
                match self.range_bounds(table, index.as_ref(), lower, upper, outer)? {
                    Some((lo, hi)) => storage.range(
                        self.txn,
                        index.as_ref(),
                        lo.as_ref().map(|(v, i)| (v, *i)),
                        hi.as_ref().map(|(v, i)| (v, *i)),
                    )?,
                    None => Vec::new(),
                }
            }
        })
    }

    /// Evaluates the bounds of a range access on the first primary-key column (`index`
    /// None) or the first column of `index`. A bound that does not fit the column type
    /// cannot narrow the scan and is dropped (callers still filter); None when a bound is
    /// NULL, which nothing compares true with.
    #[allow(clippy::type_complexity)]
    fn range_bounds(
        &self,
        table: &TableDef,
        index: Option<&IndexDef>,
        lower: &Option<(Expr, bool)>,
        upper: &Option<(Expr, bool)>,
        outer: Option<&Env>,
    ) -> SqlResult<Option<(Option<(Value, bool)>, Option<(Value, bool)>)>> {
        let column = match index {
            None => table.primary_key[0],
            Some(i) => i.columns[0],
        };
        let ty = &table.columns[column].ty;
        let bound = |b: &Option<(Expr, bool)>| -> SqlResult<Option<(Value, bool)>> {
            let Some((e, inclusive)) = b else { return Ok(None) };
            Ok(self.eval(e, &[], outer)?.coerce_to_column(ty).ok().map(|v| (v, *inclusive)))
        };
        let (lo, hi) = (bound(lower)?, bound(upper)?);
        if [&lo, &hi].iter().any(|b| b.as_ref().is_some_and(|(v, _)| v.is_null())) {
            return Ok(None);
        }
        Ok(Some((lo, hi)))
    }

    /// Joins `l` and `r`: each left row with the right rows `candidates` proposes that pass
    /// `condition`, and for outer joins the unmatched rows of either side padded with NULLs.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &self,
        l: &[Row],
        r: &[Row],
        kind: JoinKind,
        widths: (usize, usize),
        condition: Option<&Expr>,
        outer: Option<&Env>,
        candidates: impl Fn(&Row) -> SqlResult<Vec<usize>>,
    ) -> SqlResult<Vec<Row>> {
        let mut right_matched = vec![false; r.len()];
        let mut out = Vec::new();
        for lrow in l {
            let mut matched = false;
            for ri in candidates(lrow)? {
                cancel::check()?;
                let joined: Row = lrow.iter().chain(&r[ri]).cloned().collect();
                if match condition {
                    Some(c) => self.truthy(c, &joined, outer)?,
                    None => true,
                } {
                    matched = true;
                    right_matched[ri] = true;
                    out.push(joined);
                }
            }
            check_size(&out)?;
            if !matched && matches!(kind, JoinKind::Left | JoinKind::Full) {
                out.push(lrow.iter().cloned().chain(std::iter::repeat_n(Value::Null, widths.1)).collect());
            }
        }
        if matches!(kind, JoinKind::Right | JoinKind::Full) {
            for (rrow, _) in r.iter().zip(&right_matched).filter(|(_, m)| !**m) {
                out.push(std::iter::repeat_n(Value::Null, widths.0).chain(rrow.iter().cloned()).collect());
            }
        }
        Ok(out)
    }

    /// Evaluates lookup key values, cast to the key columns' types; `None` if one is NULL
    /// (which no key equals).
    fn key_values(
        &self,
        exprs: &[Expr],
        types: &[DataType],
        outer: Option<&Env>,
    ) -> SqlResult<Option<Vec<Value>>> {
        let mut values = Vec::new();
        for (e, ty) in exprs.iter().zip(types) {
            let v = self.eval(e, &[], outer)?;
            if v.is_null() {
                return Ok(None);
            }
            // A value that does not fit the column type cannot equal any stored key.
            match v.coerce_to_column(ty) {
                Ok(v) => values.push(v),
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(values))
    }

    pub fn sort(&self, rows: Vec<Row>, keys: &[SortKey], outer: Option<&Env>) -> SqlResult<Vec<Row>> {
        let mut keyed: Vec<(Vec<Value>, Row)> = rows
            .into_iter()
            .map(|row| {
                Ok((keys.iter().map(|k| self.eval(&k.expr, &row, outer)).collect::<SqlResult<_>>()?, row))
            })
            .collect::<SqlResult<_>>()?;
        let mut error = None;
        keyed.sort_by(|(a, _), (b, _)| {
            for ((x, y), key) in a.iter().zip(b).zip(keys) {
                let ordering = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if key.nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if key.nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    _ => {
                        let o = x.total_cmp(y).unwrap_or_else(|e| {
                            error = Some(e);
                            Ordering::Equal
                        });
                        if key.desc { o.reverse() } else { o }
                    }
                };
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            Ordering::Equal
        });
        match error {
            Some(e) => Err(e),
            None => Ok(keyed.into_iter().map(|(_, r)| r).collect()),
        }
    }

    fn aggregate(
        &self,
        input: &Plan,
        group_by: &[Expr],
        aggregates: &[Aggregate],
        outer: Option<&Env>,
    ) -> SqlResult<Vec<Row>> {
        let rows = self.run(input, outer)?;
        let mut groups: Vec<(Row, Vec<Accumulator>)> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        for row in &rows {
            let key: Row = group_by.iter().map(|e| self.eval(e, row, outer)).collect::<SqlResult<_>>()?;
            let slot = *index.entry(hash_key(&key)).or_insert_with(|| {
                groups.push((key, aggregates.iter().map(Accumulator::new).collect()));
                groups.len() - 1
            });
            for (acc, agg) in groups[slot].1.iter_mut().zip(aggregates) {
                let value = match &agg.arg {
                    Some(arg) => Some(self.eval(arg, row, outer)?),
                    None => None,
                };
                acc.add(value)?;
            }
        }
        if groups.is_empty() && group_by.is_empty() {
            groups.push((Vec::new(), aggregates.iter().map(Accumulator::new).collect()));
        }
        groups
            .into_iter()
            .map(|(mut key, accs)| {
                for acc in accs {
                    key.push(acc.finish()?);
                }
                Ok(key)
            })
            .collect()
    }
}

fn set_op(op: SetOp, all: bool, l: Vec<Row>, r: Vec<Row>) -> Vec<Row> {
    match (op, all) {
        (SetOp::Union, true) => l.into_iter().chain(r).collect(),
        (SetOp::Union, false) => {
            let mut seen = HashSet::new();
            l.into_iter().chain(r).filter(|row| seen.insert(hash_key(row))).collect()
        }
        (SetOp::Intersect | SetOp::Except, _) => {
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            for row in &r {
                *counts.entry(hash_key(row)).or_default() += 1;
            }
            let mut emitted = HashSet::new();
            let mut out = Vec::new();
            for row in l {
                let key = hash_key(&row);
                let in_right = counts.get(&key).copied().unwrap_or(0);
                let keep = if all {
                    // Each right row cancels (EXCEPT) or pairs with (INTERSECT) one left row.
                    let matched = in_right > 0;
                    if matched {
                        counts.insert(key, in_right - 1);
                    }
                    matched == (op == SetOp::Intersect)
                } else {
                    (in_right > 0) == (op == SetOp::Intersect) && emitted.insert(key)
                };
                if keep {
                    out.push(row);
                }
            }
            out
        }
    }
}

/// The running state of one aggregate in one group.
struct Accumulator {
    agg: Aggregate,
    count: i64,
    sum: Option<Value>,
    best: Option<Value>,
    flag: Option<bool>,
    parts: Vec<String>,
    seen: HashSet<Vec<u8>>,
}

impl Accumulator {
    fn new(agg: &Aggregate) -> Self {
        Self {
            agg: agg.clone(),
            count: 0,
            sum: None,
            best: None,
            flag: None,
            parts: Vec::new(),
            seen: HashSet::new(),
        }
    }

    fn add(&mut self, value: Option<Value>) -> SqlResult<()> {
        let Some(value) = value else {
            self.count += 1; // count(*)
            return Ok(());
        };
        if value.is_null() {
            return Ok(());
        }
        if self.agg.distinct && !self.seen.insert(hash_key(std::slice::from_ref(&value))) {
            return Ok(());
        }
        self.count += 1;
        match &self.agg.func {
            AggFunc::Count | AggFunc::CountStar => {}
            AggFunc::Sum | AggFunc::Avg => {
                let v = match (&self.agg.ty, value) {
                    (DataType::Numeric(_), Value::Int(i)) => Value::Numeric(Decimal::from(i)),
                    (DataType::Float8, Value::Int(i)) => Value::Float(i as f64),
                    (_, v) => v,
                };
                self.sum = Some(match self.sum.take() {
                    None => v,
                    Some(Value::Int(a)) => match v {
                        Value::Int(b) => Value::Int(
                            a.checked_add(b).ok_or_else(|| SqlError::new("22003", "bigint out of range"))?,
                        ),
                        other => return Err(SqlError::new("XX000", format!("sum of int and {other:?}"))),
                    },
                    Some(Value::Numeric(a)) => match v {
                        Value::Numeric(b) => Value::Numeric(a + b),
                        other => return Err(SqlError::new("XX000", format!("sum of numeric and {other:?}"))),
                    },
                    Some(Value::Float(a)) => match v {
                        Value::Float(b) => Value::Float(a + b),
                        other => return Err(SqlError::new("XX000", format!("sum of float and {other:?}"))),
                    },
                    Some(other) => {
                        return Err(SqlError::new("42883", format!("cannot sum {}", other.data_type())));
                    }
                });
            }
            AggFunc::Min | AggFunc::Max => {
                let replace = match &self.best {
                    None => true,
                    Some(b) => {
                        let o = value.total_cmp(b)?;
                        if matches!(self.agg.func, AggFunc::Min) {
                            o == Ordering::Less
                        } else {
                            o == Ordering::Greater
                        }
                    }
                };
                if replace {
                    self.best = Some(value);
                }
            }
            AggFunc::BoolAnd | AggFunc::BoolOr => {
                let b = value.as_bool()?.unwrap_or(false);
                self.flag = Some(match (self.flag, &self.agg.func) {
                    (None, _) => b,
                    (Some(f), AggFunc::BoolAnd) => f && b,
                    (Some(f), _) => f || b,
                });
            }
            AggFunc::StringAgg(_) => self.parts.push(value.to_text()),
        }
        Ok(())
    }

    fn finish(self) -> SqlResult<Value> {
        Ok(match &self.agg.func {
            AggFunc::Count | AggFunc::CountStar => Value::Int(self.count),
            AggFunc::Sum => self.sum.unwrap_or(Value::Null),
            AggFunc::Avg => match self.sum {
                None => Value::Null,
                Some(Value::Numeric(s)) => Value::Numeric(
                    crate::expr::numeric_div(s, Decimal::from(self.count))
                        .ok_or_else(|| SqlError::new("22003", "numeric field overflow"))?,
                ),
                Some(Value::Float(s)) => Value::Float(s / self.count as f64),
                Some(Value::Int(s)) => Value::Numeric(
                    crate::expr::numeric_div(Decimal::from(s), Decimal::from(self.count))
                        .ok_or_else(|| SqlError::new("22003", "numeric field overflow"))?,
                ),
                Some(other) => {
                    return Err(SqlError::new("42883", format!("cannot average {}", other.data_type())));
                }
            },
            AggFunc::Min | AggFunc::Max => self.best.unwrap_or(Value::Null),
            AggFunc::BoolAnd | AggFunc::BoolOr => self.flag.map_or(Value::Null, Value::Bool),
            AggFunc::StringAgg(sep) => {
                if self.parts.is_empty() {
                    Value::Null
                } else {
                    Value::Text(self.parts.join(sep))
                }
            }
        })
    }
}
