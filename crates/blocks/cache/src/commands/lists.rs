//! List commands, and the non-blocking attempt behind the blocking pops (BLPOP, BRPOP,
//! BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP); the session does the waiting.

use super::{CmdResult, Ctx, eq, int, pop_count};
use crate::reply::{Reply, errors};
use crate::value::List;
use bytes::Bytes;
use std::time::Duration;

/// LPUSH, RPUSH, LPUSHX, RPUSHX.
pub fn push(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cmd = ctx.name;
    let list = if cmd.ends_with('x') {
        match ctx.write_list(&args[1])? {
            Some(l) => l,
            None => return Ok(Reply::Int(0)),
        }
    } else {
        ctx.create_list(&args[1])?
    };
    let left = cmd.starts_with('l');
    for v in &args[2..] {
        if left { list.push_front(v) } else { list.push_back(v) }
    }
    Ok(Reply::Int(list.len() as i64))
}

/// LPOP and RPOP, with an optional count.
pub fn pop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(Reply::err(errors::arity(ctx.name)));
    }
    let count = pop_count(args.get(2))?;
    let left = eq(&args[0], "lpop");
    let Some(list) = ctx.write_list(&args[1])? else {
        return Ok(if count.is_some() { Reply::NilArray } else { Reply::Nil });
    };
    let one = |list: &mut List| if left { list.pop_front() } else { list.pop_back() };
    match count {
        None => Ok(Reply::opt_bulk(one(list))),
        Some(n) => {
            let mut out = Vec::new();
            for _ in 0..n {
                match one(list) {
                    Some(v) => out.push(Reply::Bulk(v)),
                    None => break,
                }
            }
            Ok(Reply::Array(out))
        }
    }
}

pub fn lrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    let Some(list) = ctx.read_list(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(match super::index_range(start, end, list.len()) {
        Some((a, b)) => Reply::bulks(list.iter().skip(a).take(b - a + 1).map(Bytes::copy_from_slice)),
        None => Reply::Array(Vec::new()),
    })
}

pub fn llen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_list(&args[1])?.map_or(0, |l| l.len()) as i64))
}

fn resolve(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub fn lindex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let index = int(&args[2])?;
    let Some(list) = ctx.read_list(&args[1])? else { return Ok(Reply::Nil) };
    Ok(Reply::opt_bulk(resolve(index, list.len()).and_then(|i| list.get(i).map(Bytes::copy_from_slice))))
}

pub fn lset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let index = int(&args[2])?;
    let Some(list) = ctx.write_list(&args[1])? else { return Err(Reply::err(errors::NO_KEY)) };
    let i = resolve(index, list.len()).ok_or_else(|| Reply::err(errors::INDEX_RANGE))?;
    list.set(i, &args[3]);
    Ok(Reply::OK)
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let after = if eq(&args[2], "after") {
        true
    } else if eq(&args[2], "before") {
        false
    } else {
        return Err(Reply::err(errors::SYNTAX));
    };
    let Some(list) = ctx.write_list(&args[1])? else { return Ok(Reply::Int(0)) };
    let Some(pos) = list.iter().position(|v| *v == args[3]) else { return Ok(Reply::Int(-1)) };
    list.insert(pos + after as usize, &args[4]);
    Ok(Reply::Int(list.len() as i64))
}

pub fn lrem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let count = int(&args[2])?;
    let Some(list) = ctx.write_list(&args[1])? else { return Ok(Reply::Int(0)) };
    let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
    Ok(Reply::Int(list.remove_equal(&args[3], limit, count < 0) as i64))
}

pub fn ltrim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (start, end) = (int(&args[2])?, int(&args[3])?);
    let Some(list) = ctx.write_list(&args[1])? else { return Ok(Reply::OK) };
    match super::index_range(start, end, list.len()) {
        Some((a, b)) => list.retain_range(a, b + 1),
        None => list.retain_range(0, 0),
    }
    Ok(Reply::OK)
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len]
pub fn lpos(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else { return Err(Reply::err(errors::SYNTAX)) };
        if eq(&args[i], "rank") {
            rank = int(v)?;
            if rank == 0 || rank == i64::MIN {
                return Err(Reply::err(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq(&args[i], "count") {
            count = Some(
                int(v).ok().filter(|n| *n >= 0).ok_or_else(|| Reply::err("ERR COUNT can't be negative"))?,
            );
        } else if eq(&args[i], "maxlen") {
            maxlen =
                int(v).ok().filter(|n| *n >= 0).ok_or_else(|| Reply::err("ERR MAXLEN can't be negative"))?
                    as usize;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 2;
    }
    let Some(list) = ctx.read_list(&args[1])? else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Nil });
    };
    let len = list.len();
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    };
    let scan_limit = if maxlen == 0 { len } else { maxlen.min(len) };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let scanned: Box<dyn Iterator<Item = (usize, &[u8])>> = if rank > 0 {
        Box::new(list.iter().enumerate().take(scan_limit))
    } else {
        Box::new(list.iter().enumerate().rev().take(scan_limit))
    };
    for (i, v) in scanned {
        if *v == args[2] {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(i as i64);
            if found.len() >= want {
                break;
            }
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(found.into_iter().map(Reply::Int).collect()),
        None => found.first().map_or(Reply::Nil, |i| Reply::Int(*i)),
    })
}

