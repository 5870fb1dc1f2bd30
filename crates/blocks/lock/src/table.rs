//! The lock table: who holds each resource, who waits for it, and the wait-for graph.
//!
//! Pure state — no I/O, no clock of its own (callers pass `now`) — so every rule is tested
//! here without a store. The rules:
//!
//! - A request names one or more resources (sorted, deduplicated: one canonical order) and
//!   is granted all of them at once or none. Shared holders coexist; an exclusive holder
//!   excludes everyone else. An owner's own holds never block it (re-acquiring replaces them).
//! - Waits are FIFO per resource: a request is granted only when no incompatible request
//!   queued before it on any of its resources is still waiting. A waiting request is queued
//!   on all its resources at once, under one table, so queues agree on arrival order and
//!   two multi-resource waits can never block each other in a cycle.
//! - Deadlock: a request about to wait is refused when an owner it would wait for already
//!   waits, directly or through others, for its own owner.
//! - Every grant carries a fencing token from one strictly increasing counter, so tokens
//!   increase for every resource.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl Mode {
    fn compatible(self, other: Mode) -> bool {
        self == Mode::Shared && other == Mode::Shared
    }
}

/// A request for a set of resources.
#[derive(Clone, Debug)]
pub struct Request {
    pub owner: String,
    /// Sorted and deduplicated.
    pub resources: Vec<String>,
    pub mode: Mode,
    pub ttl: Duration,
}

impl Request {
    pub fn new(owner: impl Into<String>, resources: Vec<String>, mode: Mode, ttl: Duration) -> Request {
        let mut resources = resources;
        resources.sort();
        resources.dedup();
        Request { owner: owner.into(), resources, mode, ttl }
    }
}

/// A granted request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub owner: String,
    pub resources: Vec<String>,
    pub mode: Mode,
    pub token: u64,
    pub expires: Instant,
    /// Holds of the same owner this grant replaced: `(resource, token)`.
    pub replaced: Vec<(String, u64)>,
}

impl Grant {
    /// The holds this grant made: `(resource, token)`.
    pub fn holds(&self) -> Vec<(String, u64)> {
        self.resources.iter().map(|r| (r.clone(), self.token)).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub token: u64,
    pub mode: Mode,
    pub expires: Instant,
}

/// What [`Table::request`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Granted(Grant),
    /// Queued under this waiter id; a later [`Table::wake`] grants it.
    Queued(u64),
    /// Not grantable now and the caller does not wait.
    Busy,
    /// Waiting would close a cycle through these owners.
    Deadlock(Vec<String>),
    /// The token counter reached its durable limit: raise it and ask again.
    NeedTokens,
}

#[derive(Default)]
struct Resource {
    holders: Vec<Holder>,
    /// Waiter ids in arrival order.
    queue: VecDeque<u64>,
}

/// Released or expired holds whose durable records can go: `(resource, token)`.
pub type Ended = Vec<(String, u64)>;

#[derive(Default)]
pub struct Table {
    resources: HashMap<String, Resource>,
    /// Waiting requests by id; ids grow, so map order is arrival order.
    waiters: BTreeMap<u64, Request>,
    waiting_by_owner: HashMap<String, Vec<u64>>,
    next_waiter: u64,
    /// `(expiry, token, resource)` of every hold; stale entries are skipped.
    expiries: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_token: u64,
    token_limit: u64,
}

impl Table {
    /// A table whose next token is `next_token`, issuing tokens below `token_limit`.
    pub fn new(next_token: u64, token_limit: u64) -> Table {
        Table { next_token, token_limit, ..Table::default() }
    }

    pub fn next_token(&self) -> u64 {
        self.next_token
    }

    pub fn token_limit(&self) -> u64 {
        self.token_limit
    }

    pub fn raise_token_limit(&mut self, limit: u64) {
        self.token_limit = self.token_limit.max(limit);
    }

    /// Puts back a hold read from the store at startup.
    pub fn restore(&mut self, resource: &str, holder: Holder) {
        self.next_token = self.next_token.max(holder.token + 1);
        self.expiries.push(Reverse((holder.expires, holder.token, resource.to_string())));
        self.resources.entry(resource.to_string()).or_default().holders.push(holder);
    }

