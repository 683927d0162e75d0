//! How an indexing run batches, limits, retries, and what it does with each document.

use std::time::Duration;

/// What a run does with each input line's document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Add the document, replacing any with the same id.
    #[default]
    Upsert,
    /// Delete the document with the line's id; the rest of the line is ignored.
    Delete,
}

/// How a run batches, limits and retries.
#[derive(Clone, Debug)]
pub struct IndexerOptions {
    /// Upsert the documents, or delete them by id.
    pub mode: WriteMode,
    /// The documents' id field.
    pub id_field: String,
    /// Documents per batch. Default 1,000.
    pub batch_docs: usize,
    /// Bytes per batch (a batch may exceed it by one document). Default 4 MiB.
    pub batch_bytes: usize,
    /// Longest accepted line; longer lines are rejected without being held in memory.
    /// Default 10 MiB.
    pub max_line_bytes: usize,
    /// Retries of a failed request to a replica before it counts as down. Default 8, which with
    /// the backoff waits about 16 s for a restarting leaf.
    pub retries: u32,
    /// First backoff between retries; doubles each time, up to 5 s. Default 100 ms.
    pub initial_backoff: Duration,
    /// Deadline of one request to a replica. Default 60 s.
    pub request_timeout: Duration,
    /// How long connecting to a replica may take. Default 2 s.
    pub connect_timeout: Duration,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        Self {
            mode: WriteMode::Upsert,
            id_field: "id".into(),
            batch_docs: 1_000,
            batch_bytes: 4 << 20,
            max_line_bytes: 10 << 20,
            retries: 8,
            initial_backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
        }
    }
}
