//! A local cluster of real processes: leaves and a root, each its own OS process, so that faults
//! (SIGSTOP, SIGKILL) hit them the way they would hit a server.
//!
//! Every process is this crate's `fanout-cluster` binary re-run with its `leaf` or `root`
//! subcommand, which run exactly the code of `fanout-leaf` and `fanout-root`. Each binds port 0
//! and prints `listening on ADDR` first thing; the launcher reads that line, so there are no
//! port races. Logs go to files under the data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use std::sync::Arc;

use anyhow::{bail, Context};
use fanout_indexer::{index_inputs, IndexerOptions, Input, RejectLog, Summary, WriteMode};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::InfoRequest;
use fanout_proto::{ReplicaAddr, ShardSpec, Topology};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The demo corpus, WordNet 3.0 (see demo/LICENSE-WordNet).
const DEMO_CORPUS: &str = "demo/wordnet.ndjson.gz";

/// The bundled demo corpus: `demo/` under the working directory, or else beside this crate.
pub fn default_corpus() -> PathBuf {
    let local = PathBuf::from(DEMO_CORPUS);
    if local.exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DEMO_CORPUS)
}

/// The shape and place of a local cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Number of shards.
    pub shards: u32,
    /// Replicas of every shard.
    pub replicas: u32,
    /// Root of the replicas' data directories, the topology file and the logs.
    pub data_dir: PathBuf,
    /// Where the root's HTTP API listens.
    pub http_listen: String,
    /// The program to run with `leaf ...` and `root ...` (normally the current executable).
    pub program: PathBuf,
    /// Extra flags for every root (e.g. timeouts).
    pub root_args: Vec<String>,
    /// Extra flags for every leaf (e.g. the refresh interval).
    pub leaf_args: Vec<String>,
}

impl ClusterSpec {
    /// `shards` x `replicas` run by `program` in `data_dir`, the root on a free port, no extra
    /// flags.
    pub fn new(shards: u32, replicas: u32, data_dir: PathBuf, program: PathBuf) -> Self {
        Self {
            shards,
            replicas,
            data_dir,
            http_listen: "127.0.0.1:0".into(),
            program,
            root_args: Vec::new(),
            leaf_args: Vec::new(),
        }
    }
}

/// The shape of a local cluster a command starts.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ClusterShape {
    /// Number of shards.
    #[arg(long, default_value_t = 2)]
    pub shards: u32,
    /// Replicas of every shard.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
}

impl ClusterShape {
    /// A cluster of this shape in `data_dir`, run by the `fanout-cluster` binary beside this one.
    pub fn spec(
        &self,
        data_dir: &std::path::Path,
        leaf_args: Vec<String>,
    ) -> anyhow::Result<ClusterSpec> {
        let program = sibling_binary("fanout-cluster")?;
        Ok(ClusterSpec {
            leaf_args,
            ..ClusterSpec::new(self.shards, self.replicas, data_dir.to_path_buf(), program)
        })
    }
}

/// Another binary of this package, built beside this one.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p fanout-loadtest`",
            path.display()
        );
    }
    Ok(path)
}

/// One running process of the cluster.
pub struct Process {
    /// `root` or `leaf-SHARD-REPLICA`.
    pub name: String,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// When it was started.
    pub started: std::time::Instant,
    child: Child,
}

