//! Containment: a replica whose connection breaks while it serves a query (as when the query
//! crashed it) costs that query one replica, not every replica. The root does not retry or
//! hedge it elsewhere, and refuses copies of it for a while without a fan-out; unless the query
//! has already run on the shard, in which case it was not what broke the replica, and it is
//! retried like any failure.
//!
//! Real leaves sit behind TCP proxies that can swallow traffic and then cut every connection,
//! which is what the root sees when a leaf process dies mid-request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::{ReplicaAddr, ShardSpec, Topology};
use fanout_root::RootConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod support;

/// A TCP proxy in front of one leaf.
struct Proxy {
    addr: std::net::SocketAddr,
    /// While set, bytes from the root are read and held back (they go on once it is cleared and
    /// the root sends more), and nothing comes back.
    blackhole: Arc<AtomicBool>,
    /// What the root sent while blackholed.
    swallowed: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            blackhole: Arc::default(),
            swallowed: Arc::default(),
            connections: Arc::default(),
        };
        let (blackhole, swallowed, connections) = (
            proxy.blackhole.clone(),
            proxy.swallowed.clone(),
            proxy.connections.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream).await.unwrap();
                let task =
                    tokio::spawn(relay(client, server, blackhole.clone(), swallowed.clone()));
                connections.lock().unwrap().push(task);
            }
        });
        proxy
    }

    /// Whether the root sent `text` (a query: its protobuf carries it verbatim) while blackholed.
    fn swallowed(&self, text: &str) -> bool {
        let swallowed = self.swallowed.lock().unwrap();
        swallowed.windows(text.len()).any(|w| w == text.as_bytes())
    }

    fn connections(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// Drops every connection, as a dying process does.
    fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    blackhole: Arc<AtomicBool>,
    swallowed: Arc<Mutex<Vec<u8>>>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 << 10];
        // Held back, not dropped: a lost frame (a health probe's, say) would leave the leaf's
        // HTTP/2 header table out of step with the root's, and the connection unusable.
        let mut held = Vec::new();
        loop {
            let n = client_read.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            if blackhole.load(Ordering::SeqCst) {
                swallowed.lock().unwrap().extend_from_slice(&buf[..n]);
                held.extend_from_slice(&buf[..n]);
                continue;
            }
            held.extend_from_slice(&buf[..n]);
            if server_write.write_all(&held).await.is_err() {
                return;
            }
            held.clear();
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = server_read.read(&mut buf).await.unwrap_or(0);
            if n == 0 || client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! { () = up => {}, () = down => {} }
}

/// One shard of two real replicas, each behind a [`Proxy`], both connected (so that "apple"
/// has run on the shard); and the root's URL.
async fn cluster() -> (Vec<LeafHandle>, Vec<Proxy>, String) {
    let mut leaves = Vec::new();
    let mut proxies = Vec::new();
    for replica in 0..2 {
        let index =
            ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        index
            .index_batch(0, 0, &[r#"{"id": "a", "title": "apple"}"#])
            .unwrap();
        index.commit().unwrap();
        let leaf = LeafService::new(index, format!("r{replica}"));
        let handle = LeafHandle::spawn("127.0.0.1:0", leaf).await.unwrap();
        proxies.push(Proxy::start(handle.addr).await);
        leaves.push(handle);
    }
    let topology = Topology::new(vec![ShardSpec {
        id: 0,
        replicas: proxies
            .iter()
            .map(|p| ReplicaAddr::parse(&p.addr.to_string()).unwrap())
            .collect(),
    }])
    .unwrap();
    let (http, root) = support::start_root(&topology, RootConfig::default()).await;
    // The root serves until the test's runtime ends.
    drop(root);
    // Both replicas connected, and "apple" has run on the shard.
    let (status, _, body) = search(&http, "apple").await;
    assert_eq!(status, 200, "{body}");
    while proxies.iter().any(|p| p.connections() == 0) {
        let (status, _, body) = search(&http, "apple").await;
        assert_eq!(status, 200, "{body}");
    }

    (leaves, proxies, http)
}

async fn search(http: &str, q: &str) -> (u16, Option<String>, Value) {
    support::get(&format!("{http}/v1/search?q={q}&hedge=false")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connection_is_not_retried_and_its_query_is_quarantined() {
    let (_leaves, proxies, http) = cluster().await;

    // The query reaches one replica, which then "dies" while holding it.
    for proxy in &proxies {
        proxy.blackhole.store(true, Ordering::SeqCst);
    }
    let poisoned = tokio::spawn({
        let http = http.clone();
        async move { search(&http, "poison").await }
    });
    let victim = reached(&proxies, "poison").await;
    proxies[victim].cut();
    let (status, _, body) = poisoned.await.unwrap();
    assert_eq!(status, 503, "{body}");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("connection broke"), "{reason}");
    let other = &proxies[1 - victim];
    assert!(
        !other.swallowed("poison"),
        "the query must not be retried on the other replica"
    );

    // A copy is refused at once, with no request to any replica.
    let (status, retry_after, body) = search(&http, "poison").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("refused for the next"));
    assert!(retry_after.unwrap().parse::<u64>().unwrap() > 0);
    assert!(!other.swallowed("poison"));

    // Other queries still work, on the replica that is left.
    for proxy in &proxies {
        proxy.blackhole.store(false, Ordering::SeqCst);
    }
    let (status, _, body) = search(&http, "apple").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_hits"], 1);
}

/// Which proxy swallowed the request for `query`, waiting at most 10 s. (A connection also
/// carries h2's own frames, so any bytes at all would not say.)
async fn reached(proxies: &[Proxy], query: &str) -> usize {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Some(i) = proxies.iter().position(|p| p.swallowed(query)) {
                return i;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the query reached a replica")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_ran_before_is_retried_when_a_connection_breaks_under_it() {
    let (_leaves, proxies, http) = cluster().await;
    // Only replica 0 swallows; try until the search picks it (replica choice is random).
    proxies[0].blackhole.store(true, Ordering::SeqCst);
    let body = loop {
        // Per-shard statistics: the search itself is what reaches the replica.
        let mut known = tokio::spawn({
            let http = http.clone();
            async move { search(&http, "apple&stats=shard").await }
        });
        let reached = async {
            while !proxies[0].swallowed("apple") {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            answered = &mut known => {
                // Replica 1 answered: not the case under test.
                assert_eq!(answered.unwrap().0, 200);
                continue;
            }
            () = reached => {}
        }
        proxies[0].cut();
        proxies[0].blackhole.store(false, Ordering::SeqCst);
        let (status, _, body) = known.await.unwrap();
        assert_eq!(status, 200, "{body}");
        break body;
    };
    assert_eq!(body["partial"], false, "{body}");
    assert_eq!(body["total_hits"], 1);
    assert_eq!(body["shards"]["details"][0]["retried"], true, "{body}");
    // And it is not quarantined.
    let (status, _, body) = search(&http, "apple").await;
    assert_eq!(status, 200, "{body}");
}
