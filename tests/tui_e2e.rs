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
    tmux.wait_for("help", |s| s.contains("Customer360 Workbench — keys"));
    // The help scrolls: the Pipeline keys follow the global ones.
    tmux.keys(&["PageDown"]);
    tmux.wait_for("the Pipeline keys in the help", |s| {
        s.contains("run all remaining steps")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("help to close", |s| {
        !s.contains("Customer360 Workbench — keys")
    });

    tmux.keys(&["2"]);
    let rejects = tmux.wait_for("the Rejects screen", |s| s.contains("Enter opens the row"));
    assert!(rejects.contains("rejected rows"), "{rejects}");

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
