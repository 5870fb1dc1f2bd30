//! Sorted sets: a member → score map beside an order-statistic treap ordered by
//! (score, member), so rank, select-by-rank and score/lex range bounds are O(log n) like
//! Redis's skip list.
//!
//! Written by hand: no maintained crate offers an order-statistic tree over arbitrary keys.
//! Nodes live in one arena (`Vec`) addressed by index, with a free list.

use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::HashMap;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    score: f64,
    member: Bytes,
    left: u32,
    right: u32,
    priority: u32,
    size: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: HashMap<Bytes, f64>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    seed: u32,
    bytes: usize,
}

/// Bytes charged per member beyond its own length (map slot, tree node, two handles).
pub const MEMBER_OVERHEAD: usize = 96;

fn cmp(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    a_score.total_cmp(&b_score).then_with(|| a_member.cmp(b_member))
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet { root: NIL, seed: 0x9E37_79B9, ..ZSet::default() }
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Approximate heap bytes held.
    pub fn mem(&self) -> usize {
        self.bytes
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns whether it is new. `-0.0` is stored as `0.0`.
    pub fn insert(&mut self, member: Bytes, score: f64) -> bool {
        let score = if score == 0.0 { 0.0 } else { score };
        match self.scores.get(&member).copied() {
            Some(old) if old == score => false,
            Some(old) => {
                self.root = self.remove_node(self.root, old, &member);
                self.scores.insert(member.clone(), score);
                let node = self.alloc(score, member);
                self.root = self.insert_node(self.root, node);
                false
            }
            None => {
                self.bytes += member.len() + MEMBER_OVERHEAD;
                self.scores.insert(member.clone(), score);
                let node = self.alloc(score, member);
                self.root = self.insert_node(self.root, node);
                true
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.remove(member)?;
        self.bytes -= member.len() + MEMBER_OVERHEAD;
        self.root = self.remove_node(self.root, score, member);
        Some(score)
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.count_below(|s, m| cmp(s, m, score, member) == Ordering::Less))
    }

    /// The element at 0-based ascending `rank`.
    pub fn get_by_rank(&self, rank: usize) -> Option<(&Bytes, f64)> {
        let mut node = self.root;
        let mut rank = rank as u32;
        while node != NIL {
            let n = &self.nodes[node as usize];
            let left = self.size(n.left);
            match rank.cmp(&left) {
                Ordering::Less => node = n.left,
                Ordering::Equal => return Some((&n.member, n.score)),
                Ordering::Greater => {
                    rank -= left + 1;
                    node = n.right;
                }
            }
        }
        None
    }

    /// How many elements satisfy `below`, which must hold for a prefix of the order (e.g.
    /// "score < 5" or "member < b" when all scores are equal).
    pub fn count_below(&self, below: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut node = self.root;
        let mut count = 0u32;
        while node != NIL {
            let n = &self.nodes[node as usize];
            if below(n.score, &n.member) {
                count += self.size(n.left) + 1;
                node = n.right;
            } else {
                node = n.left;
            }
        }
        count as usize
    }

    /// Elements with ranks in `start..end`, ascending.
    pub fn range(&self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let mut out = Vec::with_capacity(end.saturating_sub(start).min(1024));
        self.walk(self.root, start, end, 0, &mut out);
        out
    }

    fn walk(&self, node: u32, start: usize, end: usize, offset: usize, out: &mut Vec<(Bytes, f64)>) {
        if node == NIL || start >= end {
            return;
        }
        let n = &self.nodes[node as usize];
        let left = self.size(n.left) as usize;
        let here = offset + left;
        if start < here {
            self.walk(n.left, start, end, offset, out);
        }
        if (start..end).contains(&here) {
            out.push((n.member.clone(), n.score));
        }
        if end > here + 1 {
            self.walk(n.right, start, end, here + 1, out);
        }
    }

    pub fn iter_members(&self) -> impl Iterator<Item = (&Bytes, f64)> {
        self.scores.iter().map(|(m, s)| (m, *s))
    }

    fn size(&self, node: u32) -> u32 {
        if node == NIL { 0 } else { self.nodes[node as usize].size }
    }

    fn fix(&mut self, node: u32) {
        let (l, r) = (self.nodes[node as usize].left, self.nodes[node as usize].right);
        self.nodes[node as usize].size = self.size(l) + self.size(r) + 1;
    }

    fn alloc(&mut self, score: f64, member: Bytes) -> u32 {
        // xorshift: priorities only need to look random.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        let node = Node { score, member, left: NIL, right: NIL, priority: self.seed, size: 1 };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Splits `node` into (< key, >= key).
    fn split(&mut self, node: u32, score: f64, member: &[u8]) -> (u32, u32) {
        if node == NIL {
            return (NIL, NIL);
        }
        let n = &self.nodes[node as usize];
        if cmp(n.score, &n.member, score, member) == Ordering::Less {
            let right = n.right;
            let (a, b) = self.split(right, score, member);
            self.nodes[node as usize].right = a;
            self.fix(node);
            (node, b)
        } else {
            let left = n.left;
            let (a, b) = self.split(left, score, member);
            self.nodes[node as usize].left = b;
            self.fix(node);
            (a, node)
        }
    }

    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let right = self.nodes[a as usize].right;
            let merged = self.merge(right, b);
            self.nodes[a as usize].right = merged;
            self.fix(a);
            a
        } else {
            let left = self.nodes[b as usize].left;
            let merged = self.merge(a, left);
            self.nodes[b as usize].left = merged;
            self.fix(b);
            b
        }
    }

    fn insert_node(&mut self, root: u32, node: u32) -> u32 {
        let (score, member) = (self.nodes[node as usize].score, self.nodes[node as usize].member.clone());
        let (a, b) = self.split(root, score, &member);
        let left = self.merge(a, node);
        self.merge(left, b)
    }

    fn remove_node(&mut self, node: u32, score: f64, member: &[u8]) -> u32 {
        if node == NIL {
            return NIL;
        }
        let n = &self.nodes[node as usize];
        match cmp(score, member, n.score, &n.member) {
            Ordering::Equal => {
                let (l, r) = (n.left, n.right);
                self.nodes[node as usize].member = Bytes::new();
                self.free.push(node);
                self.merge(l, r)
            }
            Ordering::Less => {
                let left = n.left;
                let new = self.remove_node(left, score, member);
                self.nodes[node as usize].left = new;
                self.fix(node);
                node
            }
            Ordering::Greater => {
                let right = n.right;
                let new = self.remove_node(right, score, member);
                self.nodes[node as usize].right = new;
                self.fix(node);
                node
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_a_sorted_vector(ops in proptest::collection::vec((0u8..40, -5i32..5, any::<bool>()), 1..300)) {
            let mut z = ZSet::new();
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            for (m, s, add) in ops {
                let member = format!("m{m}").into_bytes();
                model.retain(|(_, mm)| *mm != member);
                if add {
                    z.insert(Bytes::from(member.clone()), s as f64);
                    model.push((s as f64, member));
                } else {
                    z.remove(&member);
                }
                model.sort_by(|a, b| cmp(a.0, &a.1, b.0, &b.1));
                prop_assert_eq!(z.len(), model.len());
            }
            for (i, (s, m)) in model.iter().enumerate() {
                prop_assert_eq!(z.rank(m), Some(i));
                let (gm, gs) = z.get_by_rank(i).unwrap();
                prop_assert_eq!((gm.as_ref(), gs), (m.as_slice(), *s));
            }
            let all: Vec<_> = z.range(0, z.len()).into_iter().map(|(m, s)| (s, m.to_vec())).collect();
            prop_assert_eq!(&all, &model);
            let below_zero = model.iter().filter(|(s, _)| *s < 0.0).count();
            prop_assert_eq!(z.count_below(|s, _| s < 0.0), below_zero);
        }
    }
}
