//! Cluster-wide BM25 statistics, cached. Every shard scores with statistics summed over all
//! shards, so that a split index ranks exactly as one index would. The sums come from each
//! shard's `Stats` answer for a query's terms; this cache keeps them per shard and per term, so
//! a query seen before (or one whose terms all were) costs no extra round trip.
//!
//! Validity: a shard's statistics are good until one of its replicas reports a generation other
//! than the one the cache last saw from it (leaves report their generation on every answer),
//! which means a commit changed what the shard holds. Statistics of a shard come from one of its
//! replicas at a time and are never added up over replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fanout_proto::{pb, ShardId};
use serde::Serialize;
use tokio::time::Instant;

use crate::client::ShardError;
use crate::cluster::{choose, Cluster, ReplicaSet};
use crate::replica::ReplicaPolicy;

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
        let inner = self.inner.lock().expect("stats cache poisoned");
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
        let inner = self.inner.lock().expect("stats cache poisoned");
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
        let mut inner = self.inner.lock().expect("stats cache poisoned");
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
        let mut inner = self.inner.lock().expect("stats cache poisoned");
        if let Some(s) = inner.shards.get_mut(shard as usize) {
            s.generations.retain(|name, _| !replicas.contains(name));
        }
    }

    /// Notes the generation a replica answered a search from. Returns whether that
    /// invalidated the shard's statistics.
    pub fn observe(&self, shard: ShardId, replica: &str, generation: u64) -> bool {
        let mut inner = self.inner.lock().expect("stats cache poisoned");
        inner
            .shards
            .get_mut(shard as usize)
            .is_some_and(|s| s.observe(replica, generation))
    }
}

/// Which statistics a search scored with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsMode {
    /// The cluster's, summed over shards: the scores of one index holding every document.
    Global,
    /// Each shard's own (cheaper when cold, but a document's score depends on its shard).
    Shard,
}

/// Where a search's global statistics came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    /// The cache: no extra round trip.
    Cached,
    /// A `Stats` round trip to every shard first.
    Fetched,
    /// Some shard could not be asked: the sum covers the others.
    Partial,
    /// Per-shard statistics, as asked.
    Shard,
}

/// The cluster's statistics for `query`: from the cache when every shard's are known and
/// current, or else from one `Stats` round trip to a replica of each shard (the next replica on
/// a failure). The round trip may use a quarter of the time left before `deadline`, so that a
/// silent shard leaves the search itself most of its time; shards that did not answer by then
/// are left out of the sum. Fails on an invalid query, and on a broken connection for a query
/// not `proven` harmless on that shard (as in [`crate::scatter::ScatterOptions::proven`]).
pub async fn cluster_stats(
    cluster: &Cluster,
    policy: &ReplicaPolicy,
    query: &str,
    deadline: Instant,
    proven: &[bool],
) -> Result<(Option<pb::CorpusStats>, StatsSource), ShardError> {
    if let Some(stats) = cluster.stats.lookup(query) {
        return Ok((Some(stats), StatsSource::Cached));
    }
    let now = Instant::now();
    let stats_deadline = now + deadline.saturating_duration_since(now) / 4;
    let asks = cluster.shards().iter().map(|set| {
        let proven = proven.get(set.shard as usize).copied().unwrap_or(false);
        async move {
            (
                proven,
                shard_stats(set, policy, query, stats_deadline, proven).await,
            )
        }
    });
    for (proven, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok((replica, response)) => cluster.stats.absorb(query, &replica, &response),
            // A bad query, or one that may have killed a replica: the search must not go on.
            Err(e) if !e.is_retryable(proven) => return Err(e),
            // The search itself will report the shard if it is really gone.
            Err(_) => {}
        }
    }
    Ok(match cluster.stats.lookup(query) {
        Some(stats) => (Some(stats), StatsSource::Fetched),
        None => (cluster.stats.sum_known(query), StatsSource::Partial),
    })
}

async fn shard_stats(
    set: &ReplicaSet,
    policy: &ReplicaPolicy,
    query: &str,
    deadline: Instant,
    proven: bool,
) -> Result<(String, pb::StatsResponse), ShardError> {
    let replicas = set.replicas();
    let mut tried = vec![false; replicas.len()];
    let mut last = ShardError::Unavailable("no replica".into());
    while let Some(slot) = choose(&replicas, &tried, policy) {
        // A silent replica may keep only its share of the time from the others.
        let untried = tried.iter().filter(|t| !**t).count() as u32;
        tried[slot] = true;
        let left = deadline.saturating_duration_since(Instant::now()) / untried.max(1);
        if left.is_zero() {
            return Err(ShardError::Timeout);
        }
        let request = pb::StatsRequest {
            query: query.to_string(),
        };
        match replicas[slot].client.stats(request, left).await {
            Ok(response) => return Ok((replicas[slot].name.clone(), response)),
            Err(e) if !e.is_retryable(proven) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
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
#[path = "stats_tests.rs"]
mod tests;
