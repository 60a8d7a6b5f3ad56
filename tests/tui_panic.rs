//! A panic on a worker thread of the workbench: the job fails with the
//! panic's message, the terminal is not restored under the running UI, and
//! the next job runs. Its own test binary: the panic hook is process-wide.

mod common;
use common::render;

use c360::tui::app::App;
use c360::tui::jobs::{Job, JobEvent, JobKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn done(job: &mut Job) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for e in job.poll(Some(Duration::from_millis(50))) {
            if let JobEvent::Done(r) = e {
                return r;
            }
        }
    }
    panic!("the job never finished");
}

#[test]
fn a_worker_panic_fails_its_job_and_leaves_the_terminal_to_the_ui() {
    let restores = Arc::new(AtomicUsize::new(0));
    let counted = restores.clone();
    let hook = c360::tui::install_panic_hook(std::thread::current().id(), move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });

    // A job that panics reports a failure with the panic's message.
    let mut job = Job::spawn_with(JobKind::Step("standardise".into()), |_| {
        panic!("worker exploded on row 7")
    });
    assert_eq!(
        done(&mut job),
        Err("internal error: worker exploded on row 7".to_string())
    );
    // The terminal was not restored (the UI keeps drawing on it), and the
    // panic was kept, not printed over the screen.
    assert_eq!(restores.load(Ordering::SeqCst), 0);
    // (The other test of this binary may add its own worker panic.)
    let kept = c360::tui::take_worker_panics();
    let ours: Vec<_> = kept
        .iter()
        .filter(|p| p.contains("worker exploded on row 7"))
        .collect();
    assert_eq!(ours.len(), 1, "{kept:?}");
    assert!(ours[0].contains("panicked at"), "{kept:?}");

    // The next job runs normally.
    let mut next = Job::spawn_with(JobKind::All, |_| Ok("second job ran".to_string()));
    assert_eq!(done(&mut next), Ok("second job ran".to_string()));

    // A panic on the UI thread does restore the terminal.
    let r = std::panic::catch_unwind(|| panic!("ui thread panics"));
    assert!(r.is_err());
    assert_eq!(restores.load(Ordering::SeqCst), 1);
    drop(hook);
}

#[test]
fn the_workbench_shows_a_panicked_job_as_failed_and_runs_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("acme");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(
        root.join("c360.toml"),
        "[[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"crm.csv\"\nformat = \"csv\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("crm.csv"),
        "customer_id,first_name,created_at\nC1,Anna,2024-01-01\n",
    )
    .unwrap();
    std::fs::create_dir(root.join("rules")).unwrap();
    for (name, body) in c360::workspace::DEFAULT_RULES {
        std::fs::write(root.join("rules").join(name), body).unwrap();
    }
    let ws = c360::workspace::Workspace::open(&root).unwrap();
    let mut app = App::new(ws, 30).unwrap();

    app.job = Some(Job::spawn_with(JobKind::Source("crm".into()), |_| {
        panic!("index out of bounds: the len is 3 but the index is 9")
    }));
    assert!(app.wait_for_job(Duration::from_secs(30)));
    let (label, result) = app.last_job.clone().unwrap();
    assert_eq!(label, "reload crm");
    assert_eq!(
        result,
        Err("internal error: index out of bounds: the len is 3 but the index is 9".into())
    );
    let shown = render(&app, 120, 30);
    assert!(
        shown.contains(
            "reload crm failed: internal error: index out of bounds: the len is 3 but the index is 9"
        ),
        "{shown}"
    );

    // The workbench takes the next job: R runs every step.
    app.handle_key(ratatui::crossterm::event::KeyEvent::new(
        ratatui::crossterm::event::KeyCode::Char('R'),
        ratatui::crossterm::event::KeyModifiers::NONE,
    ));
    assert!(app.job.is_some(), "R starts a job after the failed one");
    assert!(app.wait_for_job(Duration::from_secs(60)));
    let (label, result) = app.last_job.clone().unwrap();
    assert_eq!(label, "run all");
    assert!(result.unwrap().contains("1 read, 1 staged, 0 rejected"));
}
