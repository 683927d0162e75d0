//! The statistics a root has learned from its shards, per shard and per term, summed on
//! demand for a query.
//!
//! Source: a shard's statistics all come from one replica at one generation, its source, so
//! that a sum never mixes two replicas' figures or two commits of one. The source changes when
//! it commits (its answers then carry a higher generation), when it leaves the shard, when the
//! root had to ask another replica for statistics it lacked, or when another replica answers a
//! search with figures other than the cached ones (the cache then follows the replica searches
//! reach). Figures of another replica that agree are not taken in, so that one shard's figures
//! stay one replica's. Each answer is judged against the figures it was scored with
//! ([`Sums::is_exact`]): the cache's choices decide how often answers are exact; the labels
//! rest on the judgment.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use fanout_proto::{pb, ShardId};

/// Bounds on what the cache holds; past them it starts over (cheaply refilled).
const MAX_QUERIES: usize = 100_000;
const MAX_TERMS_PER_SHARD: usize = 1_000_000;
/// The most terms one answer's statistics may hold: far more than any query the parser
/// accepts uses, so more is a broken or hostile leaf, and is not taken in.
const MAX_TERMS_PER_ANSWER: usize = 100_000;

/// Where a shard's statistics came from: the root's name of the replica, and its generation.
pub type Source = Option<(String, u64)>;

/// The cluster's statistics for a query, and per shard where its part came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sums {
    /// The sums, as a search sends them.
    pub stats: pb::CorpusStats,
    /// Per shard, by shard id: the source of its part (`None` for a shard left out).
    pub sources: Vec<Source>,
    /// Per shard, its part of the sums (`None` for a shard left out).
    pub parts: Vec<Option<Part>>,
}

/// One shard's figures in a [`Sums`]: its documents and field totals, and its count of each
/// of the sums' terms, in the order of `Sums::stats.terms` (the terms themselves are not
/// copied per shard: a cached search builds these on every lookup).
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    num_docs: u64,
    fields: Vec<(String, u64)>,
    doc_freqs: Vec<u64>,
}

impl Sums {
    /// Whether a search answer from `shard`'s `replica`, searched at `generation`, was scored
    /// with statistics that match the data it searched. An answer that carries the shard's
    /// statistics is exact if they are the figures these sums hold for the shard; one without
    /// is exact only from the source at the source's generation (which is when a leaf leaves
    /// them out). Any other answer without them is unverified: a leaf that does not know the
    /// handshake, for one.
    pub fn is_exact(
        &self,
        shard: ShardId,
        (replica, generation): (&str, u64),
        shard_stats: Option<&pb::CorpusStats>,
    ) -> bool {
        match shard_stats {
            Some(stats) => self
                .parts
                .get(shard as usize)
                .and_then(Option::as_ref)
                .is_some_and(|part| self.same_figures(part, stats)),
            None => self
                .sources
                .get(shard as usize)
                .and_then(Option::as_ref)
                .is_some_and(|(source, known)| source == replica && *known == generation),
        }
    }

    /// Whether a shard's `part` of these sums holds the figures of `stats`, whatever their
    /// order.
    fn same_figures(&self, part: &Part, stats: &pb::CorpusStats) -> bool {
        let mut ours: Vec<(&str, u64)> =
            part.fields.iter().map(|(f, t)| (f.as_str(), *t)).collect();
        let mut theirs: Vec<(&str, u64)> = stats
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.total_tokens))
            .collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        if part.num_docs != stats.num_docs || ours != theirs {
            return false;
        }
        let mut ours: Vec<(&[u8], u64)> = self
            .stats
            .terms
            .iter()
            .zip(&part.doc_freqs)
            .map(|(t, df)| (t.term.as_slice(), *df))
            .collect();
        let mut theirs: Vec<(&[u8], u64)> = stats
            .terms
            .iter()
            .map(|t| (t.term.as_slice(), t.doc_freq))
            .collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        ours == theirs
    }
}

