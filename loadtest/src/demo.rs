//! `fanout-cluster`: a local cluster of real processes on the bundled demo corpus, in one
//! command. Also the entry point of the `leaf` and `root` processes it starts.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::cluster::{ClusterSpec, LocalCluster};
use crate::supervise::{supervise, Backoff};

/// Runs a local fanout cluster: leaves and a root as separate processes, filled with a corpus.
#[derive(Debug, Parser)]
#[command(
    name = "fanout-cluster",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A subcommand; without one, `up`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to start the cluster when no subcommand is given.
    #[command(flatten)]
    pub up: UpArgs,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a local cluster and serve the HTTP API (the default).
    Up(UpArgs),
    /// Run one leaf (what `fanout-leaf` runs).
    #[command(hide = true)]
    Leaf(Box<fanout_leaf::cli::Args>),
    /// Run one root (what `fanout-root` runs).
    #[command(hide = true)]
    Root(Box<fanout_root::cli::Args>),
}

/// How `up` starts the cluster.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Number of shards.
    #[arg(long, default_value_t = 2)]
    pub shards: u32,
    /// Replicas of every shard.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// Where the HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Data, topology and logs of the cluster; kept between runs.
    #[arg(long, default_value = "fanout-data")]
    pub data_dir: PathBuf,
    /// NDJSON corpus (plain or gzip) to index when the cluster is empty; default: the bundled
    /// WordNet demo corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Delete the data directory first and index the corpus again.
    #[arg(long)]
    pub fresh: bool,
    /// Leave a process that exits down (to look into a crash) instead of restarting it.
    #[arg(long)]
    pub no_restart: bool,
}

/// Starts the cluster, indexes the corpus if the cluster is empty, serves until Ctrl-C, and
/// restarts any process that exits meanwhile.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    if args.shards == 0 || args.replicas == 0 {
        bail!("--shards and --replicas must be at least 1");
    }
    // Listen for Ctrl-C and SIGTERM from the start: a signal during start-up stops the cluster
    // too (dropping the half-started cluster kills its processes).
    let mut shutdown = std::pin::pin!(fanout_proto::process::shutdown_signal());
    let (mut cluster, spec) = tokio::select! {
        started = start(&args) => started?,
        _ = &mut shutdown => return Ok(()),
    };
    if args.no_restart {
        shutdown.await;
    } else {
        tokio::select! {
            () = supervise(&mut cluster, &spec, Backoff::default()) => {}
            _ = shutdown => {}
        }
    }
    eprintln!("stopping");
    cluster.stop().await;
    Ok(())
}

/// Starts the leaves, indexes the corpus if the cluster is empty, starts the root.
async fn start(args: &UpArgs) -> anyhow::Result<(LocalCluster, ClusterSpec)> {
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(crate::cluster::default_corpus);
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot delete {}", args.data_dir.display()))?;
    }
    check_shape(args)?;
    let spec = ClusterSpec {
        http_listen: args.listen.clone(),
        ..ClusterSpec::new(
            args.shards,
            args.replicas,
            args.data_dir.clone(),
            std::env::current_exe()?,
        )
    };
    eprintln!(
        "starting {} shards x {} replicas in {}",
        args.shards,
        args.replicas,
        args.data_dir.display()
    );
    let mut cluster = LocalCluster::start_leaves(&spec).await?;
    let existing = cluster.count_documents().await?;
    if existing > 0 {
        eprintln!(
            "the cluster holds {existing} documents from an earlier run (--fresh starts over)"
        );
    } else {
        eprintln!("indexing {} ...", corpus.display());
        let summary = cluster.index_corpus([&corpus]).await?;
        eprintln!(
            "indexed {} documents in {:.1} s ({} rejected)",
            summary.docs_indexed,
            summary.elapsed.as_secs_f64(),
            summary.rejected
        );
    }
    let url = cluster.start_root(&spec).await?;
    print_banner(&url).await;
    Ok((cluster, spec))
}

/// Refuses to reuse a data directory laid out for another number of shards: its documents were
/// placed by the shard function for that number.
fn check_shape(args: &UpArgs) -> anyhow::Result<()> {
    let shape_file = args.data_dir.join("shape");
    let shape = format!("shards={} replicas={}\n", args.shards, args.replicas);
    match std::fs::read_to_string(&shape_file) {
        Ok(existing) if existing != shape => bail!(
            "{} holds a cluster of {}; pass --fresh to start over with {}",
            args.data_dir.display(),
            existing.trim(),
            shape.trim()
        ),
        Ok(_) => Ok(()),
        Err(_) => {
            std::fs::create_dir_all(&args.data_dir)?;
            Ok(std::fs::write(shape_file, shape)?)
        }
    }
}

async fn print_banner(url: &str) {
    println!("fanout is serving on {url}");
    println!("  try: curl '{url}/v1/search?q=%2Bcold%20%2Bwind&size=3'");
    if let Ok(response) = reqwest::get(format!("{url}/v1/search?q=%2Bcold%20%2Bwind&size=3")).await
    {
        if let Ok(body) = response.json::<serde_json::Value>().await {
            println!(
                "  {} hits in {} ms; the best:",
                body["total_hits"], body["took_ms"]
            );
            for hit in body["hits"].as_array().into_iter().flatten() {
                println!(
                    "    {:<16} {}",
                    hit["fields"]["title"].as_str().unwrap_or(""),
                    hit["fields"]["body"].as_str().unwrap_or("")
                );
            }
        }
    }
    println!("  also: {url}/v1/health, {url}/v1/ready, {url}/metrics; Ctrl-C stops the cluster.");
}

/// Runs whichever command the arguments name.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => up(cli.up).await,
        Some(Command::Up(args)) => up(args).await,
        Some(Command::Leaf(args)) => {
            fanout_leaf::cli::init_tracing();
            fanout_leaf::cli::run(*args).await
        }
        Some(Command::Root(args)) => {
            fanout_leaf::cli::init_tracing();
            fanout_root::cli::run(*args).await
        }
    }
}