fn side(arg: &[u8]) -> Result<bool, Reply> {
    if eq(arg, "left") {
        Ok(true)
    } else if eq(arg, "right") {
        Ok(false)
    } else {
        Err(Reply::err(errors::SYNTAX))
    }
}

/// Pops from `src` at one end and pushes onto `dst` at the other; None if `src` is empty.
fn move_one(
    ctx: &mut Ctx,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
) -> Result<Option<Bytes>, Reply> {
    if ctx.read_list(src)?.is_none() {
        return Ok(None);
    }
    // Type-check the destination before taking anything from the source.
    ctx.read_list(dst)?;
    let list = ctx.write_list(src)?.expect("checked above");
    let value = if from_left { list.pop_front() } else { list.pop_back() }.expect("lists are never empty");
    let dest = ctx.create_list(dst)?;
    if to_left {
        dest.push_front(&value)
    } else {
        dest.push_back(&value)
    }
    Ok(Some(value))
}

pub fn lmove(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (from_left, to_left) = (side(&args[3])?, side(&args[4])?);
    Ok(Reply::opt_bulk(move_one(ctx, &args[1], &args[2], from_left, to_left)?))
}

pub fn rpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(move_one(ctx, &args[1], &args[2], false, true)?))
}

/// `LEFT|RIGHT [COUNT count]` after the keys of LMPOP and BLMPOP: (left, count).
fn mpop_opts(rest: &[Bytes]) -> Result<(bool, usize), Reply> {
    let left = side(rest.first().ok_or_else(|| Reply::err(errors::SYNTAX))?)?;
    Ok((left, super::mpop_count(&rest[1..])?))
}

/// The first non-empty list of `keys`, popped: `[key, [element, ...]]`.
fn mpop(ctx: &mut Ctx, keys: &[Bytes], left: bool, count: usize) -> Result<Option<Reply>, Reply> {
    for key in keys {
        if let Some(list) = ctx.write_list(key)? {
            let mut out = Vec::new();
            while out.len() < count {
                match if left { list.pop_front() } else { list.pop_back() } {
                    Some(v) => out.push(Reply::Bulk(v)),
                    None => break,
                }
            }
            if !out.is_empty() {
                return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(out)])));
            }
        }
    }
    Ok(None)
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (keys, rest) = super::numkeys_keys(args, 1)?;
    let (left, count) = mpop_opts(rest)?;
    Ok(mpop(ctx, keys, left, count)?.unwrap_or(Reply::NilArray))
}

/// How a blocking command waits: until its timeout (None: forever) for a write to one of
/// its keys.
pub struct Blocking {
    pub timeout: Option<Duration>,
    pub keys: Vec<Bytes>,
}

/// Where a blocking command's timeout and keys are, the timeout checked. `Ok(None)` for a
/// stream read without BLOCK, which answers at once.
pub fn blocking_shape(name: &str, args: &[Bytes]) -> Result<Option<Blocking>, Reply> {
    let (timeout, keys) = match name {
        "xread" | "xreadgroup" => {
            let read = super::streams::parse_read(name, args)?;
            return Ok(read.block.map(|ms| Blocking {
                timeout: (ms > 0).then(|| Duration::from_millis(ms)),
                keys: read.keys.to_vec(),
            }));
        }
        "blmpop" | "bzmpop" => (&args[1], super::numkeys_keys(args, 2)?.0.to_vec()),
        "blmove" | "brpoplpush" => (&args[args.len() - 1], vec![args[1].clone()]),
        _ => (&args[args.len() - 1], args[1..args.len() - 1].to_vec()),
    };
    let seconds = match super::parse_float(timeout) {
        Some(t) if t < 0.0 => return Err(Reply::err(errors::NEGATIVE_TIMEOUT)),
        Some(t) if t.is_finite() && t < 1e9 => t,
        _ => return Err(Reply::err(errors::TIMEOUT)),
    };
    Ok(Some(Blocking { timeout: (seconds > 0.0).then(|| Duration::from_secs_f64(seconds)), keys }))
}

/// One attempt at a blocking command: `Ok(None)` when every key is empty and the caller
/// should wait. The timeout argument is parsed by the caller.
pub fn try_blocking(ctx: &mut Ctx, args: &[Bytes]) -> Result<Option<Reply>, Reply> {
    let cmd = ctx.name;
    match cmd {
        "blmove" => {
            let (from_left, to_left) = (side(&args[3])?, side(&args[4])?);
            Ok(move_one(ctx, &args[1], &args[2], from_left, to_left)?.map(Reply::Bulk))
        }
        "brpoplpush" => Ok(move_one(ctx, &args[1], &args[2], false, true)?.map(Reply::Bulk)),
        "blmpop" => {
            let (keys, rest) = super::numkeys_keys(args, 2)?;
            let (left, count) = mpop_opts(rest)?;
            mpop(ctx, keys, left, count)
        }
        "blpop" | "brpop" => {
            for key in &args[1..args.len() - 1] {
                if let Some(list) = ctx.write_list(key)? {
                    let v = if cmd == "blpop" { list.pop_front() } else { list.pop_back() };
                    if let Some(v) = v {
                        return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)])));
                    }
                }
            }
            Ok(None)
        }
        "bzmpop" => super::zsets::try_bzmpop(ctx, args),
        "xread" | "xreadgroup" => super::streams::try_read(ctx, args),
        _ => super::zsets::try_bzpop(ctx, args, cmd == "bzpopmax"),
    }
}
