//! Pipeline work on a worker thread with its own SQLite connection. The UI
//! thread never runs pipeline code: it starts a [`Job`], reads its events
//! without blocking, and can cancel it (cooperatively; the load rolls back).
//!
//! Steward decisions are jobs too. One decision is a small write, but it
//! re-clusters the customers involved (their every record and link), which
//! is pipeline work whose cost grows with the customer; a bulk decision
//! repeats that per pair. Running them here keeps every key press answered
//! and gives them the same "one job at a time" rule as pipeline runs, so a
//! decision never races a resolve run rewriting the candidates.

use crate::pipeline::identity::steward;
use crate::pipeline::progress::Progress;
use crate::pipeline::{self, load::stage};
use crate::store;
use crate::workspace::Workspace;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

/// The steward who decides in the workbench.
pub const ACTOR: &str = "steward";

/// What a job does.
#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    /// One step (extract and stage both load every source).
    Step(String),
    /// Every available step, in order.
    All,
    /// Load one source.
    Source(String),
    /// Approve or reject one pair of records.
    Decide {
        left: String,
        right: String,
        approve: bool,
        reason: String,
    },
    /// Undo the latest steward decision in force.
    Undo,
    /// Approve or reject every pending pair with a probability in `lo..=hi`.
    DecideBand { lo: f64, hi: f64, approve: bool },
    /// Export a segment's profiles (an audience file).
    ExportSegment {
        filter: String,
        out: std::path::PathBuf,
    },
    /// Export a unified table (format from the file's extension, else Parquet).
    Export {
        table: String,
        out: std::path::PathBuf,
    },
}

impl JobKind {
    pub fn label(&self) -> String {
        let verb = |approve: bool| if approve { "approve" } else { "reject" };
        match self {
            JobKind::Step(s) => format!("run {s}"),
            JobKind::All => "run all".into(),
            JobKind::Source(s) => format!("reload {s}"),
            JobKind::Decide { approve, .. } => verb(*approve).into(),
            JobKind::Undo => "undo".into(),
            JobKind::DecideBand { lo, hi, approve } => {
                format!("bulk {} {lo:.2}–{hi:.2}", verb(*approve))
            }
            JobKind::Export { table, .. } => format!("export {table}"),
            JobKind::ExportSegment { .. } => "export segment".into(),
        }
    }

    /// A steward decision (not a pipeline run).
    pub fn is_decision(&self) -> bool {
        matches!(
            self,
            JobKind::Decide { .. } | JobKind::Undo | JobKind::DecideBand { .. }
        )
    }
}

/// What a job reports.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    Phase {
        name: String,
        total: u64,
    },
    Progress(u64),
    /// The step's share done and time left (see `StepProgress`).
    Overall(f64, Option<Duration>),
    Message(String),
    Done(Result<String, String>),
}

/// A running job, as the UI sees it.
pub struct Job {
    pub kind: JobKind,
    pub started: Instant,
    pub phase: String,
    pub done: u64,
    pub total: u64,
    pub cancel: Arc<AtomicBool>,
    events: Receiver<JobEvent>,
    /// When the current phase started (for its ETA).
    phase_started: Instant,
    /// The step's share done and time left, when the step estimates them.
    pub overall: Option<(f64, Option<Duration>)>,
}

/// Forwards progress over a channel; throttles updates to changes.
struct ChannelProgress {
    tx: Sender<JobEvent>,
    cancel: Arc<AtomicBool>,
    last: AtomicU64,
}

impl Progress for ChannelProgress {
    fn start(&self, phase: &str, total: u64) {
        self.last.store(u64::MAX, Ordering::Relaxed);
        let _ = self.tx.send(JobEvent::Phase {
            name: phase.to_string(),
            total,
        });
    }
    fn update(&self, done: u64) {
        if self.last.swap(done, Ordering::Relaxed) != done {
            let _ = self.tx.send(JobEvent::Progress(done));
        }
    }
    fn message(&self, msg: &str) {
        let _ = self.tx.send(JobEvent::Message(msg.to_string()));
    }
    fn finish(&self) {}
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    fn overall(&self, share: f64, left: Option<Duration>) {
        let _ = self.tx.send(JobEvent::Overall(share, left));
    }
}

