//! SQL types and values: comparison, casts, arithmetic and text forms as PostgreSQL has them.

use crate::error::{SqlError, SqlResult};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A column or expression type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// NUMERIC(precision, scale); `None` when unconstrained.
    Numeric(Option<(u32, u32)>),
    Text,
    Varchar(Option<u32>),
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
    Uuid,
    Jsonb,
    /// The type of a bare NULL or an untyped parameter, before context decides.
    Unknown,
}

impl DataType {
    /// Parses a type as sqlparser prints it (`INTEGER`, `VARCHAR(20)`, `NUMERIC(10,2)`, ...).
    pub fn parse(name: &str) -> SqlResult<DataType> {
        let upper = name.trim().to_uppercase();
        let (base, args) = match upper.find('(') {
            Some(i) => {
                (upper[..i].trim().to_string(), Some(upper[i + 1..].trim_end_matches(')').to_string()))
            }
            None => (upper.clone(), None),
        };
        let nums: Vec<u32> = args
            .as_deref()
            .map(|a| a.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_default();
        Ok(match base.as_str() {
            "BOOLEAN" | "BOOL" => DataType::Bool,
            "SMALLINT" | "INT2" => DataType::Int2,
            "INTEGER" | "INT" | "INT4" | "SERIAL" => DataType::Int4,
            "BIGINT" | "INT8" | "BIGSERIAL" => DataType::Int8,
            "REAL" | "FLOAT4" => DataType::Float4,
            "DOUBLE PRECISION" | "FLOAT8" | "FLOAT" | "DOUBLE" => DataType::Float8,
            "NUMERIC" | "DECIMAL" => match nums[..] {
                [p, s] => DataType::Numeric(Some((p, s))),
                [p] => DataType::Numeric(Some((p, 0))),
                _ => DataType::Numeric(None),
            },
            "TEXT" | "STRING" => DataType::Text,
            "VARCHAR" | "CHARACTER VARYING" | "CHAR" | "CHARACTER" | "BPCHAR" => {
                DataType::Varchar(nums.first().copied())
            }
            "BYTEA" => DataType::Bytea,
            "DATE" => DataType::Date,
            "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => DataType::Timestamp,
            "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => DataType::Timestamptz,
            "UUID" => DataType::Uuid,
            "JSONB" | "JSON" => DataType::Jsonb,
            _ => {
                return Err(SqlError::new(
                    "42704",
                    format!("type \"{}\" does not exist", name.to_lowercase()),
                ));
            }
        })
    }

    pub fn is_integer(&self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8)
    }

    pub fn is_numeric(&self) -> bool {
        self.is_integer() || matches!(self, DataType::Float4 | DataType::Float8 | DataType::Numeric(_))
    }

    pub fn is_text(&self) -> bool {
        matches!(self, DataType::Text | DataType::Varchar(_))
    }

    /// PostgreSQL's name for the type, as in error messages.
    pub fn pg_name(&self) -> &'static str {
        match self {
            DataType::Bool => "boolean",
            DataType::Int2 => "smallint",
            DataType::Int4 => "integer",
            DataType::Int8 => "bigint",
            DataType::Float4 => "real",
            DataType::Float8 => "double precision",
            DataType::Numeric(_) => "numeric",
            DataType::Text => "text",
            DataType::Varchar(_) => "character varying",
            DataType::Bytea => "bytea",
            DataType::Date => "date",
            DataType::Timestamp => "timestamp without time zone",
            DataType::Timestamptz => "timestamp with time zone",
            DataType::Uuid => "uuid",
            DataType::Jsonb => "jsonb",
            DataType::Unknown => "unknown",
        }
    }

    /// The common type two operands are converted to for comparison or arithmetic.
    pub fn common(a: &DataType, b: &DataType) -> Option<DataType> {
        use DataType::*;
        if a == b {
            return Some(a.clone());
        }
        Some(match (a, b) {
            (Unknown, t) | (t, Unknown) => t.clone(),
            (Float8, t) | (t, Float8) if t.is_numeric() => Float8,
            (Float4, t) | (t, Float4) if t.is_numeric() => {
                if matches!(t, Numeric(_) | Int8) {
                    Float8
                } else {
                    Float4
                }
            }
            (Numeric(_), t) | (t, Numeric(_)) if t.is_numeric() => Numeric(None),
            (Int8, t) | (t, Int8) if t.is_integer() => Int8,
            (Int4, t) | (t, Int4) if t.is_integer() => Int4,
            (x, y) if x.is_text() && y.is_text() => Text,
            (Timestamptz, Timestamp | Date) | (Timestamp | Date, Timestamptz) => Timestamptz,
            (Timestamp, Date) | (Date, Timestamp) => Timestamp,
            _ => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pg_name())
    }
}

