//! # strata-lock: leases with fencing tokens
//!
//! Users lock a ticket during checkout, a cron job across servers, an auction item in its
//! last seconds. What they get:
//!
//! - **Leases**: [`Locks::acquire`] names one or more resources, an owner and a TTL, and
//!   answers a **fencing token** that increases strictly for every resource, across
//!   restarts. Only the owner releases or extends ([`Locks::release`], [`Locks::extend`]);
//!   a lease that is not extended ends at its TTL and the next waiter gets the resource.
//! - **All or nothing** for several resources, **shared** and **exclusive** modes, a
//!   **blocking** acquire with a timeout and a fair FIFO queue per resource, and
//!   **deadlock detection**: a wait that would close a cycle of owners fails at once
//!   (`table.rs` has the rules).
//! - **Durable**: a grant or an extension is in core (fsynced) before it is answered; a
//!   release is removed from core (in the journal, written to the OS, and fsynced with the
//!   next group commit) before it is answered. After `kill -9` held locks are still held
//!   until their TTL, released ones are free, and tokens keep increasing (`store.rs`,
//!   `writer.rs`).
//! - **Redlock**: [`redlock::Redlock`], a client for the classic pattern over N Redis (or
//!   Strata) instances.
//!
//! ```text
//!   acquire ─► table (grant | queue | deadlock) ─► core txn: hold record ─► fsync ─► token
//!   release ─► queue delete of the record ─► table: free ─► wake waiters (FIFO)
//!           ─► delete in the journal (fsync follows) ─► answer
//!   expiry thread ─► table: end holds past TTL ─► wake waiters ─► delete records
//! ```
//!
//! ## Limitations
//!
//! - Expiry after a restart is judged by the wall clock (a hold stores its expiry as unix
//!   time); a clock jump while Strata is down shortens or lengthens it.
//! - One process decides; Redlock over several instances is for the plain-command pattern.

pub mod redlock;
mod store;
mod table;
mod writer;

pub use table::Mode;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use strata_core::Store;
use table::{Decision, Grant, Request, Table};
use tokio::sync::oneshot;
use writer::Durability;

/// Limits of the lock block.
#[derive(Clone, Debug)]
pub struct LockConfig {
    pub max_ttl: Duration,
    pub max_wait: Duration,
    /// Most requests waiting at once.
    pub max_waiters: usize,
    /// Most resources in one request.
    pub max_resources: usize,
    /// Longest resource or owner name, in bytes.
    pub max_name_bytes: usize,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            max_ttl: Duration::from_secs(24 * 3600),
            max_wait: Duration::from_secs(600),
            max_waiters: 100_000,
            max_resources: 64,
            max_name_bytes: 512,
        }
    }
}

#[derive(Debug)]
pub enum LockError {
    /// A malformed or out-of-bounds request.
    Invalid(String),
    /// Release or extend by someone who does not hold the resource (or whose lease ended).
    NotOwner(String),
    /// Waiting would close a cycle through these owners.
    Deadlock(Vec<String>),
    /// The most waiting requests allowed are waiting.
    TooManyWaiters,
    Storage(strata_core::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Invalid(m) => write!(f, "{m}"),
            LockError::NotOwner(r) => write!(f, "resource '{r}' is not held by this owner"),
            LockError::Deadlock(cycle) => {
                write!(f, "waiting would deadlock with owner(s) {}", cycle.join(" -> "))
            }
            LockError::TooManyWaiters => write!(f, "too many waiting lock requests"),
            LockError::Storage(e) => write!(f, "storage: {e}"),
        }
    }
}

impl std::error::Error for LockError {}

impl From<strata_core::Error> for LockError {
    fn from(e: strata_core::Error) -> Self {
        LockError::Storage(e)
    }
}

pub type LockResult<T> = Result<T, LockError>;

/// An acquire request.
#[derive(Clone, Debug)]
pub struct Acquire {
    pub resources: Vec<String>,
    pub owner: String,
    pub ttl: Duration,
    /// How long to wait for the resources; zero answers at once.
    pub wait: Duration,
    pub mode: Mode,
}

/// A granted lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub token: u64,
    /// In canonical (sorted) order.
    pub resources: Vec<String>,
    pub ttl: Duration,
}

/// Who holds a resource and who waits for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub holders: Vec<HolderInfo>,
    pub waiters: Vec<(String, Mode)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderInfo {
    pub owner: String,
    pub token: u64,
    pub mode: Mode,
    pub ttl_left: Duration,
}

