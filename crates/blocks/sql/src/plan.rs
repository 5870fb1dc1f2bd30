//! Plans and the binder that builds them from sqlparser's AST.
//!
//! The binder resolves names against scopes (one per query level, for correlated
//! subqueries), checks and infers types (including `$n` parameter types from their context),
//! and chooses access paths: a primary-key or index equality lookup when the WHERE clause
//! pins the key, a hash join for equi-joins, a nested loop otherwise.

use crate::catalog::{self, CatalogCache, IndexDef, TableDef};
use crate::error::{SqlError, SqlResult};
use crate::expr::{BinOp, Expr, SubqueryKind};
use crate::functions;
use crate::types::{DataType, Value};
use sqlparser::ast;
use std::collections::HashMap;
use strata_core::{Keyspace, Txn};

/// An output column of a plan.
#[derive(Clone, Debug)]
pub struct Column {
    /// The table (or alias) it comes from, for qualified references.
    pub table: Option<String>,
    pub name: String,
    pub ty: DataType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    Union,
    Intersect,
    Except,
}

#[derive(Clone, Debug)]
pub enum AggFunc {
    Count,
    CountStar,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    StringAgg(String),
}

#[derive(Clone, Debug)]
pub struct Aggregate {
    pub func: AggFunc,
    pub arg: Option<Expr>,
    pub distinct: bool,
    pub ty: DataType,
}

/// How a scan reaches its rows.
#[derive(Clone, Debug)]
pub enum Access {
    Full,
    /// Every primary key column pinned by an equality.
    PrimaryKey(Vec<Expr>),
    /// A prefix of an index's columns pinned by equalities.
    Index(IndexDef, Vec<Expr>),
    /// A range of the first primary key column (`index` None) or of an index's first
    /// column; each bound is an expression and whether it is inclusive.
    Range {
        index: Option<IndexDef>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
    },
}

/// Reading a table in primary-key order (`index` None) or in an index's order.
#[derive(Clone, Debug)]
pub struct ScanOrder {
    pub index: Option<IndexDef>,
    pub desc: bool,
}

#[derive(Clone, Debug)]
pub struct SortKey {
    pub expr: Expr,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Debug)]
pub enum Plan {
    Scan {
        table: Box<TableDef>,
        access: Access,
        filter: Option<Expr>,
        /// Rows come out in this order (so no Sort is needed and a LIMIT above can stop
        /// the scan early).
        order: Option<ScanOrder>,
    },
    /// One row with no columns (SELECT without FROM).
    Unit,
    Values(Vec<Vec<Expr>>),
    Filter(Box<Plan>, Expr),
    Project(Box<Plan>, Vec<Expr>),
    NestedLoopJoin {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        on: Option<Expr>,
        widths: (usize, usize),
    },
    HashJoin {
        left: Box<Plan>,
        right: Box<Plan>,
        kind: JoinKind,
        keys: Vec<(Expr, Expr)>,
        residual: Option<Expr>,
        widths: (usize, usize),
    },
    Aggregate {
        input: Box<Plan>,
        group_by: Vec<Expr>,
        aggregates: Vec<Aggregate>,
    },
    Sort(Box<Plan>, Vec<SortKey>),
    Limit {
        input: Box<Plan>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    Distinct(Box<Plan>),
    SetOp {
        op: SetOp,
        all: bool,
        left: Box<Plan>,
        right: Box<Plan>,
    },
}

/// A bound query: its plan and output columns.
#[derive(Clone, Debug)]
pub struct Query {
    pub plan: Plan,
    pub columns: Vec<Column>,
}

/// Name resolution state for one statement.
pub struct Binder<'a> {
    pub txn: &'a Txn,
    pub ks: &'a Keyspace,
    /// Scopes of enclosing queries, innermost last (the current query's scope is passed
    /// explicitly; these are its outer levels).
    outer: Vec<Vec<Column>>,
    /// Inferred parameter types, by position.
    pub params: Vec<DataType>,
    ctes: Vec<HashMap<String, Query>>,
    /// Where table definitions come from when set; else read from `txn`.
    catalog: Option<&'a CatalogCache>,
}

fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

pub fn object_name(name: &ast::ObjectName) -> SqlResult<String> {
    match name.0.last() {
        Some(ast::ObjectNamePart::Identifier(i)) => Ok(ident(i)),
        _ => Err(SqlError::syntax(format!("invalid name {name}"))),
    }
}

impl<'a> Binder<'a> {
    pub fn new(txn: &'a Txn, ks: &'a Keyspace, params: Vec<DataType>) -> Self {
        Self { txn, ks, outer: Vec::new(), params, ctes: Vec::new(), catalog: None }
    }

    /// Takes table definitions from `catalog` (see [`CatalogCache`] for when that is right).
    pub fn with_catalog(mut self, catalog: Option<&'a CatalogCache>) -> Self {
        self.catalog = catalog;
        self
    }

    pub fn must_table(&self, name: &str) -> SqlResult<TableDef> {
        catalog::must_table_via(self.catalog, self.txn, self.ks, name)
    }

    // ---------- queries ----------

    pub fn bind_query(&mut self, query: &ast::Query) -> SqlResult<Query> {
        let pushed = if let Some(with) = &query.with {
            if with.recursive {
                return Err(SqlError::unsupported("WITH RECURSIVE"));
            }
            self.ctes.push(HashMap::new());
            for cte in &with.cte_tables {
                let mut bound = self.bind_query(&cte.query)?;
                let name = ident(&cte.alias.name);
                for (col, alias) in bound.columns.iter_mut().zip(&cte.alias.columns) {
                    col.name = ident(&alias.name);
                }
                for col in &mut bound.columns {
                    col.table = Some(name.clone());
                }
                self.ctes.last_mut().expect("pushed").insert(name, bound);
            }
            true
        } else {
            false
        };
        let result = self.bind_query_body(query);
        if pushed {
            self.ctes.pop();
        }
        result
    }

