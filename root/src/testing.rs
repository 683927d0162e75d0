//! In-process fake replicas for the scatter tests: answer after a delay, fail, or stall, and
//! count how their requests ended.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use fanout_proto::pb;
use futures::future::BoxFuture;

use crate::client::{LeafClient, ShardError};

/// What a fake replica does with a request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answers after this long.
    Answer(Duration),
    /// Fails at once.
    Fail(ShardError),
    /// Never answers (a paused or wedged process).
    Stall,
    /// Answers at once with a hit whose stored fields are not JSON (a broken leaf).
    Garbled,
}

/// A fake replica whose behaviour can change while a test runs.
pub struct FakeLeaf {
    behaviour: Mutex<Behaviour>,
    pub calls: AtomicU32,
    pub answered: AtomicU32,
    pub cancelled: Arc<AtomicU32>,
}

impl FakeLeaf {
    pub fn with(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            behaviour: Mutex::new(behaviour),
            calls: AtomicU32::new(0),
            answered: AtomicU32::new(0),
            cancelled: Arc::new(AtomicU32::new(0)),
        })
    }

    pub fn ok(delay_ms: u64) -> Arc<Self> {
        Self::with(Behaviour::Answer(Duration::from_millis(delay_ms)))
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock() = behaviour;
    }

    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn cancelled(&self) -> u32 {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Counts a request as cancelled if it is dropped before it finished.
struct CancelGuard {
    cancelled: Arc<AtomicU32>,
    done: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl LeafClient for Arc<FakeLeaf> {
    fn search(
        &self,
        _: pb::SearchRequest,
        _: Duration,
    ) -> BoxFuture<'static, Result<pb::SearchResponse, ShardError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let behaviour = self.behaviour.lock().clone();
        let this = Arc::clone(self);
        let guard = CancelGuard {
            cancelled: Arc::clone(&self.cancelled),
            done: false,
        };
        Box::pin(async move {
            // Moved in whole (not just its field), so it lives as long as the request does.
            let mut guard = guard;
            let result = match behaviour {
                Behaviour::Answer(delay) => {
                    tokio::time::sleep(delay).await;
                    this.answered.fetch_add(1, Ordering::SeqCst);
                    Ok(pb::SearchResponse {
                        total_hits: 1,
                        ..Default::default()
                    })
                }
                Behaviour::Fail(e) => Err(e),
                Behaviour::Stall => std::future::pending().await,
                Behaviour::Garbled => Ok(pb::SearchResponse {
                    total_hits: 1,
                    hits: vec![pb::Hit {
                        id: "a".into(),
                        score: 1.0,
                        fields_json: "{\"title\": ".into(),
                    }],
                    ..Default::default()
                }),
            };
            guard.done = true;
            result
        })
    }

    fn stats(
        &self,
        _: pb::StatsRequest,
        _: Duration,
    ) -> BoxFuture<'static, Result<pb::StatsResponse, ShardError>> {
        let behaviour = self.behaviour.lock().clone();
        Box::pin(async move {
            match behaviour {
                Behaviour::Answer(delay) => {
                    tokio::time::sleep(delay).await;
                    Ok(pb::StatsResponse::default())
                }
                Behaviour::Fail(e) => Err(e),
                Behaviour::Stall => std::future::pending().await,
                Behaviour::Garbled => Ok(pb::StatsResponse::default()),
            }
        })
    }

    fn check_health(&self, _: Duration) -> BoxFuture<'static, bool> {
        let healthy = matches!(*self.behaviour.lock(), Behaviour::Answer(_));
        Box::pin(async move { healthy })
    }
}

/// A replica set for shard 0 of `n` fake replicas `r0`, `r1`, ... that answer in 1 ms.
pub fn replica_set(n: usize) -> crate::cluster::ReplicaSet {
    let replicas = (0..n)
        .map(|i| {
            (
                format!("r{i}"),
                Arc::new(FakeLeaf::ok(1)) as Arc<dyn LeafClient>,
            )
        })
        .collect();
    crate::cluster::ReplicaSet::new(0, replicas, &crate::config::RootConfig::default())
}
