//! Progress reporting for long pipeline work.
//!
//! A step reports `(done, total, message)` through a [`Progress`] sink. The CLI
//! turns that into an indicatif bar (terminal) or plain log lines (not a
//! terminal); the TUI (later) forwards it over a channel. Pipeline code never
//! knows which one it talks to.

use std::sync::atomic::{AtomicBool, Ordering};

/// A sink for progress reports. Implementations must be cheap to call often;
/// callers report at most every few thousand rows.
pub trait Progress: Send + Sync {
    /// Start a new phase (e.g. "load crm") with a known or unknown (`0`) total.
    fn start(&self, phase: &str, total: u64);
    /// Work done so far in the current phase.
    fn update(&self, done: u64);
    /// A human-readable note (e.g. "skipped: already loaded").
    fn message(&self, msg: &str);
    /// The current phase is finished.
    fn finish(&self);
    /// Cooperative cancellation: long loops check this and stop cleanly.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Discards every report. Used by tests and library callers that do not care.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: u64) {}
    fn update(&self, _done: u64) {}
    fn message(&self, _msg: &str) {}
    fn finish(&self) {}
}

/// A progress sink that only carries a cancellation flag.
#[derive(Default)]
pub struct CancelFlag(pub AtomicBool);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Progress for CancelFlag {
    fn start(&self, _phase: &str, _total: u64) {}
    fn update(&self, _done: u64) {}
    fn message(&self, _msg: &str) {}
    fn finish(&self) {}
    fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Stop when the user cancelled: an error that rolls the step's
/// transaction back ("`what` cancelled; nothing was written").
pub fn check_cancelled(progress: &dyn Progress, what: &str) -> anyhow::Result<()> {
    if progress.is_cancelled() {
        anyhow::bail!("{what} cancelled; nothing was written");
    }
    Ok(())
}

/// Run `f` while a watcher interrupts the connection's SQL (through
/// `handle`) once `progress` is cancelled: a single long statement (an
/// index build, a rewrite of millions of rows) then stops within a few
/// tens of milliseconds instead of at the next check between phases, and
/// the step fails, so its transaction rolls back.
pub fn interrupt_on_cancel<T>(
    handle: rusqlite::InterruptHandle,
    progress: &dyn Progress,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                // An interrupt only stops statements running at the time,
                // so it is repeated for as long as the work goes on.
                if progress.is_cancelled() {
                    handle.interrupt();
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let result = f();
        done.store(true, Ordering::Relaxed);
        result
    })
}

/// Whether `e` is (or wraps) SQLite's "interrupted" error.
pub fn was_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::OperationInterrupted)
    })
}

#[cfg(test)]
mod interrupt_tests {
    use super::*;

    /// A count to 10^12 would run for hours: the cancelled watcher must stop it.
    const ENDLESS: &str =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1000000000000)
                           SELECT count(*) FROM c";

    #[test]
    fn a_cancelled_run_interrupts_a_long_statement() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let flag = CancelFlag::default();
        let result = interrupt_on_cancel(conn.get_interrupt_handle(), &flag, || {
            flag.cancel();
            Ok(conn.query_row(ENDLESS, [], |r| r.get::<_, i64>(0))?)
        });
        let e = result.unwrap_err();
        assert!(was_interrupted(&e), "{e}");
        assert!(!was_interrupted(&anyhow::anyhow!("another failure")));
    }

    #[test]
    fn without_a_cancel_the_work_runs_to_its_end() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let n = interrupt_on_cancel(conn.get_interrupt_handle(), &NoProgress, || {
            std::thread::sleep(std::time::Duration::from_millis(60));
            Ok(conn.query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 200000) SELECT count(*) FROM c",
                [],
                |r| r.get::<_, i64>(0),
            )?)
        })
        .unwrap();
        assert_eq!(n, 200_000);
    }
}
