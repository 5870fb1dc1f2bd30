//! A partition: its log behind a lock, and the high watermark — the end of what is durable,
//! which is all a consumer may read.

use crate::StreamError;
use crate::log::{Log, Slice};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

pub struct Partition {
    pub index: i32,
    log: Mutex<Log>,
    high_watermark: AtomicI64,
}

impl Partition {
    pub(crate) fn new(index: i32, log: Log) -> Partition {
        let end = log.next_offset();
        Partition { index, log: Mutex::new(log), high_watermark: AtomicI64::new(end) }
    }

    pub(crate) fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().expect("partition log lock")
    }

    /// The offset after the last durable record.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start(&self) -> i64 {
        self.log().log_start()
    }

    pub(crate) fn advance_high_watermark(&self, end: i64) {
        self.high_watermark.fetch_max(end, Ordering::AcqRel);
    }

    /// Batches from `offset`, at most `max_bytes` (but at least one batch) of durable data.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Slice>, StreamError> {
        let end = self.high_watermark();
        self.log().read(offset, end, max_bytes)
    }
}
