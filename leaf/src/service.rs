//! The leaf service as a plain async API over a [`ShardIndex`], apart from gRPC.
//!
//! Tantivy work is CPU- and disk-bound, so every call runs on the blocking pool; the async
//! runtime only moves bytes.

use std::sync::Arc;

use fanout_proto::ShardId;

use crate::error::LeafError;
use crate::index::{BatchOutcome, LeafHits, ShardIndex};

/// One replica of one shard, ready to serve.
#[derive(Clone)]
pub struct LeafService {
    index: Arc<ShardIndex>,
    replica: String,
}

/// What a leaf says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafInfo {
    pub shard: ShardId,
    pub replica: String,
    pub num_docs: u64,
    pub generation: u64,
    pub id_field: String,
    pub default_fields: Vec<String>,
}

impl LeafService {
    /// Serves `index` under the replica name `replica` (used in responses and logs).
    pub fn new(index: ShardIndex, replica: impl Into<String>) -> Self {
        Self {
            index: Arc::new(index),
            replica: replica.into(),
        }
    }

    /// The replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The shard served.
    pub fn shard(&self) -> ShardId {
        self.index.shard()
    }

    /// Runs a query on the blocking pool.
    pub async fn search(
        &self,
        query: String,
        from: usize,
        size: usize,
    ) -> Result<LeafHits, LeafError> {
        self.blocking(move |index| index.search(&query, from, size))
            .await
    }

    /// Indexes a batch on the blocking pool.
    pub async fn index(
        &self,
        shard: ShardId,
        num_shards: u32,
        docs: Vec<String>,
    ) -> Result<BatchOutcome, LeafError> {
        self.blocking(move |index| index.index_batch(shard, num_shards, &docs))
            .await
    }

    /// Commits on the blocking pool; returns the new generation and document count.
    pub async fn commit(&self) -> Result<(u64, u64), LeafError> {
        self.blocking(|index| Ok((index.commit()?, index.num_docs())))
            .await
    }

    /// The shard, replica, size and generation.
    pub fn info(&self) -> LeafInfo {
        let config = self.index.schema_config();
        LeafInfo {
            shard: self.index.shard(),
            replica: self.replica.clone(),
            num_docs: self.index.num_docs(),
            generation: self.index.generation(),
            id_field: config.id_field.clone(),
            default_fields: config.default_fields.clone(),
        }
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, LeafError>
    where
        T: Send + 'static,
        F: FnOnce(&ShardIndex) -> Result<T, LeafError> + Send + 'static,
    {
        let index = Arc::clone(&self.index);
        tokio::task::spawn_blocking(move || work(&index))
            .await
            .map_err(|e| LeafError::Internal(format!("leaf worker failed: {e}")))?
    }
}
