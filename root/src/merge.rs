//! Gathering: merging the shards' partial top-k into one page of hits.
//!
//! Order: score descending, then document id ascending (byte order), then shard ascending. The id
//! tie-break makes the order of a page independent of which shard or replica answered; the shard
//! tie-break only matters if one id was (wrongly) indexed on two shards. Each shard returns its
//! own top `from + size`, so the global page `from..from + size` is always among them.

use std::cmp::Ordering;

use fanout_proto::ShardId;

/// One hit as a shard returned it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardHit<F> {
    /// The document's id.
    pub id: String,
    /// Its score.
    pub score: f32,
    /// The shard that answered it.
    pub shard: ShardId,
    /// Whatever travels with the hit (stored fields); the merge never looks at it.
    pub fields: F,
}

/// The documented rank order of hits; a total order, so the merge is deterministic.
pub fn rank_order<F>(a: &ShardHit<F>, b: &ShardHit<F>) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| a.id.cmp(&b.id))
        .then_with(|| a.shard.cmp(&b.shard))
}

/// Merges the shards' partial hit lists into the page `from..from + size` of the global ranking.
pub fn merge_top_k<F>(
    partials: impl IntoIterator<Item = Vec<ShardHit<F>>>,
    from: usize,
    size: usize,
) -> Vec<ShardHit<F>> {
    let mut all: Vec<ShardHit<F>> = partials.into_iter().flatten().collect();
    let window = from.saturating_add(size).min(all.len());
    if window == 0 {
        return Vec::new();
    }
    // Only the first `window` hits matter: partition them out before sorting.
    if window < all.len() {
        all.select_nth_unstable_by(window - 1, rank_order);
        all.truncate(window);
    }
    all.sort_unstable_by(rank_order);
    all.drain(..from.min(all.len()));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hit(id: &str, score: f32, shard: ShardId) -> ShardHit<()> {
        ShardHit {
            id: id.into(),
            score,
            shard,
            fields: (),
        }
    }

    fn ids(hits: &[ShardHit<()>]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[test]
    fn orders_by_score_then_id() {
        let merged = merge_top_k(
            vec![
                vec![hit("b", 3.0, 0), hit("d", 1.0, 0)],
                vec![hit("c", 2.0, 1), hit("a", 1.0, 1)],
            ],
            0,
            10,
        );
        assert_eq!(ids(&merged), ["b", "c", "a", "d"]);
    }

    #[test]
    fn equal_scores_break_ties_by_id_then_shard() {
        let merged = merge_top_k(
            vec![
                vec![hit("z", 1.0, 0), hit("m", 1.0, 0)],
                vec![hit("m", 1.0, 1), hit("a", 1.0, 1)],
            ],
            0,
            10,
        );
        assert_eq!(ids(&merged), ["a", "m", "m", "z"]);
        assert_eq!(merged[1].shard, 0);
        assert_eq!(merged[2].shard, 1);
    }

    #[test]
    fn pages_with_from_and_size() {
        let partials = || {
            vec![
                vec![hit("a", 5.0, 0), hit("c", 3.0, 0)],
                vec![hit("b", 4.0, 1), hit("d", 2.0, 1)],
            ]
        };
        assert_eq!(ids(&merge_top_k(partials(), 0, 2)), ["a", "b"]);
        assert_eq!(ids(&merge_top_k(partials(), 1, 2)), ["b", "c"]);
        assert_eq!(ids(&merge_top_k(partials(), 3, 2)), ["d"]);
        assert!(merge_top_k(partials(), 4, 2).is_empty());
        assert!(merge_top_k(partials(), 0, 0).is_empty());
        assert!(merge_top_k(Vec::<Vec<ShardHit<()>>>::new(), 0, 10).is_empty());
    }

    #[test]
    fn nan_and_infinite_scores_do_not_break_the_order() {
        let merged = merge_top_k(
            vec![vec![
                hit("n", f32::NAN, 0),
                hit("i", f32::INFINITY, 0),
                hit("x", 1.0, 1),
            ]],
            0,
            10,
        );
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[1].id, "i");
    }

    proptest! {
        /// Merging each shard's own top `from + size` equals the page of the union's ranking.
        #[test]
        fn merging_shard_top_k_equals_top_k_of_union(
            docs in proptest::collection::vec((0u8..20, 0u32..8), 0..200),
            num_shards in 1u32..6,
            from in 0usize..30,
            size in 0usize..30,
        ) {
            // Coarse scores make ties common; ids are unique.
            let all: Vec<ShardHit<()>> = docs
                .iter()
                .enumerate()
                .map(|(i, &(score, shard))| hit(&format!("doc-{i}"), f32::from(score) / 4.0, shard % num_shards))
                .collect();
            let mut union = all.clone();
            union.sort_by(rank_order);
            let expected: Vec<_> = union.into_iter().skip(from).take(size).collect();

            let partials: Vec<Vec<ShardHit<()>>> = (0..num_shards)
                .map(|s| {
                    let mut local: Vec<_> = all.iter().filter(|h| h.shard == s).cloned().collect();
                    local.sort_by(rank_order);
                    local.truncate(from + size);
                    local
                })
                .collect();
            prop_assert_eq!(merge_top_k(partials, from, size), expected);
        }
    }
}
