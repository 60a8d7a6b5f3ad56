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
