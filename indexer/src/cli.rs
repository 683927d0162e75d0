//! The `fanout-indexer` command line.
//!
//! Exit codes: 0 when every line was indexed on every replica; 1 when the run completed but
//! some lines were rejected (each is reported with its line number); 2 when a replica stayed down,
//! an input could not be read, or the run could not start. Re-running the same input is safe:
//! documents are replaced by id, never duplicated, and a replica that missed part of a run gets
//! it on the re-run.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fanout_proto::Topology;

use crate::ndjson::{extract_id, Line, LineReader};
use crate::options::{IndexerOptions, WriteMode};
use crate::plan::ReshardPlan;
use crate::progress::Progress;
use crate::rejects::RejectLog;
use crate::run::{index_inputs, Input, Summary};

/// Bulk-indexes NDJSON documents (plain or gzip) into a fanout cluster, or deletes them.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fanout-indexer",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A subcommand; without one, index.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// What to index, and how, when no subcommand is given.
    #[command(flatten)]
    pub index: Args,
}

/// What else the indexer does.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Reports how many documents of the inputs a change of shard count would move, and
    /// between which shards. Reads only the ids; writes nothing.
    Plan(PlanArgs),
}

/// `fanout-indexer plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// NDJSON files, plain or gzip; `-` or nothing reads standard input.
    pub inputs: Vec<PathBuf>,
    /// The shard count now.
    #[arg(long)]
    pub from: u32,
    /// The shard count to move to.
    #[arg(long)]
    pub to: u32,
    /// The documents' id field.
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Write the id of every document that changes shard to this file, one `{"id": ...}` line
    /// each: after the move, `fanout-indexer --delete` of this file over the old topology
    /// removes them from their old shards.
    #[arg(long)]
    pub moved: Option<PathBuf>,
}

/// Indexing (the default command).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// NDJSON files, plain or gzip; `-` or nothing reads standard input (in the environment,
    /// separate files with spaces).
    #[arg(env = "FANOUT_INDEXER_INPUTS", value_delimiter = ' ')]
    pub inputs: Vec<PathBuf>,
    /// Topology file (TOML) naming every shard's replicas.
    #[arg(long, env = "FANOUT_INDEXER_TOPOLOGY", conflicts_with = "shard")]
    pub topology: Option<PathBuf>,
    /// A shard and its replicas, `ID=HOST:PORT[,HOST:PORT...]`; repeat for every shard (in the
    /// environment, separate shards with spaces).
    #[arg(
        long,
        env = "FANOUT_INDEXER_SHARD",
        value_name = "SPEC",
        value_delimiter = ' '
    )]
    pub shard: Vec<String>,
    /// The documents' id field.
    #[arg(long, default_value = "id", env = "FANOUT_INDEXER_ID_FIELD")]
    pub id_field: String,
    /// Documents per batch.
    #[arg(long, default_value_t = 1_000, env = "FANOUT_INDEXER_BATCH_DOCS", value_parser = fanout_proto::args::at_least_one)]
    pub batch_docs: usize,
    /// Bytes per batch.
    #[arg(long, default_value_t = 4 << 20, env = "FANOUT_INDEXER_BATCH_BYTES", value_parser = fanout_proto::args::at_least_one)]
    pub batch_bytes: usize,
    /// Longest accepted line, in bytes.
    #[arg(long, default_value_t = 10 << 20, env = "FANOUT_INDEXER_MAX_LINE_BYTES", value_parser = fanout_proto::args::at_least_one)]
    pub max_line_bytes: usize,
    /// Retries of a failed request before a replica counts as down; the backoff doubles from
    /// 100 ms up to 5 s, so the default waits about 16 s for a restarting leaf.
    #[arg(long, default_value_t = 8, env = "FANOUT_INDEXER_RETRIES")]
    pub retries: u32,
    /// Write every rejected line's source, number and reason to this file, as NDJSON.
    #[arg(long, env = "FANOUT_INDEXER_REJECTS")]
    pub rejects: Option<PathBuf>,
    /// Delete the documents whose ids the input lines carry, instead of indexing them.
    #[arg(long, env = "FANOUT_INDEXER_DELETE")]
    pub delete: bool,
    /// No progress bar (it is drawn only when standard error is a terminal anyway).
    #[arg(long, short = 'q', env = "FANOUT_INDEXER_QUIET")]
    pub quiet: bool,
}

