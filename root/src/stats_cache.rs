//! The statistics a root has learned from its shards, per shard and per term, summed on
//! demand for a query.
//!
//! Source: a shard's statistics all come from one replica at one generation, its source, so
//! that a sum never mixes two replicas' figures or two commits of one. A search that sends the
//! sums tells the source replica the generation they came from and the other replicas nothing;
//! a leaf that is not on that generation, or not told one, answers with its own statistics
//! (see the contract's generation handshake), which [`StatsCache::absorb`] takes in: figures
//! that agree with the cached ones change nothing, and any that differ replace the shard's
//! statistics and make the answering replica the source.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use fanout_proto::{pb, ShardId};

/// Bounds on what the cache holds; past them it starts over (cheaply refilled).
const MAX_QUERIES: usize = 100_000;
const MAX_TERMS_PER_SHARD: usize = 1_000_000;

/// Where a shard's statistics came from: the root's name of the replica, and its generation.
pub type Source = Option<(String, u64)>;

/// The cluster's statistics for a query, and per shard where its part came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sums {
    /// The sums, as a search sends them.
    pub stats: pb::CorpusStats,
    /// Per shard, by shard id: the source of its part (`None` for a shard left out).
    pub sources: Vec<Source>,
}

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
    /// The replica and generation everything below was read from.
    source: Source,
    /// Documents and per-field token totals, once known.
    base: Option<(u64, Vec<(String, u64)>)>,
    terms: HashMap<Vec<u8>, u64>,
}

impl ShardStats {
    fn clear(&mut self, source: Source) {
        self.source = source;
        self.base = None;
        self.terms.clear();
    }

