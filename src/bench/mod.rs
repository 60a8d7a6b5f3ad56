//! `c360 bench load`: load + stage throughput on generated data, compared in
//! the same run with the `sqlite3` shell's `.import` of the same CSV, and the
//! process's peak memory. Prints a Markdown table for BENCHMARKS.md.

pub mod pipeline;

use crate::generate::{self, GenerateOptions};
use crate::pipeline::load::stage;
use crate::pipeline::progress::Progress;
use crate::store;
use crate::workspace::Workspace;
use anyhow::{Context, Result, bail};
use rusqlite::Connection;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct BenchOptions {
    /// Working folder: `data/` (generated once, reused) and a fresh `ws/`.
    pub dir: PathBuf,
    pub customers: u64,
    pub events_per_customer: f64,
    pub seed: u64,
    /// Keep at most this many web events (the first lines of the file).
    pub max_web_events: Option<u64>,
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Reset the peak-memory mark (Linux: writing 5 to clear_refs).
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

/// Cut a file to its first `max` lines (in place, streaming).
fn keep_first_lines(path: &Path, max: u64) -> Result<()> {
    use std::io::{BufRead, BufReader, BufWriter};
    let tmp = path.with_extension("cut");
    {
        let mut reader = BufReader::new(std::fs::File::open(path)?);
        let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
        let mut line = Vec::new();
        for _ in 0..max {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            out.write_all(&line)?;
        }
        out.flush()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Run the benchmark; returns the Markdown report.
pub fn bench_load(opts: &BenchOptions, progress: &dyn Progress) -> Result<String> {
    let data = opts.dir.join("data");
    let crm = data.join("crm.csv");
    let mut out = String::new();
    let gen_opts = GenerateOptions {
        customers: opts.customers,
        out: data.clone(),
        seed: opts.seed,
        events_per_customer: opts.events_per_customer,
        ..GenerateOptions::default()
    };
    let marker = data.join(format!(
        ".generated-{}-{}-{}-{}",
        opts.customers,
        opts.events_per_customer,
        opts.seed,
        opts.max_web_events.map_or("all".into(), |n| n.to_string())
    ));
    if !marker.exists() {
        let t = Instant::now();
        let summary = generate::generate(&gen_opts, progress)?;
        if let Some(max) = opts.max_web_events {
            keep_first_lines(&data.join("web_events.ndjson"), max)?;
        }
        std::fs::write(&marker, "")?;
        writeln!(
            out,
            "generate: {} people -> {} CRM rows, {} web events, {} transactions in {:.1} s\n",
            summary.people,
            summary.crm_rows,
            summary.web_rows,
            summary.transaction_rows,
            t.elapsed().as_secs_f64()
        )?;
    }

    let ws_dir = opts.dir.join("ws");
    if ws_dir.exists() {
        std::fs::remove_dir_all(&ws_dir)?;
    }
    std::fs::create_dir_all(&ws_dir)?;
    let abs = |f: &str| -> Result<String> {
        Ok(std::fs::canonicalize(data.join(f))
            .with_context(|| format!("{} missing", data.join(f).display()))?
            .display()
            .to_string())
    };
    let config = format!(
        "[settings]\nbatch_size = 5000\n\n\
         [[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"{}\"\nformat = \"csv\"\n[sources.mapping]\naddress = \"street\"\n\n\
         [[sources]]\nname = \"web\"\nsystem = \"web\"\nlocation = \"{}\"\nformat = \"segment\"\n\n\
         [[sources]]\nname = \"transactions\"\nsystem = \"transactions\"\nlocation = \"{}\"\nformat = \"parquet\"\n",
        abs("crm.csv")?,
        abs("web_events.ndjson")?,
        abs("transactions.parquet")?
    );
    std::fs::write(ws_dir.join("c360.toml"), config)?;
    let ws = Workspace::open(&ws_dir)?;
    let mut conn = store::open(&ws.db_path())?;

    writeln!(
        out,
        "| step | input | rows read | staged | rejected | seconds | rows/s | peak RSS (MiB) |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|")?;
    let mut crm_rate = 0.0;
    for source in &ws.sources {
        reset_peak_rss();
        let location = ws.resolve_location(source);
        let r = stage::load_source(&mut conn, &ws, source, progress)?;
        if r.already_loaded {
            bail!("fresh workspace reported {} as already loaded", source.name);
        }
        let rate = r.rows_read as f64 / r.seconds;
        if source.name == "crm" {
            crm_rate = rate;
        }
        writeln!(
            out,
            "| c360 load {} | {} {:.0} MiB | {} | {} | {} | {:.2} | {:.0} | {:.0} |",
            source.name,
            source.format,
            file_mib(Path::new(&location)),
            r.rows_read,
            r.rows_staged,
            r.rows_rejected,
            r.seconds,
            rate,
            peak_rss_mib().unwrap_or(f64::NAN)
        )?;
    }

    // The reference: sqlite3's .import of the same CSV into a fresh database
    // (one text table, no validation), in WAL mode like ours.
    let import_db = opts.dir.join("import.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", import_db.display()));
    }
    match Command::new("sqlite3")
        .arg(&import_db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            let t = Instant::now();
            if let Some(mut stdin) = child.stdin.take() {
                writeln!(
                    stdin,
                    "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\n.mode csv\n.import '{}' crm_import",
                    crm.display()
                )?;
            }
            child.wait()?;
            let secs = t.elapsed().as_secs_f64();
            let rows: i64 = rusqlite::Connection::open(&import_db)?.query_row(
                "SELECT count(*) FROM crm_import",
                [],
                |r| r.get(0),
            )?;
            let rate = rows as f64 / secs;
            writeln!(
                out,
                "| sqlite3 .import crm.csv | csv {:.0} MiB | {} | - | - | {:.2} | {:.0} | - |",
                file_mib(&crm),
                rows,
                secs,
                rate
            )?;
            writeln!(
                out,
                "\nc360 load of crm.csv runs at {:.0} % of the sqlite3 shell's .import speed (target: at least 50 %), \
                 while also landing raw rows, validating types and writing rejects.",
                100.0 * crm_rate / rate
            )?;
        }
        Err(e) => writeln!(out, "\nsqlite3 shell not found ({e}); no .import reference")?,
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    let db_mib = file_mib(&ws.db_path());
    writeln!(out, "\nworkspace database: {db_mib:.0} MiB")?;
    Ok(out)
}

/// `c360 bench tui`: frame times of the Pipeline and Rejects screens on a
/// workspace with `rows` staged and `rows` rejected CRM rows, drawn on an
/// off-screen terminal (ratatui's TestBackend) of 200×50.
pub fn bench_tui(dir: &Path, rows: u64, progress: &dyn Progress) -> Result<String> {
    use crate::tui::app::App;
    use crate::tui::ui;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    let ws_dir = dir.join(format!("tui-{rows}"));
    let marker = ws_dir.join(".loaded");
    if !marker.exists() {
        if ws_dir.exists() {
            std::fs::remove_dir_all(&ws_dir)?;
        }
        std::fs::create_dir_all(&ws_dir)?;
        std::fs::write(
            ws_dir.join("c360.toml"),
            "[[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"crm.csv\"\nformat = \"csv\"\n",
        )?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(ws_dir.join("crm.csv"))?);
        writeln!(f, "customer_id,first_name,email,created_at")?;
        for i in 0..rows {
            writeln!(f, "C{i},Name{i},n{i}@example.com,2024-01-01T00:00:00Z")?;
            // Every other kind of row is bad: no id, or a bad timestamp.
            if i % 2 == 0 {
                writeln!(f, ",Nobody{i},x{i}@example.com,2024-01-01")?;
            } else {
                writeln!(f, "B{i},Late{i},y{i}@example.com,not a date")?;
            }
        }
        f.flush()?;
        drop(f);
        let ws = Workspace::open(&ws_dir)?;
        let mut conn = store::open(&ws.db_path())?;
        crate::pipeline::run_step(&mut conn, &ws, "stage", progress)?;
        std::fs::write(&marker, "")?;
    }
    let ws = Workspace::open(&ws_dir)?;
    let (w, h) = (200u16, 50u16);
    let t = Instant::now();
    let mut app = App::new(ws, h)?;
    let open_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut terminal = Terminal::new(TestBackend::new(w, h))?;
    let key = |c| KeyEvent::new(c, KeyModifiers::NONE);

    let mut out = String::new();
    writeln!(
        out,
        "workspace: {rows} staged + {rows} rejected CRM rows; terminal {w}×{h}; opening the workbench (all counts): {open_ms:.1} ms\n"
    )?;
    writeln!(
        out,
        "| screen | what each frame does | frames | mean ms | max ms |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|")?;
    let mut measure = |label: &str, what: &str, app: &mut App, keys: &[KeyCode]| -> Result<()> {
        let mut times = Vec::new();
        for i in 0..200 {
            let t = Instant::now();
            if !keys.is_empty() {
                app.handle_key(key(keys[i % keys.len()]));
            }
            terminal.draw(|f| ui::draw(f, app))?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let max = times.iter().cloned().fold(0.0, f64::max);
        writeln!(
            out,
            "| {label} | {what} | {} | {mean:.2} | {max:.2} |",
            times.len()
        )?;
        Ok(())
    };
    measure("Pipeline", "draw", &mut app, &[])?;
    measure(
        "Pipeline",
        "j/k, then draw",
        &mut app,
        &[KeyCode::Char('j'), KeyCode::Char('k')],
    )?;
    let t = Instant::now();
    app.handle_key(key(KeyCode::Char('2')));
    let switch_ms = t.elapsed().as_secs_f64() * 1000.0;
    measure("Rejects", "draw", &mut app, &[])?;
    measure(
        "Rejects",
        "j (scrolls past the bottom: keyset fetch), then draw",
        &mut app,
        &[KeyCode::Char('j')],
    )?;
    measure(
        "Rejects",
        "PgDn (fetch a page), then draw",
        &mut app,
        &[KeyCode::PageDown],
    )?;
    measure(
        "Rejects",
        "End / Home alternately, then draw",
        &mut app,
        &[KeyCode::End, KeyCode::Home],
    )?;
    app.handle_key(key(KeyCode::Char('e')));
    measure(
        "Rejects, filtered by reason",
        "PgDn, then draw",
        &mut app,
        &[KeyCode::PageDown],
    )?;
    writeln!(
        out,
        "\nswitching to Rejects (re-reads counts per source and reason, and the filtered total): {switch_ms:.1} ms"
    )?;
    Ok(out)
}

/// `c360 bench standardise`: standardise the workspace `c360 bench load`
/// built (1M CRM rows and ~5M web events by default).
pub fn bench_standardise(dir: &Path, progress: &dyn Progress) -> Result<String> {
    let ws_dir = dir.join("ws");
    let ws = Workspace::open(&ws_dir)
        .with_context(|| format!("run `c360 bench load --dir {}` first", dir.display()))?;
    // The bench workspace has no rules/: use the repository's defaults.
    if !ws.rules_dir().exists() {
        std::fs::create_dir_all(ws.rules_dir())?;
        for (name, body) in crate::workspace::DEFAULT_RULES {
            std::fs::write(ws.rules_dir().join(name), body)?;
        }
    }
    let mut conn = store::open(&ws.db_path())?;
    reset_peak_rss();
    let t = Instant::now();
    let r = crate::pipeline::standardise::run(&mut conn, &ws, progress, true)?;
    let secs = t.elapsed().as_secs_f64();
    let mut out = String::new();
    writeln!(
        out,
        "| input rows | CRM | web events | transactions | clean rows | seconds | rows/s | peak RSS (MiB) |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| {} | {} | {} | {} | {} | {secs:.1} | {:.0} | {:.0} |",
        r.rows_in,
        r.crm,
        r.web,
        r.transactions,
        r.rows_out,
        r.rows_in as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN)
    )?;
    writeln!(
        out,
        "\n{} unknown country values, {} unmapped event names",
        r.unknown_countries, r.unmapped_events
    )?;
    Ok(out)
}

