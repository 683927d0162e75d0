//! The `fanout-loadtest` command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::cluster::{default_corpus, ClusterShape, LocalCluster};
use crate::direct::{corpus_or_demo, load_queries};
use crate::sim::{sim_table, simulate, LeafModel};

/// Drives a fanout cluster with real queries and faults, and reports tail latency.
#[derive(Debug, Parser)]
#[command(name = "fanout-loadtest", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send load to a root (or a local cluster it starts) and report latency per scenario.
    Run(Box<crate::run_cmd::RunArgs>),
    /// Simulate the root's latency at 10 to 1,000 leaves from a leaf latency distribution, with
    /// and without hedging.
    Sim(SimArgs),
    /// Time a corpus through the indexer into a local cluster against tantivy alone indexing
    /// it in this process, in turns.
    IndexBench(IndexBenchArgs),
    /// Index a BEIR collection (SciFact) into a local cluster, run its judged test queries over
    /// the HTTP API, and report nDCG@10 and Recall@100.
    Relevance(RelevanceArgs),
    /// Query latency with global statistics cold (a statistics round trip first) and warm
    /// (cached), against per-shard statistics, on a local cluster.
    StatsBench(StatsBenchArgs),
    /// Capacity, then 0.5x, 1.5x and 2x capacity open loop and two long stalls on a local
    /// cluster: goodput, refusals, deadline overshoot, ejections, memory, recovery.
    Overload(Box<crate::overload::OverloadArgs>),
    /// The machine's floor: one TCP round trip over loopback between two blocked threads, back
    /// to back and with gaps (as at low load).
    Floor(crate::floor::FloorArgs),
    /// Send hostile searches to a local cluster for a while (10 minutes by default) and fail
    /// if a process dies, an answer is one a healthy cluster may not give, or a leaf's memory
    /// passes a bound.
    Fuzz(crate::fuzz_run::FuzzArgs),
}

