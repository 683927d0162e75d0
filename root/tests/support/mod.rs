//! What the root's integration tests share: a root served in-process on port 0, and an
//! empty leaf to put behind it.

// Each test binary includes this module and uses part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod demo;

use std::sync::Arc;

use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::Topology;
use fanout_root::{Cluster, RootConfig, RootState};

/// Serves a root over `topology` on a free port; returns its base URL and its task.
pub async fn start_root(
    topology: &Topology,
    config: RootConfig,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let cluster = Arc::new(Cluster::connect(topology, &config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(RootState::new(cluster, config));
    (
        http,
        tokio::spawn(fanout_root::server::serve(
            listener,
            state,
            std::future::pending(),
        )),
    )
}

/// Serves each index (shard `i` is the `i`th) from one leaf on a free port; returns the leaves
/// and their topology, one replica per shard.
pub async fn serve_shards(indexes: Vec<ShardIndex>) -> (Vec<LeafHandle>, Topology) {
    let mut leaves = Vec::new();
    let mut specs = Vec::new();
    for (shard, index) in indexes.into_iter().enumerate() {
        let leaf = LeafHandle::spawn("127.0.0.1:0", LeafService::new(index, format!("s{shard}")))
            .await
            .unwrap();
        specs.push(fanout_proto::ShardSpec {
            id: shard as u32,
            replicas: vec![fanout_proto::ReplicaAddr::parse(&leaf.addr.to_string()).unwrap()],
        });
        leaves.push(leaf);
    }
    (leaves, Topology::new(specs).unwrap())
}

/// One empty in-RAM leaf serving shard 0 on a free port, and the topology of it alone.
pub async fn empty_leaf() -> (LeafHandle, Topology) {
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let leaf = LeafHandle::spawn("127.0.0.1:0", LeafService::new(index, "only".to_string()))
        .await
        .unwrap();
    let topology = Topology::from_specs(&[format!("0={}", leaf.addr)]).unwrap();
    (leaf, topology)
}

/// GETs `url`: the status, the `Retry-After` header if any, and the JSON body.
pub async fn get(url: &str) -> (u16, Option<String>, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, response.json().await.unwrap())
}
