//! Who is writing the workspace, and waiting for them.
//!
//! Two mechanisms keep concurrent `c360` processes (and the workbench's
//! worker thread) from losing each other's work:
//!
//! - **The run lock**: an exclusive `flock` on `<database>.lock`, held by
//!   every pipeline run (a load, a step, `run --all`) for as long as it runs.
//!   Two runs never interleave: the second one waits, saying which command
//!   holds the workspace ("waiting for `c360 run --all` (pid 4711, since
//!   10:14:05 UTC) to finish"), and can be cancelled while it waits. The lock
//!   is re-entrant within a process and released by the kernel when its
//!   holder dies, so a `kill -9` never leaves the workspace locked.
//! - **SQLite's write lock**: every write transaction starts with
//!   `BEGIN IMMEDIATE` (set on each connection by [`super::open`]), so a
//!   writer never reads under a snapshot that another writer then
//!   invalidates (the cause of "database is locked" without waiting), and a
//!   step reads the steward decisions and ids it depends on inside the
//!   transaction that writes its results. The busy handler here waits for
//!   the other writer (up to [`MAX_WAIT`]), announcing who it is after a
//!   second, instead of failing.
//!
//! Steward decisions take only the SQLite write lock: they are committed
//! between a running step's transactions, and a step that writes after them
//! reads them first.

use crate::pipeline::progress::Progress;
use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a write waits for another writer's transaction before giving up.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// After this long waiting, say who we are waiting for.
const ANNOUNCE_AFTER: Duration = Duration::from_millis(800);

/// Run locks this process holds: (lock file, open file, depth).
static HELD: Mutex<Vec<(PathBuf, File, usize)>> = Mutex::new(Vec::new());

/// What this process is (for other processes' "waiting for ..."), set by
/// the binary from its command line.
static COMMAND: Mutex<Option<String>> = Mutex::new(None);

/// How a wait is announced (the CLI prints it on stderr; the workbench shows
/// it in its status line through [`waiting_for`]).
static NOTICE: Mutex<Option<fn(&str)>> = Mutex::new(None);

/// The database this process opened last (for [`busy_hint`]).
static LAST_DB: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Note the database this process works on.
pub fn remember_db(db: &Path) {
    *LAST_DB.lock().unwrap_or_else(|e| e.into_inner()) = Some(db.to_path_buf());
}

/// The latest "waiting for ..." and when it was last confirmed.
static WAITING: Mutex<Option<(String, Instant)>> = Mutex::new(None);

/// Describe this process to others ("c360 run --all").
pub fn set_command(description: &str) {
    *COMMAND.lock().unwrap_or_else(|e| e.into_inner()) = Some(description.to_string());
}

/// Print waits with `notice` (e.g. on stderr).
pub fn set_notice(notice: fn(&str)) {
    *NOTICE.lock().unwrap_or_else(|e| e.into_inner()) = Some(notice);
}

/// "waiting for ..." while this process waits for another writer (for a
/// status line), else `None`.
pub fn waiting_for() -> Option<String> {
    let w = WAITING.lock().unwrap_or_else(|e| e.into_inner());
    w.as_ref()
        .filter(|(_, at)| at.elapsed() < Duration::from_millis(600))
        .map(|(m, _)| m.clone())
}

fn announce(message: &str) {
    *WAITING.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((message.to_string(), Instant::now()));
    if let Some(f) = *NOTICE.lock().unwrap_or_else(|e| e.into_inner()) {
        f(message);
    }
}

fn still_waiting(message: &str) {
    *WAITING.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((message.to_string(), Instant::now()));
}

/// The run lock file of a database.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

fn this_process(what: &str) -> String {
    let command = COMMAND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| "c360".to_string());
    let since = chrono::Utc::now().format("%H:%M:%S UTC");
    if what.is_empty() {
        format!("`{command}` (pid {}, since {since})", std::process::id())
    } else {
        format!(
            "`{command}`: {what} (pid {}, since {since})",
            std::process::id()
        )
    }
}

/// Who holds the run lock of `db`, if another process (or another open of
/// it) does; `None` when nobody runs the pipeline.
pub fn run_holder(db: &Path) -> Option<String> {
    let path = lock_path(db);
    let mut file = OpenOptions::new().read(true).open(&path).ok()?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(_) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let text = text.trim();
            Some(if text.is_empty() {
                "another c360 process".to_string()
            } else {
                text.to_string()
            })
        }
    }
}

