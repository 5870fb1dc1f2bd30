//! The expiry thread's alarm: the thread sleeps until the next lease ends, and whoever
//! grants or extends a lease that ends sooner wakes it.
//!
//! Polling every few milliseconds instead cost a context switch 500 times a second on a
//! machine whose cores were busy serving requests, with no lock held at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest sleep when no lease is held: the thread then checks that the block is
/// still open.
const IDLE: Duration = Duration::from_secs(1);

pub struct Alarm {
    base: Instant,
    /// When the thread wakes next, in nanoseconds after `base`.
    until: AtomicU64,
    /// Set when the block is dropped.
    stopped: Mutex<bool>,
    ring: Condvar,
}

impl Alarm {
    pub fn new() -> Alarm {
        Alarm {
            base: Instant::now(),
            until: AtomicU64::new(0),
            stopped: Mutex::new(false),
            ring: Condvar::new(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos().min(u128::from(u64::MAX)) as u64
    }

    /// Called with the lock table's next lease end after a lease was granted or
    /// extended: wakes the thread when it sleeps past it.
    pub fn sooner(&self, next_expiry: Option<Instant>) {
        let Some(at) = next_expiry else { return };
        let at = self.nanos(at);
        if at < self.until.load(Ordering::Acquire) {
            let _stopped = self.stopped.lock().expect("alarm poisoned");
            self.until.store(at, Ordering::Release);
            self.ring.notify_one();
        }
    }

    /// Sets the next wake-up: the table's next lease end, or a while from now when none is
    /// held. Called by the thread while it holds the table, so a grant made after it sees
    /// the new time.
    pub fn set(&self, next_expiry: Option<Instant>) {
        let at = next_expiry.unwrap_or_else(|| Instant::now() + IDLE);
        self.until.store(self.nanos(at), Ordering::Release);
    }

    /// Sleeps until the wake-up time (as lowered meanwhile by [`Alarm::sooner`]), a ring, or
    /// [`Alarm::stop`]; returns false once stopped.
    pub fn sleep(&self) -> bool {
        let stopped = self.stopped.lock().expect("alarm poisoned");
        if *stopped {
            return false;
        }
        let until = self.base + Duration::from_nanos(self.until.load(Ordering::Acquire));
        let timeout = until.saturating_duration_since(Instant::now());
        if timeout.is_zero() {
            return true;
        }
        let (stopped, _) = self.ring.wait_timeout(stopped, timeout.min(IDLE)).expect("alarm poisoned");
        !*stopped
    }

    /// Ends the thread's sleeps for good.
    pub fn stop(&self) {
        *self.stopped.lock().expect("alarm poisoned") = true;
        self.ring.notify_one();
    }
}
