//! Bitmap commands over string values: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD.
//! Bit 0 is the most significant bit of byte 0, as in Redis.

use super::{CmdResult, Ctx, eq, index_range, int};
use crate::reply::{Reply, errors};
use crate::value::Value;
use bytes::{Bytes, BytesMut};

/// Largest bit offset: 2^32 - 1, Redis's limit for a 512 MiB string.
const MAX_BIT: u64 = (1 << 32) - 1;

fn bit_offset(arg: &[u8], max_bulk: usize) -> Result<u64, Reply> {
    let n = int(arg).map_err(|_| Reply::err(errors::BIT_OFFSET))?;
    if n < 0 || n as u64 > MAX_BIT || (n as u64 >> 3) >= max_bulk as u64 {
        return Err(Reply::err(errors::BIT_OFFSET));
    }
    Ok(n as u64)
}

/// Grows the string under `key` to at least `len` bytes and hands it to `f`.
fn with_bytes<R>(ctx: &mut Ctx, key: &Bytes, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, Reply> {
    let s = ctx.create_str(key)?;
    let mut buf = BytesMut::from(std::mem::take(s));
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let out = f(&mut buf);
    *s = buf.freeze();
    Ok(out)
}

pub fn setbit(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2], ctx.max_bulk)?;
    let on = match args[3].as_ref() {
        b"1" => true,
        b"0" => false,
        _ => return Err(Reply::err(errors::BIT_VALUE)),
    };
    let byte = (offset >> 3) as usize;
    let mask = 0x80u8 >> (offset & 7);
    let old = with_bytes(ctx, &args[1], byte + 1, |b| {
        let old = b[byte] & mask != 0;
        if on {
            b[byte] |= mask
        } else {
            b[byte] &= !mask
        }
        old
    })?;
    Ok(Reply::Int(old as i64))
}

pub fn getbit(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(&args[2], ctx.max_bulk)?;
    let Some(s) = ctx.read_str(&args[1])? else { return Ok(Reply::Int(0)) };
    let byte = (offset >> 3) as usize;
    Ok(Reply::Int(s.get(byte).is_some_and(|b| b & (0x80 >> (offset & 7)) != 0) as i64))
}

/// The bit range `[lo, hi]` selected by `start end [BYTE|BIT]`, or None when empty.
fn bit_range(s: &[u8], args: &[Bytes]) -> Result<Option<(u64, u64)>, Reply> {
    let bits = s.len() as u64 * 8;
    match args {
        [] => Ok((bits > 0).then(|| (0, bits - 1))),
        [start] => {
            let start = int(start)?;
            Ok(index_range(start, -1, s.len()).map(|(a, b)| (a as u64 * 8, b as u64 * 8 + 7)))
        }
        [start, end, rest @ ..] => {
            let (start, end) = (int(start)?, int(end)?);
            let bit_unit = match rest {
                [] => false,
                [u] if eq(u, "bit") => true,
                [u] if eq(u, "byte") => false,
                _ => return Err(Reply::err(errors::SYNTAX)),
            };
            if bit_unit {
                Ok(index_range(start, end, bits as usize).map(|(a, b)| (a as u64, b as u64)))
            } else {
                Ok(index_range(start, end, s.len()).map(|(a, b)| (a as u64 * 8, b as u64 * 8 + 7)))
            }
        }
    }
}

fn bit_at(s: &[u8], i: u64) -> bool {
    s[(i >> 3) as usize] & (0x80 >> (i & 7)) != 0
}

