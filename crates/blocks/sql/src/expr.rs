//! Bound expressions and their evaluation.

use crate::error::{SqlError, SqlResult};
use crate::plan::Plan;
use crate::types::{DataType, Value};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use std::cmp::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    And,
    Or,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Plus,
    Minus,
    Multiply,
    Divide,
    Modulo,
    Concat,
    JsonGet,
    JsonGetText,
    JsonContains,
}

#[derive(Clone, Debug)]
pub enum SubqueryKind {
    Scalar,
    Exists,
    /// `expr [NOT] IN (subquery)`.
    In(Box<Expr>, bool),
}

/// A bound expression: names resolved to positions, types checked.
#[derive(Clone, Debug)]
pub enum Expr {
    Literal(Value),
    /// A column of the current row (`depth` 0) or of an enclosing query's row.
    Column {
        depth: usize,
        index: usize,
    },
    /// A query parameter (`$1` is 0).
    Param(usize, DataType),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    IsDistinct(Box<Expr>, Box<Expr>, bool),
    InList(Box<Expr>, Vec<Expr>, bool),
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast(Box<Expr>, DataType),
    Function(String, Vec<Expr>),
    Subquery(Box<Plan>, SubqueryKind),
    /// An aggregate's result, before the binder rewrites it to a column of the aggregation.
    AggRef(usize),
}

/// The rows an expression can see: its own and those of the queries around it.
pub struct Env<'a> {
    pub row: &'a [Value],
    pub outer: Option<&'a Env<'a>>,
}

/// What evaluation needs beyond rows: parameters and a way to run subqueries.
pub trait Context {
    fn param(&self, index: usize) -> SqlResult<Value>;
    fn run_subquery(&self, plan: &Plan, env: &Env) -> SqlResult<Vec<Vec<Value>>>;
}

impl Expr {
    pub fn eval(&self, ctx: &dyn Context, env: &Env) -> SqlResult<Value> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Column { depth, index } => {
                let mut e = env;
                for _ in 0..*depth {
                    e = e.outer.expect("binder resolved an outer column");
                }
                e.row[*index].clone()
            }
            Expr::Param(i, ty) => ctx.param(*i)?.cast(ty)?,
            Expr::Not(e) => match e.eval(ctx, env)?.as_bool()? {
                Some(b) => Value::Bool(!b),
                None => Value::Null,
            },
            Expr::Neg(e) => match e.eval(ctx, env)? {
                Value::Null => Value::Null,
                Value::Int(i) => Value::Int(i.checked_neg().ok_or_else(overflow)?),
                Value::Float(f) => Value::Float(-f),
                Value::Numeric(d) => Value::Numeric(-d),
                v => {
                    return Err(SqlError::new(
                        "42883",
                        format!("operator does not exist: - {}", v.data_type()),
                    ));
                }
            },
            Expr::Binary(BinOp::And, l, r) => {
                let l = l.eval(ctx, env)?.as_bool()?;
                if l == Some(false) {
                    return Ok(Value::Bool(false));
                }
                match (l, r.eval(ctx, env)?.as_bool()?) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Binary(BinOp::Or, l, r) => {
                let l = l.eval(ctx, env)?.as_bool()?;
                if l == Some(true) {
                    return Ok(Value::Bool(true));
                }
                match (l, r.eval(ctx, env)?.as_bool()?) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Binary(op, l, r) => binary(*op, l.eval(ctx, env)?, r.eval(ctx, env)?)?,
            Expr::IsNull(e, negated) => Value::Bool(e.eval(ctx, env)?.is_null() != *negated),
            Expr::IsDistinct(l, r, negated) => {
                let (l, r) = (l.eval(ctx, env)?, r.eval(ctx, env)?);
                let distinct = match (l.is_null(), r.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    _ => l.total_cmp(&r)? != Ordering::Equal,
                };
                Value::Bool(distinct != *negated)
            }
            Expr::InList(e, list, negated) => {
                let v = e.eval(ctx, env)?;
                let mut candidates = Vec::with_capacity(list.len());
                for item in list {
                    candidates.push(item.eval(ctx, env)?);
                }
                in_values(&v, &candidates, *negated)?
            }
            Expr::Like { expr, pattern, negated, case_insensitive } => {
                match (expr.eval(ctx, env)?, pattern.eval(ctx, env)?) {
                    (Value::Null, _) | (_, Value::Null) => Value::Null,
                    (v, p) => {
                        let (v, p) = (v.to_text(), p.to_text());
                        let matched = if *case_insensitive {
                            like(&v.to_lowercase(), &p.to_lowercase())
                        } else {
                            like(&v, &p)
                        };
                        Value::Bool(matched != *negated)
                    }
                }
            }
            Expr::Case { operand, whens, otherwise } => {
                let operand = operand.as_ref().map(|o| o.eval(ctx, env)).transpose()?;
                for (when, then) in whens {
                    let w = when.eval(ctx, env)?;
                    let hit = match &operand {
                        Some(o) => o.sql_cmp(&w)? == Some(Ordering::Equal),
                        None => w.as_bool()? == Some(true),
                    };
                    if hit {
                        return then.eval(ctx, env);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(ctx, env)?,
                    None => Value::Null,
                }
            }
            Expr::Cast(e, ty) => e.eval(ctx, env)?.cast(ty)?,
            Expr::Function(name, args) => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(a.eval(ctx, env)?);
                }
                crate::functions::call(name, values)?
            }
            Expr::Subquery(plan, kind) => {
                let rows = ctx.run_subquery(plan, env)?;
                match kind {
                    SubqueryKind::Exists => Value::Bool(!rows.is_empty()),
                    SubqueryKind::Scalar => match rows.len() {
                        0 => Value::Null,
                        1 => rows
                            .into_iter()
                            .next()
                            .expect("one row")
                            .into_iter()
                            .next()
                            .unwrap_or(Value::Null),
                        _ => {
                            return Err(SqlError::new(
                                "21000",
                                "more than one row returned by a subquery used as an expression",
                            ));
                        }
                    },
                    SubqueryKind::In(e, negated) => {
                        let v = e.eval(ctx, env)?;
                        let candidates: Vec<Value> =
                            rows.into_iter().filter_map(|r| r.into_iter().next()).collect();
                        in_values(&v, &candidates, *negated)?
                    }
                }
            }
            Expr::AggRef(_) => unreachable!("aggregate references are rewritten by the binder"),
        })
    }

    /// Whether the expression refers to a query around it (so a subquery must be re-run per row).
    pub fn is_constant(&self) -> bool {
        match self {
            Expr::Literal(_) | Expr::Param(..) => true,
            Expr::Column { .. } | Expr::Subquery(..) | Expr::AggRef(_) => false,
            Expr::Not(e) | Expr::Neg(e) | Expr::IsNull(e, _) | Expr::Cast(e, _) => e.is_constant(),
            Expr::Binary(_, l, r) | Expr::IsDistinct(l, r, _) => l.is_constant() && r.is_constant(),
            Expr::Function(name, args) => {
                !crate::functions::is_volatile(name) && args.iter().all(Expr::is_constant)
            }
            _ => false,
        }
    }
}

