//! Lists, packed: elements sit back to back in chunks of up to 4 KiB, as in Redis's
//! quicklist of listpacks, so a short element costs its bytes plus two, and a push at either
//! end is a copy into the chunk at that end. A 3-byte element took 32 bytes and an allocation
//! of its own before; on a growing list the kernel's zeroing of fresh pages was 17% of an
//! LPUSH load.
//!
//! Written by hand: no crate offers a packed deque of byte strings.
//!
//! Each element is written as its length, its bytes and its length again, so a chunk can be
//! walked from either end: one byte when the length is under 255, else the byte 255 and the
//! length as 8 bytes (before the element: marker then length; after it: length then marker).
//! A chunk keeps its elements in `buf[start..end]`; one that grows at the front keeps its
//! free room before `start`, one that grows at the back after `end`.

use bytes::Bytes;
use std::collections::VecDeque;

/// Bytes a chunk grows to before the next element goes into a new chunk; a longer element
/// gets a chunk of exactly its size.
const CHUNK: usize = 4096;

/// The first chunk of a new list starts this small, and doubles as it fills.
const FIRST_CHUNK: usize = 32;

/// Charged per chunk on top of its buffer (the chunk itself and its slot in the ring).
const CHUNK_OVERHEAD: usize = 48;

const LONG: u8 = 255;

/// Bytes an element of `len` bytes takes in a chunk.
fn entry_size(len: usize) -> usize {
    if len < LONG as usize { len + 2 } else { len + 18 }
}

/// Writes `v` at `buf[at..at + entry_size(v.len())]`.
fn write_entry(buf: &mut [u8], at: usize, v: &[u8]) {
    let len = v.len();
    if len < LONG as usize {
        buf[at] = len as u8;
        buf[at + 1..at + 1 + len].copy_from_slice(v);
        buf[at + 1 + len] = len as u8;
    } else {
        let n = (len as u64).to_le_bytes();
        buf[at] = LONG;
        buf[at + 1..at + 9].copy_from_slice(&n);
        buf[at + 9..at + 9 + len].copy_from_slice(v);
        buf[at + 9 + len..at + 17 + len].copy_from_slice(&n);
        buf[at + 17 + len] = LONG;
    }
}

/// The element starting at `at`, and where the next one starts.
fn read_forward(buf: &[u8], at: usize) -> (&[u8], usize) {
    if buf[at] < LONG {
        let len = buf[at] as usize;
        (&buf[at + 1..at + 1 + len], at + len + 2)
    } else {
        let len = u64::from_le_bytes(buf[at + 1..at + 9].try_into().expect("8 bytes")) as usize;
        (&buf[at + 9..at + 9 + len], at + len + 18)
    }
}

/// The element ending at `end`, and where it starts.
fn read_backward(buf: &[u8], end: usize) -> (&[u8], usize) {
    if buf[end - 1] < LONG {
        let len = buf[end - 1] as usize;
        let start = end - len - 2;
        (&buf[start + 1..start + 1 + len], start)
    } else {
        let len = u64::from_le_bytes(buf[end - 9..end - 1].try_into().expect("8 bytes")) as usize;
        let start = end - len - 18;
        (&buf[start + 9..start + 9 + len], start)
    }
}

#[derive(Debug, Clone)]
struct Chunk {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    count: usize,
}

impl Chunk {
    /// An empty chunk of `size` bytes that fills from the front (`front`) or the back.
    fn empty(size: usize, front: bool) -> Chunk {
        let at = if front { size } else { 0 };
        Chunk { buf: vec![0; size].into_boxed_slice(), start: at, end: at, count: 0 }
    }

    fn used(&self) -> usize {
        self.end - self.start
    }

    /// Makes room for `need` more bytes at one end, growing the buffer (up to `CHUNK`, or
    /// exactly enough for a long element in an empty chunk); false when the chunk is full.
    fn make_room(&mut self, need: usize, front: bool) -> bool {
        let room = if front { self.start } else { self.buf.len() - self.end };
        if room >= need {
            return true;
        }
        let used = self.used();
        if used + need > CHUNK && self.count > 0 {
            return false;
        }
        let size = (self.buf.len() * 2).max(used + need).min(CHUNK.max(used + need));
        let mut buf = vec![0; size].into_boxed_slice();
        let at = if front { size - used } else { 0 };
        buf[at..at + used].copy_from_slice(&self.buf[self.start..self.end]);
        (self.buf, self.start, self.end) = (buf, at, at + used);
        true
    }

    fn push_front(&mut self, v: &[u8]) {
        self.start -= entry_size(v.len());
        write_entry(&mut self.buf, self.start, v);
        self.count += 1;
    }

