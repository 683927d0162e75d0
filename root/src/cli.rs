//! The `fanout-root` command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fanout_proto::Topology;

use fanout_proto::args::{duration_at_least, parse_duration};

use crate::admission::{AdmissionPolicy, LimitMode};
use crate::api::RootState;
use crate::cluster::Cluster;
use crate::config::RootConfig;
use crate::config::StatsMode;
use crate::discovery::{shard_names, Discovery, SystemResolver};
use crate::hedge::HedgePolicy;
use crate::replica::ReplicaPolicy;

/// Serves the fanout HTTP search API over a cluster of leaves.
#[derive(Debug, Clone, Parser)]
#[command(name = "fanout-root", version)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port. Once bound, the root prints
    /// `listening on ADDR` as the first line of standard output.
    #[arg(long, env = "FANOUT_ROOT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Topology file (TOML) naming every shard's replicas.
    #[arg(long, env = "FANOUT_ROOT_TOPOLOGY", conflicts_with_all = ["shard", "discover"])]
    pub topology: Option<PathBuf>,
    /// A shard and its replicas, `ID=HOST:PORT[,HOST:PORT...]`; repeat for every shard (in the
    /// environment, separate shards with spaces).
    #[arg(
        long,
        env = "FANOUT_ROOT_SHARD",
        value_name = "SPEC",
        value_delimiter = ' ',
        conflicts_with = "discover"
    )]
    pub shard: Vec<String>,
    /// Find each shard's replicas in DNS instead: the name of shard S is this template with
    /// `{shard}` replaced by S, such as `fanout-leaf-{shard}:7000` (a headless Service per
    /// shard). Needs --num-shards.
    #[arg(
        long,
        env = "FANOUT_ROOT_DISCOVER",
        value_name = "TEMPLATE",
        requires = "num_shards"
    )]
    pub discover: Option<String>,
    /// How many shards there are, with --discover.
    #[arg(long, env = "FANOUT_ROOT_NUM_SHARDS", requires = "discover")]
    pub num_shards: Option<u32>,
    /// How often --discover resolves the shards' names again (`5s`, `500ms`).
    #[arg(long, env = "FANOUT_ROOT_DISCOVER_INTERVAL", default_value = "5s", value_parser = at_least_100ms)]
    pub discover_interval: Duration,
    /// On SIGTERM, keep serving this long with readiness failing before refusing new
    /// connections, so that load balancers stop sending first (`5s`; default 0).
    #[arg(long, env = "FANOUT_ROOT_SHUTDOWN_DELAY", default_value = "0s", value_parser = fanout_proto::args::parse_duration)]
    pub shutdown_delay: Duration,
    /// Close a connection whose client takes longer than this to send a request's head,
    /// counted from when it connected or was last answered: this is also the idle timeout of
    /// keep-alive connections.
    #[arg(long, env = "FANOUT_ROOT_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = at_least_100ms)]
    pub header_read_timeout: Duration,
    /// Answer 408 to a request whose body takes longer than this to arrive.
    #[arg(long, env = "FANOUT_ROOT_BODY_READ_TIMEOUT", default_value = "10s", value_parser = at_least_100ms)]
    pub body_read_timeout: Duration,
    /// Close a connection whose client has not taken any of a response for this long.
    #[arg(long, env = "FANOUT_ROOT_WRITE_TIMEOUT", default_value = "10s", value_parser = at_least_100ms)]
    pub write_timeout: Duration,
    /// Most HTTP connections served at once; past it new ones wait in the listen backlog.
    #[arg(long, env = "FANOUT_ROOT_MAX_CONNECTIONS", default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Deadline of a search that names none (`2s`, `500ms`).
    #[arg(long, env = "FANOUT_ROOT_DEFAULT_TIMEOUT", default_value = "2s", value_parser = at_least_1ms)]
    pub default_timeout: Duration,
    /// Longest deadline a search may ask for; at least --default-timeout.
    #[arg(long, env = "FANOUT_ROOT_MAX_TIMEOUT", default_value = "30s", value_parser = at_least_1ms)]
    pub max_timeout: Duration,
    /// How often replicas' health is probed.
    #[arg(long, env = "FANOUT_ROOT_PROBE_INTERVAL", default_value = "1s", value_parser = at_least_10ms)]
    pub probe_interval: Duration,
    /// BM25 statistics: `global` scores every shard with the cluster's (a split index ranks as
    /// one index would; a cold query costs one statistics round trip), `shard` with each
    /// shard's own. A request can also say `stats=shard` or `stats=global`.
    #[arg(long, env = "FANOUT_ROOT_STATS", value_enum, default_value_t = StatsMode::Global)]
    pub stats: StatsMode,
    /// Hedging: `on` or `off` for every request (a request can also say `hedge=false`).
    #[arg(long, env = "FANOUT_ROOT_HEDGE", value_enum, default_value_t = Switch::On)]
    pub hedge: Switch,
    /// Hedge once a shard request has been outstanding longer than this percentile of the
    /// shard's recent latencies.
    #[arg(long, env = "FANOUT_ROOT_HEDGE_PERCENTILE", default_value_t = 0.95, value_parser = fraction)]
    pub hedge_percentile: f64,
    /// Shortest hedge delay.
    #[arg(long, env = "FANOUT_ROOT_HEDGE_MIN_DELAY", default_value = "1ms", value_parser = parse_duration)]
    pub hedge_min_delay: Duration,
    /// Longest hedge delay (also used until a shard has enough latencies); at least
    /// --hedge-min-delay.
    #[arg(long, env = "FANOUT_ROOT_HEDGE_MAX_DELAY", default_value = "200ms", value_parser = parse_duration)]
    pub hedge_max_delay: Duration,
    /// Hedges allowed per primary request on average (a token bucket).
    #[arg(long, env = "FANOUT_ROOT_HEDGE_BUDGET", default_value_t = 0.05, value_parser = non_negative)]
    pub hedge_budget: f64,
    /// Hedges that may be sent in a burst when the budget is full.
    #[arg(long, env = "FANOUT_ROOT_HEDGE_BURST", default_value_t = 10.0, value_parser = non_negative)]
    pub hedge_burst: f64,
    /// How many searches run at once: `adaptive` (a limit that follows the measured latency,
    /// between 8 and --max-in-flight), a fixed number, or `off` (no limit). Past the limit a
    /// search waits in a short queue, and past that it is refused with 503 and `Retry-After`.
    #[arg(long, env = "FANOUT_ROOT_ADMISSION", default_value = "adaptive", value_parser = limit_mode)]
    pub admission: LimitMode,
    /// The adaptive limit's ceiling.
    #[arg(long, env = "FANOUT_ROOT_MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(8..))]
    pub max_in_flight: u32,
    /// Searches that may wait for a place once the limit is reached; 0 refuses at once.
    #[arg(long, env = "FANOUT_ROOT_ADMISSION_QUEUE", default_value_t = 32)]
    pub admission_queue: u32,
    /// Longest a search waits for a place (never past what its deadline allows).
    #[arg(long, env = "FANOUT_ROOT_ADMISSION_WAIT", default_value = "10ms", value_parser = parse_duration)]
    pub admission_wait: Duration,
    /// Failures in a row that eject a replica.
    #[arg(long, env = "FANOUT_ROOT_EJECT_AFTER", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub eject_after: u32,
    /// First ejection's length; doubles with each further ejection.
    #[arg(long, env = "FANOUT_ROOT_EJECT_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub eject_backoff: Duration,
    /// Longest ejection; at least --eject-backoff.
    #[arg(long, env = "FANOUT_ROOT_EJECT_MAX_BACKOFF", default_value = "30s", value_parser = parse_duration)]
    pub eject_max_backoff: Duration,
    /// A replica with requests outstanding that answers none for this long is sent a health
    /// check, which must answer within as long again; if it does not, the replica has stalled:
    /// requests waiting on it are hedged at once (whatever the budget), new ones go elsewhere,
    /// and a shard whose replicas all stalled answers at once as missing.
    #[arg(long, env = "FANOUT_ROOT_STALL_AFTER", default_value = "50ms", value_parser = at_least_10ms)]
    pub stall_after: Duration,
    /// Limits on what one query may ask, shared with the leaves.
    #[command(flatten)]
    pub query: fanout_proto::query::QueryLimitArgs,
}

