//! The stream type behind XADD and its family: entries in ID order ([`entries`]), and the
//! consumer groups that read them, each with its pending-entries list (PEL) and consumers,
//! as Redis keeps them.
//!
//! The group bookkeeping (`entries-read`, lag, tombstones) follows Redis 7.0's `t_stream.c`,
//! so XINFO reports the same numbers.

mod entries;

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use entries::Entries;

/// Bytes charged per pending entry and per group (and consumer) beyond their own bytes.
const PENDING_OVERHEAD: usize = 80;
const GROUP_OVERHEAD: usize = 128;

/// An entry ID: milliseconds and a sequence number within them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The smallest ID greater than this one.
    pub fn next(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(StreamId::new(ms + 1, 0)),
            (ms, seq) => Some(StreamId::new(ms, seq + 1)),
        }
    }

    /// The greatest ID smaller than this one.
    pub fn prev(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(StreamId::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(StreamId::new(ms, seq - 1)),
        }
    }

    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An entry's fields and values, flat: `[field, value, field, value, ...]`.
pub type Fields = Vec<Bytes>;

/// A delivered entry not yet acknowledged.
#[derive(Clone, Debug)]
pub struct Pending {
    pub consumer: Bytes,
    /// Unix milliseconds of the last delivery.
    pub delivered_at: u64,
    pub deliveries: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Consumer {
    /// Unix milliseconds of the consumer's last read or claim.
    pub seen_at: u64,
    /// The IDs of its entries in the group's PEL.
    pub pending: BTreeSet<StreamId>,
}

#[derive(Clone, Debug, Default)]
pub struct Group {
    /// The last entry delivered to the group (`>` reads after it).
    pub last_id: StreamId,
    /// How many entries the group has read, when known (Redis's `entries-read`).
    pub entries_read: Option<u64>,
    pub pel: BTreeMap<StreamId, Pending>,
    /// By name, in Redis's (byte) order.
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> Group {
        Group { last_id, entries_read, ..Group::default() }
    }

    /// The named consumer, created if absent; either way seen now.
    pub fn consumer(&mut self, name: &Bytes, now: u64) -> &mut Consumer {
        let c = self.consumers.entry(name.clone()).or_default();
        c.seen_at = now;
        c
    }

    /// Gives the pending entry `id` to `consumer` (which must exist), taking it from its
    /// previous owner.
    fn assign(&mut self, id: StreamId, consumer: &Bytes, delivered_at: u64, deliveries: u64) {
        let previous = self
            .pel
            .insert(id, Pending { consumer: consumer.clone(), delivered_at, deliveries })
            .map(|p| p.consumer);
        if let Some(previous) = previous.filter(|p| p != consumer)
            && let Some(c) = self.consumers.get_mut(&previous)
        {
            c.pending.remove(&id);
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pending.insert(id);
        }
    }

    /// Drops the pending entry `id`; true if it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(p) => {
                if let Some(c) = self.consumers.get_mut(&p.consumer) {
                    c.pending.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> usize {
        let Some(c) = self.consumers.remove(name) else { return 0 };
        for id in &c.pending {
            self.pel.remove(id);
        }
        c.pending.len()
    }
}

/// How XADD and XTRIM trim.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// XCLAIM's options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClaimOpts {
    pub min_idle: u64,
    /// The delivery time to record (unix ms); now when absent.
    pub delivered_at: Option<u64>,
    pub retry_count: Option<u64>,
    pub force: bool,
    pub just_id: bool,
}

/// What XAUTOCLAIM did: where to go on, what it claimed, and which pending IDs it dropped
/// because their entries were deleted.
pub struct AutoClaim {
    pub cursor: StreamId,
    pub claimed: Vec<(StreamId, Fields)>,
    pub deleted: Vec<StreamId>,
}

#[derive(Clone, Debug, Default)]
pub struct Stream {
    entries: Entries,
    /// The greatest ID ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The greatest ID removed by XDEL (0-0: none).
    pub max_deleted_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// By name, in Redis's (byte) order.
    pub groups: BTreeMap<Bytes, Group>,
}

impl Stream {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// How many nodes hold the entries.
    pub fn nodes(&self) -> usize {
        self.entries.nodes()
    }