/// Tokens reserved per durable raise of the ceiling.
const TOKEN_BLOCK: u64 = 1_000_000;

struct State {
    table: Table,
    /// Where each waiter's grant goes.
    senders: HashMap<u64, oneshot::Sender<Grant>>,
    /// The expiry thread sleeps until a grant, as no lease is held.
    expiry_asleep: bool,
}

struct Inner {
    config: LockConfig,
    state: Mutex<State>,
    /// Wakes the expiry thread when a lease is granted while none was held.
    expiry_wake: Condvar,
    writer: writer::Writer,
    /// One raise of the token ceiling at a time.
    raising: tokio::sync::Mutex<()>,
}

/// The lock block. Cheap to clone.
#[derive(Clone)]
pub struct Locks {
    inner: Arc<Inner>,
}

impl Locks {
    /// Opens the block: loads the holds in core (dropping expired ones), raises the token
    /// ceiling, and starts the expiry thread. Blocking.
    pub fn open(store: Store, config: LockConfig) -> LockResult<Locks> {
        let ks = store.keyspace("lock")?;
        let loaded = store::load(&store, &ks)?;
        let next = loaded.ceiling.max(1);
        let ceiling = next + TOKEN_BLOCK;
        let mut txn = store.begin();
        txn.set(&ks, store::ceiling_key(), ceiling.to_be_bytes().to_vec())?;
        for key in &loaded.expired {
            txn.delete(&ks, key.clone())?;
        }
        txn.commit()?;
        let mut table = Table::new(next, ceiling);
        let held = loaded.holds.len();
        for (resource, holder) in loaded.holds {
            table.restore(&resource, holder);
        }
        tracing::info!(held, next_token = table.next_token(), "lock block opened");
        let writer =
            writer::Writer::start(store, ks).map_err(|e| LockError::Storage(strata_core::Error::Io(e)))?;
        let locks = Locks {
            inner: Arc::new(Inner {
                writer,
                config,
                state: Mutex::new(State { table, senders: HashMap::new(), expiry_asleep: false }),
                expiry_wake: Condvar::new(),
                raising: tokio::sync::Mutex::new(()),
            }),
        };
        let weak = Arc::downgrade(&locks.inner);
        std::thread::Builder::new()
            .name("lock-expiry".into())
            .spawn(move || expire_loop(weak))
            .map_err(|e| LockError::Storage(strata_core::Error::Io(e)))?;
        Ok(locks)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("lock table poisoned")
    }

    fn check_name(&self, what: &str, name: &str) -> LockResult<()> {
        if name.is_empty() || name.len() > self.inner.config.max_name_bytes {
            return Err(LockError::Invalid(format!(
                "{what} must be 1 to {} bytes",
                self.inner.config.max_name_bytes
            )));
        }
        Ok(())
    }

    fn check_ttl(&self, ttl: Duration) -> LockResult<()> {
        if ttl.is_zero() || ttl > self.inner.config.max_ttl {
            return Err(LockError::Invalid(format!(
                "TTL must be between 1 ms and {} ms",
                self.inner.config.max_ttl.as_millis()
            )));
        }
        Ok(())
    }

    /// Acquires every resource of the request, or none: `None` when they were not free
    /// within `wait`.
    pub async fn acquire(&self, request: Acquire) -> LockResult<Option<Lease>> {
        let config = &self.inner.config;
        if request.resources.is_empty() || request.resources.len() > config.max_resources {
            return Err(LockError::Invalid(format!("a lock names 1 to {} resources", config.max_resources)));
        }
        for r in &request.resources {
            self.check_name("a resource name", r)?;
        }
        self.check_name("an owner", &request.owner)?;
        self.check_ttl(request.ttl)?;
        if request.wait > config.max_wait {
            return Err(LockError::Invalid(format!(
                "WAIT must be at most {} ms",
                config.max_wait.as_millis()
            )));
        }
        let started = Instant::now();
        let wait = !request.wait.is_zero();
        let req = Request::new(request.owner, request.resources, request.mode, request.ttl);
        let (id, rx) = loop {
            let decision = {
                let mut state = self.state();
                if wait && state.table.waiting() >= config.max_waiters {
                    return Err(LockError::TooManyWaiters);
                }
                let decision = state.table.request(req.clone(), Instant::now(), wait);
                if state.expiry_asleep && matches!(decision, Decision::Granted(_)) {
                    self.inner.expiry_wake.notify_one();
                }
                match decision {
                    Decision::Queued(id) => {
                        let (tx, rx) = oneshot::channel();
                        state.senders.insert(id, tx);
                        Ok((id, rx))
                    }
                    other => Err(other),
                }
            };
            match decision {
                Ok(queued) => break queued,
                Err(Decision::Granted(grant)) => return self.granted(grant, started).await.map(Some),
                Err(Decision::Busy) => return Ok(None),
                Err(Decision::Deadlock(cycle)) => {
                    metrics::counter!("strata_lock_deadlocks_total").increment(1);
                    return Err(LockError::Deadlock(cycle));
                }
                Err(Decision::NeedTokens) => self.raise_tokens().await?,
                Err(Decision::Queued(_)) => unreachable!("queued requests break out above"),
            }
        };
        let mut waiting = Waiting { locks: self, id, rx: Some(rx) };
        let rx = waiting.rx.as_mut().expect("set above");
        let remaining = request.wait.saturating_sub(started.elapsed());
        let grant = match tokio::time::timeout(remaining, rx).await {
            Ok(Ok(grant)) => grant,
            Ok(Err(_)) => return Err(LockError::Invalid("the lock table dropped a waiter".into())),
            Err(_) => match waiting.cancel() {
                Some(grant) => grant,
                None => return Ok(None),
            },
        };
        waiting.rx = None;
        self.granted(grant, started).await.map(Some)
    }

