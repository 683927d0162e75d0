//! Scattering: one search sent to every shard at once, each shard answered by one of its
//! replicas, and nothing waited for past the deadline.
//!
//! Per shard, replicas are tried in [`ReplicaSet::attempt_order`]; a retryable failure (refused,
//! unavailable) moves on to the next replica at once while the deadline allows, a bad request
//! does not (every replica would refuse it).

use fanout_proto::{pb, ShardId};
use tokio::time::Instant;

use crate::client::ShardError;
use crate::cluster::{Cluster, ReplicaSet};

/// What one shard contributed to a search.
#[derive(Debug)]
pub struct ShardOutcome {
    pub shard: ShardId,
    /// The answering replica's name and its response, or why no replica answered.
    pub result: Result<(String, pb::SearchResponse), ShardError>,
    /// Replicas asked, including the one that answered.
    pub attempts: u32,
}

/// Sends `request` to every shard and gathers what arrives by `deadline`, in shard order.
pub async fn scatter(
    cluster: &Cluster,
    request: &pb::SearchRequest,
    deadline: Instant,
) -> Vec<ShardOutcome> {
    let calls = cluster
        .shards()
        .iter()
        .map(|set| search_shard(set, request.clone(), deadline));
    futures::future::join_all(calls).await
}

async fn search_shard(
    set: &ReplicaSet,
    request: pb::SearchRequest,
    deadline: Instant,
) -> ShardOutcome {
    let mut attempts = 0;
    let mut last_error = ShardError::Timeout;
    for index in set.attempt_order() {
        let now = Instant::now();
        if now >= deadline {
            last_error = ShardError::Timeout;
            break;
        }
        let replica = &set.replicas[index];
        attempts += 1;
        let call = replica.client.search(request.clone(), deadline - now);
        // The client honours its timeout, but the deadline must hold even if a client does not.
        let result = match tokio::time::timeout_at(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(ShardError::Timeout),
        };
        match result {
            Ok(response) => {
                replica.set_healthy(true);
                return ShardOutcome {
                    shard: set.shard,
                    result: Ok((replica.name.clone(), response)),
                    attempts,
                };
            }
            Err(e) => {
                tracing::debug!(shard = set.shard, replica = %replica.name, error = %e, "attempt failed");
                if matches!(e, ShardError::Unavailable(_)) {
                    replica.set_healthy(false);
                }
                let retry = e.is_retryable();
                last_error = e;
                if !retry {
                    break;
                }
            }
        }
    }
    ShardOutcome {
        shard: set.shard,
        result: Err(last_error),
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::LeafClient;
    use crate::cluster::Replica;
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A fake replica: answers after `delay`, or fails with `error`.
    struct Fake {
        delay: Duration,
        error: Option<ShardError>,
        calls: AtomicU32,
    }

    impl Fake {
        fn ok(delay_ms: u64) -> Arc<Self> {
            Arc::new(Self {
                delay: Duration::from_millis(delay_ms),
                error: None,
                calls: AtomicU32::new(0),
            })
        }
        fn failing(error: ShardError) -> Arc<Self> {
            Arc::new(Self {
                delay: Duration::ZERO,
                error: Some(error),
                calls: AtomicU32::new(0),
            })
        }
    }

    impl LeafClient for Fake {
        fn search(
            &self,
            _: pb::SearchRequest,
            _: Duration,
        ) -> BoxFuture<'static, Result<pb::SearchResponse, ShardError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let (delay, error) = (self.delay, self.error.clone());
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                match error {
                    Some(e) => Err(e),
                    None => Ok(pb::SearchResponse {
                        total_hits: 1,
                        ..Default::default()
                    }),
                }
            })
        }
        fn check_health(&self, _: Duration) -> BoxFuture<'static, bool> {
            Box::pin(async { true })
        }
    }

    fn cluster(shards: Vec<Vec<Arc<Fake>>>) -> Cluster {
        Cluster::new(
            shards
                .into_iter()
                .enumerate()
                .map(|(s, fakes)| {
                    let replicas = fakes
                        .into_iter()
                        .enumerate()
                        .map(|(r, f)| Replica::new(format!("s{s}r{r}"), f as Arc<dyn LeafClient>))
                        .collect();
                    ReplicaSet::new(s as u32, replicas)
                })
                .collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_replica_fails_over_to_the_next() {
        let dead = Fake::failing(ShardError::Unavailable("connection refused".into()));
        let live = Fake::ok(5);
        let cluster = cluster(vec![vec![dead.clone(), live.clone()]]);
        let deadline = Instant::now() + Duration::from_secs(1);
        let out = scatter(&cluster, &pb::SearchRequest::default(), deadline).await;
        let (replica, _) = out[0].result.as_ref().unwrap();
        assert_eq!(replica, "s0r1");
        assert_eq!(out[0].attempts, 2);
        assert!(!cluster.shards()[0].replicas[0].is_healthy());
        // Now the dead replica goes last, so the next request needs one attempt.
        let out = scatter(&cluster, &pb::SearchRequest::default(), deadline).await;
        assert_eq!(out[0].attempts, 1);
        assert_eq!(dead.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_shard_is_reported_and_does_not_hold_up_the_others() {
        let cluster = cluster(vec![
            vec![Fake::ok(3)],
            vec![
                Fake::failing(ShardError::Unavailable("refused".into())),
                Fake::ok(10_000),
            ],
        ]);
        let start = Instant::now();
        let out = scatter(
            &cluster,
            &pb::SearchRequest::default(),
            start + Duration::from_millis(200),
        )
        .await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(200),
            "answered at the deadline, not later"
        );
        assert!(out[0].result.is_ok());
        assert_eq!(out[1].result.as_ref().unwrap_err(), &ShardError::Timeout);
        assert_eq!(out[1].attempts, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_requests_are_not_retried() {
        let first = Fake::failing(ShardError::InvalidArgument("bad query".into()));
        let second = Fake::ok(1);
        let cluster = cluster(vec![vec![first, second.clone()]]);
        let out = scatter(
            &cluster,
            &pb::SearchRequest::default(),
            Instant::now() + Duration::from_secs(1),
        )
        .await;
        assert!(matches!(out[0].result, Err(ShardError::InvalidArgument(_))));
        assert_eq!(second.calls.load(Ordering::SeqCst), 0);
    }
}
