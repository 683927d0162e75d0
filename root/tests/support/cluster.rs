//! A real cluster in-process: 2 shards x 2 replicas of tantivy leaves on port 0, filled through
//! the indexer's code path, and a root serving HTTP in front of them.

use std::sync::Arc;

use fanout_indexer::{index_inputs, IndexerOptions, Input, RejectLog};
use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::{ReplicaAddr, ShardSpec, Topology};
use fanout_root::RootConfig;
use serde_json::Value;

use super::start_root;

const WORDS: [&str; 8] = [
    "apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel",
];

/// Document `i`: its title holds the words whose bit is set in `i`, so which documents match a
/// word is known without a search engine.
pub fn corpus(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let words: Vec<&str> = WORDS
                .iter()
                .enumerate()
                .filter(|(b, _)| i >> b & 1 == 1)
                .map(|(_, w)| *w)
                .collect();
            (format!("doc-{i:04}"), words.join(" "))
        })
        .collect()
}

pub struct TestCluster {
    pub leaves: Vec<Vec<Option<LeafHandle>>>,
    pub topology: Topology,
    pub http: String,
    pub root: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestCluster {
    /// 2 shards x 2 replicas holding `docs`, behind a root with `config`.
    pub async fn start(docs: &[(String, String)], config: RootConfig) -> Self {
        Self::start_with(docs, config, 2).await
    }

    /// 2 shards x `replicas` replicas holding `docs`, behind a root with `config`.
    pub async fn start_with(docs: &[(String, String)], config: RootConfig, per_shard: u32) -> Self {
        let mut leaves = Vec::new();
        let mut specs = Vec::new();
        for shard in 0..2u32 {
            let mut replicas = Vec::new();
            let mut addrs = Vec::new();
            for replica in 0..per_shard {
                let index =
                    ShardIndex::in_ram(shard, SchemaConfig::default(), &WriterOptions::default())
                        .unwrap();
                let leaf = LeafService::new(index, format!("s{shard}r{replica}"));
                let handle = LeafHandle::spawn("127.0.0.1:0", leaf).await.unwrap();
                addrs.push(ReplicaAddr::parse(&handle.addr.to_string()).unwrap());
                replicas.push(Some(handle));
            }
            leaves.push(replicas);
            specs.push(ShardSpec {
                id: shard,
                replicas: addrs,
            });
        }
        let topology = Topology::new(specs).unwrap();

        let ndjson: String = docs
            .iter()
            .map(|(id, title)| {
                format!(
                    "{}\n",
                    serde_json::json!({"id": id, "title": title, "body": "fruit"})
                )
            })
            .collect();
        let summary = index_inputs(
            &topology,
            vec![Input::from_bytes("docs.ndjson", ndjson.into_bytes())],
            &IndexerOptions {
                batch_docs: 50,
                ..IndexerOptions::default()
            },
            Arc::new(RejectLog::new(None)),
            Arc::default(),
        )
        .await
        .unwrap();
        assert!(summary.is_complete(), "{summary:?}");
        assert_eq!(summary.docs_indexed, docs.len() as u64);

        let (http, root) = start_root(&topology, config).await;
        Self {
            leaves,
            topology,
            http,
            root,
        }
    }

    pub async fn stop_replica(&mut self, shard: usize, replica: usize) {
        if let Some(handle) = self.leaves[shard][replica].take() {
            handle.shutdown().await;
        }
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path_and_query}", self.http))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// A root over `topology`, serving HTTP on port 0.
impl Drop for TestCluster {
    fn drop(&mut self) {
        self.root.abort();
    }
}

pub fn hit_ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}
