//! What differs between the SQL engines the warehouse scripts are written
//! for. Every script is composed from these pieces, so a function that one
//! engine lacks is replaced in one place, with its fallback documented in
//! [`Dialect::fallbacks`] (and in the generated README).

use std::fmt;

/// A SQL engine the scripts can be compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    DuckDb,
    Spark,
    BigQuery,
    Snowflake,
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "duckdb" => Ok(Dialect::DuckDb),
            "spark" | "sparksql" | "databricks" => Ok(Dialect::Spark),
            "bigquery" | "bq" => Ok(Dialect::BigQuery),
            "snowflake" => Ok(Dialect::Snowflake),
            other => Err(format!(
                "{other:?} is not a dialect (duckdb, spark, bigquery, snowflake)"
            )),
        }
    }
}

impl Dialect {
    pub const ALL: [Dialect; 4] = [
        Dialect::DuckDb,
        Dialect::Spark,
        Dialect::BigQuery,
        Dialect::Snowflake,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::DuckDb => "duckdb",
            Dialect::Spark => "spark",
            Dialect::BigQuery => "bigquery",
            Dialect::Snowflake => "snowflake",
        }
    }

    /// The text type.
    pub fn text(self) -> &'static str {
        match self {
            Dialect::DuckDb | Dialect::Snowflake => "VARCHAR",
            Dialect::Spark | Dialect::BigQuery => "STRING",
        }
    }

    /// The 64-bit integer type.
    pub fn int(self) -> &'static str {
        match self {
            Dialect::BigQuery => "INT64",
            _ => "BIGINT",
        }
    }

    /// The double type.
    pub fn double(self) -> &'static str {
        match self {
            Dialect::BigQuery => "FLOAT64",
            _ => "DOUBLE",
        }
    }

    /// `CREATE OR REPLACE TABLE name AS select`.
    pub fn create_as(self, name: &str, select: &str) -> String {
        match self {
            // Spark's CREATE OR REPLACE needs a v2 catalog; a plain
            // DROP + CREATE works on the session catalog.
            Dialect::Spark => {
                format!("DROP TABLE IF EXISTS {name};\nCREATE TABLE {name} AS\n{select};\n")
            }
            _ => format!("CREATE OR REPLACE TABLE {name} AS\n{select};\n"),
        }
    }

    /// A string literal. DuckDB takes a backslash as written; Spark,
    /// BigQuery and Snowflake read it as an escape, so it is doubled there.
    pub fn lit(self, s: &str) -> String {
        match self {
            Dialect::DuckDb => format!("'{}'", s.replace('\'', "''")),
            _ => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        }
    }

    /// A regex pattern as a literal (BigQuery: a raw string).
    pub fn pat(self, s: &str) -> String {
        match self {
            Dialect::BigQuery if !s.contains('\'') => format!("r'{s}'"),
            _ => self.lit(s),
        }
    }

    /// Replace every match of `pattern` in `x`.
    pub fn re_replace(self, x: &str, pattern: &str, with: &str) -> String {
        let (p, w) = (self.pat(pattern), self.pat(with));
        match self {
            Dialect::DuckDb => format!("regexp_replace({x}, {p}, {w}, 'g')"),
            _ => format!("regexp_replace({x}, {p}, {w})"),
        }
    }

    /// Whether `x` contains a match of `pattern` (NULL when `x` is NULL).
    pub fn re_match(self, x: &str, pattern: &str) -> String {
        let p = self.pat(pattern);
        match self {
            Dialect::DuckDb => format!("regexp_matches({x}, {p})"),
            Dialect::Spark => format!("({x} RLIKE {p})"),
            Dialect::BigQuery => format!("REGEXP_CONTAINS({x}, {p})"),
            Dialect::Snowflake => format!("(REGEXP_INSTR({x}, {p}) > 0)"),
        }
    }

    /// Whether `x` contains a match of the pattern held by expression `p`
    /// (a seed column).
    pub fn re_match_expr(self, x: &str, p: &str) -> String {
        match self {
            Dialect::DuckDb => format!("regexp_matches({x}, {p})"),
            Dialect::Spark => format!("({x} RLIKE {p})"),
            Dialect::BigQuery => format!("REGEXP_CONTAINS({x}, {p})"),
            Dialect::Snowflake => format!("(REGEXP_INSTR({x}, {p}) > 0)"),
        }
    }

    /// The first capture group of `pattern` in `x`, or NULL.
    pub fn re_extract(self, x: &str, pattern: &str) -> String {
        let p = self.pat(pattern);
        match self {
            Dialect::DuckDb => format!("NULLIF(regexp_extract({x}, {p}, 1), '')"),
            Dialect::Spark => format!("NULLIF(regexp_extract({x}, {p}, 1), '')"),
            Dialect::BigQuery => format!("REGEXP_EXTRACT({x}, {p})"),
            Dialect::Snowflake => format!("REGEXP_SUBSTR({x}, {p}, 1, 1, 'e', 1)"),
        }
    }

    /// Jaro-Winkler similarity in 0..1. Spark and BigQuery have none: the
    /// fallback is 1 - Levenshtein / longer length (see [`Self::fallbacks`]).
    pub fn jaro_winkler(self, a: &str, b: &str) -> String {
        match self {
            Dialect::DuckDb => format!("jaro_winkler_similarity({a}, {b})"),
            Dialect::Snowflake => format!("(JAROWINKLER_SIMILARITY({a}, {b}) / 100.0)"),
            Dialect::Spark | Dialect::BigQuery => format!(
                "(1.0 - {} / GREATEST(LENGTH({a}), LENGTH({b}), 1))",
                self.levenshtein(a, b)
            ),
        }
    }

    /// Levenshtein edit distance.
    pub fn levenshtein(self, a: &str, b: &str) -> String {
        match self {
            Dialect::DuckDb | Dialect::Spark => format!("levenshtein({a}, {b})"),
            Dialect::BigQuery => format!("EDIT_DISTANCE({a}, {b})"),
            Dialect::Snowflake => format!("EDITDISTANCE({a}, {b})"),
        }
    }

    /// The text at a JSON path (`$.a.b`) of a JSON text, NULL if absent.
    pub fn json_text(self, j: &str, path: &str) -> String {
        match self {
            Dialect::DuckDb => format!("json_extract_string({j}, {})", self.lit(path)),
            Dialect::Spark => format!("get_json_object({j}, {})", self.lit(path)),
            Dialect::BigQuery => format!("JSON_VALUE({j}, {})", self.lit(path)),
            Dialect::Snowflake => format!(
                "JSON_EXTRACT_PATH_TEXT({j}, {})",
                self.lit(path.trim_start_matches("$."))
            ),
        }
    }

    /// The JSON text (object or array) at a path, NULL if absent.
    pub fn json_part(self, j: &str, path: &str) -> String {
        match self {
            Dialect::DuckDb => format!("CAST(json_extract({j}, {}) AS VARCHAR)", self.lit(path)),
            Dialect::Spark => format!("get_json_object({j}, {})", self.lit(path)),
            Dialect::BigQuery => format!("JSON_QUERY({j}, {})", self.lit(path)),
            Dialect::Snowflake => format!(
                "TO_JSON(GET_PATH(TRY_PARSE_JSON({j}), {}))",
                self.lit(path.trim_start_matches("$."))
            ),
        }
    }

    /// Whether a text is valid JSON (an object, for records).
    pub fn json_valid(self, j: &str) -> String {
        match self {
            Dialect::DuckDb => format!(
                "COALESCE(CASE WHEN json_valid({j}) THEN json_type(CAST({j} AS JSON)) = 'OBJECT' END, FALSE)"
            ),
            Dialect::Spark => format!(
                "(from_json({j}, 'MAP<STRING,STRING>') IS NOT NULL AND ltrim({j}) LIKE '{{%')"
            ),
            Dialect::BigQuery => {
                format!("(SAFE.PARSE_JSON({j}) IS NOT NULL AND ltrim({j}) LIKE '{{%')")
            }
            Dialect::Snowflake => {
                format!("(TRY_PARSE_JSON({j}) IS NOT NULL AND ltrim({j}) LIKE '{{%')")
            }
        }
    }

    /// Parse a naive timestamp text with a strftime-style format (the
    /// formats used are `%Y-%m-%d %H:%M:%S` and the like), NULL if it does
    /// not match.
    pub fn try_strptime(self, x: &str, fmt: &str) -> String {
        match self {
            Dialect::DuckDb => format!("try_strptime({x}, {})", self.lit(fmt)),
            Dialect::Spark => format!("try_to_timestamp({x}, {})", self.lit(&java_format(fmt))),
            Dialect::BigQuery => format!("SAFE.PARSE_DATETIME({}, {x})", self.lit(fmt)),
            Dialect::Snowflake => format!(
                "TRY_TO_TIMESTAMP_NTZ({x}, {})",
                self.lit(&snowflake_format(fmt))
            ),
        }
    }

    /// A naive timestamp read as wall-clock time in zone `tz` (an IANA
    /// name, a SQL expression), as a naive UTC timestamp. (Spark: with the
    /// session time zone UTC, as the README says.)
    pub fn zone_to_utc(self, naive: &str, tz: &str) -> String {
        match self {
            Dialect::DuckDb => format!("timezone('UTC', timezone({tz}, {naive}))"),
            Dialect::Spark => format!("to_utc_timestamp({naive}, {tz})"),
            Dialect::BigQuery => format!("DATETIME(TIMESTAMP({naive}, {tz}), 'UTC')"),
            Dialect::Snowflake => format!("CONVERT_TIMEZONE({tz}, 'UTC', {naive})"),
        }
    }

    /// A naive timestamp plus a whole number of milliseconds.
    pub fn add_ms(self, ts: &str, ms: &str) -> String {
        match self {
            Dialect::DuckDb => format!("({ts} + to_milliseconds(CAST({ms} AS BIGINT)))"),
            Dialect::Spark => format!("timestampadd(MILLISECOND, {ms}, {ts})"),
            Dialect::BigQuery => {
                format!("DATETIME_ADD({ts}, INTERVAL CAST({ms} AS INT64) MILLISECOND)")
            }
            Dialect::Snowflake => format!("DATEADD(millisecond, {ms}, {ts})"),
        }
    }

    /// Group `k` (1-based) of the first match of `pattern` in `x`: '' or
    /// NULL when the group did not take part. BigQuery's REGEXP_EXTRACT
    /// takes one group only: the others are made non-capturing.
    pub fn re_group(self, x: &str, pattern: &str, k: usize) -> String {
        match self {
            Dialect::DuckDb | Dialect::Spark => {
                format!("regexp_extract({x}, {}, {k})", self.pat(pattern))
            }
            Dialect::BigQuery => {
                format!("REGEXP_EXTRACT({x}, {})", self.pat(&only_group(pattern, k)))
            }
            Dialect::Snowflake => {
                format!("REGEXP_SUBSTR({x}, {}, 1, 1, 'e', {k})", self.pat(pattern))
            }
        }
    }

    /// A naive timestamp plus a whole number of minutes.
    pub fn add_minutes(self, ts: &str, minutes: &str) -> String {
        match self {
            Dialect::DuckDb => format!("({ts} + to_minutes(CAST({minutes} AS BIGINT)))"),
            Dialect::Spark => format!("timestampadd(MINUTE, {minutes}, {ts})"),
            Dialect::BigQuery => {
                format!("DATETIME_ADD({ts}, INTERVAL CAST({minutes} AS INT64) MINUTE)")
            }
            Dialect::Snowflake => format!("DATEADD(minute, {minutes}, {ts})"),
        }
    }

    /// A naive timestamp from epoch milliseconds.
    pub fn from_epoch_ms(self, ms: &str) -> String {
        match self {
            Dialect::DuckDb => {
                format!("CAST(make_timestamp(CAST({ms} AS BIGINT) * 1000) AS TIMESTAMP)")
            }
            Dialect::Spark => {
                format!("CAST(timestamp_millis(CAST({ms} AS BIGINT)) AS TIMESTAMP_NTZ)")
            }
            Dialect::BigQuery => format!("DATETIME(TIMESTAMP_MILLIS(CAST({ms} AS INT64)))"),
            Dialect::Snowflake => format!("TO_TIMESTAMP_NTZ(CAST({ms} AS BIGINT), 3)"),
        }
    }

    /// A naive UTC timestamp as ISO 8601 text with milliseconds and `Z`
    /// (`2024-01-31T12:00:00.000Z`), as the local tables write it.
    pub fn iso_utc(self, ts: &str) -> String {
        match self {
            Dialect::DuckDb => format!("strftime({ts}, '%Y-%m-%dT%H:%M:%S.%gZ')"),
            Dialect::Spark => format!("date_format({ts}, \"yyyy-MM-dd'T'HH:mm:ss.SSS'Z'\")"),
            Dialect::BigQuery => format!("FORMAT_DATETIME('%Y-%m-%dT%H:%M:%E3SZ', {ts})"),
            Dialect::Snowflake => format!("TO_VARCHAR({ts}, 'YYYY-MM-DD\"T\"HH24:MI:SS.FF3\"Z\"')"),
        }
    }

    /// Milliseconds since the epoch of an ISO UTC text written by
    /// [`Self::iso_utc`].
    pub fn iso_to_ms(self, iso: &str) -> String {
        match self {
            Dialect::DuckDb => {
                format!("epoch_ms(CAST(strptime({iso}, '%Y-%m-%dT%H:%M:%S.%gZ') AS TIMESTAMP))")
            }
            Dialect::Spark => {
                format!("unix_millis(to_timestamp({iso}, \"yyyy-MM-dd'T'HH:mm:ss.SSS'Z'\"))")
            }
            Dialect::BigQuery => {
                format!("UNIX_MILLIS(PARSE_TIMESTAMP('%Y-%m-%dT%H:%M:%E3SZ', {iso}))")
            }
            Dialect::Snowflake => format!(
                "DATE_PART(epoch_millisecond, TO_TIMESTAMP_NTZ({iso}, 'YYYY-MM-DD\"T\"HH24:MI:SS.FF3\"Z\"'))"
            ),
        }
    }

    /// Strip accents: only DuckDB has a function for it; elsewhere a
    /// translation of the Latin letters with diacritics.
    pub fn strip_accents(self, x: &str) -> String {
        match self {
            Dialect::DuckDb => format!("strip_accents({x})"),
            _ => format!(
                "translate({x}, {}, {})",
                self.lit(ACCENTED),
                self.lit(UNACCENTED)
            ),
        }
    }

    /// The 1-based position of `sub` in `s`, 0 when absent.
    pub fn strpos(self, s: &str, sub: &str) -> String {
        match self {
            Dialect::DuckDb | Dialect::BigQuery => format!("strpos({s}, {sub})"),
            Dialect::Spark => format!("instr({s}, {sub})"),
            Dialect::Snowflake => format!("POSITION({sub}, {s})"),
        }
    }

    /// Concatenate texts (NULL if any is NULL).
    pub fn concat(self, parts: &[&str]) -> String {
        format!("({})", parts.join(" || "))
    }

    /// `string_agg(x ORDER BY o)` with a separator.
    pub fn string_agg(self, x: &str, sep: &str, order: &str) -> String {
        match self {
            Dialect::DuckDb => format!("string_agg({x}, {} ORDER BY {order})", self.lit(sep)),
            Dialect::Spark => format!(
                "array_join(transform(array_sort(collect_list(named_struct('o', {order}, 'v', {x}))), s -> s.v), {})",
                self.lit(sep)
            ),
            Dialect::BigQuery => format!("STRING_AGG({x}, {} ORDER BY {order})", self.lit(sep)),
            Dialect::Snowflake => format!(
                "LISTAGG({x}, {}) WITHIN GROUP (ORDER BY {order})",
                self.lit(sep)
            ),
        }
    }

    /// The argument of the smallest `order` in a group (`arg_min`).
    pub fn arg_min(self, x: &str, order: &str) -> String {
        match self {
            Dialect::DuckDb | Dialect::Spark => format!("min_by({x}, {order})"),
            Dialect::BigQuery => {
                format!("ARRAY_AGG({x} IGNORE NULLS ORDER BY {order} LIMIT 1)[SAFE_OFFSET(0)]")
            }
            Dialect::Snowflake => format!("MIN_BY({x}, {order})"),
        }
    }

    /// The argument of the largest `order` in a group (`arg_max`).
    pub fn arg_max(self, x: &str, order: &str) -> String {
        match self {
            Dialect::DuckDb | Dialect::Spark => format!("max_by({x}, {order})"),
            Dialect::BigQuery => {
                format!("ARRAY_AGG({x} IGNORE NULLS ORDER BY {order} DESC LIMIT 1)[SAFE_OFFSET(0)]")
            }
            Dialect::Snowflake => format!("MAX_BY({x}, {order})"),
        }
    }

    /// Stop the script with a message when `cond` holds (a fixed point
    /// not reached, a count that does not add up).
    pub fn fail_if(self, cond: &str, message: &str) -> String {
        let m = self.lit(message);
        match self {
            Dialect::DuckDb => {
                format!("SELECT CASE WHEN {cond} THEN error({m}) ELSE 'ok' END AS check_result")
            }
            Dialect::Spark => format!(
                "SELECT CASE WHEN {cond} THEN raise_error({m}) ELSE 'ok' END AS check_result"
            ),
            Dialect::BigQuery => {
                format!("SELECT CASE WHEN {cond} THEN ERROR({m}) ELSE 'ok' END AS check_result")
            }
            // Snowflake has no error(): a cast of the message fails with it.
            Dialect::Snowflake => format!(
                "SELECT CASE WHEN {cond} THEN TO_NUMBER({m})::VARCHAR ELSE 'ok' END AS check_result"
            ),
        }
    }

    /// A quoted identifier (a file's column name as written).
    pub fn ident(self, name: &str) -> String {
        match self {
            Dialect::Spark | Dialect::BigQuery => format!("`{}`", name.replace('`', "")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The texts joined by `sep`, NULLs left out.
    pub fn join_non_null(self, sep: &str, parts: &[String]) -> String {
        let list = parts.join(", ");
        match self {
            Dialect::DuckDb | Dialect::Spark => format!("concat_ws({}, {list})", self.lit(sep)),
            Dialect::BigQuery => format!("ARRAY_TO_STRING([{list}], {})", self.lit(sep)),
            Dialect::Snowflake => format!(
                "ARRAY_TO_STRING(ARRAY_CONSTRUCT_COMPACT({list}), {})",
                self.lit(sep)
            ),
        }
    }

    /// A text as a JSON string literal (quoted and escaped).
    pub fn json_string(self, v: &str) -> String {
        match self {
            Dialect::DuckDb => format!("CAST(to_json({v}) AS VARCHAR)"),
            Dialect::Spark => format!(
                "regexp_extract(to_json(named_struct('v', {v})), {}, 1)",
                self.lit(r#"^\{"v":(.*)\}$"#)
            ),
            Dialect::BigQuery => format!("TO_JSON_STRING({v})"),
            Dialect::Snowflake => format!("TO_JSON(TO_VARIANT({v}))"),
        }
    }

    /// A back-reference to group `k` in a replacement text.
    pub fn group_ref(self, k: usize) -> String {
        match self {
            Dialect::Spark => format!("${k}"),
            _ => format!("\\{k}"),
        }
    }

    /// Where this dialect uses a simpler rule than the local pipeline.
    pub fn fallbacks(self) -> Vec<&'static str> {
        let mut out = vec![
            "Phone numbers: digits with the country's calling code (seeds/calling_codes.csv) instead of libphonenumber's validation; numbers the library rejects as invalid are kept here.",
        ];
        match self {
            Dialect::Spark | Dialect::BigQuery => out.push(
                "Jaro-Winkler: not built in; 1 - Levenshtein / longer length is used for the Jaro-Winkler levels.",
            ),
            _ => {}
        }
        if self != Dialect::DuckDb {
            out.push("Accents: a translation of the Latin letters with diacritics (DuckDB's strip_accents covers every script).");
        }
        out
    }
}

/// Latin letters with diacritics and their base letters, for
/// [`Dialect::strip_accents`] on engines without it.
const ACCENTED: &str = "àáâãäåāăąçćčďèéêëēėęěìíîïīįłñńňòóôõöøōőŕřśšşťùúûüūůűųýÿźžżÀÁÂÃÄÅĀĂĄÇĆČĎÈÉÊËĒĖĘĚÌÍÎÏĪĮŁÑŃŇÒÓÔÕÖØŌŐŔŘŚŠŞŤÙÚÛÜŪŮŰŲÝŸŹŽŻ";
const UNACCENTED: &str = "aaaaaaaaacccdeeeeeeeeiiiiiilnnnoooooooorrssstuuuuuuuuyyzzzAAAAAAAAACCCDEEEEEEEEIIIIIILNNNOOOOOOOORRSSSTUUUUUUUUYYZZZ";

/// `pattern` with only its `k`-th capturing group left capturing.
fn only_group(pattern: &str, k: usize) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let (mut n, mut escaped, mut class) = (0, false, false);
    let chars: Vec<char> = pattern.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        out.push(c);
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' => class = true,
            ']' => class = false,
            '(' if !class && chars.get(i + 1) != Some(&'?') => {
                n += 1;
                if n != k {
                    out.push_str("?:");
                }
            }
            _ => {}
        }
    }
    out
}

