//! A root that finds its replicas in DNS keeps answering every query, complete, while a shard
//! gains a replica and loses two: one removed from DNS before it stops (a rolling update done
//! right), one stopped before DNS catches up (a pod that died). Real leaves on port 0, a real
//! root over HTTP, and a resolver the test drives.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fanout_indexer::{index_inputs, IndexerOptions, Input, RejectLog};
use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::{ReplicaAddr, ShardSpec, Topology};
use fanout_root::discovery::{shard_names, Discovery, StaticResolver};
use fanout_root::{Cluster, RootConfig, RootState};
use serde_json::Value;

const DOCS: usize = 200;

async fn leaf(shard: u32, name: &str) -> LeafHandle {
    let index =
        ShardIndex::in_ram(shard, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    LeafHandle::spawn("127.0.0.1:0", LeafService::new(index, name.to_string()))
        .await
        .unwrap()
}

fn addr(handle: &LeafHandle) -> ReplicaAddr {
    ReplicaAddr::parse(&handle.addr.to_string()).unwrap()
}

/// What the query loops saw.
#[derive(Default)]
struct Seen {
    answered: usize,
    failures: Vec<String>,
    /// Replicas that answered shard 0, in order of first answer.
    shard0_replicas: Vec<String>,
}

/// Queries the root in a loop until `stop`; every answer must be a complete 200.
async fn query_loop(http: String, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let client = reqwest::Client::new();
    while !stop.load(Ordering::Relaxed) {
        let result = client
            .get(format!("{http}/v1/search?q=fruit&size=3"))
            .send()
            .await;
        let verdict = match result {
            Err(e) => Err(format!("request failed: {e}")),
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if status != 200 || body["partial"] != false || body["total_hits"] != DOCS {
                    Err(format!("status {status}: {body}"))
                } else {
                    Ok(body["shards"]["details"][0]["replica"]
                        .as_str()
                        .unwrap()
                        .to_string())
                }
            }
        };
        let mut seen = seen.lock().unwrap();
        match verdict {
            Ok(replica) => {
                seen.answered += 1;
                if !seen.shard0_replicas.contains(&replica) {
                    seen.shard0_replicas.push(replica);
                }
            }
            Err(failure) => seen.failures.push(failure),
        }
    }
}

/// Waits until `check` holds, failing the test after 10 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_come_and_go_in_dns_without_a_failed_query() {
    // Shard 0 will have replicas a, b, c over time; shard 1 has d throughout.
    let (a, b, c) = (leaf(0, "a").await, leaf(0, "b").await, leaf(0, "c").await);
    let d = leaf(1, "d").await;
    // Every replica gets the documents first: discovery is about who serves, not who holds.
    let all = Topology::new(vec![
        ShardSpec {
            id: 0,
            replicas: vec![addr(&a), addr(&b), addr(&c)],
        },
        ShardSpec {
            id: 1,
            replicas: vec![addr(&d)],
        },
    ])
    .unwrap();
    let ndjson: String = (0..DOCS)
        .map(|i| format!("{{\"id\":\"doc-{i}\",\"title\":\"t{i}\",\"body\":\"fruit\"}}\n"))
        .collect();
    let summary = index_inputs(
        &all,
        vec![Input::from_bytes("docs.ndjson", ndjson.into_bytes())],
        &IndexerOptions::default(),
        Arc::new(RejectLog::new(None)),
        Arc::default(),
    )
    .await
    .unwrap();
    assert!(summary.is_complete(), "{summary:?}");

    // A root that knows only the shards' names.
    let resolver = Arc::new(StaticResolver::default());
    resolver.set("leaf-0", vec![a.addr, b.addr]);
    resolver.set("leaf-1", vec![d.addr]);
    let config = RootConfig::default();
    let cluster = Arc::new(Cluster::empty(2, &config));
    let discovery = Discovery {
        names: shard_names("leaf-{shard}:7000", 2).unwrap(),
        resolver: resolver.clone(),
        interval: Duration::from_millis(50),
    };
    let state = Arc::new(RootState::new(Arc::clone(&cluster), config).with_discovery(discovery));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let root = tokio::spawn(fanout_root::server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let members = |shard: usize| -> BTreeSet<SocketAddr> {
        cluster.shards()[shard]
            .replicas()
            .iter()
            .map(|r| r.name.trim_start_matches("http://").parse().unwrap())
            .collect()
    };
    let set = |addrs: &[SocketAddr]| addrs.iter().copied().collect::<BTreeSet<_>>();
    eventually("the first lookup is applied", || {
        members(0) == set(&[a.addr, b.addr]) && members(1) == set(&[d.addr])
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let loops: Vec<_> = (0..3)
        .map(|_| tokio::spawn(query_loop(http.clone(), stop.clone(), seen.clone())))
        .collect();
    let answered = || seen.lock().unwrap().answered;
    let (name_a, name_c) = (format!("http://{}", a.addr), format!("http://{}", c.addr));

    // Scale up: c appears in DNS and starts taking queries.
    let before = answered();
    resolver.set("leaf-0", vec![a.addr, b.addr, c.addr]);
    eventually("c answers queries", || {
        seen.lock().unwrap().shard0_replicas.contains(&name_c)
    })
    .await;
    assert!(answered() > before);

    // Rolling update done right: a leaves DNS, the root lets go of it, then it stops.
    resolver.set("leaf-0", vec![b.addr, c.addr]);
    eventually("the root drops a", || members(0) == set(&[b.addr, c.addr])).await;
    a.shutdown().await;
    let mark = answered();
    eventually("queries go on", || answered() > mark + 50).await;

    // A pod that died: b stops while DNS still names it; retries cover it until DNS catches up.
    b.shutdown().await;
    let mark = answered();
    eventually("queries go on", || answered() > mark + 50).await;
    resolver.set("leaf-0", vec![c.addr]);
    eventually("the root drops b", || members(0) == set(&[c.addr])).await;
    let mark = answered();
    eventually("queries go on", || answered() > mark + 50).await;

    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.failures.is_empty(),
        "{} of {} queries failed, first: {}",
        seen.failures.len(),
        seen.answered + seen.failures.len(),
        seen.failures[0]
    );
    assert!(seen.shard0_replicas.contains(&name_a));
    root.abort();
    drop((c, d));
}
