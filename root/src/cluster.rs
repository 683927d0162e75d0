//! The root's view of the cluster: each shard's replica set, with a client and the state of
//! every replica, and the shard's hedging state (recent latencies, budget).
//!
//! A shard's membership can change while the root serves (DNS discovery adds and removes
//! replicas). A request works on a snapshot of the membership taken when it starts, so a change
//! never shifts the replicas under it; replicas that stay keep what the root learnt of them.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use fanout_proto::{ReplicaAddr, ShardId, Topology};

use crate::client::{GrpcLeafClient, LeafClient};
use crate::config::RootConfig;
use crate::hedge::{HedgeBudget, LatencyWindow};
use crate::metrics::ShardMetrics;
use crate::quarantine::{KnownGood, Quarantine};
use crate::replica::{Condition, FailureEffect, ReplicaPolicy, ReplicaState};
use crate::stats_cache::StatsCache;

/// One replica of a shard.
pub struct Replica {
    /// The replica's address, used as its name in responses and logs.
    pub name: String,
    /// How the root talks to it.
    pub client: Arc<dyn LeafClient>,
    /// Its load, latency and health.
    pub state: ReplicaState,
    ejections: metrics::Counter,
    /// One gauge per [`Condition`]: 1 for the replica's condition, 0 for the others.
    conditions: [metrics::Gauge; 4],
}

impl Replica {
    fn new(
        shard: ShardId,
        name: String,
        client: Arc<dyn LeafClient>,
        policy: &ReplicaPolicy,
    ) -> Self {
        let shard_label = shard.to_string();
        Self {
            conditions: Condition::ALL.map(|c| {
                metrics::gauge!("fanout_root_replica_condition", "shard" => shard_label.clone(), "replica" => name.clone(), "condition" => c.as_str())
            }),
            ejections: metrics::counter!("fanout_root_ejections_total", "replica" => name.clone()),
            state: ReplicaState::new(policy),
            name,
            client,
        }
    }

    /// Sets the condition gauges to what the replica is now, and returns it.
    pub fn report_condition(&self) -> Condition {
        let now = self.state.condition();
        for (gauge, condition) in self.conditions.iter().zip(Condition::ALL) {
            gauge.set(if condition == now { 1.0 } else { 0.0 });
        }
        now
    }

    /// If the replica has left requests unanswered for a while, asks its health service
    /// (once, in the background) whether it is alive: a replica that does not answer that
    /// either has stalled (see [`crate::replica`]).
    pub fn check_for_stall(self: &Arc<Self>, timeout: Duration) {
        let Some(since) = self.state.begin_stall_check() else {
            return;
        };
        let replica = Arc::clone(self);
        tokio::spawn(async move {
            let alive = replica.client.check_health(timeout).await;
            let was = replica.state.is_stalled();
            replica.state.stall_checked(alive, since);
            if !was && replica.state.is_stalled() {
                tracing::warn!(replica = %replica.name, "replica stalled: requests and a health check unanswered");
            }
        });
    }

    /// Records a failed request or probe; an ejection it causes is logged and counted here, the
    /// one place that does so whether a query or the health prober saw the failure.
    pub fn record_failure(&self, why: &str) {
        if let FailureEffect::Ejected(backoff) = self.state.record_failure() {
            tracing::warn!(replica = %self.name, ?backoff, why, "replica ejected after consecutive failures");
            self.ejections.increment(1);
        }
    }
}

/// Whether none of `replicas` may take a request now: each is ejected or stalled (busy ones
/// are up, and say so fast). False for no replicas at all, which is a different failure.
/// Requests then fail at once; the health prober finds out when a replica is back.
pub fn none_live(replicas: &[Arc<Replica>]) -> bool {
    !replicas.is_empty()
        && replicas
            .iter()
            .all(|r| !r.state.is_available() || r.state.is_stalled())
}

/// A shard's membership at one moment; requests index replicas by position in it.
pub type Replicas = Arc<Vec<Arc<Replica>>>;

