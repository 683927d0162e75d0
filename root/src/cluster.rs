//! The root's view of the cluster: each shard's replica set, with a client and the last known
//! health of every replica.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use fanout_proto::{ShardId, Topology};

use crate::client::{GrpcLeafClient, LeafClient};
use crate::config::RootConfig;

/// One replica of a shard.
pub struct Replica {
    /// The replica's address, used as its name in responses and logs.
    pub name: String,
    pub client: Arc<dyn LeafClient>,
    healthy: AtomicBool,
}

impl Replica {
    /// A replica, assumed healthy until a probe or a request says otherwise.
    pub fn new(name: impl Into<String>, client: Arc<dyn LeafClient>) -> Self {
        Self {
            name: name.into(),
            client,
            healthy: AtomicBool::new(true),
        }
    }

    /// Whether the last probe or request found the replica serving.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records what a probe or a request found.
    pub fn set_healthy(&self, healthy: bool) {
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            tracing::info!(replica = %self.name, healthy, "replica health changed");
        }
    }
}

/// The replicas of one shard.
pub struct ReplicaSet {
    pub shard: ShardId,
    pub replicas: Vec<Replica>,
    next: AtomicUsize,
}

impl ReplicaSet {
    /// A shard's replicas; `replicas` must not be empty.
    pub fn new(shard: ShardId, replicas: Vec<Replica>) -> Self {
        assert!(
            !replicas.is_empty(),
            "shard {shard} needs at least one replica"
        );
        Self {
            shard,
            replicas,
            next: AtomicUsize::new(0),
        }
    }

    /// The order in which to try replicas for one request: round robin over the healthy ones,
    /// then the unhealthy ones as a last resort (their state may be stale).
    pub fn attempt_order(&self) -> Vec<usize> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let rotated = (0..n).map(|i| (start + i) % n);
        let (mut healthy, unhealthy): (Vec<usize>, Vec<usize>) =
            rotated.partition(|&i| self.replicas[i].is_healthy());
        healthy.extend(unhealthy);
        healthy
    }

    /// Whether at least one replica is known to be serving.
    pub fn has_healthy_replica(&self) -> bool {
        self.replicas.iter().any(Replica::is_healthy)
    }
}

/// Every shard's replica set, indexed by shard id.
pub struct Cluster {
    shards: Vec<ReplicaSet>,
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
        Self { shards }
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
                let client = GrpcLeafClient::new(addr, config.connect_timeout)?;
                replicas.push(Replica::new(addr.to_string(), Arc::new(client)));
            }
            shards.push(ReplicaSet::new(spec.id, replicas));
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
    use std::time::Duration;

    struct Nothing;
    impl LeafClient for Nothing {
        fn search(
            &self,
            _: fanout_proto::pb::SearchRequest,
            _: Duration,
        ) -> futures::future::BoxFuture<
            'static,
            Result<fanout_proto::pb::SearchResponse, crate::ShardError>,
        > {
            unreachable!("not searched in these tests")
        }
        fn check_health(&self, _: Duration) -> futures::future::BoxFuture<'static, bool> {
            Box::pin(async { true })
        }
    }

    fn set(n: usize) -> ReplicaSet {
        let replicas = (0..n)
            .map(|i| Replica::new(format!("r{i}"), Arc::new(Nothing)))
            .collect();
        ReplicaSet::new(0, replicas)
    }

    #[test]
    fn round_robin_spreads_first_attempts() {
        let set = set(3);
        let firsts: Vec<usize> = (0..6).map(|_| set.attempt_order()[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(set.attempt_order().len(), 3);
    }

    #[test]
    fn unhealthy_replicas_go_last() {
        let set = set(3);
        set.replicas[0].set_healthy(false);
        for _ in 0..6 {
            let order = set.attempt_order();
            assert_eq!(order[2], 0, "{order:?}");
        }
        assert!(set.has_healthy_replica());
        set.replicas[1].set_healthy(false);
        set.replicas[2].set_healthy(false);
        assert!(!set.has_healthy_replica());
        assert_eq!(set.attempt_order().len(), 3, "still tried as a last resort");
    }
}
