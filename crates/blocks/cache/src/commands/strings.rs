//! String commands: GET/SET and their variants, counters, ranges.

use super::{CmdResult, Ctx, eq, float, fmt_float, int};
use crate::reply::{Reply, errors};
use crate::value::Value;
use bytes::{Bytes, BytesMut};

pub fn get(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(ctx.read_str(&args[1])?.cloned()))
}

/// Expiry options shared by SET and GETEX.
enum Expiry {
    Keep,
    Clear,
    At(u64),
}

/// Parses EX/PX/EXAT/PXAT `value` into an absolute time.
fn expiry_at(ctx: &Ctx, unit: &[u8], value: &[u8], cmd: &str) -> Result<u64, Reply> {
    let n = int(value)?;
    if n <= 0 {
        return Err(Reply::err(errors::invalid_expire(cmd)));
    }
    let n = n as u64;
    let now = ctx.ks.now();
    let at = if eq(unit, "ex") {
        n.checked_mul(1000).and_then(|ms| ms.checked_add(now))
    } else if eq(unit, "px") {
        n.checked_add(now)
    } else if eq(unit, "exat") {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    at.filter(|&at| at < i64::MAX as u64).ok_or_else(|| Reply::err(errors::invalid_expire(cmd)))
}

fn is_expiry_word(arg: &[u8]) -> bool {
    ["ex", "px", "exat", "pxat"].iter().any(|w| eq(arg, w))
}

pub fn set(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (key, value) = (&args[1], &args[2]);
    let (mut nx, mut xx, mut get_old, mut keep_ttl) = (false, false, false, false);
    let mut expire: Option<u64> = None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        if eq(a, "nx") && !xx {
            nx = true;
        } else if eq(a, "xx") && !nx {
            xx = true;
        } else if eq(a, "get") {
            get_old = true;
        } else if eq(a, "keepttl") && expire.is_none() {
            keep_ttl = true;
        } else if is_expiry_word(a) && expire.is_none() && !keep_ttl && i + 1 < args.len() {
            expire = Some(expiry_at(ctx, a, &args[i + 1], "set")?);
            i += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 1;
    }
    let old = if get_old { ctx.read_str(key)?.cloned() } else { None };
    if nx || xx {
        let exists = if get_old { old.is_some() } else { ctx.ks.peek(ctx.db, key).is_some() };
        if (nx && exists) || (xx && !exists) {
            return Ok(if get_old { Reply::opt_bulk(old) } else { Reply::Nil });
        }
    }
    ctx.ks.set(ctx.db, key.clone(), Value::Str(value.clone()), keep_ttl);
    if let Some(at) = expire {
        ctx.ks.set_expire(ctx.db, key, at);
    }
    Ok(if get_old { Reply::opt_bulk(old) } else { Reply::OK })
}

pub fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.ks.peek(ctx.db, &args[1]).is_some() {
        return Ok(Reply::Int(0));
    }
    ctx.ks.set(ctx.db, args[1].clone(), Value::Str(args[2].clone()), false);
    Ok(Reply::Int(1))
}

/// SETEX and PSETEX.
pub fn setex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cmd = ctx.name;
    let unit: &[u8] = if cmd == "setex" { b"ex" } else { b"px" };
    let at = expiry_at(ctx, unit, &args[2], cmd)?;
    ctx.ks.set(ctx.db, args[1].clone(), Value::Str(args[3].clone()), false);
    ctx.ks.set_expire(ctx.db, &args[1], at);
    Ok(Reply::OK)
}

pub fn mget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        out.push(match ctx.ks.read(ctx.db, key) {
            Some(e) => match &e.value {
                Value::Str(s) => Reply::Bulk(s.clone()),
                _ => Reply::Nil,
            },
            None => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
}

/// MSET and MSETNX.
pub fn mset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(Reply::err(errors::arity(ctx.name)));
    }
    let nx = eq(&args[0], "msetnx");
    if nx && args[1..].chunks(2).any(|kv| ctx.ks.peek(ctx.db, &kv[0]).is_some()) {
        return Ok(Reply::Int(0));
    }
    for kv in args[1..].chunks(2) {
        ctx.ks.set(ctx.db, kv[0].clone(), Value::Str(kv[1].clone()), false);
    }
    Ok(if nx { Reply::Int(1) } else { Reply::OK })
}