fn overflow() -> SqlError {
    SqlError::new("22003", "integer out of range")
}

fn in_values(v: &Value, candidates: &[Value], negated: bool) -> SqlResult<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let mut saw_null = false;
    for c in candidates {
        match v.sql_cmp(c)? {
            Some(Ordering::Equal) => return Ok(Value::Bool(!negated)),
            None => saw_null = true,
            _ => {}
        }
    }
    Ok(if saw_null { Value::Null } else { Value::Bool(negated) })
}

/// SQL LIKE with `%` and `_`, and `\` escaping the next character.
pub fn like(value: &str, pattern: &str) -> bool {
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    fn go(v: &[char], p: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('%') => (0..=v.len()).any(|i| go(&v[i..], &p[1..])),
            Some('_') => !v.is_empty() && go(&v[1..], &p[1..]),
            Some('\\') if p.len() > 1 => v.first() == Some(&p[1]) && go(&v[1..], &p[2..]),
            Some(c) => v.first() == Some(c) && go(&v[1..], &p[1..]),
        }
    }
    go(&v, &p)
}

fn binary(op: BinOp, l: Value, r: Value) -> SqlResult<Value> {
    use BinOp::*;
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    let cmp = |f: fn(Ordering) -> bool| -> SqlResult<Value> {
        Ok(match l.sql_cmp(&r)? {
            Some(o) => Value::Bool(f(o)),
            None => Value::Null,
        })
    };
    match op {
        Eq => return cmp(|o| o == Ordering::Equal),
        NotEq => return cmp(|o| o != Ordering::Equal),
        Lt => return cmp(|o| o == Ordering::Less),
        LtEq => return cmp(|o| o != Ordering::Greater),
        Gt => return cmp(|o| o == Ordering::Greater),
        GtEq => return cmp(|o| o != Ordering::Less),
        Concat => return Ok(Value::Text(format!("{}{}", l.to_text(), r.to_text()))),
        JsonGet | JsonGetText => {
            let Value::Json(j) = l else { return Err(SqlError::new("42883", "operator -> needs jsonb")) };
            let got = match r {
                Value::Int(i) => j.get(i as usize).cloned(),
                other => j.get(other.to_text()).cloned(),
            };
            return Ok(match (got, op) {
                (None, _) | (Some(serde_json::Value::Null), JsonGetText) => Value::Null,
                (Some(serde_json::Value::String(s)), JsonGetText) => Value::Text(s),
                (Some(v), JsonGetText) => Value::Text(v.to_string()),
                (Some(v), _) => Value::Json(v),
            });
        }
        JsonContains => {
            let (Value::Json(a), Value::Json(b)) = (l, r) else {
                return Err(SqlError::new("42883", "operator @> needs jsonb operands"));
            };
            return Ok(Value::Bool(json_contains(&a, &b)));
        }
        _ => {}
    }
    Ok(match (l, r) {
        (Value::Int(a), Value::Int(b)) => Value::Int(match op {
            Plus => a.checked_add(b).ok_or_else(overflow)?,
            Minus => a.checked_sub(b).ok_or_else(overflow)?,
            Multiply => a.checked_mul(b).ok_or_else(overflow)?,
            Divide => {
                if b == 0 {
                    return Err(division_by_zero());
                }
                a.checked_div(b).ok_or_else(overflow)?
            }
            Modulo => {
                if b == 0 {
                    return Err(division_by_zero());
                }
                a.checked_rem(b).unwrap_or(0)
            }
            _ => unreachable!(),
        }),
        (Value::Numeric(a), b) | (b, Value::Numeric(a))
            if !matches!(b, Value::Float(_)) && !matches!(op, Minus | Divide | Modulo) =>
        {
            let b = to_decimal(&b)?;
            Value::Numeric(
                match op {
                    Plus => a.checked_add(b),
                    Multiply => a.checked_mul(b),
                    _ => unreachable!(),
                }
                .ok_or_else(|| SqlError::new("22003", "numeric field overflow"))?,
            )
        }
        (a @ (Value::Numeric(_) | Value::Int(_)), b @ (Value::Numeric(_) | Value::Int(_))) => {
            let (a, b) = (to_decimal(&a)?, to_decimal(&b)?);
            if matches!(op, Divide | Modulo) && b.is_zero() {
                return Err(division_by_zero());
            }
            Value::Numeric(
                match op {
                    Plus => a.checked_add(b),
                    Minus => a.checked_sub(b),
                    Multiply => a.checked_mul(b),
                    Divide => numeric_div(a, b),
                    Modulo => a.checked_rem(b),
                    _ => unreachable!(),
                }
                .ok_or_else(|| SqlError::new("22003", "numeric field overflow"))?,
            )
        }
        (a, b) if a.data_type().is_numeric() && b.data_type().is_numeric() => {
            let (a, b) = (to_f64(&a), to_f64(&b));
            Value::Float(match op {
                Plus => a + b,
                Minus => a - b,
                Multiply => a * b,
                Divide => {
                    if b == 0.0 {
                        return Err(division_by_zero());
                    }
                    a / b
                }
                Modulo => a % b,
                _ => unreachable!(),
            })
        }
        (Value::Date(d), Value::Int(n)) if matches!(op, Plus | Minus) => {
            let days = chrono::Days::new(n.unsigned_abs());
            let moved =
                if (op == Plus) == (n >= 0) { d.checked_add_days(days) } else { d.checked_sub_days(days) };
            Value::Date(moved.ok_or_else(|| SqlError::new("22008", "date out of range"))?)
        }
        (Value::Date(a), Value::Date(b)) if op == Minus => Value::Int((a - b).num_days()),
        (a, b) => {
            return Err(SqlError::new(
                "42883",
                format!("operator does not exist: {} {op:?} {}", a.data_type(), b.data_type()),
            ));
        }
    })
}

