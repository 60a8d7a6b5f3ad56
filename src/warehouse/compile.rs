//! `c360 warehouse sql`: the workspace compiled into numbered SQL scripts,
//! the seed tables as CSV and a README saying how to run them.

use super::stage::RawSource;
use super::{Dialect, Script, clean, identity, local, seeds, stage, unify};
use crate::pipeline::identity::resolve;
use crate::pipeline::standardise::rules::Rules;
use crate::workspace::{Format, Source, Workspace};
use anyhow::{Context, Result, anyhow};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What to compile.
#[derive(Debug, Clone)]
pub struct Options {
    pub dialect: Dialect,
    pub out: PathBuf,
    /// Carry the workspace's customer360_ids over (seed previous_id_map).
    pub previous_ids: bool,
    /// Label propagation rounds before the fixed point is checked.
    pub rounds: usize,
    /// A workspace whose trained match model to use instead of this one's
    /// (a local run on a sample of data too big for the laptop).
    pub model_from: Option<PathBuf>,
}

/// What was written.
#[derive(Debug)]
pub struct Compiled {
    pub scripts: Vec<Script>,
    pub seeds: seeds::SeedCounts,
    /// Every file written, relative to the output folder.
    pub files: Vec<String>,
}

/// The results the DuckDB export script writes for `c360 warehouse pull`.
pub const RESULTS: &[&str] = &[
    "customer360_id_map",
    "match_candidates",
    "customer360_profiles",
    "customer360_events",
    "rejects",
    "load_counts",
    "identity_summary",
];

/// The columns of a tabular source as its file names them.
fn file_columns(ws: &Workspace, src: &Source) -> Result<Vec<String>> {
    let path = PathBuf::from(ws.resolve_location(src));
    match src.format {
        Format::Csv => {
            if !src.csv.has_header {
                return Ok(src.csv.columns.clone());
            }
            let delim = *src.csv.delimiter.as_bytes().first().unwrap_or(&b',');
            let quote = *src.csv.quote.as_bytes().first().unwrap_or(&b'"');
            let mut r = csv::ReaderBuilder::new()
                .delimiter(delim)
                .quote(quote)
                .has_headers(true)
                .flexible(true)
                .from_path(&path)
                .with_context(|| {
                    format!("source {:?}: cannot read {}", src.name, path.display())
                })?;
            let header = r.byte_headers().with_context(|| {
                format!(
                    "source {:?}: cannot read the header of {}",
                    src.name,
                    path.display()
                )
            })?;
            Ok(header
                .iter()
                .map(|h| {
                    String::from_utf8_lossy(h)
                        .trim_start_matches('\u{feff}')
                        .to_string()
                })
                .collect())
        }
        Format::Parquet => {
            use polars::prelude::*;
            let file = std::fs::File::open(&path).with_context(|| {
                format!("source {:?}: cannot open {}", src.name, path.display())
            })?;
            let df = ParquetReader::new(file)
                .with_slice(Some((0, 1)))
                .finish()
                .map_err(|e| {
                    anyhow!(
                        "source {:?}: {} is not a readable Parquet file: {e}",
                        src.name,
                        path.display()
                    )
                })?;
            Ok(df
                .get_column_names()
                .iter()
                .map(|n| n.to_string())
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}

/// Every script in run order, without writing anything.
pub fn scripts(ws: &Workspace, d: Dialect, rounds: usize) -> Result<Vec<Script>> {
    let raws = raw_sources(ws)?;
    build(ws, d, rounds, &raws)
}

fn raw_sources(ws: &Workspace) -> Result<Vec<RawSource<'_>>> {
    ws.sources
        .iter()
        .map(|s| {
            let columns = if s.is_http() {
                Vec::new()
            } else {
                file_columns(ws, s)?
            };
            Ok(RawSource::new(s, columns))
        })
        .collect()
}

fn build(ws: &Workspace, d: Dialect, rounds: usize, raws: &[RawSource]) -> Result<Vec<Script>> {
    let rules = Rules::load(&ws.rules_dir())?;
    let id_rules = resolve::load_rules(ws)?;
    let mut out = Vec::new();
    for (i, raw) in raws.iter().enumerate() {
        out.push(stage::source_script(d, raw, i)?);
    }
    out.push(stage::union_script(d, raws));
    out.extend(clean::scripts(d, ws, &rules));
    out.extend(identity::scripts(d, &id_rules, rounds)?);
    out.extend(unify::scripts(d, ws)?);
    Ok(out)
}

/// Compile the workspace into `opts.out`.
pub fn compile(ws: &Workspace, opts: &Options) -> Result<Compiled> {
    let d = opts.dialect;
    let dir = &opts.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let raws = raw_sources(ws)?;
    let scripts = build(ws, d, opts.rounds, &raws)?;
    let rules = Rules::load(&ws.rules_dir())?;
    let id_rules = resolve::load_rules(ws)?;
    let db = ws.db_path();
    let conn = if db.exists() {
        Some(
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("cannot open {}", db.display()))?,
        )
    } else {
        None
    };
    let model = match &opts.model_from {
        Some(other) => {
            let other = Workspace::open(other)?;
            let path = other.db_path();
            Some(
                rusqlite::Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .with_context(|| format!("--model-from: cannot open {}", path.display()))?,
            )
        }
        None => None,
    };
    let seeds_dir = dir.join("seeds");
    let counts = seeds::write(
        &seeds_dir,
        &rules,
        &id_rules,
        conn.as_ref(),
        model.as_ref(),
        opts.previous_ids,
    )?;
    let mut files = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        files.push(name.to_string());
        Ok(())
    };
    if d == Dialect::DuckDb {
        let abs = std::fs::canonicalize(&seeds_dir).unwrap_or(seeds_dir.clone());
        put("load_local.sql", &local::script(ws, &raws, &abs))?;
        put(
            "export_local.sql",
            &export_script(&std::fs::canonicalize(dir).unwrap_or(dir.clone())),
        )?;
    } else {
        put("00_seeds.sql", &seeds::ddl(d))?;
    }
    // DuckDB: only load_local.sql needs rows kept in file order; the
    // numbered scripts number their rows themselves, and without the order
    // big tables are written with far less memory.
    let preamble = if d == Dialect::DuckDb {
        "SET preserve_insertion_order = false;\n"
    } else {
        ""
    };
    for s in &scripts {
        put(
            &s.file,
            &format!(
                "-- {} ({}, {})\n{preamble}{}",
                s.summary,
                s.step,
                d.name(),
                s.sql
            ),
        )?;
    }
    put("README.md", &readme(ws, d, &scripts, &raws, &counts))?;
    for s in seeds::SEEDS {
        files.push(format!("seeds/{}.csv", s.name));
    }
    Ok(Compiled {
        scripts,
        seeds: counts,
        files,
    })
}

