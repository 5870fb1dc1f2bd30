//! Closing a client's connection from outside it: `CLIENT KILL`, or a pub/sub subscriber
//! too far behind. The session reports it as closing; the front also waits on it while idle
//! or writing, so a client that sends nothing and reads nothing is closed at once.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Disconnect {
    set: AtomicBool,
    notify: Notify,
}

impl Disconnect {
    pub fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Resolves once the connection is to close.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}
