//! The structured access log: one JSON object per request, written by a thread of its own
//! (every 20 ms) so a slow disk never holds a request. Lines that do not fit the queue are counted
//! (`strata_proxy_access_log_dropped_total`) and dropped.

use std::io::Write;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Lines queued for the writer at most.
const QUEUE: usize = 65_536;
/// How often the writer takes what is queued.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

#[derive(Clone)]
pub struct AccessLog {
    lines: Option<SyncSender<String>>,
}

impl AccessLog {
    pub fn off() -> AccessLog {
        AccessLog { lines: None }
    }

    /// `"stdout"`, a file path (appended to), or `""` for none.
    pub fn open(target: &str) -> std::io::Result<AccessLog> {
        let mut out: Box<dyn Write + Send> = match target {
            "" => return Ok(AccessLog::off()),
            "stdout" => Box::new(std::io::stdout()),
            path => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (tx, rx) = sync_channel::<String>(QUEUE);
        std::thread::Builder::new().name("proxy-access-log".into()).spawn(move || {
            // Polled rather than blocked on: a parked writer would be woken (a futex call
            // and a context switch) by every request.
            let mut buf = std::io::BufWriter::new(&mut out);
            loop {
                std::thread::sleep(FLUSH_EVERY);
                loop {
                    match rx.try_recv() {
                        Ok(line) => {
                            let _ = writeln!(buf, "{line}");
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            let _ = buf.flush();
                            return;
                        }
                    }
                }
                let _ = buf.flush();
            }
        })?;
        Ok(AccessLog { lines: Some(tx) })
    }

    pub fn enabled(&self) -> bool {
        self.lines.is_some()
    }

    pub fn write(&self, entry: &impl serde::Serialize) {
        let Some(tx) = &self.lines else { return };
        let Ok(line) = serde_json::to_string(entry) else { return };
        if let Err(TrySendError::Full(_)) = tx.try_send(line) {
            metrics::counter!("strata_proxy_access_log_dropped_total").increment(1);
        }
    }
}
