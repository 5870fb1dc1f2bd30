//! The command table (names, arity, flags and key positions, as `COMMAND` reports them) and
//! the helpers every command family shares: argument parsing and typed access to keys.
//!
//! Each family lives in its own module; a handler takes the whole argument vector
//! (`args[0]` is the command name) and returns a reply, with errors as `Err(reply)`.

mod bitmaps;
mod geo;
mod hashes;
mod hll;
mod keys;
mod lists;
pub mod server;
mod sets;
mod sort;
mod streams;
mod strings;
mod zsets;

use crate::keyspace::Keyspace;
use crate::reply::{Reply, errors};
use crate::stream::Stream;
use crate::value::{Hash, List, Set, Value};
use crate::zset::ZSet;
use bytes::Bytes;
use std::sync::LazyLock;

pub use lists::{Blocking, blocking_shape, try_blocking};
pub use server::info_text;
pub use streams::resolve_dollar;

/// What a handler sees: the keyspace (locked for the whole command) and the client's
/// selected database.
pub struct Ctx<'a> {
    /// The command's name as the table spells it, for handlers shared by several commands.
    pub name: &'static str,
    pub ks: &'a mut Keyspace,
    pub db: usize,
    pub max_bulk: usize,
}

pub type CmdResult = Result<Reply, Reply>;
pub type Handler = fn(&mut Ctx, &[Bytes]) -> CmdResult;

pub struct Command {
    pub name: &'static str,
    /// Positive: exact argument count (with the name); negative: at least that many.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// `None` for commands the session itself runs (MULTI, SUBSCRIBE, BLPOP, ...).
    pub handler: Option<Handler>,
}

impl Command {
    pub fn deny_oom(&self) -> bool {
        self.flags.contains(&"denyoom")
    }
    /// A blocking pop, which the session waits for when its keys are empty.
    pub fn is_blocking(&self) -> bool {
        self.flags.contains(&"blocking")
    }
    /// Whether a request's command `name` is this command's, in any case: the table's names
    /// are lower case, so only the request's side is lowered (cheaper than `eq`, which lowers
    /// both, on the path every request takes).
    pub fn is_named(&self, name: &[u8]) -> bool {
        name.len() == self.name.len()
            && name.iter().zip(self.name.as_bytes()).all(|(a, b)| a.to_ascii_lowercase() == *b)
    }
    pub fn arity_ok(&self, n: usize) -> bool {
        let n = n as i32;
        if self.arity >= 0 { n == self.arity } else { n >= -self.arity }
    }
    /// Key arguments, for WATCH-like bookkeeping and COMMAND GETKEYS.
    pub fn keys<'a>(&self, args: &'a [Bytes]) -> Vec<&'a Bytes> {
        if self.first_key <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 { args.len() as i32 + self.last_key } else { self.last_key };
        (self.first_key..=last.min(args.len() as i32 - 1))
            .step_by(self.step.max(1) as usize)
            .map(|i| &args[i as usize])
            .collect()
    }
}

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const D: &[&str] = &["write"];
const DF: &[&str] = &["write", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const A: &[&str] = &["fast"];
const S: &[&str] = &["noscript", "loading", "stale"];
const B: &[&str] = &["write", "blocking"];
const P: &[&str] = &["pubsub", "noscript", "loading", "stale"];

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $handler:expr) => {
        Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            handler: $handler,
        }
    };
}

