//! The `cmsgpack` library Redis bundles for Lua scripts (lua_cmsgpack): `pack`, `unpack`,
//! `unpack_one` and `unpack_limit`. Job queues built on Redis (BullMQ among them) pass their
//! options to scripts this way. The `rmp` crate writes and `rmpv` reads MessagePack; this
//! module maps Lua values onto it as lua_cmsgpack does:
//!
//! - a number equal to an integer packs as the smallest integer form, else as a float32
//!   when that is exact, else a float64;
//! - a table whose keys are exactly 1..n packs as an array (an empty table too), any other
//!   as a map; tables nested deeper than 16 pack as nil, as do functions and userdata;
//! - strings pack as MessagePack strings; unpacking gives strings for str and bin.

use mlua::{Lua, MultiValue, Table, Value};

/// Deepest table nesting packed (lua_cmsgpack's LUACMSGPACK_MAX_NESTING).
const MAX_NESTING: usize = 16;

pub fn install(lua: &Lua) -> mlua::Result<()> {
    let m = lua.create_table()?;
    m.set(
        "pack",
        lua.create_function(|lua, values: MultiValue| {
            if values.is_empty() {
                return Err(mlua::Error::RuntimeError("MessagePack pack needs input.".to_string()));
            }
            let mut out = Vec::new();
            for v in values.iter() {
                pack(v, &mut out, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    m.set(
        "unpack",
        lua.create_function(|lua, s: mlua::String| {
            let bytes = s.as_bytes();
            Ok(unpack(lua, &bytes, 0, 0)?.1)
        })?,
    )?;
    m.set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::String, Option<i64>)| {
            let bytes = s.as_bytes();
            with_offset(unpack(lua, &bytes, 1, start(offset, bytes.len())?)?, bytes.len())
        })?,
    )?;
    m.set(
        "unpack_limit",
        lua.create_function(|lua, (s, limit, offset): (mlua::String, i64, Option<i64>)| {
            let bytes = s.as_bytes();
            let limit = limit.max(0) as usize;
            with_offset(unpack(lua, &bytes, limit, start(offset, bytes.len())?)?, bytes.len())
        })?,
    )?;
    lua.globals().set("cmsgpack", m)
}

fn start(offset: Option<i64>, len: usize) -> mlua::Result<usize> {
    match offset.unwrap_or(0) {
        o if o < 0 || o as usize > len => {
            Err(mlua::Error::RuntimeError("Start offset greater than input length.".to_string()))
        }
        o => Ok(o as usize),
    }
}

/// `unpack_one` and `unpack_limit` answer the offset to go on from (-1 at the end) first.
fn with_offset((next, values): (usize, MultiValue), len: usize) -> mlua::Result<MultiValue> {
    let offset = if next >= len { -1 } else { next as i64 };
    let mut out = MultiValue::new();
    out.push_back(Value::Number(offset as f64));
    out.extend(values);
    Ok(out)
}

fn pack(v: &Value, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    use rmp::encode;
    let io = |e: std::io::Error| mlua::Error::RuntimeError(e.to_string());
    let value = |e: encode::ValueWriteError| mlua::Error::RuntimeError(e.to_string());
    match v {
        Value::Boolean(b) => encode::write_bool(out, *b).map_err(io),
        Value::Integer(n) => encode::write_sint(out, *n).map(|_| ()).map_err(value),
        Value::Number(n) => {
            let n = *n;
            if n.fract() == 0.0 && n >= i64::MIN as f64 && n < i64::MAX as f64 {
                if n >= 0.0 {
                    encode::write_uint(out, n as u64).map(|_| ()).map_err(value)
                } else {
                    encode::write_sint(out, n as i64).map(|_| ()).map_err(value)
                }
            } else if (n as f32) as f64 == n || n.is_nan() {
                encode::write_f32(out, n as f32).map_err(value)
            } else {
                encode::write_f64(out, n).map_err(value)
            }
        }
        Value::String(s) => {
            let bytes = s.as_bytes();
            encode::write_str_len(out, bytes.len() as u32).map_err(value)?;
            out.extend_from_slice(&bytes);
            Ok(())
        }
        Value::Table(t) if depth < MAX_NESTING => pack_table(t, out, depth),
        _ => encode::write_nil(out).map_err(io),
    }
}

fn pack_table(t: &Table, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    use rmp::encode;
    let value = |e: encode::ValueWriteError| mlua::Error::RuntimeError(e.to_string());
    let pairs: Vec<(Value, Value)> = t.clone().pairs::<Value, Value>().collect::<mlua::Result<_>>()?;
    // An array when the keys are exactly 1..n (an empty table is an empty array).
    let mut max = 0.0f64;
    let is_array = pairs.iter().all(|(k, _)| {
        let n = match k {
            Value::Integer(n) => *n as f64,
            Value::Number(n) => *n,
            _ => return false,
        };
        max = max.max(n);
        n > 0.0 && n.fract() == 0.0
    }) && max == pairs.len() as f64;
    if is_array {
        encode::write_array_len(out, pairs.len() as u32).map_err(value)?;
        for i in 1..=pairs.len() {
            pack(&t.raw_get::<Value>(i)?, out, depth + 1)?;
        }
    } else {
        encode::write_map_len(out, pairs.len() as u32).map_err(value)?;
        for (k, v) in &pairs {
            pack(k, out, depth + 1)?;
            pack(v, out, depth + 1)?;
        }
    }
    Ok(())
}

/// Reads up to `limit` values (0: all) from `bytes[at..]`; returns where it stopped.
fn unpack(lua: &Lua, bytes: &[u8], limit: usize, at: usize) -> mlua::Result<(usize, MultiValue)> {
    let mut rest = &bytes[at..];
    let mut out = MultiValue::new();
    while !rest.is_empty() && (limit == 0 || out.len() < limit) {
        let value = rmpv::decode::read_value(&mut rest).map_err(|e| {
            mlua::Error::RuntimeError(match e {
                rmpv::decode::Error::InvalidMarkerRead(_) | rmpv::decode::Error::InvalidDataRead(_) => {
                    "Missing bytes in input.".to_string()
                }
                _ => "Bad data format in input.".to_string(),
            })
        })?;
        out.push_back(to_lua(lua, value)?);
    }
    Ok((bytes.len() - rest.len(), out))
}

fn to_lua(lua: &Lua, v: rmpv::Value) -> mlua::Result<Value> {
    use rmpv::Value as M;
    Ok(match v {
        M::Nil => Value::Nil,
        M::Boolean(b) => Value::Boolean(b),
        M::Integer(n) => {
            Value::Number(n.as_i64().map(|n| n as f64).or(n.as_u64().map(|n| n as f64)).unwrap_or(0.0))
        }
        M::F32(f) => Value::Number(f as f64),
        M::F64(f) => Value::Number(f),
        M::String(s) => Value::String(lua.create_string(s.as_bytes())?),
        M::Binary(b) => Value::String(lua.create_string(&b)?),
        M::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        M::Map(pairs) => {
            let t = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                let k = to_lua(lua, k)?;
                if !k.is_nil() {
                    t.raw_set(k, to_lua(lua, v)?)?;
                }
            }
            Value::Table(t)
        }
        M::Ext(..) => Value::Nil,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str) -> String {
        let lua = Lua::new();
        install(&lua).unwrap();
        lua.load(code).eval::<String>().unwrap()
    }

    fn hex(code: &str) -> String {
        run(&format!(
            "local s = {code}; return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))"
        ))
    }

    #[test]
    fn packs_as_lua_cmsgpack_does() {
        assert_eq!(
            hex("cmsgpack.pack(1, -1, 200, -200, 1.5, 0.1)"),
            "01ffccc8d1ff38ca3fc00000cb3fb999999999999a"
        );
        assert_eq!(hex("cmsgpack.pack({1, 2}, {}, {a = true})"), "9201029081a161c3");
        assert_eq!(hex("cmsgpack.pack('hi', nil, false)"), "a26869c0c2");
    }

    #[test]
    fn unpack_reverses_pack() {
        let got =
            run("local a, b, c = cmsgpack.unpack(cmsgpack.pack({x = 1, list = {'p', 'q'}}, 'two', 3.25)) \
             return a.x .. a.list[2] .. b .. c");
        assert_eq!(got, "1qtwo3.25");
        assert_eq!(run("local o, v = cmsgpack.unpack_one(cmsgpack.pack(7, 8)) return o .. ':' .. v"), "1:7");
        assert_eq!(
            run("local o, v = cmsgpack.unpack_one(cmsgpack.pack(7, 8), 1) return o .. ':' .. v"),
            "-1:8"
        );
        let err = Lua::new();
        install(&err).unwrap();
        assert!(err.load("return cmsgpack.unpack('\\205')").exec().is_err(), "a truncated uint16");
    }
}
