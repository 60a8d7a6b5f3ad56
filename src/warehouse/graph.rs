//! Connected components in plain SQL: leaves pruned, then FastSV (Zhang,
//! Azad and Hu 2020, a simplification of Shiloach–Vishkin: hooking and
//! shortcutting on parent pointers) over the core that is left, unrolled a
//! fixed number of rounds, then checked to be at its fixed point (the
//! script stops with an error otherwise: raise `--rounds`).
//!
//! The phases, for edges E (both directions) over nodes N:
//! 1. *first round*: every node counts its neighbours and takes the
//!    smallest of itself and them, `low` (one aggregate over E);
//! 2. *leaves*: a node with one neighbour cannot carry a label between two
//!    others. Removing every such node leaves each component connected (or
//!    empty, for a single edge), and the smallest node of the component is
//!    a core node's `low`. The rounds run on the core only: in an identity
//!    graph most nodes are records on a single identifier value, so the
//!    core is a small part of E;
//! 3. *rounds*: every core node u has a parent f(u), first itself, and its
//!    grandparent gf(u) = f(f(u)). A round hooks, over every core edge
//!    (u, v), u's parent to gf(v) and u itself to gf(v), and shortcuts u
//!    to gf(u), each only ever to a smaller node. A path of n nodes
//!    settles in about 2·log2(n) rounds, whatever its numbering (plain
//!    label propagation with a jump needs about n/3 rounds on a randomly
//!    numbered path);
//! 4. *check*: every parent is a root and every core edge joins equal
//!    parents: each core component is one star;
//! 5. *result*: a core node the smallest `low` of its star; a leaf the
//!    label of its one neighbour (or its `low`, for a single edge).

use super::Dialect;

/// SQL building `{out}(node, label)` over the undirected edges of the query
/// `edges` (columns a, b), `rounds` rounds. Nodes on no edge are absent;
/// each node's label is the smallest node of its component.
pub fn components(d: Dialect, edges: &str, out: &str, rounds: usize) -> String {
    let int = d.int();
    let both = format!("SELECT a, b FROM {out}_x UNION ALL SELECT b AS a, a AS b FROM {out}_x");
    // 1. The edges once; the first round with the degree and (for a leaf,
    //    its only) neighbour.
    let mut sql = d.create_as(
        &format!("{out}_x"),
        &format!(
            "SELECT CAST(a AS {int}) AS a, CAST(b AS {int}) AS b FROM ({edges}) x WHERE a <> b"
        ),
    );
    sql.push_str(&d.create_as(
        &format!("{out}_n"),
        &format!(
            "SELECT a AS node, LEAST(a, min(b)) AS low, count(*) AS deg, min(b) AS nb FROM ({both}) e GROUP BY a"
        ),
    ));
    // 2. The core: edges between nodes of two or more neighbours.
    sql.push_str(&d.create_as(
        &format!("{out}_k"),
        &format!(
            "SELECT e.a, e.b FROM ({both}) e
JOIN {out}_n na ON na.node = e.a JOIN {out}_n nb ON nb.node = e.b WHERE na.deg > 1 AND nb.deg > 1"
        ),
    ));
    sql.push_str(&format!("DROP TABLE IF EXISTS {out}_x;\n"));
    sql.push_str(&d.create_as(
        &format!("{out}_0"),
        &format!("SELECT node, node AS f FROM {out}_n WHERE deg > 1"),
    ));
    // 3. The rounds.
    for i in 1..=rounds {
        sql.push_str(&round_sql(d, out, i));
        if i >= 2 {
            sql.push_str(&format!("DROP TABLE IF EXISTS {out}_{};\n", i - 2));
        }
    }
    let last = format!("{out}_{rounds}");
    // 4. The check.
    sql.push_str(&d.fail_if(
        &format!(
            "(SELECT count(*) FROM {last} p JOIN {last} q ON q.node = p.f WHERE q.f <> p.f) > 0 \
OR (SELECT count(*) FROM {out}_k e JOIN {last} x ON x.node = e.a JOIN {last} y ON y.node = e.b WHERE x.f <> y.f) > 0"
        ),
        &format!("{out}: label propagation did not reach its fixed point in {rounds} rounds; compile with a larger --rounds"),
    ));
    sql.push_str(";\n");
    // 5. The result.
    sql.push_str(&d.create_as(
        &format!("{out}_c"),
        &format!(
            "SELECT c.node, r.low AS label FROM {last} c JOIN (
  SELECT p.f, min(n.low) AS low FROM {last} p JOIN {out}_n n ON n.node = p.node GROUP BY p.f
) r ON r.f = c.f"
        ),
    ));
    sql.push_str(&d.create_as(
        out,
        &format!(
            "SELECT n.node, COALESCE(c.label, cn.label, n.low) AS label
FROM {out}_n n LEFT JOIN {out}_c c ON c.node = n.node LEFT JOIN {out}_c cn ON n.deg = 1 AND cn.node = n.nb"
        ),
    ));
    for t in [
        format!("{out}_{}", rounds.saturating_sub(1)),
        last,
        format!("{out}_c"),
        format!("{out}_n"),
        format!("{out}_k"),
    ] {
        sql.push_str(&format!("DROP TABLE IF EXISTS {t};\n"));
    }
    sql
}

/// Round `i` over the core, from parents `{out}_{i-1}` to `{out}_{i}`:
/// every node the smallest of its parent, its grandparent (shortcut), the
/// grandparents of its neighbours (aggressive hook), and of the
/// grandparents of the neighbours of the nodes it is parent of (hook).
fn round_sql(d: Dialect, out: &str, i: usize) -> String {
    let prev = format!("{out}_{}", i - 1);
    d.create_as(
        &format!("{out}_{i}"),
        &format!(
            "WITH g AS (
  SELECT p.node, p.f, q.f AS gf FROM {prev} p JOIN {prev} q ON q.node = p.f
), h AS (
  SELECT CASE WHEN t.t = 0 THEN gu.f ELSE e.a END AS node, gv.gf AS f
  FROM {out}_k e JOIN g gu ON gu.node = e.a JOIN g gv ON gv.node = e.b
  CROSS JOIN (SELECT 0 AS t UNION ALL SELECT 1 AS t) t
  WHERE gv.gf < CASE WHEN t.t = 0 THEN gu.f ELSE e.a END
  UNION ALL SELECT node, gf AS f FROM g
)
SELECT node, min(f) AS f FROM h GROUP BY node"
        ),
    )
}
