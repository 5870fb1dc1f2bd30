//! The one writer of the lock keyspace: a thread that takes every write queued since its
//! last commit and commits them as one core transaction (one fsync), then answers each.
//!
//! Batching here, rather than one core commit per lease, is what lets 50 clients share an
//! fsync without 50 blocking threads waking for it. One writer also means writes reach
//! disk in the order they were queued: a grant queued after a release is never durable
//! without that release.

use crate::{LockError, LockResult};
use std::sync::mpsc;
use strata_core::{Keyspace, Store};
use tokio::sync::oneshot;

/// Key writes: a value sets, `None` deletes.
pub type Ops = Vec<(Vec<u8>, Option<Vec<u8>>)>;

struct Job {
    ops: Ops,
    done: Option<oneshot::Sender<LockResult<()>>>,
}

/// Most writes committed together.
const MAX_BATCH: usize = 4096;

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread; it ends when every `Writer` is dropped.
    pub fn start(store: Store, ks: Keyspace) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("lock-writer".into()).spawn(move || {
            while let Ok(first) = jobs.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let result = commit(&store, &ks, &batch);
                if let Err(err) = &result {
                    tracing::error!(%err, "committing lock writes failed");
                }
                metrics::histogram!("strata_lock_commit_batch").record(batch.len() as f64);
                for job in batch {
                    if let Some(done) = job.done {
                        let answer = match &result {
                            Ok(()) => Ok(()),
                            Err(err) => {
                                Err(LockError::Storage(strata_core::Error::Unavailable(err.to_string())))
                            }
                        };
                        let _ = done.send(answer);
                    }
                }
            }
        })?;
        Ok(Writer { queue })
    }

    /// Queues `ops`; the receiver answers once they are durable.
    pub fn queue(&self, ops: Ops) -> oneshot::Receiver<LockResult<()>> {
        let (done, rx) = oneshot::channel();
        // A send fails only when the thread is gone; the dropped sender then closes `rx`.
        let _ = self.queue.send(Job { ops, done: Some(done) });
        rx
    }

    /// Queues `ops` without waiting for them (expired holds).
    pub fn queue_detached(&self, ops: Ops) {
        let _ = self.queue.send(Job { ops, done: None });
    }
}

fn commit(store: &Store, ks: &Keyspace, batch: &[Job]) -> strata_core::Result<()> {
    let mut txn = store.begin();
    for job in batch {
        for (key, value) in &job.ops {
            match value {
                Some(v) => txn.set(ks, key.clone(), v.clone())?,
                None => txn.delete(ks, key.clone())?,
            }
        }
    }
    txn.commit()?;
    Ok(())
}
