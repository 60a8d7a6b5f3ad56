//! scratch
use c360::pipeline::progress::NoProgress;
use c360::pipeline::stage;
use c360::store;
use c360::workspace::Workspace;

#[test]
#[ignore]
fn scan_parquet() {
    let good = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sample_data/transactions.parquet"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c360.toml"), "[[sources]]\nname = \"transactions\"\nsystem = \"transactions\"\nlocation = \"t.parquet\"\nformat = \"parquet\"\n").unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    let mut conn = store::open(&ws.db_path()).unwrap();
    let step = (good.len() / 400).max(1);
    for pos in (0..good.len()).step_by(step) {
        for x in [0xffu8, 0x01] {
            let mut bad = good.clone();
            bad[pos] ^= x;
            std::fs::write(dir.path().join("t.parquet"), &bad).unwrap();
            if let Err(e) = stage::load_all(&mut conn, &ws, &NoProgress) {
                let m = format!("{e:#}");
                if m.contains("reader failed") || m.contains("panicked") {
                    println!("POS {pos} {x}: {}", m.lines().nth(1).unwrap_or(""));
                }
            } else {
                conn.execute_batch(
                    "DELETE FROM rejects; DELETE FROM stg_transactions; DELETE FROM load_batches;",
                )
                .unwrap();
            }
        }
    }
    for keep in (8..good.len()).step_by(step) {
        std::fs::write(dir.path().join("t.parquet"), &good[..keep]).unwrap();
        if let Err(e) = stage::load_all(&mut conn, &ws, &NoProgress) {
            let m = format!("{e:#}");
            if m.contains("reader failed") || m.contains("panicked") {
                println!("TRUNC {keep}: {}", m.lines().nth(1).unwrap_or(""));
            }
        }
    }
}
