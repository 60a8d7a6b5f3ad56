//! `c360 bench pipeline`: the whole pipeline on a generated world (100k
//! people, ~5M web events, ~500k orders by default), step by step, with wall
//! time, CPU use (both cores = 200 %), peak memory, and the workspace's size
//! against the input's; then the incremental runs: nothing changed, 1 % more
//! web events in a new batch, and a changed CRM export with 1 % new rows.

use super::{peak_rss_mib, reset_peak_rss};
use crate::generate::GenerateOptions;
use crate::pipeline::progress::Progress;
use crate::store;
use crate::workspace::Workspace;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct PipelineBenchOptions {
    /// Working folder: `data-…/` (generated once, reused) and a fresh `ws/`.
    pub dir: PathBuf,
    pub customers: u64,
    pub events_per_customer: f64,
    pub orders_per_customer: f64,
    pub seed: u64,
    /// Share of the web events and CRM rows held back for the incremental
    /// runs, in percent.
    pub increment_pct: f64,
}

pub use crate::pipeline::progress::cpu_seconds;

/// One measured step run.
pub struct Measured {
    pub step: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub seconds: f64,
    pub cpu_pct: f64,
    pub peak_mib: f64,
    pub message: String,
    /// The step's phases: wall and CPU seconds.
    pub phases: Vec<crate::pipeline::progress::PhaseTime>,
}

/// Run one step, measuring wall time, CPU use and peak memory.
pub fn measure_step(
    conn: &mut rusqlite::Connection,
    ws: &Workspace,
    step: &str,
    progress: &dyn Progress,
) -> Result<Measured> {
    reset_peak_rss();
    let cpu = cpu_seconds();
    let t = Instant::now();
    let r = crate::pipeline::run_step(conn, ws, step, progress)
        .with_context(|| format!("step {step}"))?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(Measured {
        step: if step == "stage" { "load" } else { step }.to_string(),
        rows_in: r.rows_in,
        rows_out: r.rows_out,
        seconds,
        cpu_pct: 100.0 * (cpu_seconds() - cpu) / seconds.max(1e-9),
        peak_mib: peak_rss_mib().unwrap_or(f64::NAN),
        message: r.message,
        phases: r.phases,
    })
}

const STEPS: [&str; 5] = ["stage", "standardise", "resolve", "unify", "analyse"];

/// Every step in order; the total is the last row.
fn run_pipeline(
    conn: &mut rusqlite::Connection,
    ws: &Workspace,
    progress: &dyn Progress,
) -> Result<Vec<Measured>> {
    STEPS
        .iter()
        .map(|s| measure_step(conn, ws, s, progress))
        .collect()
}

fn table(out: &mut String, title: &str, runs: &[Measured]) -> Result<()> {
    writeln!(out, "\n{title}\n")?;
    writeln!(
        out,
        "| step | rows in | rows out | seconds | CPU (200 % = both cores) | peak RSS (MiB) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for m in runs {
        writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.0} % | {:.0} |",
            m.step, m.rows_in, m.rows_out, m.seconds, m.cpu_pct, m.peak_mib
        )?;
    }
    let total: f64 = runs.iter().map(|m| m.seconds).sum();
    let peak = runs.iter().map(|m| m.peak_mib).fold(0.0, f64::max);
    writeln!(out, "| **total** | | | **{total:.2}** | | {peak:.0} |")?;
    Ok(())
}

/// Every phase of the runs that took at least 0.1 s, with its CPU use:
/// whether both cores work in each heavy phase.
fn phase_table(out: &mut String, runs: &[Measured]) -> Result<()> {
    writeln!(
        out,
        "
per phase (phases of 0.1 s or more):
"
    )?;
    writeln!(out, "| step | phase | seconds | CPU (200 % = both cores) |")?;
    writeln!(out, "|---|---|---:|---:|")?;
    for m in runs {
        for p in m.phases.iter().filter(|p| p.seconds >= 0.1) {
            writeln!(
                out,
                "| {} | {} | {:.2} | {:.0} % |",
                m.step,
                p.name,
                p.seconds,
                p.cpu_pct()
            )?;
        }
    }
    Ok(())
}

