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

/// Members, or (with `scores`) member-score pairs.
fn with_scores(items: Vec<(Bytes, f64)>, scores: bool) -> Reply {
    if scores {
        Reply::Pairs(items.into_iter().map(|(m, s)| (Reply::Bulk(m), Reply::Double(s))).collect())
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

/// ZRANGE with BYSCORE/BYLEX/REV/LIMIT/WITHSCORES, and the older ZRANGEBYSCORE, ZREVRANGE,
/// ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX forms.
pub fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (items, scores) = select(ctx, ctx.name, args)?;
    Ok(with_scores(items, scores))
}

/// The members (with scores) that ZRANGE in the form `cmd` selects with `args` (`args[1]`
/// the key), and whether WITHSCORES was asked.
fn select(ctx: &mut Ctx, cmd: &str, args: &[Bytes]) -> Result<(Vec<(Bytes, f64)>, bool), Reply> {
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
            let Some(z) = ctx.read_zset(&args[1])? else { return Ok((Vec::new(), scores)) };
            let (lo, hi) = score_ranks(z, min, max);
            Range::Ranks(lo, hi)
        }
        By::Lex => {
            let (min, max) = (lex_bound(a)?, lex_bound(b)?);
            let Some(z) = ctx.read_zset(&args[1])? else { return Ok((Vec::new(), scores)) };
            let (lo, hi) = lex_ranks(z, &min, &max);
            Range::Ranks(lo, hi)
        }
    };
    let Some(z) = ctx.read_zset(&args[1])? else { return Ok((Vec::new(), scores)) };
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
            return Ok((Vec::new(), scores));
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
    Ok((items, scores))
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
    let popped = pop_n(z, max, count.unwrap_or(1) as usize);
    // Without a count the one pair is the answer itself (flat in RESP3 too), as in Redis.
    Ok(match (count, popped.first()) {
        (None, Some((m, s))) => Reply::Array(vec![Reply::Bulk(m.clone()), Reply::Double(*s)]),
        _ => with_scores(popped, true),
    })
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

/// How sorted sets combine: union, intersection, or the first less the others.
#[derive(Clone, Copy, PartialEq)]
enum Combine {
    Union,
    Inter,
    Diff,
}

/// The members of a sorted set or a plain set (score 1) under `key`, as Redis's set-algebra
/// commands read them.
fn members_of(ctx: &mut Ctx, key: &[u8]) -> Result<Vec<(Bytes, f64)>, Reply> {
    Ok(match ctx.ks.read(ctx.db, key).map(|e| &e.value) {
        None => Vec::new(),
        Some(Value::ZSet(z)) => z.iter_members().map(|(m, s)| (m.clone(), s)).collect(),
        Some(Value::Set(s)) => s.iter().map(|m| (m.clone(), 1.0)).collect(),
        Some(_) => return Err(Reply::err(errors::WRONGTYPE)),
    })
}

/// Options after the keys of ZUNION/ZINTER/ZDIFF and their STORE forms.
struct CombineOpts {
    weights: Vec<f64>,
    aggregate: &'static str,
    with_scores: bool,
}

