//! The workbench TUI. One loop over input, ticks and job events; the app
//! ([`app::App`]) routes keys to one component per screen ([`screens`],
//! the contract in [`screen`]), drawing in [`ui`], pipeline work on worker
//! threads ([`jobs`]). The terminal is restored on quit, on error and on a panic of
//! the UI thread. A panic of a worker thread does not touch the terminal:
//! its job ends as a failed job with the panic's message ([`jobs::catch`])
//! and the workbench keeps running.

pub mod app;
pub mod format;
pub mod input;
pub mod jobs;
pub mod keymap;
pub mod paged;
pub mod palette;
pub mod screen;
pub mod screens;
pub mod text;
pub mod ui;
pub mod widgets;

use crate::workspace::Workspace;
use anyhow::Result;
use app::App;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::ThreadId;
use std::time::Duration;

/// Restores the terminal when dropped, whatever way `run` ends.
struct TerminalGuard;

/// Prints the worker panics of the session (escaped) when dropped.
struct PrintWorkerPanics;

impl Drop for PrintWorkerPanics {
    fn drop(&mut self) {
        for p in take_worker_panics() {
            eprintln!(
                "c360: a worker thread panicked (its job failed): {}",
                crate::safe_text::escape_lines(&p)
            );
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Panics of other threads while the hook is installed, as the default hook
/// would have printed them; printed to stderr once the terminal is restored.
static WORKER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The recorded panics of non-UI threads (emptying the list).
pub fn take_worker_panics() -> Vec<String> {
    std::mem::take(&mut *WORKER_PANICS.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The workbench's panic hook, in place until dropped (then the previous
/// hook is back, and the recorded worker panics are printed).
pub struct PanicHookGuard {
    previous: Arc<PanicHook>,
}

/// Install a panic hook for a full-screen UI run by thread `ui`: a panic on
/// `ui` calls `restore` (leave the alternate screen and raw mode) and then
/// the previous hook; a panic on any other thread (a worker, whose job turns
/// it into a failed job) neither restores the terminal under the UI that
/// keeps drawing nor prints over it: its message is kept for
/// [`take_worker_panics`]. (ratatui's own `init` hook restores the terminal
/// on a panic of any thread.)
pub fn install_panic_hook(
    ui: ThreadId,
    restore: impl Fn() + Send + Sync + 'static,
) -> PanicHookGuard {
    let previous: Arc<PanicHook> = Arc::new(std::panic::take_hook());
    let prev = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui {
            restore();
            prev(info);
        } else {
            let name = std::thread::current()
                .name()
                .unwrap_or("<unnamed>")
                .to_string();
            WORKER_PANICS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("thread '{name}' {info}"));
        }
    }));
    PanicHookGuard { previous }
}

impl Drop for PanicHookGuard {
    fn drop(&mut self) {
        // The hook cannot be changed while this thread panics (the process
        // is going down anyway).
        if std::thread::panicking() {
            return;
        }
        let _ = std::panic::take_hook();
        let prev = self.previous.clone();
        std::panic::set_hook(Box::new(move |info| prev(info)));
    }
}

/// Open the workbench on a workspace.
pub fn run(ws: Workspace) -> Result<()> {
    use ratatui::crossterm::{execute, terminal};
    let _hook = install_panic_hook(std::thread::current().id(), ratatui::restore);
    // Dropped before the hook guard: the terminal is restored first, then
    // the recorded worker panics are printed.
    let _worker_panics = PrintWorkerPanics;
    let _guard = TerminalGuard;
    terminal::enable_raw_mode()?;
    execute!(std::io::stdout(), terminal::EnterAlternateScreen)?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))?;
    let size = terminal.size()?;
    let mut app = App::new(ws, size.height)?;
    app.resize(size.width, size.height);

    // Input on its own thread so the loop can wait on input and jobs at once.
    let (tx, rx) = mpsc::channel::<Event>();
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if tx.send(ev).is_err() {
                break;
            }
        }
    });

    let mut dirty = true;
    while !app.quit {
        if dirty {
            terminal.draw(|f| ui::draw(f, &app))?;
            dirty = false;
        }
        // Wake for input, or every 100 ms while a job runs (its progress and
        // elapsed time), or every second otherwise.
        let tick = if app.job.is_some() || app.waiting() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        match rx.recv_timeout(tick) {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                dirty |= app.handle_key(key);
            }
            Ok(Event::Resize(w, h)) => {
                app.resize(w, h);
                dirty = true;
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => dirty |= app.job.is_some(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        dirty |= app.poll_job(None);
        dirty |= app.poll_workers();
        dirty |= app.poll_changes();
    }
    if app.job.is_some() {
        // Quitting mid-job: it was asked to cancel; give it a moment to roll back.
        app.wait_for_job(Duration::from_secs(5));
    }
    Ok(())
}