pub static COMMANDS: &[Command] = &[
    // strings
    cmd!("get", 2, RF, 1, 1, 1, Some(strings::get)),
    cmd!("set", -3, W, 1, 1, 1, Some(strings::set)),
    cmd!("setnx", 3, WF, 1, 1, 1, Some(strings::setnx)),
    cmd!("setex", 4, W, 1, 1, 1, Some(strings::setex)),
    cmd!("psetex", 4, W, 1, 1, 1, Some(strings::setex)),
    cmd!("mget", -2, RF, 1, -1, 1, Some(strings::mget)),
    cmd!("mset", -3, W, 1, -1, 2, Some(strings::mset)),
    cmd!("msetnx", -3, W, 1, -1, 2, Some(strings::mset)),
    cmd!("incr", 2, WF, 1, 1, 1, Some(strings::incr)),
    cmd!("decr", 2, WF, 1, 1, 1, Some(strings::incr)),
    cmd!("incrby", 3, WF, 1, 1, 1, Some(strings::incr)),
    cmd!("decrby", 3, WF, 1, 1, 1, Some(strings::incr)),
    cmd!("incrbyfloat", 3, WF, 1, 1, 1, Some(strings::incrbyfloat)),
    cmd!("append", 3, WF, 1, 1, 1, Some(strings::append)),
    cmd!("strlen", 2, RF, 1, 1, 1, Some(strings::strlen)),
    cmd!("getrange", 4, R, 1, 1, 1, Some(strings::getrange)),
    cmd!("substr", 4, R, 1, 1, 1, Some(strings::getrange)),
    cmd!("setrange", 4, W, 1, 1, 1, Some(strings::setrange)),
    cmd!("getdel", 2, DF, 1, 1, 1, Some(strings::getdel)),
    cmd!("getex", -2, DF, 1, 1, 1, Some(strings::getex)),
    cmd!("getset", 3, WF, 1, 1, 1, Some(strings::getset)),
    cmd!("lcs", -3, R, 1, 2, 1, Some(strings::lcs)),
    // keys
    cmd!("del", -2, D, 1, -1, 1, Some(keys::del)),
    cmd!("unlink", -2, DF, 1, -1, 1, Some(keys::del)),
    cmd!("exists", -2, RF, 1, -1, 1, Some(keys::exists)),
    cmd!("expire", -3, DF, 1, 1, 1, Some(keys::expire)),
    cmd!("pexpire", -3, DF, 1, 1, 1, Some(keys::expire)),
    cmd!("expireat", -3, DF, 1, 1, 1, Some(keys::expire)),
    cmd!("pexpireat", -3, DF, 1, 1, 1, Some(keys::expire)),
    cmd!("expiretime", 2, RF, 1, 1, 1, Some(keys::expiretime)),
    cmd!("pexpiretime", 2, RF, 1, 1, 1, Some(keys::expiretime)),
    cmd!("ttl", 2, RF, 1, 1, 1, Some(keys::ttl)),
    cmd!("pttl", 2, RF, 1, 1, 1, Some(keys::ttl)),
    cmd!("persist", 2, DF, 1, 1, 1, Some(keys::persist)),
    cmd!("type", 2, RF, 1, 1, 1, Some(keys::type_)),
    cmd!("rename", 3, D, 1, 2, 1, Some(keys::rename)),
    cmd!("renamenx", 3, DF, 1, 2, 1, Some(keys::rename)),
    cmd!("keys", 2, R, 0, 0, 0, Some(keys::keys)),
    cmd!("scan", -2, R, 0, 0, 0, Some(keys::scan)),
    cmd!("randomkey", 1, R, 0, 0, 0, Some(keys::randomkey)),
    cmd!("dbsize", 1, RF, 0, 0, 0, Some(keys::dbsize)),
    cmd!("flushdb", -1, D, 0, 0, 0, Some(keys::flushdb)),
    cmd!("flushall", -1, D, 0, 0, 0, Some(keys::flushall)),
    cmd!("copy", -3, W, 1, 2, 1, Some(keys::copy)),
    cmd!("move", 3, WF, 1, 1, 1, Some(keys::move_)),
    cmd!("object", -2, R, 2, 2, 1, Some(keys::object)),
    cmd!("memory", -2, R, 2, 2, 1, Some(keys::memory)),
    cmd!("sort", -2, W, 1, 1, 1, Some(sort::sort)),
    cmd!("sort_ro", -2, R, 1, 1, 1, Some(sort::sort)),
    cmd!("touch", -2, RF, 1, -1, 1, Some(keys::exists)),
    // hashes
    cmd!("hset", -4, WF, 1, 1, 1, Some(hashes::hset)),
    cmd!("hmset", -4, WF, 1, 1, 1, Some(hashes::hset)),
    cmd!("hsetnx", 4, WF, 1, 1, 1, Some(hashes::hsetnx)),
    cmd!("hget", 3, RF, 1, 1, 1, Some(hashes::hget)),
    cmd!("hmget", -3, RF, 1, 1, 1, Some(hashes::hmget)),
    cmd!("hdel", -3, DF, 1, 1, 1, Some(hashes::hdel)),
    cmd!("hgetall", 2, R, 1, 1, 1, Some(hashes::hgetall)),
    cmd!("hincrby", 4, WF, 1, 1, 1, Some(hashes::hincrby)),
    cmd!("hincrbyfloat", 4, WF, 1, 1, 1, Some(hashes::hincrbyfloat)),
    cmd!("hexists", 3, RF, 1, 1, 1, Some(hashes::hexists)),
    cmd!("hlen", 2, RF, 1, 1, 1, Some(hashes::hlen)),
    cmd!("hkeys", 2, R, 1, 1, 1, Some(hashes::hkeys)),
    cmd!("hvals", 2, R, 1, 1, 1, Some(hashes::hvals)),
    cmd!("hstrlen", 3, RF, 1, 1, 1, Some(hashes::hstrlen)),
    cmd!("hrandfield", -2, R, 1, 1, 1, Some(hashes::hrandfield)),
    cmd!("hscan", -3, R, 1, 1, 1, Some(hashes::hscan)),
    // lists
    cmd!("lpush", -3, WF, 1, 1, 1, Some(lists::push)),
    cmd!("rpush", -3, WF, 1, 1, 1, Some(lists::push)),
    cmd!("lpushx", -3, WF, 1, 1, 1, Some(lists::push)),
    cmd!("rpushx", -3, WF, 1, 1, 1, Some(lists::push)),
    cmd!("lpop", -2, DF, 1, 1, 1, Some(lists::pop)),
    cmd!("rpop", -2, DF, 1, 1, 1, Some(lists::pop)),
    cmd!("lrange", 4, R, 1, 1, 1, Some(lists::lrange)),
    cmd!("llen", 2, RF, 1, 1, 1, Some(lists::llen)),
    cmd!("lindex", 3, R, 1, 1, 1, Some(lists::lindex)),
    cmd!("lset", 4, W, 1, 1, 1, Some(lists::lset)),
    cmd!("linsert", 5, W, 1, 1, 1, Some(lists::linsert)),
    cmd!("lrem", 4, D, 1, 1, 1, Some(lists::lrem)),
    cmd!("ltrim", 4, D, 1, 1, 1, Some(lists::ltrim)),
    cmd!("lpos", -3, R, 1, 1, 1, Some(lists::lpos)),
    cmd!("lmove", 5, W, 1, 2, 1, Some(lists::lmove)),
    cmd!("rpoplpush", 3, W, 1, 2, 1, Some(lists::rpoplpush)),
    cmd!("blpop", -3, B, 1, -2, 1, None),
    cmd!("brpop", -3, B, 1, -2, 1, None),
    cmd!("blmove", 6, B, 1, 2, 1, None),
    cmd!("brpoplpush", 4, B, 1, 2, 1, None),
    cmd!("lmpop", -4, D, 0, 0, 0, Some(lists::lmpop)),
    cmd!("blmpop", -5, B, 0, 0, 0, None),
    cmd!("bzpopmin", -3, B, 1, -2, 1, None),
    cmd!("bzpopmax", -3, B, 1, -2, 1, None),
    cmd!("bzmpop", -5, B, 0, 0, 0, None),
    // sets
    cmd!("sadd", -3, WF, 1, 1, 1, Some(sets::sadd)),
    cmd!("srem", -3, DF, 1, 1, 1, Some(sets::srem)),
    cmd!("smembers", 2, R, 1, 1, 1, Some(sets::smembers)),
    cmd!("sismember", 3, RF, 1, 1, 1, Some(sets::sismember)),
    cmd!("smismember", -3, RF, 1, 1, 1, Some(sets::smismember)),
    cmd!("scard", 2, RF, 1, 1, 1, Some(sets::scard)),
    cmd!("sinter", -2, R, 1, -1, 1, Some(sets::combine)),
    cmd!("sunion", -2, R, 1, -1, 1, Some(sets::combine)),
    cmd!("sdiff", -2, R, 1, -1, 1, Some(sets::combine)),
    cmd!("sinterstore", -3, W, 1, -1, 1, Some(sets::combine_store)),
    cmd!("sunionstore", -3, W, 1, -1, 1, Some(sets::combine_store)),
    cmd!("sdiffstore", -3, W, 1, -1, 1, Some(sets::combine_store)),
    cmd!("sintercard", -3, R, 0, 0, 0, Some(sets::sintercard)),
    cmd!("spop", -2, DF, 1, 1, 1, Some(sets::spop)),
    cmd!("srandmember", -2, R, 1, 1, 1, Some(sets::srandmember)),
    cmd!("smove", 4, WF, 1, 2, 1, Some(sets::smove)),
    cmd!("sscan", -3, R, 1, 1, 1, Some(sets::sscan)),
    // sorted sets
    cmd!("zadd", -4, WF, 1, 1, 1, Some(zsets::zadd)),
    cmd!("zincrby", 4, WF, 1, 1, 1, Some(zsets::zincrby)),
    cmd!("zrem", -3, DF, 1, 1, 1, Some(zsets::zrem)),
    cmd!("zscore", 3, RF, 1, 1, 1, Some(zsets::zscore)),
    cmd!("zmscore", -3, RF, 1, 1, 1, Some(zsets::zmscore)),
    cmd!("zcard", 2, RF, 1, 1, 1, Some(zsets::zcard)),
    cmd!("zcount", 4, RF, 1, 1, 1, Some(zsets::zcount)),
    cmd!("zlexcount", 4, RF, 1, 1, 1, Some(zsets::zlexcount)),
    cmd!("zrange", -4, R, 1, 1, 1, Some(zsets::zrange)),
    cmd!("zrangebyscore", -4, R, 1, 1, 1, Some(zsets::zrange)),
    cmd!("zrevrange", -4, R, 1, 1, 1, Some(zsets::zrange)),
    cmd!("zrevrangebyscore", -4, R, 1, 1, 1, Some(zsets::zrange)),
    cmd!("zrangebylex", -4, R, 1, 1, 1, Some(zsets::zrange)),
    cmd!("zrevrangebylex", -4, R, 1, 1, 1, Some(zsets::zrange)),
    cmd!("zrank", -3, RF, 1, 1, 1, Some(zsets::zrank)),
    cmd!("zrevrank", -3, RF, 1, 1, 1, Some(zsets::zrank)),
    cmd!("zpopmin", -2, DF, 1, 1, 1, Some(zsets::zpop)),
    cmd!("zpopmax", -2, DF, 1, 1, 1, Some(zsets::zpop)),
    cmd!("zremrangebyscore", 4, D, 1, 1, 1, Some(zsets::zremrange)),
    cmd!("zremrangebyrank", 4, D, 1, 1, 1, Some(zsets::zremrange)),
    cmd!("zremrangebylex", 4, D, 1, 1, 1, Some(zsets::zremrange)),
    cmd!("zunionstore", -4, W, 1, 1, 1, Some(zsets::zstore)),
    cmd!("zinterstore", -4, W, 1, 1, 1, Some(zsets::zstore)),
    cmd!("zdiffstore", -4, W, 1, 1, 1, Some(zsets::zstore)),
    cmd!("zunion", -3, R, 0, 0, 0, Some(zsets::zcombine)),
    cmd!("zinter", -3, R, 0, 0, 0, Some(zsets::zcombine)),
    cmd!("zdiff", -3, R, 0, 0, 0, Some(zsets::zcombine)),
    cmd!("zintercard", -3, R, 0, 0, 0, Some(zsets::zintercard)),
    cmd!("zrangestore", -5, W, 1, 2, 1, Some(zsets::zrangestore)),
    cmd!("zrandmember", -2, R, 1, 1, 1, Some(zsets::zrandmember)),
    cmd!("zmpop", -4, D, 0, 0, 0, Some(zsets::zmpop)),
    cmd!("zscan", -3, R, 1, 1, 1, Some(zsets::zscan)),
    // bitmaps
    cmd!("setbit", 4, W, 1, 1, 1, Some(bitmaps::setbit)),
    cmd!("getbit", 3, RF, 1, 1, 1, Some(bitmaps::getbit)),
    cmd!("bitcount", -2, R, 1, 1, 1, Some(bitmaps::bitcount)),
    cmd!("bitpos", -3, R, 1, 1, 1, Some(bitmaps::bitpos)),
    cmd!("bitop", -4, W, 2, -1, 1, Some(bitmaps::bitop)),
    cmd!("bitfield", -2, W, 1, 1, 1, Some(bitmaps::bitfield)),
    cmd!("bitfield_ro", -2, RF, 1, 1, 1, Some(bitmaps::bitfield)),
    // geospatial (sorted sets scored by geohash)
    cmd!("geoadd", -5, W, 1, 1, 1, Some(geo::geoadd)),
    cmd!("geopos", -2, R, 1, 1, 1, Some(geo::geopos)),
    cmd!("geodist", -4, R, 1, 1, 1, Some(geo::geodist)),
    cmd!("geohash", -2, R, 1, 1, 1, Some(geo::geohash)),
    cmd!("geosearch", -7, R, 1, 1, 1, Some(geo::geosearch)),
    cmd!("geosearchstore", -8, W, 1, 2, 1, Some(geo::geosearchstore)),
    cmd!("georadius", -6, W, 1, 1, 1, Some(geo::georadius)),
    cmd!("georadius_ro", -6, R, 1, 1, 1, Some(geo::georadius)),
    cmd!("georadiusbymember", -5, W, 1, 1, 1, Some(geo::georadius)),
    cmd!("georadiusbymember_ro", -5, R, 1, 1, 1, Some(geo::georadius)),
    // streams
    cmd!("xadd", -5, WF, 1, 1, 1, Some(streams::xadd)),
    cmd!("xlen", 2, RF, 1, 1, 1, Some(streams::xlen)),
    cmd!("xrange", -4, R, 1, 1, 1, Some(streams::xrange)),
    cmd!("xrevrange", -4, R, 1, 1, 1, Some(streams::xrange)),
    cmd!("xdel", -3, DF, 1, 1, 1, Some(streams::xdel)),
    cmd!("xtrim", -4, D, 1, 1, 1, Some(streams::xtrim)),
    cmd!("xread", -4, &["readonly", "blocking", "movablekeys"], 0, 0, 0, Some(streams::xread)),
    cmd!("xreadgroup", -7, &["write", "blocking", "movablekeys"], 0, 0, 0, Some(streams::xread)),
    cmd!("xgroup", -2, D, 2, 2, 1, Some(streams::xgroup)),
    cmd!("xack", -4, DF, 1, 1, 1, Some(streams::xack)),
    cmd!("xpending", -3, R, 1, 1, 1, Some(streams::xpending)),
    cmd!("xclaim", -6, DF, 1, 1, 1, Some(streams::xclaim)),
    cmd!("xautoclaim", -6, DF, 1, 1, 1, Some(streams::xautoclaim)),
    cmd!("xinfo", -2, R, 2, 2, 1, Some(streams::xinfo)),
    cmd!("xsetid", -3, WF, 1, 1, 1, Some(streams::xsetid)),
    // HyperLogLog
    cmd!("pfadd", -2, WF, 1, 1, 1, Some(hll::pfadd)),
    cmd!("pfcount", -2, R, 1, -1, 1, Some(hll::pfcount)),
    cmd!("pfmerge", -2, W, 1, -1, 1, Some(hll::pfmerge)),
    // server
    cmd!("ping", -1, A, 0, 0, 0, None),
    cmd!("echo", 2, A, 0, 0, 0, Some(server::echo)),
    cmd!("time", 1, A, 0, 0, 0, Some(server::time)),
    cmd!("info", -1, S, 0, 0, 0, None),
    cmd!("config", -2, S, 0, 0, 0, None),
    cmd!("command", -1, S, 0, 0, 0, None),
    cmd!("debug", -2, S, 0, 0, 0, None),
    cmd!("client", -2, S, 0, 0, 0, None),
    cmd!("hello", -1, A, 0, 0, 0, None),
    cmd!("auth", -2, A, 0, 0, 0, None),
    cmd!("select", 2, A, 0, 0, 0, None),
    cmd!("swapdb", 3, DF, 0, 0, 0, None),
    cmd!("quit", -1, A, 0, 0, 0, None),
    cmd!("reset", 1, A, 0, 0, 0, None),
    cmd!("lastsave", 1, A, 0, 0, 0, Some(server::lastsave)),
    cmd!("role", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0, Some(server::role)),
    cmd!("wait", 3, &["noscript"], 0, 0, 0, Some(server::wait)),
    cmd!("save", 1, S, 0, 0, 0, Some(server::save)),
    cmd!("slowlog", -2, &["admin", "loading", "stale"], 0, 0, 0, None),
    cmd!("latency", -2, &["admin", "noscript", "loading", "stale"], 0, 0, 0, None),
    cmd!("bgsave", -1, S, 0, 0, 0, Some(server::save)),
    // transactions
    cmd!("multi", 1, A, 0, 0, 0, None),
    cmd!("exec", 1, S, 0, 0, 0, None),
    cmd!("discard", 1, A, 0, 0, 0, None),
    cmd!("watch", -2, A, 1, -1, 1, None),
    cmd!("unwatch", 1, A, 0, 0, 0, None),
    // pub/sub
    cmd!("subscribe", -2, P, 0, 0, 0, None),
    cmd!("unsubscribe", -1, P, 0, 0, 0, None),
    cmd!("psubscribe", -2, P, 0, 0, 0, None),
    cmd!("punsubscribe", -1, P, 0, 0, 0, None),
    cmd!("publish", 3, &["pubsub", "loading", "stale", "fast"], 0, 0, 0, None),
    cmd!("pubsub", -2, &["pubsub", "loading", "stale"], 0, 0, 0, None),
    // scripting
    cmd!("eval", -3, &["noscript", "stale", "skip_monitor"], 0, 0, 0, None),
    cmd!("evalsha", -3, &["noscript", "stale", "skip_monitor"], 0, 0, 0, None),
    cmd!("eval_ro", -3, &["noscript", "stale", "readonly"], 0, 0, 0, None),
    cmd!("evalsha_ro", -3, &["noscript", "stale", "readonly"], 0, 0, 0, None),
    cmd!("script", -2, S, 0, 0, 0, None),
    cmd!("fcall", -3, &["noscript", "stale", "skip_monitor"], 0, 0, 0, None),
    cmd!("fcall_ro", -3, &["noscript", "stale", "readonly"], 0, 0, 0, None),
    cmd!("function", -2, S, 0, 0, 0, None),
];

