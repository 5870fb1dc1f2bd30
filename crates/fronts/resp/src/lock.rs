//! The `LOCK.*` commands: decode the arguments, call the lock block, encode the answer.
//!
//! ```text
//! LOCK.ACQUIRE <resource> [<resource> ...] OWNER <id> TTL <ms> [WAIT <ms>] [SHARED]
//!     → the fencing token (integer), or nil when not acquired within WAIT
//! LOCK.RELEASE <resource> [<resource> ...] OWNER <id>   → how many were released
//! LOCK.EXTEND <resource> OWNER <id> TTL <ms>             → the lease's fencing token
//! LOCK.INFO <resource>                                   → holders and waiters (a map)
//! ```
//!
//! Errors: `-NOTOWNER` (release/extend by a non-holder, or after the lease ended),
//! `-DEADLOCK` (the wait would close a cycle), `-ERR` (syntax, limits, storage).

use bytes::Bytes;
use std::time::Duration;
use strata_cache::Reply;
use strata_lock::{Acquire, LockError, Locks, Mode};

/// Whether `name` is a command this module answers.
pub fn is_lock_command(name: &[u8]) -> bool {
    name.len() > 5 && name[..5].eq_ignore_ascii_case(b"lock.")
}

pub async fn execute(locks: &Locks, args: &[Bytes]) -> Reply {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let outcome = match name.as_str() {
        "LOCK.ACQUIRE" => acquire(locks, &args[1..]).await,
        "LOCK.RELEASE" => release(locks, &args[1..]).await,
        "LOCK.EXTEND" => extend(locks, &args[1..]).await,
        "LOCK.INFO" => info(locks, &args[1..]),
        _ => Err(Reply::err(format!("ERR unknown command '{name}', with args beginning with: "))),
    };
    outcome.unwrap_or_else(|e| e)
}

fn text(arg: &Bytes) -> Result<String, Reply> {
    String::from_utf8(arg.to_vec()).map_err(|_| Reply::err("ERR resource and owner names must be UTF-8"))
}

fn millis(arg: Option<&Bytes>) -> Result<Duration, Reply> {
    std::str::from_utf8(arg.ok_or_else(syntax)?)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| Reply::err("ERR value is not an integer or out of range"))
}

fn syntax() -> Reply {
    Reply::err("ERR syntax error")
}

fn lock_error(e: LockError) -> Reply {
    match e {
        LockError::NotOwner(_) => Reply::err(format!("NOTOWNER {e}")),
        LockError::Deadlock(_) => Reply::err(format!("DEADLOCK {e}")),
        other => Reply::err(format!("ERR {other}")),
    }
}

/// The options after the resources.
#[derive(Default)]
struct Options {
    owner: Option<String>,
    ttl: Option<Duration>,
    wait: Duration,
    shared: bool,
}

/// Splits `<resource>... OWNER <id> [TTL ms] [WAIT ms] [SHARED]`.
fn parse(args: &[Bytes]) -> Result<(Vec<String>, Options), Reply> {
    let keyword = |a: &Bytes, k: &str| a.eq_ignore_ascii_case(k.as_bytes());
    let split = args.iter().position(|a| keyword(a, "OWNER")).ok_or_else(syntax)?;
    let resources = args[..split].iter().map(text).collect::<Result<Vec<_>, _>>()?;
    if resources.is_empty() {
        return Err(syntax());
    }
    let mut options = Options::default();
    let mut rest = args[split..].iter();
    while let Some(arg) = rest.next() {
        if keyword(arg, "OWNER") {
            options.owner = Some(text(rest.next().ok_or_else(syntax)?)?);
        } else if keyword(arg, "TTL") {
            options.ttl = Some(millis(rest.next())?);
        } else if keyword(arg, "WAIT") {
            options.wait = millis(rest.next())?;
        } else if keyword(arg, "SHARED") {
            options.shared = true;
        } else {
            return Err(syntax());
        }
    }
    Ok((resources, options))
}

async fn acquire(locks: &Locks, args: &[Bytes]) -> Result<Reply, Reply> {
    let (resources, o) = parse(args)?;
    let (Some(owner), Some(ttl)) = (o.owner, o.ttl) else {
        return Err(Reply::err("ERR LOCK.ACQUIRE needs OWNER and TTL"));
    };
    let mode = if o.shared { Mode::Shared } else { Mode::Exclusive };
    let request = Acquire { resources, owner, ttl, wait: o.wait, mode };
    match locks.acquire(request).await.map_err(lock_error)? {
        Some(lease) => Ok(Reply::Int(lease.token as i64)),
        None => Ok(Reply::Nil),
    }
}

async fn release(locks: &Locks, args: &[Bytes]) -> Result<Reply, Reply> {
    let (resources, o) = parse(args)?;
    if o.ttl.is_some() || !o.wait.is_zero() || o.shared {
        return Err(syntax());
    }
    let owner = o.owner.ok_or_else(syntax)?;
    let released = locks.release(&owner, &resources).await.map_err(lock_error)?;
    Ok(Reply::Int(released as i64))
}

async fn extend(locks: &Locks, args: &[Bytes]) -> Result<Reply, Reply> {
    let (resources, o) = parse(args)?;
    let (Some(owner), Some(ttl), [resource]) = (o.owner, o.ttl, resources.as_slice()) else {
        return Err(Reply::err("ERR LOCK.EXTEND takes one resource, OWNER and TTL"));
    };
    let lease = locks.extend(&owner, resource, ttl).await.map_err(lock_error)?;
    Ok(Reply::Int(lease.token as i64))
}

fn info(locks: &Locks, args: &[Bytes]) -> Result<Reply, Reply> {
    let [resource] = args else {
        return Err(Reply::err("ERR wrong number of arguments for 'lock.info' command"));
    };
    let resource = text(resource)?;
    let info = locks.info(&resource);
    let mode = |m: Mode| Reply::text(if m == Mode::Shared { "shared" } else { "exclusive" });
    let holders = info
        .holders
        .into_iter()
        .map(|h| {
            Reply::Map(vec![
                (Reply::text("owner"), Reply::text(&h.owner)),
                (Reply::text("token"), Reply::Int(h.token as i64)),
                (Reply::text("mode"), mode(h.mode)),
                (Reply::text("ttl_ms"), Reply::Int(h.ttl_left.as_millis() as i64)),
            ])
        })
        .collect();
    let waiters = info
        .waiters
        .into_iter()
        .map(|(owner, m)| {
            Reply::Map(vec![(Reply::text("owner"), Reply::text(&owner)), (Reply::text("mode"), mode(m))])
        })
        .collect();
    Ok(Reply::Map(vec![
        (Reply::text("resource"), Reply::text(&resource)),
        (Reply::text("holders"), Reply::Array(holders)),
        (Reply::text("waiters"), Reply::Array(waiters)),
    ]))
}
