//! Clustering under steward constraints.
//!
//! [`Clusterer`] is a union-find that refuses any union which would put two
//! records a steward kept apart into one cluster: a rejected pair
//! (cannot-link) or the two sides of a split. Each refused union is reported
//! so the caller can log it. [`weak_bridges`] finds fuzzy merges that alone
//! hold two groups of records together.

use super::UnionFind;
use std::collections::HashMap;

/// A steward constraint: no cluster may hold records of both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apart {
    pub decision_id: i64,
    pub a: Vec<u32>,
    pub b: Vec<u32>,
}

/// Union-find honouring [`Apart`] constraints.
#[derive(Debug, Clone)]
pub struct Clusterer {
    pub uf: UnionFind,
    /// Root -> (constraint index, sides present: bit 1 = a, bit 2 = b),
    /// sorted by constraint index. Only roots that carry marks are present.
    marks: HashMap<u32, Vec<(u32, u8)>>,
    decisions: Vec<i64>,
}

impl Clusterer {
    pub fn new(n: usize, apart: &[Apart]) -> Self {
        let mut marks: HashMap<u32, Vec<(u32, u8)>> = HashMap::new();
        let mut decisions = Vec::with_capacity(apart.len());
        for (ci, c) in apart.iter().enumerate() {
            decisions.push(c.decision_id);
            for (side, members) in [(1u8, &c.a), (2u8, &c.b)] {
                for &r in members {
                    if (r as usize) < n {
                        let list = marks.entry(r).or_default();
                        match list.iter_mut().find(|(k, _)| *k == ci as u32) {
                            Some((_, bits)) => *bits |= side,
                            None => list.push((ci as u32, side)),
                        }
                    }
                }
            }
        }
        Clusterer {
            uf: UnionFind::new(n),
            marks,
            decisions,
        }
    }

    pub fn find(&mut self, x: u32) -> u32 {
        self.uf.find(x)
    }

    /// Join the clusters of `a` and `b`. `Ok(true)` joined, `Ok(false)`
    /// already one cluster, `Err(decision_id)` refused: a steward decision
    /// keeps records of the two clusters apart.
    pub fn union(&mut self, a: u32, b: u32) -> Result<bool, i64> {
        let (ra, rb) = (self.uf.find(a), self.uf.find(b));
        if ra == rb {
            return Ok(false);
        }
        let ma = self.marks.get(&ra);
        let mb = self.marks.get(&rb);
        if let (Some(ma), Some(mb)) = (ma, mb) {
            // Both sorted by constraint: merge-walk.
            let (mut i, mut j) = (0, 0);
            while i < ma.len() && j < mb.len() {
                match ma[i].0.cmp(&mb[j].0) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        if ma[i].1 | mb[j].1 == 3 {
                            return Err(self.decisions[ma[i].0 as usize]);
                        }
                        i += 1;
                        j += 1;
                    }
                }
            }
        }
        let ma = self.marks.remove(&ra);
        let mb = self.marks.remove(&rb);
        self.uf.union(ra, rb);
        let root = self.uf.find(ra);
        let merged = match (ma, mb) {
            (Some(x), None) | (None, Some(x)) => Some(x),
            (Some(x), Some(y)) => {
                let mut out: Vec<(u32, u8)> = Vec::with_capacity(x.len() + y.len());
                out.extend(x);
                for (k, bits) in y {
                    match out.binary_search_by_key(&k, |e| e.0) {
                        Ok(pos) => out[pos].1 |= bits,
                        Err(pos) => out.insert(pos, (k, bits)),
                    }
                }
                Some(out)
            }
            (None, None) => None,
        };
        if let Some(mut m) = merged {
            m.sort_unstable_by_key(|e| e.0);
            self.marks.insert(root, m);
        }
        Ok(true)
    }
}