impl Process {
    /// How the process ended, if it has; asks again each time (the status is kept once it
    /// is known).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Asks the process to stop (SIGTERM), and kills it if it has not after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would, and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A process of the cluster that exited.
#[derive(Debug, Clone)]
pub struct Exited {
    /// `root` or `leaf-SHARD-REPLICA`.
    pub name: String,
    /// How it ended.
    pub status: std::process::ExitStatus,
    /// How long it had run.
    pub uptime: Duration,
    /// Its log, whose end usually says why.
    pub log: PathBuf,
}

/// A running local cluster. Dropping it kills every process.
pub struct LocalCluster {
    /// Per shard, its replicas.
    pub leaves: Vec<Vec<Process>>,
    /// The root, once started.
    pub root: Option<Process>,
    /// Every shard and its replicas' addresses.
    pub topology: Topology,
    /// The topology, as the file the root reads.
    pub topology_file: PathBuf,
}

impl LocalCluster {
    /// Starts every leaf, in parallel, and writes the topology file. The root is started
    /// separately by [`LocalCluster::start_root`], once the leaves hold their documents.
    pub async fn start_leaves(spec: &ClusterSpec) -> anyhow::Result<Self> {
        std::fs::create_dir_all(spec.data_dir.join("logs"))?;
        let mut starts = Vec::new();
        for shard in 0..spec.shards {
            for replica in 0..spec.replicas {
                starts.push(start_leaf(spec, shard, replica, "127.0.0.1:0"));
            }
        }
        let mut started = futures::future::try_join_all(starts).await?.into_iter();
        let mut leaves = Vec::new();
        let mut specs = Vec::new();
        for shard in 0..spec.shards {
            let procs: Vec<Process> = started.by_ref().take(spec.replicas as usize).collect();
            let replicas = procs
                .iter()
                .map(|p| ReplicaAddr::parse(&p.addr.to_string()))
                .collect::<Result<_, _>>()?;
            specs.push(ShardSpec {
                id: shard,
                replicas,
            });
            leaves.push(procs);
        }
        let topology = Topology::new(specs)?;
        let topology_file = spec.data_dir.join("topology.toml");
        std::fs::write(&topology_file, topology.to_toml())?;
        Ok(Self {
            leaves,
            root: None,
            topology,
            topology_file,
        })
    }

    /// Starts leaf `name` (`leaf-SHARD-REPLICA`) again after it died, on the same address and
    /// data directory, and waits until it listens (its log replayed).
    pub async fn restart_leaf(&mut self, spec: &ClusterSpec, name: &str) -> anyhow::Result<()> {
        let (shard, replica) =
            parse_leaf_name(name).with_context(|| format!("{name} is not a leaf's name"))?;
        let slot = self
            .leaves
            .get_mut(shard as usize)
            .and_then(|r| r.get_mut(replica as usize))
            .with_context(|| format!("no {name} in this cluster"))?;
        let addr = slot.addr.to_string();
        *slot = start_leaf(spec, shard, replica, &addr).await?;
        Ok(())
    }

    /// Starts the root again after it died, on the address it had.
    pub async fn restart_root(&mut self, spec: &ClusterSpec) -> anyhow::Result<()> {
        let addr = self.root.as_ref().context("this cluster has no root")?.addr;
        self.root = Some(self.spawn_root(spec, &addr.to_string()).await?);
        Ok(())
    }

    /// The data directory of the process called `name`, if it is a leaf.
    pub fn data_dir(&self, spec: &ClusterSpec, name: &str) -> Option<PathBuf> {
        let (shard, replica) = parse_leaf_name(name)?;
        Some(leaf_data_dir(spec, shard, replica))
    }

    /// Starts the process called `name` again after it died.
    pub async fn restart(&mut self, spec: &ClusterSpec, name: &str) -> anyhow::Result<()> {
        if name == "root" {
            self.restart_root(spec).await
        } else {
            self.restart_leaf(spec, name).await
        }
    }

    /// Every process that has exited, with how it ended and how long it had run.
    pub fn exited(&mut self) -> Vec<Exited> {
        self.root
            .iter_mut()
            .chain(self.leaves.iter_mut().flatten())
            .filter_map(|p| {
                let status = p.exit_status()?;
                Some(Exited {
                    name: p.name.clone(),
                    status,
                    uptime: p.started.elapsed(),
                    log: p.log.clone(),
                })
            })
            .collect()
    }

    /// The process called `name`, to signal or kill.
    pub fn process_mut(&mut self, name: &str) -> Option<&mut Process> {
        self.root
            .iter_mut()
            .chain(self.leaves.iter_mut().flatten())
            .find(|p| p.name == name)
    }