/// `stats-bench`: query latency with cold, warm and per-shard statistics.
#[derive(Debug, Clone, Args)]
pub struct StatsBenchArgs {
    /// The NDJSON corpus; default: the bundled demo corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Queries: the sbg JSONL log or plain lines.
    #[arg(long)]
    pub queries: PathBuf,
    /// The cluster to start.
    #[command(flatten)]
    pub shape: ClusterShape,
    /// Write the passes as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `relevance`: nDCG@10 and Recall@100 on a BEIR collection.
#[derive(Debug, Clone, Args)]
pub struct RelevanceArgs {
    /// The collection's directory: corpus.jsonl.gz, queries.jsonl, qrels/test.tsv.
    #[arg(long)]
    pub beir: PathBuf,
    /// Tokenizer of the text fields: en (stop words and stemming), en_stem, default.
    #[arg(long, default_value = "en")]
    pub tokenizer: String,
    /// How titles are searched: `combined` indexes title and text as one field, as Anserini
    /// does for BEIR; `separate` searches title and text fields, each scored on its own.
    #[arg(long, default_value = "combined", value_parser = ["combined", "separate"])]
    pub fields: String,
    /// The cluster to start.
    #[command(flatten)]
    pub shape: ClusterShape,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `index-bench`: bulk indexing into a cluster against tantivy alone.
#[derive(Debug, Clone, Args)]
pub struct IndexBenchArgs {
    /// An NDJSON file (plain or gzip) of the corpus; repeat for a corpus of several files, read
    /// one after another. Default: the bundled demo corpus.
    #[arg(long)]
    pub corpus: Vec<PathBuf>,
    /// The cluster to start.
    #[command(flatten)]
    pub shape: ClusterShape,
    /// Runs of each, alternating.
    #[arg(long, default_value_t = 3, value_parser = fanout_proto::args::at_least_one)]
    pub runs: usize,
    /// Indexing threads of tantivy alone (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// An extra flag for every leaf, e.g. `--leaf-arg=--refresh-interval=10s`; repeatable.
    #[arg(long, allow_hyphen_values = true)]
    pub leaf_arg: Vec<String>,
    /// Write the runs and medians as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `sim`: the root's latency at many leaves, simulated.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Fan-out widths to simulate, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,30,100,300,1000")]
    pub leaves: Vec<usize>,
    /// Queries simulated per width.
    #[arg(long, default_value_t = 10_000, value_parser = fanout_proto::args::at_least_one)]
    pub queries: usize,
    /// Hedge once a leaf request is slower than this percentile of the leaf distribution.
    #[arg(long, default_value_t = 0.95)]
    pub hedge_percentile: f64,
    /// Leaf latency median, in ms (log-normal model).
    #[arg(long, default_value_t = 2.0)]
    pub median_ms: f64,
    /// Spread of the log-normal model (sigma of the log).
    #[arg(long, default_value_t = 0.5)]
    pub sigma: f64,
    /// Probability that a leaf request is a straggler.
    #[arg(long, default_value_t = 0.01)]
    pub straggler_prob: f64,
    /// What a straggler adds, in ms.
    #[arg(long, default_value_t = 200.0)]
    pub straggler_ms: f64,
    /// Use a measured distribution instead: a JSON report written by `run --json`.
    #[arg(long)]
    pub measured: Option<PathBuf>,
    /// The scenario of the measured report to use (default: the first).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Seed of the simulation's random numbers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the command.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => crate::run_cmd::run(*args).await,
        Command::Sim(args) => sim(args),
        Command::IndexBench(args) => index_bench(args).await,
        Command::Relevance(args) => relevance(args).await,
        Command::StatsBench(args) => stats_bench(args).await,
        Command::Floor(args) => Ok(crate::floor::run(&args)?),
        Command::Overload(args) => crate::overload::run(*args).await,
        Command::Fuzz(args) => crate::fuzz_run::run(args).await,
    }
}

async fn stats_bench(args: StatsBenchArgs) -> anyhow::Result<()> {
    use crate::statsbench::{pass, table};
    let corpus = args.corpus.clone().unwrap_or_else(default_corpus);
    let queries = load_queries(&args.queries, None)?;
    let scratch = tempfile::tempdir()?;
    let spec = args.shape.spec(scratch.path(), Vec::new())?;
    let mut cluster = LocalCluster::start_leaves(&spec).await?;
    cluster.index_corpus([&corpus]).await?;
    let url = cluster.start_root(&spec).await?;
    // Per-shard first, which also warms the leaves' caches for the passes after it.
    let _warm_up = pass(&url, "warm-up", &queries, "shard").await?;
    let mut passes = vec![
        pass(&url, "per-shard", &queries, "shard").await?,
        pass(&url, "global, cold", &queries, "global").await?,
        pass(&url, "global, warm", &queries, "global").await?,
    ];
    // A tenth of the corpus deleted: every shard commits, every query's statistics change.
    let deleted = scratch.path().join("deleted.ndjson");
    let mut lines = String::new();
    let mut n = 0u64;
    crate::direct::for_each_document(std::slice::from_ref(&corpus), |line| {
        n += 1;
        if n.is_multiple_of(10) {
            lines.push_str(&line);
            lines.push('\n');
        }
        Ok(())
    })?;
    std::fs::write(&deleted, lines)?;
    cluster.delete_corpus([&deleted]).await?;
    passes.push(pass(&url, "after a commit", &queries, "global").await?);
    passes.push(pass(&url, "warm, 10% deleted", &queries, "global").await?);
    print!("{}", table(&passes));
    let alike = passes[3].agreement(&passes[4], &queries);
    println!(
        "first after the commit against warm: {} pages compared, {} identical to the bit, {} with the same ids and scores within 1e-5, others: {:?}",
        alike.compared, alike.identical, alike.equivalent, alike.different
    );
    cluster.stop().await;
    let live = crate::statsbench::live_cost(std::slice::from_ref(&corpus), &queries)?;
    print!("{live}");
    if let Some(path) = &args.json {
        let json = serde_json::json!({ "passes": passes, "live_cost": live });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
    }
    Ok(())
}

async fn relevance(args: RelevanceArgs) -> anyhow::Result<()> {
    use crate::relevance::{convert_corpus, evaluate, read_qrels, read_queries, schema_toml};
    let qrels = read_qrels(&args.beir.join("qrels/test.tsv"))?;
    let queries = read_queries(&args.beir.join("queries.jsonl"), &qrels)?;
    let scratch = tempfile::tempdir()?;
    let corpus = scratch.path().join("corpus.ndjson");
    let combine = args.fields == "combined";
    let docs = convert_corpus(&args.beir.join("corpus.jsonl.gz"), &corpus, combine)?;
    let schema = scratch.path().join("schema.toml");
    std::fs::write(&schema, schema_toml(&args.tokenizer, combine))?;
    let leaf_args = vec!["--schema".into(), schema.display().to_string()];
    let spec = args
        .shape
        .spec(&scratch.path().join("cluster"), leaf_args)?;
    let mut cluster = LocalCluster::start_leaves(&spec).await?;
    cluster.index_corpus([&corpus]).await?;
    let url = cluster.start_root(&spec).await?;
    eprintln!(
        "{docs} documents in {} x {}, {} judged queries, tokenizer {}, fields {}",
        args.shape.shards,
        args.shape.replicas,
        queries.len(),
        args.tokenizer,
        args.fields
    );
    let mut results = Vec::new();
    for stats in ["global", "shard"] {
        let e = evaluate(&url, &queries, &qrels, stats, &args.tokenizer, &args.fields).await?;
        println!(
            "statistics {:<6} nDCG@10 {:.4}  Recall@100 {:.4}  ({} queries)",
            e.stats, e.ndcg_at_10, e.recall_at_100, e.queries
        );
        results.push(e);
    }
    cluster.stop().await;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)? + "\n")?;
    }
    Ok(())
}