    fn bind_query_body(&mut self, query: &ast::Query) -> SqlResult<Query> {
        let order_by = match &query.order_by {
            Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(exprs), .. }) => exprs.as_slice(),
            Some(_) => return Err(SqlError::unsupported("ORDER BY ALL")),
            None => &[],
        };
        let mut bound = match query.body.as_ref() {
            ast::SetExpr::Select(select) => self.bind_select(select, order_by)?,
            body => {
                let mut q = self.bind_set_expr(body)?;
                if !order_by.is_empty() {
                    let mut keys = Vec::new();
                    for o in order_by {
                        let expr = self.bind_output_ref(&o.expr, &q.columns)?.ok_or_else(|| {
                            SqlError::new("0A000", "ORDER BY on a set operation must name an output column")
                        })?;
                        keys.push(sort_key(expr, &o.options));
                    }
                    q.plan = Plan::Sort(Box::new(q.plan), keys);
                }
                q
            }
        };
        if let Some(limit) = &query.limit_clause {
            let (limit, offset) = match limit {
                ast::LimitClause::LimitOffset { limit, offset, .. } => {
                    (limit.as_ref(), offset.as_ref().map(|o| &o.value))
                }
                ast::LimitClause::OffsetCommaLimit { offset, limit } => (Some(limit), Some(offset)),
            };
            let mut bind_count = |e: Option<&ast::Expr>| -> SqlResult<Option<Expr>> {
                e.map(|e| Ok(Expr::Cast(Box::new(self.bind_expr(e, &[])?.0), DataType::Int8))).transpose()
            };
            let (limit, offset) = (bind_count(limit)?, bind_count(offset)?);
            bound.plan = Plan::Limit { input: Box::new(bound.plan), limit, offset };
        }
        Ok(bound)
    }

    fn bind_set_expr(&mut self, body: &ast::SetExpr) -> SqlResult<Query> {
        match body {
            ast::SetExpr::Select(select) => self.bind_select(select, &[]),
            ast::SetExpr::Query(q) => self.bind_query(q),
            ast::SetExpr::Values(values) => {
                let mut rows = Vec::new();
                let mut types: Vec<DataType> = Vec::new();
                for row in &values.rows {
                    let mut bound = Vec::new();
                    for (i, e) in row.content.iter().enumerate() {
                        let (e, ty) = self.bind_expr(e, &[])?;
                        match types.get_mut(i) {
                            Some(t) => *t = DataType::common(t, &ty).unwrap_or(ty),
                            None => types.push(ty),
                        }
                        bound.push(e);
                    }
                    if !rows.is_empty() && bound.len() != types.len() {
                        return Err(SqlError::syntax("VALUES lists must all be the same length"));
                    }
                    rows.push(bound);
                }
                let columns = types
                    .into_iter()
                    .enumerate()
                    .map(|(i, ty)| Column { table: None, name: format!("column{}", i + 1), ty })
                    .collect();
                Ok(Query { plan: Plan::Values(rows), columns })
            }
            ast::SetExpr::SetOperation { left, op, set_quantifier, right } => {
                let (l, r) = (self.bind_set_expr(left)?, self.bind_set_expr(right)?);
                if l.columns.len() != r.columns.len() {
                    return Err(SqlError::new(
                        "42601",
                        "each UNION query must have the same number of columns",
                    ));
                }
                let columns = l
                    .columns
                    .iter()
                    .zip(&r.columns)
                    .map(|(a, b)| {
                        let ty = DataType::common(&a.ty, &b.ty).ok_or_else(|| {
                            SqlError::new(
                                "42804",
                                format!("UNION types {} and {} cannot be matched", a.ty, b.ty),
                            )
                        })?;
                        Ok(Column { table: None, name: a.name.clone(), ty })
                    })
                    .collect::<SqlResult<Vec<_>>>()?;
                let op = match op {
                    ast::SetOperator::Union => SetOp::Union,
                    ast::SetOperator::Intersect => SetOp::Intersect,
                    ast::SetOperator::Except | ast::SetOperator::Minus => SetOp::Except,
                };
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                Ok(Query {
                    plan: Plan::SetOp { op, all, left: Box::new(l.plan), right: Box::new(r.plan) },
                    columns,
                })
            }
            other => Err(SqlError::unsupported(format!("query {other}"))),
        }
    }

    fn lookup_cte(&self, name: &str) -> Option<Query> {
        self.ctes.iter().rev().find_map(|level| level.get(name).cloned())
    }

    fn bind_table_factor(&mut self, factor: &ast::TableFactor) -> SqlResult<(Plan, Vec<Column>)> {
        match factor {
            ast::TableFactor::Table { name, alias, .. } => {
                let table_name = object_name(name)?;
                let label = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| table_name.clone());
                if let Some(cte) = self.lookup_cte(&table_name) {
                    let columns = relabel(cte.columns, &label, alias.as_ref());
                    return Ok((cte.plan, columns));
                }
                let table = self.must_table(&table_name)?;
                let columns = table
                    .columns
                    .iter()
                    .map(|c| Column { table: Some(label.clone()), name: c.name.clone(), ty: c.ty.clone() })
                    .collect();
                let columns = relabel(columns, &label, alias.as_ref());
                Ok((
                    Plan::Scan { table: Box::new(table), access: Access::Full, filter: None, order: None },
                    columns,
                ))
            }
            ast::TableFactor::Derived { subquery, alias, lateral: false, .. } => {
                let q = self.bind_query(subquery)?;
                let label = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_default();
                Ok((q.plan, relabel(q.columns, &label, alias.as_ref())))
            }
            ast::TableFactor::NestedJoin { table_with_joins, alias: None } => {
                self.bind_from_item(table_with_joins)
            }
            other => Err(SqlError::unsupported(format!("FROM item {other}"))),
        }
    }

    fn bind_from_item(&mut self, item: &ast::TableWithJoins) -> SqlResult<(Plan, Vec<Column>)> {
        let (mut plan, mut columns) = self.bind_table_factor(&item.relation)?;
        for join in &item.joins {
            let (right, right_cols) = self.bind_table_factor(&join.relation)?;
            let (kind, constraint) = match &join.join_operator {
                ast::JoinOperator::Join(c) | ast::JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
                ast::JoinOperator::Left(c) | ast::JoinOperator::LeftOuter(c) => (JoinKind::Left, Some(c)),
                ast::JoinOperator::Right(c) | ast::JoinOperator::RightOuter(c) => (JoinKind::Right, Some(c)),
                ast::JoinOperator::FullOuter(c) => (JoinKind::Full, Some(c)),
                ast::JoinOperator::CrossJoin(_) => (JoinKind::Inner, None),
                other => return Err(SqlError::unsupported(format!("join {other:?}"))),
            };
            let left_width = columns.len();
            let right_width = right_cols.len();
            let mut joined: Vec<Column> = columns.iter().cloned().chain(right_cols.iter().cloned()).collect();
            let on = match constraint {
                Some(ast::JoinConstraint::On(e)) => Some(self.bind_predicate(e, &joined)?),
                Some(ast::JoinConstraint::Using(names)) => {
                    let mut conds = Vec::new();
                    for n in names {
                        let name = object_name(n)?;
                        let li = columns.iter().position(|c| c.name == name);
                        let ri = right_cols.iter().position(|c| c.name == name);
                        let (Some(li), Some(ri)) = (li, ri) else {
                            return Err(SqlError::new(
                                "42703",
                                format!("column \"{name}\" specified in USING clause does not exist"),
                            ));
                        };
                        conds.push(Expr::Binary(
                            BinOp::Eq,
                            Box::new(Expr::Column { depth: 0, index: li }),
                            Box::new(Expr::Column { depth: 0, index: left_width + ri }),
                        ));
                        // The right copy is reachable only qualified.
                        joined[left_width + ri].name = format!("{name}\u{0}using");
                    }
                    conds.into_iter().reduce(|a, b| Expr::Binary(BinOp::And, Box::new(a), Box::new(b)))
                }
                Some(ast::JoinConstraint::Natural) => return Err(SqlError::unsupported("NATURAL JOIN")),
                Some(ast::JoinConstraint::None) | None => None,
                Some(other) => return Err(SqlError::unsupported(format!("join constraint {other:?}"))),
            };
            plan = make_join(plan, right, kind, on, (left_width, right_width));
            columns = joined;
        }
        Ok((plan, columns))
    }

    fn bind_select(&mut self, select: &ast::Select, order_by: &[ast::OrderByExpr]) -> SqlResult<Query> {
        // FROM
        let (mut plan, scope) = if select.from.is_empty() {
            (Plan::Unit, Vec::new())
        } else {
            let mut acc: Option<(Plan, Vec<Column>)> = None;
            for item in &select.from {
                let (p, c) = self.bind_from_item(item)?;
                acc = Some(match acc {
                    None => (p, c),
                    Some((lp, lc)) => {
                        let widths = (lc.len(), c.len());
                        (make_join(lp, p, JoinKind::Inner, None, widths), lc.into_iter().chain(c).collect())
                    }
                });
            }
            acc.expect("FROM has items")
        };
        // WHERE
        if let Some(selection) = &select.selection {
            let predicate = self.bind_predicate(selection, &scope)?;
            plan = push_filter(plan, predicate);
        }
        // Aggregation
        let group_exprs: &[ast::Expr] = match &select.group_by {
            ast::GroupByExpr::Expressions(exprs, _) => exprs,
            ast::GroupByExpr::All(_) => return Err(SqlError::unsupported("GROUP BY ALL")),
        };
        let mut agg_calls: Vec<&ast::Function> = Vec::new();
        for item in &select.projection {
            if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_aggregates(e, &mut agg_calls);
            }
        }
        if let Some(h) = &select.having {
            collect_aggregates(h, &mut agg_calls);
        }
        for o in order_by {
            collect_aggregates(&o.expr, &mut agg_calls);
        }
        let aggregating = !group_exprs.is_empty() || !agg_calls.is_empty();
        let mut group_by = Vec::new();
        let mut aggregates = Vec::new();
        if aggregating {
            for g in group_exprs {
                // GROUP BY may name an output column by position or alias.
                let e = match self.group_by_alias(g, select, &scope)? {
                    Some(e) => e,
                    None => self.bind_expr(g, &scope)?,
                };
                group_by.push(e);
            }
            for call in &agg_calls {
                aggregates.push(self.bind_aggregate(call, &scope)?);
            }
        }
        let group_keys: Vec<Expr> = group_by.iter().map(|(e, _)| e.clone()).collect();
        let finish = |binder: &mut Self, e: &ast::Expr| -> SqlResult<(Expr, DataType)> {
            let (bound, ty) = binder.bind_expr_with_aggs(e, &scope, &agg_calls)?;
            if aggregating { Ok((rewrite_grouped(bound, &group_keys)?, ty)) } else { Ok((bound, ty)) }
        };
        let mut having = None;
        if let Some(h) = &select.having {
            let (e, ty) = finish(self, h)?;
            check_bool(&ty, "HAVING")?;
            having = Some(e);
        }
        // Projection
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for item in &select.projection {
            match item {
                ast::SelectItem::Wildcard(_) => {
                    if aggregating {
                        return Err(SqlError::new("42803", "SELECT * with GROUP BY is not supported"));
                    }
                    for (i, c) in scope.iter().enumerate() {
                        if !c.name.contains('\u{0}') {
                            exprs.push(Expr::Column { depth: 0, index: i });
                            columns.push(c.clone());
                        }
                    }
                }
                ast::SelectItem::QualifiedWildcard(kind, _) => {
                    let name = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => object_name(n)?,
                        _ => return Err(SqlError::unsupported("this wildcard")),
                    };
                    let mut any = false;
                    for (i, c) in scope.iter().enumerate() {
                        if c.table.as_deref() == Some(&name) {
                            exprs.push(Expr::Column { depth: 0, index: i });
                            columns.push(Column {
                                name: c.name.trim_end_matches("\u{0}using").to_string(),
                                ..c.clone()
                            });
                            any = true;
                        }
                    }
                    if !any {
                        return Err(SqlError::new(
                            "42P01",
                            format!("missing FROM-clause entry for table \"{name}\""),
                        ));
                    }
                }
                ast::SelectItem::UnnamedExpr(e) => {
                    let (bound, ty) = finish(self, e)?;
                    columns.push(Column { table: None, name: output_name(e), ty });
                    exprs.push(bound);
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    let (bound, ty) = finish(self, expr)?;
                    columns.push(Column { table: None, name: ident(alias), ty });
                    exprs.push(bound);
                }
                other => return Err(SqlError::unsupported(format!("select item {other}"))),
            }
        }
        if aggregating {
            plan = Plan::Aggregate {
                input: Box::new(plan),
                group_by: group_keys.clone(),
                aggregates: aggregates.clone(),
            };
        }
        if let Some(h) = having {
            plan = Plan::Filter(Box::new(plan), h);
        }
        // ORDER BY: output columns by name or position, else expressions over the input,
        // computed as hidden trailing columns.
        let visible = exprs.len();
        let mut keys = Vec::new();
        for o in order_by {
            let key = match self.bind_output_ref(&o.expr, &columns)? {
                Some(e) => e,
                None => {
                    let (bound, _) = finish(self, &o.expr)?;
                    exprs.push(bound);
                    Expr::Column { depth: 0, index: exprs.len() - 1 }
                }
            };
            keys.push(sort_key(key, &o.options));
        }
        let distinct = match &select.distinct {
            None | Some(ast::Distinct::All) => false,
            Some(ast::Distinct::Distinct) => true,
            Some(ast::Distinct::On(_)) => return Err(SqlError::unsupported("DISTINCT ON")),
        };
        if distinct && exprs.len() > visible {
            return Err(SqlError::new(
                "42P10",
                "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
            ));
        }
        let total = exprs.len();
        let sorted_by_scan = !distinct && !aggregating && order_scan(&mut plan, &keys, &exprs);
        plan = Plan::Project(Box::new(plan), exprs);
        if distinct {
            plan = Plan::Distinct(Box::new(plan));
        }
        if !keys.is_empty() && !sorted_by_scan {
            plan = Plan::Sort(Box::new(plan), keys);
        }
        if total > visible {
            plan = Plan::Project(
                Box::new(plan),
                (0..visible).map(|index| Expr::Column { depth: 0, index }).collect(),
            );
        }
        Ok(Query { plan, columns })
    }

    /// `GROUP BY 1` or `GROUP BY alias`.
    fn group_by_alias(
        &mut self,
        g: &ast::Expr,
        select: &ast::Select,
        scope: &[Column],
    ) -> SqlResult<Option<(Expr, DataType)>> {
        let target = match g {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => {
                    let pos: usize = n.parse().map_err(|_| SqlError::syntax("bad GROUP BY position"))?;
                    select.projection.get(pos.wrapping_sub(1))
                }
                _ => None,
            },
            ast::Expr::Identifier(id) if !scope.iter().any(|c| c.name == ident(id)) => {
                select.projection.iter().find(|p| matches!(p, ast::SelectItem::ExprWithAlias { alias, .. } if ident(alias) == ident(id)))
            }
            _ => None,
        };
        match target {
            Some(ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. }) => {
                Ok(Some(self.bind_expr(e, scope)?))
            }
            _ => Ok(None),
        }
    }

    /// An ORDER BY item that names an output column (by alias or position).
    fn bind_output_ref(&mut self, e: &ast::Expr, columns: &[Column]) -> SqlResult<Option<Expr>> {
        Ok(match e {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => {
                    let pos: usize = n.parse().map_err(|_| SqlError::syntax("bad ORDER BY position"))?;
                    if pos == 0 || pos > columns.len() {
                        return Err(SqlError::new(
                            "42P10",
                            format!("ORDER BY position {pos} is not in select list"),
                        ));
                    }
                    Some(Expr::Column { depth: 0, index: pos - 1 })
                }
                _ => None,
            },
            ast::Expr::Identifier(id) => {
                columns.iter().position(|c| c.name == ident(id)).map(|index| Expr::Column { depth: 0, index })
            }
            _ => None,
        })
    }

    fn bind_aggregate(&mut self, call: &ast::Function, scope: &[Column]) -> SqlResult<Aggregate> {
        let name = object_name(&call.name)?;
        let (args, distinct) = match &call.args {
            ast::FunctionArguments::List(list) => (
                list.args.as_slice(),
                matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)),
            ),
            _ => (&[][..], false),
        };
        let star = matches!(args, [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]);
        if name == "count" && star {
            return Ok(Aggregate {
                func: AggFunc::CountStar,
                arg: None,
                distinct: false,
                ty: DataType::Int8,
            });
        }
        let arg = match args.first() {
            Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))) => e,
            _ => return Err(SqlError::new("42883", format!("function {name} needs an argument"))),
        };
        // Aggregates cannot nest, and see the query's input rows.
        let (arg, ty) = self.bind_expr(arg, scope)?;
        let (func, result) = match name.as_str() {
            "count" => (AggFunc::Count, DataType::Int8),
            "sum" => (
                AggFunc::Sum,
                match &ty {
                    DataType::Int2 | DataType::Int4 => DataType::Int8,
                    DataType::Int8 | DataType::Numeric(_) => DataType::Numeric(None),
                    t if t.is_numeric() => DataType::Float8,
                    t => return Err(SqlError::new("42883", format!("function sum({t}) does not exist"))),
                },
            ),
            "avg" => (
                AggFunc::Avg,
                if ty.is_integer() || matches!(ty, DataType::Numeric(_)) {
                    DataType::Numeric(None)
                } else {
                    DataType::Float8
                },
            ),
            "min" => (AggFunc::Min, ty),
            "max" => (AggFunc::Max, ty),
            "bool_and" | "every" => (AggFunc::BoolAnd, DataType::Bool),
            "bool_or" => (AggFunc::BoolOr, DataType::Bool),
            "string_agg" => {
                let sep = match args.get(1) {
                    Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))) => {
                        match &v.value {
                            ast::Value::SingleQuotedString(s) => s.clone(),
                            _ => return Err(SqlError::unsupported("a non-literal string_agg separator")),
                        }
                    }
                    _ => return Err(SqlError::new("42883", "string_agg needs a separator")),
                };
                (AggFunc::StringAgg(sep), DataType::Text)
            }
            other => return Err(SqlError::new("42883", format!("aggregate {other} does not exist"))),
        };
        Ok(Aggregate { func, arg: Some(arg), distinct, ty: result })
    }

    // ---------- expressions ----------

    pub fn bind_predicate(&mut self, e: &ast::Expr, scope: &[Column]) -> SqlResult<Expr> {
        let (e, ty) = self.bind_expr(e, scope)?;
        check_bool(&ty, "WHERE")?;
        // An untyped literal ('t', 'yes') is read as a boolean.
        if let Expr::Literal(v @ Value::Text(_)) = e {
            return Ok(Expr::Literal(v.cast(&DataType::Bool)?));
        }
        Ok(e)
    }

    pub fn bind_expr(&mut self, e: &ast::Expr, scope: &[Column]) -> SqlResult<(Expr, DataType)> {
        self.bind_expr_with_aggs(e, scope, &[])
    }

    fn resolve(&self, scope: &[Column], table: Option<&str>, name: &str) -> SqlResult<(Expr, DataType)> {
        let find = |cols: &[Column]| -> SqlResult<Option<usize>> {
            let mut hits = cols.iter().enumerate().filter(|(_, c)| {
                let base = c.name.trim_end_matches("\u{0}using");
                match table {
                    Some(t) => c.table.as_deref() == Some(t) && base == name,
                    None => c.name == name,
                }
            });
            let first = hits.next().map(|(i, _)| i);
            if first.is_some() && hits.next().is_some() {
                return Err(SqlError::new("42702", format!("column reference \"{name}\" is ambiguous")));
            }
            Ok(first)
        };
        if let Some(i) = find(scope)? {
            return Ok((Expr::Column { depth: 0, index: i }, scope[i].ty.clone()));
        }
        for (depth, cols) in self.outer.iter().rev().enumerate() {
            if let Some(i) = find(cols)? {
                return Ok((Expr::Column { depth: depth + 1, index: i }, cols[i].ty.clone()));
            }
        }
        Err(match table {
            Some(t)
                if !scope
                    .iter()
                    .chain(self.outer.iter().flatten())
                    .any(|c| c.table.as_deref() == Some(t)) =>
            {
                SqlError::new("42P01", format!("missing FROM-clause entry for table \"{t}\""))
            }
            Some(t) => SqlError::new("42703", format!("column {t}.{name} does not exist")),
            None => SqlError::new("42703", format!("column \"{name}\" does not exist")),
        })
    }

    fn bind_subquery(&mut self, q: &ast::Query, scope: &[Column]) -> SqlResult<Query> {
        self.outer.push(scope.to_vec());
        let result = self.bind_query(q);
        self.outer.pop();
        result
    }

    /// Binds `e`; an aggregate call that is one of `aggs` becomes [`Expr::AggRef`].
    fn bind_expr_with_aggs(
        &mut self,
        e: &ast::Expr,
        scope: &[Column],
        aggs: &[&ast::Function],
    ) -> SqlResult<(Expr, DataType)> {
        use ast::Expr as A;
        let go = |binder: &mut Self, e: &ast::Expr| binder.bind_expr_with_aggs(e, scope, aggs);
        Ok(match e {
            A::Identifier(id) => self.resolve(scope, None, &ident(id))?,
            A::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let n = parts.len();
                self.resolve(scope, Some(&ident(&parts[n - 2])), &ident(&parts[n - 1]))?
            }
            A::Nested(inner) => go(self, inner)?,
            A::Value(v) => bind_value(&v.value, self)?,
            A::TypedString(ts) => {
                let ty = DataType::parse(&ts.data_type.to_string())?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                (Expr::Literal(Value::Text(text).cast(&ty)?), ty)
            }
            A::UnaryOp { op, expr } => {
                let (inner, ty) = go(self, expr)?;
                match op {
                    ast::UnaryOperator::Not => {
                        check_bool(&ty, "NOT")?;
                        (Expr::Not(Box::new(inner)), DataType::Bool)
                    }
                    ast::UnaryOperator::Minus => match inner {
                        Expr::Literal(Value::Int(i)) => (Expr::Literal(Value::Int(-i)), ty),
                        Expr::Literal(Value::Numeric(d)) => (Expr::Literal(Value::Numeric(-d)), ty),
                        inner => (Expr::Neg(Box::new(inner)), ty),
                    },
                    ast::UnaryOperator::Plus => (inner, ty),
                    other => return Err(SqlError::unsupported(format!("operator {other}"))),
                }
            }
            A::BinaryOp { left, op, right } => {
                let (l, lt) = go(self, left)?;
                let (r, rt) = go(self, right)?;
                self.bind_binary(op, l, lt, r, rt)?
            }
            A::IsNull(inner) => (Expr::IsNull(Box::new(go(self, inner)?.0), false), DataType::Bool),
            A::IsNotNull(inner) => (Expr::IsNull(Box::new(go(self, inner)?.0), true), DataType::Bool),
            A::IsTrue(inner) | A::IsFalse(inner) | A::IsNotTrue(inner) | A::IsNotFalse(inner) => {
                let (v, _) = go(self, inner)?;
                let want = matches!(e, A::IsTrue(_) | A::IsNotFalse(_));
                let negated = matches!(e, A::IsNotTrue(_) | A::IsNotFalse(_));
                (
                    Expr::IsDistinct(Box::new(v), Box::new(Expr::Literal(Value::Bool(want))), !negated),
                    DataType::Bool,
                )
            }
            A::IsDistinctFrom(l, r) | A::IsNotDistinctFrom(l, r) => {
                let (l, _) = go(self, l)?;
                let (r, _) = go(self, r)?;
                (
                    Expr::IsDistinct(Box::new(l), Box::new(r), matches!(e, A::IsNotDistinctFrom(..))),
                    DataType::Bool,
                )
            }
            A::In { expr, target, negated, .. } => {
                let (v, vt) = go(self, expr)?;
                match target {
                    ast::InTarget::List(list) => {
                        let mut items = Vec::new();
                        for item in list {
                            let (mut i, it) = go(self, item)?;
                            if let Expr::Param(p, DataType::Unknown) = &i {
                                self.set_param(*p, &vt);
                                i = Expr::Param(*p, vt.clone());
                            } else if DataType::common(&vt, &it).is_none() {
                                return Err(type_mismatch(&vt, &it));
                            }
                            items.push(i);
                        }
                        (Expr::InList(Box::new(v), items, *negated), DataType::Bool)
                    }
                    ast::InTarget::Subquery(q) => {
                        let sub = self.bind_subquery(q, scope)?;
                        if sub.columns.len() != 1 {
                            return Err(SqlError::new("42601", "subquery has too many columns"));
                        }
                        (
                            Expr::Subquery(Box::new(sub.plan), SubqueryKind::In(Box::new(v), *negated)),
                            DataType::Bool,
                        )
                    }
                    _ => return Err(SqlError::unsupported("this IN form")),
                }
            }
            A::Between { expr, negated, low, high } => {
                let (v, vt) = go(self, expr)?;
                let (lo, lt) = go(self, low)?;
                let (hi, ht) = go(self, high)?;
                let (ge, _) = self.bind_binary(&ast::BinaryOperator::GtEq, v.clone(), vt.clone(), lo, lt)?;
                let (le, _) = self.bind_binary(&ast::BinaryOperator::LtEq, v, vt, hi, ht)?;
                let both = Expr::Binary(BinOp::And, Box::new(ge), Box::new(le));
                (if *negated { Expr::Not(Box::new(both)) } else { both }, DataType::Bool)
            }
            A::Like { negated, expr, pattern, any: false, .. }
            | A::ILike { negated, expr, pattern, any: false, .. } => {
                let (v, _) = go(self, expr)?;
                let (p, _) = go(self, pattern)?;
                let case_insensitive = matches!(e, A::ILike { .. });
                (
                    Expr::Like {
                        expr: Box::new(v),
                        pattern: Box::new(p),
                        negated: *negated,
                        case_insensitive,
                    },
                    DataType::Bool,
                )
            }
            A::Case { operand, conditions, else_result, .. } => {
                let operand = operand.as_ref().map(|o| go(self, o)).transpose()?;
                let mut ty = DataType::Unknown;
                let mut whens = Vec::new();
                for c in conditions {
                    let (w, _) = go(self, &c.condition)?;
                    let (t, tt) = go(self, &c.result)?;
                    ty = DataType::common(&ty, &tt).ok_or_else(|| type_mismatch(&ty, &tt))?;
                    whens.push((w, t));
                }
                let otherwise = match else_result {
                    Some(e) => {
                        let (v, vt) = go(self, e)?;
                        ty = DataType::common(&ty, &vt).ok_or_else(|| type_mismatch(&ty, &vt))?;
                        Some(Box::new(v))
                    }
                    None => None,
                };
                let whens = whens.into_iter().map(|(w, t)| (w, cast_if_needed(t, &ty))).collect();
                let otherwise = otherwise.map(|o| Box::new(cast_if_needed(*o, &ty)));
                (Expr::Case { operand: operand.map(|(o, _)| Box::new(o)), whens, otherwise }, ty)
            }
            A::Cast { expr, data_type, .. } => {
                let ty = DataType::parse(&data_type.to_string())?;
                let (v, _) = go(self, expr)?;
                if let Expr::Param(p, DataType::Unknown) = &v {
                    self.set_param(*p, &ty);
                }
                (Expr::Cast(Box::new(v), ty.clone()), ty)
            }
            A::Exists { subquery, negated } => {
                let sub = self.bind_subquery(subquery, scope)?;
                let exists = Expr::Subquery(Box::new(sub.plan), SubqueryKind::Exists);
                (if *negated { Expr::Not(Box::new(exists)) } else { exists }, DataType::Bool)
            }
            A::Subquery(q) => {
                let sub = self.bind_subquery(q, scope)?;
                if sub.columns.len() != 1 {
                    return Err(SqlError::new("42601", "subquery must return only one column"));
                }
                let ty = sub.columns[0].ty.clone();
                (Expr::Subquery(Box::new(sub.plan), SubqueryKind::Scalar), ty)
            }
            A::Function(f) => {
                if let Some(i) = aggs.iter().position(|a| std::ptr::eq(*a, f)) {
                    // The type is filled in from the aggregate list by the caller's rewrite.
                    let agg = self.bind_aggregate(f, scope)?;
                    return Ok((Expr::AggRef(i), agg.ty));
                }
                let name = object_name(&f.name)?;
                if is_aggregate(&name) {
                    return Err(SqlError::new(
                        "42803",
                        format!("aggregate function {name} is not allowed here"),
                    ));
                }
                let args = match &f.args {
                    ast::FunctionArguments::List(list) => list.args.as_slice(),
                    ast::FunctionArguments::None => &[],
                    ast::FunctionArguments::Subquery(_) => {
                        return Err(SqlError::unsupported("a subquery argument"));
                    }
                };
                let mut bound = Vec::new();
                let mut types = Vec::new();
                for a in args {
                    let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)) = a else {
                        return Err(SqlError::unsupported(format!("argument {a}")));
                    };
                    let (v, t) = go(self, a)?;
                    bound.push(v);
                    types.push(t);
                }
                let ty = functions::result_type(&name, &types)?;
                (Expr::Function(name, bound), ty)
            }
            A::Substring { expr, substring_from, substring_for, .. } => {
                let mut args = vec![go(self, expr)?.0];
                args.push(match substring_from {
                    Some(f) => go(self, f)?.0,
                    None => Expr::Literal(Value::Int(1)),
                });
                if let Some(n) = substring_for {
                    args.push(go(self, n)?.0);
                }
                (Expr::Function("substring".into(), args), DataType::Text)
            }
            A::Trim { expr, trim_where, trim_what: None, .. } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                (Expr::Function(name.into(), vec![go(self, expr)?.0]), DataType::Text)
            }
            A::Extract { field, expr, .. } => {
                let (v, _) = go(self, expr)?;
                let unit = Expr::Literal(Value::Text(field.to_string().to_lowercase()));
                (Expr::Function("date_part".into(), vec![unit, v]), DataType::Float8)
            }
            A::Position { expr, r#in } => {
                let args = vec![go(self, r#in)?.0, go(self, expr)?.0];
                (Expr::Function("strpos".into(), args), DataType::Int4)
            }
            A::Ceil { expr, .. } => {
                let (v, t) = go(self, expr)?;
                (Expr::Function("ceil".into(), vec![v]), t)
            }
            A::Floor { expr, .. } => {
                let (v, t) = go(self, expr)?;
                (Expr::Function("floor".into(), vec![v]), t)
            }
            other => return Err(SqlError::unsupported(format!("expression {other}"))),
        })
    }

    fn set_param(&mut self, index: usize, ty: &DataType) {
        if self.params.len() <= index {
            self.params.resize(index + 1, DataType::Unknown);
        }
        if self.params[index] == DataType::Unknown {
            self.params[index] = ty.clone();
        }
    }

    fn bind_binary(
        &mut self,
        op: &ast::BinaryOperator,
        mut l: Expr,
        mut lt: DataType,
        mut r: Expr,
        mut rt: DataType,
    ) -> SqlResult<(Expr, DataType)> {
        use ast::BinaryOperator as B;
        // An untyped parameter takes the type of the other side; a typed one (a value's own
        // type, when a statement runs) keeps it, as a literal of that type would.
        if let Expr::Param(p, DataType::Unknown) = &l {
            self.set_param(*p, &rt);
            l = Expr::Param(*p, rt.clone());
            lt = rt.clone();
        }
        if let Expr::Param(p, DataType::Unknown) = &r {
            self.set_param(*p, &lt);
            r = Expr::Param(*p, lt.clone());
            rt = lt.clone();
        }
        let op = match op {
            B::And => BinOp::And,
            B::Or => BinOp::Or,
            B::Eq => BinOp::Eq,
            B::NotEq => BinOp::NotEq,
            B::Lt => BinOp::Lt,
            B::LtEq => BinOp::LtEq,
            B::Gt => BinOp::Gt,
            B::GtEq => BinOp::GtEq,
            B::Plus => BinOp::Plus,
            B::Minus => BinOp::Minus,
            B::Multiply => BinOp::Multiply,
            B::Divide => BinOp::Divide,
            B::Modulo => BinOp::Modulo,
            B::StringConcat => BinOp::Concat,
            B::Arrow => BinOp::JsonGet,
            B::LongArrow => BinOp::JsonGetText,
            B::AtArrow => BinOp::JsonContains,
            other => return Err(SqlError::unsupported(format!("operator {other}"))),
        };
        // Untyped string literals adopt the other side's type, as PostgreSQL's `unknown` does
        // (not a JSON key or index, which stays text).
        let adopts = !matches!(op, BinOp::Concat | BinOp::JsonGet | BinOp::JsonGetText);
        if let (Expr::Literal(Value::Text(s)), true) =
            (&l, adopts && !rt.is_text() && rt != DataType::Unknown)
        {
            l = Expr::Literal(Value::Text(s.clone()).cast(&rt)?);
            lt = rt.clone();
        }
        if let (Expr::Literal(Value::Text(s)), true) =
            (&r, adopts && !lt.is_text() && lt != DataType::Unknown)
        {
            r = Expr::Literal(Value::Text(s.clone()).cast(&lt)?);
            rt = lt.clone();
        }
        let ty = match op {
            BinOp::And | BinOp::Or => {
                check_bool(&lt, "AND/OR")?;
                check_bool(&rt, "AND/OR")?;
                DataType::Bool
            }
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
                if DataType::common(&lt, &rt).is_none() {
                    return Err(SqlError::new(
                        "42883",
                        format!("operator does not exist: {lt} {} {rt}", op_symbol(op)),
                    ));
                }
                DataType::Bool
            }
            BinOp::Concat => DataType::Text,
            BinOp::JsonGet => DataType::Jsonb,
            BinOp::JsonGetText => DataType::Text,
            BinOp::JsonContains => DataType::Bool,
            _ => {
                if matches!((&lt, &rt), (DataType::Date, t) if t.is_integer()) {
                    DataType::Date
                } else if lt == DataType::Date && rt == DataType::Date && op == BinOp::Minus {
                    DataType::Int4
                } else {
                    match DataType::common(&lt, &rt) {
                        Some(t) if t.is_numeric() || t == DataType::Unknown => t,
                        _ => {
                            return Err(SqlError::new(
                                "42883",
                                format!("operator does not exist: {lt} {} {rt}", op_symbol(op)),
                            ));
                        }
                    }
                }
            }
        };
        let expr = Expr::Binary(op, Box::new(l), Box::new(r));
        // Integer arithmetic happens in 64 bits; narrower results are range-checked as
        // PostgreSQL's int2/int4 operators are.
        let arithmetic =
            matches!(op, BinOp::Plus | BinOp::Minus | BinOp::Multiply | BinOp::Divide | BinOp::Modulo);
        if arithmetic && matches!(ty, DataType::Int2 | DataType::Int4) {
            return Ok((Expr::Cast(Box::new(expr), ty.clone()), ty));
        }
        Ok((expr, ty))
    }
}

