//! fanout's bulk indexer: NDJSON in, each document routed to its shard by the `fanout.v1`
//! shard function (jump consistent hash of its id) and written to every replica of that shard.
//!
//! - [`ndjson`]: numbered, length-bounded lines (plain or gzip) and id extraction.
//! - [`run`]: one run: read and route on a thread, write shards concurrently, summarize.
//! - [`writer`]: one shard's writer: every replica, retries with backoff, commit at the end.
//! - [`cli`]: the `fanout-indexer` command line and its exit codes.

pub mod cli;
pub mod ndjson;
pub mod run;
pub mod writer;

pub use run::{index_inputs, IndexerOptions, Input, RejectLog, Summary};
