//! The bounded fuzz run of CI: seeded hostile searches against a root and real leaves (2
//! shards × 2 replicas, in this process, on part of the demo corpus), over HTTP and straight
//! to the leaves' gRPC ports. Every answer must be one a healthy cluster may give
//! ([`fanout_loadtest::fuzz::judge`]); afterwards every leaf still answers, the root is ready,
//! and the process's peak memory stayed under a bound.
//!
//! `FANOUT_FUZZ_CASES=N` runs N cases of each kind instead of the default; `FANOUT_FUZZ_SEED`
//! picks another seed. `fanout-loadtest fuzz` is the long run, against separate processes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use fanout_indexer::{index_inputs, IndexerOptions, Input, RejectLog};
use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_loadtest::fuzz::{case, judge, leaf_case, leaf_code_is_fine};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::InfoRequest;
use fanout_proto::{ReplicaAddr, ShardSpec, Topology};
use fanout_root::{Cluster, RootConfig, RootState};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

const DOCS: usize = 5_000;
const DEFAULT_CASES: u32 = 300;

/// How much the peak resident memory of this whole process (root, four leaves, the test)
/// may grow while the cases run, over what it held once the cluster was filled. One unbounded
/// query used to take a single leaf 550-770 MB past its start.
const RSS_GROWTH_BOUND_MB: u64 = 300;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn demo_sample() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/wordnet.ndjson.gz");
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for line in BufReader::new(gz).lines().take(DOCS) {
        out.extend_from_slice(line.unwrap().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Starts the peak resident set of this process over from its current size (Linux's
/// `clear_refs` 5), so that the peak measures the cases, not the set-up.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// A field of /proc/self/status, in MB.
fn status_mb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb / 1024
}

struct Cluster2x2 {
    leaves: Vec<LeafHandle>,
    http: String,
}

async fn start() -> Cluster2x2 {
    let mut leaves = Vec::new();
    let mut specs = Vec::new();
    for shard in 0..2u32 {
        let mut replicas = Vec::new();
        for replica in 0..2 {
            let index =
                ShardIndex::in_ram(shard, SchemaConfig::default(), &WriterOptions::default())
                    .unwrap();
            let leaf = LeafService::new(index, format!("s{shard}r{replica}"));
            let handle = LeafHandle::spawn("127.0.0.1:0", leaf).await.unwrap();
            replicas.push(ReplicaAddr::parse(&handle.addr.to_string()).unwrap());
            leaves.push(handle);
        }
        specs.push(ShardSpec {
            id: shard,
            replicas,
        });
    }
    let topology = Topology::new(specs).unwrap();
    let summary = index_inputs(
        &topology,
        vec![Input::from_bytes("demo.ndjson", demo_sample())],
        &IndexerOptions::default(),
        Arc::new(RejectLog::new(None)),
        Arc::default(),
    )
    .await
    .unwrap();
    assert!(summary.is_complete(), "{summary:?}");

    let config = RootConfig::default();
    let cluster = Arc::new(Cluster::connect(&topology, &config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(RootState::new(cluster, config));
    tokio::spawn(fanout_root::server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    Cluster2x2 { leaves, http }
}

fn runner(cases: u32, seed: u64) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

#[test]
fn hostile_searches_get_client_errors_and_nothing_dies() {
    let cases = env_u64("FANOUT_FUZZ_CASES").unwrap_or(DEFAULT_CASES.into()) as u32;
    let seed = env_u64("FANOUT_FUZZ_SEED").unwrap_or(14);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = rt.block_on(start());
    reset_peak_rss();
    let before = status_mb("VmRSS:");
    let client = reqwest::Client::new();
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let codes = std::sync::Mutex::new(std::collections::BTreeMap::<String, u32>::new());

    // Over HTTP, through the root.
    runner(cases, seed)
        .run(&case(), |case| {
            let answer = rt.block_on(async {
                let response = case.request(&client, &cluster.http).send().await?;
                let status = response.status().as_u16();
                Ok::<_, reqwest::Error>((status, response.bytes().await?))
            });
            let (status, body) = answer.map_err(|e| TestCaseError::fail(e.to_string()))?;
            *statuses.lock().unwrap().entry(status).or_default() += 1;
            judge(status, &body).map_err(TestCaseError::fail)
        })
        .unwrap();

    // Straight to a leaf, which must guard itself.
    let leaf_uris: Vec<String> = cluster
        .leaves
        .iter()
        .map(|l| format!("http://{}", l.addr))
        .collect();
    runner(cases, seed + 1)
        .run(&(leaf_case(), 0..leaf_uris.len()), |(request, leaf)| {
            let code = rt.block_on(async {
                let mut client = LeafClient::connect(leaf_uris[leaf].clone())
                    .await
                    .unwrap()
                    .max_decoding_message_size(fanout_proto::MAX_MESSAGE_BYTES);
                match tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    client.search(request),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(tonic::Code::Ok),
                    Ok(Err(status)) => Ok(status.code()),
                    Err(_) => Err("no answer within 30 s".to_string()),
                }
            });
            if let Ok(code) = code {
                *codes
                    .lock()
                    .unwrap()
                    .entry(format!("{code:?}"))
                    .or_default() += 1;
            }
            match code {
                Ok(code) if leaf_code_is_fine(code) => Ok(()),
                Ok(code) => Err(TestCaseError::fail(format!("the leaf answered {code:?}"))),
                Err(e) => Err(TestCaseError::fail(e)),
            }
        })
        .unwrap();

    // Everything still serves.
    rt.block_on(async {
        for uri in &leaf_uris {
            let mut client = LeafClient::connect(uri.clone()).await.unwrap();
            client.info(InfoRequest {}).await.unwrap();
        }
        let ready = client
            .get(format!("{}/v1/ready", cluster.http))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        let all = client
            .get(format!("{}/v1/search?q=*&size=0", cluster.http))
            .send()
            .await
            .unwrap();
        let all: serde_json::Value = all.json().await.unwrap();
        assert_eq!(all["total_hits"], DOCS as u64, "{all}");
    });
    let peak = status_mb("VmHWM:");
    let (statuses, codes) = (statuses.into_inner().unwrap(), codes.into_inner().unwrap());
    println!("HTTP statuses {statuses:?}; gRPC codes {codes:?}; peak RSS {peak} MB");
    // The cases reach both the engine and the refusals, or they test little.
    assert!(
        statuses.get(&200).is_some_and(|&n| n >= cases / 10),
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).is_some_and(|&n| n >= cases / 10),
        "{statuses:?}"
    );
    assert!(
        codes.get("Ok").is_some_and(|&n| n >= cases / 10),
        "{codes:?}"
    );
    assert!(
        peak < before + RSS_GROWTH_BOUND_MB,
        "peak RSS {peak} MB, from {before} MB before the cases"
    );
}
