//! fanout's load-test harness and local cluster launcher.
//!
//! Each module uses only modules listed before it (checked by `tests/layering.rs`):
//!
//! - [`schedule`]: open-loop send times (constant or Poisson) and fault pause windows.
//! - [`cpu`]: CPU time of running processes, from `/proc`.
//! - [`breakdown`]: where a request's time goes, hop by hop.
//! - [`report`]: HDR-histogram percentiles, errors by kind, hedges and extra leaf requests.
//! - [`faults`]: pausing (SIGSTOP/SIGCONT) and killing processes on a schedule.
//! - [`floor`]: the machine's floor: a bare TCP round trip.
//! - [`cluster`]: a local cluster of real leaf and root processes, for demos, tests and faults.
//! - [`supervise`]: restarting a local cluster's processes as they exit, with backoff.
//! - [`direct`]: the in-process baseline index and the query file reader.
//! - [`ingest`]: the indexing benchmark, cluster against tantivy alone.
//! - [`load`]: the driver: open loop (latency from intended send times) or closed loop, against
//!   a root or one in-process tantivy index, with scenarios interleaved for A/B runs.
//! - [`sweep`]: the search for the highest rate that meets a p99 target.
//! - [`statsbench`]: query latency with cold, warm and per-shard BM25 statistics.
//! - [`relevance`]: nDCG@10 and Recall@100 of a cluster on a BEIR collection's judgments.
//! - [`sim`]: the root's latency at 10 to 1,000 leaves, simulated from a leaf distribution.
//! - [`svg`]: the latency percentile plot of every scenario on one chart.
//! - [`overload`]: capacity, then overload steps and long stalls: goodput, refusals, recovery.
//! - [`run_cmd`]: the `run` command: load against a root with faults, and the direct baseline.
//! - [`fuzz`]: hostile requests for the HTTP API and a leaf's gRPC port, and their judge.
//! - [`fuzz_run`]: the long fuzz run against a cluster of real processes.
//! - [`demo`]: the `fanout-cluster` command: the quick start's one-command cluster.
//! - [`cli`]: the `fanout-loadtest` command line.

pub mod breakdown;
pub mod cli;
pub mod cluster;
pub mod cpu;
pub mod demo;
pub mod direct;
pub mod faults;
pub mod floor;
pub mod fuzz;
pub mod fuzz_run;
pub mod ingest;
pub mod load;
pub mod overload;
pub mod relevance;
pub mod report;
pub mod run_cmd;
pub mod schedule;
pub mod sim;
pub mod statsbench;
pub mod supervise;
pub mod svg;
pub mod sweep;