fn op_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Eq => "=",
        BinOp::NotEq => "<>",
        BinOp::Lt => "<",
        BinOp::LtEq => "<=",
        BinOp::Gt => ">",
        BinOp::GtEq => ">=",
        BinOp::Plus => "+",
        BinOp::Minus => "-",
        BinOp::Multiply => "*",
        BinOp::Divide => "/",
        BinOp::Modulo => "%",
        _ => "?",
    }
}

fn type_mismatch(a: &DataType, b: &DataType) -> SqlError {
    SqlError::new("42804", format!("types {a} and {b} cannot be matched"))
}

fn check_bool(ty: &DataType, context: &str) -> SqlResult<()> {
    if matches!(ty, DataType::Bool | DataType::Unknown) {
        Ok(())
    } else {
        Err(SqlError::new("42804", format!("argument of {context} must be type boolean, not type {ty}")))
    }
}

fn cast_if_needed(e: Expr, ty: &DataType) -> Expr {
    if *ty == DataType::Unknown { e } else { Expr::Cast(Box::new(e), ty.clone()) }
}

/// The value of a numeric literal: an integer if it fits 64 bits, else NUMERIC.
pub(crate) fn number_literal(n: &str) -> SqlResult<Value> {
    match n.parse::<i64>() {
        Ok(i) => Ok(Value::Int(i)),
        Err(_) => Value::Text(n.to_string()).cast(&DataType::Numeric(None)),
    }
}

