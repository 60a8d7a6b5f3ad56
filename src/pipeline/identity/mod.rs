//! Identity resolution (pipeline step 4).
//!
//! This module holds the parts every resolve step needs and that can be
//! tested on their own: a union-find over record indices ([`UnionFind`]) and
//! the assignment of stable `customer360_id`s to clusters with lineage
//! ([`assign_ids`]); deterministic linking within guardrails
//! ([`deterministic`]); pairwise scoring against a truth file ([`eval`]); and
//! fuzzy candidates with Fellegi–Sunter weights ([`fuzzy`]); clustering that
//! honours steward decisions ([`cluster`]); the decisions themselves and the
//! review queue ([`steward`]); and the resolve step that ties them together
//! ([`resolve`]).

pub mod cluster;
pub mod deterministic;
pub mod eval;
pub mod fuzzy;
pub mod resolve;
pub mod steward;

use rayon::prelude::*;
use std::collections::HashMap;

/// Disjoint sets over `0..n` with union by size and path halving: near
/// constant time per operation, linear in the number of links overall.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Join the sets of `a` and `b`; returns false when already joined.
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
        true
    }

    /// The sets, each sorted, ordered by their smallest member.
    pub fn clusters(&mut self) -> Vec<Vec<u32>> {
        let n = self.parent.len();
        let mut slot = vec![u32::MAX; n];
        let mut out: Vec<Vec<u32>> = Vec::new();
        for x in 0..n as u32 {
            let r = self.find(x) as usize;
            if slot[r] == u32::MAX {
                slot[r] = out.len() as u32;
                out.push(Vec::new());
            }
            out[slot[r] as usize].push(x);
        }
        out
    }
}

/// Why an id changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LineageReason {
    /// Two customers became one: the old id now points at the survivor.
    Merge,
    /// Part of a customer became another customer: a new id was minted.
    Split,
}

impl LineageReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LineageReason::Merge => "merge",
            LineageReason::Split => "split",
        }
    }
}

/// The ids given to clusters and what changed since the previous run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// One id per input cluster, in the same order.
    pub ids: Vec<String>,
    /// (old id, new id, reason), sorted.
    pub lineage: Vec<(String, String, LineageReason)>,
    /// The next sequence number to mint from.
    pub next_seq: u64,
}

/// Format a minted id.
pub fn format_id(seq: u64) -> String {
    format!("C360-{seq:08}")
}