/// Where statistics handed to [`StatsCache::absorb`] come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A `Stats` answer: the root asked this replica.
    Asked,
    /// A search answer that carried them.
    Search,
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
    /// Whether `stats` holds other figures than the cache: documents, fields and their
    /// totals, or the count of a term both know.
    fn contradicts(&self, stats: &pb::CorpusStats) -> bool {
        let Some((num_docs, fields)) = &self.base else {
            return true;
        };
        if fields.len() != stats.fields.len() {
            return true;
        }
        let field_differs = |f: &pb::FieldStat| {
            !fields
                .iter()
                .any(|(name, tokens)| *name == f.field && *tokens == f.total_tokens)
        };
        *num_docs != stats.num_docs
            || stats.fields.iter().any(field_differs)
            || stats
                .terms
                .iter()
                .any(|t| self.terms.get(&t.term).is_some_and(|&df| df != t.doc_freq))
    }

    fn clear(&mut self, source: Source) {
        self.source = source;
        self.base = None;
        self.terms.clear();
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
    /// `generation`. The source's own figures are taken in (a higher generation replaces
    /// everything cached from the lower one; a lower one is an answer overtaken by a commit,
    /// and ignored). Another replica's replace the shard's and make it the source if the root
    /// asked for them (the source could not answer), if they contradict the cached ones, or if
    /// the shard has no source yet; otherwise they are left out.
    pub fn absorb(
        &self,
        query: &str,
        (replica, generation): (&str, u64),
        shard: ShardId,
        stats: &pb::CorpusStats,
        origin: Origin,
    ) {
        if stats.terms.len() > MAX_TERMS_PER_ANSWER {
            return;
        }
        let mut inner = self.inner.lock();
        let Some(cached) = inner.shards.get_mut(shard as usize) else {
            return;
        };
        let replace = match &cached.source {
            Some((source, known)) if source == replica => match generation.cmp(known) {
                // A search answer overtaken by a commit. But the root asked for these: the
                // replica was rebuilt and counts again from the start.
                std::cmp::Ordering::Less if origin == Origin::Search => return,
                std::cmp::Ordering::Equal => false,
                std::cmp::Ordering::Less | std::cmp::Ordering::Greater => true,
            },
            Some(_) if origin == Origin::Search && !cached.contradicts(stats) => return,
            Some(_) | None => true,
        };
        if replace {
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
        if !inner.query_terms.contains_key(query) {
            if inner.query_terms.len() >= MAX_QUERIES {
                inner.query_terms.clear();
            }
            let terms: Arc<[Vec<u8>]> = stats.terms.iter().map(|t| t.term.clone()).collect();
            inner.query_terms.insert(query.to_string(), terms);
        }
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
    /// statistics (a search with per-shard statistics): the source at a higher generation has
    /// committed, and the shard's statistics are forgotten.
    pub fn observe(&self, shard: ShardId, replica: &str, generation: u64) {
        let mut inner = self.inner.lock();
        let Some(s) = inner.shards.get_mut(shard as usize) else {
            return;
        };
        if s.source
            .as_ref()
            .is_some_and(|(r, g)| r == replica && generation > *g)
        {
            s.clear(None);
        }
    }
}

/// Statistics being summed over shards, for one query's terms (`doc_freqs` by position).
struct Sum<'a> {
    terms: &'a [Vec<u8>],
    sources: Vec<Source>,
    parts: Vec<Option<Part>>,
    num_docs: u64,
    fields: Vec<(String, u64)>,
    doc_freqs: Vec<u64>,
}

impl<'a> Sum<'a> {
    fn new(terms: &'a [Vec<u8>]) -> Self {
        Self {
            terms,
            sources: Vec::new(),
            parts: Vec::new(),
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
            self.parts.push(None);
            return false;
        };
        let Some(dfs) = self
            .terms
            .iter()
            .map(|t| shard.terms.get(t))
            .collect::<Option<Vec<_>>>()
        else {
            self.sources.push(None);
            self.parts.push(None);
            return false;
        };
        self.sources.push(shard.source.clone());
        self.parts.push(Some(Part {
            num_docs: *num_docs,
            fields: fields.clone(),
            doc_freqs: dfs.iter().map(|df| **df).collect(),
        }));
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
            parts: self.parts,
        }
    }
}

#[cfg(test)]
#[path = "stats_cache_tests.rs"]
mod tests;
