//! CancelRequest (psql's Ctrl-C, tokio-postgres's `CancelToken`): a client opens a second
//! connection and names the first by the process id and secret key it got at startup; the
//! statement running on the first then fails with 57014 (see `strata_sql`'s cancel flag).

use async_trait::async_trait;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A connection's (process id, secret key).
type ConnectionKey = (i32, Vec<u8>);

/// The cancel flag of each connection's session.
#[derive(Default)]
pub(crate) struct Cancels {
    flags: Mutex<HashMap<ConnectionKey, Arc<AtomicBool>>>,
}

/// A connection's entry in [`Cancels`], removed when the connection ends.
pub(crate) struct Registration {
    key: ConnectionKey,
    cancels: Arc<Cancels>,
}

impl Cancels {
    pub(crate) fn register(
        self: &Arc<Self>,
        pid: i32,
        secret: &SecretKey,
        flag: Arc<AtomicBool>,
    ) -> Registration {
        let key = (pid, secret.to_bytes().to_vec());
        self.flags.lock().expect("cancel registry poisoned").insert(key.clone(), flag);
        Registration { key, cancels: self.clone() }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancels.flags.lock().expect("cancel registry poisoned").remove(&self.key);
    }
}

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        // A request naming no connection is ignored, as PostgreSQL does (it answers none).
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        if let Some(flag) = self.flags.lock().expect("cancel registry poisoned").get(&key) {
            flag.store(true, Ordering::Relaxed);
        }
    }
}
