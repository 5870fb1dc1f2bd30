//! strata-cache: a Redis-compatible in-memory data store.
//!
//! [`Cache`] holds the sixteen databases behind one lock (Redis runs commands one at a time;
//! so do we, which makes every command, MULTI/EXEC block and script atomic) plus pub/sub,
//! blocked clients and the client registry. A [`Session`] is one client's connection state
//! (selected database, RESP version, MULTI queue, WATCHed keys, subscriptions) and runs
//! commands given as argument vectors; the resp front only frames bytes.
//!
//! Persistence (`log`): the keys each write touched are written through core, in the order
//! commands ran, before the write is acknowledged; see [`persist`].

mod cmsgpack;
mod commands;
mod disconnect;
pub mod glob;
mod keyspace;
mod latency;
mod list;
mod pause;
pub mod persist;
mod pubsub;
pub mod reply;
mod scripting;
mod session;
mod slowlog;
pub mod stream;
pub mod value;
pub mod zset;

pub use disconnect::Disconnect;
pub use keyspace::{Policy, Settings, Stats};
pub use pubsub::QUEUE_LIMIT as PUBSUB_QUEUE_LIMIT;
pub use reply::Reply;
pub use session::{Session, parse_memory};

/// Command arguments from words, for unit tests.
#[cfg(test)]
pub(crate) fn words(words: &[&str]) -> Vec<Bytes> {
    words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
}

use bytes::Bytes;
use keyspace::Keyspace;
use parking_lot::Mutex;
use pubsub::PubSub;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use strata_core::Clock;
use tokio::sync::Notify;

/// The Redis version we report: clients (hiredis, redis-py, redis-rs) gate features on it.
pub const REDIS_VERSION: &str = "7.2.4";

#[derive(Debug, Clone)]
pub struct CacheOptions {
    pub databases: usize,
    pub settings: Settings,
    /// Largest string value or argument (Redis's proto-max-bulk-len).
    pub max_bulk_bytes: usize,
    /// `AUTH` password for the default user; None = no authentication.
    pub password: Option<String>,
    /// Port reported by INFO.
    pub tcp_port: u16,
    /// Memory limit of the Lua heap (0 = none).
    pub script_memory_bytes: usize,
    /// After this long, a running script makes other clients' commands answer `-BUSY`
    /// (Redis's busy-reply-threshold).
    pub script_busy_ms: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            databases: 16,
            settings: Settings::default(),
            max_bulk_bytes: 512 * 1024 * 1024,
            password: None,
            tcp_port: 6379,
            script_memory_bytes: 256 * 1024 * 1024,
            script_busy_ms: 5000,
        }
    }
}

/// One connected client as CLIENT LIST shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientInfo {
    pub addr: String,
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub db: usize,
    pub created: u64,
    pub resp: u8,
    /// Channels and patterns subscribed to.
    pub sub: usize,
    pub psub: usize,
    /// Closes the client's connection (`CLIENT KILL`).
    pub disconnect: Arc<Disconnect>,
}

impl ClientInfo {
    /// Whether the client listens to any channel or pattern (a pub/sub client).
    pub fn subscribed(&self) -> bool {
        self.sub + self.psub > 0
    }
}

/// A blocked client: which session, and how to wake it.
type Waiters = HashMap<(usize, Bytes), Vec<(u64, Arc<Notify>)>>;

pub(crate) struct Shared {
    pub ks: Mutex<Keyspace>,
    pub waiters: Mutex<Waiters>,
    pub pubsub: Mutex<PubSub>,
    pub clients: Mutex<BTreeMap<u64, ClientInfo>>,
    pub next_client: AtomicU64,
    pub total_connections: AtomicU64,
    pub total_commands: AtomicU64,
    pub blocked: AtomicUsize,
    /// Registrations in `waiters`, read without taking that lock.
    pub waiting: AtomicUsize,
    pub started: Instant,
    pub options: CacheOptions,
    pub persister: Option<persist::Persister>,
    pub clock: Arc<dyn Clock>,
    pub scripting: Mutex<scripting::Scripting>,
    pub script_status: Arc<scripting::ScriptStatus>,
    pub pause: pause::Pause,
    pub slowlog: slowlog::SlowLog,
    pub latency: latency::Latency,
}

#[derive(Clone)]
pub struct Cache {
    shared: Arc<Shared>,
}

impl Cache {
    /// An in-memory cache (`cache.persistence = "none"`).
    pub fn new(options: CacheOptions, clock: Arc<dyn Clock>) -> Cache {
        let ks = Keyspace::new(options.databases, options.settings.clone(), clock.clone());
        Cache::from_parts(options, clock, ks, None)
    }

    /// A cache whose writes are durable through core before they are acknowledged; the data
    /// set is loaded from `store` first.
    pub fn open_persistent(
        options: CacheOptions,
        clock: Arc<dyn Clock>,
        store: strata_core::Store,
    ) -> Result<Cache, strata_core::Error> {
        let mut ks = Keyspace::new(options.databases, options.settings.clone(), clock.clone());
        let persister = persist::Persister::open(store, &mut ks)?;
        let libraries = persister.libraries()?;
        let cache = Cache::from_parts(options, clock, ks, Some(persister));
        let mut scripting = cache.shared.scripting.lock();
        for (name, code) in libraries {
            if let Err(err) = scripting.function_load(code.as_bytes(), true) {
                tracing::error!(library = %name, ?err, "a stored FUNCTION library failed to load");
            }
        }
        drop(scripting);
        Ok(cache)
    }

