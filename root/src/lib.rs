//! A fanout root: the stateless HTTP frontend. For each query it scatters to every shard,
//! picks a replica of each, and gathers the partial top-k into one page.
//!
//! Modules in four layers; each module uses only modules listed before it (checked by
//! `loadtest/tests/layering.rs`):
//!
//! 1. Values and policies:
//!    - [`hedge`]: the hedge delay (a recent latency percentile) and the hedge budget;
//!    - [`replica`]: one replica's in-flight count, peak-EWMA latency and ejection state;
//!    - [`admission`]: the adaptive concurrency limit, its short queue and fast refusals;
//!    - [`config`]: the root's configuration and its defaults;
//!    - [`cursor`]: the `search_after` cursor, a hit's place in the total order;
//!    - [`merge`]: the pure merge of partial top-k lists and the documented rank order;
//!    - [`quarantine`]: queries suspected of killing leaves, refused for a while;
//!    - [`client`]: the [`client::LeafClient`] trait, its gRPC implementation, the per-shard
//!      error;
//!    - [`metrics`]: per-shard metric handles;
//!    - [`error`]: the HTTP boundary's error type;
//!    - [`http_limits`]: what the HTTP server holds connections and requests to.
//! 2. State:
//!    - [`stats_cache`]: the BM25 statistics learnt from each shard, summed for a query;
//!    - [`cluster`]: each shard's replica set and what the root knows of each replica;
//!    - [`choose`]: replica choice: eligibility, load score, power of two choices.
//! 3. Mechanisms:
//!    - [`scatter`]: fan-out to every shard: hedges, retries, the deadline;
//!    - [`stats`]: fetching cluster-wide BM25 statistics for a query;
//!    - [`gather`]: one round of a search, and a second when a commit made its statistics stale;
//!    - [`health`]: the background health prober and readiness;
//!    - [`discovery`]: each shard's replicas from DNS, re-resolved on an interval.
//! 4. The API:
//!    - [`search`]: one search from parameters to response: validate, scatter, merge, report;
//!    - [`api`]: the `/v1` HTTP routes;
//!    - [`server`]: `serve(listener, state, shutdown)`;
//!    - [`cli`]: the `fanout-root` command line.

pub mod admission;
pub mod api;
pub mod choose;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod cursor;
pub mod discovery;
pub mod error;
pub mod gather;
pub mod health;
pub mod hedge;
pub mod http_limits;
pub mod merge;
pub mod metrics;
pub mod quarantine;
pub mod replica;
pub mod scatter;
pub mod search;
pub mod server;
pub mod stats;
pub mod stats_cache;
#[cfg(test)]
mod testing;

pub use api::RootState;
pub use client::{LeafClient, ShardError};
pub use cluster::Cluster;
pub use config::RootConfig;