/// INCR, DECR, INCRBY, DECRBY.
pub fn incr(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = match ctx.name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => int(&args[2])?,
        _ => int(&args[2])?.checked_neg().ok_or_else(|| Reply::err(errors::OVERFLOW))?,
    };
    let key = &args[1];
    // One lookup when the counter exists, as it usually does; a write's lookup, so it
    // counts as neither hit nor miss (as in Redis).
    if let Some(i) = ctx.ks.write_index(ctx.db, key) {
        let Value::Str(s) = &mut ctx.ks.entry_at(ctx.db, i).value else {
            return Err(Reply::err(errors::WRONGTYPE));
        };
        let current = crate::value::parse_int(s).ok_or_else(|| Reply::err(errors::NOT_INT))?;
        let new = current.checked_add(by).ok_or_else(|| Reply::err(errors::OVERFLOW))?;
        *s = int_bytes(new);
        ctx.ks.written_at(ctx.db, i);
        return Ok(Reply::Int(new));
    }
    ctx.ks.set(ctx.db, key.clone(), Value::Str(int_bytes(by)), false);
    Ok(Reply::Int(by))
}

fn int_bytes(n: i64) -> Bytes {
    Bytes::copy_from_slice(itoa::Buffer::new().format(n).as_bytes())
}

pub fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = float(&args[2])?;
    let key = &args[1];
    let current = match ctx.read_str(key)? {
        Some(s) => super::parse_float(s).ok_or_else(|| Reply::err(errors::NOT_FLOAT))?,
        None => 0.0,
    };
    let new = current + by;
    if !new.is_finite() {
        return Err(Reply::err("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(fmt_float(new));
    if let Some(s) = ctx.write_str(key)? {
        *s = text.clone();
    } else {
        ctx.ks.set(ctx.db, key.clone(), Value::Str(text.clone()), false);
    }
    Ok(Reply::Bulk(text))
}

pub fn append(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let max = ctx.max_bulk;
    let s = ctx.create_str(&args[1])?;
    if s.len() + args[2].len() > max {
        return Err(Reply::err(errors::STRING_TOO_LONG));
    }
    let mut buf = BytesMut::from(std::mem::take(s));
    buf.extend_from_slice(&args[2]);
    *s = buf.freeze();
    Ok(Reply::Int(s.len() as i64))
}

pub fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_str(&args[1])?.map_or(0, |s| s.len()) as i64))
}

pub fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    let Some(s) = ctx.read_str(&args[1])? else { return Ok(Reply::bulk(Bytes::new())) };
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(Bytes::new()));
    }
    Ok(match super::index_range(start, end, s.len()) {
        Some((a, b)) => Reply::Bulk(s.slice(a..=b)),
        None => Reply::bulk(Bytes::new()),
    })
}

pub fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let offset = int(&args[2])?;
    if offset < 0 {
        return Err(Reply::err("ERR offset is out of range"));
    }
    let offset = offset as usize;
    let value = &args[3];
    if offset + value.len() > ctx.max_bulk {
        return Err(Reply::err(errors::STRING_TOO_LONG));
    }
    if value.is_empty() {
        return Ok(Reply::Int(ctx.read_str(&args[1])?.map_or(0, |s| s.len()) as i64));
    }
    let s = ctx.create_str(&args[1])?;
    let mut buf = BytesMut::from(std::mem::take(s));
    if buf.len() < offset + value.len() {
        buf.resize(offset + value.len(), 0);
    }
    buf[offset..offset + value.len()].copy_from_slice(value);
    *s = buf.freeze();
    Ok(Reply::Int(s.len() as i64))
}

pub fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let value = ctx.read_str(&args[1])?.cloned();
    if value.is_some() {
        ctx.ks.remove(ctx.db, &args[1]);
    }
    Ok(Reply::opt_bulk(value))
}

