//! The `fanout-loadtest` command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::cluster::{default_corpus, sibling_binary, ClusterShape, ClusterSpec, LocalCluster};
use crate::cpu::CpuMeter;
use crate::direct::{build_direct_index, corpus_name, corpus_or_demo, load_queries};
use crate::faults::{parse_duration, parse_kill, parse_pause, run_faults, Fault};
use crate::load::{run_load, LoadPlan, Mode, Scenario, Target};
use crate::report::{rows, table, ScenarioReport};
use crate::schedule::Arrivals;
use crate::sim::{sim_table, simulate, LeafModel};
use crate::sweep::sweep;

/// Drives a fanout cluster with real queries and faults, and reports tail latency.
#[derive(Debug, Parser)]
#[command(name = "fanout-loadtest", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send load to a root (or a local cluster it starts) and report latency per scenario.
    Run(Box<RunArgs>),
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
    /// The machine's floor: one TCP round trip over loopback between two blocked threads, back
    /// to back and with gaps (as at low load).
    Floor(crate::floor::FloorArgs),
    /// Send hostile searches to a local cluster for a while (10 minutes by default) and fail
    /// if a process dies, an answer is one a healthy cluster may not give, or a leaf's memory
    /// passes a bound.
    Fuzz(crate::fuzz_run::FuzzArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StatsBenchArgs {
    /// The NDJSON corpus; default: the bundled demo corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Queries: the sbg JSONL log or plain lines.
    #[arg(long)]
    pub queries: PathBuf,
    #[command(flatten)]
    pub shape: ClusterShape,
    /// Write the passes as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

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
    #[command(flatten)]
    pub shape: ClusterShape,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct IndexBenchArgs {
    /// An NDJSON file (plain or gzip) of the corpus; repeat for a corpus of several files, read
    /// one after another. Default: the bundled demo corpus.
    #[arg(long)]
    pub corpus: Vec<PathBuf>,
    #[command(flatten)]
    pub shape: ClusterShape,
    /// Runs of each, alternating.
    #[arg(long, default_value_t = 3)]
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

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Fan-out widths to simulate, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,30,100,300,1000")]
    pub leaves: Vec<usize>,
    /// Queries simulated per width.
    #[arg(long, default_value_t = 10_000)]
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
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The root's base URL; without it, --spawn-cluster is needed.
    #[arg(long, env = "FANOUT_LOADTEST_URL")]
    pub url: Option<String>,
    /// Start a local cluster of leaf and root processes on --corpus for this run.
    #[arg(long, env = "FANOUT_LOADTEST_SPAWN_CLUSTER")]
    pub spawn_cluster: bool,
    /// Shards of the spawned cluster.
    #[arg(long, default_value_t = 2, env = "FANOUT_LOADTEST_SHARDS")]
    pub shards: u32,
    /// Replicas per shard of the spawned cluster.
    #[arg(long, default_value_t = 2, env = "FANOUT_LOADTEST_REPLICAS")]
    pub replicas: u32,
    /// An NDJSON file (plain or gzip) of the corpus for the spawned cluster and the direct
    /// baseline; repeat for several files, read one after another (in the environment, separate
    /// them with commas). Default: the demo corpus.
    #[arg(long, env = "FANOUT_LOADTEST_CORPUS", value_delimiter = ',')]
    pub corpus: Vec<PathBuf>,
    /// A flag for the spawned root, e.g. --root-arg=--hedge-max-delay-ms=50; repeatable.
    #[arg(long, allow_hyphen_values = true)]
    pub root_arg: Vec<String>,
    /// Queries: JSON lines with a `query` field (the sbg log), or plain text lines.
    #[arg(long, env = "FANOUT_LOADTEST_QUERIES")]
    pub queries: PathBuf,
    /// Shuffle the queries with this seed (default: in file order).
    #[arg(long, env = "FANOUT_LOADTEST_SHUFFLE_SEED")]
    pub shuffle_seed: Option<u64>,
    /// Open loop: requests per second.
    #[arg(long, conflicts_with = "concurrency", env = "FANOUT_LOADTEST_RATE")]
    pub rate: Option<f64>,
    /// Closed loop: clients each waiting for their last answer.
    #[arg(long, env = "FANOUT_LOADTEST_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Open-loop arrivals.
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson, env = "FANOUT_LOADTEST_ARRIVALS")]
    pub arrivals: Arrivals,
    /// Seed of the Poisson arrivals.
    #[arg(long, default_value_t = 1, env = "FANOUT_LOADTEST_SEED")]
    pub seed: u64,
    /// Unmeasured time first, e.g. 2s.
    #[arg(long, default_value = "2s", value_parser = parse_duration, env = "FANOUT_LOADTEST_WARMUP")]
    pub warmup: Duration,
    /// Measured time, e.g. 20s.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "FANOUT_LOADTEST_DURATION")]
    pub duration: Duration,
    /// Hits per search.
    #[arg(long, default_value_t = 10, env = "FANOUT_LOADTEST_SIZE")]
    pub size: usize,
    /// How long the client waits for an answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration, env = "FANOUT_LOADTEST_TIMEOUT")]
    pub timeout: Duration,
    /// A scenario `NAME[:key=value&...]`, e.g. `unhedged:hedge=false`; scenarios are
    /// interleaved request by request. Default: one scenario, `cluster`.
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Pause a process of the spawned cluster: NAME:EVERY:LENGTH, e.g. leaf-0-0:2s:200ms.
    #[arg(long)]
    pub pause: Vec<String>,
    /// Kill a process of the spawned cluster: NAME:AT, e.g. leaf-1-1:10s.
    #[arg(long)]
    pub kill: Vec<String>,
    /// Instead of one run, find the highest open-loop rate whose p99 stays within this (e.g.
    /// 50ms), starting at --rate; then report a run at half that rate. With --direct, the same
    /// for the direct baseline.
    #[arg(long, value_parser = parse_duration, requires = "rate", env = "FANOUT_LOADTEST_SWEEP_P99")]
    pub sweep_p99: Option<Duration>,
    /// With --sweep-p99, first run at this rate: latency at low load, where no request waits
    /// for another.
    #[arg(long, default_value_t = 10.0, env = "FANOUT_LOADTEST_LOW_RATE")]
    pub low_rate: f64,
    /// Afterwards, run the same load against one in-process tantivy index of --corpus.
    #[arg(long, env = "FANOUT_LOADTEST_DIRECT")]
    pub direct: bool,
    /// Also write the reports as JSON to this file.
    #[arg(long, env = "FANOUT_LOADTEST_JSON")]
    pub json: Option<PathBuf>,
    /// Also plot the latency percentiles of every scenario, as SVG, to this file.
    #[arg(long, env = "FANOUT_LOADTEST_SVG")]
    pub svg: Option<PathBuf>,
    /// No progress line.
    #[arg(long, env = "FANOUT_LOADTEST_QUIET")]
    pub quiet: bool,
}

