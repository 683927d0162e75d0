//! The root's per-shard metric handles, and the kinds of leaf request they count.

use fanout_proto::ShardId;
use serde::Serialize;

/// A shard's metric handles, registered once when the cluster is built (after the recorder is
/// installed), so that the query path neither formats labels nor looks up the registry.
pub struct ShardMetrics {
    /// Leaf requests sent, by [`AttemptKind`].
    pub requests: [metrics::Counter; 3],
    /// Retries sent.
    pub retries: metrics::Counter,
    /// Hedges sent.
    pub hedges_sent: metrics::Counter,
    /// Hedges whose answer was used.
    pub hedges_won: metrics::Counter,
    /// Hedges not sent because the budget was spent.
    pub hedges_skipped_budget: metrics::Counter,
    /// Time for the shard to answer.
    pub latency: metrics::Histogram,
    /// Replicas that may take a request now, as of the last look.
    pub live_replicas: metrics::Gauge,
}

impl ShardMetrics {
    /// The handles of shard `shard`.
    pub fn new(shard: ShardId) -> Self {
        let label = shard.to_string();
        let requests = [AttemptKind::Primary, AttemptKind::Hedge, AttemptKind::Retry].map(|kind| {
            metrics::counter!("fanout_root_leaf_requests_total", "shard" => label.clone(), "kind" => kind.as_str())
        });
        let hedges = |outcome: &'static str| metrics::counter!("fanout_root_hedges_total", "shard" => label.clone(), "outcome" => outcome);
        Self {
            requests,
            retries: metrics::counter!("fanout_root_retries_total", "shard" => label.clone()),
            hedges_sent: hedges("sent"),
            hedges_won: hedges("won"),
            hedges_skipped_budget: hedges("skipped_budget"),
            latency: metrics::histogram!("fanout_root_shard_seconds", "shard" => label.clone()),
            live_replicas: metrics::gauge!("fanout_root_shard_live_replicas", "shard" => label.clone()),
        }
    }
}

/// Why an attempt was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptKind {
    /// The first request.
    Primary,
    /// A second request, sent when the first was slow.
    Hedge,
    /// A request sent after one failed.
    Retry,
}

impl AttemptKind {
    /// Its name, as in metrics and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptKind::Primary => "primary",
            AttemptKind::Hedge => "hedge",
            AttemptKind::Retry => "retry",
        }
    }
}