    /// Starts the root over the leaves and waits until it is ready.
    pub async fn start_root(&mut self, spec: &ClusterSpec) -> anyhow::Result<String> {
        let root = self.spawn_root(spec, &spec.http_listen).await?;
        let url = format!("http://{}", root.addr);
        self.root = Some(root);
        wait_ready(&url, Duration::from_secs(30)).await?;
        Ok(url)
    }

    async fn spawn_root(&self, spec: &ClusterSpec, listen: &str) -> anyhow::Result<Process> {
        let mut cmd = Command::new(&spec.program);
        cmd.arg("root")
            .args(["--listen", listen])
            .arg("--topology")
            .arg(&self.topology_file);
        cmd.args(&spec.root_args);
        spawn_server(cmd, "root".into(), &spec.data_dir).await
    }

    /// Documents visible in the cluster, counted on each shard's first replica.
    pub async fn count_documents(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for spec in self.topology.shards() {
            let mut client = LeafClient::connect(spec.replicas[0].as_uri().to_string()).await?;
            total += client.info(InfoRequest {}).await?.into_inner().num_docs;
        }
        Ok(total)
    }

    /// Indexes NDJSON files (one corpus) into the leaves with the indexer's code; fails unless
    /// every replica took every document.
    pub async fn index_corpus<P: AsRef<Path>>(
        &self,
        files: impl IntoIterator<Item = P>,
    ) -> anyhow::Result<Summary> {
        self.write_corpus(files, WriteMode::Upsert).await
    }

    /// Deletes the documents of NDJSON files (by their ids) with the indexer's code; fails
    /// unless every replica deleted every one.
    pub async fn delete_corpus<P: AsRef<Path>>(
        &self,
        files: impl IntoIterator<Item = P>,
    ) -> anyhow::Result<Summary> {
        self.write_corpus(files, WriteMode::Delete).await
    }

    async fn write_corpus<P: AsRef<Path>>(
        &self,
        files: impl IntoIterator<Item = P>,
        mode: WriteMode,
    ) -> anyhow::Result<Summary> {
        let inputs = files
            .into_iter()
            .map(|f| Input::open(f.as_ref()))
            .collect::<Result<_, _>>()?;
        let rejects = Arc::new(RejectLog::new(None));
        let options = IndexerOptions {
            mode,
            ..IndexerOptions::default()
        };
        let summary =
            index_inputs(&self.topology, inputs, &options, rejects, Arc::default()).await?;
        if !summary.is_complete() {
            bail!(
                "writing failed: {:?} {:?}",
                summary.replica_failures,
                summary.input_errors
            );
        }
        Ok(summary)
    }

    /// Watches the CPU of the spawned cluster's processes and of this one.
    pub fn cpu_meter(&self) -> crate::cpu::CpuMeter {
        let mut meter = crate::cpu::CpuMeter::default().with_self("load generator");
        for (role, process) in self
            .root
            .iter()
            .map(|p| ("root", p))
            .chain(self.leaves.iter().flatten().map(|p| ("leaves", p)))
        {
            if let Some(pid) = process.pid() {
                meter = meter.with(role, pid);
            }
        }
        meter
    }

    /// The process called `name` (`root`, or `leaf-SHARD-REPLICA`).
    pub fn process(&self, name: &str) -> Option<&Process> {
        self.root
            .iter()
            .chain(self.leaves.iter().flatten())
            .find(|p| p.name == name)
    }