/// A SQL value. Integers of every width are `Int`; the column type says which.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Numeric(Decimal),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    Timestamptz(DateTime<Utc>),
    Uuid(uuid::Uuid),
    Json(serde_json::Value),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The natural type of a value (for literals).
    pub fn data_type(&self) -> DataType {
        match self {
            Value::Null => DataType::Unknown,
            Value::Bool(_) => DataType::Bool,
            Value::Int(i) if i32::try_from(*i).is_ok() => DataType::Int4,
            Value::Int(_) => DataType::Int8,
            Value::Float(_) => DataType::Float8,
            Value::Numeric(_) => DataType::Numeric(None),
            Value::Text(_) => DataType::Text,
            Value::Bytes(_) => DataType::Bytea,
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::Timestamptz(_) => DataType::Timestamptz,
            Value::Uuid(_) => DataType::Uuid,
            Value::Json(_) => DataType::Jsonb,
        }
    }

    /// SQL comparison: `None` when either side is NULL (three-valued logic).
    pub fn sql_cmp(&self, other: &Value) -> SqlResult<Option<Ordering>> {
        if self.is_null() || other.is_null() {
            return Ok(None);
        }
        Ok(Some(self.total_cmp(other)?))
    }

    /// Comparison for sorting and grouping, NULL equal to NULL.
    pub fn total_cmp(&self, other: &Value) -> SqlResult<Ordering> {
        use Value::*;
        Ok(match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Greater,
            (_, Null) => Ordering::Less,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => pg_float_cmp(*a, *b),
            (Int(a), Float(b)) => pg_float_cmp(*a as f64, *b),
            (Float(a), Int(b)) => pg_float_cmp(*a, *b as f64),
            (Numeric(a), Numeric(b)) => a.cmp(b),
            (Numeric(a), Int(b)) => a.cmp(&Decimal::from(*b)),
            (Int(a), Numeric(b)) => Decimal::from(*a).cmp(b),
            (Numeric(a), Float(b)) => pg_float_cmp(a.to_f64().unwrap_or(f64::NAN), *b),
            (Float(a), Numeric(b)) => pg_float_cmp(*a, b.to_f64().unwrap_or(f64::NAN)),
            (Text(a), Text(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Timestamptz(a), Timestamptz(b)) => a.cmp(b),
            (Date(a), Timestamp(b)) => a.and_hms_opt(0, 0, 0).expect("midnight").cmp(b),
            (Timestamp(a), Date(b)) => a.cmp(&b.and_hms_opt(0, 0, 0).expect("midnight")),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Json(a), Json(b)) => a.to_string().cmp(&b.to_string()),
            (a, b) => {
                return Err(SqlError::new(
                    "42883",
                    format!("operator does not exist: {} = {}", a.data_type(), b.data_type()),
                ));
            }
        })
    }

    /// Converts to `ty` as an explicit or assignment cast does.
    pub fn cast(self, ty: &DataType) -> SqlResult<Value> {
        use Value::*;
        if self.is_null() || *ty == DataType::Unknown {
            return Ok(self);
        }
        let invalid = |v: &dyn fmt::Display| {
            SqlError::new("22P02", format!("invalid input syntax for type {}: \"{v}\"", ty.pg_name()))
        };
        let out_of_range = || SqlError::new("22003", format!("{} out of range", ty.pg_name()));
        let invalid_datetime = |v: &dyn fmt::Display| {
            SqlError::new("22007", format!("invalid input syntax for type {}: \"{v}\"", ty.pg_name()))
        };
        let value = match (self, ty) {
            (Bool(b), DataType::Bool) => Bool(b),
            (Int(i), DataType::Bool) => Bool(i != 0),
            (Text(s), DataType::Bool) => match s.trim().to_lowercase().as_str() {
                "t" | "true" | "yes" | "y" | "on" | "1" => Bool(true),
                "f" | "false" | "no" | "n" | "off" | "0" => Bool(false),
                _ => return Err(invalid(&s)),
            },
            (Int(i), DataType::Int2) if i16::try_from(i).is_err() => return Err(out_of_range()),
            (Int(i), DataType::Int4) if i32::try_from(i).is_err() => return Err(out_of_range()),
            (Int(i), t) if t.is_integer() => Int(i),
            (Bool(b), t) if t.is_integer() => Int(b as i64),
            (Float(f), t) if t.is_integer() => {
                if !f.is_finite() {
                    return Err(out_of_range());
                }
                Int(f.round_ties_even() as i64)
            }
            (Numeric(d), t) if t.is_integer() => {
                let rounded =
                    d.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
                Int(rounded.to_i64().ok_or_else(out_of_range)?)
            }
            (Text(s), t) if t.is_integer() => Int(s.trim().parse().map_err(|_| invalid(&s))?),
            (Int(i), DataType::Float4 | DataType::Float8) => Float(i as f64),
            (Float(f), DataType::Float4) => Float(f as f32 as f64),
            (Float(f), DataType::Float8) => Float(f),
            (Numeric(d), DataType::Float4 | DataType::Float8) => Float(d.to_f64().ok_or_else(out_of_range)?),
            (Text(s), DataType::Float4 | DataType::Float8) => {
                Float(parse_float(&s).ok_or_else(|| invalid(&s))?)
            }
            (Int(i), DataType::Numeric(_)) => Numeric(Decimal::from(i)),
            (Float(f), DataType::Numeric(_)) => Numeric(Decimal::from_f64(f).ok_or_else(|| invalid(&f))?),
            (Numeric(d), DataType::Numeric(_)) => Numeric(d),
            (Text(s), DataType::Numeric(_)) => Numeric(
                Decimal::from_str(s.trim())
                    .or_else(|_| Decimal::from_scientific(s.trim()))
                    .map_err(|_| invalid(&s))?,
            ),
            (Bytes(b), DataType::Bytea) => Bytes(b),
            (Text(s), DataType::Bytea) => Bytes(parse_bytea(&s).ok_or_else(|| invalid(&s))?),
            (Date(d), DataType::Date) => Date(d),
            (Timestamp(t), DataType::Date) => Date(t.date()),
            (Timestamptz(t), DataType::Date) => Date(t.date_naive()),
            (Text(s), DataType::Date) => {
                Date(NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| invalid_datetime(&s))?)
            }
            (Timestamp(t), DataType::Timestamp) => Timestamp(t),
            (Date(d), DataType::Timestamp) => Timestamp(d.and_hms_opt(0, 0, 0).expect("midnight")),
            (Timestamptz(t), DataType::Timestamp) => Timestamp(t.naive_utc()),
            (Text(s), DataType::Timestamp) => {
                Timestamp(parse_timestamp(&s).ok_or_else(|| invalid_datetime(&s))?)
            }
            (Timestamptz(t), DataType::Timestamptz) => Timestamptz(t),
            (Timestamp(t), DataType::Timestamptz) => Timestamptz(t.and_utc()),
            (Date(d), DataType::Timestamptz) => {
                Timestamptz(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
            }
            (Text(s), DataType::Timestamptz) => {
                Timestamptz(parse_timestamptz(&s).ok_or_else(|| invalid(&s))?)
            }
            (Uuid(u), DataType::Uuid) => Uuid(u),
            (Text(s), DataType::Uuid) => Uuid(uuid::Uuid::parse_str(s.trim()).map_err(|_| invalid(&s))?),
            (Json(j), DataType::Jsonb) => Json(j),
            (Text(s), DataType::Jsonb) => Json(serde_json::from_str(&s).map_err(|_| {
                SqlError::new("22P02", format!("invalid input syntax for type json: \"{s}\""))
            })?),
            (Bool(b), t) if t.is_text() => Text(if b { "true" } else { "false" }.into()),
            (v, t) if t.is_text() => Text(v.to_text()),
            (v, t) => {
                return Err(SqlError::new(
                    "42846",
                    format!("cannot cast type {} to {}", v.data_type().pg_name(), t.pg_name()),
                ));
            }
        };
        apply_typmod(value, ty)
    }

    /// Casts for storing into a column of type `ty`, enforcing its width and range.
    pub fn coerce_to_column(self, ty: &DataType) -> SqlResult<Value> {
        // An explicit cast truncates to VARCHAR(n); storing into the column is an error.
        if let (DataType::Varchar(Some(n)), Some(text)) = (ty, self.clone().cast(&DataType::Text).ok())
            && let Value::Text(s) = &text
            && s.chars().count() > *n as usize
        {
            return Err(SqlError::new("22001", format!("value too long for type character varying({n})")));
        }
        self.cast(ty)
    }

    /// PostgreSQL's text output form.
    pub fn to_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Numeric(d) => d.to_string(),
            Value::Text(s) => s.clone(),
            Value::Bytes(b) => format!("\\x{}", b.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            Value::Timestamptz(t) => t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string(),
            Value::Uuid(u) => u.hyphenated().to_string(),
            Value::Json(j) => jsonb_text(j),
        }
    }

    /// Truthiness for WHERE and boolean operators: `None` is NULL.
    pub fn as_bool(&self) -> SqlResult<Option<bool>> {
        match self {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            other => Err(SqlError::new(
                "42804",
                format!("argument must be type boolean, not type {}", other.data_type().pg_name()),
            )),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// jsonb's text form: `", "` and `": "` separators, object keys shortest first then
/// bytewise (the order jsonb stores them in).
fn jsonb_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(jsonb_text).collect::<Vec<_>>().join(", "))
        }
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            let parts: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}: {}", serde_json::Value::String(k.clone()), jsonb_text(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        scalar => scalar.to_string(),
    }
}