    /// Approximate heap bytes held, groups included.
    pub fn mem(&self) -> usize {
        self.entries.mem()
            + self
                .groups
                .iter()
                .map(|(name, g)| {
                    GROUP_OVERHEAD
                        + name.len()
                        + g.pel.len() * PENDING_OVERHEAD
                        + g.consumers.keys().map(|c| c.len() + GROUP_OVERHEAD).sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The first entry's ID, 0-0 when empty (Redis's `recorded-first-entry-id`).
    pub fn first_id(&self) -> StreamId {
        self.entries.first_id().unwrap_or_default()
    }

    /// The last entry's ID (not `last_id`, which deleted entries and XSETID move too).
    pub fn top_id(&self) -> Option<StreamId> {
        self.entries.last_id()
    }

    pub fn first(&self) -> Option<(StreamId, Fields)> {
        self.entries.first()
    }

    pub fn last(&self) -> Option<(StreamId, Fields)> {
        self.entries.last()
    }

    pub fn get(&self, id: StreamId) -> Option<Fields> {
        self.entries.get(id)
    }

    /// The entries from `start` to `end` inclusive, in order (reversed if `rev`), at most
    /// `count` of them (0: all).
    pub fn range(&self, start: StreamId, end: StreamId, count: usize, rev: bool) -> Vec<(StreamId, Fields)> {
        self.entries.range(start, end, count, rev)
    }

    /// The ID `*` gives now: the clock if ahead of the last ID, else the last ID plus one.
    pub fn auto_id(&self, now_ms: u64) -> Option<StreamId> {
        if now_ms > self.last_id.ms { Some(StreamId::new(now_ms, 0)) } else { self.last_id.next() }
    }

    /// The ID `ms-*` gives: the next sequence within `ms` if that is the last ID's time.
    pub fn auto_seq_id(&self, ms: u64) -> Option<StreamId> {
        if ms == self.last_id.ms {
            self.last_id.next().filter(|id| id.ms == ms)
        } else {
            Some(StreamId::new(ms, 0))
        }
    }

    /// Appends an entry; the caller has checked that `id` is greater than `last_id`.
    pub fn append(&mut self, id: StreamId, fields: &[Bytes]) {
        debug_assert!(id > self.last_id);
        self.entries.push(id, fields);
        self.last_id = id;
        self.entries_added += 1;
    }

    /// XDEL of one ID: true if it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let deleted = self.entries.delete(id);
        if deleted && id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        deleted
    }

    /// Removes entries from the head until the strategy holds: exactly, or (`approx`) only
    /// in whole nodes, at most `limit` entries (0: no limit). Returns how many went.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: usize) -> usize {
        self.entries.trim(trim, approx, limit)
    }

    /// Redis's streamEstimateDistanceFromFirstEverEntry: how many entries had been added up
    /// to and including `id`, when that can be known.
    pub fn entries_up_to(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.is_empty() && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        let first = self.first_id();
        if self.max_deleted_id == StreamId::MIN || self.max_deleted_id < first {
            let before_first = self.entries_added - self.len() as u64;
            return match id.cmp(&first) {
                std::cmp::Ordering::Less => Some(before_first),
                std::cmp::Ordering::Equal => Some(before_first + 1),
                std::cmp::Ordering::Greater => None,
            };
        }
        None
    }

    /// Whether an XDEL tombstone lies at or after `from` (Redis's streamRangeHasTombstones
    /// with an open end).
    fn tombstones_from(&self, from: StreamId) -> bool {
        !self.is_empty()
            && self.max_deleted_id != StreamId::MIN
            && self.first_id() <= self.max_deleted_id
            && from <= self.max_deleted_id
    }

    /// A group's lag: entries added and not yet read by it, when that can be known.
    pub fn lag(&self, group: &Group) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if let Some(read) = group.entries_read
            && !self.tombstones_from(group.last_id)
        {
            return Some(self.entries_added.saturating_sub(read));
        }
        self.entries_up_to(group.last_id).map(|read| self.entries_added.saturating_sub(read))
    }

    /// XREADGROUP with `>`: the entries after the group's last delivered one, at most `count`
    /// (0: all), recorded as delivered to `consumer` (and pending unless `noack`). None when
    /// the group does not exist.
    pub fn read_new(
        &mut self,
        group: &[u8],
        consumer: &Bytes,
        count: usize,
        noack: bool,
        now: u64,
    ) -> Option<Vec<(StreamId, Fields)>> {
        let after = self.groups.get(group)?.last_id;
        let Some(start) = after.next() else { return Some(Vec::new()) };
        let batch = self.range(start, StreamId::MAX, count, false);
        // Each entry moves the group's read counter as Redis moves it: by one while the
        // counter is known and no tombstone lies ahead, else to the stream's estimate.
        let counts: Vec<(bool, Option<u64>)> =
            batch.iter().map(|(id, _)| (self.tombstones_from(*id), self.entries_up_to(*id))).collect();
        let ever_added = self.entries_added > 0;
        let g = self.groups.get_mut(group)?;
        g.consumer(consumer, now);
        for ((id, _), (tombstones, estimate)) in batch.iter().zip(counts) {
            g.entries_read = match g.entries_read {
                Some(read) if !tombstones => Some(read + 1),
                _ if ever_added => estimate,
                read => read,
            };
            g.last_id = *id;
            if !noack {
                g.assign(*id, consumer, now, 1);
            }
        }
        Some(batch)
    }

