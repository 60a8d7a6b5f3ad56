//! `c360 check`: read and validate a workspace's `c360.toml` and every rule
//! file, the way the steps will read them, without running anything or
//! opening the store. Every file is checked (one broken file does not hide
//! the next), and each error names its file and line as the step's own
//! error would.

use crate::workspace::Workspace;
use std::path::Path;

/// The outcome for one file (or group of files read together).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Checked {
    /// What was checked, e.g. `rules/identity.toml`.
    pub file: String,
    /// Which step reads it.
    pub read_by: &'static str,
    /// The error, when the file is not valid.
    pub error: Option<String>,
    /// What is worth knowing but does not stop a run (a source file not
    /// there yet).
    pub warnings: Vec<String>,
}

impl Checked {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

fn outcome(file: &str, read_by: &'static str, result: anyhow::Result<()>) -> Checked {
    Checked {
        file: file.to_string(),
        read_by,
        error: result.err().map(|e| format!("{e:#}")),
        warnings: Vec::new(),
    }
}

/// Check the workspace in `root`: `c360.toml` first; when it is valid, the
/// rule files (some need the sources it names).
pub fn check(root: &Path) -> Vec<Checked> {
    let ws = Workspace::open(root);
    let mut config = outcome(
        crate::workspace::CONFIG_FILE,
        "every command",
        ws.as_ref()
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:#}")),
    );
    let Ok(ws) = ws else {
        return vec![config];
    };
    config.warnings = missing_sources(&ws);
    let rules = ws.rules_dir();
    vec![
        config,
        outcome(
            "rules/countries.toml, events.toml, people.toml, orders.toml",
            "standardise",
            crate::pipeline::standardise::rules::Rules::load(&rules).map(|_| ()),
        ),
        outcome(
            "rules/identity.toml (and its nicknames file)",
            "resolve",
            crate::pipeline::identity::resolve::load_rules(&ws).map(|_| ()),
        ),
        outcome(
            "rules/survivorship.toml, profiles.toml",
            "unify, analyse",
            crate::pipeline::unify::load_rules(&ws).map(|_| ()),
        ),
        outcome(
            "rules/segments.toml",
            "segment",
            crate::read::segments::load(&rules).map(|_| ()),
        ),
    ]
}

/// Local source files that are not there (a URL is not fetched).
fn missing_sources(ws: &Workspace) -> Vec<String> {
    ws.sources
        .iter()
        .filter(|s| !s.is_http())
        .filter(|s| !Path::new(&ws.resolve_location(s)).exists())
        .map(|s| {
            format!(
                "source {:?}: {} does not exist (yet)",
                s.name,
                ws.resolve_location(s)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        crate::workspace::init(dir.path()).unwrap();
        dir
    }

    #[test]
    fn a_fresh_workspace_passes_every_check() {
        let dir = workspace();
        let all = check(dir.path());
        assert_eq!(all.len(), 5, "{all:#?}");
        assert!(all.iter().all(Checked::ok), "{all:#?}");
    }

    #[test]
    fn a_broken_rule_file_is_named_with_its_line_and_the_others_still_checked() {
        let dir = workspace();
        let path = dir.path().join("rules/identity.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\n[fuzzy\n")).unwrap();
        std::fs::write(
            dir.path().join("rules/segments.toml"),
            "[[segments]]\nname = \"x\"\nfilter = \"orders >=\"\n",
        )
        .unwrap();
        let all = check(dir.path());
        let bad: Vec<&Checked> = all.iter().filter(|c| !c.ok()).collect();
        assert_eq!(bad.len(), 2, "{all:#?}");
        let err = bad[0].error.as_deref().unwrap();
        assert!(err.contains("identity.toml"), "{err}");
        let line = text.lines().count() + 2;
        assert!(
            err.contains(&format!(":{line}")) || err.contains(&format!("line {line}")),
            "{err}"
        );
        assert!(bad[1].file.contains("segments.toml"));
        assert!(all[1].ok() && all[3].ok());
    }

    #[test]
    fn a_broken_config_stops_before_the_rules() {
        let dir = workspace();
        std::fs::write(dir.path().join("c360.toml"), "[settings]\ndatabase = 3\n").unwrap();
        let all = check(dir.path());
        assert_eq!(all.len(), 1);
        assert!(
            all[0].error.as_deref().unwrap().contains("c360.toml"),
            "{all:#?}"
        );
    }
}