/// The command table by lowercase name. Every command looks itself up here, so the hash is
/// foldhash rather than SipHash: the keys are this fixed table, not client data, so there is
/// nothing to flood.
static BY_NAME: LazyLock<foldhash::HashMap<&'static [u8], &'static Command>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());

/// Finds a command by name, case-insensitively, without allocating for names up to 32 bytes.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (b, c) in buf.iter_mut().zip(name) {
        *b = c.to_ascii_lowercase();
    }
    BY_NAME.get(&buf[..name.len()]).copied()
}

/// Runs a command whose handler lives in this module (the caller checked arity).
pub fn run(cmd: &Command, ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match cmd.handler {
        Some(handler) => handler(ctx, args).unwrap_or_else(|e| e),
        None => Reply::err(format!("ERR '{}' cannot run here", cmd.name)),
    }
}

// ---- argument parsing ----

pub fn eq(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// An integer argument, as Redis reads one (string2ll: no '+', no leading zeros).
pub fn int(arg: &[u8]) -> Result<i64, Reply> {
    crate::value::parse_int(arg).ok_or_else(|| Reply::err(errors::NOT_INT))
}

/// The optional count of LPOP/RPOP/SPOP/ZPOPMIN/ZPOPMAX: a non-negative integer.
pub fn pop_count(arg: Option<&Bytes>) -> Result<Option<i64>, Reply> {
    arg.map(|c| {
        int(c)
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Reply::err("ERR value is out of range, must be positive"))
    })
    .transpose()
}

