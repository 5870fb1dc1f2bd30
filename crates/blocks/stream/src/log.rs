//! One partition's log: segment files named by their base offset
//! (`<base offset, 20 digits>.log`) holding record batches exactly as Kafka's wire carries
//! them, so a fetch is a `pread` of a byte range. Each segment keeps an in-memory index with
//! one entry per batch (offsets, file position, max timestamp), rebuilt at open by walking
//! the batch headers; the tail segment's batches are CRC-checked and the file cut at the
//! first torn one. Idempotent-producer state is rebuilt from the same headers.
//!
//! Appends write at the end of the active segment under the partition's lock; making them
//! durable (fdatasync, group-committed across partitions) is [`crate::syncer`]'s job.

use crate::StreamError;
use crate::batch::{self, BatchHeader, HEADER_LEN};
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Sequence windows remembered per producer, as Kafka does: a producer has at most five
/// requests in flight, so a retry is always one of the last five batches.
const PRODUCER_WINDOW: usize = 5;

/// One batch in a segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub base: i64,
    pub last: i64,
    pub pos: u64,
    pub len: u32,
    pub max_ts: i64,
}

pub(crate) struct Segment {
    pub base: i64,
    pub path: PathBuf,
    pub file: Arc<File>,
    pub size: u64,
    pub entries: Vec<Entry>,
    /// When the first batch was appended (for `segment.ms`), in the clock's milliseconds.
    pub opened_ms: i64,
}

impl Segment {
    pub fn max_ts(&self) -> i64 {
        self.entries.iter().map(|e| e.max_ts).max().unwrap_or(-1)
    }
}

#[derive(Default)]
struct ProducerState {
    epoch: i16,
    /// (first sequence, last sequence, base offset) of the latest batches.
    recent: VecDeque<(i32, i32, i64)>,
}

/// A byte range of one segment to send to a consumer.
pub struct Slice {
    pub file: Arc<File>,
    pub pos: u64,
    pub len: usize,
}

impl Slice {
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0; self.len];
        self.file.read_exact_at(&mut buf, self.pos)?;
        Ok(buf)
    }
}

/// What an append did.
pub(crate) enum Appended {
    /// Written at `base`; durable once `file` is synced.
    Written { base: i64, end: i64, file: Arc<File> },
    /// A retry of batches already in the log at `base`.
    Duplicate { base: i64 },
}

