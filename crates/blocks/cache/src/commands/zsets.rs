//! Sorted-set commands over [`crate::zset::ZSet`].

use super::keys::{scan_positions, scan_reply};
use super::{CmdResult, Ctx, cursor, eq, float, index_range, int, pop_count, scan_opts};
use crate::glob;
use crate::reply::{Reply, errors};
use crate::value::Value;
use crate::zset::ZSet;
use bytes::Bytes;
use smallvec::SmallVec;
use std::collections::HashMap;

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) = (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        match () {
            _ if eq(a, "nx") => nx = true,
            _ if eq(a, "xx") => xx = true,
            _ if eq(a, "gt") => gt = true,
            _ if eq(a, "lt") => lt = true,
            _ if eq(a, "ch") => ch = true,
            _ if eq(a, "incr") => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(Reply::err(errors::SYNTAX));
    }
    if nx && xx {
        return Err(Reply::err("ERR XX and NX options at the same time are not compatible"));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible"));
    }
    if incr && pairs.len() > 2 {
        return Err(Reply::err("ERR INCR option supports a single increment-element pair"));
    }
    // Every score is parsed before anything changes.
    let mut scores = SmallVec::<[f64; 8]>::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        scores.push(float(&pair[0])?);
    }
    if xx && ctx.read_zset(&args[1])?.is_none() {
        return Ok(if incr { Reply::Nil } else { Reply::Int(0) });
    }
    let zset = ctx.create_zset(&args[1])?;
    let (mut added, mut changed) = (0, 0);
    let mut last = None;
    for (score, member) in scores.into_iter().zip(pairs.chunks(2).map(|pair| &pair[1])) {
        let old = zset.score(member);
        if (nx && old.is_some()) || (xx && old.is_none()) {
            continue;
        }
        let new = match (incr, old) {
            (true, Some(o)) => o + score,
            _ => score,
        };
        if new.is_nan() {
            return Err(Reply::err(errors::NAN));
        }
        if old.is_some_and(|o| (gt && new <= o) || (lt && new >= o)) {
            continue;
        }
        last = Some(new);
        match old {
            Some(o) if new == o => continue,
            Some(_) => changed += 1,
            None => added += 1,
        }
        zset.insert(member.clone(), new);
    }
    if incr {
        return Ok(last.map_or(Reply::Nil, Reply::Double));
    }
    Ok(Reply::Int(if ch { added + changed } else { added }))
}

pub fn zincrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = float(&args[2])?;
    let zset = ctx.create_zset(&args[1])?;
    let new = zset.score(&args[3]).unwrap_or(0.0) + by;
    if new.is_nan() {
        return Err(Reply::err(errors::NAN));
    }
    zset.insert(args[3].clone(), new);
    Ok(Reply::Double(new))
}

pub fn zrem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(zset) = ctx.write_zset(&args[1])? else { return Ok(Reply::Int(0)) };
    Ok(Reply::Int(args[2..].iter().filter(|m| zset.remove(m).is_some()).count() as i64))
}

pub fn zscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(ctx.read_zset(&args[1])?.and_then(|z| z.score(&args[2])).map_or(Reply::Nil, Reply::Double))
}

pub fn zmscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let zset = ctx.read_zset(&args[1])?;
    Ok(Reply::Array(
        args[2..]
            .iter()
            .map(|m| zset.as_ref().and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double))
            .collect(),
    ))
}

pub fn zcard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_zset(&args[1])?.map_or(0, |z| z.len()) as i64))
}

/// A score bound: `1.5`, `(1.5`, `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

fn score_bound(arg: &[u8]) -> Result<ScoreBound, Reply> {
    let (exclusive, text) = match arg.first() {
        Some(b'(') => (true, &arg[1..]),
        _ => (false, arg),
    };
    let value = super::parse_float(text).ok_or_else(|| Reply::err(errors::MIN_MAX_FLOAT))?;
    Ok(ScoreBound { value, exclusive })
}

/// A lex bound: `[a`, `(a`, `-`, `+`.
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

