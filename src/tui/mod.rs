//! The workbench TUI. One loop over input, ticks and job events; state in
//! [`app::App`], drawing in [`ui`], pipeline work on worker threads
//! ([`jobs`]). The terminal is restored on quit, on error and on panic.

pub mod analytics;
pub mod app;
pub mod customers;
pub mod jobs;
pub mod keymap;
pub mod paged;
pub mod text;
pub mod ui;

use crate::workspace::Workspace;
use anyhow::Result;
use app::App;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use std::sync::mpsc;
use std::time::Duration;

/// Restores the terminal when dropped, whatever way `run` ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Open the workbench on a workspace.
pub fn run(ws: Workspace) -> Result<()> {
    // ratatui::init installs a panic hook that restores the terminal first.
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    let size = terminal.size()?;
    let mut app = App::new(ws, size.height)?;

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
        let waiting = app.rejects.search.is_some()
            || app.review.counting.is_some()
            || app.analytics.loading.is_some();
        let tick = if app.job.is_some() || waiting {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        match rx.recv_timeout(tick) {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                dirty |= app.handle_key(key);
            }
            Ok(Event::Resize(_, h)) => {
                app.resize(h);
                dirty = true;
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => dirty |= app.job.is_some(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        dirty |= app.poll_job(None);
        dirty |= app.poll_search(None);
        dirty |= app.poll_review(None);
        dirty |= app.poll_analytics();
    }
    if app.job.is_some() {
        // Quitting mid-job: it was asked to cancel; give it a moment to roll back.
        app.wait_for_job(Duration::from_secs(5));
    }
    Ok(())
}