pub fn bitcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() == 3 {
        return Err(Reply::err(errors::SYNTAX));
    }
    let Some(s) = ctx.read_str(&args[1])? else { return Ok(Reply::Int(0)) };
    let Some((lo, hi)) = bit_range(s, &args[2..])? else { return Ok(Reply::Int(0)) };
    let mut count = 0u64;
    let mut i = lo;
    while i <= hi {
        if i & 7 == 0 && i + 7 <= hi {
            count += s[(i >> 3) as usize].count_ones() as u64;
            i += 8;
        } else {
            count += bit_at(s, i) as u64;
            i += 1;
        }
    }
    Ok(Reply::Int(count as i64))
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub fn bitpos(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let want = match args[2].as_ref() {
        b"1" => true,
        b"0" => false,
        _ => return Err(Reply::err("ERR The bit argument must be 1 or 0.")),
    };
    let Some(s) = ctx.read_str(&args[1])?.cloned() else { return Ok(Reply::Int(if want { -1 } else { 0 })) };
    let explicit_end = args.len() > 4;
    let Some((lo, hi)) = bit_range(&s, &args[3..])? else { return Ok(Reply::Int(-1)) };
    for i in lo..=hi {
        if bit_at(&s, i) == want {
            return Ok(Reply::Int(i as i64));
        }
    }
    // Looking for a clear bit with no end given: the string is as if padded with zeros.
    Ok(Reply::Int(if !want && !explicit_end { hi as i64 + 1 } else { -1 }))
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
pub fn bitop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let op = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if !["and", "or", "xor", "not"].contains(&op.as_str()) {
        return Err(Reply::err(errors::SYNTAX));
    }
    let sources = &args[3..];
    if op == "not" && sources.len() != 1 {
        return Err(Reply::err("ERR BITOP NOT must be called with a single source key."));
    }
    let mut inputs = Vec::with_capacity(sources.len());
    for key in sources {
        inputs.push(ctx.read_str(key)?.cloned().unwrap_or_default());
    }
    let len = inputs.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![0u8; len];
    for (i, byte) in out.iter_mut().enumerate() {
        let at = |s: &Bytes| s.get(i).copied().unwrap_or(0);
        *byte = match op.as_str() {
            "not" => !at(&inputs[0]),
            "and" => inputs.iter().fold(0xff, |acc, s| acc & at(s)),
            "or" => inputs.iter().fold(0, |acc, s| acc | at(s)),
            _ => inputs.iter().fold(0, |acc, s| acc ^ at(s)),
        };
    }
    ctx.ks.remove(ctx.db, &args[2]);
    if len > 0 {
        ctx.ks.set(ctx.db, args[2].clone(), Value::Str(Bytes::from(out)), false);
    }
    Ok(Reply::Int(len as i64))
}

/// A BITFIELD type: `i8`, `u16`, ... (signed up to 64 bits, unsigned up to 63).
#[derive(Clone, Copy)]
struct Field {
    signed: bool,
    bits: u32,
}