fn bytes_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The database and its WAL / shared-memory files.
fn workspace_bytes(ws: &Workspace) -> u64 {
    let db = ws.db_path();
    let name = db.file_name().map(|n| n.to_string_lossy().to_string());
    let Some(name) = name else { return 0 };
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| bytes_of(&db.with_file_name(format!("{name}{suffix}"))))
        .sum()
}

/// Split `from` into its first lines (all but `pct` % of the data lines) and
/// the rest; with `header`, both parts start with the first line.
fn split_tail(from: &Path, head: &Path, tail: &Path, pct: f64, header: bool) -> Result<u64> {
    let lines = BufReader::new(std::fs::File::open(from)?).lines().count() as u64;
    let data_lines = lines - u64::from(header);
    let keep = data_lines - ((data_lines as f64) * pct / 100.0).round() as u64;
    let mut reader = BufReader::new(std::fs::File::open(from)?);
    let mut h = BufWriter::new(std::fs::File::create(head)?);
    let mut t = BufWriter::new(std::fs::File::create(tail)?);
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if header && n == 0 {
            h.write_all(&line)?;
            t.write_all(&line)?;
        } else if n < keep + u64::from(header) {
            h.write_all(&line)?;
        } else {
            t.write_all(&line)?;
        }
        n += 1;
    }
    h.flush()?;
    t.flush()?;
    Ok(data_lines - keep)
}

fn abs(p: &Path) -> Result<String> {
    Ok(std::fs::canonicalize(p)
        .with_context(|| format!("{} missing", p.display()))?
        .display()
        .to_string())
}

fn source_toml(name: &str, system: &str, location: &Path, format: &str) -> Result<String> {
    let mut s = format!(
        "\n[[sources]]\nname = \"{name}\"\nsystem = \"{system}\"\nlocation = \"{}\"\nformat = \"{format}\"\n",
        abs(location)?
    );
    if system == "crm" {
        s.push_str("[sources.mapping]\naddress = \"street\"\n");
    }
    Ok(s)
}

/// A workspace over the generated files; `web_increment` adds the held-back
/// events as their own source (a new batch), `crm` names the CRM export.
fn write_config(ws_dir: &Path, data: &Path, crm: &str, web_increment: bool) -> Result<Workspace> {
    let mut config = "[settings]\ntimezone = \"UTC\"\ndate_order = \"mdy\"\n".to_string();
    config.push_str(&source_toml("crm", "crm", &data.join(crm), "csv")?);
    config.push_str(&source_toml(
        "web",
        "web",
        &data.join("web_main.ndjson"),
        "segment",
    )?);
    if web_increment {
        config.push_str(&source_toml(
            "web_new",
            "web",
            &data.join("web_increment.ndjson"),
            "segment",
        )?);
    }
    config.push_str(&source_toml(
        "transactions",
        "transactions",
        &data.join("transactions.parquet"),
        "parquet",
    )?);
    std::fs::write(ws_dir.join("c360.toml"), config)?;
    Workspace::open(ws_dir)
}

/// Generate once (and split off the increments); returns the data folder
/// and the input size in bytes of the first full run.
fn prepare_data(
    opts: &PipelineBenchOptions,
    out: &mut String,
    progress: &dyn Progress,
) -> Result<(PathBuf, u64)> {
    let data = opts.dir.join(format!(
        "data-{}-{}-{}-{}",
        opts.customers, opts.events_per_customer, opts.orders_per_customer, opts.seed
    ));
    if !data.join(".generated").exists() {
        super::generate_timed(
            &GenerateOptions {
                customers: opts.customers,
                out: data.clone(),
                seed: opts.seed,
                events_per_customer: opts.events_per_customer,
                orders_per_customer: opts.orders_per_customer,
            },
            out,
            progress,
        )?;
        split_tail(
            &data.join("web_events.ndjson"),
            &data.join("web_main.ndjson"),
            &data.join("web_increment.ndjson"),
            opts.increment_pct,
            false,
        )?;
        split_tail(
            &data.join("crm.csv"),
            &data.join("crm_main.csv"),
            &data.join("crm_increment.csv"),
            opts.increment_pct,
            true,
        )?;
        std::fs::remove_file(data.join("web_events.ndjson"))?;
        std::fs::write(data.join(".generated"), "")?;
    }
    let input = ["crm_main.csv", "web_main.ndjson", "transactions.parquet"]
        .iter()
        .map(|f| bytes_of(&data.join(f)))
        .sum();
    Ok((data, input))
}