/// Fuzzy merges that are the only link between two groups of at least two
/// records each, with probability below `threshold`: a cluster held
/// together by one weak bridge.
///
/// `base` holds the clusters before fuzzy merges (deterministic links and
/// steward must-links); `edges` are the accepted fuzzy merges as (record,
/// record, probability). Returns indices into `edges`.
pub fn weak_bridges(base: &mut UnionFind, edges: &[(u32, u32, f64)], threshold: f64) -> Vec<usize> {
    // Nodes: base clusters touched by an edge; weight = records in them.
    let mut node_of: rustc_hash::FxHashMap<u32, usize> = Default::default();
    let mut weight: Vec<usize> = Vec::new();
    let mut sizes: Vec<usize> = vec![0; base.len()];
    for x in 0..base.len() as u32 {
        sizes[base.find(x) as usize] += 1;
    }
    let mut adj: Vec<Vec<(usize, usize)>> = Vec::new();
    for (ei, &(a, b, _)) in edges.iter().enumerate() {
        let (ra, rb) = (base.find(a), base.find(b));
        if ra == rb {
            continue;
        }
        let mut node = |r: u32| {
            *node_of.entry(r).or_insert_with(|| {
                weight.push(sizes[r as usize]);
                adj.push(Vec::new());
                weight.len() - 1
            })
        };
        let (na, nb) = (node(ra), node(rb));
        adj[na].push((nb, ei));
        adj[nb].push((na, ei));
    }
    let n = weight.len();
    // Iterative Tarjan bridge finding with subtree weights.
    let mut disc = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut sub = vec![0usize; n];
    let mut comp_total = vec![0usize; n];
    let mut out = Vec::new();
    let mut timer = 0;
    let mut candidates: Vec<(usize, usize)> = Vec::new(); // (edge, child)
    for start in 0..n {
        if disc[start] != usize::MAX {
            continue;
        }
        let mut members = Vec::new();
        // Stack of (node, parent edge, next adjacency index).
        let mut stack: Vec<(usize, usize, usize)> = vec![(start, usize::MAX, 0)];
        disc[start] = timer;
        low[start] = timer;
        timer += 1;
        sub[start] = weight[start];
        members.push(start);
        while let Some(&mut (v, pe, ref mut next)) = stack.last_mut() {
            if *next < adj[v].len() {
                let (w, ei) = adj[v][*next];
                *next += 1;
                if ei == pe {
                    continue;
                }
                if disc[w] == usize::MAX {
                    disc[w] = timer;
                    low[w] = timer;
                    timer += 1;
                    sub[w] = weight[w];
                    members.push(w);
                    stack.push((w, ei, 0));
                } else {
                    low[v] = low[v].min(disc[w]);
                }
            } else {
                stack.pop();
                if let Some(&(p, _, _)) = stack.last() {
                    low[p] = low[p].min(low[v]);
                    sub[p] += sub[v];
                    if low[v] > disc[p] {
                        candidates.push((pe, v));
                    }
                }
            }
        }
        let total = sub[start];
        for m in members {
            comp_total[m] = total;
        }
    }
    for (ei, child) in candidates {
        let inside = sub[child];
        let outside = comp_total[child] - inside;
        if inside >= 2 && outside >= 2 && edges[ei].2 < threshold {
            out.push(ei);
        }
    }
    out.sort_unstable();
    out
}

/// Links applied through a [`Clusterer`] honour the steward's decisions.
impl super::deterministic::Join for Clusterer {
    fn find(&mut self, x: u32) -> u32 {
        self.uf.find(x)
    }
    fn join(&mut self, a: u32, b: u32) -> bool {
        matches!(self.union(a, b), Ok(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cannot_link_refuses_direct_and_transitive_unions() {
        let apart = [Apart {
            decision_id: 7,
            a: vec![0],
            b: vec![3],
        }];
        let mut c = Clusterer::new(5, &apart);
        assert_eq!(c.union(0, 1), Ok(true));
        assert_eq!(c.union(3, 2), Ok(true));
        // 1 and 2 are not constrained, but their clusters hold 0 and 3.
        assert_eq!(c.union(1, 2), Err(7));
        assert_eq!(c.union(0, 3), Err(7));
        assert_eq!(c.union(2, 4), Ok(true));
        assert_ne!(c.find(0), c.find(3));
    }

    #[test]
    fn split_sides_stay_apart_but_each_side_may_grow() {
        let apart = [Apart {
            decision_id: 1,
            a: vec![0, 1],
            b: vec![2, 3],
        }];
        let mut c = Clusterer::new(6, &apart);
        assert_eq!(c.union(0, 1), Ok(true));
        assert_eq!(c.union(2, 3), Ok(true));
        assert_eq!(c.union(4, 0), Ok(true));
        assert_eq!(c.union(5, 2), Ok(true));
        assert_eq!(c.union(4, 5), Err(1));
    }

    #[test]
    fn marks_survive_many_unions() {
        let apart = [
            Apart {
                decision_id: 1,
                a: vec![0],
                b: vec![99],
            },
            Apart {
                decision_id: 2,
                a: vec![50],
                b: vec![51],
            },
        ];
        let mut c = Clusterer::new(100, &apart);
        for i in 1..50 {
            assert_eq!(c.union(i - 1, i), Ok(true));
        }
        for i in 52..100 {
            assert_eq!(c.union(i - 1, i), Ok(true));
        }
        assert_eq!(c.union(50, 10), Ok(true));
        assert_eq!(c.union(51, 60), Ok(false), "already joined by the chain");
        assert_eq!(c.union(49, 52), Err(1));
    }

    #[test]
    fn weak_bridge_between_two_groups_is_flagged() {
        // Base groups {0,1} and {2,3}; a lone record 4.
        let mut base = UnionFind::new(5);
        base.union(0, 1);
        base.union(2, 3);
        let edges = [(1, 2, 0.97), (3, 4, 0.96)];
        assert_eq!(weak_bridges(&mut base.clone(), &edges, 0.99), vec![0]);
        // A strong bridge is not flagged.
        assert!(weak_bridges(&mut base.clone(), &[(1, 2, 0.999)], 0.99).is_empty());
        // Two edges between the groups: no bridge.
        let twice = [(1, 2, 0.97), (0, 3, 0.97)];
        assert!(weak_bridges(&mut base, &twice, 0.99).is_empty());
    }
}