    fn from_parts(
        options: CacheOptions,
        clock: Arc<dyn Clock>,
        ks: Keyspace,
        persister: Option<persist::Persister>,
    ) -> Cache {
        let script_status = Arc::new(scripting::ScriptStatus::default());
        let scripting = scripting::Scripting::new(options.script_memory_bytes, script_status.clone())
            .expect("the Lua VM starts");
        Cache {
            shared: Arc::new(Shared {
                scripting: Mutex::new(scripting),
                script_status,
                pause: pause::Pause::new(clock.clone()),
                slowlog: slowlog::SlowLog::default(),
                latency: latency::Latency::default(),
                ks: Mutex::new(ks),
                waiters: Mutex::new(HashMap::new()),
                pubsub: Mutex::new(PubSub::default()),
                clients: Mutex::new(BTreeMap::new()),
                next_client: AtomicU64::new(1),
                total_connections: AtomicU64::new(0),
                total_commands: AtomicU64::new(0),
                blocked: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                started: Instant::now(),
                options,
                persister,
                clock,
            }),
        }
    }

    /// A new client connection coming from `addr`.
    pub fn session(&self, addr: &str) -> Session {
        Session::new(self.shared.clone(), addr)
    }

    /// One round of active expiry (Redis runs it 10 times a second); returns keys deleted.
    /// Skipped when the keyspace is busy (a script or a long command holds it).
    pub fn active_expire(&self) -> usize {
        let Some(mut ks) = self.shared.ks.try_lock() else { return 0 };
        let deleted = ks.expire_cycle(200);
        let touched = ks.finish();
        if let Some(p) = &self.shared.persister {
            p.record(&ks, &touched);
        }
        deleted
    }

    /// Publishes the cache's counters and gauges to the metrics recorder (`/metrics`).
    pub fn publish_metrics(&self) {
        let (stats, used, keys) = {
            let Some(ks) = self.shared.ks.try_lock() else { return };
            let keys: usize = (0..ks.databases()).map(|db| ks.len(db)).sum();
            (ks.stats.clone(), ks.used_memory(), keys)
        };
        metrics::counter!("strata_cache_commands_total")
            .absolute(self.shared.total_commands.load(Ordering::Relaxed));
        metrics::counter!("strata_cache_keyspace_hits_total").absolute(stats.hits);
        metrics::counter!("strata_cache_keyspace_misses_total").absolute(stats.misses);
        metrics::counter!("strata_cache_expired_keys_total").absolute(stats.expired);
        metrics::counter!("strata_cache_evicted_keys_total").absolute(stats.evicted);
        metrics::gauge!("strata_cache_used_memory_bytes").set(used as f64);
        metrics::gauge!("strata_cache_keys").set(keys as f64);
        metrics::gauge!("strata_cache_connected_clients").set(self.shared.connected_clients() as f64);
    }

    pub fn stats(&self) -> Stats {
        self.shared.ks.lock().stats.clone()
    }

    pub fn used_memory(&self) -> usize {
        self.shared.ks.lock().used_memory()
    }

    /// Waits until everything recorded so far is durable (no-op without persistence).
    pub async fn flush(&self) {
        if let Some(p) = &self.shared.persister {
            let upto = p.recorded();
            p.wait_durable(upto).await;
        }
    }
}

impl Shared {
    /// Wakes clients blocked on the touched keys and records them for persistence; the
    /// ticket to wait for, when persisting.
    pub(crate) fn after_write(
        &self,
        ks: &crate::keyspace::Keyspace,
        touched: &[(usize, Bytes)],
    ) -> Option<u64> {
        if touched.is_empty() {
            return None;
        }
        // Registrations happen under the keyspace lock too, so this count is current.
        if self.waiting.load(Ordering::Relaxed) > 0 {
            let waiters = self.waiters.lock();
            for key in touched {
                if let Some(list) = waiters.get(key) {
                    for (_, notify) in list {
                        notify.notify_one();
                    }
                }
            }
        }
        self.persister.as_ref().map(|p| p.record(ks, touched))
    }

    /// Locks the keyspace. While a script has run longer than `script_busy_ms`, gives up with
    /// `-BUSY` instead of waiting, so this worker thread stays free for SCRIPT KILL.
    pub(crate) fn lock_ks(&self) -> Result<parking_lot::MutexGuard<'_, Keyspace>, Reply> {
        loop {
            if let Some(guard) = self.ks.try_lock_for(std::time::Duration::from_millis(2)) {
                return Ok(guard);
            }
            let started = self.script_status.started_ms.load(Ordering::Acquire);
            if started != 0 && self.clock.now_ms().saturating_sub(started) >= self.options.script_busy_ms {
                return Err(Reply::err(
                    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
                ));
            }
        }
    }

    pub(crate) fn connected_clients(&self) -> usize {
        self.clients.lock().len()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }
}
