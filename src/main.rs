//! `c360`: the definition of the CLI plus glue. All work is in the library.

use anyhow::{Result, bail};
use c360::console::ConsoleProgress;
use c360::pipeline::STEPS;
use c360::pipeline::load::stage::{self, LoadReport};
use c360::store;
use c360::workspace::{self, Workspace};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;
use cli::json;

#[derive(Parser)]
#[command(
    name = "c360",
    version,
    about = "Customer360 Workbench: load, standardise, resolve and explore customer data",
    long_about = "Customer360 Workbench: a local workbench that turns CRM records, web/app events and \
transactions into one explainable profile per customer.\n\nStart with `c360 demo`, or \
`c360 init DIR` then `c360 load --workspace DIR`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON document on stdout instead of text (status, rejects,
    /// review list|show|decisions, explain, segment count|list, eval, bench,
    /// check, schema).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Build (or reuse) the demo workspace from sample_data/ and run the pipeline.
    Demo {
        /// Demo workspace folder.
        #[arg(long, default_value = "c360-demo")]
        workspace: PathBuf,
        /// Print a summary instead of opening the workbench.
        #[arg(long)]
        headless: bool,
        /// Delete the demo workspace (and its decisions) and start over.
        #[arg(long)]
        fresh: bool,
    },
    /// Open the workbench (TUI) on a workspace.
    Tui {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
    },
    /// Create a workspace: c360.toml (sources, settings) and rules/.
    Init {
        /// Folder to create the workspace in.
        dir: PathBuf,
    },
    /// Extract and stage every source of the workspace (pipeline steps 1-2).
    Load {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
        /// Load only this source (by name).
        #[arg(long)]
        source: Option<String>,
        /// Exit non-zero when every row of a source was rejected.
        #[arg(long)]
        strict: bool,
        /// Stage the rows already loaded again, from the raw rows kept in the
        /// workspace, with the current mapping, format and time zone (steward
        /// decisions are kept); then `c360 run --all` updates the rest.
        #[arg(long)]
        restage: bool,
    },
    /// Run a pipeline step, or all of them.
    Run {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
        /// Step to run: extract, stage, standardise, resolve, unify, analyse.
        #[arg(long, required_unless_present = "all")]
        step: Option<String>,
        /// Run every available step in order.
        #[arg(long)]
        all: bool,
        /// Stop with a non-zero exit when the load rejected every row of a
        /// source.
        #[arg(long)]
        strict: bool,
        /// Redo every step's whole work, even when its inputs did not change
        /// (the results are the same as an incremental run's).
        #[arg(long)]
        full: bool,
    },
    /// Show the sources, load batches and table counts of a workspace.
    Status {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
    },
    /// List rejected rows with their reason, and counts per reason.
    Rejects {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
        /// Only rows of this source.
        #[arg(long)]
        source: Option<String>,
        /// Only rows with this reason (e.g. bad_timestamp, ragged_row).
        #[arg(long)]
        reason: Option<String>,
        /// How many rows to print (0: only the counts).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print rows after this reject_id (paging).
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Generate messy synthetic data for all three systems, with ground truth.
    Generate {
        /// Number of true people.
        #[arg(long, default_value_t = 2000)]
        customers: u64,
        /// Output folder (crm.csv, web_events.ndjson, transactions.parquet, truth.csv).
        #[arg(long)]
        out: PathBuf,
        /// Random seed: the same seed gives byte-identical files.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Average web events per person.
        #[arg(long, default_value_t = 10.0)]
        events_per_customer: f64,
        /// Average orders per person.
        #[arg(long, default_value_t = 2.5)]
        orders_per_customer: f64,
    },
    /// Why records are one customer: records, shared identifiers, lineage.
    Explain {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
        /// A customer360_id, or a record key (system:source:record_id).
        who: String,
    },
    /// Pairwise precision, recall and F1 of the customer360 ids against a truth file.
    Eval {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
        /// CSV with columns source (crm/web/transactions), record_id, person_id.
        #[arg(long)]
        truth: PathBuf,
    },
    /// Export a table for BI tools (Parquet keeps the types; CSV has ISO UTC
    /// times), or with --all every output table as CSV, Parquet and a DuckDB file set.
    Export {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
        /// The table, e.g. customer360_profiles, customer360_events, match_candidates.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        table: Option<String>,
        /// Every output table into the folder --out: csv/, parquet/ and duckdb.sql.
        #[arg(long)]
        all: bool,
        /// csv or parquet (default: from the --out extension, else parquet).
        #[arg(long, conflicts_with = "all")]
        format: Option<String>,
        /// The file (or, with --all, the folder) to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Validate c360.toml and every rule file without running anything.
    Check {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
    },
    /// The data dictionary: every output table and column (type, meaning, step, provenance).
    Schema {
        /// md or json.
        #[arg(long, default_value = "md")]
        format: String,
    },
    /// Shell completions: `c360 completions bash > ~/.local/share/bash-completion/completions/c360`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write a one-page static HTML report of the analytics (SVG charts, no network).
    Report {
        #[arg(long, default_value = ".", env = "C360_WORKSPACE")]
        workspace: PathBuf,
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
    },
    /// Segments: count a filter over profile fields, save it, list, export an audience file.
    Segment {
        #[arg(long, default_value = ".", global = true, env = "C360_WORKSPACE")]
        workspace: PathBuf,
        #[command(subcommand)]
        what: SegmentCmd,
    },
    /// Steward review of fuzzy match candidates (for scripts; the TUI has a Review screen).
    Review {
        #[arg(long, default_value = ".", global = true, env = "C360_WORKSPACE")]
        workspace: PathBuf,
        #[command(subcommand)]
        what: Review,
    },
    /// Beyond one machine: compile the workspace into SQL for a warehouse, pull a run back.
    Warehouse {
        #[arg(long, default_value = ".", global = true, env = "C360_WORKSPACE")]
        workspace: PathBuf,
        #[command(subcommand)]
        what: WarehouseCmd,
    },
    /// Benchmarks (figures for BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Review {
    /// List candidates: pending (default), review, auto, decided.
    List {
        #[arg(long, default_value = "pending")]
        filter: String,
        /// Order: uncertainty (closest to a coin flip first) or score.
        #[arg(long, default_value = "uncertainty")]
        order: String,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show one candidate: both records' values, each comparison's level and weight.
    Show { candidate: i64 },
    /// Approve a merge (must-link): a candidate id, or two record keys.
    Approve {
        /// Candidate id, or the first record key.
        first: String,
        /// The second record key (when the first is a record key).
        second: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "steward")]
        actor: String,
    },
    /// Reject a merge (cannot-link): a candidate id, or two record keys.
    Reject {
        first: String,
        second: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "steward")]
        actor: String,
    },
    /// Split records off their customer: they are kept apart from its other records.
    Split {
        /// Record keys (system:source:record_id) to split off, all of one customer.
        #[arg(required = true)]
        records: Vec<String>,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "steward")]
        actor: String,
    },
    /// Approve or reject every pending pair with a probability in [min, max] as one bulk.
    Bulk {
        /// approve or reject
        action: String,
        #[arg(long)]
        min: f64,
        #[arg(long)]
        max: f64,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "steward")]
        actor: String,
    },
    /// Undo a decision (the latest one when no id is given; a bulk as a whole).
    Undo {
        decision: Option<i64>,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = "steward")]
        actor: String,
    },
    /// The decisions in force and undone, newest first.
    Decisions {
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

#[derive(Subcommand)]
enum WarehouseCmd {
    /// Compile the rules, the trained match model and the steward decisions into
    /// numbered SQL scripts, seed CSVs and a README (duckdb, spark, bigquery, snowflake).
    Sql {
        #[arg(long)]
        dialect: c360::warehouse::Dialect,
        #[arg(long)]
        out: PathBuf,
        /// Number new customers afresh instead of carrying this workspace's ids over.
        #[arg(long)]
        fresh_ids: bool,
        /// Label propagation rounds before the fixed point is checked.
        #[arg(long, default_value_t = c360::warehouse::identity::DEFAULT_ROUNDS)]
        rounds: usize,
        /// Use the match model another workspace trained (a local run on a sample).
        #[arg(long)]
        model_from: Option<PathBuf>,
    },
    /// Bring a warehouse run's id map, candidate pairs and profiles into the
    /// workspace for review (a folder of CSV files, e.g. DIR/results).
    Pull {
        #[arg(long)]
        from: PathBuf,
        /// Keep only this many review-band pairs (a sample, highest weight first).
        #[arg(long)]
        sample: Option<usize>,
    },
}

#[derive(Subcommand)]
enum SegmentCmd {
    /// How many profiles match a filter, e.g. 'country = "DE" and orders >= 3 and last_order < 90d'.
    Count { filter: String },
    /// Save a filter under a name in rules/segments.toml.
    Save {
        name: String,
        filter: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The saved segments with their sizes.
    List,
    /// Write a segment's profiles (a saved name or a filter) as an audience file.
    Export {
        segment: String,
        #[arg(long)]
        out: PathBuf,
        /// csv or parquet (default: from the --out extension, else parquet).
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The whole pipeline on a generated world (100k people, ~5M web events,
    /// ~500k orders): time, CPU use and peak memory per step, workspace size,
    /// then re-runs with nothing new, with 1 % more events, with a changed CRM
    /// export.
    Pipeline {
        /// Working folder (generated data is kept and reused; the workspace is fresh).
        #[arg(long, default_value = "target/bench-pipeline")]
        dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        customers: u64,
        #[arg(long, default_value_t = 48.0)]
        events_per_customer: f64,
        #[arg(long, default_value_t = 5.0)]
        orders_per_customer: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Share of web events and CRM rows held back for the incremental runs (%).
        #[arg(long, default_value_t = 1.0)]
        increment_pct: f64,
    },
    /// Standardise the workspace built by `bench load`.
    Standardise {
        #[arg(long, default_value = "target/bench-load")]
        dir: PathBuf,
    },
    /// Frame times of the TUI screens on a large workspace.
    Tui {
        /// Working folder (the workspace is built once and reused).
        #[arg(long, default_value = "target/bench-tui")]
        dir: PathBuf,
        /// Staged rows and rejected rows (each).
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
    },
    /// Resolve identities on generated data: first run and re-run, time per
    /// phase, comparisons, peak memory, and quality against the truth file.
    Resolve {
        /// Working folder (generated data and the standardised workspace are
        /// built once and reused).
        #[arg(long, default_value = "target/bench-resolve")]
        dir: PathBuf,
        /// People to generate (820,000 people make about 1,000,000 CRM rows).
        #[arg(long, default_value_t = 820_000)]
        customers: u64,
        #[arg(long, default_value_t = 5)]
        seed: u64,
        /// Web events per person (0: CRM only).
        #[arg(long, default_value_t = 0.0)]
        events_per_customer: f64,
        /// Orders per person (0: CRM only).
        #[arg(long, default_value_t = 0.0)]
        orders_per_customer: f64,
        /// CRM columns to remove before loading, comma-separated (e.g. email,phone).
        #[arg(long, value_delimiter = ',')]
        drop_columns: Vec<String>,
    },
    /// Unify on a large generated workspace (1M people, ~10M events by
    /// default): first run, re-run, Parquet export of the events.
    Unify {
        #[arg(long, default_value = "target/bench-unify")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        customers: u64,
        #[arg(long, default_value_t = 10.0)]
        events_per_customer: f64,
    },
    /// The analyse step and segment counts on the `bench unify` workspace.
    Analyse {
        #[arg(long, default_value = "target/bench-unify")]
        dir: PathBuf,
    },
    /// Load + stage generated data; compare with the sqlite3 shell's .import.
    Load {
        /// Working folder (generated data is kept and reused).
        #[arg(long, default_value = "target/bench-load")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        customers: u64,
        /// Average web events per person (5 with 1M customers: about 5M events).
        #[arg(long, default_value_t = 5.0)]
        events_per_customer: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Load at most this many web events (the first lines of the file).
        #[arg(long, default_value_t = 5_000_000)]
        max_web_events: u64,
    },
}

/// mimalloc: the resolve step allocates millions of small strings from
/// both cores; glibc's allocator spent a tenth of that step consolidating.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    // Who we are, for another c360 process that has to wait for us.
    let args: Vec<String> = std::env::args().skip(1).collect();
    c360::store::lock::set_command(&c360::safe_text::escape(&format!(
        "c360 {}",
        args.join(" ")
    )));
    // Waits are printed on stderr, except under the workbench (its status
    // line shows them).
    let workbench = matches!(
        cli.command,
        Command::Tui { .. }
            | Command::Demo {
                headless: false,
                ..
            }
    );
    if !workbench {
        c360::store::lock::set_notice(|m| eprintln!("{m}"));
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // "database is locked" says nothing about who holds it.
            let e = match c360::store::lock::busy_hint(&e, None) {
                Some(hint) => e.context(hint),
                None => e,
            };
            // Errors quote data (a CSV header, a REST `next` link, an id):
            // escaped as a whole, keeping the message's own line breaks.
            eprintln!(
                "error: {}",
                c360::safe_text::escape_lines(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so `c360 rejects | head -1` would get a "broken
/// pipe" error from the first `println!` after `head` exits and panic (exit
/// 101). Restore the default action: the process ends quietly, as `cat`
/// does. (Sockets are unaffected: std writes them with MSG_NOSIGNAL.)
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread starts; SIG_DFL
    // is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let progress = ConsoleProgress::new();
    let json = cli.json;
    if json && !speaks_json(&cli.command) {
        bail!(
            "--json is not available for this command; it is for: {}",
            json::COMMANDS
        );
    }
    match cli.command {
        Command::Demo {
            workspace,
            headless,
            fresh,
        } => return demo(workspace, headless, fresh, &progress),
        Command::Tui { workspace } => {
            let ws = Workspace::open(&workspace)?;
            if !std::io::stdout().is_terminal() {
                bail!("the workbench needs a terminal (stdout is not one)");
            }
            c360::tui::run(ws)?;
        }
        Command::Init { dir } => {
            workspace::init(&dir)?;
            println!(
                "Created workspace {}: {} and {}/",
                dir.display(),
                dir.join(workspace::CONFIG_FILE).display(),
                dir.join(workspace::RULES_DIR).display()
            );
            println!(
                "Edit the sources in c360.toml (or `c360 generate --out {}/data`), then `c360 load --workspace {}`.",
                dir.display(),
                dir.display()
            );
        }
        Command::Load {
            workspace,
            source,
            strict,
            restage,
        } => return load(workspace, source, strict, restage, &progress),
        Command::Run {
            workspace,
            step,
            all,
            strict,
            full,
        } => return run_steps(workspace, step, all, strict, full, &progress),
        Command::Status { workspace } => {
            let ws = Workspace::open(&workspace)?;
            if json {
                json::emit(&json::status(&ws)?)?;
            } else {
                print_status(&ws)?;
            }
        }
        Command::Check { workspace } => return check(&workspace, json),
        Command::Schema { format } => {
            let format = if json { "json" } else { format.as_str() };
            match format {
                "md" => print!("{}", c360::read::dictionary::markdown()),
                "json" => json::emit(&c360::read::dictionary::json())?,
                other => bail!("--format {other:?}: use md or json"),
            }
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "c360", &mut std::io::stdout());
        }
        Command::Rejects {
            workspace,
            source,
            reason,
            limit,
            after,
        } => rejects(workspace, source, reason, limit, after, json)?,
        Command::Generate {
            customers,
            out,
            seed,
            events_per_customer,
            orders_per_customer,
        } => {
            let opts = c360::generate::GenerateOptions {
                customers,
                out: out.clone(),
                seed,
                events_per_customer,
                orders_per_customer,
            };
            let summary = c360::generate::generate(&opts, &progress)?;
            println!(
                "Generated {} people into {}: {} CRM rows, {} web events, {} transactions, {} truth rows",
                summary.people,
                out.display(),
                summary.crm_rows,
                summary.web_rows,
                summary.transaction_rows,
                summary.truth_rows
            );
        }
        Command::Explain { workspace, who } => {
            let ws = Workspace::open(&workspace)?;
            let conn = store::open(&ws.db_path())?;
            if json {
                json::emit(&c360::read::explain::gather(&conn, &who)?)?;
            } else {
                print!(
                    "{}",
                    printable_lines(&c360::read::explain::explain(&conn, &who)?)
                );
            }
        }
        Command::Review { workspace, what } => {
            let ws = Workspace::open(&workspace)?;
            let mut conn = store::open(&ws.db_path())?;
            review(&mut conn, what, json)?;
        }
        Command::Report { workspace, out } => {
            let ws = Workspace::open(&workspace)?;
            let conn = store::open(&ws.db_path())?;
            // `.` has no name: the folder's own name, as the user knows it.
            let name = std::fs::canonicalize(&ws.root)
                .unwrap_or_else(|_| ws.root.clone())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let html = c360::report::render(&conn, &name)?;
            std::fs::write(&out, &html)?;
            println!("wrote {} ({} KiB)", out.display(), html.len() / 1024);
        }
        Command::Segment { workspace, what } => segment(workspace, what, json, &progress)?,
        Command::Export {
            workspace,
            table,
            all,
            format,
            out,
        } => export(&workspace, table, all, format, &out, &progress)?,
        Command::Eval { workspace, truth } => eval(workspace, truth, json)?,
        Command::Warehouse { workspace, what } => warehouse(workspace, what)?,
        Command::Bench { what } => bench(what, json, &progress)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a command prints a JSON document with `--json`.
fn speaks_json(command: &Command) -> bool {
    matches!(
        command,
        Command::Status { .. }
            | Command::Rejects { .. }
            | Command::Review { .. }
            | Command::Explain { .. }
            | Command::Eval { .. }
            | Command::Bench { .. }
            | Command::Check { .. }
            | Command::Schema { .. }
            | Command::Segment {
                what: SegmentCmd::Count { .. } | SegmentCmd::List,
                ..
            }
    )
}

/// `c360 check`: every file, its outcome; non-zero when one is invalid.
fn check(workspace: &std::path::Path, json: bool) -> Result<ExitCode> {
    let all = c360::check::check(workspace);
    let ok = all.iter().all(|c| c.ok());
    if json {
        json::emit(&serde_json::json!({"ok": ok, "files": all}))?;
    } else {
        for c in &all {
            match &c.error {
                None => println!("ok      {} (read by {})", c.file, c.read_by),
                Some(e) => {
                    println!("ERROR   {} (read by {}):", c.file, c.read_by);
                    for line in c360::safe_text::escape_lines(e).lines() {
                        println!("  {line}");
                    }
                }
            }
            for w in &c.warnings {
                println!("warning {}", printable(w));
            }
        }
        println!(
            "{}",
            if ok {
                "The workspace's configuration and rules are valid."
            } else {
                "Fix the errors above; no step was run."
            }
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `c360 export`: one table to a file, or `--all` into a folder.
fn export(
    workspace: &std::path::Path,
    table: Option<String>,
    all: bool,
    format: Option<String>,
    out: &std::path::Path,
    progress: &ConsoleProgress,
) -> Result<()> {
    use c360::read::export::{self, Format};
    let ws = Workspace::open(workspace)?;
    let conn = store::open(&ws.db_path())?;
    if all {
        let segments = c360::read::segments::load(&ws.rules_dir())?;
        let reports = export::export_all(&conn, &segments, out, progress)?;
        for r in &reports {
            println!("{}", r.summary());
        }
        let files: usize = reports.iter().map(|r| r.files.len()).sum();
        println!(
            "{} tables in {} files (and duckdb.sql, schema.md, schema.json, README.md, manifest.json) in {}; DuckDB: `duckdb -c \".read duckdb.sql\"` there",
            reports.len(),
            files,
            out.display()
        );
        return Ok(());
    }
    let table = table.unwrap_or_default();
    let format = match format {
        Some(f) => Format::parse(&f)?,
        None => Format::from_path(out).unwrap_or(Format::Parquet),
    };
    let report = export::export(&conn, &table, format, out, progress)?;
    println!("{}", report.summary());
    Ok(())
}

/// `c360 warehouse sql|pull`.
fn warehouse(workspace: PathBuf, what: WarehouseCmd) -> Result<()> {
    use c360::warehouse::compile;
    let ws = Workspace::open(&workspace)?;
    match what {
        WarehouseCmd::Sql {
            dialect,
            out,
            fresh_ids,
            rounds,
            model_from,
        } => {
            let opts = compile::Options {
                dialect,
                out: out.clone(),
                previous_ids: !fresh_ids,
                rounds,
                model_from,
            };
            let done = compile::compile(&ws, &opts)?;
            println!(
                "wrote {} scripts and {} seed tables for {dialect} to {} (how to run them: {})",
                done.scripts.len(),
                done.seeds.rows.len(),
                out.display(),
                out.join("README.md").display()
            );
        }
        WarehouseCmd::Pull { from, sample } => {
            let report = c360::warehouse::pull::pull(&ws, &from, sample)?;
            println!("{}", report.summary());
        }
    }
    Ok(())
}

/// `c360 demo`: build (or reuse) the demo workspace, then open the workbench
/// or, headless, print what each step did.
fn demo(
    workspace: PathBuf,
    headless: bool,
    fresh: bool,
    progress: &ConsoleProgress,
) -> Result<ExitCode> {
    let demo = c360::demo::prepare(&workspace, fresh, progress)?;
    if !headless {
        if !std::io::stdout().is_terminal() {
            bail!("the workbench needs a terminal; use `c360 demo --headless` in scripts");
        }
        c360::tui::run(demo.workspace)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Demo workspace {} ({})",
        workspace.display(),
        if demo.created {
            "built from sample_data/"
        } else {
            "reused; --fresh starts over"
        }
    );
    print_loads(&demo.loads);
    for r in demo.reports.iter().filter(|r| r.loads.is_empty()) {
        println!("{}: {} ({:.2}s)", r.step, r.message, r.seconds);
    }
    print_status(&demo.workspace)?;
    let w = workspace.display();
    println!(
        "\nNext: c360 tui --workspace {w} | c360 explain --workspace {w} C360-00000001 | \
         c360 segment count --workspace {w} 'churn_risk >= 0.6' | c360 report --workspace {w}"
    );
    Ok(ExitCode::SUCCESS)
}

/// `c360 load`: load every source (or one), or restage what is loaded.
fn load(
    workspace: PathBuf,
    source: Option<String>,
    strict: bool,
    restage: bool,
    progress: &ConsoleProgress,
) -> Result<ExitCode> {
    let ws = Workspace::open(&workspace)?;
    let mut conn = store::open(&ws.db_path())?;
    if let Some(name) = &source
        && ws.source(name).is_none()
    {
        bail!(
            "no source named {name:?} in {} (sources: {})",
            workspace.join(workspace::CONFIG_FILE).display(),
            source_names(&ws)
        );
    }
    if restage {
        let reports = stage::restage_all(&mut conn, &ws, source.as_deref(), progress)?;
        print_restages(&reports, &workspace);
        return Ok(ExitCode::SUCCESS);
    }
    let reports = match source {
        Some(name) => {
            let Some(src) = ws.source(&name) else {
                bail!(
                    "no source named {name:?} in {} (sources: {})",
                    workspace.join(workspace::CONFIG_FILE).display(),
                    source_names(&ws)
                );
            };
            vec![stage::load_source(&mut conn, &ws, src, progress)?]
        }
        None => show_committed(c360::pipeline::run_step(&mut conn, &ws, "stage", progress))?.loads,
    };
    if print_loads(&reports) > 0 && strict {
        eprintln!("--strict: a source had every row rejected");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `c360 run`: one step or all of them, incremental unless `--full`.
fn run_steps(
    workspace: PathBuf,
    step: Option<String>,
    all: bool,
    strict: bool,
    full: bool,
    progress: &ConsoleProgress,
) -> Result<ExitCode> {
    let ws = Workspace::open(&workspace)?;
    let mode = if full {
        c360::pipeline::Mode::Full
    } else {
        c360::pipeline::Mode::Incremental
    };
    let steps: Vec<&'static c360::pipeline::Step> = if all {
        STEPS.iter().collect()
    } else {
        let name = step.unwrap_or_default();
        match c360::pipeline::step(&name) {
            Some(s) => vec![s],
            None => bail!(
                "unknown step {name:?}; steps: {}",
                STEPS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
            ),
        }
    };
    let mut conn = store::open(&ws.db_path())?;
    // `--all` holds the workspace across its steps: no other run
    // slips in between them.
    let _run = if all {
        Some(c360::store::lock::lock_run(
            &ws.db_path(),
            "run all",
            progress,
        )?)
    } else {
        None
    };
    let mut missing = Vec::new();
    let mut ran_load = false;
    for step in steps {
        if !step.available {
            missing.push(step.name);
            continue;
        }
        let is_load = matches!(step.name, "extract" | "stage");
        if is_load && ran_load {
            continue;
        }
        ran_load |= is_load;
        let report = show_committed(c360::pipeline::run_step_with(
            &mut conn, &ws, step.name, progress, mode,
        ))?;
        if is_load {
            if print_loads(&report.loads) > 0 && strict {
                eprintln!("--strict: a source had every row rejected; later steps not run");
                return Ok(ExitCode::FAILURE);
            }
        } else {
            println!(
                "{}: {} ({:.2}s)",
                report.step, report.message, report.seconds
            );
        }
    }
    if !missing.is_empty() {
        eprintln!("not available in this build yet: {}", missing.join(", "));
        if !all {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `c360 rejects`: counts per source and reason, then a page of rows.
fn rejects(
    workspace: PathBuf,
    source: Option<String>,
    reason: Option<String>,
    limit: usize,
    after: i64,
    json: bool,
) -> Result<()> {
    let ws = Workspace::open(&workspace)?;
    let conn = store::open(&ws.db_path())?;
    let counts = store::reject_counts(&conn, source.as_deref())?;
    let total: u64 = counts.iter().map(|c| c.2).sum();
    if json {
        let rows = store::rejects_page(&conn, source.as_deref(), reason.as_deref(), after, limit)?;
        let more = (rows.len() == limit && limit > 0).then(|| rows.last().map(|r| r.reject_id));
        let counts: Vec<_> = counts
            .iter()
            .map(|(s, r, n)| serde_json::json!({"source": s, "reason": r, "rows": n}))
            .collect();
        return json::emit(&serde_json::json!({
            "total": total, "counts": counts, "rows": rows, "next_after": more.flatten(),
        }));
    }
    println!("{total} rejected rows");
    for (src, why, n) in &counts {
        println!("  {n:>8}  {:<16} {}", printable(src), printable(why));
    }
    if limit > 0 {
        let rows = store::rejects_page(&conn, source.as_deref(), reason.as_deref(), after, limit)?;
        for r in &rows {
            println!(
                "\n#{} {} batch {} row {}  {}{}\n  {}\n  raw: {}",
                r.reject_id,
                printable(&r.source),
                r.batch_id,
                r.row_num,
                printable(&r.reason),
                r.field
                    .as_deref()
                    .map(|f| format!(" ({})", printable(f)))
                    .unwrap_or_default(),
                printable(&r.detail),
                printable(&truncate(&r.raw, 300))
            );
        }
        if let Some(last) = rows.last()
            && rows.len() == limit
        {
            println!("\nmore: --after {}", last.reject_id);
        }
    }
    Ok(())
}

/// `c360 segment`: count, save, list or export a segment.
fn segment(
    workspace: PathBuf,
    what: SegmentCmd,
    json: bool,
    progress: &ConsoleProgress,
) -> Result<()> {
    use c360::read::export::{self, Format};
    use c360::read::segments;
    let ws = Workspace::open(&workspace)?;
    let conn = store::open(&ws.db_path())?;
    let saved = segments::load(&ws.rules_dir())?;
    let filter_of = |s: &str| -> String {
        saved
            .iter()
            .find(|x| x.name == s)
            .map_or(s.to_string(), |x| x.filter.clone())
    };
    match what {
        SegmentCmd::Count { filter } => {
            let e = segments::parse(&filter)
                .map_err(|e| anyhow::anyhow!("{filter}\n{}^\n{e}", " ".repeat(e.at)))?;
            let n = segments::count_sql(&conn, &e)?;
            if json {
                json::emit(&serde_json::json!({"filter": filter, "profiles": n}))?;
            } else {
                println!("{n}");
            }
        }
        SegmentCmd::Save {
            name,
            filter,
            description,
        } => {
            let e = segments::parse(&filter)
                .map_err(|e| anyhow::anyhow!("{filter}\n{}^\n{e}", " ".repeat(e.at)))?;
            let n = segments::count_sql(&conn, &e)?;
            segments::save(
                &ws.rules_dir(),
                segments::Segment {
                    name: name.clone(),
                    filter,
                    description,
                },
            )?;
            println!("saved segment {name:?} ({n} profiles) in rules/segments.toml");
        }
        SegmentCmd::List => {
            let mut listed = Vec::new();
            for s in &saved {
                let n = segments::count_sql(&conn, &segments::parse(&s.filter)?)?;
                if !json {
                    println!(
                        "{:>10}  {:<24} {}",
                        n,
                        printable(&s.name),
                        printable(&s.filter)
                    );
                }
                listed.push(serde_json::json!({
                    "name": s.name, "filter": s.filter, "description": s.description, "profiles": n,
                }));
            }
            if json {
                json::emit(&serde_json::json!({"segments": listed}))?;
            }
        }
        SegmentCmd::Export {
            segment,
            out,
            format,
        } => {
            let format = match format {
                Some(f) => Format::parse(&f)?,
                None => Format::from_path(&out).unwrap_or(Format::Parquet),
            };
            let r = export::export_segment(&conn, &filter_of(&segment), format, &out, progress)?;
            println!("{}", r.summary());
        }
    }
    Ok(())
}

/// `c360 eval`: pairwise precision and recall against a truth file.
fn eval(workspace: PathBuf, truth: PathBuf, json: bool) -> Result<()> {
    let ws = Workspace::open(&workspace)?;
    let conn = store::open(&ws.db_path())?;
    let s = c360::pipeline::identity::resolve::eval_truth(&conn, &truth)?;
    if s.records == 0 {
        bail!(
            "no record of the truth file has a customer360_id yet; run `c360 run --step resolve` first"
        );
    }
    if json {
        return json::emit(&s);
    }
    println!("records compared     {:>10}", s.records);
    println!("true entities        {:>10}", s.true_entities);
    println!("predicted customers  {:>10}", s.predicted_clusters);
    println!("true pairs           {:>10}", s.true_pairs);
    println!("predicted pairs      {:>10}", s.predicted_pairs);
    println!("correct pairs        {:>10}", s.true_positive_pairs);
    println!("precision            {:>10.4}", s.precision);
    println!("recall               {:>10.4}", s.recall);
    println!("F1                   {:>10.4}", s.f1);
    Ok(())
}

/// `c360 bench ...`: each benchmark prints its report.
fn bench(what: Bench, json: bool, progress: &ConsoleProgress) -> Result<()> {
    let (name, report) = bench_report(what, progress)?;
    if json {
        json::emit(&json::bench(name, &report))
    } else {
        println!("{report}");
        Ok(())
    }
}

/// Run a benchmark: its name and its report.
fn bench_report(what: Bench, progress: &ConsoleProgress) -> Result<(&'static str, String)> {
    use c360::bench;
    Ok(match what {
        Bench::Standardise { dir } => ("standardise", bench::bench_standardise(&dir, progress)?),
        Bench::Resolve {
            dir,
            customers,
            seed,
            events_per_customer,
            orders_per_customer,
            drop_columns,
        } => {
            let opts = bench::ResolveBenchOptions {
                dir,
                customers,
                seed,
                events_per_customer,
                orders_per_customer,
                drop_columns,
            };
            ("resolve", bench::bench_resolve(&opts, progress)?)
        }
        Bench::Unify {
            dir,
            customers,
            events_per_customer,
        } => (
            "unify",
            bench::bench_unify(&dir, customers, events_per_customer, progress)?,
        ),
        Bench::Pipeline {
            dir,
            customers,
            events_per_customer,
            orders_per_customer,
            seed,
            increment_pct,
        } => {
            let opts = bench::pipeline::PipelineBenchOptions {
                dir,
                customers,
                events_per_customer,
                orders_per_customer,
                seed,
                increment_pct,
            };
            (
                "pipeline",
                bench::pipeline::bench_pipeline(&opts, progress)?,
            )
        }
        Bench::Analyse { dir } => ("analyse", bench::bench_analyse(&dir, progress)?),
        Bench::Tui { dir, rows } => ("tui", bench::bench_tui(&dir, rows, progress)?),
        Bench::Load {
            dir,
            customers,
            events_per_customer,
            seed,
            max_web_events,
        } => {
            let opts = bench::BenchOptions {
                dir,
                customers,
                events_per_customer,
                seed,
                max_web_events: Some(max_web_events),
            };
            ("load", bench::bench_load(&opts, progress)?)
        }
    })
}

fn source_names(ws: &Workspace) -> String {
    ws.sources
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A step's result; when a load failed, first the table of the sources
/// that did commit (the error, printed escaped by `main`, names the rest).
fn show_committed(
    result: Result<c360::pipeline::StepReport>,
) -> Result<c360::pipeline::StepReport> {
    if let Err(e) = &result
        && let Some(f) = e.downcast_ref::<stage::LoadAllError>()
    {
        print_loads(&f.loaded);
    }
    result
}

/// The load table; then a warning for each source whose rows were all
/// rejected. Returns how many such sources there were.
fn print_loads(reports: &[LoadReport]) -> usize {
    println!(
        "\n{:<16} {:>10} {:>10} {:>10} {:>8}  note",
        "source", "read", "staged", "rejected", "seconds"
    );
    for r in reports {
        println!(
            "{:<16} {:>10} {:>10} {:>10} {:>8.2}  {}",
            r.source,
            r.rows_read,
            r.rows_staged,
            r.rows_rejected,
            r.seconds,
            if r.already_loaded {
                format!("already loaded (batch {}): nothing added", r.batch_id)
            } else {
                format!("batch {}", r.batch_id)
            }
        );
    }
    let mut warnings = 0;
    for r in reports
        .iter()
        .filter(|r| r.rows_read > 0 && r.rows_staged == 0)
    {
        warnings += 1;
        eprintln!(
            "warning: every row of source {} was rejected ({} rows); see `c360 rejects --source {}`",
            r.source, r.rows_read, r.source
        );
    }
    warnings
}

/// The restage table: per source, staged and rejected rows before and after.
fn print_restages(reports: &[stage::RestageReport], workspace: &std::path::Path) {
    println!(
        "\n{:<16} {:>8} {:>10} {:>23} {:>25} {:>8}",
        "source", "batches", "read", "staged (before → now)", "rejected (before → now)", "seconds"
    );
    for r in reports {
        println!(
            "{:<16} {:>8} {:>10} {:>23} {:>25} {:>8.2}",
            r.source,
            r.batches,
            r.rows_read,
            format!("{} → {}", r.staged_before, r.rows_staged),
            format!("{} → {}", r.rejected_before, r.rows_rejected),
            r.seconds
        );
    }
    if reports.iter().any(|r| r.batches > 0) {
        println!(
            "\nRestaged from the raw rows kept; steward decisions are unchanged. `c360 run --all --workspace {}` brings standardise, resolve, unify and analyse up to date.",
            workspace.display()
        );
    }
}

fn print_status(ws: &Workspace) -> Result<()> {
    let conn = store::open(&ws.db_path())?;
    println!("\nWorkspace {}", ws.root.display());
    println!("\nSources");
    for s in &ws.sources {
        let last = store::batches(&conn, Some(&s.name))?;
        let last = last.first();
        println!(
            "  {:<14} {:<13} {:<8} {}  {}",
            s.name,
            s.system.as_str(),
            s.format.as_str(),
            s.location,
            match last {
                Some(b) => format!(
                    "last load: batch {} read {} staged {} rejected {} at {}",
                    b.batch_id,
                    b.rows_read,
                    b.rows_staged,
                    b.rows_rejected,
                    b.finished_at.as_deref().unwrap_or("-")
                ),
                None => "not loaded".into(),
            }
        );
    }
    println!("\nTables");
    for table in json::status_tables() {
        println!("  {:<22} {:>10}", table, store::count(&conn, table)?);
    }
    println!("\nPipeline");
    for step in STEPS {
        let state = match (step.available, c360::pipeline::last_run(&conn, step.name)?) {
            (false, _) => "not available yet".to_string(),
            (true, None) => "not run".to_string(),
            (true, Some(run)) => format!(
                "{} at {}: {}",
                run.status,
                run.finished_at.unwrap_or_default(),
                printable(&run.message.unwrap_or_default())
            ),
        };
        println!("  {:<12} {}", step.name, state);
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// [`printable`] line by line, keeping the line breaks (each line ends
/// with one).
fn printable_lines(s: &str) -> String {
    s.lines().map(|l| printable(l) + "\n").collect()
}

/// Control characters (escape sequences included) and invisible bidi /
/// zero-width characters shown escaped ([`c360::safe_text::escape`]), never
/// written raw to the terminal.
fn printable(s: &str) -> String {
    c360::safe_text::escape(s).into_owned()
}

/// `c360 review ...`.
fn review(conn: &mut rusqlite::Connection, what: Review, json: bool) -> Result<()> {
    use c360::pipeline::identity::steward;
    // Pair and split decisions print their number first, as before.
    let (outcome, numbered) = match what {
        Review::List {
            filter,
            order,
            limit,
            offset,
        } => return review_list(conn, &filter, &order, limit, offset, json),
        Review::Show { candidate } => {
            let c = steward::candidate(conn, candidate)?;
            return if json {
                json::emit(&c)
            } else {
                review_show(&c)
            };
        }
        Review::Decisions { limit } => return review_decisions(conn, limit, json),
        Review::Approve {
            first,
            second,
            reason,
            actor,
        } => (
            review_decide(conn, &first, second, true, &actor, &reason)?,
            true,
        ),
        Review::Reject {
            first,
            second,
            reason,
            actor,
        } => (
            review_decide(conn, &first, second, false, &actor, &reason)?,
            true,
        ),
        Review::Split {
            records,
            reason,
            actor,
        } => (steward::split(conn, &records, &actor, &reason)?, true),
        Review::Bulk {
            action,
            min,
            max,
            reason,
            actor,
        } => {
            let approve = match action.as_str() {
                "approve" => true,
                "reject" => false,
                other => bail!("{other:?}: use approve or reject"),
            };
            (
                steward::decide_bulk(conn, min, max, approve, &actor, &reason)?,
                false,
            )
        }
        Review::Undo {
            decision,
            reason,
            actor,
        } => (steward::undo(conn, decision, &actor, &reason)?, false),
    };
    if json {
        json::emit(&serde_json::json!({
            "decision_id": outcome.decision_id,
            "customers": outcome.customers,
            "refused": outcome.refused,
            "message": outcome.message,
        }))
    } else {
        if numbered {
            print!("decision {}: ", outcome.decision_id);
        }
        println!("{}", printable(&outcome.message));
        Ok(())
    }
}

/// `c360 review list`: the queue's counts, then one line per pair.
fn review_list(
    conn: &rusqlite::Connection,
    filter: &str,
    order: &str,
    limit: u64,
    offset: u64,
    json: bool,
) -> Result<()> {
    use c360::pipeline::identity::steward::{self, QueueFilter, QueueOrder};
    let filter = match filter {
        "pending" => QueueFilter::Pending,
        "review" => QueueFilter::AllReview,
        "auto" => QueueFilter::AutoMerged,
        "decided" => QueueFilter::Decided,
        other => bail!("--filter {other:?}: use pending, review, auto or decided"),
    };
    let order = match order {
        "uncertainty" => QueueOrder::Uncertainty,
        "score" => QueueOrder::Score,
        other => bail!("--order {other:?}: use uncertainty or score"),
    };
    let counts = steward::queue_counts(conn)?;
    let rows = steward::queue(conn, filter, order, None, offset, limit)?;
    if json {
        return json::emit(&serde_json::json!({"counts": counts, "rows": rows}));
    }
    println!(
        "{} reviewed, {} to review, {} auto-merged, {} {} in force",
        counts.reviewed,
        counts.remaining,
        counts.auto_merged,
        counts.decisions,
        if counts.decisions == 1 {
            "decision"
        } else {
            "decisions"
        }
    );
    println!(
        "{:>8}  {:>6}  {:<8}  {:<26} {:<26} records",
        "id", "prob", "decision", "left", "right"
    );
    for r in rows {
        println!(
            "{:>8}  {:>6.3}  {:<8}  {:<26} {:<26} {} / {}{}",
            r.candidate_id,
            r.probability,
            printable(r.decision.as_deref().unwrap_or("-")),
            printable(&truncate(&r.left_name, 25)),
            printable(&truncate(&r.right_name, 25)),
            printable(&r.left_key),
            printable(&r.right_key),
            if r.flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", printable(&r.flags))
            }
        );
    }
    Ok(())
}

/// `c360 review show`: a candidate pair and why it scored as it did.
fn review_show(c: &c360::pipeline::identity::steward::CandidateDetail) -> Result<()> {
    println!(
        "candidate {}: {} / {}",
        c.row.candidate_id,
        printable(&c.row.left_key),
        printable(&c.row.right_key)
    );
    println!(
        "probability {:.4}  match weight {:+.2} = prior {:+.2} + evidence {:+.2}  band {}{}",
        c.row.probability,
        c.row.match_weight,
        c.prior,
        c.weight,
        printable(&c.row.band),
        if c.row.flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", printable(&c.row.flags))
        }
    );
    println!("blocking rules: {}", printable(&c.blocking));
    println!(
        "customers now: {} ({} records) and {} ({} records)",
        printable(&c.left_customer),
        c.left_records,
        printable(&c.right_customer),
        c.right_records
    );
    for u in &c.comparisons {
        println!(
            "  {:<12} {:>+7.2}  {}{}",
            printable(&u.name),
            u.weight,
            printable(&u.level),
            if u.tf { " (term frequency)" } else { "" }
        );
        for (name, level, l, r) in &u.members {
            println!(
                "      {:<12} {:<28} {:<30} {}",
                printable(name),
                printable(level),
                printable(&truncate(l.as_deref().unwrap_or("-"), 29)),
                printable(r.as_deref().unwrap_or("-"))
            );
        }
    }
    if let Some(d) = &c.row.decision {
        println!("decision: {}", printable(d));
    }
    Ok(())
}

/// `c360 review approve|reject`: a candidate id, or two record keys.
fn review_decide(
    conn: &mut rusqlite::Connection,
    first: &str,
    second: Option<String>,
    approve: bool,
    actor: &str,
    reason: &str,
) -> Result<c360::pipeline::identity::steward::Outcome> {
    use c360::pipeline::identity::steward;
    let (a, b) = match second {
        Some(s) => (first.to_string(), s),
        None => {
            let id: i64 = first.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{first:?} is not a candidate id; give a candidate id or two record keys"
                )
            })?;
            let c = steward::candidate(conn, id)?;
            (c.row.left_key, c.row.right_key)
        }
    };
    steward::decide_pair(conn, &a, &b, approve, actor, reason)
}

/// `c360 review decisions`: the latest decisions, undone ones marked.
fn review_decisions(conn: &rusqlite::Connection, limit: u64, json: bool) -> Result<()> {
    let log = c360::pipeline::identity::steward::decision_log(conn, limit as usize)?;
    if json {
        return json::emit(&serde_json::json!({"decisions": log}));
    }
    println!(
        "{:>6}  {:<20}  {:<10} {:<8} records  reason",
        "id", "at", "actor", "action"
    );
    for d in log {
        let what = match &d.pair {
            Some((l, r)) => format!("{l} / {r}"),
            None => format!("{} records", d.members),
        };
        println!(
            "{:>6}  {}  {:<10} {:<8} {}  {}{}",
            d.decision_id,
            printable(&d.at),
            printable(&d.actor),
            printable(&d.action),
            printable(&what),
            printable(&d.reason),
            match &d.undone_at {
                Some(at) => format!("  (undone {})", printable(at)),
                None => String::new(),
            } + &d.bulk_id.map_or(String::new(), |b| format!("  (bulk {b})"))
        );
    }
    Ok(())
}