    /// Makes a grant durable, then answers it; undoes it when the store fails.
    async fn granted(&self, grant: Grant, started: Instant) -> LockResult<Lease> {
        let value = store::encode_hold(&grant.owner, grant.mode, store::wall_expiry(grant.expires));
        let mut ops: writer::Ops =
            grant.resources.iter().map(|r| (store::hold_key(r, grant.token), Some(value.clone()))).collect();
        ops.extend(store::deletions(&grant.replaced));
        if let Err(err) = self.write(ops).await {
            give_back(&mut self.state(), &grant);
            return Err(err);
        }
        metrics::histogram!("strata_lock_acquire_seconds").record(started.elapsed().as_secs_f64());
        let ttl = grant.expires.saturating_duration_since(Instant::now());
        Ok(Lease { token: grant.token, resources: grant.resources, ttl })
    }

    /// Releases the owner's holds on `resources` — all of them, or none when the owner does
    /// not hold one. Returns how many were released.
    pub async fn release(&self, owner: &str, resources: &[String]) -> LockResult<usize> {
        // The delete is queued before the waiters are woken, so their grants, queued after
        // it to the same writer, are never durable without it. The answer waits for it to
        // reach the journal, not for its fsync (`writer.rs` says why that is safe).
        let (durable, released) = {
            let mut state = self.state();
            let holds = state.table.held_by(owner, resources).map_err(LockError::NotOwner)?;
            let durable = self.inner.writer.queue(store::deletions(&holds), Durability::Written);
            let grants = state.table.release(&holds, Instant::now());
            dispatch(&mut state, grants);
            (durable, holds.len())
        };
        metrics::counter!("strata_lock_releases_total").increment(released as u64);
        wait_durable(durable).await?;
        Ok(released)
    }

    /// Moves the end of the owner's lease on `resource` to `ttl` from now.
    pub async fn extend(&self, owner: &str, resource: &str, ttl: Duration) -> LockResult<Lease> {
        self.check_ttl(ttl)?;
        let (token, expires, mode) = {
            let mut state = self.state();
            let (token, expires) = state
                .table
                .extend(owner, resource, ttl, Instant::now())
                .ok_or_else(|| LockError::NotOwner(resource.to_string()))?;
            let (holders, _) = state.table.info(resource);
            let mode = holders.iter().find(|h| h.token == token).map_or(Mode::Exclusive, |h| h.mode);
            (token, expires, mode)
        };
        let value = store::encode_hold(owner, mode, store::wall_expiry(expires));
        self.write(vec![(store::hold_key(resource, token), Some(value))]).await?;
        Ok(Lease { token, resources: vec![resource.to_string()], ttl })
    }

    /// Who holds `resource`, with tokens and remaining TTLs, and who waits for it.
    pub fn info(&self, resource: &str) -> LockInfo {
        let now = Instant::now();
        let (holders, waiters) = self.state().table.info(resource);
        LockInfo {
            holders: holders
                .into_iter()
                .map(|h| HolderInfo {
                    owner: h.owner,
                    token: h.token,
                    mode: h.mode,
                    ttl_left: h.expires.saturating_duration_since(now),
                })
                .collect(),
            waiters,
        }
    }