impl Args {
    /// The topology from `--topology` or `--shard`.
    pub fn topology(&self) -> Result<Topology, fanout_proto::TopologyError> {
        Topology::from_file_or_specs(self.topology.as_deref(), &self.shard)
    }

    /// The cluster these flags name: fixed replicas, or shards to fill in from DNS.
    pub fn cluster(&self, config: &RootConfig) -> anyhow::Result<(Cluster, Option<Discovery>)> {
        let Some(template) = &self.discover else {
            return Ok((Cluster::connect(&self.topology()?, config)?, None));
        };
        let names = shard_names(template, self.num_shards.unwrap_or(0))?;
        let cluster = Cluster::empty(names.len() as u32, config);
        let discovery = Discovery {
            names,
            resolver: Arc::new(SystemResolver),
            interval: self.discover_interval,
        };
        Ok((cluster, Some(discovery)))
    }

    /// The configuration these flags describe, or which flags disagree.
    pub fn config(&self) -> anyhow::Result<RootConfig> {
        at_least(
            self.max_timeout,
            "--max-timeout",
            self.default_timeout,
            "--default-timeout",
        )?;
        at_least(
            self.hedge_max_delay,
            "--hedge-max-delay",
            self.hedge_min_delay,
            "--hedge-min-delay",
        )?;
        at_least(
            self.eject_max_backoff,
            "--eject-max-backoff",
            self.eject_backoff,
            "--eject-backoff",
        )?;
        let admission = AdmissionPolicy {
            mode: self.admission,
            max_in_flight: self.max_in_flight as usize,
            queue: self.admission_queue as usize,
            max_wait: self.admission_wait,
            ..AdmissionPolicy::default()
        };
        admission.validate().map_err(anyhow::Error::msg)?;
        Ok(RootConfig {
            default_timeout: self.default_timeout,
            max_timeout: self.max_timeout,
            probe_interval: self.probe_interval,
            shutdown_delay: self.shutdown_delay,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            write_timeout: self.write_timeout,
            max_connections: self.max_connections as usize,
            stats: self.stats,
            admission,
            hedge: HedgePolicy {
                enabled: self.hedge == Switch::On,
                percentile: self.hedge_percentile,
                min_delay: self.hedge_min_delay,
                max_delay: self.hedge_max_delay,
                budget_ratio: self.hedge_budget,
                budget_burst: self.hedge_burst,
                ..HedgePolicy::default()
            },
            replica: ReplicaPolicy {
                consecutive_failures: self.eject_after,
                base_backoff: self.eject_backoff,
                max_backoff: self.eject_max_backoff,
                stall_after: self.stall_after,
                ..ReplicaPolicy::default()
            },
            query: self.query.limits(),
            ..RootConfig::default()
        })
    }
}

