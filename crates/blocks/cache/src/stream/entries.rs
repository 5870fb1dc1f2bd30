//! A stream's entries, packed as Redis packs them: in nodes, each one byte buffer, the
//! nodes in a `BTreeMap` keyed by their first ID (Redis: a radix tree of listpacks).
//!
//! A node is full at [`NODE_ENTRIES`] entries, deleted ones included, or when an entry's
//! fields and values would take its buffer to [`NODE_BYTES`], Redis's two tests.
//!
//! One entry in a node's buffer: the ID as varints relative to the node's first ID
//! (milliseconds delta, then sequence), a flag byte (1: deleted), the number of fields and
//! values, then each as a varint length and its bytes. A deleted entry keeps its place until
//! its whole node goes, as in Redis. A million entries of two short fields take about 20
//! bytes each (redis-server: 17; one map entry per stream entry took 230).
//!
//! Trimming removes whole nodes from the head, and with `~` only whole nodes, so `MAXLEN ~`
//! keeps what Redis keeps for small entries; for large ones the node boundaries differ a
//! little, as a node's bytes are counted in a different encoding.

use super::{Fields, StreamId, Trim};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Entries per node, Redis's default `stream-node-max-entries`.
pub const NODE_ENTRIES: usize = 100;
/// A node takes no more entries once its buffer is this long (`stream-node-max-bytes`).
pub const NODE_BYTES: usize = 4096;
/// Bytes a node costs beyond its buffer: its map slot, its fields, the allocation.
const NODE_OVERHEAD: usize = 96;

const DELETED: u8 = 1;

#[derive(Clone, Debug, Default)]
struct Node {
    buf: Vec<u8>,
    /// The last ID written to the node (deleted or not).
    last: StreamId,
    /// Entries not deleted.
    live: usize,
    /// Entries written, deleted ones included.
    total: usize,
}

/// One entry as read from a node buffer.
struct Raw<'a> {
    id: StreamId,
    /// Where the flag byte is, to mark the entry deleted.
    flag_at: usize,
    deleted: bool,
    count: usize,
    /// The fields and values, still encoded.
    fields: &'a [u8],
}

impl Raw<'_> {
    fn decode(&self) -> Fields {
        let mut out = Vec::with_capacity(self.count);
        let mut at = 0;
        for _ in 0..self.count {
            let len = varint(self.fields, &mut at) as usize;
            out.push(Bytes::copy_from_slice(&self.fields[at..at + len]));
            at += len;
        }
        out
    }
}

/// The entries of a node buffer in order.
struct Walk<'a> {
    buf: &'a [u8],
    first: StreamId,
    at: usize,
}

impl<'a> Iterator for Walk<'a> {
    type Item = Raw<'a>;

    fn next(&mut self) -> Option<Raw<'a>> {
        if self.at >= self.buf.len() {
            return None;
        }
        let buf = self.buf;
        let ms = self.first.ms + varint(buf, &mut self.at);
        let seq = varint(buf, &mut self.at);
        let flag_at = self.at;
        self.at += 1;
        let count = varint(buf, &mut self.at) as usize;
        let start = self.at;
        for _ in 0..count {
            let len = varint(buf, &mut self.at) as usize;
            self.at += len;
        }
        Some(Raw {
            id: StreamId::new(ms, seq),
            flag_at,
            deleted: buf[flag_at] == DELETED,
            count,
            fields: &buf[start..self.at],
        })
    }
}

fn walk(first: StreamId, node: &Node) -> Walk<'_> {
    Walk { buf: &node.buf, first, at: 0 }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint the node itself wrote.
fn varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

#[derive(Clone, Debug, Default)]
pub struct Entries {
    nodes: BTreeMap<StreamId, Node>,
    len: usize,
    /// Heap bytes of the nodes.
    bytes: usize,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn mem(&self) -> usize {
        self.bytes
    }

    /// How many nodes hold the entries (XINFO's `radix-tree-keys`).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The first entry not deleted.
    pub fn first(&self) -> Option<(StreamId, Fields)> {
        let (first, node) = self.nodes.first_key_value()?;
        walk(*first, node).find(|e| !e.deleted).map(|e| (e.id, e.decode()))
    }

