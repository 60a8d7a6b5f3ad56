//! The demo workspace: `c360 demo` builds it from `sample_data/` when it is
//! absent and reuses it (with its decisions) when present.

use crate::pipeline::load::stage::LoadReport;
use crate::pipeline::progress::Progress;
use crate::workspace::{self, CONFIG_FILE, Workspace};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The files of the bundled sample set, in the layout `c360.toml` expects.
pub const SAMPLE_FILES: &[&str] = &[
    "crm.csv",
    "web_events.ndjson",
    "transactions.parquet",
    "truth.csv",
];

/// Find the bundled `sample_data/`: `$C360_SAMPLE_DATA`, `./sample_data`,
/// or the one beside the crate's manifest (for `cargo run` anywhere).
pub fn find_sample_data() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(dir) = std::env::var("C360_SAMPLE_DATA") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(PathBuf::from("sample_data"));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data"));
    for dir in &candidates {
        if SAMPLE_FILES.iter().all(|f| dir.join(f).is_file()) {
            return Ok(dir.clone());
        }
    }
    bail!(
        "cannot find the sample data (looked in {}); set C360_SAMPLE_DATA to the repository's sample_data/ folder",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What `prepare` did.
pub struct Demo {
    pub workspace: Workspace,
    /// True when the workspace was built now, false when it was reused.
    pub created: bool,
    pub loads: Vec<LoadReport>,
    /// Every step run (load first).
    pub reports: Vec<crate::pipeline::StepReport>,
}

/// The file `demo` leaves in a workspace it built; `--fresh` deletes only a
/// folder that holds it.
pub const MARKER: &str = ".c360-demo";

/// Build (or reuse) the demo workspace in `dir` and load its sources.
/// `fresh` deletes an existing demo workspace first: only a folder this
/// command built (it holds [`MARKER`]), so a wrong path can never wipe a
/// real workspace with its steward decisions, or unrelated files.
pub fn prepare(dir: &Path, fresh: bool, progress: &dyn Progress) -> Result<Demo> {
    let config = dir.join(CONFIG_FILE);
    if fresh && dir.exists() {
        if !dir.join(MARKER).is_file() {
            bail!(
                "--fresh: {} was not built by `c360 demo` (it has no {MARKER} file); refusing to delete it. \
                 Use another --workspace, or delete the folder yourself if you mean to",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    let created = !config.is_file();
    if created {
        let sample = find_sample_data()?;
        workspace::init(dir)?;
        std::fs::write(
            dir.join(MARKER),
            "built by `c360 demo`; `c360 demo --fresh` may delete this folder\n",
        )?;
        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        for f in SAMPLE_FILES {
            std::fs::copy(sample.join(f), data.join(f))
                .with_context(|| format!("copying {} into {}", f, data.display()))?;
        }
    }
    let ws = Workspace::open(dir)?;
    // A demo workspace made by an older c360 may lack rule files that newer
    // steps need: add the missing defaults, never overwrite edited ones.
    std::fs::create_dir_all(ws.rules_dir())?;
    for (name, body) in workspace::DEFAULT_RULES {
        let path = ws.rules_dir().join(name);
        if !path.exists() {
            std::fs::write(&path, body)
                .with_context(|| format!("cannot write {}", path.display()))?;
            progress.message(&format!("added the default {}", path.display()));
        }
    }
    let mut conn = crate::store::open(&ws.db_path())?;
    // The whole pipeline, as far as this build has it; steps re-run quickly
    // on the sample and honour everything already decided in the workspace.
    let reports = crate::pipeline::run_all(&mut conn, &ws, progress)?;
    let loads = reports.iter().flat_map(|r| r.loads.clone()).collect();
    Ok(Demo {
        workspace: ws,
        created,
        loads,
        reports,
    })
}
