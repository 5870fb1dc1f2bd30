//! Stream commands over [`crate::stream::Stream`]: XADD XLEN XRANGE XREVRANGE XDEL XTRIM
//! XREAD XREADGROUP XGROUP XACK XPENDING XCLAIM XAUTOCLAIM XINFO XSETID, with Redis 7.0's
//! arguments, replies and error texts (each checked against redis-server 7.0).
//!
//! XREAD and XREADGROUP with BLOCK wait in the session like the blocking list pops: it
//! calls [`try_read`] until it answers, resolving `$` once first ([`resolve_dollar`]).
//! Run directly (inside MULTI, or without BLOCK) they answer at once.

use super::{CmdResult, Ctx, eq, int};
use crate::reply::{Reply, errors};
use crate::stream::{ClaimOpts, Fields, Group, Stream, StreamId, Trim};
use bytes::Bytes;

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
/// Entries `~` trimming may remove when no LIMIT is given (100 nodes, as Redis).
const DEFAULT_APPROX_LIMIT: usize = 10_000;

// ---- IDs ----

/// `ms-seq`, `ms` (sequence `missing_seq`), and unless `strict` the special `-` and `+`.
fn parse_id(arg: &[u8], missing_seq: u64, strict: bool) -> Result<StreamId, Reply> {
    match arg {
        b"-" if !strict => return Ok(StreamId::MIN),
        b"+" if !strict => return Ok(StreamId::MAX),
        _ => {}
    }
    let text = std::str::from_utf8(arg).map_err(|_| Reply::err(INVALID_ID))?;
    let number = |s: &str| s.parse::<u64>().map_err(|_| Reply::err(INVALID_ID));
    match text.split_once('-') {
        Some((ms, seq)) => Ok(StreamId::new(number(ms)?, number(seq)?)),
        None => Ok(StreamId::new(number(text)?, missing_seq)),
    }
}

/// A plain ID argument (no `-`, `+`, `$` or `>`).
fn strict_id(arg: &[u8]) -> Result<StreamId, Reply> {
    parse_id(arg, 0, true)
}

/// The start of an interval (XRANGE, XPENDING, XAUTOCLAIM): `(` makes it exclusive.
fn interval_start(arg: &[u8]) -> Result<StreamId, Reply> {
    match arg.strip_prefix(b"(").filter(|rest| !rest.is_empty()) {
        Some(rest) => {
            parse_id(rest, 0, true)?.next().ok_or_else(|| Reply::err("ERR invalid start ID for the interval"))
        }
        None => parse_id(arg, 0, false),
    }
}

/// The end of an interval: a missing sequence means the last one of that millisecond.
fn interval_end(arg: &[u8]) -> Result<StreamId, Reply> {
    match arg.strip_prefix(b"(").filter(|rest| !rest.is_empty()) {
        Some(rest) => parse_id(rest, u64::MAX, true)?
            .prev()
            .ok_or_else(|| Reply::err("ERR invalid end ID for the interval")),
        None => parse_id(arg, u64::MAX, false),
    }
}

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

/// One entry as Redis answers it: `[id, [field, value, ...]]`.
fn entry_reply(id: StreamId, fields: &Fields) -> Reply {
    Reply::Array(vec![id_reply(id), Reply::bulks(fields.iter().cloned())])
}

fn entries_reply(entries: Vec<(StreamId, Fields)>) -> Reply {
    Reply::Array(entries.iter().map(|(id, f)| entry_reply(*id, f)).collect())
}