fn lex_bound(arg: &Bytes) -> Result<LexBound, Reply> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if arg.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Incl(arg.slice(1..))),
        Some(b'(') => Ok(LexBound::Excl(arg.slice(1..))),
        _ => Err(Reply::err(errors::MIN_MAX_LEX)),
    }
}

/// Ranks `[lo, hi)` of the elements with scores within `min..max`.
fn score_ranks(z: &ZSet, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
    let lo = z.count_below(|s, _| if min.exclusive { s <= min.value } else { s < min.value });
    let hi = z.count_below(|s, _| if max.exclusive { s < max.value } else { s <= max.value });
    (lo, hi.max(lo))
}

/// Ranks `[lo, hi)` of the members within the lex range (meaningful when scores are equal).
fn lex_ranks(z: &ZSet, min: &LexBound, max: &LexBound) -> (usize, usize) {
    let lo = match min {
        LexBound::Min => 0,
        LexBound::Max => z.len(),
        LexBound::Incl(b) => z.count_below(|_, m| m < b.as_ref()),
        LexBound::Excl(b) => z.count_below(|_, m| m <= b.as_ref()),
    };
    let hi = match max {
        LexBound::Min => 0,
        LexBound::Max => z.len(),
        LexBound::Incl(b) => z.count_below(|_, m| m <= b.as_ref()),
        LexBound::Excl(b) => z.count_below(|_, m| m < b.as_ref()),
    };
    (lo, hi.max(lo))
}

pub fn zcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (min, max) = (score_bound(&args[2])?, score_bound(&args[3])?);
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Reply::Int(0)) };
    let (lo, hi) = score_ranks(z, min, max);
    Ok(Reply::Int((hi - lo) as i64))
}

pub fn zlexcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (min, max) = (lex_bound(&args[2])?, lex_bound(&args[3])?);
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Reply::Int(0)) };
    let (lo, hi) = lex_ranks(z, &min, &max);
    Ok(Reply::Int((hi - lo) as i64))
}

enum By {
    Rank,
    Score,
    Lex,
}

fn with_scores(items: Vec<(Bytes, f64)>, scores: bool) -> Reply {
    let mut out = Vec::with_capacity(items.len() * if scores { 2 } else { 1 });
    for (m, s) in items {
        out.push(Reply::Bulk(m));
        if scores {
            out.push(Reply::Double(s));
        }
    }
    Reply::Array(out)
}

