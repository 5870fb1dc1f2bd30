//! SLOWLOG: the commands that ran for at least `slowlog-log-slower-than` microseconds,
//! newest first, at most `slowlog-max-len` of them, kept and answered as Redis keeps them.
//!
//! A command's time is its execution under the keyspace lock (or its script's run), not
//! the time it waited for the lock or spent on the network, as Redis times `call()`. Only
//! keyspace commands (those of MULTI/EXEC one by one) and scripts are timed; server
//! commands (CONFIG, CLIENT, INFO, SLOWLOG itself) and the blocking forms are not. The
//! check is one atomic load, so the log costs nothing until a command is slow.

use crate::reply::{Reply, errors};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Arguments kept per entry; the last one kept says how many more there were.
const MAX_ARGS: usize = 32;
/// Bytes kept per argument; the rest is summarised.
const MAX_ARG_BYTES: usize = 128;

struct Entry {
    id: u64,
    /// Unix seconds when the command ran.
    at: u64,
    micros: u64,
    args: Vec<Bytes>,
    addr: String,
    name: String,
}

pub struct SlowLog {
    /// Microseconds; negative turns the log off, 0 logs every command.
    slower_than: AtomicI64,
    max_len: AtomicUsize,
    next_id: AtomicU64,
    /// Newest first.
    entries: Mutex<VecDeque<Entry>>,
}

impl Default for SlowLog {
    /// Redis's defaults: 10 ms, 128 entries.
    fn default() -> SlowLog {
        SlowLog {
            slower_than: AtomicI64::new(10_000),
            max_len: AtomicUsize::new(128),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }
}

impl SlowLog {
    /// Whether a command that ran `micros` belongs in the log.
    pub fn is_slow(&self, micros: u64) -> bool {
        let threshold = self.slower_than.load(Ordering::Relaxed);
        threshold >= 0 && micros >= threshold as u64
    }

    /// Adds a command that [`SlowLog::is_slow`] picked.
    pub fn push(&self, args: &[Bytes], micros: u64, at: u64, addr: &str, name: &str) {
        let mut kept: Vec<Bytes> = args.iter().take(MAX_ARGS).map(trimmed).collect();
        if args.len() > MAX_ARGS {
            kept[MAX_ARGS - 1] = Bytes::from(format!("... ({} more arguments)", args.len() - MAX_ARGS + 1));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Entry { id, at, micros, args: kept, addr: addr.to_string(), name: name.to_string() };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(self.max_len.load(Ordering::Relaxed));
    }

    pub fn slower_than(&self) -> i64 {
        self.slower_than.load(Ordering::Relaxed)
    }

    pub fn set_slower_than(&self, micros: i64) {
        self.slower_than.store(micros, Ordering::Relaxed);
    }

    pub fn max_len(&self) -> usize {
        self.max_len.load(Ordering::Relaxed)
    }

    pub fn set_max_len(&self, len: usize) {
        self.max_len.store(len, Ordering::Relaxed);
        self.entries.lock().truncate(len);
    }

    /// SLOWLOG GET [count] | LEN | RESET | HELP
    pub fn command(&self, args: &[Bytes]) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        match (sub.as_str(), args.len()) {
            ("get", 2 | 3) => {
                let count = match args
                    .get(2)
                    .map(|c| std::str::from_utf8(c).ok().and_then(|c| c.parse::<i64>().ok()))
                {
                    None => 10,
                    Some(Some(-1)) => usize::MAX,
                    Some(Some(n)) if n >= 0 => n as usize,
                    Some(_) => return Reply::err("ERR count should be greater than or equal to -1"),
                };
                let entries = self.entries.lock();
                Reply::Array(
                    entries
                        .iter()
                        .take(count)
                        .map(|e| {
                            Reply::Array(vec![
                                Reply::Int(e.id as i64),
                                Reply::Int(e.at as i64),
                                Reply::Int(e.micros as i64),
                                Reply::bulks(e.args.iter().cloned()),
                                Reply::text(&e.addr),
                                Reply::text(&e.name),
                            ])
                        })
                        .collect(),
                )
            }
            ("len", 2) => Reply::Int(self.entries.lock().len() as i64),
            ("reset", 2) => {
                self.entries.lock().clear();
                Reply::OK
            }
            ("help", 2) => Reply::help(HELP),
            ("get" | "len" | "reset" | "help", _) => Reply::err(errors::subcommand_arity("slowlog", &sub)),
            _ => Reply::err(errors::unknown_subcommand("SLOWLOG", &args[1])),
        }
    }
}

/// An argument as the log keeps it: at most [`MAX_ARG_BYTES`], and how many more there were.
fn trimmed(arg: &Bytes) -> Bytes {
    if arg.len() <= MAX_ARG_BYTES {
        return arg.clone();
    }
    let mut out = arg[..MAX_ARG_BYTES].to_vec();
    out.extend_from_slice(format!("... ({} more bytes)", arg.len() - MAX_ARG_BYTES).as_bytes());
    Bytes::from(out)
}

const HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_trims_long_commands() {
        let log = SlowLog::default();
        assert!(!log.is_slow(9_999) && log.is_slow(10_000));
        log.set_max_len(2);
        for i in 0..3 {
            log.push(&crate::words(&["SET", &format!("k{i}"), "v"]), 20_000, 1, "127.0.0.1:1", "");
        }
        let got = log.command(&crate::words(&["SLOWLOG", "GET"]));
        let Reply::Array(entries) = got else { panic!("{got:?}") };
        assert_eq!(entries.len(), 2);
        let Reply::Array(first) = &entries[0] else { panic!() };
        assert_eq!(first[0], Reply::Int(2), "newest first");
        let long: Vec<String> = (0..40).map(|i| "x".repeat(if i == 1 { 200 } else { 1 })).collect();
        log.push(&crate::words(&long.iter().map(String::as_str).collect::<Vec<_>>()), 1, 1, "a", "n");
        let Reply::Array(entries) = log.command(&crate::words(&["SLOWLOG", "GET", "1"])) else { panic!() };
        let Reply::Array(entry) = &entries[0] else { panic!() };
        let Reply::Array(kept) = &entry[3] else { panic!() };
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[31], Reply::text("... (9 more arguments)"));
        assert_eq!(kept[1], Reply::Bulk(Bytes::from(format!("{}... (72 more bytes)", "x".repeat(128)))));
        log.set_slower_than(-1);
        assert!(!log.is_slow(u64::MAX), "a negative threshold turns the log off");
    }
}