fn no_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::err(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn no_such_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::err(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

/// Whether `key` holds a stream (`None`: no key) with the consumer group `group`.
fn group_exists(ctx: &mut Ctx, key: &[u8], group: &[u8]) -> Result<Option<bool>, Reply> {
    Ok(ctx.read_stream(key)?.map(|s| s.groups.contains_key(group)))
}

/// XCLAIM's and XAUTOCLAIM's `min-idle-time`: negative counts as 0.
fn parse_min_idle(arg: &[u8], command: &str) -> Result<u64, Reply> {
    let ms = int(arg).map_err(|_| Reply::err(format!("ERR Invalid min-idle-time argument for {command}")))?;
    Ok(ms.max(0) as u64)
}

/// Claimed entries as XCLAIM and XAUTOCLAIM answer them: IDs alone with JUSTID.
fn claimed_reply(claimed: &[(StreamId, Fields)], just_id: bool) -> Reply {
    Reply::Array(
        claimed.iter().map(|(id, f)| if just_id { id_reply(*id) } else { entry_reply(*id, f) }).collect(),
    )
}

/// A non-negative count; negative ones count as 0, as Redis reads COUNT.
fn count(arg: &[u8]) -> Result<usize, Reply> {
    Ok(int(arg)?.max(0) as usize)
}

// ---- XADD, XTRIM ----

/// The trimming options XADD and XTRIM share, and (for XADD) where the ID is.
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: usize,
    no_mkstream: bool,
    next: usize,
}

fn parse_trim(args: &[Bytes], xadd: bool) -> Result<TrimArgs, Reply> {
    let mut t = TrimArgs { trim: None, approx: false, limit: 0, no_mkstream: false, next: 2 };
    let mut limit = None;
    let mut i = 2;
    while i < args.len() {
        let (a, more) = (&args[i], args.len() - 1 - i);
        if xadd && a.as_ref() == b"*" {
            break;
        } else if (eq(a, "maxlen") || eq(a, "minid")) && more > 0 {
            if t.trim.is_some() {
                return Err(Reply::err(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            t.approx = false;
            if more >= 2 && (args[i + 1].as_ref() == b"~" || args[i + 1].as_ref() == b"=") {
                t.approx = args[i + 1].as_ref() == b"~";
                i += 1;
            }
            t.trim = Some(if eq(a, "maxlen") {
                let n = int(&args[i + 1])?;
                if n < 0 {
                    return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(strict_id(&args[i + 1])?)
            });
            i += 2;
        } else if eq(a, "limit") && more > 0 {
            let n = int(&args[i + 1])?;
            if n < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            limit = Some(n as usize);
            i += 2;
        } else if xadd && eq(a, "nomkstream") {
            t.no_mkstream = true;
            i += 1;
        } else if xadd {
            break;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    if limit.is_some_and(|l| l > 0) && t.trim.is_none() {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && t.trim.is_none() {
        return Err(Reply::err("ERR syntax error, XTRIM must be called with a trimming strategy"));
    }
    t.limit = match limit {
        Some(_) if !t.approx => {
            return Err(Reply::err("ERR syntax error, LIMIT cannot be used without the special ~ option"));
        }
        Some(l) => l,
        None if t.approx => DEFAULT_APPROX_LIMIT,
        None => 0,
    };
    t.next = i;
    Ok(t)
}

/// How XADD names the new entry.
enum NewId {
    Auto,
    /// `ms-*`: the next sequence number within `ms`.
    AutoSeq(u64),
    Given(StreamId),
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value ...
pub fn xadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let t = parse_trim(args, true)?;
    let i = t.next;
    if args.len() < i + 3 || !(args.len() - i - 1).is_multiple_of(2) {
        return Err(Reply::err(errors::arity("xadd")));
    }
    let new_id = match args[i].as_ref() {
        b"*" => NewId::Auto,
        arg => match arg.strip_suffix(b"-*") {
            Some(ms) if !ms.contains(&b'-') => NewId::AutoSeq(strict_id(ms)?.ms),
            _ => NewId::Given(strict_id(arg)?),
        },
    };
    if matches!(new_id, NewId::Given(StreamId::MIN)) {
        return Err(Reply::err("ERR The ID specified in XADD must be greater than 0-0"));
    }
    if t.no_mkstream && ctx.read_stream(&args[1])?.is_none() {
        return Ok(Reply::Nil);
    }
    let now = ctx.ks.now();
    let stream = ctx.create_stream(&args[1])?;
    if stream.last_id == StreamId::MAX {
        return Err(Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let id = match new_id {
        NewId::Auto => stream.auto_id(now),
        NewId::AutoSeq(ms) => stream.auto_seq_id(ms),
        NewId::Given(id) => Some(id),
    }
    .filter(|id| *id > stream.last_id)
    .ok_or_else(|| {
        Reply::err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
    })?;
    stream.append(id, &args[i + 1..]);
    if let Some(trim) = t.trim {
        stream.trim(trim, t.approx, t.limit);
    }
    Ok(id_reply(id))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub fn xtrim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    // As in Redis, a missing key answers 0 before the options are looked at.
    if ctx.read_stream(&args[1])?.is_none() {
        return Ok(Reply::Int(0));
    }
    let t = parse_trim(args, false)?;
    let stream = ctx.write_stream(&args[1])?.expect("checked above");
    let trim = t.trim.expect("parse_trim demands a strategy for XTRIM");
    Ok(Reply::Int(stream.trim(trim, t.approx, t.limit) as i64))
}

// ---- XLEN, XRANGE, XREVRANGE, XDEL ----

/// XLEN key
pub fn xlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.read_stream(&args[1])?.map_or(0, |s| s.len() as i64)))
}

/// XRANGE key start end [COUNT n], XREVRANGE key end start [COUNT n]
pub fn xrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let rev = ctx.name == "xrevrange";
    let (start, end) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
    let (start, end) = (interval_start(start)?, interval_end(end)?);
    let mut limit = None;
    let mut i = 4;
    while i < args.len() {
        if eq(&args[i], "count") && i + 1 < args.len() {
            limit = Some(count(&args[i + 1])?);
            i += 2;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    let Some(stream) = ctx.read_stream(&args[1])? else { return Ok(Reply::Array(Vec::new())) };
    Ok(match limit {
        Some(0) => Reply::NilArray,
        limit => entries_reply(stream.range(start, end, limit.unwrap_or(0), rev)),
    })
}

/// XDEL key id [id ...]
pub fn xdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.read_stream(&args[1])?.is_none() {
        return Ok(Reply::Int(0));
    }
    let ids = args[2..].iter().map(|a| strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let stream = ctx.write_stream(&args[1])?.expect("checked above");
    Ok(Reply::Int(ids.into_iter().filter(|id| stream.delete(*id)).count() as i64))
}

// ---- XREAD, XREADGROUP ----

/// The arguments of XREAD and XREADGROUP.
pub struct ReadArgs<'a> {
    /// BLOCK in milliseconds (0: forever); None without BLOCK.
    pub block: Option<u64>,
    count: usize,
    /// XREADGROUP's group and consumer.
    group: Option<(&'a Bytes, &'a Bytes)>,
    noack: bool,
    pub keys: &'a [Bytes],
    ids: &'a [Bytes],
}

/// Parses `[GROUP g c] [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...`.
pub fn parse_read<'a>(name: &str, args: &'a [Bytes]) -> Result<ReadArgs<'a>, Reply> {
    let grouped = name == "xreadgroup";
    let mut r = ReadArgs { block: None, count: 0, group: None, noack: false, keys: &[], ids: &[] };
    let mut streams = None;
    let mut i = 1;
    while i < args.len() {
        let (a, more) = (&args[i], args.len() - 1 - i);
        if eq(a, "block") && more > 0 {
            let ms = std::str::from_utf8(&args[i + 1])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| Reply::err("ERR timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(Reply::err(errors::NEGATIVE_TIMEOUT));
            }
            r.block = Some(ms as u64);
            i += 2;
        } else if eq(a, "count") && more > 0 {
            r.count = count(&args[i + 1])?;
            i += 2;
        } else if eq(a, "streams") && more > 0 {
            let rest = &args[i + 1..];
            if !rest.len().is_multiple_of(2) {
                return Err(Reply::err(format!(
                    "ERR Unbalanced '{name}' list of streams: for each stream key an ID or '{}' must be specified.",
                    if grouped { '>' } else { '$' }
                )));
            }
            streams = Some(rest.split_at(rest.len() / 2));
            break;
        } else if eq(a, "group") && more >= 2 {
            if !grouped {
                return Err(Reply::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if eq(a, "noack") {
            if !grouped {
                return Err(Reply::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
            i += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    let Some((keys, ids)) = streams else { return Err(Reply::err(errors::SYNTAX)) };
    if grouped && r.group.is_none() {
        return Err(Reply::err("ERR Missing GROUP option for XREADGROUP"));
    }
    (r.keys, r.ids) = (keys, ids);
    Ok(r)
}

/// Where one key's read starts.
enum From {
    /// Entries after this ID (XREAD, or `$` resolved).
    After(StreamId),
    /// XREADGROUP `>`: entries the group has not seen.
    New,
    /// XREADGROUP with an ID: the consumer's pending entries after it.
    History(StreamId),
}

/// Checks every key and ID as Redis does before reading anything.
fn resolve(ctx: &mut Ctx, r: &ReadArgs) -> Result<Vec<From>, Reply> {
    let mut out = Vec::with_capacity(r.keys.len());
    for (key, id) in r.keys.iter().zip(r.ids) {
        let stream = ctx.read_stream(key)?;
        if let Some((group, _)) = r.group
            && stream.as_ref().is_none_or(|s| !s.groups.contains_key(group))
        {
            return Err(Reply::err(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(group)
            )));
        }
        out.push(match id.as_ref() {
            b"$" if r.group.is_some() => return Err(Reply::err(
                "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
            )),
            b"$" => From::After(stream.map_or(StreamId::MIN, |s| s.last_id)),
            b">" if r.group.is_none() => return Err(Reply::err(
                "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
            )),
            b">" => From::New,
            _ if r.group.is_some() => From::History(strict_id(id)?),
            _ => From::After(strict_id(id)?),
        });
    }
    Ok(out)
}

/// Replaces XREAD's `$` IDs with the streams' current last IDs, so that a blocked XREAD
/// waits for entries added after it started, however often it is woken.
pub fn resolve_dollar(ctx: &mut Ctx, args: &[Bytes]) -> Result<Vec<Bytes>, Reply> {
    let r = parse_read(ctx.name, args)?;
    let froms = resolve(ctx, &r)?;
    let first_id = args.len() - r.ids.len();
    let mut out = args.to_vec();
    for (i, (id, from)) in r.ids.iter().zip(froms).enumerate() {
        if let (b"$", From::After(last)) = (id.as_ref(), from) {
            out[first_id + i] = last.to_bytes();
        }
    }
    Ok(out)
}

/// One attempt at XREAD or XREADGROUP: `Ok(None)` when there is nothing to answer yet.
pub fn try_read(ctx: &mut Ctx, args: &[Bytes]) -> Result<Option<Reply>, Reply> {
    let r = parse_read(ctx.name, args)?;
    let froms = resolve(ctx, &r)?;
    let now = ctx.ks.now();
    let mut out = Vec::new();
    for (key, from) in r.keys.iter().zip(froms) {
        let entries = match (from, r.group) {
            (From::After(after), _) => {
                let Some(stream) = ctx.read_stream(key)? else { continue };
                match after.next() {
                    Some(start) if stream.top_id().is_some_and(|top| top > after) => {
                        entries_reply(stream.range(start, StreamId::MAX, r.count, false))
                    }
                    _ => continue,
                }
            }
            (From::New, Some((group, consumer))) => {
                // Looked at before it is written: a read that finds nothing must not count
                // as a write, which would wake the other readers blocked on the key.
                let stream = ctx.read_stream(key)?.expect("resolve checked the key");
                let last = stream.groups[group.as_ref()].last_id;
                if stream.top_id().is_none_or(|top| top <= last) {
                    continue;
                }
                let stream = ctx.write_stream(key)?.expect("resolve checked the key");
                let read = stream
                    .read_new(group, consumer, r.count, r.noack, now)
                    .expect("resolve checked the group");
                Reply::Array(read.iter().map(|(id, f)| entry_reply(*id, f)).collect())
            }
            (From::History(after), Some((group, consumer))) => {
                let stream = ctx.write_stream(key)?.expect("resolve checked the key");
                let read = stream
                    .read_history(group, consumer, after, r.count, now)
                    .expect("resolve checked the group");
                Reply::Array(
                    read.into_iter()
                        .map(|(id, f)| match f {
                            Some(f) => entry_reply(id, &f),
                            None => Reply::Array(vec![id_reply(id), Reply::NilArray]),
                        })
                        .collect(),
                )
            }
            (_, None) => unreachable!("resolve gives group reads only with a group"),
        };
        out.push((Reply::Bulk(key.clone()), entries));
    }
    Ok((!out.is_empty()).then_some(Reply::Keyed(out)))
}

/// XREAD and XREADGROUP run directly: inside MULTI and scripts, or without BLOCK.
pub fn xread(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(try_read(ctx, args)?.unwrap_or(Reply::NilArray))
}

// ---- groups ----

/// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP
pub fn xgroup(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let arity = match sub.as_str() {
        "create" | "setid" => -5,
        "destroy" => 4,
        "createconsumer" | "delconsumer" => 5,
        "help" => 2,
        _ => return Err(Reply::err(errors::unknown_subcommand("XGROUP", &args[1]))),
    };
    check_arity("xgroup", &sub, arity, args.len())?;
    if sub == "help" {
        return Ok(Reply::help(XGROUP_HELP));
    }
    let syntax = || {
        Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
            String::from_utf8_lossy(&args[1])
        ))
    };
    let (key, name) = (&args[2], &args[3]);
    let (mut mkstream, mut entries_read) = (false, None);
    if sub == "create" || sub == "setid" {
        let mut i = 5;
        while i < args.len() {
            if sub == "create" && eq(&args[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if eq(&args[i], "entriesread") && i + 1 < args.len() {
                let n = int(&args[i + 1])?;
                if n < -1 {
                    return Err(Reply::err("ERR value for ENTRIESREAD must be positive or -1"));
                }
                entries_read = u64::try_from(n).ok();
                i += 2;
            } else {
                return Err(syntax());
            }
        }
    }
    match group_exists(ctx, key, name)? {
        None if !mkstream => {
            return Err(Reply::err(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
            ));
        }
        Some(false) if matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer") => {
            return Err(no_such_group(key, name));
        }
        _ => {}
    }
    let now = ctx.ks.now();
    match (sub.as_str(), args.len()) {
        ("create", 5..=8) => {
            let last = ctx.read_stream(key)?.map_or(StreamId::MIN, |s| s.last_id);
            let id = if args[4].as_ref() == b"$" { last } else { strict_id(&args[4])? };
            let stream = ctx.create_stream(key)?;
            if stream.groups.contains_key(name) {
                return Err(Reply::err("BUSYGROUP Consumer Group name already exists"));
            }
            stream.groups.insert(name.clone(), Group::new(id, entries_read));
            Ok(Reply::OK)
        }
        ("setid", 5 | 7) => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            let id = if args[4].as_ref() == b"$" { stream.last_id } else { parse_id(&args[4], 0, false)? };
            let g = stream.groups.get_mut(name).expect("checked above");
            (g.last_id, g.entries_read) = (id, entries_read);
            Ok(Reply::OK)
        }
        ("destroy", 4) => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            Ok(Reply::Int(stream.groups.remove(name).is_some() as i64))
        }
        ("createconsumer", 5) => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            let g = stream.groups.get_mut(name).expect("checked above");
            if g.consumers.contains_key(&args[4]) {
                return Ok(Reply::Int(0));
            }
            g.consumer(&args[4], now);
            Ok(Reply::Int(1))
        }
        ("delconsumer", 5) => {
            let stream = ctx.write_stream(key)?.expect("checked above");
            let g = stream.groups.get_mut(name).expect("checked above");
            Ok(Reply::Int(g.delete_consumer(&args[4]) as i64))
        }
        _ => Err(syntax()),
    }
}

/// XACK key group id [id ...]
pub fn xack(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if group_exists(ctx, &args[1], &args[2])? != Some(true) {
        return Ok(Reply::Int(0));
    }
    let ids = args[3..].iter().map(|a| strict_id(a)).collect::<Result<Vec<_>, _>>()?;
    let stream = ctx.write_stream(&args[1])?.expect("checked above");
    let g = stream.groups.get_mut(&args[2]).expect("checked above");
    Ok(Reply::Int(ids.into_iter().filter(|id| g.ack(*id)).count() as i64))
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub fn xpending(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (key, name) = (&args[1], &args[2]);
    if args.len() != 3 && !(6..=9).contains(&args.len()) {
        return Err(Reply::err(errors::SYNTAX));
    }
    let mut range = None;
    if args.len() >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if eq(&args[3], "idle") {
            min_idle = int(&args[4])?;
            if args.len() < 8 {
                return Err(Reply::err(errors::SYNTAX));
            }
            at = 5;
        }
        let n = count(&args[at + 2])?;
        let (start, end) = (interval_start(&args[at])?, interval_end(&args[at + 1])?);
        // Like Redis, arguments after the consumer are ignored.
        range = Some((min_idle, start, end, n, args.get(at + 3)));
    }
    let now = ctx.ks.now();
    let Some(g) = ctx.read_stream(key)?.and_then(|s| s.groups.get(name.as_ref())) else {
        return Err(no_group(key, name));
    };
    let Some((min_idle, start, end, n, consumer)) = range else {
        let (Some(first), Some(last)) = (g.pel.keys().next(), g.pel.keys().next_back()) else {
            return Ok(Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]));
        };
        let owners = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(name, c)| {
                Reply::Array(vec![Reply::Bulk(name.clone()), Reply::text(&c.pending.len().to_string())])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            id_reply(*first),
            id_reply(*last),
            Reply::Array(owners),
        ]));
    };
    let ids: Box<dyn Iterator<Item = &StreamId>> = match consumer {
        Some(c) => match g.consumers.get(c.as_ref()) {
            Some(c) => Box::new(c.pending.range(start..)),
            None => return Ok(Reply::Array(Vec::new())),
        },
        None => Box::new(g.pel.range(start..).map(|(id, _)| id)),
    };
    let out = ids
        .take_while(|id| start <= end && **id <= end)
        .filter_map(|id| {
            let p = &g.pel[id];
            let idle = now.saturating_sub(p.delivered_at);
            (min_idle <= 0 || idle >= min_idle as u64).then(|| {
                Reply::Array(vec![
                    id_reply(*id),
                    Reply::Bulk(p.consumer.clone()),
                    Reply::Int(idle as i64),
                    Reply::Int(p.deliveries as i64),
                ])
            })
        })
        .take(n)
        .collect();
    Ok(Reply::Array(out))
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    if group_exists(ctx, key, name)? != Some(true) {
        return Err(no_group(key, name));
    }
    let min_idle = parse_min_idle(&args[4], "XCLAIM")?;
    let mut i = 5;
    let mut ids = Vec::new();
    while i < args.len() {
        match strict_id(&args[i]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        i += 1;
    }
    let now = ctx.ks.now();
    let mut opts = ClaimOpts { min_idle, ..ClaimOpts::default() };
    let mut last_id = None;
    let option = |arg: &Bytes, what: &str| {
        int(arg).map_err(|_| Reply::err(format!("ERR Invalid {what} option argument for XCLAIM")))
    };
    while i < args.len() {
        let more = i + 1 < args.len();
        match () {
            _ if eq(&args[i], "force") => opts.force = true,
            _ if eq(&args[i], "justid") => opts.just_id = true,
            _ if eq(&args[i], "idle") && more => {
                i += 1;
                opts.delivered_at =
                    u64::try_from((now as i64).saturating_sub(option(&args[i], "IDLE")?)).ok();
            }
            _ if eq(&args[i], "time") && more => {
                i += 1;
                opts.delivered_at = u64::try_from(option(&args[i], "TIME")?).ok();
            }
            _ if eq(&args[i], "retrycount") && more => {
                i += 1;
                opts.retry_count = u64::try_from(option(&args[i], "RETRYCOUNT")?).ok();
            }
            _ if eq(&args[i], "lastid") && more => {
                i += 1;
                last_id = Some(strict_id(&args[i])?);
            }
            _ => {
                return Err(Reply::err(format!(
                    "ERR Unrecognized XCLAIM option '{}'",
                    String::from_utf8_lossy(&args[i])
                )));
            }
        }
        i += 1;
    }
    let stream = ctx.write_stream(key)?.expect("checked above");
    if let Some(last) = last_id {
        let g = stream.groups.get_mut(name.as_ref()).expect("checked above");
        g.last_id = g.last_id.max(last);
    }
    let claimed = stream.claim(name, consumer, &ids, opts, now).expect("checked above");
    Ok(claimed_reply(&claimed, opts.just_id))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub fn xautoclaim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (key, name, consumer) = (&args[1], &args[2], &args[3]);
    let exists = group_exists(ctx, key, name)?;
    let min_idle = parse_min_idle(&args[4], "XAUTOCLAIM")?;
    let start = interval_start(&args[5])?;
    let (mut n, mut just_id) = (100, false);
    let mut i = 6;
    while i < args.len() {
        if eq(&args[i], "count") && i + 1 < args.len() {
            n = int(&args[i + 1])
                .ok()
                .filter(|n| (1..=i64::MAX / 10).contains(n))
                .ok_or_else(|| Reply::err("ERR COUNT must be > 0"))? as usize;
            i += 2;
        } else if eq(&args[i], "justid") {
            just_id = true;
            i += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    if exists != Some(true) {
        return Err(no_group(key, name));
    }
    let now = ctx.ks.now();
    let stream = ctx.write_stream(key)?.expect("checked above");
    let opts = ClaimOpts { min_idle, just_id, ..ClaimOpts::default() };
    let auto = stream.auto_claim(name, consumer, start, n, opts, now).expect("checked above");
    Ok(Reply::Array(vec![
        id_reply(auto.cursor),
        claimed_reply(&auto.claimed, just_id),
        Reply::Array(auto.deleted.into_iter().map(id_reply).collect()),
    ]))
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
pub fn xsetid(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let id = strict_id(&args[2])?;
    let (mut added, mut max_deleted) = (None, None);
    let mut i = 3;
    while i < args.len() {
        if eq(&args[i], "entriesadded") && i + 1 < args.len() {
            let n = int(&args[i + 1])?;
            if n < 0 {
                return Err(Reply::err("ERR entries_added must be positive"));
            }
            added = Some(n as u64);
        } else if eq(&args[i], "maxdeletedid") && i + 1 < args.len() {
            let m = strict_id(&args[i + 1])?;
            if id < m {
                return Err(Reply::err(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(m);
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 2;
    }
    let Some(stream) = ctx.write_stream(&args[1])? else { return Err(Reply::err(errors::NO_KEY)) };
    if let Some(top) = stream.top_id() {
        if id < top {
            return Err(Reply::err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if added.is_some_and(|n| n < stream.len() as u64) {
            return Err(Reply::err(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    stream.last_id = id;
    if let Some(n) = added {
        stream.entries_added = n;
    }
    if let Some(m) = max_deleted.filter(|m| *m != StreamId::MIN) {
        stream.max_deleted_id = m;
    }
    Ok(Reply::OK)
}

// ---- XINFO ----

/// XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP
pub fn xinfo(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let arity = match sub.as_str() {
        "stream" => -3,
        "groups" => 3,
        "consumers" => 4,
        "help" => 2,
        _ => return Err(Reply::err(errors::unknown_subcommand("XINFO", &args[1]))),
    };
    check_arity("xinfo", &sub, arity, args.len())?;
    if sub == "help" {
        return Ok(Reply::help(XINFO_HELP));
    }
    let now = ctx.ks.now();
    let key = &args[2];
    let Some(stream) = ctx.read_stream(key)? else { return Err(Reply::err(errors::NO_KEY)) };
    let text = |s: &str| Reply::text(s);
    match sub.as_str() {
        "stream" => {
            let full = match &args[3..] {
                [] => None,
                [f] if eq(f, "full") => Some(10),
                [f, c, n] if eq(f, "full") && eq(c, "count") => Some(count(n)?),
                _ => {
                    return Err(Reply::err(
                        "ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.",
                    ));
                }
            };
            // Redis's radix tree has a key per node and some inner nodes besides.
            let nodes = stream.nodes();
            let mut info = vec![
                (text("length"), Reply::Int(stream.len() as i64)),
                (text("radix-tree-keys"), Reply::Int(nodes as i64)),
                (text("radix-tree-nodes"), Reply::Int(nodes as i64 + 1)),
                (text("last-generated-id"), id_reply(stream.last_id)),
                (text("max-deleted-entry-id"), id_reply(stream.max_deleted_id)),
                (text("entries-added"), Reply::Int(stream.entries_added as i64)),
                (text("recorded-first-entry-id"), id_reply(stream.first_id())),
            ];
            match full {
                None => {
                    info.push((text("groups"), Reply::Int(stream.groups.len() as i64)));
                    let edge =
                        |e: Option<(StreamId, Fields)>| e.map_or(Reply::Nil, |(id, f)| entry_reply(id, &f));
                    info.push((text("first-entry"), edge(stream.first())));
                    info.push((text("last-entry"), edge(stream.last())));
                }
                Some(n) => {
                    info.push((
                        text("entries"),
                        entries_reply(stream.range(StreamId::MIN, StreamId::MAX, n, false)),
                    ));
                    let groups =
                        stream.groups.iter().map(|(name, g)| full_group(stream, name, g, n)).collect();
                    info.push((text("groups"), Reply::Array(groups)));
                }
            }
            Ok(Reply::Map(info))
        }
        "groups" => Ok(Reply::Array(
            stream
                .groups
                .iter()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        (text("name"), Reply::Bulk(name.clone())),
                        (text("consumers"), Reply::Int(g.consumers.len() as i64)),
                        (text("pending"), Reply::Int(g.pel.len() as i64)),
                        (text("last-delivered-id"), id_reply(g.last_id)),
                        (text("entries-read"), g.entries_read.map_or(Reply::Nil, |n| Reply::Int(n as i64))),
                        (text("lag"), stream.lag(g).map_or(Reply::Nil, |n| Reply::Int(n as i64))),
                    ])
                })
                .collect(),
        )),
        _ => {
            let Some(g) = stream.groups.get(args[3].as_ref()) else {
                return Err(no_such_group(key, &args[3]));
            };
            Ok(Reply::Array(
                g.consumers
                    .iter()
                    .map(|(name, c)| {
                        Reply::Map(vec![
                            (text("name"), Reply::Bulk(name.clone())),
                            (text("pending"), Reply::Int(c.pending.len() as i64)),
                            (text("idle"), Reply::Int(now.saturating_sub(c.seen_at) as i64)),
                        ])
                    })
                    .collect(),
            ))
        }
    }
}

/// One group in XINFO STREAM FULL, with up to `n` (0: all) of its pending entries and of
/// each consumer's.
fn full_group(stream: &Stream, name: &Bytes, g: &Group, n: usize) -> Reply {
    let limit = if n == 0 { usize::MAX } else { n };
    let text = |s: &str| Reply::text(s);
    let pel = g
        .pel
        .iter()
        .take(limit)
        .map(|(id, p)| {
            Reply::Array(vec![
                id_reply(*id),
                Reply::Bulk(p.consumer.clone()),
                Reply::Int(p.delivered_at as i64),
                Reply::Int(p.deliveries as i64),
            ])
        })
        .collect();
    let consumers = g
        .consumers
        .iter()
        .map(|(cname, c)| {
            let pending = c
                .pending
                .iter()
                .take(limit)
                .map(|id| {
                    let p = &g.pel[id];
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Int(p.delivered_at as i64),
                        Reply::Int(p.deliveries as i64),
                    ])
                })
                .collect();
            Reply::Map(vec![
                (text("name"), Reply::Bulk(cname.clone())),
                (text("seen-time"), Reply::Int(c.seen_at as i64)),
                (text("pel-count"), Reply::Int(c.pending.len() as i64)),
                (text("pending"), Reply::Array(pending)),
            ])
        })
        .collect();
    Reply::Map(vec![
        (text("name"), Reply::Bulk(name.clone())),
        (text("last-delivered-id"), id_reply(g.last_id)),
        (text("entries-read"), g.entries_read.map_or(Reply::Nil, |n| Reply::Int(n as i64))),
        (text("lag"), stream.lag(g).map_or(Reply::Nil, |n| Reply::Int(n as i64))),
        (text("pel-count"), Reply::Int(g.pel.len() as i64)),
        (text("pending"), Reply::Array(pel)),
        (text("consumers"), Reply::Array(consumers)),
    ])
}

/// Checks a subcommand's argument count (negative: at least that many), as Redis 7 does.
fn check_arity(command: &str, sub: &str, arity: i32, n: usize) -> Result<(), Reply> {
    let n = n as i32;
    if (arity >= 0 && n != arity) || n < -arity {
        return Err(Reply::err(errors::subcommand_arity(command, sub)));
    }
    Ok(())
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];
