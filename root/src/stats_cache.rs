//! The statistics a root has learned from its shards, per shard and per term, summed on
//! demand for a query.
//!
//! Validity: a shard's statistics are good until one of its replicas reports a generation other
//! than the one the cache last saw from it (leaves report their generation on every answer),
//! which means a commit changed what the shard holds. Statistics of a shard come from one of its
//! replicas at a time and are never added up over replicas.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use fanout_proto::{pb, ShardId};

/// Bounds on what the cache holds; past them it starts over (cheaply refilled).
const MAX_QUERIES: usize = 100_000;
const MAX_TERMS_PER_SHARD: usize = 1_000_000;

/// The statistics a root has learned from its shards.
pub struct StatsCache {
    inner: Mutex<Inner>,
}

struct Inner {
    /// A query's term keys, as the shards reported them.
    query_terms: HashMap<String, Arc<[Vec<u8>]>>,
    shards: Vec<ShardStats>,
}

#[derive(Default)]
struct ShardStats {
    /// Documents and per-field token totals, once known.
    base: Option<(u64, Vec<(String, u64)>)>,
    terms: HashMap<Vec<u8>, u64>,
    /// The last generation seen from each replica.
    generations: HashMap<String, u64>,
}

impl ShardStats {
    /// Records a replica's generation; forgets the statistics if it changed. Called on every
    /// search answer, so the usual case (a generation seen before) allocates nothing.
    fn observe(&mut self, replica: &str, generation: u64) -> bool {
        let Some(known) = self.generations.get_mut(replica) else {
            self.generations.insert(replica.to_string(), generation);
            return false;
        };
        if *known == generation {
            return false;
        }
        *known = generation;
        self.base = None;
        self.terms.clear();
        true
    }
}

impl StatsCache {
    /// An empty cache for `num_shards` shards.
    pub fn new(num_shards: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                query_terms: HashMap::new(),
                shards: (0..num_shards).map(|_| ShardStats::default()).collect(),
            }),
        }
    }

    /// The cluster's statistics for `query`, if every shard's are known.
    pub fn lookup(&self, query: &str) -> Option<pb::CorpusStats> {
        let inner = self.inner.lock();
        let mut sum = Sum::new(inner.query_terms.get(query)?);
        for shard in &inner.shards {
            if !sum.add(shard) {
                return None;
            }
        }
        Some(sum.into_pb())
    }

    /// The sum over the shards whose statistics for `query` are known (for when a shard could
    /// not be asked), or `None` if no shard's are.
    pub fn sum_known(&self, query: &str) -> Option<pb::CorpusStats> {
        let inner = self.inner.lock();
        let mut sum = Sum::new(inner.query_terms.get(query)?);
        let mut any = false;
        for shard in &inner.shards {
            any |= sum.add(shard);
        }
        any.then(|| sum.into_pb())
    }

    /// Takes in a shard's `Stats` answer for `query` from `replica` (the root's name for it).
    pub fn absorb(&self, query: &str, replica: &str, response: &pb::StatsResponse) {
        let Some(stats) = &response.stats else { return };
        let mut inner = self.inner.lock();
        if inner.query_terms.len() >= MAX_QUERIES {
            inner.query_terms.clear();
        }
        let terms: Arc<[Vec<u8>]> = stats.terms.iter().map(|t| t.term.clone()).collect();
        inner.query_terms.insert(query.to_string(), terms);
        let Some(shard) = inner.shards.get_mut(response.shard as usize) else {
            return;
        };
        shard.observe(replica, response.generation);
        if shard.terms.len() >= MAX_TERMS_PER_SHARD {
            shard.terms.clear();
        }
        let fields = stats
            .fields
            .iter()
            .map(|f| (f.field.clone(), f.total_tokens))
            .collect();
        shard.base = Some((stats.num_docs, fields));
        for t in &stats.terms {
            shard.terms.insert(t.term.clone(), t.doc_freq);
        }
    }

    /// Forgets the generations of replicas that left `shard`, so that membership churn does
    /// not grow the cache.
    pub fn forget_replicas(&self, shard: ShardId, replicas: &[String]) {
        let mut inner = self.inner.lock();
        if let Some(s) = inner.shards.get_mut(shard as usize) {
            s.generations.retain(|name, _| !replicas.contains(name));
        }
    }

    /// The generation of `replica` of `shard` last seen, if any.
    pub fn generation(&self, shard: ShardId, replica: &str) -> Option<u64> {
        let inner = self.inner.lock();
        inner
            .shards
            .get(shard as usize)?
            .generations
            .get(replica)
            .copied()
    }

    /// Notes the generation a replica answered a search from. Returns whether that
    /// invalidated the shard's statistics.
    pub fn observe(&self, shard: ShardId, replica: &str, generation: u64) -> bool {
        let mut inner = self.inner.lock();
        inner
            .shards
            .get_mut(shard as usize)
            .is_some_and(|s| s.observe(replica, generation))
    }
}

/// Statistics being summed over shards, for one query's terms (`doc_freqs` by position).
struct Sum<'a> {
    terms: &'a [Vec<u8>],
    num_docs: u64,
    fields: Vec<(String, u64)>,
    doc_freqs: Vec<u64>,
}

impl<'a> Sum<'a> {
    fn new(terms: &'a [Vec<u8>]) -> Self {
        Self {
            terms,
            num_docs: 0,
            fields: Vec::new(),
            doc_freqs: vec![0; terms.len()],
        }
    }

    /// Adds a shard's statistics; false (adding nothing) if any of them is unknown.
    fn add(&mut self, shard: &ShardStats) -> bool {
        let Some((num_docs, fields)) = &shard.base else {
            return false;
        };
        let Some(dfs) = self
            .terms
            .iter()
            .map(|t| shard.terms.get(t))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        self.num_docs += num_docs;
        for (field, tokens) in fields {
            match self.fields.iter_mut().find(|(f, _)| f == field) {
                Some((_, total)) => *total += tokens,
                None => self.fields.push((field.clone(), *tokens)),
            }
        }
        for (sum, df) in self.doc_freqs.iter_mut().zip(dfs) {
            *sum += df;
        }
        true
    }

    fn into_pb(self) -> pb::CorpusStats {
        pb::CorpusStats {
            num_docs: self.num_docs,
            fields: self
                .fields
                .into_iter()
                .map(|(field, total_tokens)| pb::FieldStat {
                    field,
                    total_tokens,
                })
                .collect(),
            terms: self
                .terms
                .iter()
                .zip(self.doc_freqs)
                .map(|(term, doc_freq)| pb::TermStat {
                    term: term.clone(),
                    doc_freq,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
#[path = "stats_cache_tests.rs"]
mod tests;
