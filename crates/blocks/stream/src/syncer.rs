//! Group commit for the log: one thread takes every append waiting to become durable, calls
//! `fdatasync` once per segment file written since its last round, then raises each
//! partition's high watermark (what consumers may read) and answers the producers. While it
//! syncs, new appends queue up and share the next round, so N producers cost one fsync per
//! round, not N.

use crate::partition::Partition;
use std::fs::File;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch};

/// An append waiting to be durable.
pub(crate) struct Pending {
    pub partition: Arc<Partition>,
    pub file: Arc<File>,
    /// The log end offset after the append.
    pub end: i64,
    pub reply: Option<oneshot::Sender<std::io::Result<()>>>,
}

pub(crate) struct Syncer {
    queue: Mutex<Sender<Pending>>,
}

impl Syncer {
    /// Starts the sync thread; `progress` is bumped after every round that raised a watermark.
    pub fn start(progress: watch::Sender<u64>) -> std::io::Result<Syncer> {
        let (tx, rx) = channel();
        std::thread::Builder::new().name("stream-sync".into()).spawn(move || run(rx, progress))?;
        Ok(Syncer { queue: Mutex::new(tx) })
    }

    pub fn submit(&self, pending: Pending) {
        // The thread only exits when every sender is gone, so this cannot fail while we live.
        let _ = self.queue.lock().expect("syncer queue").send(pending);
    }
}

fn run(rx: Receiver<Pending>, progress: watch::Sender<u64>) {
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        round.extend(rx.try_iter());
        let mut files: Vec<&Arc<File>> = Vec::new();
        for pending in &round {
            if !files.iter().any(|f| Arc::ptr_eq(f, &pending.file)) {
                files.push(&pending.file);
            }
        }
        let mut failed = None;
        for file in files {
            if let Err(err) = file.sync_data() {
                tracing::error!(%err, "fdatasync of a stream segment failed; its appends are not acknowledged");
                failed = Some(err.kind());
            }
        }
        metrics::counter!("strata_stream_syncs_total").increment(1);
        for pending in round {
            let result = match failed {
                None => {
                    pending.partition.advance_high_watermark(pending.end);
                    Ok(())
                }
                Some(kind) => Err(std::io::Error::new(kind, "fdatasync failed")),
            };
            if let Some(reply) = pending.reply {
                let _ = reply.send(result);
            }
        }
        progress.send_modify(|n| *n += 1);
    }
}
