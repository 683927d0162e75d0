//! Fetching cluster-wide BM25 statistics: every shard scores with statistics summed over all
//! shards, so that a split index ranks exactly as one index would. The sums come from each
//! shard's `Stats` answer for a query's terms, kept by [`crate::stats_cache::StatsCache`], so
//! a query seen before (or one whose terms all were) costs no extra round trip.

use std::sync::Arc;

use fanout_proto::pb;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::time::Instant;

use crate::choose::{choose, Reach};
use crate::client::ShardError;
use crate::cluster::{none_live, Cluster, Replica, ReplicaSet};
use crate::scatter::InFlight;
use crate::stats_cache::{Origin, Sums};

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
    /// The cluster's statistics as the root knew them, but a shard's answer showed they did
    /// not match its data (it committed since, or its replica differs from the one they came
    /// from), and no second round ran (no time, no budget, an incomplete first round, a
    /// quarantine) or it did not match either, or did not complete.
    Stale,
    /// The cluster's, current: a shard's answer showed the statistics the root held did not
    /// match its data (a commit since, or a replica that differs from their source), and the
    /// query ran once more with the new sums, every answer of which matched.
    Rescored,
}

/// The cluster's statistics for `query`: from the cache when every shard's are known and
/// current, or else from one `Stats` round trip to a replica of each shard (the next replica on
/// a failure). The round trip may use a quarter of the time left before `deadline`, so that a
/// silent shard leaves the search itself most of its time; shards that did not answer by then
/// are left out of the sum. Fails on an invalid query, and on a broken connection for a query
/// not `proven` harmless on that shard (as in [`crate::scatter::ScatterOptions::proven`]).
pub async fn cluster_stats(
    cluster: &Cluster,
    query: &str,
    deadline: Instant,
    proven: &[bool],
) -> Result<(Option<Sums>, StatsSource), ShardError> {
    if let Some(sums) = cluster.stats.lookup(query) {
        return Ok((Some(sums), StatsSource::Cached));
    }
    let now = Instant::now();
    let stats_deadline = now + deadline.saturating_duration_since(now) / 4;
    let asks = cluster.shards().iter().map(|set| {
        let proven = proven.get(set.shard as usize).copied().unwrap_or(false);
        let source = cluster.stats.source(set.shard).map(|(replica, _)| replica);
        async move {
            let answer = shard_stats(set, query, stats_deadline, proven, source.as_deref()).await;
            // Filed under the shard the root asked, whatever the leaf says it serves.
            (
                proven,
                answer.map(|(replica, response)| (set.shard, replica, response)),
            )
        }
    });
    for (proven, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok((shard, replica, response)) => {
                if let Some(stats) = &response.stats {
                    let from = (replica.as_str(), response.generation);
                    cluster
                        .stats
                        .absorb(query, from, shard, stats, Origin::Asked);
                }
            }
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

/// One shard's statistics, asked as a search is: from `source` (the replica the cached ones
/// came from) first if it is live, so that the cache keeps one source rather than swapping
/// between replicas; hedged to another replica after the shard's hedge delay (budget
/// permitting, or at once if the first has stalled), and retried on another when an attempt
/// fails in a retryable way.
async fn shard_stats(
    set: &ReplicaSet,
    query: &str,
    deadline: Instant,
    proven: bool,
    source: Option<&str>,
) -> Result<(String, pb::StatsResponse), ShardError> {
    let replicas = set.replicas();
    if none_live(&replicas) {
        return Err(ShardError::Unavailable(
            "no live replica: every replica is ejected or stalled".into(),
        ));
    }
    let mut tried = vec![false; replicas.len()];
    let first = replicas
        .iter()
        .position(|r| Some(r.name.as_str()) == source && r.state.is_live());
    let pick = |tried: &mut Vec<bool>, reach: Reach| {
        let slot = match first {
            Some(slot) if !tried[slot] => Some(slot),
            _ => choose(&replicas, tried, reach),
        }?;
        tried[slot] = true;
        Some(Arc::clone(&replicas[slot]))
    };
    let mut asking = FuturesUnordered::new();
    let primary = match pick(&mut tried, Reach::Any) {
        Some(replica) => replica,
        None => return Err(ShardError::Unavailable("no replica".into())),
    };
    asking.push(ask(Arc::clone(&primary), query, deadline));
    // A hedge that could only leave at the deadline would be cancelled as it is sent.
    let mut hedge_at =
        Some(Instant::now() + set.hedge_delay()).filter(|&at| replicas.len() > 1 && at < deadline);
    let mut last = ShardError::Timeout;
    loop {
        let hedge_timer = async {
            match hedge_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some((replica, result)) = asking.next() => match result {
                Ok(response) => return Ok((replica.name.clone(), response)),
                Err(e) if !e.is_retryable(proven) => return Err(e),
                Err(e) => {
                    if matches!(e, ShardError::Busy(_)) {
                        replica.state.mark_busy();
                    }
                    last = e;
                    if Instant::now() < deadline {
                        if let Some(next) = pick(&mut tried, Reach::Any) {
                            asking.push(ask(next, query, deadline));
                        }
                    }
                    if asking.is_empty() {
                        return Err(last);
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => return Err(last),
            _ = hedge_timer => {
                hedge_at = None;
                // Free away from a stalled first replica, else from the shard's budget.
                if primary.state.is_stalled() || set.budget.try_withdraw() {
                    if let Some(next) = pick(&mut tried, Reach::Live) {
                        set.metrics.hedges_sent.increment(1);
                        asking.push(ask(next, query, deadline));
                    }
                }
            }
        }
    }
}

/// One `Stats` request to one replica, counted in its outstanding requests.
async fn ask(
    replica: Arc<Replica>,
    query: &str,
    deadline: Instant,
) -> (Arc<Replica>, Result<pb::StatsResponse, ShardError>) {
    let request = pb::StatsRequest {
        query: query.to_string(),
    };
    let mut in_flight = InFlight::new(&replica.state);
    let timeout = deadline.saturating_duration_since(Instant::now());
    let result = replica.client.stats(request, timeout).await;
    in_flight.answered = !matches!(result, Err(ShardError::Timeout));
    drop(in_flight);
    (replica, result)
}