fn run(ws: &Workspace, kind: &JobKind, progress: &dyn Progress) -> anyhow::Result<String> {
    let mut conn = store::open(&ws.db_path())?;
    match kind {
        JobKind::Step(step) => Ok(pipeline::run_step(&mut conn, ws, step, progress)?.message),
        JobKind::All => Ok(pipeline::run_all(&mut conn, ws, progress)?
            .into_iter()
            .map(|r| format!("{}: {}", r.step, r.message))
            .collect::<Vec<_>>()
            .join(" · ")),
        JobKind::Source(name) => {
            let Some(source) = ws.source(name) else {
                anyhow::bail!("no source named {name:?}");
            };
            let r = stage::load_source(&mut conn, ws, source, progress)?;
            let mut msg = if r.already_loaded {
                format!("{name}: unchanged (batch {}), nothing added", r.batch_id)
            } else {
                format!(
                    "{name}: batch {} read {} staged {} rejected {}",
                    r.batch_id, r.rows_read, r.rows_staged, r.rows_rejected
                )
            };
            if let Some(hint) = &r.restage_hint {
                msg.push_str(" · ");
                msg.push_str(hint);
            }
            for w in &r.warnings {
                msg.push_str(" · ");
                msg.push_str(w);
            }
            Ok(msg)
        }
        JobKind::Decide {
            left,
            right,
            approve,
            reason,
        } => Ok(steward::decide_pair(&mut conn, left, right, *approve, ACTOR, reason)?.message),
        JobKind::Undo => Ok(steward::undo(&mut conn, None, ACTOR, "")?.message),
        JobKind::ExportSegment { filter, out } => {
            use crate::read::export::{self, Format};
            let format = Format::from_path(out).unwrap_or(Format::Parquet);
            Ok(export::export_segment(&conn, filter, format, out, progress)?.summary())
        }
        JobKind::Export { table, out } => {
            use crate::read::export::{self, Format};
            let format = Format::from_path(out).unwrap_or(Format::Parquet);
            Ok(export::export(&conn, table, format, out, progress)?.summary())
        }
        JobKind::DecideBand { lo, hi, approve } => {
            let reason = format!("bulk decision of the band {lo:.2}–{hi:.2}");
            let n = steward::decide_band(&mut conn, *lo, *hi, *approve, ACTOR, &reason)?;
            Ok(format!(
                "{} {n} pending pair(s) with probability {lo:.2}–{hi:.2}",
                if *approve { "approved" } else { "rejected" }
            ))
        }
    }
}

/// Run `f`, turning a panic into an error with its message: work on a
/// worker thread ends as a failed job (or search), never as a dead thread
/// the UI waits on forever.
pub fn catch<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(format!(
            "internal error: {}",
            crate::pipeline::load::extract::panic_message(&*payload)
        )),
    }
}

impl Job {
    /// Start `kind` on a worker thread.
    pub fn spawn(ws: Workspace, kind: JobKind) -> Job {
        let job_kind = kind.clone();
        Job::spawn_with(kind, move |progress| run(&ws, &job_kind, progress))
    }

    /// Start `work` on a worker thread as a job labelled `kind`. A panic in
    /// `work` becomes `Done(Err(..))` with the panic's message (the
    /// connection it held is dropped, so its transaction rolls back).
    pub fn spawn_with(
        kind: JobKind,
        work: impl FnOnce(&dyn Progress) -> anyhow::Result<String> + Send + 'static,
    ) -> Job {
        let (tx, rx) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let progress = ChannelProgress {
            tx: tx.clone(),
            cancel: cancel.clone(),
            last: AtomicU64::new(u64::MAX),
        };
        std::thread::spawn(move || {
            let result = catch(|| work(&progress).map_err(|e| format!("{e:#}")));
            let _ = tx.send(JobEvent::Done(result));
        });
        Job {
            kind,
            started: Instant::now(),
            phase: String::new(),
            done: 0,
            total: 0,
            cancel,
            events: rx,
            phase_started: Instant::now(),
            overall: None,
        }
    }

    /// The current phase's remaining time at its pace so far.
    pub fn eta(&self) -> Option<Duration> {
        eta_of(self.phase_started.elapsed(), self.done, self.total)
    }