/// Held while a pipeline run writes the workspace; released on drop.
#[must_use = "the lock is released when this is dropped"]
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = held.iter().position(|e| e.0 == self.path) {
            held[pos].2 -= 1;
            if held[pos].2 == 0 {
                let (_, file, _) = held.remove(pos);
                let _ = file.set_len(0);
                let _ = file.unlock();
            }
        }
    }
}

/// Take the run lock of the workspace database `db` for `what` ("run
/// resolve"), waiting (cancellably, through `progress`) while another run
/// holds it.
pub fn lock_run(db: &Path, what: &str, progress: &dyn Progress) -> Result<RunLock> {
    let path = lock_path(db);
    {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = held.iter_mut().find(|e| e.0 == path) {
            e.2 += 1;
            return Ok(RunLock { path });
        }
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the workspace lock {}", path.display()))?;
    let started = Instant::now();
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let holder = run_holder(db).unwrap_or_else(|| "another c360 process".into());
                let message = format!("waiting for {holder} to finish");
                // Said once through the caller's progress (a log line, the
                // job's status in the workbench), kept fresh for
                // [`waiting_for`].
                if !announced {
                    progress.message(&message);
                    announced = true;
                }
                still_waiting(&message);
                if progress.is_cancelled() {
                    bail!("cancelled while {message}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
    if announced {
        progress.message(&format!(
            "waited {:.1} s for the workspace",
            started.elapsed().as_secs_f64()
        ));
        *WAITING.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(this_process(what).as_bytes())?;
    file.flush()?;
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((path.clone(), file, 1));
    Ok(RunLock { path })
}

/// Who holds the write lock of `db` as far as we can tell.
fn writer_of(db: &Path) -> String {
    let ours = HELD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|e| e.0 == lock_path(db));
    match run_holder(db) {
        Some(h) if !ours => h,
        _ => "another c360 process (a steward decision or a read-side job)".to_string(),
    }
}

/// The busy handler of a connection to `db`: sleep and retry (1 ms growing
/// to 50 ms) for up to [`MAX_WAIT`], announcing the wait after a moment.
pub fn busy_handler(db: PathBuf) -> impl FnMut(i32) -> bool + Send + 'static {
    let mut started = Instant::now();
    let mut announced = false;
    move |count: i32| {
        if count == 0 {
            started = Instant::now();
            announced = false;
        }
        let waited = started.elapsed();
        if waited > MAX_WAIT {
            return false;
        }
        if waited > ANNOUNCE_AFTER {
            let message = format!(
                "waiting for {} to finish writing the workspace",
                writer_of(&db)
            );
            if announced {
                still_waiting(&message);
            } else {
                announce(&message);
                announced = true;
            }
        }
        let pause = 1u64 << count.clamp(0, 6);
        std::thread::sleep(Duration::from_millis(pause.min(50)));
        true
    }
}

/// When `err` is SQLite saying the database is busy or locked, what to tell
/// the user instead.
pub fn busy_hint(err: &anyhow::Error, db: Option<&Path>) -> Option<String> {
    if !super::is_busy(err) {
        return None;
    }
    let last = LAST_DB.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let who = db
        .or(last.as_deref())
        .map_or_else(|| "another c360 process".to_string(), writer_of);
    Some(format!(
        "the workspace is busy: {who} is writing it; nothing was changed, try again when it has finished"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::progress::{CancelFlag, NoProgress};

    #[test]
    fn run_lock_is_reentrant_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c360.db");
        let a = lock_run(&db, "run all", &NoProgress).unwrap();
        let b = lock_run(&db, "run resolve", &NoProgress).unwrap();
        // Another open file description sees it held, with who holds it.
        let holder = run_holder(&db).expect("held");
        assert!(holder.contains("run all"), "{holder}");
        assert!(holder.contains(&format!("pid {}", std::process::id())));
        drop(b);
        assert!(run_holder(&db).is_some(), "still held by the outer run");
        drop(a);
        assert_eq!(run_holder(&db), None);
    }

    #[test]
    fn waiting_for_a_run_lock_can_be_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c360.db");
        // Hold the lock through a separate open file description, as
        // another process would.
        let other = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(&db))
            .unwrap();
        other.lock().unwrap();
        (&other).write_all(b"`c360 run --all` (pid 1)").unwrap();
        let flag = CancelFlag::default();
        flag.cancel();
        let err = lock_run(&db, "run resolve", &flag).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cancelled while waiting for `c360 run --all` (pid 1) to finish"
        );
    }
}
