//! Between SQL values and the wire: type OIDs, result encoding (text and binary), and
//! parameter decoding.

use bytes::BytesMut;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::api::results::{DataRowEncoder, FieldFormat};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, to_sql_checked};
use strata_sql::{DataType, Value};

pub fn pg_type(ty: &DataType) -> Type {
    match ty {
        DataType::Bool => Type::BOOL,
        DataType::Int2 => Type::INT2,
        DataType::Int4 => Type::INT4,
        DataType::Int8 => Type::INT8,
        DataType::Float4 => Type::FLOAT4,
        DataType::Float8 => Type::FLOAT8,
        DataType::Numeric(_) => Type::NUMERIC,
        DataType::Text | DataType::Unknown => Type::TEXT,
        DataType::Varchar(_) => Type::VARCHAR,
        DataType::Bytea => Type::BYTEA,
        DataType::Date => Type::DATE,
        DataType::Timestamp => Type::TIMESTAMP,
        DataType::Timestamptz => Type::TIMESTAMPTZ,
        DataType::Uuid => Type::UUID,
        DataType::Jsonb => Type::JSONB,
    }
}

pub fn data_type(ty: &Type) -> DataType {
    match *ty {
        Type::BOOL => DataType::Bool,
        Type::INT2 => DataType::Int2,
        Type::INT4 => DataType::Int4,
        Type::INT8 => DataType::Int8,
        Type::FLOAT4 => DataType::Float4,
        Type::FLOAT8 => DataType::Float8,
        Type::NUMERIC => DataType::Numeric(None),
        Type::VARCHAR | Type::BPCHAR => DataType::Varchar(None),
        Type::BYTEA => DataType::Bytea,
        Type::DATE => DataType::Date,
        Type::TIMESTAMP => DataType::Timestamp,
        Type::TIMESTAMPTZ => DataType::Timestamptz,
        Type::UUID => DataType::Uuid,
        Type::JSONB | Type::JSON => DataType::Jsonb,
        Type::TEXT => DataType::Text,
        _ => DataType::Unknown,
    }
}

/// A UUID on the wire: 16 bytes in binary, hyphenated in text. (postgres-types has the
/// binary side behind a feature, pgwire has no text side.)
#[derive(Debug)]
struct WireUuid(uuid::Uuid);

impl ToSql for WireUuid {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }

    to_sql_checked!();
}

impl ToSqlText for WireUuid {
    fn to_sql_text(
        &self,
        _: &Type,
        out: &mut BytesMut,
        _: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.hyphenated().to_string().as_bytes());
        Ok(IsNull::No)
    }
}

/// Encodes one value as a field of type `ty`.
pub fn encode(encoder: &mut DataRowEncoder, value: &Value, ty: &DataType) -> PgWireResult<()> {
    let value = value.clone().cast(ty).unwrap_or_else(|_| Value::Text(value.to_text()));
    match value {
        Value::Null => encoder.encode_field(&None::<i32>),
        Value::Bool(b) => encoder.encode_field(&b),
        Value::Int(i) => match ty {
            DataType::Int2 => encoder.encode_field(&(i as i16)),
            DataType::Int4 => encoder.encode_field(&(i as i32)),
            _ => encoder.encode_field(&i),
        },
        Value::Float(f) => match ty {
            DataType::Float4 => encoder.encode_field(&(f as f32)),
            _ => encoder.encode_field(&f),
        },
        Value::Numeric(d) => encoder.encode_field(&d),
        Value::Text(s) => encoder.encode_field(&s),
        Value::Bytes(b) => encoder.encode_field(&b),
        Value::Date(d) => encoder.encode_field(&d),
        Value::Timestamp(t) => encoder.encode_field(&t),
        Value::Timestamptz(t) => encoder.encode_field(&t),
        Value::Uuid(u) => encoder.encode_field(&WireUuid(u)),
        Value::Json(j) => encoder.encode_field(&j),
    }
}

fn bad_parameter(i: usize, e: impl std::fmt::Display) -> PgWireError {
    PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
        "ERROR".into(),
        "22P02".into(),
        format!("invalid value for parameter ${}: {e}", i + 1),
    )))
}

/// Decodes a portal's parameters, each per its declared (or inferred) type.
pub fn parameters(portal: &Portal<crate::Statement>, types: &[DataType]) -> PgWireResult<Vec<Value>> {
    let mut values = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let ty = types.get(i).cloned().unwrap_or(DataType::Text);
        let pg = pg_type(&ty);
        let Some(raw) = &portal.parameters[i] else {
            values.push(Value::Null);
            continue;
        };
        let binary = portal.parameter_format.format_for(i) == FieldFormat::Binary;
        let value = match ty {
            DataType::Bool => portal.parameter::<bool>(i, &pg)?.map(Value::Bool),
            DataType::Int2 => portal.parameter::<i16>(i, &pg)?.map(|v| Value::Int(v as i64)),
            DataType::Int4 => portal.parameter::<i32>(i, &pg)?.map(|v| Value::Int(v as i64)),
            DataType::Int8 => portal.parameter::<i64>(i, &pg)?.map(Value::Int),
            DataType::Float4 => portal.parameter::<f32>(i, &pg)?.map(|v| Value::Float(v as f64)),
            DataType::Float8 => portal.parameter::<f64>(i, &pg)?.map(Value::Float),
            DataType::Numeric(_) => portal.parameter::<rust_decimal::Decimal>(i, &pg)?.map(Value::Numeric),
            DataType::Bytea => portal.parameter::<Vec<u8>>(i, &pg)?.map(Value::Bytes),
            DataType::Date => portal.parameter::<chrono::NaiveDate>(i, &pg)?.map(Value::Date),
            DataType::Timestamp => portal.parameter::<chrono::NaiveDateTime>(i, &pg)?.map(Value::Timestamp),
            DataType::Timestamptz => portal
                .parameter::<chrono::DateTime<chrono::FixedOffset>>(i, &pg)?
                .map(|t| Value::Timestamptz(t.to_utc())),
            DataType::Uuid => Some(Value::Uuid(if binary {
                uuid::Uuid::from_slice(raw).map_err(|e| bad_parameter(i, e))?
            } else {
                uuid::Uuid::parse_str(std::str::from_utf8(raw).map_err(|e| bad_parameter(i, e))?)
                    .map_err(|e| bad_parameter(i, e))?
            })),
            DataType::Jsonb => {
                // Binary jsonb is a version byte (1) then the JSON text.
                let text = if binary { raw.get(1..).unwrap_or_default() } else { &raw[..] };
                Some(Value::Json(serde_json::from_slice(text).map_err(|e| bad_parameter(i, e))?))
            }
            DataType::Text | DataType::Varchar(_) | DataType::Unknown => {
                Some(Value::Text(String::from_utf8(raw.to_vec()).map_err(|e| bad_parameter(i, e))?))
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(values)
}
