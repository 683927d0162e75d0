//! fanout's load-test harness and local cluster launcher.
//!
//! - [`cluster`]: a local cluster of real leaf and root processes, for demos, tests and faults.
//! - [`demo`]: the `fanout-cluster` command: the quick start's one-command cluster.
//! - [`latency`]: closed-loop query latency against a root, and the same queries on one
//!   in-process tantivy index as the baseline.

pub mod cluster;
pub mod demo;
pub mod latency;
