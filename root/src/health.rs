//! Replica health: a background prober asks every replica's gRPC health service on a fixed
//! interval, and readiness is "every shard has a replica that answered".

use std::sync::Arc;

use fanout_proto::ShardId;

use crate::cluster::Cluster;
use crate::config::RootConfig;

/// Probes every replica once, concurrently, and records the answers.
pub async fn probe_all(cluster: &Cluster, config: &RootConfig) {
    let probes = cluster
        .shards()
        .iter()
        .flat_map(|set| set.replicas.iter())
        .map(|replica| async move {
            let healthy = replica.client.check_health(config.probe_timeout).await;
            replica.set_healthy(healthy);
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
    }
}

/// The shards with no healthy replica; empty means the root is ready.
pub fn unavailable_shards(cluster: &Cluster) -> Vec<ShardId> {
    cluster
        .shards()
        .iter()
        .filter(|set| !set.has_healthy_replica())
        .map(|set| set.shard)
        .collect()
}