/// A float as Redis parses it: `inf`, `-inf`, `+inf` accepted; NaN rejected.
pub fn float(arg: &[u8]) -> Result<f64, Reply> {
    parse_float(arg).ok_or_else(|| Reply::err(errors::NOT_FLOAT))
}

pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        other => other.parse::<f64>().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

pub use crate::reply::format_double as fmt_float;

/// `numkeys key [key ...]` starting at `args[at]` (LMPOP, ZMPOP and their blocking forms):
/// the keys, and the arguments after them.
pub fn numkeys_keys(args: &[Bytes], at: usize) -> Result<(&[Bytes], &[Bytes]), Reply> {
    let n = int(&args[at]).map_err(|_| Reply::err("ERR numkeys should be greater than 0"))?;
    if n <= 0 {
        return Err(Reply::err("ERR numkeys should be greater than 0"));
    }
    let n = n as usize;
    if args.len() - at - 1 < n {
        return Err(Reply::err(errors::SYNTAX));
    }
    Ok((&args[at + 1..at + 1 + n], &args[at + 1 + n..]))
}

/// The optional `LIMIT limit` of SINTERCARD and ZINTERCARD: 0 (no limit) when absent.
pub fn intercard_limit(rest: &[Bytes]) -> Result<usize, Reply> {
    match rest {
        [] => Ok(0),
        [word, n] if eq(word, "limit") => int(n)
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| Reply::err("ERR LIMIT can't be negative")),
        _ => Err(Reply::err(errors::SYNTAX)),
    }
}

