//! `load_local.sql` (DuckDB): the workspace's own source files into the raw
//! tables, every column as text with its row number, and the seeds into
//! their tables, so that this script and then the numbered ones, in one
//! DuckDB database, reproduce the whole run on a laptop.
//!
//! CSV rows DuckDB cannot read (a wrong number of fields, invalid UTF-8)
//! are kept from its rejects table with `read_error` set; their row number
//! is the file line less the header, so a quoted field spanning lines
//! before them shifts the numbering (the local loader counts records).

use super::stage::RawSource;
use super::{Dialect, seeds};
use crate::workspace::{Format, Workspace};
use std::path::Path;

fn path_lit(p: &Path) -> String {
    Dialect::DuckDb.lit(&p.display().to_string())
}

/// A good record's row number is its place among the good ones (`k`) plus
/// the unreadable records before it: `bk` holds, per count of good records
/// before a run of bad ones, how many bad records come up to there (an ASOF
/// join finds the last such run before `k`), so no table of every slot is
/// built.
const RENUMBER: &str = "bk AS (
  SELECT before, max(n) AS n FROM (
    SELECT row_num - row_number() OVER (ORDER BY row_num) AS before, row_number() OVER (ORDER BY row_num) AS n FROM bad
  ) x GROUP BY before
)";

