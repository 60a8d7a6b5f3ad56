//! Fuzz-style loads (issue 12): hundreds of mutated slices of the sample
//! CSV and NDJSON (random byte flips, truncation, duplicated lines, stray
//! quotes, CR / CRLF swaps), each loaded through the real staging code. For
//! every case: no panic, and either the load failed as a whole with nothing
//! committed, or rows read = staged + rejected and every row read is in the
//! raw table.

use c360::pipeline::load::stage;
use c360::pipeline::progress::NoProgress;
use c360::store;
use c360::workspace::Workspace;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CONFIG: &str = r#"
[[sources]]
name = "crm"
system = "crm"
location = "crm.csv"
format = "csv"

[[sources]]
name = "web"
system = "web"
location = "web.ndjson"
format = "segment"
"#;

/// A few lines of `text` from line `at` on (keeping the header line).
/// (The sample files hold invalid UTF-8 on purpose: bytes, not text.)
fn slice(text: &[u8], header: bool, at: usize, n: usize) -> Vec<u8> {
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let mut out = Vec::new();
    if header {
        out.extend_from_slice(lines[0]);
        out.push(b'\n');
    }
    for l in lines.iter().skip(1 + at).take(n) {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn mutate(rng: &mut ChaCha8Rng, mut data: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..4) {
        if data.is_empty() {
            break;
        }
        let pos = rng.random_range(0..data.len());
        match rng.random_range(0..6) {
            0 => data[pos] ^= 1 << rng.random_range(0..8),
            1 => data.truncate(pos),
            2 => data.insert(pos, b'"'),
            3 => {
                // Duplicate the line around `pos`.
                let start = data[..pos]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = data[pos..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(data.len(), |p| pos + p + 1);
                let line = data[start..end].to_vec();
                data.splice(end..end, line);
            }
            4 => {
                // Line ends to CR only.
                data = data
                    .iter()
                    .map(|&b| if b == b'\n' { b'\r' } else { b })
                    .collect();
            }
            _ => {
                // Line ends to CRLF.
                data = data
                    .iter()
                    .flat_map(|&b| {
                        if b == b'\n' {
                            vec![b'\r', b'\n']
                        } else {
                            vec![b]
                        }
                    })
                    .collect();
            }
        }
    }
    data
}

fn int(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn mutated_files_keep_every_row_and_never_panic() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/sample_data/");
    let crm = std::fs::read(format!("{sample}crm.csv")).unwrap();
    let web = std::fs::read(format!("{sample}web_events.ndjson")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c360.toml"), CONFIG).unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    let mut conn = store::open(&ws.db_path()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let (mut loaded, mut failed) = (0, 0);
    for case in 0..300 {
        let (name, file, text, header) = if case % 2 == 0 {
            ("crm", "crm.csv", &crm, true)
        } else {
            ("web", "web.ndjson", &web, false)
        };
        let at = rng.random_range(0..2000);
        let data = mutate(&mut rng, slice(text, header, at, 30));
        std::fs::write(dir.path().join(file), &data).unwrap();
        let source = ws.source(name).unwrap();
        let batches_before = int(&conn, "SELECT count(*) FROM load_batches");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stage::load_source(&mut conn, &ws, source, &NoProgress)
        }));
        let result = result.unwrap_or_else(|_| {
            panic!(
                "case {case}: loading panicked on {:?}",
                String::from_utf8_lossy(&data)
            )
        });
        match result {
            Ok(r) if r.already_loaded => {}
            Ok(r) => {
                loaded += 1;
                assert_eq!(r.rows_read, r.rows_staged + r.rows_rejected, "case {case}");
                let raw = int(
                    &conn,
                    &format!(
                        "SELECT count(*) FROM raw_{name} WHERE batch_id = {}",
                        r.batch_id
                    ),
                );
                assert_eq!(raw as u64, r.rows_read, "case {case}: raw rows");
                let rejects = int(
                    &conn,
                    &format!(
                        "SELECT count(*) FROM rejects WHERE batch_id = {}",
                        r.batch_id
                    ),
                );
                assert_eq!(rejects as u64, r.rows_rejected, "case {case}: rejects");
            }
            Err(_) => {
                failed += 1;
                assert_eq!(
                    int(&conn, "SELECT count(*) FROM load_batches"),
                    batches_before,
                    "case {case}: a failed load commits nothing"
                );
            }
        }
    }
    assert!(
        loaded > 200,
        "most mutated files still load ({loaded} loaded, {failed} refused)"
    );
}
