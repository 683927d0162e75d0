//! kill -9 during a bulk import, against real leaf processes whose refresh interval is far
//! longer than the test, so that everything they acknowledged before the kill lives only in
//! their write-ahead logs.
//!
//! 1. A replica killed and restarted mid-import: the import completes, every document it
//!    reported as indexed is searchable on every replica, and a re-run leaves one copy of each.
//! 2. A replica killed and left down: the import names it and how many documents it misses,
//!    exits incomplete, and a re-run after its restart repairs it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use fanout_indexer::{index_inputs, IndexerOptions, Input, Progress, RejectLog, Summary};
use fanout_loadtest::cluster::{ClusterSpec, LocalCluster};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::{InfoRequest, InfoResponse, SearchRequest};
use fanout_proto::{shard_for_id, Topology};

/// `n` documents `{prefix}-{i}`, all containing the word `everywhere`.
fn corpus(dir: &std::path::Path, prefix: &str, n: usize) -> (std::path::PathBuf, Vec<String>) {
    let path = dir.join(format!("{prefix}.ndjson"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let doc = serde_json::json!({
            "id": id,
            "title": format!("document {i} of {prefix}"),
            "body": "everywhere the same words, and a few more to index",
        });
        writeln!(f, "{doc}").unwrap();
        ids.push(id);
    }
    (path, ids)
}

async fn import(
    topology: &Topology,
    path: &std::path::Path,
    retries: u32,
    progress: Arc<Progress>,
) -> Summary {
    import_input(topology, Input::open(path).unwrap(), retries, progress).await
}

async fn import_input(
    topology: &Topology,
    input: Input,
    retries: u32,
    progress: Arc<Progress>,
) -> Summary {
    let options = IndexerOptions {
        batch_docs: 500,
        retries,
        ..IndexerOptions::default()
    };
    index_inputs(
        topology,
        vec![input],
        &options,
        Arc::new(RejectLog::new(None)),
        progress,
    )
    .await
    .unwrap()
}

/// An input the test feeds as it goes, so that an import cannot end before the test says.
struct Fed {
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl std::io::Read for Fed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            match self.chunks.recv() {
                Ok(chunk) => self.current = std::io::Cursor::new(chunk),
                Err(_) => return Ok(0),
            }
        }
    }
}

