//! Pairwise precision, recall and F1 of a clustering against a truth file,
//! computed from counts (no pair enumeration): linear in the records.

use std::collections::HashMap;
use std::hash::Hash;

/// Result of comparing predicted clusters with true entities.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairwiseScore {
    /// Records present in both the prediction and the truth.
    pub records: u64,
    pub predicted_clusters: u64,
    pub true_entities: u64,
    /// Pairs placed together that truly belong together.
    pub true_positive_pairs: u64,
    pub predicted_pairs: u64,
    pub true_pairs: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Score `predicted` (record -> cluster) against `truth` (record -> entity).
/// Records missing from either side are left out. With no pairs on a side,
/// its ratio is 1.0 (nothing claimed, nothing wrong).
pub fn pairwise<K, C, E>(predicted: &HashMap<K, C>, truth: &HashMap<K, E>) -> PairwiseScore
where
    K: Eq + Hash,
    C: Eq + Hash + Clone,
    E: Eq + Hash + Clone,
{
    let mut cells: HashMap<(C, E), u64> = HashMap::new();
    let mut by_cluster: HashMap<C, u64> = HashMap::new();
    let mut by_entity: HashMap<E, u64> = HashMap::new();
    let mut records = 0u64;
    for (key, cluster) in predicted {
        let Some(entity) = truth.get(key) else {
            continue;
        };
        records += 1;
        *cells.entry((cluster.clone(), entity.clone())).or_default() += 1;
        *by_cluster.entry(cluster.clone()).or_default() += 1;
        *by_entity.entry(entity.clone()).or_default() += 1;
    }
    let tp: u64 = cells.values().map(|&n| pairs(n)).sum();
    let pred: u64 = by_cluster.values().map(|&n| pairs(n)).sum();
    let truth_pairs: u64 = by_entity.values().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, pred);
    let recall = ratio(tp, truth_pairs);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    PairwiseScore {
        records,
        predicted_clusters: by_cluster.len() as u64,
        true_entities: by_entity.len() as u64,
        true_positive_pairs: tp,
        predicted_pairs: pred,
        true_pairs: truth_pairs,
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hand_computed_scores() {
        // Truth: {a,b,c} one person, {d,e} another, {f} alone.
        let truth = map(&[
            ("a", "P1"),
            ("b", "P1"),
            ("c", "P1"),
            ("d", "P2"),
            ("e", "P2"),
            ("f", "P3"),
        ]);
        // Prediction: {a,b} {c,d,e} {f}; x is not in the truth and ignored.
        let pred = map(&[
            ("a", "1"),
            ("b", "1"),
            ("c", "2"),
            ("d", "2"),
            ("e", "2"),
            ("f", "3"),
            ("x", "1"),
        ]);
        let s = pairwise(&pred, &truth);
        // True pairs: ab ac bc de = 4. Predicted: ab, cd ce de = 4. Both: ab de = 2.
        assert_eq!(
            (
                s.records,
                s.true_pairs,
                s.predicted_pairs,
                s.true_positive_pairs
            ),
            (6, 4, 4, 2)
        );
        assert_eq!((s.precision, s.recall), (0.5, 0.5));
        assert!((s.f1 - 0.5).abs() < 1e-12);
        assert_eq!((s.predicted_clusters, s.true_entities), (3, 3));
    }

    #[test]
    fn perfect_and_empty() {
        let truth = map(&[("a", "P1"), ("b", "P1"), ("c", "P2")]);
        let s = pairwise(&truth, &truth);
        assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
        let singletons = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let s = pairwise(&singletons, &truth);
        assert_eq!((s.precision, s.recall), (1.0, 0.0));
        assert_eq!(s.f1, 0.0);
    }
}
