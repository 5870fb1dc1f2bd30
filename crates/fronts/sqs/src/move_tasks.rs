//! Message move tasks (StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask):
//! a task moves a dead-letter queue's messages back to their source (or to a named queue)
//! in batches, at most `MaxNumberOfMessagesPerSecond` when given, until the queue is empty
//! or it is cancelled. One task runs per source queue at a time; the ten newest per source
//! are listed, newest first.
//!
//! Each batch is one core transaction, so every message moved stays moved. The task list
//! itself lives in memory: after a restart a task that was running has stopped, and the list
//! starts empty.

use base64::Engine;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use strata_queue::Queues;

/// Tasks kept per source queue.
const KEPT: usize = 10;
/// Messages moved per transaction.
const BATCH: usize = 100;
/// Most source queues with a task list; the oldest lists go first.
const MAX_SOURCES: usize = 10_000;

struct Task {
    handle: String,
    source_arn: String,
    destination_arn: Option<String>,
    max_per_second: Option<u64>,
    started_ms: u64,
    to_move: u64,
    moved: AtomicU64,
    cancel: AtomicBool,
    /// RUNNING, COMPLETED, CANCELLED or FAILED, and why it failed.
    status: Mutex<(&'static str, Option<String>)>,
}

impl Task {
    fn to_json(&self) -> Value {
        let (status, failure) = self.status.lock().expect("task lock").clone();
        let mut out = json!({
            "TaskHandle": self.handle,
            "Status": status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved.load(Ordering::Relaxed),
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        });
        if let Some(d) = &self.destination_arn {
            out["DestinationArn"] = json!(d);
        }
        if let Some(m) = self.max_per_second {
            out["MaxNumberOfMessagesPerSecond"] = json!(m);
        }
        if let Some(f) = failure {
            out["FailureReason"] = json!(f);
        }
        out
    }

    fn running(&self) -> bool {
        self.status.lock().expect("task lock").0 == "RUNNING"
    }
}

/// The tasks of every source queue, newest first. Cheap to clone.
#[derive(Clone, Default)]
pub struct MoveTasks {
    by_source: Arc<Mutex<HashMap<String, VecDeque<Arc<Task>>>>>,
}

/// Why a task request was refused.
pub enum Refused {
    /// A task already runs for the source queue.
    Running,
    /// The handle names no task, or one that is not running.
    NotFound,
}

impl MoveTasks {
    /// Starts a task moving `source`'s messages to `destination` (their source queue when
    /// `None`); returns its handle. `to_move` is the queue's approximate depth now.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        queues: Queues,
        source: String,
        source_arn: String,
        destination: Option<String>,
        destination_arn: Option<String>,
        max_per_second: Option<u64>,
        to_move: u64,
    ) -> Result<String, Refused> {
        let started_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let handle = base64::engine::general_purpose::STANDARD.encode(
            json!({"sourceArn": source_arn, "taskId": format!("{started_ms:x}-{:x}", rand_id())}).to_string(),
        );
        let task = Arc::new(Task {
            handle: handle.clone(),
            source_arn,
            destination_arn,
            max_per_second,
            started_ms,
            to_move,
            moved: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            status: Mutex::new(("RUNNING", None)),
        });
        {
            let mut all = self.by_source.lock().expect("tasks lock");
            let list = all.entry(source.clone()).or_default();
            if list.front().is_some_and(|t| t.running()) {
                return Err(Refused::Running);
            }
            list.push_front(task.clone());
            list.truncate(KEPT);
            if all.len() > MAX_SOURCES
                && let Some(oldest) = all
                    .iter()
                    .filter(|(_, l)| !l.front().is_some_and(|t| t.running()))
                    .min_by_key(|(_, l)| l.front().map_or(0, |t| t.started_ms))
                    .map(|(s, _)| s.clone())
            {
                all.remove(&oldest);
            }
        }
        tokio::spawn(run(queues, source, destination, task));
        Ok(handle)
    }

    /// The newest tasks of `source`, at most `max`.
    pub fn list(&self, source: &str, max: usize) -> Vec<Value> {
        let all = self.by_source.lock().expect("tasks lock");
        all.get(source).map(|l| l.iter().take(max).map(|t| t.to_json()).collect()).unwrap_or_default()
    }

    /// Asks the running task `handle` to stop; returns how many it had moved.
    pub fn cancel(&self, handle: &str) -> Result<u64, Refused> {
        let all = self.by_source.lock().expect("tasks lock");
        let task = all.values().flatten().find(|t| t.handle == handle).ok_or(Refused::NotFound)?;
        if !task.running() {
            return Err(Refused::NotFound);
        }
        task.cancel.store(true, Ordering::Release);
        *task.status.lock().expect("task lock") = ("CANCELLING", None);
        Ok(task.moved.load(Ordering::Relaxed))
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
    h.finish()
}

/// Moves batch after batch until nothing is left, it is cancelled, or a batch fails.
async fn run(queues: Queues, source: String, destination: Option<String>, task: Arc<Task>) {
    let batch = task.max_per_second.map_or(BATCH, |m| (m as usize).clamp(1, BATCH));
    let end = loop {
        if task.cancel.load(Ordering::Acquire) {
            break ("CANCELLED", None);
        }
        let started = tokio::time::Instant::now();
        let (q, s, d) = (queues.clone(), source.clone(), destination.clone());
        let moved = tokio::task::spawn_blocking(move || q.move_messages(&s, d.as_deref(), batch)).await;
        match moved {
            Ok(Ok(0)) => break ("COMPLETED", None),
            Ok(Ok(n)) => {
                task.moved.fetch_add(n, Ordering::Relaxed);
                if let Some(rate) = task.max_per_second {
                    // `n` messages may take n/rate seconds.
                    let budget = Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
                    tokio::time::sleep_until(started + budget).await;
                }
            }
            Ok(Err(err)) => break ("FAILED", Some(err.to_string())),
            Err(err) => break ("FAILED", Some(err.to_string())),
        }
    };
    *task.status.lock().expect("task lock") = (end.0, end.1);
}