/// The optional `COUNT count` of LMPOP, ZMPOP and their blocking forms: a positive integer,
/// 1 when absent.
pub fn mpop_count(rest: &[Bytes]) -> Result<usize, Reply> {
    match rest {
        [] => Ok(1),
        [word, n] if eq(word, "count") => int(n)
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| Reply::err("ERR count should be greater than 0")),
        _ => Err(Reply::err(errors::SYNTAX)),
    }
}

/// Resolves Redis's negative indexes against `len`: returns the clamped inclusive range, or
/// None when it is empty.
pub fn index_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    if start < 0 {
        start = 0;
    }
    if end >= len {
        end = len - 1;
    }
    if start > end || start >= len || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

/// Parses SCAN-family options after the cursor: MATCH, COUNT and (for SCAN) TYPE.
pub struct ScanOpts {
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub type_name: Option<String>,
}

pub fn scan_opts(args: &[Bytes], allow_type: bool) -> Result<ScanOpts, Reply> {
    let mut opts = ScanOpts { pattern: None, count: 10, type_name: None };
    let mut i = 0;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(Reply::err(errors::SYNTAX));
        }
        if eq(&args[i], "match") {
            opts.pattern = Some(args[i + 1].clone());
        } else if eq(&args[i], "count") {
            let n = int(&args[i + 1])?;
            if n < 1 {
                return Err(Reply::err(errors::SYNTAX));
            }
            opts.count = n as usize;
        } else if allow_type && eq(&args[i], "type") {
            opts.type_name = Some(String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase());
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 2;
    }
    Ok(opts)
}