    pub fn first_id(&self) -> Option<StreamId> {
        let (first, node) = self.nodes.first_key_value()?;
        walk(*first, node).find(|e| !e.deleted).map(|e| e.id)
    }

    /// The last entry not deleted.
    pub fn last(&self) -> Option<(StreamId, Fields)> {
        let (first, node) = self.nodes.last_key_value()?;
        walk(*first, node).filter(|e| !e.deleted).last().map(|e| (e.id, e.decode()))
    }

    pub fn last_id(&self) -> Option<StreamId> {
        let (first, node) = self.nodes.last_key_value()?;
        walk(*first, node).filter(|e| !e.deleted).last().map(|e| e.id)
    }

    /// The node that would hold `id`.
    fn node_of(&self, id: StreamId) -> Option<(StreamId, &Node)> {
        self.nodes.range(..=id).next_back().map(|(first, node)| (*first, node))
    }

    pub fn get(&self, id: StreamId) -> Option<Fields> {
        let (first, node) = self.node_of(id)?;
        walk(first, node).find(|e| e.id == id && !e.deleted).map(|e| e.decode())
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.node_of(id).is_some_and(|(first, node)| walk(first, node).any(|e| e.id == id && !e.deleted))
    }

    /// The entries from `start` to `end` inclusive, in order (reversed if `rev`), at most
    /// `count` of them (0: all).
    pub fn range(&self, start: StreamId, end: StreamId, count: usize, rev: bool) -> Vec<(StreamId, Fields)> {
        let limit = if count == 0 { usize::MAX } else { count };
        let mut out = Vec::new();
        if start > end {
            return out;
        }
        // The node holding `start` begins before it.
        let from = self.node_of(start).map_or(start, |(first, _)| first);
        let nodes = self.nodes.range(from..=end);
        let wanted = |e: &Raw| !e.deleted && start <= e.id && e.id <= end;
        if rev {
            for (first, node) in nodes.rev() {
                let found: Vec<Raw> = walk(*first, node).filter(wanted).collect();
                for e in found.iter().rev() {
                    if out.len() == limit {
                        return out;
                    }
                    out.push((e.id, e.decode()));
                }
            }
        } else {
            for (first, node) in nodes {
                for e in walk(*first, node).filter(wanted) {
                    if out.len() == limit {
                        return out;
                    }
                    out.push((e.id, e.decode()));
                }
            }
        }
        out
    }

    /// Adds an entry after every other one.
    pub fn push(&mut self, id: StreamId, fields: &[Bytes]) {
        // Redis's test: a node is full at its entry count, or when the new entry's fields
        // and values would take its bytes to the limit.
        let adding: usize = fields.iter().map(|f| f.len()).sum();
        let fits = self
            .nodes
            .last_key_value()
            .is_some_and(|(_, node)| node.total < NODE_ENTRIES && node.buf.len() + adding < NODE_BYTES);
        if !fits {
            // The full node will take no more: give back its spare capacity.
            if let Some(mut last) = self.nodes.last_entry() {
                let node = last.get_mut();
                let before = node.buf.capacity();
                node.buf.shrink_to_fit();
                self.bytes -= before - node.buf.capacity();
            }
            self.nodes.insert(id, Node::default());
            self.bytes += NODE_OVERHEAD;
        }
        let mut last = self.nodes.last_entry().expect("a node was ensured above");
        let first = *last.key();
        let node = last.get_mut();
        let before = node.buf.capacity();
        put_varint(&mut node.buf, id.ms - first.ms);
        put_varint(&mut node.buf, id.seq);
        node.buf.push(0);
        put_varint(&mut node.buf, fields.len() as u64);
        for f in fields {
            put_varint(&mut node.buf, f.len() as u64);
            node.buf.extend_from_slice(f);
        }
        node.last = id;
        node.live += 1;
        node.total += 1;
        self.len += 1;
        self.bytes += node.buf.capacity() - before;
    }