/// Runs the command.
pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run(*args).await,
        Command::Sim(args) => sim(args),
        Command::IndexBench(args) => index_bench(args).await,
        Command::Relevance(args) => relevance(args).await,
        Command::StatsBench(args) => stats_bench(args).await,
        Command::Floor(args) => Ok(crate::floor::run(&args)?),
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
    let passes = vec![
        pass(&url, "per-shard", &queries, "shard").await?,
        pass(&url, "global, cold", &queries, "global").await?,
        pass(&url, "global, warm", &queries, "global").await?,
    ];
    print!("{}", table(&passes));
    cluster.stop().await;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&passes)? + "\n")?;
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
    let runs =
        crate::ingest::compare(&spec, &corpus, args.runs.max(1), threads, scratch.path()).await?;
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
        args.queries.max(1),
        args.hedge_percentile,
        args.seed,
    );
    print!("{}", sim_table(&rows));
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let queries = Arc::new(load_queries(&args.queries, args.shuffle_seed)?);
    let corpus = corpus_or_demo(&args.corpus);
    let scenarios = if args.scenario.is_empty() {
        vec![Scenario {
            name: "cluster".into(),
            params: Vec::new(),
        }]
    } else {
        args.scenario
            .iter()
            .map(|s| Scenario::parse(s))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?
    };
    let mode = match (args.rate, args.concurrency) {
        (Some(rate), _) if rate > 0.0 => Mode::Open {
            rate,
            arrivals: args.arrivals,
            seed: args.seed,
        },
        (None, Some(concurrency)) => Mode::Closed { concurrency },
        _ => bail!("pass --rate R (open loop) or --concurrency C (closed loop)"),
    };
    let mut plan = LoadPlan {
        mode,
        warmup: args.warmup,
        duration: args.duration,
        scenarios,
        size: args.size,
        timeout: args.timeout,
        progress: !args.quiet,
        cpu: None,
    };

    let data = tempfile::tempdir()?;
    let (cluster, url) = match (&args.url, args.spawn_cluster) {
        (Some(url), false) => (None, url.clone()),
        (None, true) => {
            let program = sibling_binary("fanout-cluster")?;
            let spec = ClusterSpec {
                root_args: args.root_arg.clone(),
                ..ClusterSpec::new(
                    args.shards,
                    args.replicas,
                    data.path().to_path_buf(),
                    program,
                )
            };
            let mut cluster = LocalCluster::start_leaves(&spec).await?;
            eprintln!(
                "indexing {} into {} x {} ...",
                corpus_name(&corpus),
                args.shards,
                args.replicas
            );
            let summary = cluster.index_corpus(&corpus).await?;
            eprintln!(
                "indexed {} documents in {:.1} s",
                summary.docs_indexed,
                summary.elapsed.as_secs_f64()
            );
            let url = cluster.start_root(&spec).await?;
            (Some(cluster), url)
        }
        _ => bail!("pass exactly one of --url URL and --spawn-cluster"),
    };
    let faults = resolve_faults(&args, cluster.as_ref())?;
    if let Some(cluster) = &cluster {
        plan.cpu = Some(cluster.cpu_meter());
    }

    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let fault_window = plan.warmup + plan.duration;
    let faulting = tokio::spawn(async move {
        if let Ok(start) = started_rx.await {
            run_faults(faults, start, fault_window).await;
        }
    });
    let mut summary = Vec::new();
    let mut reports = match args.sweep_p99 {
        None => {
            run_load(
                &Target::http(&url),
                Arc::clone(&queries),
                &plan,
                Some(started_tx),
            )
            .await
        }
        Some(p99) => {
            let found = sweep(
                &Target::http(&url),
                &queries,
                &plan,
                p99,
                args.low_rate,
                "cluster",
            )
            .await;
            summary.push(("cluster", found.best, found.low_p50_us));
            found.reports
        }
    };
    faulting.abort();
    let _ = faulting.await;
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    if args.direct {
        eprintln!(
            "building the direct baseline from {} ...",
            corpus_name(&corpus)
        );
        let index = tokio::task::spawn_blocking(move || build_direct_index(&corpus)).await??;
        let direct = Target::direct(index);
        plan.cpu = Some(CpuMeter::default().with_self("load generator + tantivy"));
        match args.sweep_p99 {
            None => {
                let direct_plan = LoadPlan {
                    scenarios: vec![Scenario {
                        name: "direct".into(),
                        params: Vec::new(),
                    }],
                    ..plan.clone()
                };
                reports.extend(run_load(&direct, queries, &direct_plan, None).await);
            }
            Some(p99) => {
                let found = sweep(&direct, &queries, &plan, p99, args.low_rate, "direct").await;
                summary.push(("direct", found.best, found.low_p50_us));
                reports.extend(found.reports);
            }
        }
    }
    if args.sweep_p99.is_some() {
        print!("{}", rows(&reports));
    } else {
        print!("{}", table(&reports));
    }
    for (label, best, low_p50) in &summary {
        let target = args.sweep_p99.unwrap_or_default();
        println!(
            "{label}: p50 at low load ({:.0}/s): {low_p50} µs",
            args.low_rate
        );
        match best {
            Some(rate) => {
                println!("{label}: highest rate with p99 <= {target:?}: {rate:.0} requests/s")
            }
            None => println!("{label}: no rate met p99 <= {target:?}"),
        }
    }
    if let [(_, cluster, cluster_p50), (_, direct, direct_p50)] = summary.as_slice() {
        println!(
            "cluster - direct p50 at low load: {:+} µs",
            *cluster_p50 as i64 - *direct_p50 as i64
        );
        if let (Some(cluster), Some(direct)) = (cluster, direct) {
            println!(
                "cluster / direct throughput at the p99 target: {:.2}",
                cluster / direct
            );
        }
    }
    if let Some(path) = &args.json {
        write_json(path, &args, &reports)?;
    }
    if let Some(path) = &args.svg {
        let title = format!("latency by percentile ({})", describe(&args));
        std::fs::write(path, crate::svg::percentile_svg(&reports, &title))?;
    }
    Ok(())
}