/// Applies a type's modifier: NUMERIC(p,s) rounds to s places (an overflow of p is an
/// error); VARCHAR(n) truncates.
fn apply_typmod(value: Value, ty: &DataType) -> SqlResult<Value> {
    match (value, ty) {
        (Value::Numeric(d), DataType::Numeric(Some((p, s)))) => {
            let mut rounded =
                d.round_dp_with_strategy(*s, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            let digits_before = rounded.trunc().abs().to_string().trim_start_matches('0').len() as u32;
            if digits_before > p.saturating_sub(*s) {
                return Err(SqlError::new("22003", "numeric field overflow"));
            }
            rounded.rescale(*s);
            Ok(Value::Numeric(rounded))
        }
        (Value::Text(t), DataType::Varchar(Some(n))) if t.chars().count() > *n as usize => {
            Ok(Value::Text(t.chars().take(*n as usize).collect()))
        }
        (value, _) => Ok(value),
    }
}

/// PostgreSQL orders NaN above every other float, and equal to itself.
fn pg_float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).expect("not NaN"),
    }
}

fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        // Rust's shortest round-trip form matches PostgreSQL 12+ (extra_float_digits = 1).
        let s = f.to_string();
        if s.contains('e') { format!("{f:e}") } else { s }
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim().to_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn parse_bytea(s: &str) -> Option<Vec<u8>> {
    match s.strip_prefix("\\x") {
        Some(hex) if hex.len() % 2 == 0 => {
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
        }
        Some(_) => None,
        None => Some(s.as_bytes().to_vec()),
    }
}

fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
}

fn parse_timestamptz(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f %#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix(" UTC")).unwrap_or(s);
    parse_timestamp(s).map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_follow_postgres() {
        assert_eq!(Value::Float(2.5).cast(&DataType::Int4).unwrap().to_text(), "2");
        assert_eq!(Value::Float(3.5).cast(&DataType::Int4).unwrap().to_text(), "4");
        assert_eq!(Value::Text(" 42 ".into()).cast(&DataType::Int8).unwrap().to_text(), "42");
        assert_eq!(Value::Text("x".into()).cast(&DataType::Int8).unwrap_err().code, "22P02");
        assert_eq!(Value::Int(70000).coerce_to_column(&DataType::Int2).unwrap_err().code, "22003");
        let n = Value::Text("12.345".into()).coerce_to_column(&DataType::Numeric(Some((5, 2)))).unwrap();
        assert_eq!(n.to_text(), "12.35");
        assert_eq!(
            Value::Text("1234.5".into()).coerce_to_column(&DataType::Numeric(Some((5, 2)))).unwrap_err().code,
            "22003"
        );
        assert_eq!(
            Value::Text("abcd".into()).coerce_to_column(&DataType::Varchar(Some(3))).unwrap_err().code,
            "22001"
        );
        assert_eq!(Value::Bytes(vec![0xde, 0xad]).to_text(), "\\xdead");
        assert_eq!(Value::Float(0.1 + 0.2).to_text(), "0.30000000000000004");
    }

    #[test]
    fn types_parse_from_sqlparser_names() {
        assert_eq!(DataType::parse("NUMERIC(10,2)").unwrap(), DataType::Numeric(Some((10, 2))));
        assert_eq!(DataType::parse("VARCHAR(20)").unwrap(), DataType::Varchar(Some(20)));
        assert_eq!(DataType::parse("TIMESTAMP WITH TIME ZONE").unwrap(), DataType::Timestamptz);
        assert_eq!(DataType::parse("widget").unwrap_err().code, "42704");
    }
}
