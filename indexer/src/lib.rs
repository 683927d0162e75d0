//! fanout's bulk indexer: NDJSON in, each document routed to its shard by the `fanout.v1`
//! shard function (jump consistent hash of its id) and written to every replica of that shard.
//!
//! Each module uses only modules listed before it (checked by `loadtest/tests/layering.rs`):
//!
//! - values: [`options`] (how a run batches, limits and retries), [`ndjson`] (numbered,
//!   length-bounded lines, plain or gzip, and id extraction), [`progress`] (a run's live
//!   counters and the bar drawn from them), [`plan`] (how many documents a change of shard
//!   count would move, and where);
//! - [`rejects`]: lines not indexed, counted, sampled and logged;
//! - [`writer`]: one shard's writer: every replica, retries with backoff, commit at the end;
//! - [`run`]: one run: read and route on a thread, write shards concurrently, summarize;
//! - [`cli`]: the `fanout-indexer` command line and its exit codes.

pub mod cli;
pub mod ndjson;
pub mod options;
pub mod plan;
pub mod progress;
pub mod rejects;
pub mod run;
pub mod writer;

pub use options::{IndexerOptions, WriteMode};
pub use progress::Progress;
pub use rejects::{Reject, RejectLog};
pub use run::{index_inputs, Input, Summary};
