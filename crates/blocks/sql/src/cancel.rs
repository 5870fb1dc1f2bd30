//! Cancelling a running statement (PostgreSQL's CancelRequest, psql's Ctrl-C).
//!
//! Each [`crate::Session`] owns a flag that a front may set from another thread. While a
//! statement runs, the flag is the current thread's (a statement runs on the thread that
//! called the session), so the executor's long loops ask [`check`] without the flag being
//! passed through every plan operator. A set flag fails the statement with 57014, as
//! PostgreSQL's "canceling statement due to user request".
//!
//! Checked: every row read by a scan, every row pair a nested-loop join compares,
//! `pg_sleep`, and every 50 ms of a wait for a row lock.

use crate::error::{SqlError, SqlResult};
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    static CURRENT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// While alive, `flag` is the cancel flag of the statement running on this thread.
pub(crate) struct Scope {
    previous: Option<Arc<AtomicBool>>,
}

impl Scope {
    /// Clears `flag` (a cancel that arrived between statements cancels nothing, as in
    /// PostgreSQL) and makes it this thread's.
    pub(crate) fn enter(flag: &Arc<AtomicBool>) -> Scope {
        flag.store(false, Ordering::Relaxed);
        Scope { previous: CURRENT.with(|c| c.replace(Some(flag.clone()))) }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = self.previous.take());
    }
}

/// Fails with 57014 if the statement running on this thread has been cancelled.
pub(crate) fn check() -> SqlResult<()> {
    let cancelled = CURRENT.with(|c| c.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)));
    if cancelled {
        return Err(SqlError::new("57014", "canceling statement due to user request"));
    }
    Ok(())
}

/// Sleeps for `seconds` (PostgreSQL's `pg_sleep`), waking to honour a cancel.
pub(crate) fn sleep(seconds: f64) -> SqlResult<()> {
    const SLICE: std::time::Duration = std::time::Duration::from_millis(10);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds.clamp(0.0, 1e9));
    loop {
        check()?;
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(());
        }
        std::thread::sleep((deadline - now).min(SLICE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_flag_fails_checks_only_inside_its_scope() {
        let flag = Arc::new(AtomicBool::new(true));
        {
            let _scope = Scope::enter(&flag);
            assert!(check().is_ok(), "entering clears an earlier cancel");
            flag.store(true, Ordering::Relaxed);
            assert_eq!(check().unwrap_err().code, "57014");
            assert_eq!(sleep(60.0).unwrap_err().code, "57014");
        }
        assert!(check().is_ok(), "no statement runs outside the scope");
    }
}