    /// Gauges for `/metrics`.
    pub fn publish_metrics(&self) {
        let state = self.state();
        metrics::gauge!("strata_lock_held_resources").set(state.table.held_resources() as f64);
        metrics::gauge!("strata_lock_waiting_requests").set(state.table.waiting() as f64);
    }

    /// Raises the durable token ceiling by a block.
    async fn raise_tokens(&self) -> LockResult<()> {
        let _one = self.inner.raising.lock().await;
        let (next, limit) = {
            let state = self.state();
            (state.table.next_token(), state.table.token_limit())
        };
        if limit.saturating_sub(next) > TOKEN_BLOCK / 2 {
            return Ok(());
        }
        let ceiling = limit + TOKEN_BLOCK;
        self.write(vec![(store::ceiling_key(), Some(ceiling.to_be_bytes().to_vec()))]).await?;
        let mut state = self.state();
        state.table.raise_token_limit(ceiling);
        let grants = state.table.wake_all(Instant::now());
        dispatch(&mut state, grants);
        Ok(())
    }

    /// Writes keys (`None` deletes) through the writer; returns once they are fsynced.
    async fn write(&self, ops: writer::Ops) -> LockResult<()> {
        wait_durable(self.inner.writer.queue(ops, Durability::Synced)).await
    }
}

async fn wait_durable(rx: oneshot::Receiver<LockResult<()>>) -> LockResult<()> {
    rx.await
        .map_err(|_| LockError::Storage(strata_core::Error::Unavailable("the lock writer stopped".into())))?
}

/// Hands grants to their waiters; a waiter that has gone gives its grant back at once.
fn dispatch(state: &mut State, grants: Vec<(u64, Grant)>) {
    let mut pending = grants;
    while let Some((id, grant)) = pending.pop() {
        let sent = match state.senders.remove(&id) {
            Some(tx) => tx.send(grant),
            None => Err(grant),
        };
        if let Err(grant) = sent {
            pending.extend(state.table.release(&grant.holds(), Instant::now()));
        }
    }
}

/// Ends a grant nobody will use (its write failed, its waiter left) and passes its
/// resources on.
fn give_back(state: &mut State, grant: &Grant) {
    let grants = state.table.release(&grant.holds(), Instant::now());
    dispatch(state, grants);
}

/// A queued acquire; dropped before its grant arrived (timeout, client gone), it leaves the
/// queue, and a grant that raced in is given back.
struct Waiting<'a> {
    locks: &'a Locks,
    id: u64,
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Waiting<'_> {
    /// Leaves the queue; returns the grant if it arrived first.
    fn cancel(&mut self) -> Option<Grant> {
        let mut state = self.locks.state();
        state.senders.remove(&self.id);
        match state.table.cancel(self.id, Instant::now()) {
            Some(grants) => {
                dispatch(&mut state, grants);
                self.rx = None;
                None
            }
            None => self.rx.take().and_then(|mut rx| rx.try_recv().ok()),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.rx.is_some()
            && let Some(grant) = self.cancel()
        {
            give_back(&mut self.locks.state(), &grant);
        }
    }
}

/// How long the expiry thread sleeps with no lease held before it checks that the block
/// is still open.
const IDLE_CHECK: Duration = Duration::from_millis(250);

/// Ends leases at their TTL, wakes their waiters, and deletes their records. Looks every
/// 2 ms while a lease is held; with none held it sleeps until one is granted, so an idle
/// block does not wake a core 500 times a second. (Sleeping until the next lease's end
/// instead, woken by sooner grants, was tried: it cut the lock benchmark's throughput by
/// two thirds on the 2-core VM, where the steady wake-ups also kept wake-up latency low.)
fn expire_loop(weak: Weak<Inner>) {
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let Some(inner) = weak.upgrade() else { return };
        let now = Instant::now();
        let ended = {
            let mut state = inner.state.lock().expect("lock table poisoned");
            let Some(next) = state.table.next_expiry() else {
                state.expiry_asleep = true;
                let mut state =
                    inner.expiry_wake.wait_timeout(state, IDLE_CHECK).expect("lock table poisoned").0;
                state.expiry_asleep = false;
                continue;
            };
            if next > now {
                continue;
            }
            let (ended, grants) = state.table.expire(now);
            dispatch(&mut state, grants);
            ended
        };
        // Expired records that a crash keeps are dropped on the next start anyway.
        inner.writer.queue_detached(store::deletions(&ended));
    }
}

#[cfg(test)]
mod tests;
