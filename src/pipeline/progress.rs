//! Progress reporting for long pipeline work.
//!
//! A step reports `(done, total, message)` through a [`Progress`] sink. The CLI
//! turns that into an indicatif bar (terminal) or plain log lines (not a
//! terminal); the TUI (later) forwards it over a channel. Pipeline code never
//! knows which one it talks to.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// The share of the whole step done (0.0–1.0) and the time it has left,
    /// as [`StepProgress`] estimates them from the step's previous run.
    fn overall(&self, _share: f64, _left: Option<Duration>) {}
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

/// CPU seconds this process has used so far (user + system, all threads).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// One phase of a step as it ran: wall and CPU seconds (200 % of the wall
/// time is both cores busy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    pub name: String,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

impl PhaseTime {
    /// CPU use as a percentage of one core.
    pub fn cpu_pct(&self) -> f64 {
        100.0 * self.cpu_seconds / self.seconds.max(1e-9)
    }
}

/// A step's progress as a whole. Forwards every report to the sink it
/// wraps, times each phase (wall and CPU), and tells the sink the share of
/// the step done and the time left ([`Progress::overall`]), estimated from
/// the phases of the step's previous run: each finished phase counts what
/// it took then, the current one in proportion to its done / total, and
/// the time left is the previous run's remainder at this run's pace.
/// Without a previous run the step's phases are counted instead (each
/// phase an equal share, see [`StepProgress::first_run`]): a share done, but
/// no time left, which would be a guess.
pub struct StepProgress<'a> {
    inner: &'a dyn Progress,
    expected: Vec<PhaseTime>,
    /// The expected phases are a plan of names, not timings.
    rough: bool,
    state: Mutex<StepState>,
}

struct StepState {
    started: Instant,
    phases: Vec<PhaseTime>,
    /// The phase running: its name, start, CPU at start, total and done.
    current: Option<(String, Instant, f64, u64, u64)>,
    /// When the overall share was last sent (sent at most every 100 ms).
    last_sent: Option<Instant>,
}

impl<'a> StepProgress<'a> {
    /// A step estimated from `expected`; when that is empty (its first
    /// run), from the plan of phase names `plan`, each an equal share.
    pub fn with_plan(inner: &'a dyn Progress, expected: Vec<PhaseTime>, plan: Vec<String>) -> Self {
        if !expected.is_empty() {
            return StepProgress::new(inner, expected);
        }
        let mut p = StepProgress::new(
            inner,
            plan.into_iter()
                .map(|name| PhaseTime {
                    name,
                    seconds: 1.0,
                    cpu_seconds: 0.0,
                })
                .collect(),
        );
        p.rough = true;
        p
    }