/// A fresh benchmark workspace in `ws_dir`: the repository's default rules
/// and a `c360.toml` with a CRM CSV source and, when given, a web events
/// (Segment NDJSON) and a transactions (Parquet) source.
fn write_bench_workspace(
    ws_dir: &Path,
    crm: &Path,
    web: Option<&Path>,
    transactions: Option<&Path>,
) -> Result<()> {
    if ws_dir.exists() {
        std::fs::remove_dir_all(ws_dir)?;
    }
    std::fs::create_dir_all(ws_dir.join("rules"))?;
    for (name, body) in crate::workspace::DEFAULT_RULES {
        std::fs::write(ws_dir.join("rules").join(name), body)?;
    }
    let abs = |p: &Path| -> Result<String> {
        Ok(std::fs::canonicalize(p)
            .with_context(|| format!("{} missing", p.display()))?
            .display()
            .to_string())
    };
    let mut config = format!(
        "[settings]\ntimezone = \"UTC\"\ndate_order = \"mdy\"\n\n\
         [[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"{}\"\nformat = \"csv\"\n[sources.mapping]\naddress = \"street\"\n",
        abs(crm)?
    );
    if let Some(web) = web {
        write!(
            config,
            "\n[[sources]]\nname = \"web\"\nsystem = \"web\"\nlocation = \"{}\"\nformat = \"segment\"\n",
            abs(web)?
        )?;
    }
    if let Some(tx) = transactions {
        write!(
            config,
            "\n[[sources]]\nname = \"transactions\"\nsystem = \"transactions\"\nlocation = \"{}\"\nformat = \"parquet\"\n",
            abs(tx)?
        )?;
    }
    std::fs::write(ws_dir.join("c360.toml"), config)?;
    Ok(())
}