/// The loading statements of one source.
fn source_sql(ws: &Workspace, raw: &RawSource) -> String {
    let d = Dialect::DuckDb;
    let src = raw.source;
    let path = ws.root.join(&src.location);
    let table = src.raw_table();
    let text = d.text();
    match src.format {
        Format::Csv => {
            let cols: Vec<String> = raw.columns.iter().map(|c| d.ident(c)).collect();
            let header = src.csv.has_header;
            let names = if header {
                String::new()
            } else {
                format!(
                    ", names=[{}]",
                    raw.columns.iter().map(|c| d.lit(c)).collect::<Vec<_>>().join(", ")
                )
            };
            let first_line = if header { 1 } else { 0 };
            format!(
                "CREATE OR REPLACE TABLE csv_{n} AS SELECT * FROM read_csv({p}, all_varchar=true, header={header}, delim={delim}, quote={quote}, escape={quote}, store_rejects=true, rejects_table='rej_{n}', rejects_scan='rej_scan_{n}', auto_detect=false, columns={{{decl}}}{names});
CREATE OR REPLACE TABLE {table} AS
WITH bad AS (
  SELECT CAST(line AS BIGINT) - {first_line} AS row_num,
    CASE WHEN bool_or(error_type = 'INVALID ENCODING') THEN 'invalid_utf8'
         WHEN bool_or(error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS')) THEN 'ragged_row'
         ELSE 'malformed_csv' END AS read_error,
    min(error_message) AS read_detail, min(csv_line) AS raw_line
  FROM rej_{n} GROUP BY line
), {renumber}, good AS (
  SELECT rowid + 1 AS k, * FROM csv_{n}
)
SELECT g.k + COALESCE(bk.n, 0) AS row_num, concat_ws({delim}, {cols}) AS raw_line, CAST(NULL AS {text}) AS read_error, CAST(NULL AS {text}) AS read_detail, {cols}
FROM good g ASOF LEFT JOIN bk ON g.k > bk.before
UNION ALL
SELECT row_num, raw_line, read_error, read_detail, {nulls} FROM bad;
DROP TABLE csv_{n};
",
                n = src.name,
                p = path_lit(&path),
                renumber = RENUMBER,
                delim = d.lit(&src.csv.delimiter),
                quote = d.lit(&src.csv.quote),
                decl = raw
                    .columns
                    .iter()
                    .map(|c| format!("{}: 'VARCHAR'", d.lit(c)))
                    .collect::<Vec<_>>()
                    .join(", "),
                cols = cols.join(", "),
                nulls = raw
                    .columns
                    .iter()
                    .map(|_| format!("CAST(NULL AS {text})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        }
        Format::Parquet => {
            let cols: Vec<String> = raw.columns.iter().map(|c| d.ident(c)).collect();
            let pack: Vec<String> = raw
                .columns
                .iter()
                .map(|c| format!("{} := {}", d.ident(c), d.ident(c)))
                .collect();
            let casts: Vec<String> = cols
                .iter()
                .map(|c| format!("CAST({c} AS {text}) AS {c}"))
                .collect();
            format!(
                "CREATE OR REPLACE TABLE {table} AS
SELECT CAST(file_row_number AS BIGINT) + 1 AS row_num, CAST(to_json(struct_pack({pack})) AS {text}) AS raw_line,
  CAST(NULL AS {text}) AS read_error, CAST(NULL AS {text}) AS read_detail, {casts}
FROM read_parquet({p}, file_row_number=true) ORDER BY row_num;
",
                p = path_lit(&path),
                pack = pack.join(", "),
                casts = casts.join(", ")
            )
        }
        Format::Ndjson | Format::Segment => format!(
            "CREATE OR REPLACE TABLE lines_{n} AS SELECT * FROM read_csv({p}, columns={{'raw_line': 'VARCHAR'}}, header=false, delim=chr(1), quote='', escape='', auto_detect=false, store_rejects=true, rejects_table='rej_{n}', rejects_scan='rej_scan_{n}');
CREATE OR REPLACE TABLE {table} AS
WITH bad AS (
  SELECT CAST(line AS BIGINT) AS row_num, 'invalid_utf8' AS read_error, min(error_message) AS read_detail, min(csv_line) AS raw_line
  FROM rej_{n} GROUP BY line
), {renumber}, good AS (
  SELECT rowid + 1 AS k, raw_line FROM lines_{n}
)
SELECT g.k + COALESCE(bk.n, 0) AS row_num, g.raw_line, CAST(NULL AS {text}) AS read_error, CAST(NULL AS {text}) AS read_detail
FROM good g ASOF LEFT JOIN bk ON g.k > bk.before
WHERE trim(g.raw_line) <> ''
UNION ALL
SELECT row_num, raw_line, read_error, read_detail FROM bad;
DROP TABLE lines_{n};
",
            n = src.name,
            p = path_lit(&path),
            renumber = RENUMBER,
        ),
        Format::Json => format!(
            "CREATE OR REPLACE TABLE {table} AS
SELECT CAST(row_number() OVER () AS BIGINT) AS row_num, CAST(j AS {text}) AS raw_line, CAST(NULL AS {text}) AS read_error, CAST(NULL AS {text}) AS read_detail
FROM (SELECT unnest(CAST(json AS JSON[])) AS j FROM read_json_objects({p}, format='unstructured'));
",
            p = path_lit(&path),
        ),
    }
}

/// The whole `load_local.sql`.
pub fn script(ws: &Workspace, raws: &[RawSource], seeds_dir: &Path) -> String {
    let mut sql = String::from(
        "-- Load this workspace's source files and the seeds into DuckDB, then run\n-- the numbered scripts in order in the same database.\nSET TimeZone = 'UTC';\n\n",
    );
    for raw in raws {
        if raw.source.is_http() {
            sql.push_str(&format!(
                "-- {}: a REST source; load its records into {} (row_num, raw_line) yourself.\n",
                raw.source.name,
                raw.source.raw_table()
            ));
            continue;
        }
        sql.push_str(&format!("-- source {}\n", raw.source.name));
        sql.push_str(&source_sql(ws, raw));
        sql.push('\n');
    }
    sql.push_str("-- seeds\n");
    for seed in seeds::SEEDS {
        let path = seeds_dir.join(format!("{}.csv", seed.name));
        let cols: Vec<String> = seed
            .columns
            .iter()
            .map(|(c, ty)| format!("{}: '{}'", Dialect::DuckDb.lit(c), ty.duckdb()))
            .collect();
        sql.push_str(&format!(
            "CREATE OR REPLACE TABLE seed_{} AS SELECT * FROM read_csv({}, header=true, auto_detect=false, quote='\"', escape='\"', columns={{{}}});\n",
            seed.name,
            path_lit(&path),
            cols.join(", ")
        ));
    }
    sql
}