async fn index_bench(args: IndexBenchArgs) -> anyhow::Result<()> {
    let corpus = corpus_or_demo(&args.corpus);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let scratch = tempfile::tempdir()?;
    let spec = args.shape.spec(scratch.path(), args.leaf_arg.clone())?;
    let runs = crate::ingest::compare(&spec, &corpus, args.runs, threads, scratch.path()).await?;
    let findings = crate::ingest::Findings::of(&runs);
    let cluster = format!("cluster {}x{}", args.shape.shards, args.shape.replicas);
    println!("{}", findings.report(&cluster, threads));
    if let Some(path) = &args.json {
        let mut json = serde_json::json!({
            "corpus": corpus
                .iter()
                .filter_map(|f| f.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            "shards": args.shape.shards,
            "replicas": args.shape.replicas,
            "leaf_args": args.leaf_arg,
            "direct_threads": threads,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "runs": runs,
        });
        if let (Some(out), serde_json::Value::Object(found)) =
            (json.as_object_mut(), serde_json::to_value(&findings)?)
        {
            out.extend(found);
        }
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
    }
    Ok(())
}

fn sim(args: SimArgs) -> anyhow::Result<()> {
    let model = match &args.measured {
        None => LeafModel::LogNormal {
            median_ms: args.median_ms,
            sigma: args.sigma,
            straggler_prob: args.straggler_prob,
            straggler_ms: args.straggler_ms,
        },
        Some(path) => {
            let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)
                .with_context(|| format!("{} is not a `run --json` report", path.display()))?;
            let reports = doc["reports"]
                .as_array()
                .context("no reports in the file")?;
            let report = match &args.scenario {
                Some(name) => reports.iter().find(|r| r["scenario"] == name.as_str()),
                None => reports.first(),
            }
            .context("no such scenario in the file")?;
            let curve: Vec<(f64, f64)> =
                serde_json::from_value::<Vec<(f64, u64)>>(report["percentile_curve"].clone())?
                    .into_iter()
                    .map(|(p, us)| (p, us as f64 / 1e3))
                    .collect();
            anyhow::ensure!(curve.len() >= 2, "the report has no latency curve");
            LeafModel::Measured(curve)
        }
    };
    let rows = simulate(
        &model,
        &args.leaves,
        args.queries,
        args.hedge_percentile,
        args.seed,
    );
    print!("{}", sim_table(&rows));
    Ok(())
}
