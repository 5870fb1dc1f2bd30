//! CLIENT PAUSE: holding clients' commands for a while, as a failover script does before it
//! promotes a replica. `CLIENT PAUSE ms [WRITE|ALL]` holds every command (ALL, the default)
//! or only those that may write (WRITE: write commands, scripts, PUBLISH) until the time is
//! up or `CLIENT UNPAUSE`; held commands then run in order. CLIENT commands are never held,
//! so a paused client can still unpause.

use crate::commands::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use strata_core::Clock;

pub(crate) struct Pause {
    /// The cache's clock, the one its key expiry reads.
    clock: Arc<dyn Clock>,
    /// The clock's ms the pause lasts until; 0 when there is none.
    until_ms: AtomicU64,
    writes_only: AtomicBool,
    /// Told when a pause starts, grows or is lifted.
    changed: tokio::sync::Notify,
}

/// Commands a WRITE pause holds besides those flagged `write`.
fn may_write(cmd: &Command) -> bool {
    cmd.flags.contains(&"write")
        || matches!(cmd.name, "eval" | "evalsha" | "fcall" | "publish" | "pfcount" | "exec")
}

impl Pause {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Pause {
        Pause {
            clock,
            until_ms: AtomicU64::new(0),
            writes_only: AtomicBool::new(false),
            changed: Default::default(),
        }
    }

    /// Whether a pause may be in force: one load, for the hot path.
    pub(crate) fn maybe(&self) -> bool {
        self.until_ms.load(Ordering::Relaxed) != 0
    }

    /// Pauses for `ms` from now. A second pause only extends the first, and an ALL pause
    /// stays ALL until it ends (as Redis has it).
    pub(crate) fn start(&self, ms: u64, writes_only: bool) {
        let now = self.clock.now_ms();
        let ongoing = self.until_ms.load(Ordering::Relaxed) > now;
        // Over an ongoing pause, the stricter mode and the later end win.
        let writes_only = writes_only && (!ongoing || self.writes_only.load(Ordering::Relaxed));
        self.writes_only.store(writes_only, Ordering::Relaxed);
        self.until_ms.fetch_max(now.saturating_add(ms).max(1), Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Lifts the pause; held commands run.
    pub(crate) fn end(&self) {
        self.until_ms.store(0, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Whether `cmd` must wait now.
    fn holds(&self, cmd: &Command) -> bool {
        let until = self.until_ms.load(Ordering::Relaxed);
        if until == 0 || cmd.name == "client" {
            return false;
        }
        if until <= self.clock.now_ms() {
            // Over: the next caller sees no pause at all.
            let _ = self.until_ms.compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
            return false;
        }
        !self.writes_only.load(Ordering::Relaxed) || may_write(cmd)
    }

    /// Returns once `cmd` is not held (at once when there is no pause).
    pub(crate) async fn wait(&self, cmd: &Command) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.holds(cmd) {
                return;
            }
            let left = self.until_ms.load(Ordering::Relaxed).saturating_sub(self.clock.now_ms());
            let _ = tokio::time::timeout(Duration::from_millis(left.max(1)), changed).await;
        }
    }
}
