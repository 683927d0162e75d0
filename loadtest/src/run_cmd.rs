//! `fanout-loadtest run`: load against a root (given, or a local cluster it starts), with
//! faults on a schedule, and optionally the same load on one in-process tantivy index, then
//! the report: a table, a sweep's rows, JSON, SVG.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

use crate::cluster::{sibling_binary, ClusterSpec, LocalCluster};
use crate::cpu::CpuMeter;
use crate::direct::{build_direct_index, corpus_name, corpus_or_demo, load_queries};
use crate::faults::{parse_kill, parse_pause, run_faults, Fault};
use crate::load::{run_load, LoadPlan, Mode, Scenario, Target};
use crate::report::{rows, table, ScenarioReport};
use crate::schedule::Arrivals;
use crate::sweep::sweep;
use fanout_proto::args::{at_least_one, parse_duration};

/// `run`: load against a root, with faults, and optionally against tantivy alone.
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
    /// A flag for the spawned root, e.g. --root-arg=--hedge-max-delay=50ms; repeatable.
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
    #[arg(long, env = "FANOUT_LOADTEST_CONCURRENCY", value_parser = at_least_one)]
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

/// A sweep's result for one target: its label, the highest rate that met the target, and the
/// p50 at low load.
type SweepSummary = (&'static str, Option<f64>, u64);

/// Runs the load, then reports.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let queries = Arc::new(load_queries(&args.queries, args.shuffle_seed)?);
    let corpus = corpus_or_demo(&args.corpus);
    let mut plan = load_plan(&args)?;
    let data = tempfile::tempdir()?;
    let (cluster, url) = target_root(&args, &corpus, data.path()).await?;
    let faults = resolve_faults(&args, cluster.as_ref())?;
    plan.cpu = cluster.as_ref().map(LocalCluster::cpu_meter);
    let (mut reports, mut summary) =
        load_root(&args, &url, Arc::clone(&queries), &plan, faults).await;
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    if args.direct {
        let (direct, found) = load_direct(&args, corpus, queries, plan).await?;
        reports.extend(direct);
        summary.extend(found);
    }
    print_report(&args, &reports, &summary);
    if let Some(path) = &args.json {
        write_json(path, &args, &reports)?;
    }
    if let Some(path) = &args.svg {
        let title = format!("latency by percentile ({})", describe(&args));
        std::fs::write(path, crate::svg::percentile_svg(&reports, &title))?;
    }
    Ok(())
}

/// The load the flags describe: scenarios, open or closed loop, times.
fn load_plan(args: &RunArgs) -> anyhow::Result<LoadPlan> {
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
    Ok(LoadPlan {
        mode,
        warmup: args.warmup,
        duration: args.duration,
        scenarios,
        size: args.size,
        timeout: args.timeout,
        progress: !args.quiet,
        cpu: None,
    })
}

/// The root to load: the one at --url, or a local cluster started in `data` and filled with
/// the corpus.
async fn target_root(
    args: &RunArgs,
    corpus: &[PathBuf],
    data: &std::path::Path,
) -> anyhow::Result<(Option<LocalCluster>, String)> {
    match (&args.url, args.spawn_cluster) {
        (Some(url), false) => Ok((None, url.clone())),
        (None, true) => {
            let program = sibling_binary("fanout-cluster")?;
            let spec = ClusterSpec {
                root_args: args.root_arg.clone(),
                ..ClusterSpec::new(args.shards, args.replicas, data.to_path_buf(), program)
            };
            let mut cluster = LocalCluster::start_leaves(&spec).await?;
            eprintln!(
                "indexing {} into {} x {} ...",
                corpus_name(corpus),
                args.shards,
                args.replicas
            );
            let summary = cluster.index_corpus(corpus).await?;
            eprintln!(
                "indexed {} documents in {:.1} s",
                summary.docs_indexed,
                summary.elapsed.as_secs_f64()
            );
            let url = cluster.start_root(&spec).await?;
            Ok((Some(cluster), url))
        }
        _ => bail!("pass exactly one of --url URL and --spawn-cluster"),
    }
}

/// The load (or the sweep) against the root at `url`, with the faults on their schedule from
/// the moment the load starts.
async fn load_root(
    args: &RunArgs,
    url: &str,
    queries: Arc<Vec<String>>,
    plan: &LoadPlan,
    faults: Vec<Fault>,
) -> (Vec<ScenarioReport>, Vec<SweepSummary>) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let fault_window = plan.warmup + plan.duration;
    let faulting = tokio::spawn(async move {
        if let Ok(start) = started_rx.await {
            run_faults(faults, start, fault_window).await;
        }
    });
    let target = Target::http(url);
    let result = match args.sweep_p99 {
        None => (
            run_load(&target, queries, plan, Some(started_tx)).await,
            Vec::new(),
        ),
        Some(p99) => {
            let found = sweep(&target, &queries, plan, p99, args.low_rate, "cluster").await;
            (
                found.reports,
                vec![("cluster", found.best, found.low_p50_us)],
            )
        }
    };
    faulting.abort();
    let _ = faulting.await;
    result
}

/// The same load (or sweep) on one in-process tantivy index of the corpus: the baseline.
async fn load_direct(
    args: &RunArgs,
    corpus: Vec<PathBuf>,
    queries: Arc<Vec<String>>,
    mut plan: LoadPlan,
) -> anyhow::Result<(Vec<ScenarioReport>, Vec<SweepSummary>)> {
    eprintln!(
        "building the direct baseline from {} ...",
        corpus_name(&corpus)
    );
    let index = tokio::task::spawn_blocking(move || build_direct_index(&corpus)).await??;
    let direct = Target::direct(index);
    plan.cpu = Some(CpuMeter::default().with_self("load generator + tantivy"));
    Ok(match args.sweep_p99 {
        None => {
            let direct_plan = LoadPlan {
                scenarios: vec![Scenario {
                    name: "direct".into(),
                    params: Vec::new(),
                }],
                ..plan
            };
            (
                run_load(&direct, queries, &direct_plan, None).await,
                Vec::new(),
            )
        }
        Some(p99) => {
            let found = sweep(&direct, &queries, &plan, p99, args.low_rate, "direct").await;
            (
                found.reports,
                vec![("direct", found.best, found.low_p50_us)],
            )
        }
    })
}

/// The table (or a sweep's rows), each sweep's findings, and cluster against direct.
fn print_report(args: &RunArgs, reports: &[ScenarioReport], summary: &[SweepSummary]) {
    if args.sweep_p99.is_some() {
        print!("{}", rows(reports));
    } else {
        print!("{}", table(reports));
    }
    let target = args.sweep_p99.unwrap_or_default();
    for (label, best, low_p50) in summary {
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
    if let [(_, cluster, cluster_p50), (_, direct, direct_p50)] = summary {
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