/// Runs the command and returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Some(Command::Plan(args)) => plan(args),
        None => index(cli.index).await,
    }
}

fn open_inputs(paths: &[PathBuf]) -> std::io::Result<Vec<Input>> {
    if paths.is_empty() {
        return Ok(vec![Input::stdin()]);
    }
    paths.iter().map(|p| Input::open(p)).collect()
}

/// Counts where each document would go; a line without a readable id is skipped and counted.
fn plan(args: PlanArgs) -> anyhow::Result<u8> {
    anyhow::ensure!(
        args.from > 0 && args.to > 0,
        "--from and --to must be at least 1"
    );
    let mut plan = ReshardPlan::new(args.from, args.to);
    let mut moved = match &args.moved {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let mut skipped = 0u64;
    for input in open_inputs(&args.inputs)? {
        let mut reader = LineReader::open(input.reader, 10 << 20)?;
        while let Some((_, line)) = reader.next_line()? {
            match line {
                Line::Text(text) => match extract_id(&text, &args.id_field) {
                    Ok(id) => {
                        let (from, to) = plan.add(&id);
                        if let Some(out) = moved.as_mut().filter(|_| from != to) {
                            serde_json::to_writer(&mut *out, &serde_json::json!({ "id": id }))?;
                            out.write_all(b"\n")?;
                        }
                    }
                    Err(_) => skipped += 1,
                },
                Line::Bad(_) => skipped += 1,
            }
        }
    }
    if let Some(mut out) = moved {
        out.flush()?;
    }
    println!("{plan}");
    if let Some(path) = &args.moved {
        println!(
            "ids of the {} moving documents: {}",
            plan.moved(),
            path.display()
        );
    }
    if skipped > 0 {
        println!("{skipped} lines without a readable id were not counted");
    }
    Ok(0)
}

async fn index(args: Args) -> anyhow::Result<u8> {
    let topology = Topology::from_file_or_specs(args.topology.as_deref(), &args.shard)?;
    let options = IndexerOptions {
        mode: if args.delete {
            WriteMode::Delete
        } else {
            WriteMode::Upsert
        },
        id_field: args.id_field.clone(),
        batch_docs: args.batch_docs,
        batch_bytes: args.batch_bytes,
        max_line_bytes: args.max_line_bytes,
        retries: args.retries,
        ..IndexerOptions::default()
    };
    let inputs = open_inputs(&args.inputs)?;
    let rejects_file: Option<Box<dyn std::io::Write + Send>> = match &args.rejects {
        Some(path) => Some(Box::new(std::io::BufWriter::new(std::fs::File::create(
            path,
        )?))),
        None => None,
    };
    let rejects = Arc::new(RejectLog::new(rejects_file));
    let progress = Arc::new(Progress::default());
    let display = (!args.quiet).then(|| progress.display());
    let summary = index_inputs(&topology, inputs, &options, rejects, Arc::clone(&progress)).await;
    drop(display);
    let summary = summary?;
    print_summary(&summary, options.mode, args.rejects.as_deref());
    Ok(if !summary.is_complete() {
        2
    } else if summary.rejected > 0 {
        1
    } else {
        0
    })
}

fn print_summary(s: &Summary, mode: WriteMode, rejects_file: Option<&std::path::Path>) {
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
        if f.docs_missed == 0 {
            eprintln!(
                "fanout-indexer: replica {} of shard {} acknowledged every document but did not commit: {}. They become searchable at its next refresh.",
                f.replica, f.shard, f.reason
            );
        } else {
            eprintln!(
                "fanout-indexer: replica {} of shard {} is missing {} documents: {}. Re-run the same input once it is back.",
                f.replica, f.shard, f.docs_missed, f.reason
            );
        }
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
    let verb = match mode {
        WriteMode::Upsert => "indexed",
        WriteMode::Delete => "deleted",
    };
    println!(
        "{verb} {} documents from {} lines ({:.1} MB) in {:.1} s: {:.0} docs/s, {:.1} MB/s; rejected {}; per shard {{{}}}",
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
