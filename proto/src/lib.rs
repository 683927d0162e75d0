//! The `fanout.v1` contract, shared by every fanout component and nothing else: the wire,
//! the shard function, the topology, the query limits, and how a process is told to stop.
//!
//! Each module uses only modules listed before it (checked by `loadtest/tests/layering.rs`):
//!
//! - [`args`]: parsers of command-line values every binary shares.
//! - [`ring`]: the shard function: which shard a document id belongs to.
//! - [`topology`]: the cluster topology file: shards and the addresses of their replicas.
//! - [`query`]: the limits every query must keep, and the one safe way to parse it.
//! - [`process`]: how every fanout process is told to stop.
//! - [`wire`]: what travels with every call: the message size limit, the deadline, and which
//!   failures are worth another attempt.
//! - [`pb`]: the gRPC leaf service and its messages, generated from `proto/fanout/v1/leaf.proto`.

pub mod args;
pub mod process;
pub mod query;
pub mod ring;
pub mod topology;
pub mod wire;

/// Generated code for package `fanout.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("fanout.v1");
}

pub use ring::{shard_for_id, ShardId, MAX_ID_BYTES};
pub use topology::{ReplicaAddr, ShardSpec, Topology, TopologyError};

/// The gRPC service name leaves report to the health service once their index is open.
pub const LEAF_SERVICE_NAME: &str = "fanout.v1.Leaf";
pub use wire::MAX_MESSAGE_BYTES;