/// Numeric division with PostgreSQL's result scale (`select_div_scale`): at least 16
/// significant digits, and no fewer decimals than either operand (capped at 28, the most
/// `rust_decimal` holds).
pub fn numeric_div(a: Decimal, b: Decimal) -> Option<Decimal> {
    // Weight and first digit in base 10000, as PostgreSQL stores numerics.
    fn weight_and_first(d: Decimal) -> (i64, u64) {
        let d = d.abs();
        if d.is_zero() {
            return (0, 0);
        }
        let mut weight = 0i64;
        let mut scaled = d;
        let base = Decimal::from(10_000);
        while scaled >= base {
            scaled /= base;
            weight += 1;
        }
        while scaled < Decimal::ONE {
            scaled *= base;
            weight -= 1;
        }
        (weight, scaled.trunc().to_u64().unwrap_or(0))
    }
    let (w1, f1) = weight_and_first(a);
    let (w2, f2) = weight_and_first(b);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let scale = (16 - qweight * 4).max(a.scale() as i64).max(b.scale() as i64).clamp(0, 28) as u32;
    let mut q =
        a.checked_div(b)?.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    q.rescale(scale);
    Some(q)
}

fn division_by_zero() -> SqlError {
    SqlError::new("22012", "division by zero")
}

fn to_decimal(v: &Value) -> SqlResult<Decimal> {
    match v {
        Value::Int(i) => Ok(Decimal::from(*i)),
        Value::Numeric(d) => Ok(*d),
        other => Err(SqlError::new("42883", format!("cannot use {} as numeric", other.data_type()))),
    }
}

fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Numeric(d) => d.to_f64().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn json_contains(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Object(a), J::Object(b)) => {
            b.iter().all(|(k, bv)| a.get(k).is_some_and(|av| json_contains(av, bv)))
        }
        (J::Array(a), J::Array(b)) => b.iter().all(|bv| a.iter().any(|av| json_contains(av, bv))),
        (J::Array(a), b) => a.iter().any(|av| av == b),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o"));
        assert!(like("hello", "_ello"));
        assert!(!like("hello", "h_o"));
        assert!(like("50%", "50\\%"));
        assert!(like("", "%"));
    }
}
