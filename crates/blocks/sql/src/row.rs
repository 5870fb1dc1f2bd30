//! The stored form of a row: each value as a tag byte and a little-endian payload
//! (`docs/format/sql.md` is the spec).

use crate::error::{SqlError, SqlResult};
use crate::types::Value;
use chrono::{DateTime, NaiveDate};
use rust_decimal::Decimal;

pub type Row = Vec<Value>;

pub fn encode(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 9);
    for value in row {
        match value {
            Value::Null => out.push(0),
            Value::Bool(b) => out.extend_from_slice(&[1, *b as u8]),
            Value::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(3);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Numeric(d) => {
                out.push(4);
                out.extend_from_slice(&d.serialize());
            }
            Value::Text(s) => put_bytes(&mut out, 5, s.as_bytes()),
            Value::Bytes(b) => put_bytes(&mut out, 6, b),
            Value::Date(d) => {
                out.push(7);
                out.extend_from_slice(&(d.to_epoch_days() as i64).to_le_bytes());
            }
            Value::Timestamp(t) => {
                out.push(8);
                out.extend_from_slice(&t.and_utc().timestamp_micros().to_le_bytes());
            }
            Value::Timestamptz(t) => {
                out.push(9);
                out.extend_from_slice(&t.timestamp_micros().to_le_bytes());
            }
            Value::Uuid(u) => {
                out.push(10);
                out.extend_from_slice(u.as_bytes());
            }
            Value::Json(j) => put_bytes(&mut out, 11, j.to_string().as_bytes()),
        }
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn corrupt() -> SqlError {
    SqlError::new("XX001", "corrupt row")
}

pub fn decode(mut bytes: &[u8]) -> SqlResult<Row> {
    let mut row = Vec::new();
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> SqlResult<&'a [u8]> {
        if bytes.len() < n {
            return Err(corrupt());
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    fn take8(bytes: &mut &[u8]) -> SqlResult<[u8; 8]> {
        Ok(take(bytes, 8)?.try_into().expect("8 bytes"))
    }
    fn take_len<'a>(bytes: &mut &'a [u8]) -> SqlResult<&'a [u8]> {
        let len = u32::from_le_bytes(take(bytes, 4)?.try_into().expect("4 bytes")) as usize;
        take(bytes, len)
    }
    while !bytes.is_empty() {
        let tag = take(&mut bytes, 1)?[0];
        let value = match tag {
            0 => Value::Null,
            1 => Value::Bool(take(&mut bytes, 1)?[0] != 0),
            2 => Value::Int(i64::from_le_bytes(take8(&mut bytes)?)),
            3 => Value::Float(f64::from_le_bytes(take8(&mut bytes)?)),
            4 => Value::Numeric(Decimal::deserialize(take(&mut bytes, 16)?.try_into().expect("16 bytes"))),
            5 => Value::Text(String::from_utf8(take_len(&mut bytes)?.to_vec()).map_err(|_| corrupt())?),
            6 => Value::Bytes(take_len(&mut bytes)?.to_vec()),
            7 => {
                let days = i64::from_le_bytes(take8(&mut bytes)?);
                Value::Date(NaiveDate::from_epoch_days(days as i32).ok_or_else(corrupt)?)
            }
            8 => Value::Timestamp(
                DateTime::from_timestamp_micros(i64::from_le_bytes(take8(&mut bytes)?))
                    .ok_or_else(corrupt)?
                    .naive_utc(),
            ),
            9 => Value::Timestamptz(
                DateTime::from_timestamp_micros(i64::from_le_bytes(take8(&mut bytes)?))
                    .ok_or_else(corrupt)?,
            ),
            10 => Value::Uuid(uuid::Uuid::from_bytes(take(&mut bytes, 16)?.try_into().expect("16 bytes"))),
            11 => Value::Json(serde_json::from_slice(take_len(&mut bytes)?).map_err(|_| corrupt())?),
            _ => return Err(corrupt()),
        };
        row.push(value);
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let row = vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::Float(1.5),
            Value::Numeric(Decimal::new(12345, 2)),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 1]),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Uuid(uuid::Uuid::nil()),
            Value::Json(serde_json::json!({"a": [1, 2]})),
        ];
        let decoded = decode(&encode(&row)).unwrap();
        assert_eq!(
            decoded.iter().map(Value::to_text).collect::<Vec<_>>(),
            row.iter().map(Value::to_text).collect::<Vec<_>>()
        );
        assert!(decode(&[2, 1]).is_err());
    }
}