fn bind_value(v: &ast::Value, binder: &mut Binder) -> SqlResult<(Expr, DataType)> {
    Ok(match v {
        ast::Value::Number(n, _) => {
            let value = number_literal(n)?;
            let ty = value.data_type();
            (Expr::Literal(value), ty)
        }
        ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) => {
            (Expr::Literal(Value::Text(s.clone())), DataType::Unknown)
        }
        ast::Value::Boolean(b) => (Expr::Literal(Value::Bool(*b)), DataType::Bool),
        ast::Value::Null => (Expr::Literal(Value::Null), DataType::Unknown),
        ast::Value::Placeholder(p) => {
            let n: usize = p
                .trim_start_matches('$')
                .parse()
                .map_err(|_| SqlError::syntax(format!("invalid parameter {p}")))?;
            if n == 0 {
                return Err(SqlError::syntax("parameters start at $1"));
            }
            if binder.params.len() < n {
                binder.params.resize(n, DataType::Unknown);
            }
            let ty = binder.params[n - 1].clone();
            (Expr::Param(n - 1, ty.clone()), ty)
        }
        other => return Err(SqlError::unsupported(format!("literal {other}"))),
    })
}

fn is_aggregate(name: &str) -> bool {
    matches!(name, "count" | "sum" | "avg" | "min" | "max" | "bool_and" | "bool_or" | "every" | "string_agg")
}

