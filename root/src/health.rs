//! Replica health: a background prober asks every replica's gRPC health service on a fixed
//! interval, so that an ejected replica is re-admitted once it is back even if no query tries
//! it, and readiness is "every shard has a replica whose last probe or request succeeded".

use std::sync::Arc;

use fanout_proto::ShardId;

use crate::cluster::Cluster;
use crate::config::RootConfig;

/// Probes every replica once, concurrently, and records the answers.
pub async fn probe_all(cluster: &Cluster, config: &RootConfig) {
    let snapshots: Vec<_> = cluster.shards().iter().map(|set| set.replicas()).collect();
    let probes = snapshots
        .iter()
        .flat_map(|s| s.iter())
        .map(|replica| async move {
            if replica.client.check_health(config.probe_timeout).await {
                replica.state.record_success();
            } else {
                replica.record_failure("health probe failed");
            }
        });
    futures::future::join_all(probes).await;
}

/// Probes forever, every `config.probe_interval`. Abort the task to stop it.
pub async fn run_prober(cluster: Arc<Cluster>, config: RootConfig) {
    let mut tick = tokio::time::interval(config.probe_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        probe_all(&cluster, &config).await;
        degraded_shards(&cluster);
    }
}

/// A shard with fewer live replicas than members.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Degraded {
    /// The shard.
    pub shard: ShardId,
    /// Replicas that may take a request now.
    pub live: usize,
    /// Replicas it has.
    pub replicas: usize,
}

/// The shards with fewer live replicas than they have, updating the replica and shard
/// health gauges on the way.
pub fn degraded_shards(cluster: &Cluster) -> Vec<Degraded> {
    cluster
        .shards()
        .iter()
        .filter_map(|set| {
            let live = set.report_live();
            let replicas = set.replicas().len();
            (live < replicas).then_some(Degraded {
                shard: set.shard,
                live,
                replicas,
            })
        })
        .collect()
}

/// The shards with no reachable replica; empty means the root is ready.
pub fn unavailable_shards(cluster: &Cluster) -> Vec<ShardId> {
    cluster
        .shards()
        .iter()
        .filter(|set| !set.has_reachable_replica())
        .map(|set| set.shard)
        .collect()
}
