//! The `fanout-indexer` command line.
//!
//! Exit codes: 0 when every line was indexed on every replica; 1 when the run completed but
//! some lines were rejected (each is reported with its line number); 2 when a replica stayed down,
//! an input could not be read, or the run could not start. Re-running the same input is safe:
//! documents are replaced by id, never duplicated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fanout_proto::Topology;

use crate::run::{index_inputs, IndexerOptions, Input, RejectLog, Summary};

/// Bulk-indexes NDJSON documents (plain or gzip) into a fanout cluster.
#[derive(Debug, Clone, Parser)]
#[command(name = "fanout-indexer", version)]
pub struct Args {
    /// NDJSON files, plain or gzip; `-` or nothing reads standard input.
    pub inputs: Vec<PathBuf>,
    /// Topology file (TOML) naming every shard's replicas.
    #[arg(long, env = "FANOUT_TOPOLOGY", conflicts_with = "shard")]
    pub topology: Option<PathBuf>,
    /// A shard and its replicas, `ID=HOST:PORT[,HOST:PORT...]`; repeat for every shard.
    #[arg(long, value_name = "SPEC")]
    pub shard: Vec<String>,
    /// The documents' id field.
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Documents per batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch_docs: usize,
    /// Bytes per batch.
    #[arg(long, default_value_t = 4 << 20)]
    pub batch_bytes: usize,
    /// Longest accepted line, in bytes.
    #[arg(long, default_value_t = 10 << 20)]
    pub max_line_bytes: usize,
    /// Retries of a failed request before a replica counts as down.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Write every rejected line's source, number and reason to this file, as NDJSON.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
}

/// Runs the indexer and returns the exit code.
pub async fn run(args: Args) -> anyhow::Result<i32> {
    let topology = Topology::from_file_or_specs(args.topology.as_deref(), &args.shard)?;
    let options = IndexerOptions {
        id_field: args.id_field.clone(),
        batch_docs: args.batch_docs.max(1),
        batch_bytes: args.batch_bytes.max(1),
        max_line_bytes: args.max_line_bytes.max(1),
        retries: args.retries,
        ..IndexerOptions::default()
    };
    let inputs = if args.inputs.is_empty() {
        vec![Input::stdin()]
    } else {
        args.inputs
            .iter()
            .map(|p| Input::open(p))
            .collect::<Result<_, _>>()?
    };
    let rejects_file: Option<Box<dyn std::io::Write + Send>> = match &args.rejects {
        Some(path) => Some(Box::new(std::io::BufWriter::new(std::fs::File::create(
            path,
        )?))),
        None => None,
    };
    let rejects = Arc::new(RejectLog::new(rejects_file));
    let summary = index_inputs(&topology, inputs, &options, rejects).await?;
    print_summary(&summary, args.rejects.as_deref());
    Ok(if !summary.is_complete() {
        2
    } else if summary.rejected > 0 {
        1
    } else {
        0
    })
}

fn print_summary(s: &Summary, rejects_file: Option<&std::path::Path>) {
    for reject in &s.sample_rejects {
        eprintln!("fanout-indexer: rejected {reject}");
    }
    if s.rejected > s.sample_rejects.len() as u64 {
        let more = s.rejected - s.sample_rejects.len() as u64;
        match rejects_file {
            Some(p) => eprintln!(
                "fanout-indexer: ... and {more} more rejected lines, all in {}",
                p.display()
            ),
            None => eprintln!(
                "fanout-indexer: ... and {more} more rejected lines (--rejects FILE lists all)"
            ),
        }
    }
    for e in &s.input_errors {
        eprintln!("fanout-indexer: input error: {e}");
    }
    for f in &s.replica_failures {
        eprintln!(
            "fanout-indexer: replica {} of shard {} is missing {} documents: {}. Re-run the same input once it is back.",
            f.replica, f.shard, f.docs_missed, f.reason
        );
    }
    let secs = s
        .elapsed
        .as_secs_f64()
        .max(Duration::from_millis(1).as_secs_f64());
    let per_shard: Vec<String> = s
        .per_shard
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}: {n}"))
        .collect();
    println!(
        "indexed {} documents from {} lines ({:.1} MB) in {:.1} s: {:.0} docs/s, {:.1} MB/s; rejected {}; per shard {{{}}}",
        s.docs_indexed,
        s.lines,
        s.bytes as f64 / 1e6,
        secs,
        s.docs_indexed as f64 / secs,
        s.bytes as f64 / 1e6 / secs,
        s.rejected,
        per_shard.join(", "),
    );
}
