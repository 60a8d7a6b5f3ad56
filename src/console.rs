//! Progress for headless commands: an indicatif bar on stderr when stderr is
//! a terminal, plain log lines (one per 10 %) when it is not. Phases and
//! messages can carry data (a source name, a path): they are written escaped
//! ([`crate::safe_text`]).

use crate::pipeline::progress::Progress;
use crate::safe_text::{escape, escape_lines};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct ConsoleProgress {
    state: Mutex<State>,
    terminal: bool,
}

struct State {
    bar: Option<ProgressBar>,
    phase: String,
    total: u64,
    last_decile: u64,
    started: Instant,
    /// Whether the step's share was logged for this phase yet.
    overall_logged: bool,
}

impl ConsoleProgress {
    pub fn new() -> Self {
        Self::with_terminal(std::io::stderr().is_terminal())
    }

    pub fn with_terminal(terminal: bool) -> Self {
        ConsoleProgress {
            terminal,
            state: Mutex::new(State {
                bar: None,
                phase: String::new(),
                total: 0,
                last_decile: 0,
                started: Instant::now(),
                overall_logged: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// "resolve 42 % done, about 28 s left": the step is the phase's first word.
pub fn overall_text(phase: &str, share: f64, left: Option<Duration>) -> String {
    let step = phase.split([' ', ':']).next().unwrap_or(phase);
    let mut text = format!("{step} {:.0} % done", share * 100.0);
    if let Some(left) = left.filter(|l| l.as_secs() >= 1) {
        text.push_str(&format!(", about {} left", rough_duration(left)));
    }
    text
}

/// "28 s", "3 min", "1 h 05 min".
pub fn rough_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..90 => format!("{s} s"),
        90..3600 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

impl Default for ConsoleProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for ConsoleProgress {
    fn start(&self, phase: &str, total: u64) {
        let mut s = self.lock();
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        }
        s.phase = escape(phase).into_owned();
        s.total = total;
        s.last_decile = 0;
        s.started = Instant::now();
        s.overall_logged = false;
        if self.terminal {
            let bar = ProgressBar::new(total.max(1));
            // A phase without a known total has no percentage of its own.
            let template = if total > 0 {
                "{prefix:>24} [{bar:40.cyan/blue}] {percent:>3}% {elapsed_precise} eta {eta} {msg}"
            } else {
                "{prefix:>24} {spinner} {elapsed_precise} {msg}"
            };
            if total == 0 {
                bar.enable_steady_tick(Duration::from_millis(200));
            }
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(s.phase.clone());
            s.bar = Some(bar);
        } else {
            eprintln!("{}: started", s.phase);
        }
    }

    fn update(&self, done: u64) {
        let mut s = self.lock();
        if let Some(bar) = &s.bar {
            bar.set_position(done);
        } else if let Some(decile) = (done.min(s.total) * 10).checked_div(s.total)
            && decile > s.last_decile
        {
            s.last_decile = decile;
            eprintln!("{}: {}%", s.phase, decile * 10);
        }
    }

    fn message(&self, msg: &str) {
        let s = self.lock();
        let msg = escape_lines(msg);
        match &s.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn overall(&self, share: f64, left: Option<Duration>) {
        let mut s = self.lock();
        let first = !std::mem::replace(&mut s.overall_logged, true);
        let text = overall_text(&s.phase, share, left);
        match &s.bar {
            Some(bar) => bar.set_message(format!("· {text}")),
            // Logs say it once a phase, beside its start.
            None if first => eprintln!("{}: {text}", s.phase),
            None => {}
        }
    }

    fn finish(&self) {
        let mut s = self.lock();
        if let Some(bar) = s.bar.take() {
            bar.finish_and_clear();
        } else if !s.phase.is_empty() {
            eprintln!(
                "{}: done in {:.2}s",
                s.phase,
                s.started.elapsed().as_secs_f64()
            );
        }
        s.phase.clear();
    }
}