/// ZRANGE with BYSCORE/BYLEX/REV/LIMIT/WITHSCORES, and the older ZRANGEBYSCORE, ZREVRANGE,
/// ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX forms.
pub fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cmd = ctx.name;
    let (mut by, mut rev) = match cmd {
        "zrangebyscore" => (By::Score, false),
        "zrevrangebyscore" => (By::Score, true),
        "zrevrange" => (By::Rank, true),
        "zrangebylex" => (By::Lex, false),
        "zrevrangebylex" => (By::Lex, true),
        _ => (By::Rank, false),
    };
    let (mut scores, mut limit) = (false, None);
    let mut i = 4;
    while i < args.len() {
        let a = &args[i];
        if eq(a, "withscores") && !matches!(by, By::Lex) {
            scores = true;
        } else if eq(a, "limit") && i + 2 < args.len() {
            limit = Some((int(&args[i + 1])?, int(&args[i + 2])?));
            i += 2;
        } else if cmd == "zrange" && eq(a, "byscore") {
            by = By::Score;
        } else if cmd == "zrange" && eq(a, "bylex") {
            by = By::Lex;
        } else if cmd == "zrange" && eq(a, "rev") {
            rev = true;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 1;
    }
    if limit.is_some() && matches!(by, By::Rank) {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if scores && matches!(by, By::Lex) {
        return Err(Reply::err("ERR syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    // Reverse forms take (max, min).
    let (a, b) = if rev && !matches!(by, By::Rank) { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    enum Range {
        Rank(i64, i64),
        Ranks(usize, usize),
    }
    let range = match by {
        By::Rank => Range::Rank(int(a)?, int(b)?),
        By::Score => {
            let (min, max) = (score_bound(a)?, score_bound(b)?);
            let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
            let (lo, hi) = score_ranks(z, min, max);
            Range::Ranks(lo, hi)
        }
        By::Lex => {
            let (min, max) = (lex_bound(a)?, lex_bound(b)?);
            let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
            let (lo, hi) = lex_ranks(z, &min, &max);
            Range::Ranks(lo, hi)
        }
    };
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    let len = z.len();
    // Ranks [lo, hi) in ascending order.
    let (mut lo, mut hi) = match range {
        Range::Rank(start, stop) => match index_range(start, stop, len) {
            Some((s, e)) if rev => (len - 1 - e, len - s),
            Some((s, e)) => (s, e + 1),
            None => (0, 0),
        },
        Range::Ranks(lo, hi) => (lo, hi),
    };
    if let Some((offset, count)) = limit {
        if offset < 0 {
            return Ok(Reply::Array(Vec::new()));
        }
        let offset = offset as usize;
        let count = if count < 0 { usize::MAX } else { count as usize };
        if rev {
            hi = hi.saturating_sub(offset).max(lo);
            lo = lo.max(hi.saturating_sub(count));
        } else {
            lo = (lo + offset).min(hi);
            hi = hi.min(lo.saturating_add(count));
        }
    }
    let mut items = z.range(lo, hi);
    if rev {
        items.reverse();
    }
    Ok(with_scores(items, scores))
}

/// ZRANK and ZREVRANK [WITHSCORE].
pub fn zrank(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let with_score = match args.get(3) {
        None => false,
        Some(a) if eq(a, "withscore") && args.len() == 4 => true,
        _ => return Err(Reply::err(errors::SYNTAX)),
    };
    let rev = eq(&args[0], "zrevrank");
    let Some(z) = ctx.read_zset(&args[1])? else {
        return Ok(if with_score { Reply::NilArray } else { Reply::Nil });
    };
    let Some(rank) = z.rank(&args[2]) else {
        return Ok(if with_score { Reply::NilArray } else { Reply::Nil });
    };
    let rank = if rev { z.len() - 1 - rank } else { rank } as i64;
    Ok(if with_score {
        Reply::Array(vec![Reply::Int(rank), Reply::Double(z.score(&args[2]).expect("ranked"))])
    } else {
        Reply::Int(rank)
    })
}

fn pop_n(z: &mut ZSet, max: bool, n: usize) -> Vec<(Bytes, f64)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let rank = if max { z.len().checked_sub(1) } else { Some(0) };
        let Some((m, s)) = rank.and_then(|r| z.get_by_rank(r)).map(|(m, s)| (m.clone(), s)) else { break };
        z.remove(&m);
        out.push((m, s));
    }
    out
}

/// ZPOPMIN and ZPOPMAX [count].
pub fn zpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(Reply::err(errors::SYNTAX));
    }
    let count = pop_count(args.get(2))?;
    let max = eq(&args[0], "zpopmax");
    let Some(z) = ctx.write_zset(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(with_scores(pop_n(z, max, count.unwrap_or(1) as usize), true))
}

/// One attempt of BZPOPMIN/BZPOPMAX: `[key, member, score]` from the first non-empty key.
pub fn try_bzpop(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Result<Option<Reply>, Reply> {
    for key in &args[1..args.len() - 1] {
        if let Some(z) = ctx.write_zset(key)?
            && let Some((m, s)) = pop_n(z, max, 1).pop()
        {
            return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(m), Reply::Double(s)])));
        }
    }
    Ok(None)
}

/// ZREMRANGEBYSCORE, ZREMRANGEBYRANK, ZREMRANGEBYLEX.
pub fn zremrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cmd = ctx.name;
    enum Bounds {
        Rank(i64, i64),
        Score(ScoreBound, ScoreBound),
        Lex(LexBound, LexBound),
    }
    let bounds = match cmd {
        "zremrangebyrank" => Bounds::Rank(int(&args[2])?, int(&args[3])?),
        "zremrangebyscore" => Bounds::Score(score_bound(&args[2])?, score_bound(&args[3])?),
        _ => Bounds::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?),
    };
    let Some(z) = ctx.write_zset(&args[1])? else { return Ok(Reply::Int(0)) };
    let (lo, hi) = match bounds {
        Bounds::Rank(s, e) => index_range(s, e, z.len()).map_or((0, 0), |(s, e)| (s, e + 1)),
        Bounds::Score(min, max) => score_ranks(z, min, max),
        Bounds::Lex(min, max) => lex_ranks(z, &min, &max),
    };
    let doomed = z.range(lo, hi);
    for (m, _) in &doomed {
        z.remove(m);
    }
    Ok(Reply::Int(doomed.len() as i64))
}

