//! Scalar functions, by name, and their result types.

use crate::error::{SqlError, SqlResult};
use crate::types::{DataType, Value};
use rust_decimal::prelude::Signed;
use rust_decimal::{Decimal, RoundingStrategy};
use std::cmp::Ordering;

/// Functions whose result changes between calls with the same arguments.
pub fn is_volatile(name: &str) -> bool {
    matches!(name, "now" | "current_timestamp" | "current_date" | "random" | "gen_random_uuid" | "pg_sleep")
}

/// The result type of `name` given its argument types, or an error for an unknown function.
pub fn result_type(name: &str, args: &[DataType]) -> SqlResult<DataType> {
    let first = || args.first().cloned().unwrap_or(DataType::Unknown);
    Ok(match name {
        "lower" | "upper" | "concat" | "substring" | "substr" | "trim" | "btrim" | "ltrim" | "rtrim"
        | "replace" | "left" | "right" | "repeat" | "reverse" | "initcap" | "lpad" | "rpad" => DataType::Text,
        "length" | "char_length" | "octet_length" | "strpos" | "position" => DataType::Int4,
        "abs" | "ceil" | "ceiling" | "floor" | "sign" => first(),
        "round" | "trunc" => match first() {
            t if t.is_integer() => DataType::Numeric(None),
            t => t,
        },
        "sqrt" | "power" | "pow" | "exp" | "ln" | "log" | "random" | "date_part" => DataType::Float8,
        "mod" => first(),
        "coalesce" | "greatest" | "least" | "nullif" => {
            let mut ty = DataType::Unknown;
            for a in args {
                ty = DataType::common(&ty, a).unwrap_or(ty);
            }
            ty
        }
        "now" | "current_timestamp" => DataType::Timestamptz,
        "current_date" => DataType::Date,
        "gen_random_uuid" => DataType::Uuid,
        "date_trunc" => args.get(1).cloned().unwrap_or(DataType::Timestamp),
        "jsonb_typeof" => DataType::Text,
        // PostgreSQL's `void`, which clients show as an empty value.
        "pg_sleep" => DataType::Text,
        _ => return Err(SqlError::new("42883", format!("function {name}() does not exist"))),
    })
}

fn arity(name: &str, args: &[Value], range: std::ops::RangeInclusive<usize>) -> SqlResult<()> {
    if range.contains(&args.len()) {
        Ok(())
    } else {
        Err(SqlError::new("42883", format!("function {name} does not take {} arguments", args.len())))
    }
}

