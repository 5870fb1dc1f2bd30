//! Commands on keys of any type: deletion, expiry, renaming, iteration, introspection.

use super::{CmdResult, Ctx, ScanOpts, cursor, eq, int, scan_opts};
use crate::glob;
use crate::reply::{Reply, errors};
use bytes::Bytes;

pub fn del(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in &args[1..] {
        if ctx.ks.peek(ctx.db, key).is_some() {
            ctx.ks.remove(ctx.db, key);
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// EXISTS (and TOUCH): counts keys, repeats included.
pub fn exists(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in &args[1..] {
        if ctx.ks.read(ctx.db, key).is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX / XX / GT / LT.
pub fn expire(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cmd = ctx.name;
    let n = int(&args[2])?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if eq(a, "nx") {
            nx = true;
        } else if eq(a, "xx") {
            xx = true;
        } else if eq(a, "gt") {
            gt = true;
        } else if eq(a, "lt") {
            lt = true;
        } else {
            return Err(Reply::err(format!("ERR Unsupported option {}", String::from_utf8_lossy(a))));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reply::err("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(Reply::err("ERR GT and LT options at the same time are not compatible"));
    }
    let now = ctx.ks.now() as i64;
    let at = match cmd {
        "expire" => n.checked_mul(1000).and_then(|ms| ms.checked_add(now)),
        "pexpire" => n.checked_add(now),
        "expireat" => n.checked_mul(1000),
        _ => Some(n),
    }
    .ok_or_else(|| Reply::err(errors::invalid_expire(cmd)))?;
    let Some(entry) = ctx.ks.peek(ctx.db, &args[1]) else { return Ok(Reply::Int(0)) };
    let current = entry.expire_at;
    let skip = (nx && current != 0)
        || (xx && current == 0)
        || (gt && (current == 0 || at <= current as i64))
        || (lt && current != 0 && at >= current as i64);
    if skip {
        return Ok(Reply::Int(0));
    }
    if at <= now {
        ctx.ks.remove(ctx.db, &args[1]);
        ctx.ks.stats.expired += 1;
    } else {
        ctx.ks.set_expire(ctx.db, &args[1], at as u64);
    }
    Ok(Reply::Int(1))
}

/// TTL and PTTL: -2 no key, -1 no expiry.
pub fn ttl(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let now = ctx.ks.now();
    let Some(entry) = ctx.ks.read(ctx.db, &args[1]) else { return Ok(Reply::Int(-2)) };
    if entry.expire_at == 0 {
        return Ok(Reply::Int(-1));
    }
    let ms = entry.expire_at.saturating_sub(now) as i64;
    Ok(Reply::Int(if eq(&args[0], "ttl") { (ms + 500) / 1000 } else { ms }))
}

/// EXPIRETIME and PEXPIRETIME.
pub fn expiretime(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(entry) = ctx.ks.read(ctx.db, &args[1]) else { return Ok(Reply::Int(-2)) };
    if entry.expire_at == 0 {
        return Ok(Reply::Int(-1));
    }
    let at = entry.expire_at as i64;
    Ok(Reply::Int(if eq(&args[0], "expiretime") { at / 1000 } else { at }))
}

pub fn persist(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    match ctx.ks.peek(ctx.db, &args[1]) {
        Some(e) if e.expire_at != 0 => {
            ctx.ks.set_expire(ctx.db, &args[1], 0);
            Ok(Reply::Int(1))
        }
        _ => Ok(Reply::Int(0)),
    }
}

pub fn type_(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::status(ctx.ks.peek(ctx.db, &args[1]).map_or("none", |e| e.value.type_name())))
}

/// RENAME and RENAMENX; the expiry moves with the value.
pub fn rename(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let nx = eq(&args[0], "renamenx");
    let (from, to) = (&args[1], &args[2]);
    if ctx.ks.peek(ctx.db, from).is_none() {
        return Err(Reply::err(errors::NO_KEY));
    }
    if from == to {
        return Ok(if nx { Reply::Int(0) } else { Reply::OK });
    }
    if nx && ctx.ks.peek(ctx.db, to).is_some() {
        return Ok(Reply::Int(0));
    }
    let entry = ctx.ks.remove(ctx.db, from).expect("checked above");
    ctx.ks.set(ctx.db, to.clone(), entry.value, false);
    if entry.expire_at != 0 {
        ctx.ks.set_expire(ctx.db, to, entry.expire_at);
    }
    Ok(if nx { Reply::Int(1) } else { Reply::OK })
}

pub fn keys(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let now = ctx.ks.now();
    let pattern = &args[1];
    let mut out = Vec::new();
    let mut i = 0;
    while let Some((key, entry)) = ctx.ks.key_at(ctx.db, i) {
        if (entry.expire_at == 0 || entry.expire_at > now) && glob::matches(pattern, key) {
            out.push(Reply::Bulk(key.clone()));
        }
        i += 1;
    }
    Ok(Reply::Array(out))
}

/// Walks positions `cursor-1, cursor-2, ...` downwards (cursor 0 starts at the top).
///
/// Going downwards keeps Redis's SCAN guarantee over our swap-remove maps: a removal moves
/// the last element, which has already been visited, into the hole, so an element present
/// for the whole scan is never skipped (it may be returned twice, which Redis allows too).
pub fn scan_positions(cursor: usize, len: usize, count: usize) -> (std::ops::Range<usize>, usize) {
    let top = if cursor == 0 { len } else { cursor.min(len) };
    let bottom = top.saturating_sub(count);
    (bottom..top, bottom)
}

pub fn scan_reply(next: usize, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::Bulk(Bytes::from(next.to_string())), Reply::Array(items)])
}

pub fn scan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = cursor(&args[1])?;
    let ScanOpts { pattern, count, type_name } = scan_opts(&args[2..], true)?;
    let now = ctx.ks.now();
    let (range, next) = scan_positions(start, ctx.ks.len(ctx.db), count);
    let mut out = Vec::new();
    for i in range.rev() {
        let Some((key, entry)) = ctx.ks.key_at(ctx.db, i) else { continue };
        let live = entry.expire_at == 0 || entry.expire_at > now;
        let typed = type_name.as_deref().is_none_or(|t| t == entry.value.type_name());
        if live && typed && pattern.as_ref().is_none_or(|p| glob::matches(p, key)) {
            out.push(Reply::Bulk(key.clone()));
        }
    }
    Ok(scan_reply(next, out))
}

pub fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    Ok(Reply::opt_bulk(ctx.ks.random_key(ctx.db)))
}

pub fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.ks.len(ctx.db) as i64))
}