/// Runs an import and, once a fifth of it is acknowledged, kills `victim` with SIGKILL;
/// `restart` says whether to start it again at once. The import is fed the first two fifths
/// of its lines, and the rest only after the kill, so that the kill always lands mid-import.
/// Returns the import's summary.
async fn import_and_kill(
    cluster: &mut LocalCluster,
    spec: &ClusterSpec,
    path: &std::path::Path,
    n: usize,
    victim: &str,
    retries: u32,
    restart: bool,
) -> Summary {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (head, tail) = lines.split_at(2 * n / 5);
    let (feed, chunks) = std::sync::mpsc::channel();
    feed.send((head.join("\n") + "\n").into_bytes()).unwrap();
    let input = Input {
        name: "fed".into(),
        reader: Box::new(Fed {
            chunks,
            current: std::io::Cursor::new(Vec::new()),
        }),
        size: None,
    };
    let progress = Arc::new(Progress::default());
    let topology = cluster.topology.clone();
    let running = {
        let progress = Arc::clone(&progress);
        tokio::spawn(async move { import_input(&topology, input, retries, progress).await })
    };
    // Full batches of the head are acknowledged without waiting for the tail.
    let waited = tokio::time::Instant::now();
    while progress.docs() < n as u64 / 5 {
        assert!(
            waited.elapsed() < Duration::from_secs(120),
            "only {} documents acknowledged of the first {}",
            progress.docs(),
            head.len()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cluster.process_mut(victim).unwrap().kill().await;
    if restart {
        cluster.restart_leaf(spec, victim).await.unwrap();
    }
    feed.send((tail.join("\n") + "\n").into_bytes()).unwrap();
    drop(feed);
    running.await.unwrap()
}

async fn info(addr: std::net::SocketAddr) -> (InfoResponse, u64) {
    let mut client = LeafClient::connect(format!("http://{addr}")).await.unwrap();
    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    let searchable = client
        .search(SearchRequest {
            query: "everywhere".into(),
            size: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .total_hits;
    (info, searchable)
}

/// Every replica holds exactly the ids of its shard: counted, and found by a search.
async fn assert_exactly(cluster: &LocalCluster, ids: &[String], why: &str) {
    let shards = cluster.topology.num_shards();
    for (shard, replicas) in cluster.leaves.iter().enumerate() {
        let want = ids
            .iter()
            .filter(|id| shard_for_id(id, shards) == shard as u32)
            .count() as u64;
        for leaf in replicas {
            let (info, searchable) = info(leaf.addr).await;
            assert_eq!(info.num_docs, want, "{}: {why}", leaf.name);
            assert_eq!(searchable, want, "{}: {why}", leaf.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_documents_survive_kill_9_and_re_runs_leave_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClusterSpec {
        leaf_args: vec!["--refresh-interval".into(), "1h".into()],
        ..ClusterSpec::new(
            2,
            2,
            dir.path().join("cluster"),
            env!("CARGO_BIN_EXE_fanout-cluster").into(),
        )
    };
    let mut cluster = LocalCluster::start_leaves(&spec).await.unwrap();
    let n = 40_000;

    // 1. Killed and restarted mid-import: the indexer's retries carry it over the restart.
    let (first, first_ids) = corpus(dir.path(), "first", n);
    let summary = import_and_kill(&mut cluster, &spec, &first, n, "leaf-0-1", 8, true).await;
    assert!(summary.is_complete(), "{:?}", summary.replica_failures);
    assert_eq!(summary.docs_indexed, n as u64);
    let restarted = cluster.process("leaf-0-1").unwrap().addr;
    let (restarted_info, _) = info(restarted).await;
    assert!(
        restarted_info.replayed_records > 0,
        "the restarted replica had acknowledged batches only in its log"
    );
    assert_exactly(&cluster, &first_ids, "after a kill and restart").await;
    let again = import(&cluster.topology, &first, 8, Arc::default()).await;
    assert_eq!(again.docs_indexed, n as u64);
    assert_exactly(&cluster, &first_ids, "after a re-run").await;

    // 2. Killed and left down: named, with what it misses; a re-run after its restart repairs it.
    let (second, second_ids) = corpus(dir.path(), "second", n);
    let summary = import_and_kill(&mut cluster, &spec, &second, n, "leaf-1-0", 1, false).await;
    assert!(!summary.is_complete());
    assert_eq!(
        summary.replica_failures.len(),
        1,
        "{:?}",
        summary.replica_failures
    );
    let failure = &summary.replica_failures[0];
    let down = cluster.process("leaf-1-0").unwrap().addr;
    assert_eq!(failure.shard, 1);
    assert_eq!(failure.replica.to_string(), format!("http://{down}"));
    let on_shard_1 = second_ids
        .iter()
        .filter(|id| shard_for_id(id, 2) == 1)
        .count() as u64;
    assert!(
        failure.docs_missed > 0 && failure.docs_missed <= on_shard_1,
        "{failure:?}"
    );
    assert_eq!(
        summary.per_shard[1],
        on_shard_1 - failure.docs_missed,
        "a document counts once every replica acknowledged it"
    );
    cluster.restart_leaf(&spec, "leaf-1-0").await.unwrap();
    let repaired = import(&cluster.topology, &second, 8, Arc::default()).await;
    assert!(repaired.is_complete(), "{:?}", repaired.replica_failures);
    let all: Vec<String> = first_ids.into_iter().chain(second_ids).collect();
    assert_exactly(&cluster, &all, "after the repairing re-run").await;
    cluster.stop().await;
}
