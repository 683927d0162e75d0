//! The root's view of the cluster: each shard's replica set, with a client and the state of
//! every replica, and the shard's hedging state (recent latencies, budget).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fanout_proto::{ShardId, Topology};

use crate::choose::power_of_two_choices;
use crate::client::{GrpcLeafClient, LeafClient};
use crate::config::RootConfig;
use crate::hedge::{HedgeBudget, HedgePolicy, LatencyWindow};
use crate::replica::{FailureEffect, ReplicaPolicy, ReplicaState};
use crate::scatter::ShardMetrics;
use crate::stats::StatsCache;

/// One replica of a shard.
pub struct Replica {
    /// The replica's address, used as its name in responses and logs.
    pub name: String,
    pub client: Arc<dyn LeafClient>,
    pub state: ReplicaState,
    ejections: metrics::Counter,
}

impl Replica {
    /// Records a failed request or probe; an ejection it causes is logged and counted here, the
    /// one place that does so whether a query or the health prober saw the failure.
    pub fn record_failure(&self, policy: &ReplicaPolicy, why: &str) {
        if let FailureEffect::Ejected(backoff) = self.state.record_failure(policy) {
            tracing::warn!(replica = %self.name, ?backoff, why, "replica ejected after consecutive failures");
            self.ejections.increment(1);
        }
    }
}

/// The replicas of one shard and what the root has learnt about them.
pub struct ReplicaSet {
    pub shard: ShardId,
    pub replicas: Vec<Replica>,
    window: Mutex<LatencyWindow>,
    pub budget: HedgeBudget,
    pub metrics: ShardMetrics,
}

impl ReplicaSet {
    /// A shard's replicas, each given as a name and a client; there must be at least one.
    pub fn new(
        shard: ShardId,
        replicas: Vec<(String, Arc<dyn LeafClient>)>,
        config: &RootConfig,
    ) -> Self {
        assert!(
            !replicas.is_empty(),
            "shard {shard} needs at least one replica"
        );
        let replicas = replicas
            .into_iter()
            .map(|(name, client)| Replica {
                ejections: metrics::counter!("fanout_root_ejections_total", "replica" => name.clone()),
                state: ReplicaState::new(&config.replica),
                name,
                client,
            })
            .collect();
        Self {
            shard,
            replicas,
            window: Mutex::new(LatencyWindow::new(&config.hedge)),
            budget: HedgeBudget::new(&config.hedge),
            metrics: ShardMetrics::new(shard),
        }
    }

    /// Chooses a replica not yet tried for this request: power of two choices over the ones not
    /// ejected, or, if all untried ones are ejected, over those (their ejection may be stale).
    pub fn choose(&self, tried: &[bool], policy: &ReplicaPolicy) -> Option<usize> {
        let loads = |want_available: bool| -> Vec<Option<f64>> {
            self.replicas
                .iter()
                .zip(tried)
                .map(|(r, &t)| {
                    (!t && r.state.is_available() == want_available).then(|| r.state.load(policy))
                })
                .collect()
        };
        power_of_two_choices(&loads(true), |n| fastrand::usize(..n))
            .or_else(|| power_of_two_choices(&loads(false), |n| fastrand::usize(..n)))
    }

    /// Records the latency of an answered request.
    pub fn record_latency(&self, latency: Duration, policy: &HedgePolicy) {
        self.window
            .lock()
            .expect("window lock")
            .record(latency, policy);
    }

    /// How long a request may be outstanding before it is hedged.
    pub fn hedge_delay(&self) -> Duration {
        self.window.lock().expect("window lock").delay()
    }

    /// Whether at least one replica answered its last request or probe.
    pub fn has_reachable_replica(&self) -> bool {
        self.replicas.iter().any(|r| !r.state.is_failing())
    }
}

/// Every shard's replica set, indexed by shard id.
pub struct Cluster {
    shards: Vec<ReplicaSet>,
    /// The shards' BM25 statistics, summed for searches.
    pub stats: StatsCache,
    /// Searches answered with a shard missing.
    pub partial_responses: metrics::Counter,
    /// Time from a search's arrival to its answer.
    pub search_seconds: metrics::Histogram,
}

impl Cluster {
    /// Replica sets from already built replicas; shard ids must be `0..N` in order.
    pub fn new(shards: Vec<ReplicaSet>) -> Self {
        for (i, set) in shards.iter().enumerate() {
            assert_eq!(
                set.shard as usize, i,
                "replica sets must be ordered by shard id"
            );
        }
        Self {
            stats: StatsCache::new(shards.len()),
            shards,
            partial_responses: metrics::counter!("fanout_root_partial_responses_total"),
            search_seconds: metrics::histogram!("fanout_root_search_seconds"),
        }
    }

    /// gRPC clients for every replica of a topology. Connections are made lazily.
    pub fn connect(
        topology: &Topology,
        config: &RootConfig,
    ) -> Result<Self, tonic::transport::Error> {
        let mut shards = Vec::new();
        for spec in topology.shards() {
            let mut replicas = Vec::new();
            for addr in &spec.replicas {
                let client: Arc<dyn LeafClient> =
                    Arc::new(GrpcLeafClient::new(addr, config.connect_timeout)?);
                replicas.push((addr.to_string(), client));
            }
            shards.push(ReplicaSet::new(spec.id, replicas, config));
        }
        Ok(Self::new(shards))
    }

    /// The replica sets, by shard id.
    pub fn shards(&self) -> &[ReplicaSet] {
        &self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeLeaf;

    fn set(n: usize) -> ReplicaSet {
        let replicas = (0..n)
            .map(|i| {
                (
                    format!("r{i}"),
                    Arc::new(FakeLeaf::ok(1)) as Arc<dyn LeafClient>,
                )
            })
            .collect();
        ReplicaSet::new(0, replicas, &RootConfig::default())
    }

    #[tokio::test(start_paused = true)]
    async fn never_chooses_a_tried_replica_and_prefers_available_ones() {
        let set = set(3);
        let policy = ReplicaPolicy::default();
        for _ in 0..50 {
            assert_eq!(set.choose(&[true, false, true], &policy), Some(1));
        }
        assert_eq!(set.choose(&[true, true, true], &policy), None);
        set.replicas[0].state.record_failure(&policy);
        set.replicas[0].state.record_failure(&policy);
        assert!(!set.replicas[0].state.is_available());
        for _ in 0..50 {
            assert_ne!(
                set.choose(&[false, false, false], &policy),
                Some(0),
                "ejected replicas go last"
            );
        }
        assert_eq!(
            set.choose(&[false, true, true], &policy),
            Some(0),
            "but are still a last resort"
        );
        assert!(set.has_reachable_replica());
    }

    #[tokio::test(start_paused = true)]
    async fn spreads_load_toward_the_less_busy_replica() {
        let set = set(2);
        let policy = ReplicaPolicy::default();
        for _ in 0..5 {
            set.replicas[0].state.start();
        }
        for _ in 0..20 {
            assert_eq!(set.choose(&[false, false], &policy), Some(1));
        }
    }
}
