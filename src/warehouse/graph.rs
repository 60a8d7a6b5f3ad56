//! Connected components in plain SQL: iterated label propagation with
//! pointer jumping, unrolled a fixed number of rounds, then checked to be
//! at its fixed point (the script stops with an error otherwise: raise
//! `--rounds`).
//!
//! Each round gives a node the smallest label among itself and its
//! neighbours, then the label of that label (a jump), so a path of length
//! n settles in about log2(n) rounds.

use super::Dialect;

/// SQL building `{out}(node, label)` over the undirected edges of the query
/// `edges` (columns a, b), `rounds` rounds. Nodes on no edge are absent.
pub fn components(d: Dialect, edges: &str, out: &str, rounds: usize) -> String {
    let int = d.int();
    let mut sql = d.create_as(
        &format!("{out}_e"),
        &format!(
            "SELECT DISTINCT CAST(a AS {int}) AS a, CAST(b AS {int}) AS b FROM (SELECT a, b FROM ({edges}) x0 UNION ALL SELECT b AS a, a AS b FROM ({edges}) x1) x WHERE a <> b"
        ),
    );
    sql.push_str(&d.create_as(
        &format!("{out}_0"),
        &format!("SELECT a AS node, LEAST(a, min(b)) AS label FROM {out}_e GROUP BY a"),
    ));
    for i in 1..=rounds {
        let prev = format!("{out}_{}", i - 1);
        sql.push_str(&d.create_as(
            &format!("{out}_{i}"),
            &format!(
                "WITH m AS (
  SELECT e.a AS node, min(n.label) AS label
  FROM {out}_e e JOIN {prev} n ON n.node = e.b
  GROUP BY e.a
), s AS (
  SELECT l.node, LEAST(l.label, COALESCE(m.label, l.label)) AS label
  FROM {prev} l LEFT JOIN m ON m.node = l.node
)
SELECT s.node, LEAST(s.label, COALESCE(j.label, s.label)) AS label
FROM s LEFT JOIN s j ON j.node = s.label"
            ),
        ));
        if i >= 2 {
            sql.push_str(&format!("DROP TABLE IF EXISTS {out}_{};\n", i - 2));
        }
    }
    let last = format!("{out}_{rounds}");
    let before = format!("{out}_{}", rounds - 1);
    sql.push_str(&d.fail_if(
        &format!(
            "(SELECT count(*) FROM {last} a JOIN {before} b ON a.node = b.node WHERE a.label <> b.label) > 0 \
OR (SELECT count(*) FROM {out}_e e JOIN {last} x ON x.node = e.a JOIN {last} y ON y.node = e.b WHERE x.label <> y.label) > 0"
        ),
        &format!("{out}: label propagation did not reach its fixed point in {rounds} rounds; compile with a larger --rounds"),
    ));
    sql.push_str(";\n");
    sql.push_str(&d.create_as(out, &format!("SELECT node, label FROM {last}")));
    sql.push_str(&format!(
        "DROP TABLE IF EXISTS {before};\nDROP TABLE IF EXISTS {last};\nDROP TABLE IF EXISTS {out}_e;\n"
    ));
    sql
}
