//! The latency monitor behind LATENCY LATEST, HISTORY, RESET and DOCTOR, as Redis keeps it:
//! when `latency-monitor-threshold` (milliseconds; 0, the default, turns it off) is set, a
//! command that ran at least that long is a sample of the event `command`, or of
//! `fast-command` for commands flagged fast. Each event keeps its worst latency ever and its
//! last 160 samples, one per second (the worst of that second).
//!
//! The samples come from the same timing as the slow log ([`crate::slowlog`]). Not kept:
//! Redis's other events (fork, AOF, expire and eviction cycles); GRAPH and HISTOGRAM.

use crate::reply::{Reply, errors};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// Samples kept per event (Redis's LATENCY_TS_LEN).
const SAMPLES: usize = 160;

#[derive(Default)]
struct Series {
    /// (unix seconds, milliseconds), oldest first.
    samples: VecDeque<(u64, u64)>,
    max: u64,
}

#[derive(Default)]
pub struct Latency {
    threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<&'static str, Series>>,
}

impl Latency {
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    pub fn set_threshold_ms(&self, ms: u64) {
        self.threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// Records a command that ran `micros`, if the monitor is on and it ran long enough.
    pub fn command(&self, fast: bool, micros: u64, now_secs: u64) {
        let threshold = self.threshold_ms();
        let ms = micros / 1000;
        if threshold > 0 && ms >= threshold {
            self.add(if fast { "fast-command" } else { "command" }, ms, now_secs);
        }
    }

    fn add(&self, event: &'static str, ms: u64, now: u64) {
        let mut events = self.events.lock();
        let series = events.entry(event).or_default();
        series.max = series.max.max(ms);
        match series.samples.back_mut() {
            Some(last) if last.0 == now => last.1 = last.1.max(ms),
            _ => {
                if series.samples.len() == SAMPLES {
                    series.samples.pop_front();
                }
                series.samples.push_back((now, ms));
            }
        }
    }

    /// LATENCY LATEST | HISTORY event | RESET [event ...] | DOCTOR | HELP
    pub fn run(&self, args: &[Bytes]) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let mut events = self.events.lock();
        match (sub.as_str(), args.len()) {
            ("latest", 2) => Reply::Array(
                events
                    .iter()
                    .filter_map(|(name, s)| {
                        let (at, ms) = *s.samples.back()?;
                        Some(Reply::Array(vec![
                            Reply::text(name),
                            Reply::Int(at as i64),
                            Reply::Int(ms as i64),
                            Reply::Int(s.max as i64),
                        ]))
                    })
                    .collect(),
            ),
            ("history", 3) => {
                let name = String::from_utf8_lossy(&args[2]);
                let samples = events.get(name.as_ref()).map(|s| s.samples.iter().collect::<Vec<_>>());
                Reply::Array(
                    samples
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(at, ms)| Reply::Array(vec![Reply::Int(*at as i64), Reply::Int(*ms as i64)]))
                        .collect(),
                )
            }
            ("reset", _) if args.len() == 2 => {
                let n = events.len();
                events.clear();
                Reply::Int(n as i64)
            }
            ("reset", _) => {
                let mut n = 0;
                for name in &args[2..] {
                    n += events.remove(String::from_utf8_lossy(name).as_ref()).is_some() as i64;
                }
                Reply::Int(n)
            }
            ("doctor", 2) => Reply::Verbatim(self.doctor(&events)),
            ("help", 2) => Reply::help(HELP),
            ("graph" | "histogram", _) => Reply::err(format!(
                "ERR LATENCY {} is not supported by this server; LATENCY HISTORY gives the samples",
                sub.to_uppercase()
            )),
            ("latest" | "history" | "doctor" | "help", _) => {
                Reply::err(errors::subcommand_arity("latency", &sub))
            }
            _ => Reply::err(errors::unknown_subcommand("LATENCY", &args[1])),
        }
    }

    /// A report in the spirit of Redis's: each event's spikes, average and worst.
    fn doctor(&self, events: &BTreeMap<&'static str, Series>) -> String {
        if events.is_empty() && self.threshold_ms() == 0 {
            return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. \
                    You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. \
                    If we weren't in a deep space mission I'd suggest to take a look at \
                    https://redis.io/topics/latency-monitor.\n"
                .to_string();
        }
        if events.is_empty() {
            return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the \
                    slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think \
                    things over.\n"
                .to_string();
        }
        let mut out = String::from(
            "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
        );
        for (i, (name, s)) in events.iter().enumerate() {
            let n = s.samples.len() as u64;
            let avg = s.samples.iter().map(|(_, ms)| ms).sum::<u64>() / n.max(1);
            out.push_str(&format!(
                "{}. {name}: {n} latency spikes (average {avg}ms). Worst all time event {}ms.\n",
                i + 1,
                s.max
            ));
        }
        out.push_str("\nCommands that took long show in SLOWLOG GET, with their arguments and clients.\n");
        out
    }
}

const HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HELP",
    "    Prints this help.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_over_the_threshold_one_per_second() {
        let l = Latency::default();
        l.command(false, 900_000, 100);
        assert_eq!(l.run(&crate::words(&["LATENCY", "LATEST"])), Reply::Array(vec![]), "off by default");
        l.set_threshold_ms(100);
        l.command(false, 99_999, 100);
        l.command(false, 150_000, 100);
        l.command(false, 300_000, 100);
        l.command(false, 120_000, 101);
        l.command(true, 200_000, 101);
        let latest = Reply::Array(vec![
            Reply::Array(vec![Reply::text("command"), Reply::Int(101), Reply::Int(120), Reply::Int(300)]),
            Reply::Array(vec![
                Reply::text("fast-command"),
                Reply::Int(101),
                Reply::Int(200),
                Reply::Int(200),
            ]),
        ]);
        assert_eq!(l.run(&crate::words(&["LATENCY", "LATEST"])), latest);
        let history = Reply::Array(vec![
            Reply::Array(vec![Reply::Int(100), Reply::Int(300)]),
            Reply::Array(vec![Reply::Int(101), Reply::Int(120)]),
        ]);
        assert_eq!(l.run(&crate::words(&["LATENCY", "HISTORY", "command"])), history);
        for s in 0..200 {
            l.command(false, 100_000, 1_000 + s);
        }
        let Reply::Array(kept) = l.run(&crate::words(&["LATENCY", "HISTORY", "command"])) else { panic!() };
        assert_eq!(kept.len(), SAMPLES);
        assert_eq!(l.run(&crate::words(&["LATENCY", "RESET", "command", "nope"])), Reply::Int(1));
        assert_eq!(l.run(&crate::words(&["LATENCY", "RESET"])), Reply::Int(1));
    }
}