/// Collects the aggregate calls in `e`, not looking into subqueries.
fn collect_aggregates<'e>(e: &'e ast::Expr, out: &mut Vec<&'e ast::Function>) {
    use ast::Expr as A;
    match e {
        A::Function(f) => {
            if object_name(&f.name).is_ok_and(|n| is_aggregate(&n)) {
                out.push(f);
            } else if let ast::FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(a)) = a {
                        collect_aggregates(a, out);
                    }
                }
            }
        }
        A::BinaryOp { left, right, .. } => {
            collect_aggregates(left, out);
            collect_aggregates(right, out);
        }
        A::UnaryOp { expr, .. }
        | A::Nested(expr)
        | A::Cast { expr, .. }
        | A::IsNull(expr)
        | A::IsNotNull(expr) => collect_aggregates(expr, out),
        A::Case { operand, conditions, else_result, .. } => {
            if let Some(o) = operand {
                collect_aggregates(o, out);
            }
            for c in conditions {
                collect_aggregates(&c.condition, out);
                collect_aggregates(&c.result, out);
            }
            if let Some(e) = else_result {
                collect_aggregates(e, out);
            }
        }
        A::Between { expr, low, high, .. } => {
            collect_aggregates(expr, out);
            collect_aggregates(low, out);
            collect_aggregates(high, out);
        }
        A::In { expr, target: ast::InTarget::List(list), .. } => {
            collect_aggregates(expr, out);
            for i in list {
                collect_aggregates(i, out);
            }
        }
        _ => {}
    }
}

