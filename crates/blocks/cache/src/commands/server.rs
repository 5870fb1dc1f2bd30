//! Server commands that need nothing but the keyspace: ECHO, TIME, LASTSAVE, SAVE, ROLE, WAIT
//! (no replicas: 0 at once), and the text of INFO.

use super::{CmdResult, Ctx};
use crate::keyspace::Keyspace;
use crate::reply::Reply;
use bytes::Bytes;
use std::fmt::Write;

pub fn echo(_ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(args[1].clone()))
}

pub fn time(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(ctx.ks.now() * 1000);
    Ok(Reply::Array(vec![
        Reply::bulk(Bytes::from((micros / 1_000_000).to_string())),
        Reply::bulk(Bytes::from((micros % 1_000_000).to_string())),
    ]))
}

pub fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int((ctx.ks.now() / 1000) as i64))
}

/// SAVE and BGSAVE: with persistence on, every write is already durable when acknowledged,
/// so there is nothing to do; without it there is nowhere to save to.
pub fn save(_ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if super::eq(&args[0], "bgsave") { Ok(Reply::status("Background saving started")) } else { Ok(Reply::OK) }
}

/// What INFO's sections report beyond the keyspace.
pub struct ServerFacts {
    pub version: &'static str,
    pub tcp_port: u16,
    pub uptime_secs: u64,
    pub connected_clients: usize,
    pub blocked_clients: usize,
    pub total_connections: u64,
    pub total_commands: u64,
    pub pubsub_channels: usize,
    pub pubsub_patterns: usize,
    pub persistence: &'static str,
}

/// The text of INFO for the requested sections (`None` = the default set).
pub fn info_text(ks: &Keyspace, facts: &ServerFacts, section: Option<&str>) -> String {
    let wanted = |name: &str| match section {
        None => true,
        Some(s) => s == "all" || s == "everything" || s == "default" || s == name,
    };
    let mut out = String::new();
    if wanted("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:10\r\nexecutable:strata\r\nserver_name:strata\r\n\r\n",
            facts.version,
            std::env::consts::OS,
            std::process::id(),
            facts.tcp_port,
            facts.uptime_secs,
            facts.uptime_secs / 86_400
        );
    }
    if wanted("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\nmaxclients:10000\r\n\r\n",
            facts.connected_clients, facts.blocked_clients
        );
    }
    if wanted("memory") {
        let used = ks.used_memory();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:rust\r\n\r\n",
            human(used),
            ks.settings.maxmemory,
            human(ks.settings.maxmemory),
            ks.settings.policy.name()
        );
    }
    if wanted("persistence") {
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\naof_enabled:{}\r\nrdb_changes_since_last_save:0\r\nstrata_persistence:{}\r\n\r\n",
            (facts.persistence == "log") as u8,
            facts.persistence
        );
    }
    if wanted("stats") {
        let s = &ks.stats;
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\n\r\n",
            facts.total_connections,
            facts.total_commands,
            s.expired,
            s.evicted,
            s.hits,
            s.misses,
            facts.pubsub_channels,
            facts.pubsub_patterns
        );
    }
    if wanted("replication") {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if wanted("keyspace") {
        out.push_str("# Keyspace\r\n");
        for db in 0..ks.databases() {
            if !ks.is_empty(db) {
                let _ =
                    write!(out, "db{db}:keys={},expires={},avg_ttl=0\r\n", ks.len(db), ks.volatile_len(db));
            }
        }
        out.push_str("\r\n");
    }
    out
}

fn human(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2}M", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else {
        format!("{bytes}B")
    }
}

/// ROLE: a primary without replicas (Strata does not replicate the cache).
pub fn role(_: &mut Ctx, _: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(vec![Reply::text("master"), Reply::Int(0), Reply::Array(Vec::new())]))
}

/// WAIT numreplicas timeout: with no replicas, Redis answers 0 at once; so does Strata.
pub fn wait(_: &mut Ctx, args: &[Bytes]) -> CmdResult {
    super::int(&args[1])?;
    if super::int(&args[2])? < 0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok(Reply::Int(0))
}