fn flush_mode(args: &[Bytes]) -> Result<(), Reply> {
    match args.get(1) {
        None => Ok(()),
        Some(a) if args.len() == 2 && (eq(a, "async") || eq(a, "sync")) => Ok(()),
        _ => Err(Reply::err(errors::SYNTAX)),
    }
}

pub fn flushdb(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    flush_mode(args)?;
    ctx.ks.flush(ctx.db);
    Ok(Reply::OK)
}

pub fn flushall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    flush_mode(args)?;
    for db in 0..ctx.ks.databases() {
        ctx.ks.flush(db);
    }
    Ok(Reply::OK)
}

/// COPY source destination [DB n] [REPLACE]
pub fn copy(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut dest_db, mut replace) = (ctx.db, false);
    let mut i = 3;
    while i < args.len() {
        if eq(&args[i], "replace") {
            replace = true;
        } else if eq(&args[i], "db") && i + 1 < args.len() {
            let n = int(&args[i + 1])?;
            if n < 0 || n as usize >= ctx.ks.databases() {
                return Err(Reply::err(errors::DB_INDEX));
            }
            dest_db = n as usize;
            i += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 1;
    }
    let (src, dst) = (&args[1], &args[2]);
    if dest_db == ctx.db && src == dst {
        return Err(Reply::err("ERR source and destination objects are the same"));
    }
    let Some(entry) = ctx.ks.peek(ctx.db, src) else { return Ok(Reply::Int(0)) };
    let (value, expire_at) = (entry.value.clone(), entry.expire_at);
    if ctx.ks.peek(dest_db, dst).is_some() {
        if !replace {
            return Ok(Reply::Int(0));
        }
        ctx.ks.remove(dest_db, dst);
    }
    ctx.ks.set(dest_db, dst.clone(), value, false);
    if expire_at != 0 {
        ctx.ks.set_expire(dest_db, dst, expire_at);
    }
    Ok(Reply::Int(1))
}

