//! The stream block's key layout in its keyspace `stream` (see `docs/format/stream.md`).

use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Result, errcorrupt};

const TOPIC: u8 = 0x01;
const OFFSET: u8 = 0x02;
const PRODUCER_ID: u8 = 0x03;
const VIEW: u8 = 0x04;
const VIEW_STATE: u8 = 0x05;
const VIEW_OPEN: u8 = 0x06;
const VIEW_RESULT: u8 = 0x07;

pub(crate) fn topic(name: &str) -> Vec<u8> {
    KeyBuf::new().tag(TOPIC).str(name).finish()
}

pub(crate) fn topics() -> Vec<u8> {
    vec![TOPIC]
}

pub(crate) fn offset(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    KeyBuf::new().tag(OFFSET).str(group).str(topic).i64(partition.into()).finish()
}

pub(crate) fn group_offsets(group: &str) -> Vec<u8> {
    KeyBuf::new().tag(OFFSET).str(group).finish()
}

pub(crate) fn all_offsets() -> Vec<u8> {
    vec![OFFSET]
}

/// (group, topic, partition) of an offset key.
pub(crate) fn decode_offset(key: &[u8]) -> Result<(String, String, i32)> {
    let mut dec = Decoder::new(key);
    match dec.tag()? {
        OFFSET => Ok((dec.string()?, dec.string()?, dec.i64()? as i32)),
        tag => Err(errcorrupt!("not a stream offset key (tag {tag:#04x})")),
    }
}

pub(crate) fn producer_id() -> Vec<u8> {
    vec![PRODUCER_ID]
}

pub(crate) fn view(name: &str) -> Vec<u8> {
    KeyBuf::new().tag(VIEW).str(name).finish()
}

pub(crate) fn views() -> Vec<u8> {
    vec![VIEW]
}

/// A view's read positions and watermark.
pub(crate) fn view_state(name: &str) -> Vec<u8> {
    KeyBuf::new().tag(VIEW_STATE).str(name).finish()
}

/// A window still collecting events: (view, key, window start).
pub(crate) fn view_open(name: &str, key: &str, start: i64) -> Vec<u8> {
    KeyBuf::new().tag(VIEW_OPEN).str(name).str(key).i64(start).finish()
}

pub(crate) fn view_opens(name: &str) -> Vec<u8> {
    KeyBuf::new().tag(VIEW_OPEN).str(name).finish()
}

/// A closed window's final result: (view, key, window start).
pub(crate) fn view_result(name: &str, key: &str, start: i64) -> Vec<u8> {
    KeyBuf::new().tag(VIEW_RESULT).str(name).str(key).i64(start).finish()
}

pub(crate) fn view_results(name: &str, key: Option<&str>) -> Vec<u8> {
    let buf = KeyBuf::new().tag(VIEW_RESULT).str(name);
    match key {
        Some(key) => buf.str(key).finish(),
        None => buf.finish(),
    }
}