/// Rewrites an expression over the input rows into one over the aggregation's output:
/// group keys become their columns, aggregate references their columns after the keys.
fn rewrite_grouped(e: Expr, group_keys: &[Expr]) -> SqlResult<Expr> {
    let fingerprint = format!("{e:?}");
    if let Some(i) = group_keys.iter().position(|g| format!("{g:?}") == fingerprint) {
        return Ok(Expr::Column { depth: 0, index: i });
    }
    let r = |e: Box<Expr>| rewrite_grouped(*e, group_keys).map(Box::new);
    Ok(match e {
        Expr::AggRef(i) => Expr::Column { depth: 0, index: group_keys.len() + i },
        Expr::Column { depth: 0, .. } => {
            return Err(SqlError::new(
                "42803",
                "column must appear in the GROUP BY clause or be used in an aggregate function",
            ));
        }
        Expr::Column { depth, index } => Expr::Column { depth, index },
        Expr::Not(e) => Expr::Not(r(e)?),
        Expr::Neg(e) => Expr::Neg(r(e)?),
        Expr::Binary(op, a, b) => Expr::Binary(op, r(a)?, r(b)?),
        Expr::IsNull(e, n) => Expr::IsNull(r(e)?, n),
        Expr::IsDistinct(a, b, n) => Expr::IsDistinct(r(a)?, r(b)?, n),
        Expr::InList(e, list, n) => Expr::InList(
            r(e)?,
            list.into_iter().map(|i| rewrite_grouped(i, group_keys)).collect::<SqlResult<_>>()?,
            n,
        ),
        Expr::Like { expr, pattern, negated, case_insensitive } => {
            Expr::Like { expr: r(expr)?, pattern: r(pattern)?, negated, case_insensitive }
        }
        Expr::Case { operand, whens, otherwise } => Expr::Case {
            operand: operand.map(r).transpose()?,
            whens: whens
                .into_iter()
                .map(|(w, t)| Ok((rewrite_grouped(w, group_keys)?, rewrite_grouped(t, group_keys)?)))
                .collect::<SqlResult<_>>()?,
            otherwise: otherwise.map(r).transpose()?,
        },
        Expr::Cast(e, t) => Expr::Cast(r(e)?, t),
        Expr::Function(n, args) => Expr::Function(
            n,
            args.into_iter().map(|a| rewrite_grouped(a, group_keys)).collect::<SqlResult<_>>()?,
        ),
        other @ (Expr::Literal(_) | Expr::Param(..) | Expr::Subquery(..)) => other,
    })
}

