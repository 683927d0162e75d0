//! The `fanout.v1` contract, shared by every fanout component and nothing else.
//!
//! - [`pb`]: the gRPC leaf service and its messages, generated from `proto/fanout/v1/leaf.proto`.
//! - [`ring`]: the shard function: which shard a document id belongs to.
//! - [`topology`]: the cluster topology file: shards and the addresses of their replicas.

pub mod ring;
pub mod topology;

/// Generated code for package `fanout.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("fanout.v1");
}

pub use ring::{shard_for_id, ShardId};
pub use topology::{ReplicaAddr, ShardSpec, Topology, TopologyError};

/// The gRPC service name leaves report to the health service once their index is open.
pub const LEAF_SERVICE_NAME: &str = "fanout.v1.Leaf";