/// Faults name processes of the spawned cluster (`leaf-0-1`, `root`) or give a pid (`pid=123`).
fn resolve_faults(args: &RunArgs, cluster: Option<&LocalCluster>) -> anyhow::Result<Vec<Fault>> {
    let pid_of = |name: &str| -> anyhow::Result<i32> {
        if let Some(pid) = name.strip_prefix("pid=") {
            return pid.parse().with_context(|| format!("bad pid in {name:?}"));
        }
        let process = cluster.and_then(|c| c.process(name)).with_context(|| {
            format!("no process {name:?}: with --spawn-cluster, name leaf-SHARD-REPLICA or root; else pid=N")
        })?;
        process
            .pid()
            .map(|p| p as i32)
            .context("the process has exited")
    };
    let mut faults = Vec::new();
    for spec in &args.pause {
        let (name, every, length) = parse_pause(spec).map_err(anyhow::Error::msg)?;
        faults.push(Fault::Pause {
            pid: pid_of(&name)?,
            name,
            every,
            length,
        });
    }
    for spec in &args.kill {
        let (name, at) = parse_kill(spec).map_err(anyhow::Error::msg)?;
        faults.push(Fault::Kill {
            pid: pid_of(&name)?,
            name,
            at,
        });
    }
    Ok(faults)
}

/// The load in a few words, for titles.
fn describe(args: &RunArgs) -> String {
    let load = match (args.rate, args.concurrency) {
        (Some(rate), _) => format!("{rate} req/s open loop"),
        (_, Some(c)) => format!("{c} clients closed loop"),
        _ => String::new(),
    };
    let faults: Vec<String> = args
        .pause
        .iter()
        .map(|p| format!("pause {p}"))
        .chain(args.kill.iter().map(|k| format!("kill {k}")))
        .collect();
    if faults.is_empty() {
        load
    } else {
        format!("{load}; {}", faults.join(", "))
    }
}

fn write_json(
    path: &std::path::Path,
    args: &RunArgs,
    reports: &[ScenarioReport],
) -> anyhow::Result<()> {
    let doc = serde_json::json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": { "cores": std::thread::available_parallelism().map_or(0, |n| n.get()), "arch": std::env::consts::ARCH },
        "rate": args.rate,
        "concurrency": args.concurrency,
        "duration_s": args.duration.as_secs_f64(),
        "reports": reports,
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