    /// Stops every process gracefully.
    pub async fn stop(mut self) {
        let grace = Duration::from_secs(5);
        if let Some(root) = self.root.take() {
            root.stop(grace).await;
        }
        let stops = self.leaves.drain(..).flatten().map(|p| p.stop(grace));
        futures::future::join_all(stops).await;
    }
}

/// The line a process's log gets before each start, so that a report shows one run's lines.
pub const RUN_MARKER: &str = "=== fanout-cluster starts";

/// The last `n` lines of the log at `path`, from its latest run (since the last [`RUN_MARKER`]);
/// none if it cannot be read. Reads at most the last 64 KiB, since a log can be large.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let latest = text.rfind(RUN_MARKER).map_or(&text[..], |at| &text[at..]);
    let lines: Vec<&str> = latest
        .lines()
        .skip_while(|l| l.starts_with(RUN_MARKER))
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// `leaf-SHARD-REPLICA` as numbers.
fn parse_leaf_name(name: &str) -> Option<(u32, u32)> {
    let (shard, replica) = name.strip_prefix("leaf-")?.split_once('-')?;
    Some((shard.parse().ok()?, replica.parse().ok()?))
}

/// Where leaf `shard`/`replica` keeps its data.
fn leaf_data_dir(spec: &ClusterSpec, shard: u32, replica: u32) -> PathBuf {
    spec.data_dir
        .join(format!("shard-{shard}"))
        .join(format!("replica-{replica}"))
}

/// Starts one leaf process on `listen`.
async fn start_leaf(
    spec: &ClusterSpec,
    shard: u32,
    replica: u32,
    listen: &str,
) -> anyhow::Result<Process> {
    let name = format!("leaf-{shard}-{replica}");
    let data = leaf_data_dir(spec, shard, replica);
    let mut cmd = Command::new(&spec.program);
    cmd.arg("leaf")
        .args(["--listen", listen, "--shard", &shard.to_string()])
        .args(["--replica", &name])
        .arg("--data-dir")
        .arg(data)
        .args(&spec.leaf_args);
    spawn_server(cmd, name, &spec.data_dir).await
}

/// Spawns a server process and waits for its `listening on ADDR` line.
async fn spawn_server(mut cmd: Command, name: String, data_dir: &Path) -> anyhow::Result<Process> {
    let log_path = data_dir.join("logs").join(format!("{name}.log"));
    // Appended to, so that a restarted process's log follows its predecessor's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut log = log;
    std::io::Write::write_all(&mut log, format!("{RUN_MARKER} {name} ===\n").as_bytes())?;
    cmd.stdout(Stdio::piped())
        .stderr(log)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe; this runs in the child between fork and exec.
    unsafe {
        // If the launcher dies without cleaning up, its servers die with it.
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
    let addr = match first {
        Ok(Ok(Some(line))) => line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok()),
        _ => None,
    };
    let Some(addr) = addr else {
        let _ = child.kill().await;
        let log = log_tail(&log_path, 20).join("\n");
        bail!(
            "{name} did not start; its log ({}) ends:\n{log}",
            log_path.display()
        );
    };
    // Keep draining stdout so that the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Process {
        name,
        addr,
        log: log_path,
        started: std::time::Instant::now(),
        child,
    })
}

/// Polls `/v1/ready` until it answers 200.
pub async fn wait_ready(url: &str, limit: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(r) = client.get(format!("{url}/v1/ready")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the root at {url} was not ready within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_tail_is_the_last_lines_of_the_latest_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leaf.log");
        let log = format!("{RUN_MARKER} a ===\nold\n{RUN_MARKER} a ===\none\ntwo\n\nthree\n\n");
        std::fs::write(&path, log).unwrap();
        assert_eq!(log_tail(&path, 2), ["two", "three"]);
        assert_eq!(log_tail(&path, 10), ["one", "two", "three"]);
        std::fs::write(&path, "no marker\nat all\n").unwrap();
        assert_eq!(log_tail(&path, 10), ["no marker", "at all"]);
        assert!(log_tail(&dir.path().join("missing.log"), 3).is_empty());
    }

    #[test]
    fn leaf_names_parse_and_others_do_not() {
        assert_eq!(parse_leaf_name("leaf-3-1"), Some((3, 1)));
        assert_eq!(parse_leaf_name("root"), None);
        assert_eq!(parse_leaf_name("leaf-x-1"), None);
    }
}