/// Run the benchmark; returns the Markdown report.
pub fn bench_pipeline(opts: &PipelineBenchOptions, progress: &dyn Progress) -> Result<String> {
    let mut out = String::new();
    let (data, input) = prepare_data(opts, &mut out, progress)?;
    let ws_dir = opts.dir.join("ws");
    if ws_dir.exists() {
        std::fs::remove_dir_all(&ws_dir)?;
    }
    std::fs::create_dir_all(ws_dir.join("rules"))?;
    for (name, body) in crate::workspace::DEFAULT_RULES {
        std::fs::write(ws_dir.join("rules").join(name), body)?;
    }
    let ws = write_config(&ws_dir, &data, "crm_main.csv", false)?;
    let mut conn = store::open(&ws.db_path())?;

    let full = run_pipeline(&mut conn, &ws, progress)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    writeln!(
        out,
        "input: {:.0} MiB (CRM CSV, Segment NDJSON, Parquet)",
        mib(input)
    )?;
    table(&mut out, "### Full run (fresh workspace)", &full)?;
    phase_table(&mut out, &full)?;
    let size = workspace_bytes(&ws);
    writeln!(
        out,
        "\nworkspace after the full run: {:.0} MiB = {:.2}x the input",
        mib(size),
        size as f64 / input.max(1) as f64
    )?;
    for m in &full {
        writeln!(out, "- {}: {}", m.step, m.message)?;
    }
    let full_total: f64 = full.iter().map(|m| m.seconds).sum();

    let again = run_pipeline(&mut conn, &ws, progress)?;
    table(&mut out, "### Re-run, nothing changed", &again)?;

    drop(conn);
    let ws = write_config(&ws_dir, &data, "crm_main.csv", true)?;
    let mut conn = store::open(&ws.db_path())?;
    let events = run_pipeline(&mut conn, &ws, progress)?;
    table(
        &mut out,
        &format!(
            "### Re-run after a new batch of {} % more web events",
            opts.increment_pct
        ),
        &events,
    )?;
    phase_table(&mut out, &events)?;

    // The changed CRM export: the whole file, 1 % of its rows new.
    let full_crm = data.join("crm_changed.csv");
    if !full_crm.exists() {
        let mut f = BufWriter::new(std::fs::File::create(&full_crm)?);
        std::io::copy(&mut std::fs::File::open(data.join("crm_main.csv"))?, &mut f)?;
        let mut tail = BufReader::new(std::fs::File::open(data.join("crm_increment.csv"))?);
        let mut header = Vec::new();
        tail.read_until(b'\n', &mut header)?;
        std::io::copy(&mut tail, &mut f)?;
        f.flush()?;
    }
    drop(conn);
    let ws = write_config(&ws_dir, &data, "crm_changed.csv", true)?;
    let mut conn = store::open(&ws.db_path())?;
    let crm = run_pipeline(&mut conn, &ws, progress)?;
    table(
        &mut out,
        &format!(
            "### Re-run after a changed CRM export with {} % new rows",
            opts.increment_pct
        ),
        &crm,
    )?;
    phase_table(&mut out, &crm)?;
    let pct = |runs: &[Measured]| {
        100.0 * runs.iter().map(|m| m.seconds).sum::<f64>() / full_total.max(1e-9)
    };
    writeln!(
        out,
        "\nre-runs as a share of the full run: nothing changed {:.1} %, new events {:.1} %, changed CRM {:.1} %",
        pct(&again),
        pct(&events),
        pct(&crm)
    )?;
    Ok(out)
}
