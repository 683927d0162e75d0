//! `fanout-loadtest fuzz`: the long fuzz run before a release. It starts a cluster of real
//! leaf and root processes on a corpus, sends [`crate::fuzz`]'s hostile cases from several
//! workers for as long as asked (a tenth of them straight to a leaf's gRPC port), and watches
//! the processes: none may exit, every answer must pass [`judge`], and no leaf's resident
//! memory may pass the bound. Exits non-zero otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use fanout_proto::pb::leaf_client::LeafClient;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::cluster::{default_corpus, Exited, LocalCluster};
use crate::fuzz::{case, judge, leaf_case, leaf_code_is_fine};

/// `fuzz`: hostile searches against a local cluster for a while.
#[derive(Debug, Clone, Args)]
pub struct FuzzArgs {
    /// How long to run (`10m`, `30s`).
    #[arg(long, default_value = "10m", value_parser = fanout_proto::args::parse_duration)]
    pub duration: Duration,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = fanout_proto::args::at_least_one)]
    pub concurrency: usize,
    /// Seed of the cases; worker `w` uses `seed + w`.
    #[arg(long, default_value_t = 14)]
    pub seed: u64,
    /// The NDJSON corpus; default: the bundled demo corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// The cluster to start.
    #[command(flatten)]
    pub shape: crate::cluster::ClusterShape,
    /// Fail if a leaf's resident memory ever passes this many MiB.
    #[arg(long, default_value_t = 512)]
    pub leaf_rss_bound_mib: u64,
}

/// What the run saw.
#[derive(Debug, Default)]
struct Tally {
    http: BTreeMap<u16, u64>,
    grpc: BTreeMap<String, u64>,
    /// Answers a healthy cluster may not give: the first few, with their requests.
    violations: Vec<String>,
    violation_count: u64,
}

impl Tally {
    fn violation(&mut self, what: String) {
        self.violation_count += 1;
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }
}

/// Runs the long fuzz and prints what it saw.
pub async fn run(args: FuzzArgs) -> anyhow::Result<()> {
    let corpus = args.corpus.clone().unwrap_or_else(default_corpus);
    let scratch = tempfile::tempdir()?;
    let spec = args.shape.spec(scratch.path(), Vec::new())?;
    let mut cluster = LocalCluster::start_leaves(&spec).await?;
    eprintln!("indexing {} ...", corpus.display());
    cluster.index_corpus([&corpus]).await?;
    let url = cluster.start_root(&spec).await?;
    let leaves: Vec<String> = cluster
        .topology
        .shards()
        .iter()
        .flat_map(|s| s.replicas.iter().map(|r| r.as_uri().to_string()))
        .collect();
    let pids: Vec<(String, u32)> = cluster
        .leaves
        .iter()
        .flatten()
        .chain(cluster.root.iter())
        .filter_map(|p| Some((p.name.clone(), p.pid()?)))
        .collect();
    eprintln!(
        "fuzzing {url} for {:?} with {} workers",
        args.duration, args.concurrency
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let until = Instant::now() + args.duration;
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (url, leaves, tally) = (url.clone(), leaves.clone(), Arc::clone(&tally));
            tokio::spawn(worker(url, leaves, args.seed + w as u64, until, tally))
        })
        .collect();

    let (peak_rss, deaths) = watch(&mut cluster, &pids, until).await;
    for worker in workers {
        worker.abort();
        let _ = worker.await;
    }
    cluster.stop().await;

    verdict(&args, &tally.lock(), &peak_rss, &deaths)?;
    Ok(())
}

/// Samples every process's resident memory until `until`, or until one exits: the peaks, by
/// process, and the processes that exited.
async fn watch(
    cluster: &mut LocalCluster,
    pids: &[(String, u32)],
    until: Instant,
) -> (BTreeMap<String, u64>, Vec<Exited>) {
    let mut peak_rss: BTreeMap<String, u64> = BTreeMap::new();
    let mut deaths = Vec::new();
    while Instant::now() < until && deaths.is_empty() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (name, pid) in pids {
            let rss = rss_mib(*pid).unwrap_or(0);
            let peak = peak_rss.entry(name.clone()).or_default();
            *peak = (*peak).max(rss);
        }
        deaths = cluster.exited();
    }
    (peak_rss, deaths)
}

