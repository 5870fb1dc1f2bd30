//! The queue block's key layout in its keyspace `queue`; the byte layout and the
//! invariants every operation keeps are in `docs/format/queue.md`.

use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Result, errcorrupt};

const QUEUE: u8 = 0x01;
const MSG: u8 = 0x02;
const READY: u8 = 0x03;
const DEDUP: u8 = 0x04;
const GROUP: u8 = 0x05;
const LOCK: u8 = 0x06;
const STATE: u8 = 0x07;

pub(crate) fn queue(name: &str) -> Vec<u8> {
    KeyBuf::new().tag(QUEUE).str(name).finish()
}

pub(crate) fn queues() -> Vec<u8> {
    vec![QUEUE]
}

pub(crate) fn msg(queue: &str, id: &str) -> Vec<u8> {
    KeyBuf::new().tag(MSG).str(queue).str(id).finish()
}

pub(crate) fn msgs(queue: &str) -> Vec<u8> {
    KeyBuf::new().tag(MSG).str(queue).finish()
}

/// A message's receive state (see `docs/format/queue.md`).
pub(crate) fn state(queue: &str, id: &str) -> Vec<u8> {
    KeyBuf::new().tag(STATE).str(queue).str(id).finish()
}

pub(crate) fn states(queue: &str) -> Vec<u8> {
    KeyBuf::new().tag(STATE).str(queue).finish()
}

pub(crate) fn ready(queue: &str, visible_at_ms: u64, seq: u64, id: &str) -> Vec<u8> {
    KeyBuf::new().tag(READY).str(queue).u64(visible_at_ms).u64(seq).str(id).finish()
}

/// Every ready entry of a queue.
pub(crate) fn readies(queue: &str) -> Vec<u8> {
    KeyBuf::new().tag(READY).str(queue).finish()
}

/// The first ready key of a queue after time `ms`.
pub(crate) fn ready_after(queue: &str, ms: u64) -> Vec<u8> {
    KeyBuf::new().tag(READY).str(queue).u64(ms + 1).finish()
}

pub(crate) fn decode_ready(bytes: &[u8]) -> Result<(u64, u64, String)> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        READY => {
            dec.string()?;
            Ok((dec.u64()?, dec.u64()?, dec.string()?))
        }
        tag => Err(errcorrupt!("not a queue ready key (tag {tag:#04x})")),
    }
}

pub(crate) fn dedup(queue: &str, dedup_id: &str) -> Vec<u8> {
    KeyBuf::new().tag(DEDUP).str(queue).str(dedup_id).finish()
}

pub(crate) fn dedups(queue: &str) -> Vec<u8> {
    KeyBuf::new().tag(DEDUP).str(queue).finish()
}

pub(crate) fn group(queue: &str, group: &str, seq: u64, id: &str) -> Vec<u8> {
    KeyBuf::new().tag(GROUP).str(queue).str(group).u64(seq).str(id).finish()
}

/// The entries of one group, in send order.
pub(crate) fn group_members(queue: &str, group: &str) -> Vec<u8> {
    KeyBuf::new().tag(GROUP).str(queue).str(group).finish()
}

pub(crate) fn groups(queue: &str) -> Vec<u8> {
    KeyBuf::new().tag(GROUP).str(queue).finish()
}

pub(crate) fn decode_group(bytes: &[u8]) -> Result<(String, u64, String)> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        GROUP => {
            dec.string()?;
            Ok((dec.string()?, dec.u64()?, dec.string()?))
        }
        tag => Err(errcorrupt!("not a queue group key (tag {tag:#04x})")),
    }
}

pub(crate) fn lock(queue: &str, group: &str) -> Vec<u8> {
    KeyBuf::new().tag(LOCK).str(queue).str(group).finish()
}

pub(crate) fn locks(queue: &str) -> Vec<u8> {
    KeyBuf::new().tag(LOCK).str(queue).finish()
}

pub(crate) fn decode_name(bytes: &[u8]) -> Result<String> {
    let mut dec = Decoder::new(bytes);
    match dec.tag()? {
        QUEUE => dec.string(),
        tag => Err(errcorrupt!("not a queue key (tag {tag:#04x})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_order() {
        assert!(queue("q").starts_with(&queues()));
        assert!(msg("q", "m").starts_with(&msgs("q")));
        assert!(!msg("qq", "m").starts_with(&msgs("q")));
        assert!(state("q", "m").starts_with(&states("q")) && !state("qq", "m").starts_with(&states("q")));
        let early = ready("q", 5, 9, "b");
        let late = ready("q", 6, 1, "a");
        assert!(early < late && early.starts_with(&readies("q")));
        assert!(ready_after("q", 5) > early && ready_after("q", 5) < late);
        assert_eq!(decode_ready(&early).unwrap(), (5, 9, "b".into()));
        let first = group("q", "g", 1, "x");
        assert!(first < group("q", "g", 2, "a") && first.starts_with(&group_members("q", "g")));
        assert!(!group("q", "gg", 1, "x").starts_with(&group_members("q", "g")));
        assert!(first.starts_with(&groups("q")) && lock("q", "g").starts_with(&locks("q")));
        assert_eq!(decode_group(&first).unwrap(), ("g".into(), 1, "x".into()));
        assert!(dedup("q", "d").starts_with(&dedups("q")));
        assert_eq!(decode_name(&queue("orders")).unwrap(), "orders");
    }
}