/// Sequence number of an id (for "older"); ids not minted here sort last.
pub(crate) fn seq_of(id: &str) -> u64 {
    id.strip_prefix("C360-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The next customer360_id sequence number to mint (1 on a new workspace).
pub fn next_id_seq(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
    use rusqlite::OptionalExtension;
    let next: Option<i64> = conn
        .query_row(
            "SELECT next FROM id_sequence WHERE name = 'customer360_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(next.unwrap_or(1) as u64)
}

/// Give every cluster a `customer360_id`, keeping ids stable across runs:
///
/// - a cluster whose records had one id keeps it (re-running on the same data
///   changes nothing, and new records joining a customer do not move it);
/// - when clusters merge, the **older** id (lower sequence) survives and the
///   others get a `merge` lineage row pointing at it;
/// - when a customer splits, the part holding most of its records keeps the
///   id (ties: the part with the smallest record key) and the other parts
///   get new ids with a `split` lineage row from the old one;
/// - clusters of records never seen before get new ids.
///
/// `clusters` holds record keys; `previous` maps record keys to the id they
/// had. The result does not depend on the order of records within a cluster.
pub fn assign_ids<S: AsRef<str> + Sync, H: std::hash::BuildHasher + Sync>(
    clusters: &[Vec<S>],
    previous: &HashMap<String, String, H>,
    mut next_seq: u64,
) -> Assignment {
    // Per cluster (in parallel): its smallest record key, and the old ids it
    // holds with how many of their records.
    let per_cluster: Vec<(&str, Vec<(&str, u32)>)> = clusters
        .par_iter()
        .map(|cluster| {
            let mut found: Vec<&str> = cluster
                .iter()
                .filter_map(|key| previous.get(key.as_ref()).map(String::as_str))
                .collect();
            found.sort_unstable();
            let held = found
                .chunk_by(|a, b| a == b)
                .map(|run| (run[0], run.len() as u32))
                .collect();
            let min = cluster.iter().map(AsRef::as_ref).min().unwrap_or("");
            (min, held)
        })
        .collect();
    let min_key = |ci: usize| per_cluster[ci].0;
    // (old id's sequence, old id, cluster, records), grouped by old id.
    let mut holds: Vec<(u64, &str, usize, u32)> = per_cluster
        .iter()
        .enumerate()
        .flat_map(|(ci, (_, held))| held.iter().map(move |&(id, n)| (seq_of(id), id, ci, n)))
        .collect();
    holds.par_sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    // The owner of an old id: the cluster with most of its records (ties:
    // the smallest record key). Other holders split off it.
    let mut owned: Vec<(usize, &str)> = Vec::new();
    let mut split_from: Vec<(usize, &str)> = Vec::new();
    for run in holds.chunk_by(|a, b| a.1 == b.1) {
        let owner = run
            .iter()
            .max_by(|a, b| a.3.cmp(&b.3).then_with(|| min_key(b.2).cmp(min_key(a.2))))
            .map_or(usize::MAX, |h| h.2);
        owned.push((owner, run[0].1));
        split_from.extend(run.iter().filter(|h| h.2 != owner).map(|h| (h.2, h.1)));
    }
    // By cluster; within a cluster, old ids stay oldest first (stable sort).
    owned.par_sort_by_key(|o| o.0);
    split_from.par_sort_by_key(|o| o.0);
    let range_of = |list: &[(usize, &str)], ci: usize| {
        let lo = list.partition_point(|o| o.0 < ci);
        let hi = list.partition_point(|o| o.0 <= ci);
        lo..hi
    };
    // Mint new ids in a deterministic order: by each cluster's smallest key.
    let mut order: Vec<usize> = (0..clusters.len()).collect();
    order.par_sort_unstable_by_key(|&ci| min_key(ci));
    let mut ids = vec![String::new(); clusters.len()];
    let mut lineage = Vec::new();
    for ci in order {
        let mine = &owned[range_of(&owned, ci)];
        let id = match mine.first() {
            Some(&(_, survivor)) => {
                for &(_, other) in &mine[1..] {
                    lineage.push((
                        other.to_string(),
                        survivor.to_string(),
                        LineageReason::Merge,
                    ));
                }
                survivor.to_string()
            }
            None => {
                let id = format_id(next_seq);
                next_seq += 1;
                id
            }
        };
        for &(_, old) in &split_from[range_of(&split_from, ci)] {
            lineage.push((old.to_string(), id.clone(), LineageReason::Split));
        }
        ids[ci] = id;
    }
    lineage.sort();
    Assignment {
        ids,
        lineage,
        next_seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(groups: &[&[&str]]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    fn previous(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn union_find_clusters() {
        let mut uf = UnionFind::new(6);
        assert!(uf.union(0, 3));
        assert!(uf.union(3, 5));
        assert!(!uf.union(5, 0));
        assert!(uf.union(1, 2));
        assert_eq!(uf.clusters(), vec![vec![0, 3, 5], vec![1, 2], vec![4]]);
        let mut big = UnionFind::new(1_000_000);
        for i in 1..1_000_000u32 {
            big.union(i - 1, i);
        }
        assert_eq!(big.clusters().len(), 1);
    }

    #[test]
    fn first_run_mints_in_key_order_and_rerun_changes_nothing() {
        let clusters = keys(&[&["crm:b", "tx:1"], &["crm:a"]]);
        let first = assign_ids(&clusters, &HashMap::new(), 1);
        assert_eq!(first.ids, vec!["C360-00000002", "C360-00000001"]);
        assert!(first.lineage.is_empty());
        assert_eq!(first.next_seq, 3);
        let prev = previous(&[
            ("crm:b", "C360-00000002"),
            ("tx:1", "C360-00000002"),
            ("crm:a", "C360-00000001"),
        ]);
        // Same data, clusters listed in another order, members shuffled.
        let again = assign_ids(&keys(&[&["crm:a"], &["tx:1", "crm:b"]]), &prev, 3);
        assert_eq!(again.ids, vec!["C360-00000001", "C360-00000002"]);
        assert!(again.lineage.is_empty());
        assert_eq!(again.next_seq, 3, "nothing minted");
    }

    #[test]
    fn new_records_join_without_moving_the_id() {
        let prev = previous(&[("crm:a", "C360-00000007")]);
        let a = assign_ids(&keys(&[&["crm:a", "web:new"], &["web:other"]]), &prev, 8);
        assert_eq!(a.ids, vec!["C360-00000007", "C360-00000008"]);
        assert!(a.lineage.is_empty());
    }

    #[test]
    fn merge_keeps_the_older_id() {
        let prev = previous(&[
            ("crm:a", "C360-00000005"),
            ("crm:b", "C360-00000002"),
            ("crm:c", "C360-00000002"),
        ]);
        let a = assign_ids(&keys(&[&["crm:a", "crm:b", "crm:c"]]), &prev, 9);
        assert_eq!(a.ids, vec!["C360-00000002"]);
        assert_eq!(
            a.lineage,
            vec![(
                "C360-00000005".to_string(),
                "C360-00000002".to_string(),
                LineageReason::Merge
            )]
        );
    }

    #[test]
    fn split_mints_a_new_id_for_the_smaller_part() {
        let prev = previous(&[
            ("crm:a", "C360-00000001"),
            ("crm:b", "C360-00000001"),
            ("crm:c", "C360-00000001"),
        ]);
        let a = assign_ids(&keys(&[&["crm:c"], &["crm:a", "crm:b"]]), &prev, 4);
        assert_eq!(a.ids, vec!["C360-00000004", "C360-00000001"]);
        assert_eq!(
            a.lineage,
            vec![(
                "C360-00000001".to_string(),
                "C360-00000004".to_string(),
                LineageReason::Split
            )]
        );
        // An even split: the part with the smallest record key keeps the id.
        let even = assign_ids(
            &keys(&[&["crm:z"], &["crm:y"]]),
            &previous(&[("crm:y", "C360-00000003"), ("crm:z", "C360-00000003")]),
            10,
        );
        assert_eq!(even.ids, vec!["C360-00000010", "C360-00000003"]);
    }
}
