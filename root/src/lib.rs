//! A fanout root: the stateless HTTP frontend. For each query it scatters to every shard,
//! picks a replica of each, and gathers the partial top-k into one page.
//!
//! - [`api`]: the `/v1` HTTP routes.
//! - [`search`]: one search from parameters to response: validate, scatter, merge, report.
//! - [`scatter`]: fan-out to every shard: replica choice, hedges, retries, the deadline.
//! - [`choose`]: power of two choices over replicas' load scores.
//! - [`hedge`]: the hedge delay (a recent latency percentile) and the hedge budget.
//! - [`replica`]: one replica's in-flight count, peak-EWMA latency and ejection state.
//! - [`stats`]: cluster-wide BM25 statistics, cached per shard and term, so shards score as one index.
//! - [`quarantine`]: queries suspected of killing leaves, refused for a while without a fan-out.
//! - [`merge`]: the pure merge of partial top-k lists and the documented rank order.
//! - [`cluster`]: each shard's replica set and what the root knows of each replica.
//! - [`client`]: the [`client::LeafClient`] trait, its gRPC implementation, the per-shard error.
//! - [`discovery`]: each shard's replicas from DNS, re-resolved on an interval.
//! - [`health`]: the background health prober and readiness.
//! - [`config`]: the root's configuration and its defaults.
//! - [`error`]: the HTTP boundary's error type.
//! - [`server`]: `serve(listener, state, shutdown)`.
//! - [`cli`]: the `fanout-root` command line.

pub mod api;
pub mod choose;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod discovery;
pub mod error;
pub mod health;
pub mod hedge;
pub mod http_limits;
pub mod merge;
pub mod quarantine;
pub mod replica;
pub mod scatter;
pub mod search;
pub mod server;
pub mod stats;
#[cfg(test)]
mod testing;

pub use api::RootState;
pub use client::{LeafClient, ShardError};
pub use cluster::Cluster;
pub use config::RootConfig;
