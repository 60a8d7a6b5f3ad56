//! Progress for headless commands: an indicatif bar on stderr when stderr is
//! a terminal, plain log lines (one per 10 %) when it is not. Phases and
//! messages can carry data (a source name, a path): they are written escaped
//! ([`crate::safe_text`]).

use crate::pipeline::progress::Progress;
use crate::safe_text::{escape, escape_lines};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

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
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
        if self.terminal {
            let bar = ProgressBar::new(total.max(1));
            let style = ProgressStyle::with_template(
                "{msg:>24} [{bar:40.cyan/blue}] {percent:>3}% {elapsed_precise} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(s.phase.clone());
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