fn field_type(arg: &[u8]) -> Result<Field, Reply> {
    let err = || {
        Reply::err(
            "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let signed = match arg.first() {
        Some(b'i' | b'I') => true,
        Some(b'u' | b'U') => false,
        _ => return Err(err()),
    };
    let bits: u32 = std::str::from_utf8(&arg[1..]).ok().and_then(|s| s.parse().ok()).ok_or_else(err)?;
    if bits == 0 || bits > 64 || (!signed && bits == 64) {
        return Err(err());
    }
    Ok(Field { signed, bits })
}

/// `#n` multiplies by the type's width, as in Redis.
fn field_offset(arg: &[u8], field: Field, max_bulk: usize) -> Result<u64, Reply> {
    let (mul, text) = match arg.first() {
        Some(b'#') => (field.bits as u64, &arg[1..]),
        _ => (1, arg),
    };
    let n = int(text).map_err(|_| Reply::err(errors::BIT_OFFSET))?;
    if n < 0 {
        return Err(Reply::err(errors::BIT_OFFSET));
    }
    let off = (n as u64).checked_mul(mul).ok_or_else(|| Reply::err(errors::BIT_OFFSET))?;
    if off + field.bits as u64 > MAX_BIT + 1 || ((off + field.bits as u64) >> 3) as usize > max_bulk {
        return Err(Reply::err(errors::BIT_OFFSET));
    }
    Ok(off)
}

fn read_field(s: &[u8], off: u64, f: Field) -> i64 {
    let mut v: u64 = 0;
    for i in 0..f.bits as u64 {
        let bit = s.get(((off + i) >> 3) as usize).is_some_and(|b| b & (0x80 >> ((off + i) & 7)) != 0);
        v = (v << 1) | bit as u64;
    }
    if f.signed && f.bits < 64 && v & (1 << (f.bits - 1)) != 0 {
        v |= u64::MAX << f.bits;
    }
    v as i64
}

fn write_field(s: &mut [u8], off: u64, f: Field, value: i64) {
    let v = value as u64;
    for i in 0..f.bits as u64 {
        let bit = (v >> (f.bits as u64 - 1 - i)) & 1 == 1;
        let pos = off + i;
        let mask = 0x80u8 >> (pos & 7);
        let byte = &mut s[(pos >> 3) as usize];
        if bit { *byte |= mask } else { *byte &= !mask }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// Applies `incr` to `old` within the field's range; None when it overflows under FAIL.
fn add_field(old: i64, incr: i64, f: Field, mode: Overflow) -> Option<i64> {
    let (min, max): (i128, i128) = if f.signed {
        (-(1i128 << (f.bits - 1)), (1i128 << (f.bits - 1)) - 1)
    } else {
        (0, (1i128 << f.bits) - 1)
    };
    let sum = old as i128 + incr as i128;
    if (min..=max).contains(&sum) {
        return Some(sum as i64);
    }
    match mode {
        Overflow::Fail => None,
        Overflow::Sat => Some(if sum > max { max as i64 } else { min as i64 }),
        Overflow::Wrap => {
            let span = 1i128 << f.bits;
            Some(((sum - min).rem_euclid(span) + min) as i64)
        }
    }
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP|SAT|FAIL] ... (and BITFIELD_RO with GET only).
pub fn bitfield(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let read_only = ctx.name == "bitfield_ro";
    enum Op {
        Get(Field, u64),
        Set(Field, u64, i64, Overflow),
        Incr(Field, u64, i64, Overflow),
    }
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq(a, "get") && i + 2 < args.len() {
            let f = field_type(&args[i + 1])?;
            ops.push(Op::Get(f, field_offset(&args[i + 2], f, ctx.max_bulk)?));
            i += 3;
        } else if (eq(a, "set") || eq(a, "incrby")) && i + 3 < args.len() {
            if read_only {
                return Err(Reply::err("ERR BITFIELD_RO only supports the GET subcommand"));
            }
            let f = field_type(&args[i + 1])?;
            let off = field_offset(&args[i + 2], f, ctx.max_bulk)?;
            let v = int(&args[i + 3])?;
            ops.push(if eq(a, "set") { Op::Set(f, off, v, overflow) } else { Op::Incr(f, off, v, overflow) });
            i += 4;
        } else if eq(a, "overflow") && i + 1 < args.len() {
            overflow = match String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase().as_str() {
                "wrap" => Overflow::Wrap,
                "sat" => Overflow::Sat,
                "fail" => Overflow::Fail,
                _ => return Err(Reply::err("ERR Invalid OVERFLOW type specified")),
            };
            i += 2;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    let writes = ops.iter().any(|op| !matches!(op, Op::Get(..)));
    if !writes {
        let s = ctx.read_str(&args[1])?.cloned().unwrap_or_default();
        return Ok(Reply::Array(
            ops.iter()
                .map(|op| match op {
                    Op::Get(f, off) => Reply::Int(read_field(&s, *off, *f)),
                    _ => unreachable!("no writes"),
                })
                .collect(),
        ));
    }
    let need = ops
        .iter()
        .map(|op| match op {
            Op::Get(f, off) | Op::Set(f, off, ..) | Op::Incr(f, off, ..) => {
                ((off + f.bits as u64).div_ceil(8)) as usize
            }
        })
        .max()
        .unwrap_or(0);
    let replies = with_bytes(ctx, &args[1], need, |s| {
        ops.iter()
            .map(|op| match *op {
                Op::Get(f, off) => Reply::Int(read_field(s, off, f)),
                Op::Set(f, off, v, mode) => {
                    let old = read_field(s, off, f);
                    match add_field(0, v, f, mode) {
                        Some(nv) => {
                            write_field(s, off, f, nv);
                            Reply::Int(old)
                        }
                        None => Reply::Nil,
                    }
                }
                Op::Incr(f, off, v, mode) => {
                    let old = read_field(s, off, f);
                    match add_field(old, v, f, mode) {
                        Some(nv) => {
                            write_field(s, off, f, nv);
                            Reply::Int(nv)
                        }
                        None => Reply::Nil,
                    }
                }
            })
            .collect()
    })?;
    Ok(Reply::Array(replies))
}
