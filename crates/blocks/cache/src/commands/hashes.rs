//! Hash commands.

use super::keys::{scan_positions, scan_reply};
use super::{CmdResult, Ctx, cursor, eq, float, fmt_float, int, scan_opts};
use crate::glob;
use crate::reply::{Reply, errors};
use bytes::Bytes;
use rand::Rng;

/// HSET and HMSET.
pub fn hset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(Reply::err(errors::arity(ctx.name)));
    }
    let hash = ctx.create_hash(&args[1])?;
    let mut added = 0;
    for fv in args[2..].chunks(2) {
        added += hash.insert(&fv[0], fv[1].clone()) as i64;
    }
    Ok(if eq(&args[0], "hmset") { Reply::OK } else { Reply::Int(added) })
}

pub fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.read_hash(&args[1])?.is_some_and(|h| h.get(&args[2]).is_some()) {
        return Ok(Reply::Int(0));
    }
    ctx.create_hash(&args[1])?.insert(&args[2], args[3].clone());
    Ok(Reply::Int(1))
}

pub fn hget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(ctx.read_hash(&args[1])?.and_then(|h| h.get(&args[2]).cloned())))
}

pub fn hmget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let hash = ctx.read_hash(&args[1])?;
    Ok(Reply::Array(
        args[2..].iter().map(|f| Reply::opt_bulk(hash.as_ref().and_then(|h| h.get(f).cloned()))).collect(),
    ))
}

pub fn hdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(hash) = ctx.write_hash(&args[1])? else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(args[2..].iter().filter(|f| hash.remove(f).is_some()).count() as i64))
}

pub fn hgetall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(hash) = ctx.read_hash(&args[1])? else { return Ok(Reply::Map(Vec::new())) };
    Ok(Reply::Map(hash.iter().map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone()))).collect()))
}

pub fn hincrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = int(&args[3])?;
    let hash = ctx.create_hash(&args[1])?;
    let current = match hash.get(&args[2]) {
        Some(v) => {
            crate::value::parse_int(v).ok_or_else(|| Reply::err("ERR hash value is not an integer"))?
        }
        None => 0,
    };
    let new = current.checked_add(by).ok_or_else(|| Reply::err(errors::OVERFLOW))?;
    hash.insert(&args[2], Bytes::from(new.to_string()));
    Ok(Reply::Int(new))
}

pub fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = float(&args[3])?;
    let hash = ctx.create_hash(&args[1])?;
    let current = match hash.get(&args[2]) {
        Some(v) => super::parse_float(v).ok_or_else(|| Reply::err("ERR hash value is not a float"))?,
        None => 0.0,
    };
    let new = current + by;
    if !new.is_finite() {
        return Err(Reply::err("ERR increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(fmt_float(new));
    hash.insert(&args[2], text.clone());
    Ok(Reply::Bulk(text))
}

pub fn hexists(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_hash(&args[1])?.is_some_and(|h| h.get(&args[2]).is_some()) as i64))
}

pub fn hlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_hash(&args[1])?.map_or(0, |h| h.len()) as i64))
}

pub fn hkeys(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(hash) = ctx.read_hash(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(Reply::bulks(hash.iter().map(|(f, _)| f.clone())))
}

pub fn hvals(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(hash) = ctx.read_hash(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(Reply::bulks(hash.iter().map(|(_, v)| v.clone())))
}

pub fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(
        Reply::Int(
            ctx.read_hash(&args[1])?.and_then(|h| h.get(&args[2]).map(|v| v.len())).unwrap_or(0) as i64
        ),
    )
}

/// HRANDFIELD key [count [WITHVALUES]] (field-value pairs come flat, as in RESP2)
pub fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let count = args.get(2).map(|c| int(c)).transpose()?;
    let with_values = match args.get(3) {
        None => false,
        Some(a) if eq(a, "withvalues") && args.len() == 4 => true,
        _ => return Err(Reply::err(errors::SYNTAX)),
    };
    let rng_seed: u64 = ctx.ks.rng().random();
    let Some(hash) = ctx.read_hash(&args[1])? else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Nil });
    };
    let picks = random_indexes(hash.len(), count, rng_seed);
    let Some(_) = count else {
        return Ok(Reply::Bulk(hash.get_index(picks[0]).expect("in range").0.clone()));
    };
    let pick = |i: usize| hash.get_index(i).expect("in range");
    Ok(if with_values {
        Reply::Pairs(
            picks
                .into_iter()
                .map(pick)
                .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                .collect(),
        )
    } else {
        Reply::Array(picks.into_iter().map(|i| Reply::Bulk(pick(i).0.clone())).collect())
    })
}

/// Indexes for the RANDFIELD/RANDMEMBER family: `None` one pick; positive count distinct
/// picks (at most `len`); negative count `|count|` picks with repeats.
pub fn random_indexes(len: usize, count: Option<i64>, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    use rand::seq::index::sample;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    if len == 0 {
        return Vec::new();
    }
    match count {
        None => vec![rng.random_range(0..len)],
        Some(n) if n >= 0 => sample(&mut rng, len, (n as usize).min(len)).into_vec(),
        Some(n) => (0..n.unsigned_abs().min(1 << 20)).map(|_| rng.random_range(0..len)).collect(),
    }
}

pub fn hscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[2])?;
    let opts = scan_opts(&args[3..], false)?;
    let Some(hash) = ctx.read_hash(&args[1])? else { return Ok(scan_reply(0, Vec::new())) };
    let (range, next) = scan_positions(start, hash.len(), opts.count);
    let mut out = Vec::new();
    for i in range.rev() {
        let Some((f, v)) = hash.get_index(i) else { continue };
        if opts.pattern.as_ref().is_none_or(|p| glob::matches(p, f)) {
            out.push(Reply::Bulk(f.clone()));
            out.push(Reply::Bulk(v.clone()));
        }
    }
    Ok(scan_reply(next, out))
}