/// MOVE key db: moves the key, with its TTL, to another database where the name is free.
pub fn move_(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let db = int(&args[2]).ok().filter(|n| *n >= 0 && (*n as usize) < ctx.ks.databases());
    let Some(db) = db.map(|n| n as usize) else { return Err(Reply::err(errors::DB_INDEX)) };
    if db == ctx.db {
        return Err(Reply::err("ERR source and destination objects are the same"));
    }
    if ctx.ks.peek(ctx.db, &args[1]).is_none() || ctx.ks.peek(db, &args[1]).is_some() {
        return Ok(Reply::Int(0));
    }
    let entry = ctx.ks.remove(ctx.db, &args[1]).expect("present above");
    ctx.ks.set(db, args[1].clone(), entry.value, false);
    if entry.expire_at != 0 {
        ctx.ks.set_expire(db, &args[1], entry.expire_at);
    }
    Ok(Reply::Int(1))
}

/// MEMORY USAGE key [SAMPLES n] | HELP: what the key counts for in `used_memory` (the same
/// accounting eviction uses), or nil for a missing key.
pub fn memory(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if eq(&args[1], "help") && args.len() == 2 {
        return Ok(Reply::help(&["MEMORY <subcommand>", "USAGE <key> [SAMPLES <count>]"]));
    }
    if !eq(&args[1], "usage") {
        return Err(Reply::err(errors::unknown_subcommand("MEMORY", &args[1])));
    }
    match &args[2..] {
        [_] => {}
        // Sizes are kept exactly, so there is nothing to sample.
        [_, word, n] if eq(word, "samples") => {
            int(n)?;
        }
        [] => return Err(Reply::err(errors::arity("memory|usage"))),
        _ => return Err(Reply::err(errors::SYNTAX)),
    }
    Ok(ctx.ks.peek(ctx.db, &args[2]).map_or(Reply::Nil, |e| Reply::Int(e.mem() as i64)))
}

/// OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT | HELP
pub fn object(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if sub == "help" {
        return Ok(Reply::help(&[
            "OBJECT <subcommand>",
            "ENCODING <key>",
            "FREQ <key>",
            "IDLETIME <key>",
            "REFCOUNT <key>",
        ]));
    }
    if !["encoding", "freq", "idletime", "refcount"].contains(&sub.as_str()) {
        return Err(Reply::err(errors::unknown_subcommand("OBJECT", &args[1])));
    }
    if args.len() != 3 {
        return Err(Reply::err(errors::subcommand_arity("object", &sub)));
    }
    let now = ctx.ks.now();
    let lfu = ctx.ks.settings.policy.name().contains("lfu");
    let Some(entry) = ctx.ks.peek(ctx.db, &args[2]) else { return Ok(Reply::Nil) };
    match sub.as_str() {
        "encoding" => Ok(Reply::text(entry.value.encoding())),
        "refcount" => Ok(Reply::Int(1)),
        "idletime" if lfu => Err(Reply::err(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
        "idletime" => Ok(Reply::Int((entry.idle_ms(now) / 1000) as i64)),
        "freq" if !lfu => Err(Reply::err(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
        "freq" => Ok(Reply::Int(entry.lfu() as i64)),
        _ => unreachable!("subcommand checked above"),
    }
}