fn relabel(mut columns: Vec<Column>, label: &str, alias: Option<&ast::TableAlias>) -> Vec<Column> {
    for c in columns.iter_mut() {
        c.table = Some(label.to_string());
    }
    if let Some(alias) = alias {
        for (c, a) in columns.iter_mut().zip(&alias.columns) {
            c.name = ident(&a.name);
        }
    }
    columns
}

fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => ident(i),
        ast::Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
        ast::Expr::Function(f) => object_name(&f.name).unwrap_or_else(|_| "?column?".into()),
        ast::Expr::Cast { expr, .. } | ast::Expr::Nested(expr) => match output_name(expr).as_str() {
            "?column?" => "?column?".into(),
            name => name.to_string(),
        },
        ast::Expr::Case { .. } => "case".into(),
        ast::Expr::Exists { .. } => "exists".into(),
        _ => "?column?".into(),
    }
}

fn sort_key(expr: Expr, options: &ast::OrderByOptions) -> SortKey {
    let desc = matches!(options.sort, Some(ast::OrderBySort::Desc));
    // PostgreSQL: NULLs sort as larger than everything, so last ascending, first descending.
    SortKey { expr, desc, nulls_first: options.nulls_first.unwrap_or(desc) }
}

fn make_join(left: Plan, right: Plan, kind: JoinKind, on: Option<Expr>, widths: (usize, usize)) -> Plan {
    // Split ON into equalities between a left column expression and a right one (hash join
    // keys) and the rest.
    let mut keys = Vec::new();
    let mut residual = Vec::new();
    let mut conjuncts = Vec::new();
    if let Some(on) = on {
        split_and(on, &mut conjuncts);
    }
    for c in conjuncts {
        match &c {
            Expr::Binary(BinOp::Eq, a, b) => match (side(a, widths.0), side(b, widths.0)) {
                (Some(Side::Left), Some(Side::Right)) => keys.push((*a.clone(), shift(*b.clone(), widths.0))),
                (Some(Side::Right), Some(Side::Left)) => keys.push((*b.clone(), shift(*a.clone(), widths.0))),
                _ => residual.push(c),
            },
            _ => residual.push(c),
        }
    }
    let residual = residual.into_iter().reduce(|a, b| Expr::Binary(BinOp::And, Box::new(a), Box::new(b)));
    if keys.is_empty() {
        Plan::NestedLoopJoin { left: Box::new(left), right: Box::new(right), kind, on: residual, widths }
    } else {
        Plan::HashJoin { left: Box::new(left), right: Box::new(right), kind, keys, residual, widths }
    }
}

enum Side {
    Left,
    Right,
}

/// Which side of a join an expression reads, if only one (and no outer query, no subquery).
fn side(e: &Expr, left_width: usize) -> Option<Side> {
    let mut cols = Vec::new();
    if !columns_of(e, &mut cols) || cols.is_empty() {
        return None;
    }
    if cols.iter().all(|&c| c < left_width) {
        Some(Side::Left)
    } else if cols.iter().all(|&c| c >= left_width) {
        Some(Side::Right)
    } else {
        None
    }
}

/// Collects current-row columns; false if the expression is not a simple function of them.
fn columns_of(e: &Expr, out: &mut Vec<usize>) -> bool {
    match e {
        Expr::Column { depth: 0, index } => {
            out.push(*index);
            true
        }
        Expr::Literal(_) | Expr::Param(..) => true,
        Expr::Cast(e, _) | Expr::Neg(e) | Expr::Not(e) => columns_of(e, out),
        Expr::Binary(_, a, b) => columns_of(a, out) && columns_of(b, out),
        Expr::Function(name, args) => {
            !functions::is_volatile(name) && args.iter().all(|a| columns_of(a, out))
        }
        _ => false,
    }
}

/// Renumbers current-row columns down by `by` (a right-side expression, evaluated on the
/// right row alone).
fn shift(e: Expr, by: usize) -> Expr {
    match e {
        Expr::Column { depth: 0, index } => Expr::Column { depth: 0, index: index - by },
        Expr::Cast(e, t) => Expr::Cast(Box::new(shift(*e, by)), t),
        Expr::Neg(e) => Expr::Neg(Box::new(shift(*e, by))),
        Expr::Not(e) => Expr::Not(Box::new(shift(*e, by))),
        Expr::Binary(op, a, b) => Expr::Binary(op, Box::new(shift(*a, by)), Box::new(shift(*b, by))),
        Expr::Function(n, args) => Expr::Function(n, args.into_iter().map(|a| shift(a, by)).collect()),
        other => other,
    }
}

fn split_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary(BinOp::And, a, b) => {
            split_and(*a, out);
            split_and(*b, out);
        }
        other => out.push(other),
    }
}

/// Puts a WHERE predicate on a scan (choosing a key or index lookup when it pins one), or
/// over the plan.
/// Makes a single-table scan return its rows in the ORDER BY order when the keys are
/// NOT NULL columns (in one direction) forming a prefix of the primary key or of an index,
/// and the scan's access path allows it. `keys` refer to the projected `exprs`. Returns
/// whether the scan now delivers the order (the Sort is then not needed).
fn order_scan(plan: &mut Plan, keys: &[SortKey], exprs: &[Expr]) -> bool {
    let Plan::Scan { table, access, order, .. } = plan else { return false };
    let Some(first) = keys.first() else { return false };
    let desc = first.desc;
    let mut columns = Vec::with_capacity(keys.len());
    for key in keys {
        let Expr::Column { depth: 0, index } = key.expr else { return false };
        let Some(Expr::Column { depth: 0, index: column }) = exprs.get(index) else { return false };
        // NULLs sort first in our key encoding but last in PostgreSQL's ascending order:
        // only columns without NULLs can take the index order as is.
        if key.desc != desc || table.columns[*column].nullable {
            return false;
        }
        columns.push(*column);
    }
    let leads =
        |index_columns: &[usize]| index_columns.len() >= columns.len() && index_columns.starts_with(&columns);
    let chosen = match access {
        Access::Full => {
            if leads(&table.primary_key) {
                Some(None)
            } else {
                table.indexes.iter().find(|i| leads(&i.columns)).map(|i| Some(i.clone()))
            }
        }
        // A range over the first column of the same key already reads in that order.
        Access::Range { index, .. } => {
            let index_columns = index.as_ref().map_or(&table.primary_key, |i| &i.columns);
            leads(index_columns).then(|| index.clone())
        }
        _ => None,
    };
    match chosen {
        Some(index) => {
            *order = Some(ScanOrder { index, desc });
            true
        }
        None => false,
    }
}