pub fn call(name: &str, args: Vec<Value>) -> SqlResult<Value> {
    // Functions that look at NULLs themselves.
    match name {
        "coalesce" => return Ok(args.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null)),
        "nullif" => {
            arity(name, &args, 2..=2)?;
            let equal = args[0].sql_cmp(&args[1])? == Some(Ordering::Equal);
            return Ok(if equal { Value::Null } else { args[0].clone() });
        }
        "greatest" | "least" => {
            let mut best: Option<Value> = None;
            for v in args.into_iter().filter(|v| !v.is_null()) {
                let better = match &best {
                    None => true,
                    Some(b) => {
                        let o = v.total_cmp(b)?;
                        if name == "greatest" { o == Ordering::Greater } else { o == Ordering::Less }
                    }
                };
                if better {
                    best = Some(v);
                }
            }
            return Ok(best.unwrap_or(Value::Null));
        }
        "concat" => return Ok(Value::Text(args.iter().map(Value::to_text).collect())),
        "now" | "current_timestamp" => return Ok(Value::Timestamptz(chrono::Utc::now())),
        "current_date" => return Ok(Value::Date(chrono::Utc::now().date_naive())),
        // From the thread's generator: `Uuid::new_v4` asked the kernel on every call.
        "gen_random_uuid" => {
            return Ok(Value::Uuid(uuid::Builder::from_random_bytes(rand::random()).into_uuid()));
        }
        "random" => return Ok(Value::Float(rand::random::<f64>())),
        _ => {}
    }
    if args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let text = |i: usize| args[i].to_text();
    let int = |i: usize| -> SqlResult<i64> {
        match args[i].clone().cast(&DataType::Int8)? {
            Value::Int(n) => Ok(n),
            _ => unreachable!(),
        }
    };
    let float = |i: usize| -> SqlResult<f64> {
        match args[i].clone().cast(&DataType::Float8)? {
            Value::Float(f) => Ok(f),
            _ => unreachable!(),
        }
    };
    Ok(match name {
        "pg_sleep" => {
            arity(name, &args, 1..=1)?;
            crate::cancel::sleep(float(0)?)?;
            Value::Text(String::new())
        }
        "lower" => Value::Text(text(0).to_lowercase()),
        "upper" => Value::Text(text(0).to_uppercase()),
        "initcap" => {
            // A word starts after any character that is not a letter or digit.
            let mut out = String::new();
            let mut start = true;
            for c in text(0).chars() {
                if start {
                    out.extend(c.to_uppercase())
                } else {
                    out.extend(c.to_lowercase())
                }
                start = !c.is_alphanumeric();
            }
            Value::Text(out)
        }
        "length" | "char_length" => Value::Int(text(0).chars().count() as i64),
        "octet_length" => Value::Int(text(0).len() as i64),
        "reverse" => Value::Text(text(0).chars().rev().collect()),
        "repeat" => Value::Text(text(0).repeat(int(1)?.max(0) as usize)),
        "left" | "right" => {
            let chars: Vec<char> = text(0).chars().collect();
            let n = int(1)?;
            let len = chars.len() as i64;
            let take = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            Value::Text(if name == "left" {
                chars[..take].iter().collect()
            } else {
                chars[chars.len() - take..].iter().collect()
            })
        }
        "substring" | "substr" => {
            arity(name, &args, 2..=3)?;
            let chars: Vec<char> = text(0).chars().collect();
            let start = int(1)?;
            let end = if args.len() == 3 {
                let n = int(2)?;
                if n < 0 {
                    return Err(SqlError::new("22011", "negative substring length not allowed"));
                }
                start + n
            } else {
                i64::MAX
            };
            let (from, to) = ((start.max(1) - 1) as usize, (end.max(1) - 1).min(chars.len() as i64) as usize);
            Value::Text(if from < to { chars[from..to].iter().collect() } else { String::new() })
        }
        "strpos" | "position" => {
            Value::Int(text(0).find(&text(1)).map_or(0, |i| text(0)[..i].chars().count() as i64 + 1))
        }
        "trim" | "btrim" => Value::Text(text(0).trim().to_string()),
        "ltrim" => Value::Text(text(0).trim_start().to_string()),
        "rtrim" => Value::Text(text(0).trim_end().to_string()),
        "replace" => Value::Text(text(0).replace(&text(1), &text(2))),
        "lpad" | "rpad" => {
            let s: Vec<char> = text(0).chars().collect();
            let n = int(1)?.max(0) as usize;
            let fill: Vec<char> = if args.len() > 2 { text(2).chars().collect() } else { vec![' '] };
            if s.len() >= n || fill.is_empty() {
                Value::Text(s[..n.min(s.len())].iter().collect())
            } else {
                let pad: String = fill.iter().cycle().take(n - s.len()).collect();
                let s: String = s.iter().collect();
                Value::Text(if name == "lpad" { pad + &s } else { s + &pad })
            }
        }
        "abs" => match &args[0] {
            Value::Int(i) => {
                Value::Int(i.checked_abs().ok_or_else(|| SqlError::new("22003", "integer out of range"))?)
            }
            Value::Float(f) => Value::Float(f.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            v => {
                return Err(SqlError::new(
                    "42883",
                    format!("function abs({}) does not exist", v.data_type()),
                ));
            }
        },
        "sign" => match &args[0] {
            Value::Int(i) => Value::Int(i.signum()),
            Value::Numeric(d) => Value::Numeric(if d.is_zero() { Decimal::ZERO } else { d.signum() }),
            _ => Value::Float(float(0)?.signum()),
        },
        "ceil" | "ceiling" | "floor" => match &args[0] {
            Value::Int(i) => Value::Int(*i),
            Value::Numeric(d) => Value::Numeric(if name == "floor" { d.floor() } else { d.ceil() }),
            _ => Value::Float(if name == "floor" { float(0)?.floor() } else { float(0)?.ceil() }),
        },
        "round" | "trunc" => {
            let places = if args.len() > 1 { int(1)? } else { 0 };
            let strategy = if name == "round" {
                RoundingStrategy::MidpointAwayFromZero
            } else {
                RoundingStrategy::ToZero
            };
            match &args[0] {
                Value::Float(f) if args.len() == 1 => {
                    Value::Float(if name == "round" { f.round() } else { f.trunc() })
                }
                v => {
                    let d = match v.clone().cast(&DataType::Numeric(None))? {
                        Value::Numeric(d) => d,
                        _ => unreachable!(),
                    };
                    Value::Numeric(d.round_dp_with_strategy(places.clamp(0, 28) as u32, strategy))
                }
            }
        }
        "mod" => match (&args[0], &args[1]) {
            (Value::Int(_), Value::Int(0)) => return Err(SqlError::new("22012", "division by zero")),
            (Value::Int(a), Value::Int(b)) => Value::Int(a % b),
            _ => Value::Float(float(0)? % float(1)?),
        },
        "sqrt" => {
            let f = float(0)?;
            if f < 0.0 {
                return Err(SqlError::new("2201F", "cannot take square root of a negative number"));
            }
            Value::Float(f.sqrt())
        }
        "power" | "pow" => Value::Float(float(0)?.powf(float(1)?)),
        "exp" => Value::Float(float(0)?.exp()),
        "ln" => Value::Float(float(0)?.ln()),
        "log" => Value::Float(float(0)?.log10()),
        "date_part" => {
            use chrono::{Datelike, Timelike};
            let field = text(0).to_lowercase();
            let t = match args[1].clone().cast(&DataType::Timestamp)? {
                Value::Timestamp(t) => t,
                _ => unreachable!(),
            };
            Value::Float(match field.as_str() {
                "year" => t.year() as f64,
                "month" => t.month() as f64,
                "day" => t.day() as f64,
                "hour" => t.hour() as f64,
                "minute" => t.minute() as f64,
                "second" => t.second() as f64 + t.nanosecond() as f64 / 1e9,
                "dow" => t.weekday().num_days_from_sunday() as f64,
                "doy" => t.ordinal() as f64,
                "epoch" => t.and_utc().timestamp_micros() as f64 / 1e6,
                _ => return Err(SqlError::new("22023", format!("unit \"{field}\" not recognized"))),
            })
        }
        "date_trunc" => {
            use chrono::{Datelike, NaiveDate, Timelike};
            let field = text(0).to_lowercase();
            let (t, tz) = match &args[1] {
                Value::Timestamptz(t) => (t.naive_utc(), true),
                v => match v.clone().cast(&DataType::Timestamp)? {
                    Value::Timestamp(t) => (t, false),
                    _ => unreachable!(),
                },
            };
            let d = t.date();
            let truncated = match field.as_str() {
                "year" => NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("valid").and_hms_opt(0, 0, 0),
                "month" => {
                    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("valid").and_hms_opt(0, 0, 0)
                }
                "day" => d.and_hms_opt(0, 0, 0),
                "hour" => d.and_hms_opt(t.hour(), 0, 0),
                "minute" => d.and_hms_opt(t.hour(), t.minute(), 0),
                _ => return Err(SqlError::new("22023", format!("unit \"{field}\" not recognized"))),
            }
            .expect("valid time");
            if tz { Value::Timestamptz(truncated.and_utc()) } else { Value::Timestamp(truncated) }
        }
        "jsonb_typeof" => match &args[0] {
            Value::Json(j) => Value::Text(
                match j {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "boolean",
                    serde_json::Value::Number(_) => "number",
                    serde_json::Value::String(_) => "string",
                    serde_json::Value::Array(_) => "array",
                    serde_json::Value::Object(_) => "object",
                }
                .into(),
            ),
            _ => return Err(SqlError::new("42883", "jsonb_typeof needs jsonb")),
        },
        _ => return Err(SqlError::new("42883", format!("function {name}() does not exist"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_substrings() {
        let round = call("round", vec![Value::Numeric(Decimal::new(25, 1))]).unwrap();
        assert_eq!(round.to_text(), "3");
        let sub = call("substring", vec![Value::Text("hello".into()), Value::Int(2), Value::Int(3)]).unwrap();
        assert_eq!(sub.to_text(), "ell");
    }
}