pub(crate) struct Log {
    dir: PathBuf,
    segments: Vec<Segment>,
    next_offset: i64,
    log_start: i64,
    producers: HashMap<i64, ProducerState>,
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn open_segment_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering the tail after a crash.
    pub fn open(dir: &Path, now_ms: i64) -> Result<Log, StreamError> {
        fs::create_dir_all(dir)?;
        let mut bases: Vec<i64> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log")
                && let Ok(base) = stem.parse::<i64>()
            {
                bases.push(base);
            } else if name.ends_with(".cleaned") {
                // A compaction that did not finish: the original segment is still whole.
                fs::remove_file(dir.join(&*name))?;
            }
        }
        bases.sort_unstable();
        let mut log = Log {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            next_offset: 0,
            log_start: 0,
            producers: HashMap::new(),
        };
        let count = bases.len();
        for (i, base) in bases.into_iter().enumerate() {
            let is_tail = i + 1 == count;
            let segment = log.recover_segment(base, is_tail, now_ms)?;
            if let Some(last) = segment.entries.last() {
                log.next_offset = last.last + 1;
            } else {
                log.next_offset = log.next_offset.max(base);
            }
            log.segments.push(segment);
        }
        if log.segments.is_empty() {
            let segment = log.new_segment(0, now_ms)?;
            log.segments.push(segment);
        } else {
            // What survived the crash is in the file; make it durable before serving it.
            log.active().file.sync_data()?;
        }
        log.log_start = log.segments[0].entries.first().map_or(log.segments[0].base, |e| e.base);
        Ok(log)
    }

    fn recover_segment(&mut self, base: i64, is_tail: bool, now_ms: i64) -> Result<Segment, StreamError> {
        let path = segment_path(&self.dir, base);
        let file = open_segment_file(&path)?;
        let file_len = file.metadata()?.len();
        let mut entries = Vec::new();
        let mut pos = 0u64;
        let mut header_buf = [0u8; HEADER_LEN];
        let mut batch_buf = Vec::new();
        while pos + HEADER_LEN as u64 <= file_len {
            file.read_exact_at(&mut header_buf, pos)?;
            let Ok(header) = batch::parse_header(&header_buf) else { break };
            if pos + header.len as u64 > file_len {
                break;
            }
            if is_tail {
                batch_buf.resize(header.len, 0);
                file.read_exact_at(&mut batch_buf, pos)?;
                if !batch::crc_ok(&batch_buf) {
                    break;
                }
            }
            self.remember_producer(&header);
            entries.push(Entry {
                base: header.base_offset,
                last: header.last_offset(),
                pos,
                len: header.len as u32,
                max_ts: header.max_timestamp,
            });
            pos += header.len as u64;
        }
        if pos < file_len {
            tracing::warn!(path = %path.display(), kept = pos, dropped = file_len - pos, "cutting a torn tail off a stream segment");
            file.set_len(pos)?;
            file.sync_all()?;
        }
        Ok(Segment { base, path, file: Arc::new(file), size: pos, entries, opened_ms: now_ms })
    }

    fn new_segment(&self, base: i64, now_ms: i64) -> Result<Segment, StreamError> {
        let path = segment_path(&self.dir, base);
        let file = open_segment_file(&path)?;
        file.set_len(0)?;
        sync_dir(&self.dir)?;
        Ok(Segment { base, path, file: Arc::new(file), size: 0, entries: Vec::new(), opened_ms: now_ms })
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has an active segment")
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    #[cfg(test)]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn remember_producer(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return;
        }
        let state = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch != state.epoch {
            state.epoch = header.producer_epoch;
            state.recent.clear();
        }
        let last_seq = header.base_sequence.wrapping_add(header.last_offset_delta);
        state.recent.push_back((header.base_sequence, last_seq, header.base_offset));
        if state.recent.len() > PRODUCER_WINDOW {
            state.recent.pop_front();
        }
    }

    /// Checks an idempotent batch against its producer's recent sequences: `Ok(Some(base))`
    /// for a retry of a batch already in the log, `Ok(None)` for the next batch.
    fn check_sequence(&self, header: &BatchHeader) -> Result<Option<i64>, StreamError> {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return Ok(None);
        }
        let Some(state) = self.producers.get(&header.producer_id) else {
            return Ok(None);
        };
        if header.producer_epoch < state.epoch {
            return Err(StreamError::ProducerFenced);
        }
        if header.producer_epoch > state.epoch {
            return if header.base_sequence == 0 { Ok(None) } else { Err(StreamError::OutOfOrderSequence) };
        }
        if let Some(&(_, _, base)) = state.recent.iter().find(|(first, _, _)| *first == header.base_sequence)
        {
            return Ok(Some(base));
        }
        let expected = state.recent.back().map_or(0, |(_, last, _)| last.wrapping_add(1));
        if header.base_sequence != expected {
            return Err(StreamError::OutOfOrderSequence);
        }
        Ok(None)
    }

    /// Appends validated batches (`headers` describes `bytes`), assigning offsets.
    pub fn append(
        &mut self,
        bytes: &mut [u8],
        headers: &[BatchHeader],
        now_ms: i64,
        roll: &RollPolicy,
    ) -> Result<Appended, StreamError> {
        if let Some(base) = self.check_sequence(&headers[0])? {
            return Ok(Appended::Duplicate { base });
        }
        for header in &headers[1..] {
            self.check_sequence(header)?;
        }
        let active = self.active();
        let age = now_ms - active.opened_ms;
        if !active.entries.is_empty()
            && (active.size + bytes.len() as u64 > roll.segment_bytes || age >= roll.segment_ms)
        {
            self.roll(now_ms)?;
        }
        let base = self.next_offset;
        let mut at = 0;
        let mut offset = base;
        let mut new_entries = Vec::with_capacity(headers.len());
        let start_pos = self.active().size;
        for header in headers {
            let batch_bytes = &mut bytes[at..at + header.len];
            batch::set_base_offset(batch_bytes, offset);
            let max_ts = if roll.log_append_time {
                batch::set_log_append_time(batch_bytes, now_ms);
                now_ms
            } else {
                header.max_timestamp
            };
            new_entries.push(Entry {
                base: offset,
                last: offset + i64::from(header.last_offset_delta),
                pos: start_pos + at as u64,
                len: header.len as u32,
                max_ts,
            });
            offset += i64::from(header.record_count);
            at += header.len;
        }
        let active = self.segments.last_mut().expect("active segment");
        if let Err(err) = active.file.write_all_at(bytes, start_pos) {
            // Leave no partial batch behind for the next append to follow.
            let _ = active.file.set_len(start_pos);
            return Err(err.into());
        }
        active.size += bytes.len() as u64;
        let file = active.file.clone();
        for (header, entry) in headers.iter().zip(&new_entries) {
            self.remember_producer(&BatchHeader { base_offset: entry.base, ..*header });
        }
        self.segments.last_mut().expect("active segment").entries.extend(new_entries);
        self.next_offset = offset;
        Ok(Appended::Written { base, end: offset, file })
    }

    fn roll(&mut self, now_ms: i64) -> Result<(), StreamError> {
        // The old segment's unsynced tail is synced by whoever waits on it (the syncer holds
        // its file); the new one must exist durably before batches land in it.
        let segment = self.new_segment(self.next_offset, now_ms)?;
        self.segments.push(segment);
        Ok(())
    }

    /// The batches from the one holding `offset` up to `visible_end` (exclusive), at most
    /// `max_bytes` but always at least one whole batch.
    pub fn read(
        &self,
        offset: i64,
        visible_end: i64,
        max_bytes: usize,
    ) -> Result<Option<Slice>, StreamError> {
        if offset < self.log_start || offset > visible_end {
            return Err(StreamError::OffsetOutOfRange { offset, start: self.log_start, end: visible_end });
        }
        if offset == visible_end {
            return Ok(None);
        }
        let first_segment = self.segments.partition_point(|s| s.base <= offset).saturating_sub(1);
        for segment in &self.segments[first_segment..] {
            let i = segment.entries.partition_point(|e| e.last < offset);
            let Some(first) = segment.entries.get(i) else { continue };
            if first.base >= visible_end {
                return Ok(None);
            }
            let mut len = first.len as usize;
            for entry in &segment.entries[i + 1..] {
                if entry.base >= visible_end || len + entry.len as usize > max_bytes {
                    break;
                }
                len += entry.len as usize;
            }
            return Ok(Some(Slice { file: segment.file.clone(), pos: first.pos, len }));
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is at least `ts`, as (base offset, slice of it).
    pub fn batch_at_time(&self, ts: i64, visible_end: i64) -> Option<(i64, Slice)> {
        self.segments.iter().flat_map(|s| s.entries.iter().map(move |e| (s, e))).find_map(|(s, e)| {
            (e.max_ts >= ts && e.base < visible_end)
                .then(|| (e.base, Slice { file: s.file.clone(), pos: e.pos, len: e.len as usize }))
        })
    }

    /// The batch holding the largest timestamp, as (max timestamp, slice).
    pub fn batch_with_max_time(&self, visible_end: i64) -> Option<(i64, Slice)> {
        self.segments
            .iter()
            .flat_map(|s| s.entries.iter().map(move |e| (s, e)))
            .filter(|(_, e)| e.base < visible_end)
            .max_by_key(|(_, e)| (e.max_ts, std::cmp::Reverse(e.base)))
            .map(|(s, e)| (e.max_ts, Slice { file: s.file.clone(), pos: e.pos, len: e.len as usize }))
    }

    /// Deletes whole old segments past the retention limits (`None` means unlimited); an idle
    /// active segment that is entirely past `retention_ms` is rolled first so it can go too.
    /// Returns how many segments were deleted.
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        retention_ms: Option<i64>,
        retention_bytes: Option<u64>,
    ) -> Result<usize, StreamError> {
        if let Some(ms) = retention_ms {
            let active = self.active();
            if !active.entries.is_empty() && active.max_ts() < now_ms - ms {
                self.roll(now_ms)?;
            }
        }
        let mut total = self.size_bytes();
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            let expired = retention_ms.is_some_and(|ms| oldest.max_ts() < now_ms - ms);
            let oversize = retention_bytes.is_some_and(|limit| total - oldest.size >= limit);
            if !(expired || oversize) {
                break;
            }
            let oldest = self.segments.remove(0);
            total -= oldest.size;
            fs::remove_file(&oldest.path)?;
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
            let first = &self.segments[0];
            self.log_start = self.log_start.max(first.entries.first().map_or(first.base, |e| e.base));
        }
        Ok(deleted)
    }

    /// The closed segments (all but the active one), oldest first, for compaction.
    pub fn closed_segments(&self) -> &[Segment] {
        &self.segments[..self.segments.len() - 1]
    }

    /// All segments' batches up to `visible_end`, for compaction's key scan and replay.
    pub fn slices(&self, from: i64, visible_end: i64) -> Vec<(i64, Slice)> {
        self.segments
            .iter()
            .flat_map(|s| s.entries.iter().map(move |e| (s, e)))
            .filter(|(_, e)| e.last >= from && e.base < visible_end)
            .map(|(s, e)| (e.base, Slice { file: s.file.clone(), pos: e.pos, len: e.len as usize }))
            .collect()
    }

    /// Swaps closed segment `base` for its compacted rewrite at `cleaned` (already synced),
    /// described by `entries`.
    pub fn replace_segment(
        &mut self,
        base: i64,
        cleaned: &Path,
        entries: Vec<Entry>,
    ) -> Result<(), StreamError> {
        let Some(i) = self.segments.iter().position(|s| s.base == base) else { return Ok(()) };
        if i + 1 == self.segments.len() {
            return Ok(());
        }
        let path = self.segments[i].path.clone();
        fs::rename(cleaned, &path)?;
        sync_dir(&self.dir)?;
        let file = open_segment_file(&path)?;
        let size = entries.last().map_or(0, |e| e.pos + u64::from(e.len));
        let segment = &mut self.segments[i];
        segment.file = Arc::new(file);
        segment.size = size;
        segment.entries = entries;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// When the active segment is closed and a new one started, and how timestamps are set.
pub(crate) struct RollPolicy {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub log_append_time: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::encode;
    use kafka_protocol::records::Compression;

    const ROLL: RollPolicy = RollPolicy { segment_bytes: 4096, segment_ms: i64::MAX, log_append_time: false };

    fn append(log: &mut Log, n: usize) -> i64 {
        let mut bytes = encode(n, Compression::None);
        let headers = batch::validate(&bytes, 1 << 20).unwrap();
        match log.append(&mut bytes, &headers, 0, &ROLL).unwrap() {
            Appended::Written { base, .. } => base,
            Appended::Duplicate { .. } => panic!("not a duplicate"),
        }
    }

    #[test]
    fn appends_roll_segments_and_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), 0).unwrap();
        for i in 0..20 {
            assert_eq!(append(&mut log, 5), i * 5);
        }
        assert!(log.segment_count() > 1, "4 KiB segments roll");
        drop(log);
        let log = Log::open(dir.path(), 0).unwrap();
        assert_eq!(log.next_offset(), 100);
        let slice = log.read(42, 100, 1).unwrap().unwrap();
        let header = batch::parse_header(&slice.read().unwrap()).unwrap();
        assert_eq!(header.base_offset, 40);
        assert!(log.read(101, 100, 1).is_err());
        assert!(log.read(100, 100, 1).unwrap().is_none());
    }

    #[test]
    fn a_torn_tail_is_cut_at_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), 0).unwrap();
        append(&mut log, 3);
        append(&mut log, 3);
        let path = log.active().path.clone();
        drop(log);
        let len = fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 7).unwrap();
        let log = Log::open(dir.path(), 0).unwrap();
        assert_eq!(log.next_offset(), 3);
    }

    #[test]
    fn retention_by_size_drops_whole_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), 0).unwrap();
        for _ in 0..40 {
            append(&mut log, 5);
        }
        let before = log.segment_count();
        let deleted = log.enforce_retention(0, None, Some(5000)).unwrap();
        assert!(deleted > 0 && log.segment_count() == before - deleted);
        assert!(log.size_bytes() >= 5000 && log.log_start() > 0);
        assert!(log.read(0, log.next_offset(), 1).is_err());
    }
}