    fn push_back(&mut self, v: &[u8]) {
        write_entry(&mut self.buf, self.end, v);
        self.end += entry_size(v.len());
        self.count += 1;
    }

    fn pop_front(&mut self) -> Bytes {
        let (v, next) = read_forward(&self.buf, self.start);
        let v = Bytes::copy_from_slice(v);
        self.start = next;
        self.count -= 1;
        v
    }

    fn pop_back(&mut self) -> Bytes {
        let (v, start) = read_backward(&self.buf, self.end);
        let v = Bytes::copy_from_slice(v);
        self.end = start;
        self.count -= 1;
        v
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = self.start;
        std::iter::from_fn(move || {
            (at < self.end).then(|| {
                let (v, next) = read_forward(&self.buf, at);
                at = next;
                v
            })
        })
    }

    fn get(&self, i: usize) -> &[u8] {
        if i < self.count / 2 {
            self.iter().nth(i).expect("in range")
        } else {
            let mut end = self.end;
            for _ in 0..self.count - 1 - i {
                end = read_backward(&self.buf, end).1;
            }
            read_backward(&self.buf, end).0
        }
    }

    fn mem(&self) -> usize {
        self.buf.len() + CHUNK_OVERHEAD
    }
}

/// A change to the elements of one chunk (by position in the chunk).
enum Edit<'v> {
    Set(usize, &'v [u8]),
    Insert(usize, &'v [u8]),
    /// Positions in increasing order.
    Remove(Vec<usize>),
}

#[derive(Debug, Clone, Default)]
pub struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
    /// Heap bytes of the chunks, for memory accounting.
    bytes: usize,
}