/// Prints what the run saw; fails on a death, a wrong answer, or a leaf over the bound.
fn verdict(
    args: &FuzzArgs,
    tally: &Tally,
    peak_rss: &BTreeMap<String, u64>,
    deaths: &[Exited],
) -> anyhow::Result<()> {
    let requests: u64 = tally.http.values().sum::<u64>() + tally.grpc.values().sum::<u64>();
    println!("requests: {requests} over {:?}", args.duration);
    println!("HTTP statuses: {:?}", tally.http);
    println!("gRPC codes: {:?}", tally.grpc);
    println!("peak resident memory, MiB: {peak_rss:?}");
    println!("violations: {}", tally.violation_count);
    for v in &tally.violations {
        println!("  {v}");
    }
    let leaf_peak = peak_rss
        .iter()
        .filter(|(name, _)| name.starts_with("leaf"))
        .map(|(_, &mib)| mib)
        .max()
        .unwrap_or(0);
    if !deaths.is_empty() {
        bail!("processes died: {deaths:?}");
    }
    if tally.violation_count > 0 {
        bail!(
            "{} answers a healthy cluster may not give",
            tally.violation_count
        );
    }
    if leaf_peak > args.leaf_rss_bound_mib {
        bail!(
            "a leaf reached {leaf_peak} MiB, over the bound of {} MiB",
            args.leaf_rss_bound_mib
        );
    }
    Ok(())
}

/// One case of either kind.
enum Hostile {
    Http(crate::fuzz::Case),
    Leaf(fanout_proto::pb::SearchRequest),
}

/// Generates cases from `seed` on a thread of their own (proptest's strategies cannot cross an
/// `.await`): nine in ten for HTTP, one for a leaf.
fn generate(seed: u64) -> tokio::sync::mpsc::Receiver<Hostile> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    std::thread::spawn(move || {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
        );
        let (http_cases, leaf_cases) = (case(), leaf_case());
        for n in 1u64.. {
            let hostile = if n % 10 == 0 {
                Hostile::Leaf(leaf_cases.new_tree(&mut runner).unwrap().current())
            } else {
                Hostile::Http(http_cases.new_tree(&mut runner).unwrap().current())
            };
            if tx.blocking_send(hostile).is_err() {
                return;
            }
        }
    });
    rx
}

/// Sends cases until `until`.
async fn worker(
    url: String,
    leaves: Vec<String>,
    seed: u64,
    until: Instant,
    tally: Arc<Mutex<Tally>>,
) {
    let mut cases = generate(seed);
    let client = reqwest::Client::new();
    // One channel per leaf for the whole run: a connection per case would fuzz the
    // handshake, not the leaf.
    let mut grpc: Vec<_> = leaves
        .iter()
        .map(|uri| {
            let channel = tonic::transport::Endpoint::from_shared(uri.clone())
                .expect("a topology address is a URI")
                .connect_lazy();
            LeafClient::new(channel).max_decoding_message_size(fanout_proto::MAX_MESSAGE_BYTES)
        })
        .collect();
    let mut n = 0usize;
    while Instant::now() < until {
        let Some(hostile) = cases.recv().await else {
            return;
        };
        match hostile {
            Hostile::Leaf(request) => {
                n += 1;
                let leaf = &leaves[n % leaves.len()];
                let code = leaf_search(&mut grpc[n % leaves.len()], request.clone()).await;
                let mut tally = tally.lock();
                *tally.grpc.entry(format!("{code:?}")).or_default() += 1;
                if !leaf_code_is_fine(code) {
                    let query: String = request.query.chars().take(200).collect();
                    tally.violation(format!(
                        "leaf {leaf} answered {code:?} to size={} from={} timeout_ms={} q={query:?}",
                        request.size, request.from, request.timeout_ms
                    ));
                }
            }
            Hostile::Http(case) => {
                let (status, body) = match case.request(&client, &url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        (status, response.bytes().await.unwrap_or_default())
                    }
                    Err(e) => (0, e.to_string().into_bytes().into()),
                };
                let mut tally = tally.lock();
                *tally.http.entry(status).or_default() += 1;
                if let Err(why) = judge(status, &body) {
                    let params: Vec<(String, String)> = case
                        .params
                        .iter()
                        .map(|(k, v)| (k.clone(), v.chars().take(200).collect()))
                        .collect();
                    tally.violation(format!("{why} for {params:?}"));
                }
            }
        }
    }
}

/// Sends `request` to a leaf; the gRPC code it answered.
async fn leaf_search(
    client: &mut LeafClient<tonic::transport::Channel>,
    request: fanout_proto::pb::SearchRequest,
) -> tonic::Code {
    // Far past any deadline a search may ask for: a leaf this slow is hung, which counts as
    // unavailable (a violation), not as a worker stalled for the rest of the run.
    let answer = tokio::time::timeout(Duration::from_secs(60), client.search(request)).await;
    match answer {
        Ok(Ok(_)) => tonic::Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => tonic::Code::Unavailable,
    }
}

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