fn push_filter(plan: Plan, predicate: Expr) -> Plan {
    match plan {
        Plan::Scan { table, access: Access::Full, filter: None, order } => {
            let access = choose_access(&table, &predicate);
            Plan::Scan { table, access, filter: Some(predicate), order }
        }
        other => Plan::Filter(Box::new(other), predicate),
    }
}

/// Whether an expression has one value for every row of the current scan (it may read the
/// rows of enclosing queries, which makes a correlated subquery an index lookup per row).
fn row_independent(e: &Expr) -> bool {
    match e {
        Expr::Literal(_) | Expr::Param(..) => true,
        Expr::Column { depth, .. } => *depth > 0,
        Expr::Cast(e, _) | Expr::Neg(e) => row_independent(e),
        Expr::Binary(_, a, b) => row_independent(a) && row_independent(b),
        Expr::Function(name, args) => !functions::is_volatile(name) && args.iter().all(row_independent),
        _ => false,
    }
}

/// Bounds on the current row's columns from a predicate's top-level conjunction:
/// equalities, and lower/upper bounds (value, inclusive).
#[derive(Default)]
struct Bounds {
    equal: HashMap<usize, Expr>,
    lower: HashMap<usize, (Expr, bool)>,
    upper: HashMap<usize, (Expr, bool)>,
}

fn bounds(predicate: &Expr) -> Bounds {
    let mut conjuncts = Vec::new();
    split_and(predicate.clone(), &mut conjuncts);
    let mut b = Bounds::default();
    for c in conjuncts {
        let Expr::Binary(op, l, r) = c else { continue };
        // Normalize to `column op value`.
        let (column, op, value) = match (*l, *r) {
            (Expr::Column { depth: 0, index }, v) if row_independent(&v) => (index, op, v),
            (v, Expr::Column { depth: 0, index }) if row_independent(&v) => {
                let flipped = match op {
                    BinOp::Lt => BinOp::Gt,
                    BinOp::LtEq => BinOp::GtEq,
                    BinOp::Gt => BinOp::Lt,
                    BinOp::GtEq => BinOp::LtEq,
                    other => other,
                };
                (index, flipped, v)
            }
            _ => continue,
        };
        match op {
            BinOp::Eq => {
                b.equal.insert(column, value);
            }
            BinOp::Gt | BinOp::GtEq => {
                b.lower.insert(column, (value, op == BinOp::GtEq));
            }
            BinOp::Lt | BinOp::LtEq => {
                b.upper.insert(column, (value, op == BinOp::LtEq));
            }
            _ => {}
        }
    }
    b
}

/// Picks how a scan filtered by `predicate` reads its table: a primary-key lookup, an index
/// lookup on the longest pinned prefix, a key or index range, or the whole table.
pub fn choose_access(table: &TableDef, predicate: &Expr) -> Access {
    let b = bounds(predicate);
    let pinned = &b.equal;
    if !table.primary_key.is_empty() && table.primary_key.iter().all(|c| pinned.contains_key(c)) {
        return Access::PrimaryKey(table.primary_key.iter().map(|c| pinned[c].clone()).collect());
    }
    let best = table
        .indexes
        .iter()
        .map(|i| (i, i.columns.iter().take_while(|c| pinned.contains_key(c)).count()))
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(i, n)| (*n == i.columns.len() && i.unique, *n));
    if let Some((index, n)) = best {
        return Access::Index(index.clone(), index.columns[..n].iter().map(|c| pinned[c].clone()).collect());
    }
    let ranged = |column: usize| b.lower.contains_key(&column) || b.upper.contains_key(&column);
    let range = |index: Option<&IndexDef>, column: usize| Access::Range {
        index: index.cloned(),
        lower: b.lower.get(&column).cloned(),
        upper: b.upper.get(&column).cloned(),
    };
    if let Some(&first) = table.primary_key.first()
        && ranged(first)
    {
        return range(None, first);
    }
    match table.indexes.iter().find(|i| ranged(i.columns[0])) {
        Some(index) => range(Some(index), index.columns[0]),
        None => Access::Full,
    }
}

/// A one-line-per-operator description of a plan, for EXPLAIN.
pub fn explain(plan: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    fn go(plan: &Plan, depth: usize, out: &mut Vec<String>) {
        let pad = "  ".repeat(depth);
        let arrow = if depth == 0 { "" } else { "-> " };
        let line = match plan {
            Plan::Scan { table, access, filter, order } => {
                let how = match access {
                    Access::Full => format!("Seq Scan on {}", table.name),
                    Access::PrimaryKey(_) => format!("Primary Key Lookup on {}", table.name),
                    Access::Range { index: None, .. } => format!("Primary Key Range Scan on {}", table.name),
                    Access::Range { index: Some(i), .. } => {
                        format!("Index Range Scan using {} on {}", i.name, table.name)
                    }
                    Access::Index(i, v) => format!(
                        "Index Scan using {} on {} ({} of {} columns)",
                        i.name,
                        table.name,
                        v.len(),
                        i.columns.len()
                    ),
                };
                let how = match order {
                    Some(ScanOrder { index, desc }) => format!(
                        "{how} in {} order{}",
                        index.as_ref().map_or("primary key", |i| i.name.as_str()),
                        if *desc { " (backward)" } else { "" }
                    ),
                    None => how,
                };
                if filter.is_some() { format!("{how} (filtered)") } else { how }
            }
            Plan::Unit => "Result".into(),
            Plan::Values(rows) => format!("Values ({} rows)", rows.len()),
            Plan::Filter(..) => "Filter".into(),
            Plan::Project(..) => "Project".into(),
            Plan::NestedLoopJoin { kind, .. } => format!("Nested Loop {kind:?} Join"),
            Plan::HashJoin { kind, keys, .. } => format!("Hash {kind:?} Join ({} keys)", keys.len()),
            Plan::Aggregate { group_by, .. } => {
                if group_by.is_empty() {
                    "Aggregate".into()
                } else {
                    format!("HashAggregate ({} keys)", group_by.len())
                }
            }
            Plan::Sort(_, keys) => format!("Sort ({} keys)", keys.len()),
            Plan::Limit { .. } => "Limit".into(),
            Plan::Distinct(_) => "Unique".into(),
            Plan::SetOp { op, all, .. } => format!("{op:?}{}", if *all { " All" } else { "" }),
        };
        out.push(format!("{pad}{arrow}{line}"));
        match plan {
            Plan::Filter(p, _) | Plan::Project(p, _) | Plan::Sort(p, _) | Plan::Distinct(p) => {
                go(p, depth + 1, out)
            }
            Plan::Aggregate { input, .. } | Plan::Limit { input, .. } => go(input, depth + 1, out),
            Plan::NestedLoopJoin { left, right, .. }
            | Plan::HashJoin { left, right, .. }
            | Plan::SetOp { left, right, .. } => {
                go(left, depth + 1, out);
                go(right, depth + 1, out);
            }
            _ => {}
        }
    }
    go(plan, 0, &mut lines);
    lines
}
