//! Set commands.

use super::hashes::random_indexes;
use super::keys::{scan_positions, scan_reply};
use super::{CmdResult, Ctx, cursor, int, pop_count, scan_opts};
use crate::glob;
use crate::reply::{Reply, errors};
use crate::value::{Set, Value};
use bytes::Bytes;
use rand::Rng;

pub fn sadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let set = ctx.create_set(&args[1])?;
    // A member already there costs one lookup and no clone.
    Ok(Reply::Int(args[2..].iter().filter(|m| !set.contains(m) && set.insert((*m).clone())).count() as i64))
}

pub fn srem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(set) = ctx.write_set(&args[1])? else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(args[2..].iter().filter(|m| set.remove(m)).count() as i64))
}

pub fn smembers(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(set) = ctx.read_set(&args[1])? else { return Ok(Reply::Set(Vec::new())) };
    Ok(Reply::Set(set.iter().map(|m| Reply::Bulk(m.clone())).collect()))
}

pub fn sismember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_set(&args[1])?.is_some_and(|s| s.contains(&args[2])) as i64))
}

pub fn smismember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let set = ctx.read_set(&args[1])?;
    Ok(Reply::Array(
        args[2..].iter().map(|m| Reply::Int(set.as_ref().is_some_and(|s| s.contains(m)) as i64)).collect(),
    ))
}

pub fn scard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_set(&args[1])?.map_or(0, |s| s.len()) as i64))
}

#[derive(Clone, Copy)]
enum Op {
    Inter,
    Union,
    Diff,
}

fn op_of(cmd: &str) -> Op {
    if cmd.starts_with("sinter") {
        Op::Inter
    } else if cmd.starts_with("sunion") {
        Op::Union
    } else {
        Op::Diff
    }
}

/// Computes the set operation over `keys` (missing keys are empty sets).
fn compute(ctx: &mut Ctx, op: Op, keys: &[Bytes]) -> Result<Vec<Bytes>, Reply> {
    // Type-check (and expire) every key first, then borrow all the sets at once.
    for key in keys {
        ctx.read_set(key)?;
    }
    let sets: Vec<Option<&Set>> = keys
        .iter()
        .map(|k| match ctx.ks.get(ctx.db, k).map(|e| &e.value) {
            Some(Value::Set(s)) => Some(s),
            _ => None,
        })
        .collect();
    let empty = Set::default();
    let first = sets[0].unwrap_or(&empty);
    Ok(match op {
        Op::Union => {
            let mut all = Set::default();
            for s in sets.iter().flatten() {
                for m in s.iter() {
                    all.insert(m.clone());
                }
            }
            all.iter().cloned().collect()
        }
        Op::Inter => {
            if sets.iter().any(|s| s.is_none()) {
                return Ok(Vec::new());
            }
            first.iter().filter(|m| sets[1..].iter().flatten().all(|s| s.contains(m))).cloned().collect()
        }
        Op::Diff => {
            first.iter().filter(|m| !sets[1..].iter().flatten().any(|s| s.contains(m))).cloned().collect()
        }
    })
}

/// SINTER, SUNION, SDIFF.
pub fn combine(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let members = compute(ctx, op_of(ctx.name), &args[1..])?;
    Ok(Reply::Set(members.into_iter().map(Reply::Bulk).collect()))
}

/// SINTERSTORE, SUNIONSTORE, SDIFFSTORE.
pub fn combine_store(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let members = compute(ctx, op_of(ctx.name), &args[2..])?;
    let n = members.len() as i64;
    ctx.ks.remove(ctx.db, &args[1]);
    if n > 0 {
        ctx.ks.set(ctx.db, args[1].clone(), Value::Set(members.into_iter().collect()), false);
    }
    Ok(Reply::Int(n))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let numkeys = int(&args[1])?;
    if numkeys <= 0 {
        return Err(Reply::err("ERR numkeys should be greater than 0"));
    }
    let numkeys = numkeys as usize;
    if args.len() < 2 + numkeys {
        return Err(Reply::err("ERR Number of keys can't be greater than number of args"));
    }
    let limit = super::intercard_limit(&args[2 + numkeys..])?;
    let members = compute(ctx, Op::Inter, &args[2..2 + numkeys])?;
    let n = if limit == 0 { members.len() } else { members.len().min(limit) };
    Ok(Reply::Int(n as i64))
}

pub fn spop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(Reply::err(errors::SYNTAX));
    }
    let count = pop_count(args.get(2))?;
    let seed: u64 = ctx.ks.rng().random();
    let Some(set) = ctx.write_set(&args[1])? else {
        return Ok(if count.is_some() { Reply::Set(Vec::new()) } else { Reply::Nil });
    };
    let picks = random_indexes(set.len(), Some(count.unwrap_or(1)), seed);
    let chosen: Vec<Bytes> = picks.iter().map(|&i| set.get_index(i).expect("in range").clone()).collect();
    for m in &chosen {
        set.remove(m);
    }
    Ok(match count {
        None => Reply::opt_bulk(chosen.into_iter().next()),
        Some(_) => Reply::Set(chosen.into_iter().map(Reply::Bulk).collect()),
    })
}

pub fn srandmember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(Reply::err(errors::SYNTAX));
    }
    let count = args.get(2).map(|c| int(c)).transpose()?;
    let seed: u64 = ctx.ks.rng().random();
    let Some(set) = ctx.read_set(&args[1])? else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Nil });
    };
    let picks = random_indexes(set.len(), count, seed);
    let mut chosen = picks.into_iter().map(|i| set.get_index(i).expect("in range").clone());
    Ok(match count {
        None => Reply::opt_bulk(chosen.next()),
        Some(_) => Reply::bulks(chosen),
    })
}

pub fn smove(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&args[1], &args[2], &args[3]);
    if ctx.read_set(src)?.is_none() {
        return Ok(Reply::Int(0));
    }
    ctx.read_set(dst)?;
    if !ctx.write_set(src)?.expect("checked above").remove(member) {
        return Ok(Reply::Int(0));
    }
    ctx.create_set(dst)?.insert(member.clone());
    Ok(Reply::Int(1))
}

pub fn sscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[2])?;
    let opts = scan_opts(&args[3..], false)?;
    let Some(set) = ctx.read_set(&args[1])? else { return Ok(scan_reply(0, Vec::new())) };
    let (range, next) = scan_positions(start, set.len(), opts.count);
    let mut out = Vec::new();
    for i in range.rev() {
        let Some(m) = set.get_index(i) else { continue };
        if opts.pattern.as_ref().is_none_or(|p| glob::matches(p, m)) {
            out.push(Reply::Bulk(m.clone()));
        }
    }
    Ok(scan_reply(next, out))
}
