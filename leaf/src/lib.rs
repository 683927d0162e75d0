//! A fanout leaf serves one replica of one shard: a tantivy index behind the `fanout.v1.Leaf`
//! gRPC service.
//!
//! Each module uses only modules listed before it (checked by `loadtest/tests/layering.rs`):
//!
//! - [`schema`]: the schema file and the tantivy schema built from it.
//! - [`collect`]: collection that stops when its caller left or its deadline passed.
//! - [`top`]: the first `from + size` matches in the contract's total order (score, then id).
//! - [`wal`]: the write-ahead log that makes an acknowledged batch durable before a commit.
//! - [`stats`]: BM25 statistics summed over shards, so that every shard scores as one index.
//! - [`snapshot`]: what a search reads: a searcher, its generation, its live documents' statistics.
//! - [`seed`]: a new replica stays NOT_SERVING until an import has filled it.
//! - [`error`]: the one error type, mapped once to gRPC status codes.
//! - [`document`]: a JSON line as a tantivy document and its id; a stored document as JSON.
//! - [`write`]: replaying logged operations, upserts, ids the committed segments hold.
//! - [`query`]: query text to a tantivy query, within the contract's limits.
//! - [`index`]: the shard's index: batches in, commits, searches out (blocking).
//!   Its read side (searches, statistics) lives in `index_search.rs`.
//! - [`refresh`]: when a leaf commits, so that writes become searchable.
//! - [`service`]: the leaf as a plain async API; runs index work off the async runtime.
//! - [`grpc`]: the thin tonic adapter over the service.
//! - [`server`]: `serve(listener, leaf, shutdown)`, with the gRPC health service.
//! - [`cli`]: the `fanout-leaf` command line.

pub mod cli;
pub mod collect;
pub mod document;
pub mod error;
pub mod grpc;
pub mod index;
pub mod query;
pub mod refresh;
pub mod schema;
pub mod seed;
pub mod server;
pub mod service;
pub mod snapshot;
pub mod stats;
pub mod top;
pub mod wal;
pub mod write;

pub use error::LeafError;
pub use index::{ShardIndex, WriterOptions};
pub use refresh::RefreshPolicy;
pub use schema::SchemaConfig;
pub use service::LeafService;
