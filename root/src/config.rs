//! The root's configuration: a plain struct with documented defaults. Nothing here reads the
//! environment; the command line fills it in.

use std::time::Duration;

use fanout_proto::query::QueryLimits;
use serde::{Deserialize, Serialize};

use crate::admission::AdmissionPolicy;
use crate::hedge::HedgePolicy;
use crate::replica::ReplicaPolicy;

/// How a root serves searches.
#[derive(Clone, Debug)]
pub struct RootConfig {
    /// Deadline of a search that names none. Default 2 s.
    pub default_timeout: Duration,
    /// Longest deadline a search may ask for. Default 30 s.
    pub max_timeout: Duration,
    /// Largest `size` of a page. Default 1,000.
    pub max_size: usize,
    /// Largest `from + size`: every shard returns that many hits. Default 10,000.
    pub max_window: usize,
    /// What a query may ask (size, nesting, terms, wildcards), checked before any fan-out.
    pub query: QueryLimits,
    /// How long connecting to a replica may take before it counts as down. Default 500 ms.
    pub connect_timeout: Duration,
    /// How often replicas' gRPC health is probed. Default 1 s.
    pub probe_interval: Duration,
    /// How long a health probe waits. Default 500 ms.
    pub probe_timeout: Duration,
    /// When to hedge and how much.
    pub hedge: HedgePolicy,
    /// How replicas' latency is tracked and when a failing replica is ejected.
    pub replica: ReplicaPolicy,
    /// How many searches run at once, and what becomes of the rest.
    pub admission: AdmissionPolicy,
    /// Which BM25 statistics searches score with unless they say. Default: the cluster's.
    pub stats: StatsMode,
    /// How long the root keeps serving after it was told to stop, with readiness failing, so
    /// that load balancers stop sending first. Default 0.
    pub shutdown_delay: Duration,
    /// How long a client may take to send a request's head, counted from when the connection
    /// opened or the previous response was written: the header-read and keep-alive idle
    /// timeout. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body. Default 10 s.
    pub body_read_timeout: Duration,
    /// How long writing a response may make no progress (a client that does not read) before
    /// the connection is closed. Default 10 s.
    pub write_timeout: Duration,
    /// Most connections served at once; past it the root stops accepting until one closes,
    /// which bounds the memory clients can hold. Default 1,024.
    pub max_connections: usize,
}

impl Default for RootConfig {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(2),
            max_timeout: Duration::from_secs(30),
            max_size: 1_000,
            max_window: 10_000,
            query: QueryLimits::default(),
            connect_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            hedge: HedgePolicy::default(),
            replica: ReplicaPolicy::default(),
            admission: AdmissionPolicy::default(),
            stats: StatsMode::Global,
            shutdown_delay: Duration::ZERO,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 1_024,
        }
    }
}

/// Which statistics a search scored with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StatsMode {
    /// The cluster's, summed over shards: the scores of one index holding every document.
    Global,
    /// Each shard's own (cheaper when cold, but a document's score depends on its shard).
    Shard,
}