    pub fn new(inner: &'a dyn Progress, expected: Vec<PhaseTime>) -> Self {
        StepProgress {
            inner,
            expected,
            rough: false,
            state: Mutex::new(StepState {
                started: Instant::now(),
                phases: Vec::new(),
                current: None,
                last_sent: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StepState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The phases run so far (the current one closed now).
    pub fn phases(&self) -> Vec<PhaseTime> {
        let mut s = self.lock();
        close_phase(&mut s);
        s.phases.clone()
    }

    /// The share done and the time left, or None without a previous run.
    fn estimate(&self, s: &StepState) -> Option<(f64, Option<Duration>)> {
        let total: f64 = self.expected.iter().map(|p| p.seconds).sum();
        if total <= 0.0 {
            return None;
        }
        // Each expected phase is matched once, by name, in order of use.
        let mut used = vec![false; self.expected.len()];
        let mut take = |name: &str| {
            let i =
                (0..self.expected.len()).find(|&i| !used[i] && self.expected[i].name == name)?;
            used[i] = true;
            Some(self.expected[i].seconds)
        };
        let mut done: f64 = s.phases.iter().filter_map(|p| take(&p.name)).sum();
        if let Some((name, _, _, total_rows, done_rows)) = &s.current
            && *total_rows > 0
            && let Some(secs) = take(name)
        {
            done += secs * (*done_rows).min(*total_rows) as f64 / *total_rows as f64;
        }
        let share = (done / total).clamp(0.0, 0.99);
        if self.rough {
            return Some((share, None));
        }
        let elapsed = s.started.elapsed().as_secs_f64();
        let left = (done > 0.0)
            .then(|| Duration::from_secs_f64(((total - done).max(0.0) * elapsed / done).min(1e7)));
        Some((share, left))
    }

    fn send(&self, s: &mut StepState, force: bool) {
        if !force
            && s.last_sent
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        if let Some((share, left)) = self.estimate(s) {
            s.last_sent = Some(Instant::now());
            self.inner.overall(share, left);
        }
    }
}

fn close_phase(s: &mut StepState) {
    if let Some((name, started, cpu, _, _)) = s.current.take() {
        s.phases.push(PhaseTime {
            name,
            seconds: started.elapsed().as_secs_f64(),
            cpu_seconds: (cpu_seconds() - cpu).max(0.0),
        });
    }
}

impl Progress for StepProgress<'_> {
    fn start(&self, phase: &str, total: u64) {
        {
            let mut s = self.lock();
            close_phase(&mut s);
            s.current = Some((phase.to_string(), Instant::now(), cpu_seconds(), total, 0));
        }
        self.inner.start(phase, total);
        let mut s = self.lock();
        self.send(&mut s, true);
    }
    fn update(&self, done: u64) {
        self.inner.update(done);
        let mut s = self.lock();
        if let Some(c) = s.current.as_mut() {
            c.4 = done;
        }
        self.send(&mut s, false);
    }
    fn message(&self, msg: &str) {
        self.inner.message(msg);
    }
    fn finish(&self) {
        if let Some(c) = self.lock().current.as_mut() {
            c.4 = c.3;
        }
        self.inner.finish();
    }
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
    fn overall(&self, share: f64, left: Option<Duration>) {
        self.inner.overall(share, left);
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

#[cfg(test)]
mod step_progress_tests {
    use super::*;

    /// Records the overall shares it is told.
    #[derive(Default)]
    struct Shares(Mutex<Vec<f64>>);

    impl Progress for Shares {
        fn start(&self, _phase: &str, _total: u64) {}
        fn update(&self, _done: u64) {}
        fn message(&self, _msg: &str) {}
        fn finish(&self) {}
        fn overall(&self, share: f64, _left: Option<Duration>) {
            self.0.lock().unwrap().push(share);
        }
    }

    fn phase(name: &str, seconds: f64) -> PhaseTime {
        PhaseTime {
            name: name.into(),
            seconds,
            cpu_seconds: 0.0,
        }
    }

    #[test]
    fn the_share_counts_each_phase_by_what_it_took_last_time() {
        let sink = Shares::default();
        let p = StepProgress::new(&sink, vec![phase("read", 1.0), phase("write", 3.0)]);
        p.start("read", 0);
        p.start("write", 100);
        // Within 100 ms of the last report only a phase start is sent.
        std::thread::sleep(Duration::from_millis(120));
        p.update(50);
        assert_eq!(*sink.0.lock().unwrap(), vec![0.0, 0.25, 0.625]);
        let ran: Vec<String> = p.phases().into_iter().map(|t| t.name).collect();
        assert_eq!(ran, ["read", "write"]);
    }

    #[test]
    fn a_phase_the_last_run_did_not_have_counts_nothing_and_the_share_stays_below_one() {
        let sink = Shares::default();
        let p = StepProgress::new(&sink, vec![phase("read", 1.0)]);
        p.start("read", 0);
        p.start("new phase", 0);
        p.start("read", 0);
        assert_eq!(*sink.0.lock().unwrap(), vec![0.0, 0.99, 0.99]);
    }

    #[test]
    fn without_a_previous_run_there_is_no_estimate_but_phases_are_timed() {
        let sink = Shares::default();
        let p = StepProgress::new(&sink, Vec::new());
        p.start("read", 10);
        p.update(5);
        p.finish();
        assert!(sink.0.lock().unwrap().is_empty());
        let ran = p.phases();
        assert_eq!(ran.len(), 1);
        assert!(ran[0].seconds >= 0.0 && ran[0].cpu_seconds >= 0.0);
    }

    #[test]
    fn a_first_run_counts_its_planned_phases_and_guesses_no_time() {
        #[derive(Default)]
        struct Lefts(Mutex<Vec<(f64, Option<Duration>)>>);
        impl Progress for Lefts {
            fn start(&self, _phase: &str, _total: u64) {}
            fn update(&self, _done: u64) {}
            fn message(&self, _msg: &str) {}
            fn finish(&self) {}
            fn overall(&self, share: f64, left: Option<Duration>) {
                self.0.lock().unwrap().push((share, left));
            }
        }
        let sink = Lefts::default();
        let plan = [
            "unify: events",
            "unify: activity and golden values",
            "unify: profiles",
        ]
        .map(String::from)
        .to_vec();
        let p = StepProgress::with_plan(&sink, Vec::new(), plan);
        p.start("unify: events", 0);
        p.start("unify: activity and golden values", 0);
        p.start("unify: profiles", 100);
        std::thread::sleep(Duration::from_millis(120));
        p.update(50);
        let got = sink.0.lock().unwrap().clone();
        let shares: Vec<f64> = got.iter().map(|x| x.0).collect();
        let third = 1.0 / 3.0;
        assert_eq!(shares.len(), 4);
        assert!((shares[1] - third).abs() < 1e-9 && (shares[3] - 2.5 * third).abs() < 1e-9);
        assert!(got.iter().all(|x| x.1.is_none()), "no time left is guessed");
        // A previous run's timings win over the plan.
        let sink = Shares::default();
        let p = StepProgress::with_plan(&sink, vec![phase("a", 1.0)], vec!["b".into()]);
        p.start("a", 0);
        assert_eq!(*sink.0.lock().unwrap(), vec![0.0]);
    }
}
