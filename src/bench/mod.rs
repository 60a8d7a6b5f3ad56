//! `c360 bench load`: load + stage throughput on generated data, compared in
//! the same run with the `sqlite3` shell's `.import` of the same CSV, and the
//! process's peak memory. Prints a Markdown table for BENCHMARKS.md.

pub mod pipeline;

use crate::generate::{self, GenerateOptions};
use crate::pipeline::progress::Progress;
use crate::pipeline::stage;
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
    let r = crate::pipeline::export::export(
        &conn,
        "customer360_events",
        crate::pipeline::export::Format::Parquet,
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
    use crate::pipeline::customers::{self, ListFilter, Sort, TimelineFilter};
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
    use crate::pipeline::segments;
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