    /// Marks `id` deleted; a node left with no live entry goes. True if it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&first, node)) = self.nodes.range_mut(..=id).next_back() else { return false };
        let Some(flag_at) = walk(first, node).find(|e| e.id == id && !e.deleted).map(|e| e.flag_at) else {
            return false;
        };
        node.buf[flag_at] = DELETED;
        node.live -= 1;
        self.len -= 1;
        if node.live == 0 {
            self.remove_node(first);
        }
        true
    }

    fn remove_node(&mut self, first: StreamId) -> usize {
        let node = self.nodes.remove(&first).expect("the caller found the node");
        self.bytes -= node.buf.capacity() + NODE_OVERHEAD;
        self.len -= node.live;
        node.live
    }

    /// Redis's streamTrim: removes whole nodes from the head while the strategy asks for
    /// it and `limit` (0: none) allows, then, unless `approx`, single entries of the next
    /// node. Returns how many entries went.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: usize) -> usize {
        let mut removed = 0;
        while let Some((&first, node)) = self.nodes.first_key_value() {
            let whole = match trim {
                Trim::MaxLen(max) => {
                    if self.len as u64 <= max {
                        break;
                    }
                    (self.len - node.live) as u64 >= max
                }
                Trim::MinId(min) => node.last < min,
            };
            if limit > 0 && removed + node.live > limit {
                break;
            }
            if whole {
                removed += self.remove_node(first);
                continue;
            }
            if approx {
                break;
            }
            // Part of this node: its entries one by one, from the oldest.
            let doomed: Vec<(StreamId, usize)> = walk(first, node)
                .filter(|e| !e.deleted)
                .map(|e| (e.id, e.flag_at))
                .take_while(|(id, _)| match trim {
                    Trim::MaxLen(_) => true,
                    Trim::MinId(min) => *id < min,
                })
                .collect();
            let excess = match trim {
                Trim::MaxLen(max) => self.len - max as usize,
                Trim::MinId(_) => doomed.len(),
            };
            let node = self.nodes.get_mut(&first).expect("found above");
            for (_, flag_at) in doomed.into_iter().take(excess) {
                node.buf[flag_at] = DELETED;
                node.live -= 1;
                self.len -= 1;
                removed += 1;
            }
            // Its last entries may have been deleted before: then nothing is left of it.
            if node.live == 0 {
                self.remove_node(first);
            }
            break;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Milliseconds forward (0: same millisecond), and the value's length.
        Push(u8, u16),
        /// The n-th live entry, counted from the oldest.
        Delete(u8),
        Trim {
            max_len: bool,
            threshold: u16,
            approx: bool,
            limit: u16,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..3, 0u16..300).prop_map(|(ms, len)| Op::Push(ms, len)),
            2 => any::<u8>().prop_map(Op::Delete),
            1 => (any::<bool>(), 0u16..400, any::<bool>(), 0u16..300)
                .prop_map(|(max_len, threshold, approx, limit)| Op::Trim { max_len, threshold, approx, limit }),
        ]
    }

    proptest! {
        /// Random pushes, deletes and trims against a plain ordered map: the same entries
        /// come back by ID, by range either way and from the edges, and trims only ever
        /// take the oldest entries, exactly as many as asked unless `~` or LIMIT hold back.
        #[test]
        fn entries_agree_with_an_ordered_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut e = Entries::default();
            let mut model: BTreeMap<StreamId, Fields> = BTreeMap::new();
            let mut last = StreamId::new(1, 0);
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Push(ms, len) => {
                        last = if ms == 0 { last.next().unwrap() } else { StreamId::new(last.ms + ms as u64, 0) };
                        let fields = vec![Bytes::from(format!("f{i}")), Bytes::from(vec![b'x'; len as usize])];
                        e.push(last, &fields);
                        model.insert(last, fields);
                    }
                    Op::Delete(n) => {
                        // Even: counted from the oldest; odd: from the newest.
                        let at = n as usize / 2 % model.len().max(1);
                        let id = if n % 2 == 0 { model.keys().nth(at) } else { model.keys().nth_back(at) }.copied();
                        if let Some(id) = id {
                            prop_assert!(e.delete(id));
                            model.remove(&id);
                        }
                        prop_assert!(!e.delete(StreamId::new(last.ms + 1, 0)));
                    }
                    Op::Trim { max_len, threshold, approx, limit } => {
                        let (trim, asked) = if max_len {
                            (Trim::MaxLen(threshold as u64), model.len().saturating_sub(threshold as usize))
                        } else {
                            let min = StreamId::new(threshold as u64, 0);
                            (Trim::MinId(min), model.range(..min).count())
                        };
                        let limit = if approx { limit as usize } else { 0 };
                        let removed = e.trim(trim, approx, limit);
                        if approx {
                            prop_assert!(removed <= asked);
                        } else {
                            prop_assert_eq!(removed, asked);
                        }
                        for _ in 0..removed {
                            model.pop_first();
                        }
                    }
                }
                prop_assert_eq!(e.len(), model.len());
                prop_assert_eq!(e.first_id(), model.keys().next().copied());
                prop_assert_eq!(e.last_id(), model.keys().next_back().copied());
            }
            let all: Vec<(StreamId, Fields)> = model.iter().map(|(id, f)| (*id, f.clone())).collect();
            prop_assert_eq!(e.range(StreamId::MIN, StreamId::MAX, 0, false), all.clone());
            let mut reversed = all.clone();
            reversed.reverse();
            prop_assert_eq!(e.range(StreamId::MIN, StreamId::MAX, 0, true), reversed);
            prop_assert_eq!(e.first(), all.first().cloned());
            prop_assert_eq!(e.last(), all.last().cloned());
            let (a, b) = (all.len() / 3, all.len() * 2 / 3);
            if b < all.len() {
                let (from, to) = (all[a].0, all[b].0);
                prop_assert_eq!(e.range(from, to, 0, false), all[a..=b].to_vec());
                let inner = e.range(from.next().unwrap(), to.prev().unwrap(), 0, true);
                let mut expected = all[a..=b].to_vec();
                expected.retain(|(id, _)| *id != from && *id != to);
                expected.reverse();
                prop_assert_eq!(inner, expected);
            }
            if let Some((id, fields)) = all.get(all.len() / 2) {
                prop_assert_eq!(e.get(*id), Some(fields.clone()));
                let from_middle: Vec<_> = all[all.len() / 2..].iter().take(3).cloned().collect();
                prop_assert_eq!(e.range(*id, StreamId::MAX, 3, false), from_middle);
            }
        }
    }

    fn fields(i: u64) -> Fields {
        vec![Bytes::from_static(b"field"), Bytes::from(i.to_string())]
    }

    /// A node whose newest entry was deleted, trimmed by MINID up to that entry: nothing
    /// live is left in it, so it must go, or the stream's first entry would be lost.
    #[test]
    fn a_trim_that_empties_a_node_removes_it() {
        let mut e = Entries::default();
        for i in 1..=150u64 {
            e.push(StreamId::new(i, 0), &fields(i));
        }
        assert!(e.delete(StreamId::new(100, 0)));
        assert_eq!(e.trim(Trim::MinId(StreamId::new(100, 0)), false, 0), 99);
        assert_eq!((e.len(), e.nodes.len()), (50, 1));
        assert_eq!(e.first_id(), Some(StreamId::new(101, 0)));
    }

    #[test]
    fn nodes_hold_entries_in_order_through_deletes() {
        let mut e = Entries::default();
        for i in 1..=250u64 {
            e.push(StreamId::new(1_700_000_000_000 + i / 3, i % 3), &fields(i));
        }
        assert_eq!((e.len(), e.nodes.len()), (250, 3));
        let id = |i: u64| StreamId::new(1_700_000_000_000 + i / 3, i % 3);
        assert_eq!(e.get(id(150)), Some(fields(150)));
        assert!(e.delete(id(150)) && !e.delete(id(150)));
        assert_eq!(e.get(id(150)), None);
        let got = e.range(id(148), id(152), 0, false);
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![id(148), id(149), id(151), id(152)]);
        let back = e.range(id(90), id(110), 3, true);
        assert_eq!(back.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![id(110), id(109), id(108)]);
        // A node whose every entry is deleted goes.
        for i in 201..=250 {
            e.delete(id(i));
        }
        assert_eq!((e.len(), e.nodes.len()), (199, 2));
        assert_eq!(e.last().map(|(i, _)| i), Some(id(200)));
        assert_eq!(e.first().map(|(i, _)| i), Some(id(1)));
        // Small entries cost about what they do in Redis.
        assert!(e.mem() < 200 * 24 + 2 * NODE_OVERHEAD, "{}", e.mem());
    }
}