/// A strftime format as Java's DateTimeFormatter pattern (Spark).
fn java_format(fmt: &str) -> String {
    fmt.replace("%Y", "yyyy")
        .replace("%m", "MM")
        .replace("%d", "dd")
        .replace("%H", "HH")
        .replace("%M", "mm")
        .replace("%S", "ss")
        .replace("%f", "SSS")
        .replace('T', "'T'")
}

/// A strftime format as Snowflake's format model.
fn snowflake_format(fmt: &str) -> String {
    fmt.replace("%Y", "YYYY")
        .replace("%m", "MM")
        .replace("%d", "DD")
        .replace("%H", "HH24")
        .replace("%M", "MI")
        .replace("%S", "SS")
        .replace("%f", "FF")
        .replace('T', "\"T\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accent_tables_pair_up() {
        assert_eq!(ACCENTED.chars().count(), UNACCENTED.chars().count());
    }

    #[test]
    fn one_group_stays_capturing() {
        assert_eq!(
            only_group(r"^(\d)-(?:x)([a(]) (b)$", 2),
            r"^(?:\d)-(?:x)([a(]) (?:b)$"
        );
    }

    #[test]
    fn dialects_parse_by_name() {
        assert_eq!("DuckDB".parse::<Dialect>(), Ok(Dialect::DuckDb));
        assert_eq!("bq".parse::<Dialect>(), Ok(Dialect::BigQuery));
        assert!("oracle".parse::<Dialect>().unwrap_err().contains("duckdb"));
    }

    #[test]
    fn regex_literals_escape_per_dialect() {
        assert_eq!(Dialect::Spark.pat(r"\s+"), r"'\\s+'");
        assert_eq!(Dialect::DuckDb.pat(r"\s+"), r"'\s+'");
        assert_eq!(Dialect::BigQuery.pat(r"\s+"), r"r'\s+'");
        assert!(Dialect::DuckDb.re_replace("x", "a", "b").ends_with("'g')"));
    }
}