/// ZUNIONSTORE and ZINTERSTORE dest numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
pub fn zstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let union = eq(&args[0], "zunionstore");
    let numkeys = int(&args[2])?;
    if numkeys <= 0 {
        return Err(Reply::err(format!("ERR at least 1 input key is needed for '{}' command", ctx.name)));
    }
    let numkeys = numkeys as usize;
    if args.len() < 3 + numkeys {
        return Err(Reply::err(errors::SYNTAX));
    }
    let keys = &args[3..3 + numkeys];
    let mut weights = vec![1.0; numkeys];
    let mut aggregate = "sum".to_string();
    let mut i = 3 + numkeys;
    while i < args.len() {
        if eq(&args[i], "weights") && i + numkeys < args.len() {
            for (j, w) in weights.iter_mut().enumerate() {
                *w = super::parse_float(&args[i + 1 + j])
                    .ok_or_else(|| Reply::err("ERR weight value is not a float"))?;
            }
            i += numkeys + 1;
        } else if eq(&args[i], "aggregate") && i + 1 < args.len() {
            aggregate = String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase();
            if !["sum", "min", "max"].contains(&aggregate.as_str()) {
                return Err(Reply::err(errors::SYNTAX));
            }
            i += 2;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    // Inputs may be sorted sets or plain sets (score 1), as in Redis.
    let mut inputs: Vec<Vec<(Bytes, f64)>> = Vec::with_capacity(numkeys);
    for key in keys {
        let members = match ctx.ks.read(ctx.db, key).map(|e| &e.value) {
            None => Vec::new(),
            Some(Value::ZSet(z)) => z.iter_members().map(|(m, s)| (m.clone(), s)).collect(),
            Some(Value::Set(s)) => s.iter().map(|m| (m.clone(), 1.0)).collect(),
            Some(_) => return Err(Reply::err(errors::WRONGTYPE)),
        };
        inputs.push(members);
    }
    let combine = |a: f64, b: f64| match aggregate.as_str() {
        "min" => a.min(b),
        "max" => a.max(b),
        _ => {
            let s = a + b;
            if s.is_nan() { 0.0 } else { s }
        }
    };
    let mut acc: HashMap<Bytes, (f64, usize)> = HashMap::new();
    for (input, w) in inputs.iter().zip(&weights) {
        for (m, s) in input {
            let v = if *s == 0.0 || *w == 0.0 { 0.0 } else { s * w };
            acc.entry(m.clone())
                .and_modify(|(a, n)| {
                    *a = combine(*a, v);
                    *n += 1;
                })
                .or_insert((v, 1));
        }
    }
    let mut out = ZSet::new();
    for (m, (s, n)) in acc {
        if union || n == numkeys {
            out.insert(m, s);
        }
    }
    let len = out.len() as i64;
    ctx.ks.remove(ctx.db, &args[1]);
    if len > 0 {
        ctx.ks.set(ctx.db, args[1].clone(), Value::ZSet(out), false);
    }
    Ok(Reply::Int(len))
}

pub fn zscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[2])?;
    let opts = scan_opts(&args[3..], false)?;
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok(scan_reply(0, Vec::new())) };
    // Positions are ranks walked downwards: a removal only shifts elements down, so none
    // still to come is skipped (an insertion below the cursor can push one past it).
    let (range, next) = scan_positions(start, z.len(), opts.count);
    let mut out = Vec::new();
    for (m, s) in z.range(range.start, range.end).into_iter().rev() {
        if opts.pattern.as_ref().is_none_or(|p| glob::matches(p, &m)) {
            out.push(Reply::Bulk(m));
            out.push(Reply::Double(s));
        }
    }
    Ok(scan_reply(next, out))
}