/// What a membership update did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// Replicas that joined.
    pub added: Vec<String>,
    /// Replicas that left.
    pub removed: Vec<String>,
}

impl MembershipChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The replicas of one shard and what the root has learnt about them.
pub struct ReplicaSet {
    /// The shard.
    pub shard: ShardId,
    replicas: ArcSwap<Vec<Arc<Replica>>>,
    /// Serializes membership updates, so that two cannot lose each other's replicas.
    updating: Mutex<()>,
    /// How replicas that join later are judged.
    policy: ReplicaPolicy,
    window: Mutex<LatencyWindow>,
    /// Hedges the shard may still send.
    pub budget: HedgeBudget,
    /// Its metric handles.
    pub metrics: ShardMetrics,
}

impl ReplicaSet {
    /// A shard's replicas, each given as a name and a client. The set may start empty when
    /// discovery fills it in; a request to an empty shard fails at once as unavailable.
    pub fn new(
        shard: ShardId,
        replicas: Vec<(String, Arc<dyn LeafClient>)>,
        config: &RootConfig,
    ) -> Self {
        let replicas = replicas
            .into_iter()
            .map(|(name, client)| Arc::new(Replica::new(shard, name, client, &config.replica)))
            .collect();
        Self {
            shard,
            replicas: ArcSwap::from_pointee(replicas),
            updating: Mutex::new(()),
            policy: config.replica.clone(),
            window: Mutex::new(LatencyWindow::new(&config.hedge)),
            budget: HedgeBudget::new(&config.hedge),
            metrics: ShardMetrics::new(shard),
        }
    }

    /// The current membership. A request keeps this snapshot from start to end.
    pub fn replicas(&self) -> Replicas {
        self.replicas.load_full()
    }

    /// Makes `members` the membership, in that order, each named by its `AsRef<str>`: replicas
    /// already known keep their state (latency, ejection), new ones get a client from `connect`
    /// (left out if it gives none), the others are dropped. Requests in flight to a dropped
    /// replica finish on their snapshot.
    pub fn set_membership<M: AsRef<str>>(
        &self,
        members: &[M],
        mut connect: impl FnMut(&M) -> Option<Arc<dyn LeafClient>>,
    ) -> MembershipChange {
        let _guard = self.updating.lock();
        let current = self.replicas.load_full();
        let mut change = MembershipChange::default();
        let mut next = Vec::with_capacity(members.len());
        for member in members {
            let name = member.as_ref();
            if let Some(known) = current.iter().find(|r| r.name == name) {
                next.push(Arc::clone(known));
            } else if let Some(client) = connect(member) {
                next.push(Arc::new(Replica::new(
                    self.shard,
                    name.to_string(),
                    client,
                    &self.policy,
                )));
                change.added.push(name.to_string());
            }
        }
        change.removed = current
            .iter()
            .filter(|r| !members.iter().any(|m| m.as_ref() == r.name))
            .map(|r| r.name.clone())
            .collect();
        if !change.is_empty() {
            self.replicas.store(Arc::new(next));
        }
        change
    }

    /// Records the latency of an answered request.
    pub fn record_latency(&self, latency: Duration) {
        self.window.lock().record(latency);
    }

    /// How long a request may be outstanding before it is hedged.
    pub fn hedge_delay(&self) -> Duration {
        self.window.lock().delay()
    }

    /// How many replicas are up (neither ejected nor stalled; a busy one is up, only full for a
    /// moment), setting every replica's condition gauge and the shard's live-replica gauge on
    /// the way.
    pub fn report_live(&self) -> usize {
        let live = self
            .replicas
            .load()
            .iter()
            .filter(|r| matches!(r.report_condition(), Condition::Up | Condition::Busy))
            .count();
        self.metrics.live_replicas.set(live as f64);
        live
    }

    /// Whether at least one replica answered its last request or probe, and not every one has
    /// stalled since.
    pub fn has_reachable_replica(&self) -> bool {
        let replicas = self.replicas.load();
        replicas.iter().any(|r| !r.state.is_failing()) && !none_live(&replicas)
    }
}

