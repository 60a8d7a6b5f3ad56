//! End to end: the real binary in a real terminal (tmux), driven as a person
//! would: `c360 demo` builds the workspace and opens the workbench, `?` opens
//! help, `2` switches to Rejects, `q` quits with exit code 0.
//!
//! Needs tmux (`.ci/run` installs it when it is missing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(dir: &Path) -> Tmux {
        let socket = dir.join("tmux.sock").display().to_string();
        Tmux { socket }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux must be installed for this test (apt-get install tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Wait until `pred` holds for the screen; panic with the screen if not.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn demo_opens_the_workbench_help_tabs_and_quits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_c360"));
    let repo = env!("CARGO_MANIFEST_DIR");
    let ws = dir.path().join("demo");
    let exit_file = dir.path().join("exit");
    let script = format!(
        "cd '{repo}' && '{}' demo --workspace '{}'; echo \"EXIT=$?\" > '{}'; sleep 30",
        bin.display(),
        ws.display(),
        exit_file.display()
    );
    let tmux = Tmux::new(dir.path());
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "120",
        "-y",
        "32",
        "sh",
        "-c",
        &script,
    ]);

    let screen = tmux.wait_for("the Pipeline screen", |s| s.contains("Land & stage"));
    assert!(
        screen.contains("crm") && screen.contains("transactions"),
        "{screen}"
    );
    assert!(
        screen.contains("? help"),
        "the status bar points at help:\n{screen}"
    );

    tmux.keys(&["?"]);
    // The help starts with this screen's keys; it scrolls to the commands.
    tmux.wait_for("the Pipeline keys first in the help", |s| {
        s.contains("Customer360 Workbench — keys")
            && s.contains("Pipeline (this screen)")
            && s.contains("run the selected step")
    });
    tmux.keys(&["G"]);
    tmux.wait_for("the commands at the end of the help", |s| {
        s.contains("quit (also q)")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("help to close", |s| {
        !s.contains("Customer360 Workbench — keys")
    });

    tmux.keys(&["2"]);
    let rejects = tmux.wait_for("the Rejects screen", |s| s.contains("Enter opens the row"));
    assert!(rejects.contains("filter:"), "{rejects}");

    // A steward's loop: approve, see the merged customer, come back, undo,
    // and a bulk decision previewed and declined.
    tmux.keys(&["4"]);
    tmux.wait_for("the Review screen", |s| s.contains("Queue: to review"));
    tmux.keys(&["a"]);
    tmux.wait_for("the approval", |s| s.contains(" approved:"));
    // The decided list holds the pair; c shows the customer it is now.
    tmux.keys(&["f", "f", "f"]);
    tmux.wait_for("the decided list", |s| s.contains("Queue: decided"));
    tmux.keys(&["c"]);
    tmux.wait_for("the merged customer", |s| {
        s.contains("Enter: 360 view and why") && s.contains("records:")
    });
    tmux.keys(&["b"]);
    tmux.wait_for("back on the Review screen", |s| {
        s.contains("Queue: decided")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the list to review", |s| s.contains("Queue: to review"));
    tmux.keys(&["u"]);
    tmux.wait_for("the undo", |s| s.contains("undid decision"));
    tmux.keys(&["B"]);
    tmux.keys(&["0-1 a", "Enter"]);
    tmux.wait_for("the bulk preview", |s| {
        s.contains("y yes · n no") && s.contains("↔")
    });
    tmux.keys(&["n"]);
    tmux.wait_for("the preview to close", |s| !s.contains("y yes · n no"));

    tmux.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exit_file.exists() {
        assert!(
            Instant::now() < deadline,
            "c360 did not quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&exit_file).unwrap().trim(),
        "EXIT=0"
    );
    // The alternate screen is gone: the shell's screen is back, no UI left.
    let after = tmux.screen();
    assert!(!after.contains("Land & stage"), "{after}");
}