    /// Whether `stats` says nothing the cache contradicts: the same documents and field
    /// totals, and the same count for every term both know.
    fn agrees(&self, stats: &pb::CorpusStats) -> bool {
        let Some((num_docs, fields)) = &self.base else {
            return false;
        };
        *num_docs == stats.num_docs
            && fields.len() == stats.fields.len()
            && stats
                .fields
                .iter()
                .all(|f| fields.contains(&(f.field.clone(), f.total_tokens)))
            && stats
                .terms
                .iter()
                .all(|t| self.terms.get(&t.term).is_none_or(|&df| df == t.doc_freq))
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
    pub fn lookup(&self, query: &str) -> Option<Sums> {
        let inner = self.inner.lock();
        let mut sum = Sum::new(inner.query_terms.get(query)?);
        for shard in &inner.shards {
            if !sum.add(shard) {
                return None;
            }
        }
        Some(sum.into_sums())
    }

    /// The sum over the shards whose statistics for `query` are known (for when a shard could
    /// not be asked), or `None` if no shard's are.
    pub fn sum_known(&self, query: &str) -> Option<Sums> {
        let inner = self.inner.lock();
        let mut sum = Sum::new(inner.query_terms.get(query)?);
        let mut any = false;
        for shard in &inner.shards {
            any |= sum.add(shard);
        }
        any.then(|| sum.into_sums())
    }

    /// The source of `shard`'s statistics, if known.
    pub fn source(&self, shard: ShardId) -> Source {
        let inner = self.inner.lock();
        inner.shards.get(shard as usize)?.source.clone()
    }

    /// Takes in a shard's statistics for `query`, from `replica` (the root's name for it) at
    /// `generation`: a `Stats` answer, or those a search answer carried. Returns whether they
    /// changed what the cache knew: figures from the source replica at another generation (a
    /// commit there), or from another replica that contradict the cached ones, replace the
    /// shard's statistics; figures from another replica that agree only fill in terms.
    pub fn absorb(
        &self,
        query: &str,
        replica: &str,
        generation: u64,
        shard: ShardId,
        stats: &pb::CorpusStats,
    ) -> bool {
        let mut inner = self.inner.lock();
        if inner.query_terms.len() >= MAX_QUERIES {
            inner.query_terms.clear();
        }
        let terms: Arc<[Vec<u8>]> = stats.terms.iter().map(|t| t.term.clone()).collect();
        inner.query_terms.insert(query.to_string(), terms);
        let Some(cached) = inner.shards.get_mut(shard as usize) else {
            return false;
        };
        // The source at another generation committed: everything cached from it may be
        // stale. Another replica is taken at its word only where it disagrees.
        let changed = match &cached.source {
            Some((source, known)) if source == replica => *known != generation,
            Some(_) => !cached.agrees(stats),
            None => true,
        };
        if changed {
            cached.clear(Some((replica.to_string(), generation)));
        }
        if cached.terms.len() >= MAX_TERMS_PER_SHARD {
            cached.terms.clear();
        }
        let fields = stats
            .fields
            .iter()
            .map(|f| (f.field.clone(), f.total_tokens))
            .collect();
        cached.base = Some((stats.num_docs, fields));
        for t in &stats.terms {
            cached.terms.insert(t.term.clone(), t.doc_freq);
        }
        changed
    }

    /// Forgets the statistics of `shard` if their source left it.
    pub fn forget_replicas(&self, shard: ShardId, replicas: &[String]) {
        let mut inner = self.inner.lock();
        if let Some(s) = inner.shards.get_mut(shard as usize) {
            if s.source.as_ref().is_some_and(|(r, _)| replicas.contains(r)) {
                s.clear(None);
            }
        }
    }

    /// Notes the generation a replica answered a search from, for an answer that carried no
    /// statistics. Returns whether it invalidated the shard's statistics: the source replica
    /// moved to another generation.
    pub fn observe(&self, shard: ShardId, replica: &str, generation: u64) -> bool {
        let mut inner = self.inner.lock();
        let Some(s) = inner.shards.get_mut(shard as usize) else {
            return false;
        };
        let moved = s
            .source
            .as_ref()
            .is_some_and(|(r, g)| r == replica && *g != generation);
        if moved {
            s.clear(None);
        }
        moved
    }
}

/// Statistics being summed over shards, for one query's terms (`doc_freqs` by position).
struct Sum<'a> {
    terms: &'a [Vec<u8>],
    sources: Vec<Source>,
    num_docs: u64,
    fields: Vec<(String, u64)>,
    doc_freqs: Vec<u64>,
}

impl<'a> Sum<'a> {
    fn new(terms: &'a [Vec<u8>]) -> Self {
        Self {
            terms,
            sources: Vec::new(),
            num_docs: 0,
            fields: Vec::new(),
            doc_freqs: vec![0; terms.len()],
        }
    }

    /// Adds a shard's statistics; false (adding nothing) if any of them is unknown. Sums
    /// saturate: the figures come from leaves, which a root need not trust to add up.
    fn add(&mut self, shard: &ShardStats) -> bool {
        let Some((num_docs, fields)) = &shard.base else {
            self.sources.push(None);
            return false;
        };
        let Some(dfs) = self
            .terms
            .iter()
            .map(|t| shard.terms.get(t))
            .collect::<Option<Vec<_>>>()
        else {
            self.sources.push(None);
            return false;
        };
        self.sources.push(shard.source.clone());
        self.num_docs = self.num_docs.saturating_add(*num_docs);
        for (field, tokens) in fields {
            match self.fields.iter_mut().find(|(f, _)| f == field) {
                Some((_, total)) => *total = total.saturating_add(*tokens),
                None => self.fields.push((field.clone(), *tokens)),
            }
        }
        for (sum, df) in self.doc_freqs.iter_mut().zip(dfs) {
            *sum = sum.saturating_add(*df);
        }
        true
    }

    fn into_sums(self) -> Sums {
        let stats = pb::CorpusStats {
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
        };
        Sums {
            stats,
            sources: self.sources,
        }
    }
}

#[cfg(test)]
#[path = "stats_cache_tests.rs"]
mod tests;