pub fn cursor(arg: &[u8]) -> Result<usize, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|c| c as usize)
        .ok_or_else(|| Reply::err("ERR invalid cursor"))
}

// ---- typed access ----

fn wrong_type() -> Reply {
    Reply::err(errors::WRONGTYPE)
}

macro_rules! typed_access {
    ($read:ident, $write:ident, $create:ident, $variant:ident, $ty:ty, $new:expr) => {
        impl Ctx<'_> {
            pub fn $read(&mut self, key: &[u8]) -> Result<Option<&mut $ty>, Reply> {
                match self.ks.read(self.db, key) {
                    None => Ok(None),
                    Some(e) => match &mut e.value {
                        Value::$variant(v) => Ok(Some(v)),
                        _ => Err(wrong_type()),
                    },
                }
            }
            pub fn $write(&mut self, key: &[u8]) -> Result<Option<&mut $ty>, Reply> {
                match self.ks.write_index_if(self.db, key, |v| matches!(v, Value::$variant(_))) {
                    Err(()) => Err(wrong_type()),
                    Ok(None) => Ok(None),
                    Ok(Some(i)) => match &mut self.ks.entry_at(self.db, i).value {
                        Value::$variant(v) => Ok(Some(v)),
                        _ => unreachable!("type checked by write_index_if"),
                    },
                }
            }
            /// The value under `key`, created empty when absent.
            pub fn $create(&mut self, key: &Bytes) -> Result<&mut $ty, Reply> {
                let i = match self.ks.write_index_if(self.db, key, |v| matches!(v, Value::$variant(_))) {
                    Err(()) => return Err(wrong_type()),
                    Ok(Some(i)) => i,
                    Ok(None) => self.ks.set(self.db, key.clone(), Value::$variant($new), false),
                };
                match &mut self.ks.entry_at(self.db, i).value {
                    Value::$variant(v) => Ok(v),
                    _ => unreachable!("type checked or created above"),
                }
            }
        }
    };
}

typed_access!(read_str, write_str, create_str, Str, Bytes, Bytes::new());
typed_access!(read_hash, write_hash, create_hash, Hash, Hash, Hash::default());
typed_access!(read_list, write_list, create_list, List, List, List::default());
typed_access!(read_set, write_set, create_set, Set, Set, Set::default());
typed_access!(read_zset, write_zset, create_zset, ZSet, ZSet, ZSet::new());
typed_access!(read_stream, write_stream, create_stream, Stream, Box<Stream>, Box::default());