    /// What the job is at, most telling first so that a narrow bar cuts
    /// the detail, not the figure: the step's share done and time left when
    /// it is estimated ("resolve 64 % done, about 12 s left"), then, for a
    /// run of every step, "step 3 of 5", then the phase with its rows
    /// ("write identifiers and links 1,200,000/4,800,000 · 25% · eta 48s").
    pub fn progress_label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some((share, left)) = self.overall {
            parts.push(crate::console::overall_text(&self.phase, share, left));
        }
        if matches!(self.kind, JobKind::All)
            && let Some(i) = step_of(&self.phase)
        {
            parts.push(format!("step {} of {}", i + 1, RUN_STEPS.len()));
        }
        let mut phase = self.phase.clone();
        if self.total > 0 {
            phase.push_str(&format!(
                " {}/{} · {:.0}%",
                thousands(self.done.min(self.total)),
                thousands(self.total),
                self.ratio() * 100.0
            ));
        }
        if let Some(eta) = self.eta() {
            phase.push_str(&format!(" · eta {}", short_duration(eta)));
        }
        if !phase.is_empty() {
            parts.push(phase);
        }
        parts.join(" · ")
    }

    /// What a progress bar shows: the step's share done when it is
    /// estimated, else the current phase's.
    pub fn bar_ratio(&self) -> f64 {
        match self.overall {
            Some((share, _)) => share.clamp(0.0, 1.0),
            None => self.ratio(),
        }
    }

    pub fn request_cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn cancelling(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Share of the current phase done, 0.0–1.0.
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f64 / self.total as f64).clamp(0.0, 1.0)
        }
    }

    /// Drain pending events without blocking (or wait up to `wait` for the
    /// first one). Returns the events; progress fields are updated.
    pub fn poll(&mut self, wait: Option<Duration>) -> Vec<JobEvent> {
        let mut out = Vec::new();
        if let Some(wait) = wait {
            match self.events.recv_timeout(wait) {
                Ok(e) => out.push(e),
                Err(_) => return out,
            }
        }
        loop {
            match self.events.try_recv() {
                Ok(e) => out.push(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !out.iter().any(|e| matches!(e, JobEvent::Done(_))) {
                        out.push(JobEvent::Done(Err("the job stopped unexpectedly".into())));
                    }
                    break;
                }
            }
        }
        for e in &out {
            match e {
                JobEvent::Phase { name, total } => {
                    // A new step (of a run of every step) has no estimate yet.
                    if step_of(name) != step_of(&self.phase) {
                        self.overall = None;
                    }
                    self.phase = name.clone();
                    self.total = *total;
                    self.done = 0;
                    self.phase_started = Instant::now();
                }
                JobEvent::Progress(d) => self.done = *d,
                JobEvent::Overall(share, left) => self.overall = Some((*share, *left)),
                _ => {}
            }
        }
        out
    }
}

/// The steps a run of every step goes through, by the first word of their
/// phase names ("load crm", "resolve: read web", "unify: events" …).
pub const RUN_STEPS: [&str; 5] = ["load", "standardise", "resolve", "unify", "analyse"];

/// Which of [`RUN_STEPS`] a phase belongs to.
pub fn step_of(phase: &str) -> Option<usize> {
    let first = phase.split([' ', ':']).next()?;
    RUN_STEPS.iter().position(|s| *s == first)
}

/// Remaining time at the pace so far; None before any progress, for a phase
/// without a total, or when done.
fn eta_of(elapsed: Duration, done: u64, total: u64) -> Option<Duration> {
    if done == 0 || total == 0 || done >= total {
        return None;
    }
    Some(elapsed.mul_f64((total - done) as f64 / done as f64))
}

/// 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "48s", "3m 05s", "1h 02m".
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn phases_map_to_their_step() {
        assert_eq!(step_of("load crm"), Some(0));
        assert_eq!(step_of("standardise web"), Some(1));
        assert_eq!(step_of("resolve: read crm"), Some(2));
        assert_eq!(step_of("unify: events"), Some(3));
        assert_eq!(step_of("analyse"), Some(4));
        assert_eq!(step_of("restage crm"), None);
    }

    #[test]
    fn the_share_done_leads_the_label() {
        let mut job = Job::spawn_with(JobKind::All, |_| Ok(String::new()));
        job.phase = "resolve: write identifiers and links".into();
        job.overall = Some((0.64, Some(Duration::from_secs(12))));
        let label = job.progress_label();
        assert!(
            label.starts_with("resolve 64 % done, about 12 s left · step 3 of 5 · resolve: write"),
            "{label}"
        );
        assert!((job.bar_ratio() - 0.64).abs() < 1e-9);
    }

    #[test]
    fn eta_is_the_rest_at_the_pace_so_far() {
        let ten = Duration::from_secs(10);
        assert_eq!(eta_of(ten, 250, 1000), Some(Duration::from_secs(30)));
        assert_eq!(eta_of(ten, 0, 1000), None);
        assert_eq!(eta_of(ten, 1000, 1000), None);
        assert_eq!(eta_of(ten, 5, 0), None);
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(4_800_000), "4,800,000");
        assert_eq!(short_duration(Duration::from_secs(48)), "48s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(short_duration(Duration::from_secs(3720)), "1h 02m");
    }
}