impl List {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        self.bytes
    }

    pub fn push_front(&mut self, v: &[u8]) {
        self.edge_with_room(entry_size(v.len()), true).push_front(v);
        self.len += 1;
    }

    pub fn push_back(&mut self, v: &[u8]) {
        self.edge_with_room(entry_size(v.len()), false).push_back(v);
        self.len += 1;
    }

    /// The chunk at the front (or back) with `need` bytes free there: the one already there,
    /// grown if it may be, or a new one.
    fn edge_with_room(&mut self, need: usize, front: bool) -> &mut Chunk {
        let edge = if front { self.chunks.front_mut() } else { self.chunks.back_mut() };
        let fits = match edge {
            Some(chunk) => {
                let before = chunk.mem();
                let fits = chunk.make_room(need, front);
                self.bytes = self.bytes + chunk.mem() - before;
                fits
            }
            None => false,
        };
        if !fits {
            // A list that already fills a chunk is likely to go on growing.
            let size = if self.chunks.is_empty() { FIRST_CHUNK } else { CHUNK }.max(need);
            let chunk = Chunk::empty(size, front);
            self.bytes += chunk.mem();
            if front { self.chunks.push_front(chunk) } else { self.chunks.push_back(chunk) }
        }
        let edge = if front { self.chunks.front_mut() } else { self.chunks.back_mut() };
        edge.expect("a chunk is there")
    }

    pub fn pop_front(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.front_mut()?;
        let v = chunk.pop_front();
        if chunk.count == 0 {
            self.drop_chunk(true);
        }
        self.len -= 1;
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Bytes> {
        let chunk = self.chunks.back_mut()?;
        let v = chunk.pop_back();
        if chunk.count == 0 {
            self.drop_chunk(false);
        }
        self.len -= 1;
        Some(v)
    }

    fn drop_chunk(&mut self, front: bool) {
        let chunk = if front { self.chunks.pop_front() } else { self.chunks.pop_back() };
        let chunk = chunk.expect("a chunk is there");
        self.bytes -= chunk.mem();
        self.len -= chunk.count;
    }

    /// The chunk holding element `i`, and `i`'s position in it.
    fn locate(&self, mut i: usize) -> Option<(usize, usize)> {
        if i >= self.len {
            return None;
        }
        if i >= self.len / 2 {
            // Nearer the back: count from there.
            let mut from_back = self.len - 1 - i;
            for (c, chunk) in self.chunks.iter().enumerate().rev() {
                if from_back < chunk.count {
                    return Some((c, chunk.count - 1 - from_back));
                }
                from_back -= chunk.count;
            }
            unreachable!("the counts add up to len");
        }
        for (c, chunk) in self.chunks.iter().enumerate() {
            if i < chunk.count {
                return Some((c, i));
            }
            i -= chunk.count;
        }
        unreachable!("the counts add up to len")
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let (c, j) = self.locate(i)?;
        Some(self.chunks[c].get(j))
    }

    /// Applies `edit` to the elements of chunk `c`, re-packed into as many chunks as they
    /// need.
    fn rewrite_chunk(&mut self, c: usize, edit: Edit) {
        let old = self.chunks.remove(c).expect("chunk in range");
        self.bytes -= old.mem();
        self.len -= old.count;
        let mut items: Vec<&[u8]> = old.iter().collect();
        match edit {
            Edit::Set(j, v) => items[j] = v,
            Edit::Insert(j, v) => items.insert(j, v),
            Edit::Remove(gone) => {
                for j in gone.into_iter().rev() {
                    items.remove(j);
                }
            }
        }
        let mut packed: Vec<Chunk> = Vec::new();
        for v in items {
            let need = entry_size(v.len());
            if !packed.last_mut().is_some_and(|chunk| chunk.make_room(need, false)) {
                let mut chunk = Chunk::empty(need.clamp(FIRST_CHUNK, CHUNK), false);
                chunk.make_room(need, false);
                packed.push(chunk);
            }
            packed.last_mut().expect("a chunk with room").push_back(v);
        }
        for (k, chunk) in packed.into_iter().enumerate() {
            self.bytes += chunk.mem();
            self.len += chunk.count;
            self.chunks.insert(c + k, chunk);
        }
    }

    /// Replaces element `i` (which must exist).
    pub fn set(&mut self, i: usize, v: &[u8]) {
        let (c, j) = self.locate(i).expect("index in range");
        self.rewrite_chunk(c, Edit::Set(j, v));
    }

    /// Inserts `v` before element `i`; `i == len` appends.
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        if i == self.len {
            return self.push_back(v);
        }
        let (c, j) = self.locate(i).expect("index in range");
        self.rewrite_chunk(c, Edit::Insert(j, v));
    }

    /// Removes up to `limit` elements equal to `v`, from the head or (`from_tail`) the tail;
    /// returns how many it removed.
    pub fn remove_equal(&mut self, v: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let order: Box<dyn Iterator<Item = usize>> =
            if from_tail { Box::new((0..self.chunks.len()).rev()) } else { Box::new(0..self.chunks.len()) };
        let mut rewrites = Vec::new();
        for c in order {
            if removed == limit {
                break;
            }
            let mut gone: Vec<usize> =
                self.chunks[c].iter().enumerate().filter(|(_, e)| *e == v).map(|(k, _)| k).collect();
            let take = gone.len().min(limit - removed);
            if from_tail {
                gone.drain(..gone.len() - take);
            } else {
                gone.truncate(take);
            }
            if !gone.is_empty() {
                removed += take;
                rewrites.push((c, gone));
            }
        }
        // Chunks are rewritten from the far end first, so the indexes of the others hold.
        if !from_tail {
            rewrites.reverse();
        }
        for (c, gone) in rewrites {
            self.rewrite_chunk(c, Edit::Remove(gone));
        }
        removed
    }

    /// Keeps only elements `start..end`: whole chunks are dropped, edge elements popped.
    pub fn retain_range(&mut self, start: usize, end: usize) {
        let end = end.min(self.len);
        let start = start.min(end);
        let mut drop_back = self.len - end;
        while drop_back > 0 {
            let back = self.chunks.back().expect("elements left");
            if back.count <= drop_back {
                drop_back -= back.count;
                self.drop_chunk(false);
            } else {
                self.pop_back();
                drop_back -= 1;
            }
        }
        let mut drop_front = start;
        while drop_front > 0 {
            let front = self.chunks.front().expect("elements left");
            if front.count <= drop_front {
                drop_front -= front.count;
                self.drop_chunk(true);
            } else {
                self.pop_front();
                drop_front -= 1;
            }
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        let back = self.chunks.len();
        Iter {
            chunks: &self.chunks,
            front: (0, self.chunks.front().map_or(0, |c| c.start)),
            back: (back, 0),
            left: self.len,
        }
    }
}