pub fn getex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut expiry = Expiry::Keep;
    let mut i = 2;
    while i < args.len() {
        if eq(&args[i], "persist") && matches!(expiry, Expiry::Keep) {
            expiry = Expiry::Clear;
        } else if is_expiry_word(&args[i]) && matches!(expiry, Expiry::Keep) && i + 1 < args.len() {
            expiry = Expiry::At(expiry_at(ctx, &args[i], &args[i + 1], "getex")?);
            i += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 1;
    }
    let Some(value) = ctx.read_str(&args[1])?.cloned() else { return Ok(Reply::Nil) };
    match expiry {
        Expiry::Keep => {}
        Expiry::Clear => {
            ctx.ks.set_expire(ctx.db, &args[1], 0);
        }
        Expiry::At(at) => {
            ctx.ks.set_expire(ctx.db, &args[1], at);
        }
    }
    Ok(Reply::Bulk(value))
}

pub fn getset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let old = ctx.read_str(&args[1])?.cloned();
    ctx.ks.set(ctx.db, args[1].clone(), Value::Str(args[2].clone()), false);
    Ok(Reply::opt_bulk(old))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common
/// subsequence of two strings, its length, or the ranges where they match (last first).
/// The table is bounded as Redis bounds it, by the longest bulk string allowed.
pub fn lcs(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0usize);
    let mut i = 3;
    while i < args.len() {
        match () {
            _ if eq(&args[i], "len") => len_only = true,
            _ if eq(&args[i], "idx") => idx = true,
            _ if eq(&args[i], "withmatchlen") => with_len = true,
            _ if eq(&args[i], "minmatchlen") && i + 1 < args.len() => {
                min_len = int(&args[i + 1])?.max(0) as usize;
                i += 1;
            }
            _ => return Err(Reply::err(errors::SYNTAX)),
        }
        i += 1;
    }
    if len_only && idx {
        return Err(Reply::err("ERR If you want both the length and indexes, please just use IDX."));
    }
    let mut text = |key: &Bytes| match ctx.ks.read(ctx.db, key).map(|e| &e.value) {
        None => Ok(Bytes::new()),
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(_) => Err(Reply::err("ERR The specified keys must contain string values")),
    };
    let (a, b) = (text(&args[1])?, text(&args[2])?);
    let width = b.len() + 1;
    let cells = (a.len() + 1).checked_mul(width).filter(|n| n.saturating_mul(4) <= ctx.max_bulk);
    let Some(cells) = cells else {
        return Err(Reply::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    };
    // table[i * width + j]: the LCS length of a[..i] and b[..j].
    let mut table = vec![0u32; cells];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[a.len() * width + b.len()] as usize;
    if len_only {
        return Ok(Reply::Int(total as i64));
    }
    // Walk back from the end, collecting the subsequence and its contiguous ranges.
    let mut common = vec![0u8; total];
    let mut ranges = Vec::new();
    let (mut i, mut j, mut k) = (a.len(), b.len(), total);
    let mut open: Option<(usize, usize, usize, usize)> = None; // a start, a end, b start, b end
    while i > 0 && j > 0 {
        let close;
        if a[i - 1] == b[j - 1] {
            common[k - 1] = a[i - 1];
            open = Some(match open {
                Some((a_start, a_end, b_start, b_end)) if a_start == i && b_start == j => {
                    (a_start - 1, a_end, b_start - 1, b_end)
                }
                _ => (i - 1, i - 1, j - 1, j - 1),
            });
            close = i == 1 || j == 1;
            (i, j, k) = (i - 1, j - 1, k - 1);
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            close = open.is_some();
        }
        if close && let Some((a_start, a_end, b_start, b_end)) = open.take() {
            let matched = a_end - a_start + 1;
            if matched >= min_len {
                let span =
                    |s: usize, e: usize| Reply::Array(vec![Reply::Int(s as i64), Reply::Int(e as i64)]);
                let mut item = vec![span(a_start, a_end), span(b_start, b_end)];
                if with_len {
                    item.push(Reply::Int(matched as i64));
                }
                ranges.push(Reply::Array(item));
            }
        }
    }
    if !idx {
        return Ok(Reply::Bulk(Bytes::from(common)));
    }
    Ok(Reply::Map(vec![
        (Reply::text("matches"), Reply::Array(ranges)),
        (Reply::text("len"), Reply::Int(total as i64)),
    ]))
}
