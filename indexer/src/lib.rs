//! fanout's bulk indexer: NDJSON in, each document routed to its shard by the `fanout.v1`
//! shard function (jump consistent hash of its id) and written to every replica of that shard.
//!
//! - [`ndjson`]: numbered, length-bounded lines (plain or gzip) and id extraction.
//! - [`run`]: one run: read and route on a thread, write shards concurrently, summarize.
//! - [`progress`]: a run's live counters and the progress bar drawn from them.
//! - [`plan`]: how many documents a change of shard count would move, and where.
//! - [`writer`]: one shard's writer: every replica, retries with backoff, commit at the end.
//! - [`cli`]: the `fanout-indexer` command line and its exit codes.

pub mod cli;
pub mod ndjson;
pub mod plan;
pub mod progress;
pub mod run;
pub mod writer;

pub use progress::Progress;
pub use run::{index_inputs, IndexerOptions, Input, RejectLog, Summary, WriteMode};