/// Overwrite a workspace's copy of some default rule files.
fn refresh_rules(ws: &Workspace, names: &[&str]) -> Result<()> {
    for (name, body) in crate::workspace::DEFAULT_RULES {
        if names.is_empty() || names.contains(name) {
            std::fs::write(ws.rules_dir().join(name), body)?;
        }
    }
    Ok(())
}

/// Generate data and say what and how fast (one line of `out`).
pub(crate) fn generate_timed(
    opts: &GenerateOptions,
    out: &mut String,
    progress: &dyn Progress,
) -> Result<()> {
    let t = Instant::now();
    let s = generate::generate(opts, progress)?;
    writeln!(
        out,
        "generate: {} people -> {} CRM rows, {} web events, {} transactions in {:.1} s",
        s.people,
        s.crm_rows,
        s.web_rows,
        s.transaction_rows,
        t.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// What `c360 bench resolve` runs on.
pub struct ResolveBenchOptions {
    /// Working folder: `data/` (generated once, reused) and `ws/` (loaded
    /// and standardised once, reused).
    pub dir: PathBuf,
    pub customers: u64,
    pub seed: u64,
    pub events_per_customer: f64,
    pub orders_per_customer: f64,
    /// CRM columns to remove before loading (e.g. email, phone): resolving
    /// on names, birth dates and addresses alone.
    pub drop_columns: Vec<String>,
}

/// Copy a CSV without some of its columns.
fn csv_without(from: &Path, to: &Path, columns: &[String]) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(from)
        .with_context(|| format!("reading {}", from.display()))?;
    // Bytes, not strings: the generator writes some invalid UTF-8 on purpose,
    // and those rows must reach the load (and its rejects) unchanged.
    let headers = reader.headers()?.clone();
    for d in columns {
        if !headers.iter().any(|h| h == d) {
            bail!("{}: no column {d:?} to drop", from.display());
        }
    }
    let keep: Vec<usize> = (0..headers.len())
        .filter(|&i| !columns.iter().any(|d| d == &headers[i]))
        .collect();
    // Written aside and renamed when complete, so an interrupted copy is
    // never taken for a finished one.
    let part = to.with_extension("csv.part");
    let mut writer = csv::WriterBuilder::new().flexible(true).from_path(&part)?;
    writer.write_record(keep.iter().map(|&i| &headers[i]))?;
    let mut record = csv::ByteRecord::new();
    while reader.read_byte_record(&mut record)? {
        writer.write_record(keep.iter().filter_map(|&i| record.get(i)))?;
    }
    writer.flush()?;
    drop(writer);
    std::fs::rename(&part, to)?;
    Ok(())
}

/// `c360 bench resolve`: resolve identities on generated data, first run
/// (no previous ids) then a re-run, with the time of each phase, the number
/// of comparisons, peak memory and pairwise quality against the truth file.
pub fn bench_resolve(opts: &ResolveBenchOptions, progress: &dyn Progress) -> Result<String> {
    let mut out = String::new();
    let data = opts.dir.join(format!(
        "data-{}-{}-{}-{}",
        opts.customers, opts.seed, opts.events_per_customer, opts.orders_per_customer
    ));
    let marker = data.join(".generated");
    if !marker.exists() {
        generate_timed(
            &GenerateOptions {
                customers: opts.customers,
                out: data.clone(),
                seed: opts.seed,
                events_per_customer: opts.events_per_customer,
                orders_per_customer: opts.orders_per_customer,
            },
            &mut out,
            progress,
        )?;
        out.push('\n');
        std::fs::write(&marker, "")?;
    }
    let variant = if opts.drop_columns.is_empty() {
        "all-columns".to_string()
    } else {
        format!("without-{}", opts.drop_columns.join("-"))
    };
    let crm = if opts.drop_columns.is_empty() {
        data.join("crm.csv")
    } else {
        let cut = data.join(format!("crm-{variant}.csv"));
        if !cut.exists() {
            csv_without(&data.join("crm.csv"), &cut, &opts.drop_columns)?;
        }
        cut
    };

    // Load and standardise once per data set and variant.
    let ws_dir = opts.dir.join(format!(
        "ws-{}-{}-{}",
        data.file_name().and_then(|n| n.to_str()).unwrap_or("data"),
        variant,
        env!("CARGO_PKG_VERSION")
    ));
    let ready = ws_dir.join(".standardised");
    if !ready.exists() {
        let web = data.join("web_events.ndjson");
        let transactions = data.join("transactions.parquet");
        write_bench_workspace(
            &ws_dir,
            &crm,
            (opts.events_per_customer > 0.0).then_some(web.as_path()),
            (opts.orders_per_customer > 0.0).then_some(transactions.as_path()),
        )?;
        let ws = Workspace::open(&ws_dir)?;
        let mut conn = store::open(&ws.db_path())?;
        let t = Instant::now();
        for source in &ws.sources {
            stage::load_source(&mut conn, &ws, source, progress)?;
        }
        let loaded = t.elapsed().as_secs_f64();
        let t = Instant::now();
        crate::pipeline::standardise::run(&mut conn, &ws, progress, true)?;
        writeln!(
            out,
            "load {loaded:.1} s, standardise {:.1} s (not part of the resolve figures)\n",
            t.elapsed().as_secs_f64()
        )?;
        std::fs::write(&ready, "")?;
    }
    let ws = Workspace::open(&ws_dir)?;
    // The workspace's rules follow the repository's defaults.
    refresh_rules(&ws, &[])?;
    let mut conn = store::open(&ws.db_path())?;
    // A first run: no ids from before, no steward decisions.
    conn.execute_batch(
        "DELETE FROM customer360_id_map; DELETE FROM customer360_id_lineage;
         DELETE FROM decision_members; DELETE FROM steward_decisions;
         DELETE FROM id_sequence;",
    )?;

    writeln!(
        out,
        "| run | records | customers | comparisons | auto-merged | to review | seconds | peak RSS (MiB) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut phase_lines = String::new();
    for run in ["first run", "re-run"] {
        reset_peak_rss();
        let t = Instant::now();
        let r = crate::pipeline::identity::resolve::run(&mut conn, &ws, progress)?;
        let secs = t.elapsed().as_secs_f64();
        writeln!(
            out,
            "| {run} | {} | {} | {} | {} | {} | {secs:.2} | {:.0} |",
            r.records,
            r.customers,
            r.comparisons,
            r.auto_merged,
            r.review,
            peak_rss_mib().unwrap_or(f64::NAN)
        )?;
        writeln!(phase_lines, "{run}: {}", r.phase_list())?;
        if run == "re-run" && (r.minted, r.merges, r.splits) != (0, 0, 0) {
            bail!(
                "re-run changed ids: {} minted, {} merges, {} splits",
                r.minted,
                r.merges,
                r.splits
            );
        }
    }
    writeln!(out, "\nseconds per phase\n{phase_lines}")?;
    let s = crate::pipeline::identity::resolve::eval_truth(&conn, &data.join("truth.csv"))?;
    writeln!(
        out,
        "quality ({variant}): {} records of {} people into {} customers; pairwise precision {:.4}, recall {:.4}, F1 {:.4}",
        s.records, s.true_entities, s.predicted_clusters, s.precision, s.recall, s.f1
    )?;
    Ok(out)
}

/// `c360 bench unify`: the unify step on a large generated workspace (1M
/// people and about 10M web events by default): generate, load, standardise
/// and resolve once (timed, reused), then unify twice (first run, re-run),
/// export the events to Parquet, and time searches and 360 views.
pub fn bench_unify(
    dir: &Path,
    customers: u64,
    events_per_customer: f64,
    progress: &dyn Progress,
) -> Result<String> {
    let mut out = String::new();
    let data = dir.join(format!("data-{customers}-{events_per_customer}"));
    let ws_dir = dir.join(format!("ws-{customers}-{events_per_customer}"));
    if !data.join(".generated").exists() {
        let t = Instant::now();
        let s = generate::generate(
            &GenerateOptions {
                customers,
                out: data.clone(),
                seed: 7,
                events_per_customer,
                orders_per_customer: 2.5,
            },
            progress,
        )?;
        std::fs::write(data.join(".generated"), "")?;
        writeln!(
            out,
            "generate: {} people -> {} CRM rows, {} web events, {} transactions in {:.1} s",
            s.people,
            s.crm_rows,
            s.web_rows,
            s.transaction_rows,
            t.elapsed().as_secs_f64()
        )?;
    }
    if !ws_dir.join(".resolved").exists() {
        write_bench_workspace(
            &ws_dir,
            &data.join("crm.csv"),
            Some(&data.join("web_events.ndjson")),
            Some(&data.join("transactions.parquet")),
        )?;
        let ws = Workspace::open(&ws_dir)?;
        let mut conn = store::open(&ws.db_path())?;
        for step in ["stage", "standardise", "resolve"] {
            reset_peak_rss();
            let t = Instant::now();
            let r = crate::pipeline::run_step(&mut conn, &ws, step, progress)?;
            writeln!(
                out,
                "{step}: {} in, {} out, {:.1} s, peak {:.0} MiB",
                r.rows_in,
                r.rows_out,
                t.elapsed().as_secs_f64(),
                peak_rss_mib().unwrap_or(f64::NAN)
            )?;
        }
        std::fs::write(ws_dir.join(".resolved"), "")?;
    }
    let ws = Workspace::open(&ws_dir)?;
    refresh_rules(&ws, &["survivorship.toml", "profiles.toml"])?;
    let mut conn = store::open(&ws.db_path())?;
    conn.execute_batch("DELETE FROM customer360_profiles")?;
    writeln!(
        out,
        "\n| run | profiles | events | new | updated | unchanged | seconds | peak RSS (MiB) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut phases = String::new();
    for run in ["first run", "re-run"] {
        reset_peak_rss();
        let t = Instant::now();
        let r = crate::pipeline::unify::run(&mut conn, &ws, progress)?;
        writeln!(
            out,
            "| {run} | {} | {} | {} | {} | {} | {:.2} | {:.0} |",
            r.profiles,
            r.events,
            r.new,
            r.updated,
            r.unchanged,
            t.elapsed().as_secs_f64(),
            peak_rss_mib().unwrap_or(f64::NAN)
        )?;
        writeln!(phases, "{run}: {}", r.phase_list())?;
    }
    writeln!(out, "\nseconds per phase\n{phases}")?;
    reset_peak_rss();
    let parquet = dir.join("events.parquet");
    let r = crate::read::export::export(
        &conn,
        "customer360_events",
        crate::read::export::Format::Parquet,
        &parquet,
        progress,
    )?;
    writeln!(
        out,
        "export: {} ({:.0} MiB file, peak {:.0} MiB)",
        r.summary(),
        file_mib(&parquet),
        peak_rss_mib().unwrap_or(f64::NAN)
    )?;
    let _ = std::fs::remove_file(&parquet);
    out.push_str(&bench_customer_queries(&conn)?);
    Ok(out)
}

/// Latency of the Customers screen's reads on a unified workspace: search
/// by each kind of key, list pages, and what selecting and opening a
/// customer reads. Milliseconds, median and worst of the samples.
pub fn bench_customer_queries(conn: &Connection) -> Result<String> {
    use crate::read::customers::{self, ListFilter, Sort, TimelineFilter};
    let profiles: i64 = conn.query_row("SELECT count(*) FROM customer360_profiles", [], |r| {
        r.get(0)
    })?;
    let events: i64 =
        conn.query_row("SELECT count(*) FROM customer360_events", [], |r| r.get(0))?;
    // 20 customers spread over the id range, with a CRM record.
    let mut sample: Vec<(String, String, String, String, String)> = Vec::new();
    for k in 0..20i64 {
        let offset = profiles * k / 20;
        let row = conn.query_row(
            "SELECT customer360_id, coalesce(email, ''), coalesce(phone, ''), coalesce(name_key, ''),
                    substr(crm_ids, 1, instr(crm_ids || ',', ',') - 1)
             FROM customer360_profiles WHERE customer360_id >= (
                 SELECT customer360_id FROM customer360_profiles ORDER BY customer360_id LIMIT 1 OFFSET ?1)
               AND crm_records > 0 ORDER BY customer360_id LIMIT 1",
            [offset],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        );
        if let Ok(r) = row {
            sample.push(r);
        }
    }
    let time = |f: &mut dyn FnMut(usize) -> Result<usize>| -> Result<(f64, f64, usize)> {
        let mut ms: Vec<f64> = Vec::new();
        let mut hits = 0;
        for i in 0..sample.len() {
            let t = Instant::now();
            hits += f(i)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        Ok((ms[ms.len() / 2], *ms.last().unwrap_or(&0.0), hits))
    };
    let mut out = String::new();
    writeln!(
        out,
        "\nCustomers screen reads on {profiles} profiles and {events} events ({} customers sampled):\n",
        sample.len()
    )?;
    writeln!(out, "| read | median ms | worst ms | found |")?;
    writeln!(out, "|---|---:|---:|---:|")?;
    let mut row = |name: &str, r: (f64, f64, usize)| -> Result<()> {
        writeln!(
            out,
            "| {name} | {:.2} | {:.2} | {}/{} |",
            r.0,
            r.1,
            r.2,
            sample.len()
        )?;
        Ok(())
    };
    let found =
        |rows: Vec<customers::ProfileRow>, id: &str| usize::from(rows.iter().any(|r| r.id == id));
    // (read, which sampled value, how many results to look through)
    for (name, key, limit) in [
        ("search by e-mail", 1, 20),
        ("search by phone", 2, 20),
        ("search by name", 3, 200),
        ("search by CRM id", 4, 20),
        ("search by customer360_id", 0, 20),
    ] {
        let value = |i: usize| -> &str {
            let s = &sample[i];
            [&s.0, &s.1, &s.2, &s.3, &s.4][key].as_str()
        };
        row(
            name,
            time(&mut |i| {
                Ok(found(
                    customers::search(conn, value(i), limit)?,
                    &sample[i].0,
                ))
            })?,
        )?;
    }
    row(
        "select: profile + first 200 events",
        time(&mut |i| {
            let p = crate::pipeline::unify::profile_fields(conn, &sample[i].0)?;
            let t = customers::timeline(conn, &sample[i].0, TimelineFilter::All, None, 200)?;
            Ok(usize::from(p.is_some() && !t.is_empty()))
        })?,
    )?;
    row(
        "open: 360 view with the why",
        time(&mut |i| {
            Ok(usize::from(
                customers::view_text(conn, &sample[i].0)?.contains("Why"),
            ))
        })?,
    )?;
    // List pages: the first, and the 20th by keyset.
    let filter = ListFilter::default();
    for sort in Sort::ALL {
        let t = Instant::now();
        let first = customers::list(conn, sort, &filter, None, 200)?;
        let first_ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut page = first;
        let t = Instant::now();
        for _ in 0..19 {
            let Some(last) = page.last() else { break };
            let c = customers::cursor_after(conn, sort, last)?;
            page = customers::list(conn, sort, &filter, Some(&c), 200)?;
        }
        writeln!(
            out,
            "| list by {}: first page / next page (of 19) | {first_ms:.2} | {:.2} | - |",
            sort.label(),
            t.elapsed().as_secs_f64() * 1000.0 / 19.0
        )?;
    }
    Ok(out)
}

/// `c360 bench analyse`: the analyse step and segment counts on the
/// workspace `c360 bench unify` built.
pub fn bench_analyse(dir: &Path, progress: &dyn Progress) -> Result<String> {
    let ws_dir = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join(".resolved").exists())
        .with_context(|| format!("run `c360 bench unify --dir {}` first", dir.display()))?;
    let ws = Workspace::open(&ws_dir)?;
    let mut conn = store::open(&ws.db_path())?;
    let mut out = String::new();
    reset_peak_rss();
    let t = Instant::now();
    let r = crate::pipeline::analyse::run(&mut conn, progress)?;
    writeln!(
        out,
        "analyse: {} in {:.2} s, peak {:.0} MiB\n",
        r.summary(),
        t.elapsed().as_secs_f64(),
        peak_rss_mib().unwrap_or(f64::NAN)
    )?;
    use crate::read::segments;
    let mut cols = segments::Columns::new(&conn)?;
    writeln!(
        out,
        "| segment filter | profiles | first count ms (loads columns) | later counts ms | SQL count ms |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    for filter in [
        r#"country = "DE" and orders >= 3 and last_order < 90d"#,
        r#"lifecycle in ("lapsed", "churned") and revenue > 500"#,
        r#"churn_risk >= 0.6 and not anonymous"#,
        r#"email contains "@gmail." and days_inactive > 30"#,
    ] {
        let e = segments::parse(filter)?;
        let t = Instant::now();
        cols.load_for(&conn, &e)?;
        let n = cols.count(&e);
        let first = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        for _ in 0..10 {
            cols.count(&e);
        }
        let later = t.elapsed().as_secs_f64() * 100.0;
        let t = Instant::now();
        let m = segments::count_sql(&conn, &e)?;
        let sql = t.elapsed().as_secs_f64() * 1000.0;
        if m != n {
            bail!("{filter}: {n} in memory, {m} in SQL");
        }
        writeln!(
            out,
            "| `{filter}` | {n} | {first:.0} | {later:.1} | {sql:.0} |"
        )?;
    }
    Ok(out)
}
