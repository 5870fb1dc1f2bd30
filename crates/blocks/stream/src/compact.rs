//! Log compaction for `cleanup.policy=compact` topics: closed segments are rewritten to keep
//! only the latest record of each key (by offset, over the whole durable log), and
//! tombstones older than `delete.retention.ms`. Offsets never change — a compacted log has
//! gaps. A rewrite goes to `<base>.log.cleaned`, is fsynced, and renamed over the segment,
//! so a crash leaves the old or the new segment whole (a stray `.cleaned` file is removed at
//! open). Batches that lose nothing are copied byte for byte.

use crate::StreamError;
use crate::batch;
use crate::log::{Entry, Slice, sync_dir};
use crate::partition::Partition;
use crate::records;
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;

/// A closed segment as compaction reads it.
struct Closed {
    base: i64,
    size: u64,
    batches: Vec<Slice>,
}

/// Compacts the partition's closed segments; returns the bytes reclaimed.
pub(crate) fn compact(
    partition: &Partition,
    delete_retention_ms: i64,
    now_ms: i64,
) -> Result<u64, StreamError> {
    let (closed, all, dir) = {
        let log = partition.log();
        let closed: Vec<Closed> = log
            .closed_segments()
            .iter()
            .map(|s| Closed {
                base: s.base,
                size: s.size,
                batches: s
                    .entries
                    .iter()
                    .map(|e| Slice { file: s.file.clone(), pos: e.pos, len: e.len as usize })
                    .collect(),
            })
            .collect();
        (closed, log.slices(0, partition.high_watermark()), log.dir().to_path_buf())
    };
    if closed.is_empty() {
        return Ok(0);
    }
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for (_, slice) in &all {
        for record in records::decode(slice.read()?)? {
            if let Some(key) = record.key {
                latest.insert(key, record.offset);
            }
        }
    }
    let mut reclaimed = 0;
    for Closed { base, size, batches } in closed {
        let cleaned_path = dir.join(format!("{base:020}.log.cleaned"));
        let mut out = Vec::new();
        let mut entries = Vec::new();
        let mut changed = false;
        for slice in batches {
            let raw = slice.read()?;
            let header = batch::parse_header(&raw)?;
            if header.is_control() {
                changed = true;
                continue;
            }
            let all_records = records::decode(raw.clone())?;
            let count = all_records.len();
            let kept: Vec<_> = all_records
                .into_iter()
                .filter(|r| {
                    let latest_for_key = r.key.as_ref().is_none_or(|k| latest.get(k) == Some(&r.offset));
                    let live_tombstone = r.value.is_some() || r.timestamp >= now_ms - delete_retention_ms;
                    latest_for_key && live_tombstone
                })
                .collect();
            let bytes = if kept.len() == count {
                raw
            } else {
                changed = true;
                if kept.is_empty() {
                    continue;
                }
                records::encode(&kept)?
            };
            let header = batch::parse_header(&bytes)?;
            entries.push(Entry {
                base: header.base_offset,
                last: header.last_offset(),
                pos: out.len() as u64,
                len: bytes.len() as u32,
                max_ts: header.max_timestamp,
            });
            out.extend_from_slice(&bytes);
        }
        if !changed {
            continue;
        }
        let mut file = File::create(&cleaned_path)?;
        file.write_all(&out)?;
        file.sync_all()?;
        drop(file);
        sync_dir(&dir)?;
        partition.log().replace_segment(base, &cleaned_path, entries)?;
        reclaimed += size.saturating_sub(out.len() as u64);
    }
    Ok(reclaimed)
}
