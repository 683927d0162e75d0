//! The resharding plan: for the documents of an input and a change of shard count, how many
//! would move and between which shards. The shard function is jump consistent hash, so growing
//! from N to N+1 shards moves about 1/(N+1) of the documents, all of them to the new shard.

use std::collections::BTreeMap;
use std::fmt;

use fanout_proto::{shard_for_id, ShardId};

/// Counts, for a move from `from` to `to` shards, where each document goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshardPlan {
    /// Shards now.
    pub from: u32,
    /// Shards after the change.
    pub to: u32,
    /// Documents per (old shard, new shard) pair, including those that stay.
    pub flows: BTreeMap<(ShardId, ShardId), u64>,
}

impl ReshardPlan {
    /// An empty plan; both counts must be at least 1.
    pub fn new(from: u32, to: u32) -> Self {
        assert!(from > 0 && to > 0, "shard counts start at 1");
        Self {
            from,
            to,
            flows: BTreeMap::new(),
        }
    }

    /// Counts one document; returns its shard before and after.
    pub fn add(&mut self, id: &str) -> (ShardId, ShardId) {
        let pair = (shard_for_id(id, self.from), shard_for_id(id, self.to));
        *self.flows.entry(pair).or_default() += 1;
        pair
    }

    /// Documents counted.
    pub fn total(&self) -> u64 {
        self.flows.values().sum()
    }

    /// Documents that change shard.
    pub fn moved(&self) -> u64 {
        self.moves().map(|(_, n)| n).sum()
    }

    /// The (old shard, new shard) pairs that move documents, with their counts.
    pub fn moves(&self) -> impl Iterator<Item = ((ShardId, ShardId), u64)> + '_ {
        self.flows
            .iter()
            .filter(|((a, b), _)| a != b)
            .map(|(&pair, &n)| (pair, n))
    }

    /// Documents per shard after the change.
    pub fn new_sizes(&self) -> Vec<u64> {
        let mut sizes = vec![0; self.to as usize];
        for (&(_, to), &n) in &self.flows {
            sizes[to as usize] += n;
        }
        sizes
    }

    /// The share that moves by the jump hash's guarantee: |to - from| / max(from, to).
    pub fn expected_share(&self) -> f64 {
        self.from.abs_diff(self.to) as f64 / self.from.max(self.to) as f64
    }
}

impl fmt::Display for ReshardPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        let share = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
        writeln!(
            f,
            "resharding {total} documents from {} to {} shards: {} move ({:.1}%; the shard function moves {:.1}% on average)",
            self.from,
            self.to,
            self.moved(),
            share(self.moved()),
            100.0 * self.expected_share(),
        )?;
        for ((from, to), n) in self.moves() {
            writeln!(f, "  shard {from} -> shard {to}: {n} ({:.1}%)", share(n))?;
        }
        let sizes: Vec<String> = self
            .new_sizes()
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i}: {n}"))
            .collect();
        write!(f, "documents per shard after: {{{}}}", sizes.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(from: u32, to: u32, n: usize) -> ReshardPlan {
        let mut plan = ReshardPlan::new(from, to);
        for i in 0..n {
            plan.add(&format!("doc-{i}"));
        }
        plan
    }

    #[test]
    fn growing_by_one_moves_about_one_in_n_plus_one_all_to_the_new_shard() {
        for n in [1, 2, 3, 7] {
            let plan = plan(n, n + 1, 50_000);
            assert_eq!(plan.total(), 50_000);
            assert!(plan.moves().all(|((_, to), _)| to == n), "{plan}");
            let share = plan.moved() as f64 / 50_000.0;
            let expected = 1.0 / (n + 1) as f64;
            assert!(
                (share - expected).abs() < 0.01,
                "{n}: {share} vs {expected}"
            );
            assert_eq!(plan.expected_share(), expected);
            assert_eq!(plan.new_sizes()[n as usize], plan.moved());
        }
    }

    #[test]
    fn the_same_count_moves_nothing_and_shrinking_empties_the_last_shard() {
        let same = plan(4, 4, 1_000);
        assert_eq!(same.moved(), 0);
        let shrink = plan(3, 2, 9_000);
        assert!(shrink.moves().all(|((from, _), _)| from == 2), "{shrink}");
        let on_two: u64 = shrink
            .flows
            .iter()
            .filter(|((from, _), _)| *from == 2)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(shrink.moved(), on_two, "only shard 2's documents move");
    }

    #[test]
    fn the_report_names_every_move() {
        let plan = plan(2, 3, 1_000);
        let moved = plan.moved();
        let from = |shard: u32| -> u64 {
            plan.moves()
                .filter(|((f, _), _)| *f == shard)
                .map(|(_, n)| n)
                .sum()
        };
        assert!(from(0) > 0 && from(1) > 0, "{plan}");
        let text = plan.to_string();
        assert!(
            text.starts_with(&format!(
                "resharding 1000 documents from 2 to 3 shards: {moved} move"
            )),
            "{text}"
        );
        assert!(text.contains("moves 33.3% on average"), "{text}");
        for shard in [0, 1] {
            let n = from(shard);
            assert!(
                text.contains(&format!("shard {shard} -> shard 2: {n} (")),
                "{text}"
            );
        }
        let sizes = plan.new_sizes();
        assert!(text.ends_with(&format!(
            "documents per shard after: {{0: {}, 1: {}, 2: {}}}",
            sizes[0], sizes[1], sizes[2]
        )));
    }
}