/// DuckDB: the results as CSV in `DIR/results`, for `c360 warehouse pull`.
fn export_script(dir: &Path) -> String {
    let results = dir.join("results");
    let mut sql = String::from(
        "-- Write the results as CSV into results/ (read by `c360 warehouse pull`).\n",
    );
    for t in RESULTS {
        let path = results.join(format!("{t}.csv"));
        let _ = writeln!(
            sql,
            "COPY (SELECT * FROM {t}) TO {} (HEADER, DELIMITER ',');",
            Dialect::DuckDb.lit(&path.display().to_string())
        );
    }
    sql
}

fn readme(
    ws: &Workspace,
    d: Dialect,
    scripts: &[Script],
    raws: &[RawSource],
    counts: &seeds::SeedCounts,
) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "# Customer360 warehouse scripts ({d})\n");
    let _ = writeln!(
        r,
        "Compiled by `c360 warehouse sql --dialect {d}` from the workspace `{}`: its `c360.toml`, its `rules/`, its trained match model and its stewards' decisions. Run the scripts in file order, in one database/schema.\n",
        ws.root.display()
    );
    let _ = writeln!(r, "## How to run\n");
    match d {
        Dialect::DuckDb => {
            let _ = writeln!(
                r,
                "Everything on a laptop, in one DuckDB database (Python's `duckdb` package or the CLI):\n\n```sh\nduckdb c360.duckdb < load_local.sql\nfor f in [0-9][0-9]_*.sql; do duckdb c360.duckdb < \"$f\"; done\nduckdb c360.duckdb < export_local.sql   # results/*.csv for `c360 warehouse pull`\n```\n\n`load_local.sql` reads the workspace's own source files (every column as text, with row numbers) into the raw tables and the seeds into `seed_*`."
            );
        }
        _ => {
            let _ = writeln!(
                r,
                "1. Run `00_seeds.sql`, then load each `seeds/<name>.csv` (with its header row) into `seed_<name>`.\n2. Load each source into its raw table (below).\n3. Run the numbered scripts in order{}.\n4. Export `customer360_id_map`, `match_candidates` and `customer360_profiles` as CSV with a header into one folder and run `c360 warehouse pull --from FOLDER`.",
                if d == Dialect::Spark {
                    " with `spark.sql.session.timeZone=UTC` (e.g. `spark-sql -f FILE`, or `spark.sql(...)` per statement)"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(r, "\n## Inputs: the raw tables\n");
    let _ = writeln!(
        r,
        "One per source: `row_num` (the record's number in its file, from 1), `raw_line` (the record as read), `read_error` and `read_detail` (NULL unless the loader could not read the record: `ragged_row`, `invalid_utf8`), then for CSV and Parquet one text column per file column, named as in the file. JSON sources keep only `raw_line`.\n"
    );
    for raw in raws {
        let _ = writeln!(
            r,
            "- `{}` ({} source `{}`, {:?}): {}",
            raw.source.raw_table(),
            raw.source.system,
            raw.source.name,
            raw.source.format,
            if raw.columns.is_empty() {
                "raw_line only".to_string()
            } else {
                raw.columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    let _ = writeln!(r, "\n## Seeds\n");
    for s in seeds::SEEDS {
        let n = counts
            .rows
            .iter()
            .find(|(name, _)| *name == s.name)
            .map_or(0, |x| x.1);
        let _ = writeln!(r, "- `seed_{}` ({n} rows): {}", s.name, s.about);
    }
    let _ = writeln!(r, "\n## Scripts and outputs\n");
    for s in scripts {
        let _ = writeln!(r, "- `{}` ({}): {}", s.file, s.step, s.summary);
    }
    let _ = writeln!(
        r,
        "\nThe outputs have the columns of the workspace's own tables: `stg_*`, `rejects` and `load_counts` (stage: rows read = staged + rejected is checked), `clean_*` (standardise), `customer360_id_map` and `match_candidates` (identity), `customer360_profiles` and `customer360_events` (unify). A script stops with an error when a check fails (a count that does not add up, label propagation short of its fixed point: compile with a larger `--rounds`)."
    );
    let _ = writeln!(r, "\n## Where this differs from the workbench's own run\n");
    for f in d.fallbacks() {
        let _ = writeln!(r, "- {f}");
    }
    for note in DIFFERENCES {
        let _ = writeln!(r, "- {note}");
    }
    r
}

/// What every dialect does differently from the local pipeline.
const DIFFERENCES: &[&str] = &[
    "Timestamps: the layouts a regular expression can take apart (ISO 8601 with zones, epochs, numeric dates by the source's day order, RFC 2822); dates in words and a source's own `formats` are rejected as bad_timestamp. Naive times are read in the source's zone by the engine's time zone database.",
    "CSV rows are numbered by line: a quoted field running over several lines shifts the numbers of the rows after it (the workbench counts records).",
    "Identifier kinds apply one after another, the anchor first, as in the workbench; the values of one kind are judged together against the customers the earlier kinds made (the workbench also lets a value see the values of its own kind sorted before it).",
    "A keep-apart decision holds where one identifier value or one fuzzy pair would join its two sides; a chain through third records is not cut: such clusters are listed in identity_violations.",
    "Match candidates carry no weak_bridge flag; candidate ids are numbered afresh (by weight) on each run.",
    "Regions are tidied, not mapped to ISO 3166-2; text is not NFC-normalised; order_lines sources are not merged into orders; a row's own time zone column is kept but not applied (the source's zone is).",
    "Unify: row_hash is the engine's own hash and updated_at the time the script ran; event_seq numbers events as a full workbench run inserts them; a JSON true/false in a web event's values is the text true/false (the workbench: 1/0); Spark and Snowflake print prices in order properties in their shortest form (the same number, other text).",
];