fn combine_opts(rest: &[Bytes], numkeys: usize, op: Combine, store: bool) -> Result<CombineOpts, Reply> {
    let mut opts = CombineOpts { weights: vec![1.0; numkeys], aggregate: "sum", with_scores: false };
    let mut i = 0;
    while i < rest.len() {
        if op != Combine::Diff && eq(&rest[i], "weights") && i + numkeys < rest.len() {
            for (j, w) in opts.weights.iter_mut().enumerate() {
                *w = super::parse_float(&rest[i + 1 + j])
                    .ok_or_else(|| Reply::err("ERR weight value is not a float"))?;
            }
            i += numkeys + 1;
        } else if op != Combine::Diff && eq(&rest[i], "aggregate") && i + 1 < rest.len() {
            opts.aggregate = match () {
                _ if eq(&rest[i + 1], "sum") => "sum",
                _ if eq(&rest[i + 1], "min") => "min",
                _ if eq(&rest[i + 1], "max") => "max",
                _ => return Err(Reply::err(errors::SYNTAX)),
            };
            i += 2;
        } else if !store && eq(&rest[i], "withscores") {
            opts.with_scores = true;
            i += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    Ok(opts)
}

/// Combines the sets under `keys` as `op` says, weighting and aggregating scores as Redis
/// does (a sum that is NaN, `inf + -inf`, is 0).
fn combine(ctx: &mut Ctx, keys: &[Bytes], op: Combine, opts: &CombineOpts) -> Result<ZSet, Reply> {
    let mut inputs = Vec::with_capacity(keys.len());
    for key in keys {
        inputs.push(members_of(ctx, key)?);
    }
    let mut out = ZSet::new();
    if op == Combine::Diff {
        let others: std::collections::HashSet<&Bytes> =
            inputs[1..].iter().flatten().map(|(m, _)| m).collect();
        for (m, s) in &inputs[0] {
            if !others.contains(m) {
                out.insert(m.clone(), *s);
            }
        }
        return Ok(out);
    }
    let combine = |a: f64, b: f64| match opts.aggregate {
        "min" => a.min(b),
        "max" => a.max(b),
        _ => {
            let s = a + b;
            if s.is_nan() { 0.0 } else { s }
        }
    };
    let mut acc: HashMap<Bytes, (f64, usize)> = HashMap::new();
    for (input, w) in inputs.iter().zip(&opts.weights) {
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
    for (m, (s, n)) in acc {
        if op == Combine::Union || n == keys.len() {
            out.insert(m, s);
        }
    }
    Ok(out)
}

/// `numkeys key [key ...]` at `args[at]` of ZUNION, ZINTER, ZDIFF and their STORE forms,
/// with those commands' error wording.
fn combine_keys<'a>(name: &str, args: &'a [Bytes], at: usize) -> Result<(&'a [Bytes], &'a [Bytes]), Reply> {
    if int(&args[at])? <= 0 {
        return Err(Reply::err(format!("ERR at least 1 input key is needed for '{name}' command")));
    }
    super::numkeys_keys(args, at).map_err(|_| Reply::err(errors::SYNTAX))
}

fn combine_of(name: &str) -> Combine {
    match name {
        "zunion" | "zunionstore" => Combine::Union,
        "zinter" | "zinterstore" => Combine::Inter,
        _ => Combine::Diff,
    }
}

/// Stores `out` under `dest` (removing `dest` when empty); its size.
pub fn store(ctx: &mut Ctx, dest: &Bytes, out: ZSet) -> i64 {
    let len = out.len() as i64;
    ctx.ks.remove(ctx.db, dest);
    if len > 0 {
        ctx.ks.set(ctx.db, dest.clone(), Value::ZSet(out), false);
    }
    len
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE dest numkeys key [key ...] [WEIGHTS w ...]
/// [AGGREGATE SUM|MIN|MAX] (no options for ZDIFFSTORE).
pub fn zstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let op = combine_of(ctx.name);
    let (keys, rest) = combine_keys(ctx.name, args, 2)?;
    let opts = combine_opts(rest, keys.len(), op, true)?;
    let out = combine(ctx, keys, op, &opts)?;
    Ok(Reply::Int(store(ctx, &args[1], out)))
}

/// ZUNION, ZINTER, ZDIFF numkeys key [key ...] [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES].
pub fn zcombine(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let op = combine_of(ctx.name);
    let (keys, rest) = combine_keys(ctx.name, args, 1)?;
    let opts = combine_opts(rest, keys.len(), op, false)?;
    let out = combine(ctx, keys, op, &opts)?;
    Ok(with_scores(out.range(0, out.len()), opts.with_scores))
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn zintercard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (keys, rest) = combine_keys(ctx.name, args, 1)?;
    let limit = super::intercard_limit(rest)?;
    let opts = CombineOpts { weights: vec![1.0; keys.len()], aggregate: "sum", with_scores: false };
    let n = combine(ctx, keys, Combine::Inter, &opts)?.len();
    Ok(Reply::Int(if limit == 0 { n } else { n.min(limit) } as i64))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]: ZRANGE's
/// selection, stored.
pub fn zrangestore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    // ZRANGE's arguments are these without the destination; it has no WITHSCORES.
    if args[5..].iter().any(|a| eq(a, "withscores")) {
        return Err(Reply::err(errors::SYNTAX));
    }
    let (items, _) = select(ctx, "zrange", &args[1..])?;
    let mut out = ZSet::new();
    for (m, s) in items {
        out.insert(m, s);
    }
    Ok(Reply::Int(store(ctx, &args[1], out)))
}

/// ZRANDMEMBER key [count [WITHSCORES]]: a positive count gives distinct members, a
/// negative one may repeat them.
pub fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let count = args.get(2).map(|c| int(c)).transpose()?;
    let scores = match args.get(3) {
        None => false,
        Some(a) if eq(a, "withscores") && args.len() == 4 => true,
        _ => return Err(Reply::err(errors::SYNTAX)),
    };
    let seed: u64 = rand::Rng::random(ctx.ks.rng());
    let Some(z) = ctx.read_zset(&args[1])? else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Nil });
    };
    let picks = super::hashes::random_indexes(z.len(), count, seed);
    let at = |rank: usize| z.get_by_rank(rank).map(|(m, s)| (m.clone(), s)).expect("a rank below len");
    if count.is_none() {
        return Ok(Reply::Bulk(at(picks[0]).0));
    }
    Ok(with_scores(picks.into_iter().map(at).collect(), scores))
}

/// `MIN|MAX [COUNT count]` after the keys of ZMPOP and BZMPOP: (max, count).
fn mpop_opts(rest: &[Bytes]) -> Result<(bool, usize), Reply> {
    let max = match rest.first() {
        Some(w) if eq(w, "min") => false,
        Some(w) if eq(w, "max") => true,
        _ => return Err(Reply::err(errors::SYNTAX)),
    };
    Ok((max, super::mpop_count(&rest[1..])?))
}

/// The first non-empty sorted set of `keys`, popped: `[key, [[member, score], ...]]`.
fn mpop(ctx: &mut Ctx, keys: &[Bytes], max: bool, count: usize) -> Result<Option<Reply>, Reply> {
    for key in keys {
        if let Some(z) = ctx.write_zset(key)? {
            let popped = pop_n(z, max, count);
            if !popped.is_empty() {
                let pairs = popped
                    .into_iter()
                    .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                    .collect();
                return Ok(Some(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(pairs)])));
            }
        }
    }
    Ok(None)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (keys, rest) = super::numkeys_keys(args, 1)?;
    let (max, count) = mpop_opts(rest)?;
    Ok(mpop(ctx, keys, max, count)?.unwrap_or(Reply::NilArray))
}

/// One attempt of BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count].
pub fn try_bzmpop(ctx: &mut Ctx, args: &[Bytes]) -> Result<Option<Reply>, Reply> {
    let (keys, rest) = super::numkeys_keys(args, 2)?;
    let (max, count) = mpop_opts(rest)?;
    mpop(ctx, keys, max, count)
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