    /// XREADGROUP with an ID: `consumer`'s pending entries after `after`, at most `count`
    /// (0: all), each delivered again (an entry deleted since comes back without fields).
    /// None when the group does not exist.
    pub fn read_history(
        &mut self,
        group: &[u8],
        consumer: &Bytes,
        after: StreamId,
        count: usize,
        now: u64,
    ) -> Option<Vec<(StreamId, Option<Fields>)>> {
        let g = self.groups.get_mut(group)?;
        let c = g.consumer(consumer, now);
        let limit = if count == 0 { usize::MAX } else { count };
        let ids: Vec<StreamId> = c
            .pending
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .take(limit)
            .copied()
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let fields = self.entries.get(id);
            if fields.is_some()
                && let Some(p) = g.pel.get_mut(&id)
            {
                p.delivered_at = now;
                p.deliveries += 1;
            }
            out.push((id, fields));
        }
        Some(out)
    }

    /// XCLAIM: moves the pending entries `ids` idle at least `min_idle` to `consumer`.
    /// Entries deleted from the stream leave the PEL instead. None when the group does not
    /// exist.
    pub fn claim(
        &mut self,
        group: &[u8],
        consumer: &Bytes,
        ids: &[StreamId],
        opts: ClaimOpts,
        now: u64,
    ) -> Option<Vec<(StreamId, Fields)>> {
        let entries = &self.entries;
        let g = self.groups.get_mut(group)?;
        let delivered_at = opts.delivered_at.filter(|t| *t <= now).unwrap_or(now);
        let mut out = Vec::new();
        for &id in ids {
            let fields = if opts.just_id { entries.contains(id).then(Fields::new) } else { entries.get(id) };
            let Some(fields) = fields else {
                g.ack(id);
                continue;
            };
            let deliveries = match g.pel.get(&id) {
                Some(p) => {
                    if opts.min_idle > 0 && now.saturating_sub(p.delivered_at) < opts.min_idle {
                        continue;
                    }
                    p.deliveries
                }
                None if opts.force => 0,
                None => continue,
            };
            let deliveries = match opts.retry_count {
                Some(n) => n,
                None if opts.just_id => deliveries,
                None => deliveries + 1,
            };
            g.consumer(consumer, now);
            g.assign(id, consumer, delivered_at, deliveries);
            out.push((id, fields));
        }
        Some(out)
    }

    /// XAUTOCLAIM: from `start`, claims up to `count` pending entries idle at least
    /// `opts.min_idle`, looking at no more than ten times that many (of `opts`, only
    /// `min_idle` and `just_id` apply). None when the group does not exist.
    pub fn auto_claim(
        &mut self,
        group: &[u8],
        consumer: &Bytes,
        start: StreamId,
        count: usize,
        opts: ClaimOpts,
        now: u64,
    ) -> Option<AutoClaim> {
        let ClaimOpts { min_idle, just_id, .. } = opts;
        let entries = &self.entries;
        let g = self.groups.get_mut(group)?;
        let attempts = count.saturating_mul(10);
        let ids: Vec<StreamId> =
            g.pel.range(start..).map(|(id, _)| *id).take(attempts.saturating_add(1)).collect();
        let (mut claimed, mut deleted) = (Vec::new(), Vec::new());
        let (mut left, mut i) = (count, 0);
        while i < attempts && left > 0 && i < ids.len() {
            let id = ids[i];
            i += 1;
            let fields = if just_id { entries.contains(id).then(Fields::new) } else { entries.get(id) };
            let Some(fields) = fields else {
                g.ack(id);
                deleted.push(id);
                left -= 1;
                continue;
            };
            let p = &g.pel[&id];
            if min_idle > 0 && now.saturating_sub(p.delivered_at) < min_idle {
                continue;
            }
            let deliveries = if just_id { p.deliveries } else { p.deliveries + 1 };
            g.consumer(consumer, now);
            g.assign(id, consumer, now, deliveries);
            claimed.push((id, fields));
            left -= 1;
        }
        Some(AutoClaim { cursor: ids.get(i).copied().unwrap_or_default(), claimed, deleted })
    }

    /// Every entry, for persistence.
    pub fn all(&self) -> Vec<(StreamId, Fields)> {
        self.entries.range(StreamId::MIN, StreamId::MAX, 0, false)
    }

    /// Puts back a persisted entry (in ID order) without touching the counters, which are
    /// restored separately.
    pub fn restore_entry(&mut self, id: StreamId, fields: &[Bytes]) {
        self.entries.push(id, fields);
    }

    /// Puts back a persisted pending entry, creating its consumer's record of it.
    pub fn restore_pending(&mut self, group: &Bytes, id: StreamId, pending: Pending) {
        let g = self.groups.entry(group.clone()).or_default();
        g.consumers.entry(pending.consumer.clone()).or_default().pending.insert(id);
        g.pel.insert(id, pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")]
    }

    fn stream_of(n: u64) -> Stream {
        let mut s = Stream::default();
        for i in 1..=n {
            s.append(StreamId::new(i, 0), &fields());
        }
        s
    }

    #[test]
    fn auto_ids_follow_the_clock_and_never_go_back() {
        let mut s = Stream::default();
        assert_eq!(s.auto_id(5), Some(StreamId::new(5, 0)));
        s.append(StreamId::new(5, 0), &fields());
        assert_eq!(s.auto_id(5), Some(StreamId::new(5, 1)));
        assert_eq!(s.auto_id(3), Some(StreamId::new(5, 1)), "a clock behind the last ID");
        assert_eq!(s.auto_seq_id(5), Some(StreamId::new(5, 1)));
        assert_eq!(s.auto_seq_id(9), Some(StreamId::new(9, 0)));
        s.last_id = StreamId::new(7, u64::MAX);
        assert_eq!(s.auto_seq_id(7), None, "the sequence of 7 is exhausted");
        s.last_id = StreamId::MAX;
        assert_eq!(s.auto_id(1), None);
    }

    #[test]
    fn exact_and_node_trimming() {
        let mut s = stream_of(250);
        assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 100, "one whole node");
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
        assert_eq!(s.first_id(), StreamId::new(131, 0));
        assert_eq!(s.trim(Trim::MinId(StreamId::new(200, 0)), false, 0), 69);
        assert_eq!(s.first_id(), StreamId::new(200, 0));
        let mut s = stream_of(1000);
        assert_eq!(s.trim(Trim::MaxLen(0), true, 250), 200, "LIMIT in whole nodes");
    }

    #[test]
    fn group_counters_follow_redis() {
        let mut s = stream_of(5);
        s.groups.insert(Bytes::from_static(b"g"), Group::new(StreamId::MIN, None));
        let c = Bytes::from_static(b"alice");
        assert_eq!(s.lag(&s.groups[&b"g"[..]]), Some(5));
        let got = s.read_new(b"g", &c, 2, false, 100).unwrap();
        assert_eq!(got.len(), 2);
        let g = &s.groups[&b"g"[..]];
        assert_eq!((g.entries_read, s.lag(g)), (Some(2), Some(3)));
        assert_eq!(g.pel.len(), 2);
        // A tombstone ahead of the group makes its lag unknown until it passes it.
        assert!(s.delete(StreamId::new(4, 0)));
        assert_eq!(s.lag(&s.groups[&b"g"[..]]), None);
        s.read_new(b"g", &c, 0, false, 100).unwrap();
        let g = &s.groups[&b"g"[..]];
        assert_eq!((g.entries_read, s.lag(g)), (Some(5), Some(0)));
    }

    #[test]
    fn claims_move_pending_entries_between_consumers() {
        let mut s = stream_of(3);
        s.groups.insert(Bytes::from_static(b"g"), Group::new(StreamId::MIN, None));
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        s.read_new(b"g", &a, 0, false, 1_000).unwrap();
        let ids = [StreamId::new(1, 0), StreamId::new(2, 0)];
        let too_soon = s.claim(b"g", &b, &ids, ClaimOpts { min_idle: 500, ..ClaimOpts::default() }, 1_100);
        assert!(too_soon.unwrap().is_empty());
        let got =
            s.claim(b"g", &b, &ids, ClaimOpts { min_idle: 500, ..ClaimOpts::default() }, 2_000).unwrap();
        assert_eq!(got.len(), 2);
        let g = &s.groups[&b"g"[..]];
        assert_eq!(g.consumers[&a].pending.len(), 1);
        assert_eq!(g.consumers[&b].pending.len(), 2);
        assert_eq!(g.pel[&StreamId::new(1, 0)].deliveries, 2);
        // A deleted entry leaves the PEL when claimed.
        s.delete(StreamId::new(3, 0));
        let auto = s.auto_claim(b"g", &b, StreamId::MIN, 10, ClaimOpts::default(), 3_000).unwrap();
        assert_eq!(auto.claimed.len(), 2);
        assert_eq!(auto.deleted, vec![StreamId::new(3, 0)]);
        assert_eq!(auto.cursor, StreamId::MIN);
        assert_eq!(s.groups[&b"g"[..]].pel.len(), 2);
    }
}