/// A feature turned on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// Fails unless `value` (of flag `name`) is at least `floor` (of flag `floor_name`).
fn at_least(value: Duration, name: &str, floor: Duration, floor_name: &str) -> anyhow::Result<()> {
    if value < floor {
        anyhow::bail!("{name} ({value:?}) must be at least {floor_name} ({floor:?})");
    }
    Ok(())
}

/// `adaptive`, `off`, or a fixed limit of at least 1.
fn limit_mode(s: &str) -> Result<LimitMode, String> {
    match s {
        "adaptive" => Ok(LimitMode::Adaptive),
        "off" => Ok(LimitMode::Off),
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(LimitMode::Fixed(n)),
            _ => Err(format!(
                "{s:?} is not `adaptive`, `off` or a number of searches of at least 1"
            )),
        },
    }
}

/// A number from 0 to 1.
fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number from 0 to 1")),
    }
}

/// A finite number of at least 0.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of at least 0")),
    }
}

/// A deadline: at least 1 ms.
fn at_least_1ms(s: &str) -> Result<Duration, String> {
    duration_at_least(s, Duration::from_millis(1))
}

/// A probe interval: at least 10 ms, or the prober would spin.
fn at_least_10ms(s: &str) -> Result<Duration, String> {
    duration_at_least(s, Duration::from_millis(10))
}

/// A connection timeout or discovery interval: at least 100 ms; shorter ones would cut off
/// every client or spin.
fn at_least_100ms(s: &str) -> Result<Duration, String> {
    duration_at_least(s, Duration::from_millis(100))
}

/// Binds, prints the bound address and serves until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config()?;
    // Before the cluster: it registers its metric handles with whatever recorder is installed.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let (cluster, discovery) = args.cluster(&config)?;
    let shards = cluster.shards().len();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, shards, discovery = args.discover.as_deref(), "root serving");
    println!("listening on {addr}");
    let mut state = RootState::new(Arc::new(cluster), config).with_metrics(metrics);
    if let Some(discovery) = discovery {
        state = state.with_discovery(discovery);
    }
    let state = Arc::new(state);
    crate::server::serve(listener, state, fanout_proto::process::shutdown_signal()).await?;
    tracing::info!(%addr, "root stopped");
    Ok(())
}