/// Every shard's replica set, indexed by shard id.
pub struct Cluster {
    shards: Vec<ReplicaSet>,
    /// The shards' BM25 statistics, summed for searches.
    pub stats: StatsCache,
    /// Queries suspected of killing leaves, refused for a while.
    pub quarantine: Quarantine,
    /// Queries known to have run on each shard without breaking a replica.
    pub known_good: KnownGood,
    /// Searches answered with a shard missing.
    pub partial_responses: metrics::Counter,
    /// Time from a search's arrival to its answer.
    pub search_seconds: metrics::Histogram,
    /// Searches run a second time because a shard had committed since their statistics.
    pub rescored: metrics::Counter,
    /// Second rounds allowed: one per ten searches with the cluster's statistics on average,
    /// twenty in a burst, so that a stream of commits cannot double the cluster's load.
    pub rescore_budget: HedgeBudget,
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
            quarantine: Quarantine::default(),
            known_good: KnownGood::default(),
            shards,
            partial_responses: metrics::counter!("fanout_root_partial_responses_total"),
            search_seconds: metrics::histogram!("fanout_root_search_seconds"),
            rescored: metrics::counter!("fanout_root_rescored_searches_total"),
            rescore_budget: HedgeBudget::with_rate(0.1, 20.0),
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

    /// `num_shards` shards with no replicas yet, for discovery to fill in.
    pub fn empty(num_shards: u32, config: &RootConfig) -> Self {
        Self::new(
            (0..num_shards)
                .map(|shard| ReplicaSet::new(shard, Vec::new(), config))
                .collect(),
        )
    }

    /// Makes `addrs` the membership of `shard`, with lazily connected gRPC clients for new
    /// replicas, and forgets the statistics generations of the replicas that left.
    pub fn set_shard_replicas(
        &self,
        shard: ShardId,
        addrs: &[ReplicaAddr],
        config: &RootConfig,
    ) -> MembershipChange {
        let set = &self.shards[shard as usize];
        let change = set.set_membership(addrs, |addr| {
            match GrpcLeafClient::new(addr, config.connect_timeout) {
                Ok(client) => Some(Arc::new(client) as Arc<dyn LeafClient>),
                Err(e) => {
                    tracing::warn!(shard, replica = %addr, error = %e, "cannot make a client for a discovered replica");
                    None
                }
            }
        });
        if !change.removed.is_empty() {
            self.stats.forget_replicas(shard, &change.removed);
        }
        change
    }

    /// The replica sets, by shard id.
    pub fn shards(&self) -> &[ReplicaSet] {
        &self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{replica_set, FakeLeaf};

    #[tokio::test(start_paused = true)]
    async fn membership_changes_keep_what_was_learnt_of_staying_replicas() {
        let set = replica_set(2);
        let before = set.replicas();
        before[1].state.record_failure();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut connected = Vec::new();
        let change = set.set_membership(&names(&["r1", "r2"]), |name: &String| {
            connected.push(name.clone());
            Some(Arc::new(FakeLeaf::ok(1)) as Arc<dyn LeafClient>)
        });
        assert_eq!(change.added, ["r2"]);
        assert_eq!(change.removed, ["r0"]);
        assert_eq!(connected, ["r2"], "only new replicas get a client");
        let after = set.replicas();
        assert_eq!(
            after.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        assert!(Arc::ptr_eq(&before[1], &after[0]), "r1 is the same replica");
        assert!(after[0].state.is_failing(), "and keeps its failure");
        assert_eq!(before.len(), 2, "a snapshot taken before is unchanged");

        let same = set.set_membership(&names(&["r1", "r2"]), |_: &String| unreachable!());
        assert!(same.is_empty());
        let failed = set.set_membership(&names(&["r1", "r2", "bad"]), |_: &String| None);
        assert!(failed.is_empty(), "a replica without a client is not added");
        assert_eq!(set.replicas().len(), 2);
    }
}