/// The elements of a [`List`], from either end.
pub struct Iter<'a> {
    chunks: &'a VecDeque<Chunk>,
    /// The chunk and byte position of the next element from the front.
    front: (usize, usize),
    /// The chunk past the next element from the back, and where that element ends; the
    /// position is stale until the first `next_back` sets it.
    back: (usize, usize),
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let chunks: &'a VecDeque<Chunk> = self.chunks;
        let (mut c, mut at) = self.front;
        while at >= chunks[c].end {
            c += 1;
            at = chunks[c].start;
        }
        let (v, next) = read_forward(&chunks[c].buf, at);
        self.front = (c, next);
        self.left -= 1;
        Some(v)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let chunks: &'a VecDeque<Chunk> = self.chunks;
        let (mut c, mut end) = self.back;
        if c == chunks.len() || end <= chunks[c].start {
            // Into the previous chunk (first call: the last one); none is empty.
            c -= 1;
            end = chunks[c].end;
        }
        let (v, start) = read_backward(&chunks[c].buf, end);
        self.back = (c, start);
        self.left -= 1;
        Some(v)
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        PushFront(Vec<u8>),
        PushBack(Vec<u8>),
        PopFront,
        PopBack,
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>),
        RemoveEqual(Vec<u8>, usize, bool),
        Retain(usize, usize),
    }

    fn element() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => proptest::collection::vec(0u8..4, 0..4),
            1 => proptest::collection::vec(any::<u8>(), 250..300),
            1 => proptest::collection::vec(any::<u8>(), 3000..5000),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => element().prop_map(Op::PushFront),
            6 => element().prop_map(Op::PushBack),
            2 => Just(Op::PopFront),
            2 => Just(Op::PopBack),
            1 => (any::<usize>(), element()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => (any::<usize>(), element()).prop_map(|(i, v)| Op::Insert(i, v)),
            1 => (element(), 0usize..4, any::<bool>()).prop_map(|(v, n, t)| Op::RemoveEqual(v, n, t)),
            1 => (0usize..50, 0usize..400).prop_map(|(a, b)| Op::Retain(a, b)),
        ]
    }

    fn check(list: &List, model: &VecDeque<Vec<u8>>) {
        assert_eq!(list.len(), model.len());
        let forward: Vec<&[u8]> = list.iter().collect();
        let expected: Vec<&[u8]> = model.iter().map(|v| v.as_slice()).collect();
        assert_eq!(forward, expected);
        let backward: Vec<&[u8]> = list.iter().rev().collect();
        assert_eq!(backward, expected.iter().rev().copied().collect::<Vec<_>>());
        // Both ends at once meet in the middle.
        let mut it = list.iter();
        let (mut front, mut back) = (Vec::new(), Vec::new());
        while let Some(v) = it.next() {
            front.push(v);
            if let Some(v) = it.next_back() {
                back.push(v);
            }
        }
        back.reverse();
        front.extend(back);
        assert_eq!(front, expected);
        for (i, v) in expected.iter().enumerate() {
            assert_eq!(list.get(i), Some(*v));
        }
        assert_eq!(list.get(expected.len()), None);
        let buffers: usize = list.chunks.iter().map(Chunk::mem).sum();
        assert_eq!(list.mem(), buffers);
        assert!(list.chunks.iter().all(|c| c.count > 0), "no empty chunk is kept");
    }

    proptest! {
        #[test]
        fn behaves_like_a_deque(ops in proptest::collection::vec(op(), 1..300)) {
            let mut list = List::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::PushFront(v) => { list.push_front(&v); model.push_front(v); }
                    Op::PushBack(v) => { list.push_back(&v); model.push_back(v); }
                    Op::PopFront => {
                        prop_assert_eq!(list.pop_front().map(|b| b.to_vec()), model.pop_front());
                    }
                    Op::PopBack => {
                        prop_assert_eq!(list.pop_back().map(|b| b.to_vec()), model.pop_back());
                    }
                    Op::Set(i, v) if !model.is_empty() => {
                        let i = i % model.len();
                        list.set(i, &v);
                        model[i] = v;
                    }
                    Op::Insert(i, v) => {
                        let i = i % (model.len() + 1);
                        list.insert(i, &v);
                        model.insert(i, v);
                    }
                    Op::RemoveEqual(v, n, from_tail) => {
                        let limit = if n == 0 { usize::MAX } else { n };
                        let mut removed = 0;
                        let mut kept = VecDeque::new();
                        let mut items: Vec<Vec<u8>> = model.drain(..).collect();
                        if from_tail { items.reverse(); }
                        for item in items {
                            if item == v && removed < limit { removed += 1; } else { kept.push_back(item); }
                        }
                        if from_tail { kept = kept.into_iter().rev().collect(); }
                        model = kept;
                        prop_assert_eq!(list.remove_equal(&v, limit, from_tail), removed);
                    }
                    Op::Retain(a, b) => {
                        let b = b.min(model.len());
                        let a = a.min(b);
                        list.retain_range(a, b);
                        model = model.drain(a..b).collect();
                    }
                    Op::Set(..) => {}
                }
                check(&list, &model);
            }
        }
    }

    #[test]
    fn short_elements_are_packed() {
        let mut list = List::default();
        for i in 0..100_000u32 {
            list.push_front(&i.to_le_bytes()[..3]);
        }
        // 5 bytes an element, plus chunk slack: far below the 32 of an unpacked element.
        assert!(list.mem() < 100_000 * 6, "{} bytes", list.mem());
        assert_eq!(list.pop_back().unwrap().as_ref(), &0u32.to_le_bytes()[..3]);
    }
}