    /// Grants `request` now, queues it (`wait`), or refuses it.
    pub fn request(&mut self, request: Request, now: Instant, wait: bool) -> Decision {
        if self.next_token >= self.token_limit {
            return Decision::NeedTokens;
        }
        if self.blockers(&request, None).is_empty() {
            return Decision::Granted(self.grant(request, now));
        }
        if !wait {
            return Decision::Busy;
        }
        if let Some(cycle) = self.cycle_through(&request) {
            return Decision::Deadlock(cycle);
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        for resource in &request.resources {
            self.resources.entry(resource.clone()).or_default().queue.push_back(id);
        }
        self.waiting_by_owner.entry(request.owner.clone()).or_default().push(id);
        self.waiters.insert(id, request);
        Decision::Queued(id)
    }

    /// Owners that keep `request` (waiter `id`, or a new request) from being granted:
    /// incompatible holders, and incompatible requests queued before it.
    fn blockers(&self, request: &Request, id: Option<u64>) -> HashSet<&str> {
        let mut out = HashSet::new();
        for name in &request.resources {
            let Some(resource) = self.resources.get(name) else { continue };
            for h in &resource.holders {
                if h.owner != request.owner && !h.mode.compatible(request.mode) {
                    out.insert(h.owner.as_str());
                }
            }
            for w in &resource.queue {
                if id.is_some_and(|id| *w >= id) {
                    break;
                }
                let other = &self.waiters[w];
                if other.owner != request.owner && !other.mode.compatible(request.mode) {
                    out.insert(other.owner.as_str());
                }
            }
        }
        out
    }

    /// The owners of a wait-for cycle `request` would close, if any.
    fn cycle_through(&self, request: &Request) -> Option<Vec<String>> {
        // Depth-first from the owners it would wait for, along what each of them waits for.
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut stack: Vec<&str> = Vec::new();
        for b in self.blockers(request, None) {
            parent.insert(b, request.owner.as_str());
            stack.push(b);
        }
        while let Some(owner) = stack.pop() {
            if owner == request.owner {
                // The owners on the way back, in wait order from the requester's first blocker.
                let mut cycle = Vec::new();
                let mut at = parent[owner];
                while at != request.owner {
                    cycle.push(at.to_string());
                    at = parent[at];
                }
                cycle.reverse();
                return Some(cycle);
            }
            for id in self.waiting_by_owner.get(owner).into_iter().flatten() {
                for next in self.blockers(&self.waiters[id], Some(*id)) {
                    if !parent.contains_key(next) {
                        parent.insert(next, owner);
                        stack.push(next);
                    }
                }
            }
        }
        None
    }

    fn grant(&mut self, request: Request, now: Instant) -> Grant {
        let token = self.next_token;
        self.next_token += 1;
        let expires = now + request.ttl;
        let mut replaced = Vec::new();
        for name in &request.resources {
            let resource = self.resources.entry(name.clone()).or_default();
            resource.holders.retain(|h| {
                let mine = h.owner == request.owner;
                if mine {
                    replaced.push((name.clone(), h.token));
                }
                !mine
            });
            resource.holders.push(Holder {
                owner: request.owner.clone(),
                token,
                mode: request.mode,
                expires,
            });
            self.expiries.push(Reverse((expires, token, name.clone())));
        }
        metrics::counter!("strata_lock_grants_total").increment(1);
        Grant {
            owner: request.owner,
            resources: request.resources,
            mode: request.mode,
            token,
            expires,
            replaced,
        }
    }

    /// Grants the waiters that can go now, in arrival order, starting from those queued on
    /// `resources` (a grant can free others, through the queues it leaves).
    pub fn wake(&mut self, resources: &[String], now: Instant) -> Vec<(u64, Grant)> {
        let mut granted = Vec::new();
        if self.next_token >= self.token_limit {
            return granted;
        }
        let mut candidates: Vec<u64> = resources
            .iter()
            .filter_map(|r| self.resources.get(r))
            .flat_map(|r| r.queue.iter().copied())
            .collect();
        while !candidates.is_empty() && self.next_token < self.token_limit {
            candidates.sort_unstable();
            candidates.dedup();
            let mut next_round = Vec::new();
            for id in std::mem::take(&mut candidates) {
                let Some(request) = self.waiters.get(&id) else { continue };
                if !self.blockers(request, Some(id)).is_empty() {
                    continue;
                }
                let request = self.dequeue(id).expect("waiting");
                for r in &request.resources {
                    next_round
                        .extend(self.resources.get(r).into_iter().flat_map(|r| r.queue.iter().copied()));
                }
                granted.push((id, self.grant(request, now)));
                if self.next_token >= self.token_limit {
                    break;
                }
            }
            candidates = next_round;
        }
        granted
    }

    /// Grants whatever waiters can go (after the token limit was raised).
    pub fn wake_all(&mut self, now: Instant) -> Vec<(u64, Grant)> {
        let resources: Vec<String> =
            self.waiters.values().flat_map(|r| r.resources.iter().cloned()).collect();
        self.wake(&resources, now)
    }

    fn dequeue(&mut self, id: u64) -> Option<Request> {
        let request = self.waiters.remove(&id)?;
        for name in &request.resources {
            if let Some(resource) = self.resources.get_mut(name) {
                resource.queue.retain(|w| *w != id);
            }
            self.forget_if_idle(name);
        }
        if let Some(ids) = self.waiting_by_owner.get_mut(&request.owner) {
            ids.retain(|w| *w != id);
            if ids.is_empty() {
                self.waiting_by_owner.remove(&request.owner);
            }
        }
        Some(request)
    }

    /// Stops waiting (timeout, disconnect); returns the grants its leaving allows. `None`
    /// when the waiter is gone already (granted).
    pub fn cancel(&mut self, id: u64, now: Instant) -> Option<Vec<(u64, Grant)>> {
        let request = self.dequeue(id)?;
        Some(self.wake(&request.resources, now))
    }

    /// The holds of `owner` on `resources`, or the first resource it does not hold.
    pub fn held_by(&self, owner: &str, resources: &[String]) -> Result<Vec<(String, u64)>, String> {
        resources
            .iter()
            .map(|name| {
                self.resources
                    .get(name)
                    .and_then(|r| r.holders.iter().find(|h| h.owner == owner))
                    .map(|h| (name.clone(), h.token))
                    .ok_or_else(|| name.clone())
            })
            .collect()
    }

    /// Ends the given holds (those still there) and grants what that frees.
    pub fn release(&mut self, holds: &[(String, u64)], now: Instant) -> Vec<(u64, Grant)> {
        let mut freed = Vec::new();
        for (name, token) in holds {
            if let Some(resource) = self.resources.get_mut(name) {
                let before = resource.holders.len();
                resource.holders.retain(|h| h.token != *token);
                if resource.holders.len() != before {
                    freed.push(name.clone());
                }
            }
            self.forget_if_idle(name);
        }
        self.wake(&freed, now)
    }

    /// Moves the expiry of `owner`'s hold on `resource`; returns its token.
    pub fn extend(
        &mut self,
        owner: &str,
        resource: &str,
        ttl: Duration,
        now: Instant,
    ) -> Option<(u64, Instant)> {
        let holder = self.resources.get_mut(resource)?.holders.iter_mut().find(|h| h.owner == owner)?;
        holder.expires = now + ttl;
        let (token, expires) = (holder.token, holder.expires);
        self.expiries.push(Reverse((expires, token, resource.to_string())));
        Some((token, expires))
    }

    /// Ends every hold whose time is up; returns them and the grants that frees.
    pub fn expire(&mut self, now: Instant) -> (Ended, Vec<(u64, Grant)>) {
        let mut ended = Vec::new();
        while let Some(Reverse((at, _, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let Reverse((at, token, name)) = self.expiries.pop().expect("peeked");
            let Some(resource) = self.resources.get_mut(&name) else { continue };
            // Skip entries an extension made stale.
            let before = resource.holders.len();
            resource.holders.retain(|h| !(h.token == token && h.expires == at));
            if resource.holders.len() != before {
                ended.push((name.clone(), token));
            }
            self.forget_if_idle(&name);
        }
        if !ended.is_empty() {
            metrics::counter!("strata_lock_expired_total").increment(ended.len() as u64);
        }
        let freed: Vec<String> = ended.iter().map(|(r, _)| r.clone()).collect();
        let grants = self.wake(&freed, now);
        (ended, grants)
    }

    /// When the next hold expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.peek().map(|Reverse((at, _, _))| *at)
    }

    fn forget_if_idle(&mut self, name: &str) {
        if self.resources.get(name).is_some_and(|r| r.holders.is_empty() && r.queue.is_empty()) {
            self.resources.remove(name);
        }
    }

    /// Holders and waiters of a resource.
    pub fn info(&self, name: &str) -> (Vec<Holder>, Vec<(String, Mode)>) {
        let Some(resource) = self.resources.get(name) else { return (Vec::new(), Vec::new()) };
        let waiters = resource
            .queue
            .iter()
            .map(|id| {
                let r = &self.waiters[id];
                (r.owner.clone(), r.mode)
            })
            .collect();
        (resource.holders.clone(), waiters)
    }

    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    pub fn held_resources(&self) -> usize {
        self.resources.values().filter(|r| !r.holders.is_empty()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn req(owner: &str, resources: &[&str], mode: Mode) -> Request {
        Request::new(owner, resources.iter().map(|s| s.to_string()).collect(), mode, TTL)
    }

    fn granted(d: Decision) -> Grant {
        match d {
            Decision::Granted(g) => g,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    fn queued(d: Decision) -> u64 {
        match d {
            Decision::Queued(id) => id,
            other => panic!("expected to queue, got {other:?}"),
        }
    }

    #[test]
    fn exclusive_excludes_and_tokens_increase() {
        let now = Instant::now();
        let mut t = Table::new(1, u64::MAX);
        let a = granted(t.request(req("a", &["r"], Mode::Exclusive), now, false));
        assert_eq!(t.request(req("b", &["r"], Mode::Exclusive), now, false), Decision::Busy);
        assert_eq!(t.request(req("b", &["r"], Mode::Shared), now, false), Decision::Busy);
        let w = queued(t.request(req("b", &["r"], Mode::Exclusive), now, true));
        let woken = t.release(&t.held_by("a", &["r".into()]).unwrap(), now);
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].0, w);
        assert!(woken[0].1.token > a.token);
        assert_eq!(t.held_by("a", &["r".into()]), Err("r".into()));
    }

    #[test]
    fn shared_holders_coexist_and_a_queued_writer_is_not_starved() {
        let now = Instant::now();
        let mut t = Table::new(1, u64::MAX);
        granted(t.request(req("r1", &["doc"], Mode::Shared), now, false));
        granted(t.request(req("r2", &["doc"], Mode::Shared), now, false));
        let writer = queued(t.request(req("w", &["doc"], Mode::Exclusive), now, true));
        // A reader arriving after the writer waits behind it.
        let late = queued(t.request(req("r3", &["doc"], Mode::Shared), now, true));
        assert!(t.release(&t.held_by("r1", &["doc".into()]).unwrap(), now).is_empty());
        let woken = t.release(&t.held_by("r2", &["doc".into()]).unwrap(), now);
        assert_eq!(woken.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [writer]);
        let woken = t.release(&t.held_by("w", &["doc".into()]).unwrap(), now);
        assert_eq!(woken.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [late]);
    }

    #[test]
    fn multi_resource_requests_take_all_or_nothing() {
        let now = Instant::now();
        let mut t = Table::new(1, u64::MAX);
        granted(t.request(req("a", &["y"], Mode::Exclusive), now, false));
        assert_eq!(t.request(req("b", &["x", "y", "z"], Mode::Exclusive), now, false), Decision::Busy);
        // Nothing of the refused request is held.
        granted(t.request(req("c", &["x"], Mode::Exclusive), now, false));
        granted(t.request(req("c", &["z"], Mode::Exclusive), now, false));
        let g = granted(t.request(req("b", &["q", "p"], Mode::Exclusive), now, false));
        assert_eq!(g.resources, ["p", "q"], "canonical order");
    }

    #[test]
    fn opposite_multi_locks_do_not_deadlock() {
        let now = Instant::now();
        let mut t = Table::new(1, u64::MAX);
        granted(t.request(req("h", &["a", "b"], Mode::Exclusive), now, false));
        let first = queued(t.request(req("p", &["a", "b"], Mode::Exclusive), now, true));
        let second = queued(t.request(req("q", &["b", "a"], Mode::Exclusive), now, true));
        let woken = t.release(&t.held_by("h", &["a".into(), "b".into()]).unwrap(), now);
        assert_eq!(woken.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [first]);
        let woken = t.release(&t.held_by("p", &["a".into(), "b".into()]).unwrap(), now);
        assert_eq!(woken.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [second]);
    }

    #[test]
    fn cycles_of_two_and_three_owners_are_deadlocks() {
        let now = Instant::now();
        let mut t = Table::new(1, u64::MAX);
        granted(t.request(req("a", &["1"], Mode::Exclusive), now, false));
        granted(t.request(req("b", &["2"], Mode::Exclusive), now, false));
        queued(t.request(req("a", &["2"], Mode::Exclusive), now, true));
        assert_eq!(
            t.request(req("b", &["1"], Mode::Exclusive), now, true),
            Decision::Deadlock(vec!["a".into()])
        );

        let mut t = Table::new(1, u64::MAX);
        for (owner, r) in [("a", "1"), ("b", "2"), ("c", "3")] {
            granted(t.request(req(owner, &[r], Mode::Exclusive), now, false));
        }
        queued(t.request(req("a", &["2"], Mode::Exclusive), now, true));
        queued(t.request(req("b", &["3"], Mode::Exclusive), now, true));
        match t.request(req("c", &["1"], Mode::Exclusive), now, true) {
            Decision::Deadlock(cycle) => assert_eq!(cycle, ["a", "b"]),
            other => panic!("expected a deadlock, got {other:?}"),
        }
        // A wait without a cycle is fine.
        queued(t.request(req("d", &["1"], Mode::Exclusive), now, true));
    }

    #[test]
    fn expiry_ends_a_hold_and_extension_postpones_it() {
        let now = Instant::now();
        let mut t = Table::new(1, u64::MAX);
        let a = granted(t.request(req("a", &["r"], Mode::Exclusive), now, false));
        let w = queued(t.request(req("b", &["r"], Mode::Exclusive), now, true));
        assert_eq!(
            t.extend("a", "r", Duration::from_secs(20), now),
            Some((a.token, now + Duration::from_secs(20)))
        );
        assert_eq!(t.extend("b", "r", Duration::from_secs(20), now), None);
        let (ended, grants) = t.expire(now + TTL);
        assert!(ended.is_empty() && grants.is_empty(), "extended");
        let (ended, grants) = t.expire(now + Duration::from_secs(20));
        assert_eq!(ended, [("r".to_string(), a.token)]);
        assert_eq!(grants[0].0, w);
        assert!(grants[0].1.token > a.token);
    }

    #[test]
    fn a_cancelled_waiter_unblocks_the_ones_behind_it() {
        let now = Instant::now();
        let mut t = Table::new(1, u64::MAX);
        granted(t.request(req("a", &["r"], Mode::Shared), now, false));
        let writer = queued(t.request(req("w", &["r"], Mode::Exclusive), now, true));
        queued(t.request(req("b", &["r"], Mode::Shared), now, true));
        let woken = t.cancel(writer, now).unwrap();
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].1.owner, "b");
        assert!(t.cancel(writer, now).is_none());
    }

    #[test]
    fn the_token_limit_stops_grants_until_raised() {
        let now = Instant::now();
        let mut t = Table::new(5, 6);
        granted(t.request(req("a", &["r"], Mode::Exclusive), now, false));
        assert_eq!(t.request(req("b", &["s"], Mode::Exclusive), now, false), Decision::NeedTokens);
        t.raise_token_limit(100);
        assert_eq!(granted(t.request(req("b", &["s"], Mode::Exclusive), now, false)).token, 6);
    }
}
