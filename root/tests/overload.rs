//! Overload and stalls: a root past its concurrency limit refuses at once instead of queueing,
//! a busy leaf is routed around without being ejected, a stalled replica is routed around
//! while its request is still outstanding, and a shard with no live replica answers at once.

use std::time::{Duration, Instant};

use fanout_proto::Topology;
use fanout_root::admission::{AdmissionPolicy, LimitMode};
use fanout_root::RootConfig;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

mod support;

use support::get;

/// A "replica" that accepts connections and reads everything, never answering: a process that
/// is stopped, as far as its peers can tell.
async fn silent_replica() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn past_the_limit_a_search_is_refused_at_once_instead_of_queued() {
    let silent = silent_replica().await;
    let topology = Topology::from_specs(&[format!("0={silent}")]).unwrap();
    let mut config = RootConfig {
        admission: AdmissionPolicy {
            mode: LimitMode::Fixed(1),
            queue: 0,
            ..AdmissionPolicy::default()
        },
        ..RootConfig::default()
    };
    // The silent shard holds the first search to its deadline, not to a stall.
    config.replica.stall_after = Duration::from_secs(60);
    let (http, _root) = support::start_root(&topology, config).await;
    // The first search takes the only place and waits for the silent shard.
    let first = tokio::spawn({
        let url = format!("{http}/v1/search?q=dog&timeout_ms=1500&hedge=false");
        async move { get(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, retry_after, body) = get(&format!("{http}/v1/search?q=dog")).await;
    let refused_in = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(reason.contains("overloaded"), "{reason}");
    assert!(
        !first.is_finished(),
        "refused while the first search still held its place ({refused_in:?})"
    );
    // A malformed search is still told what is wrong, without a place.
    let (status, _, _) = get(&format!("{http}/v1/search?q=&size=5")).await;
    assert_eq!(status, 400);
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, 504, "the silent shard never answered: {body}");
    assert!(!body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("overloaded"));
    // The place came back.
    let (_, _, body) = get(&format!("{http}/v1/search?q=dog&timeout_ms=50")).await;
    assert!(
        !body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("overloaded"),
        "{body}"
    );
}

#[tokio::test]
async fn a_shard_whose_only_replica_stalled_is_given_up_early_and_then_at_once() {
    let (live, _) = support::empty_leaf().await;
    let silent = silent_replica().await;
    let topology =
        Topology::from_specs(&[format!("0={}", live.addr), format!("1={silent}")]).unwrap();
    let (http, _root) = support::start_root(&topology, RootConfig::default()).await;
    // The first search waits on the silent replica until it has been quiet for stall_after
    // (50 ms) and its health check went unanswered as long: then the shard is given up, well
    // before the 5 s deadline.
    let started = Instant::now();
    let (status, _, body) = get(&format!("{http}/v1/search?q=dog&timeout_ms=5000")).await;
    let first = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["partial"], true);
    assert!(first < Duration::from_secs(2), "held {first:?}");
    let reason = body["shards"]["failed"][0]["reason"].to_string();
    assert!(reason.contains("stalled"), "{body}");
    // Known stalled now: the next searches do not wait for it at all.
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = get(&format!("{http}/v1/search?q=dog&timeout_ms=5000")).await;
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert!(
            body["shards"]["failed"][0]["reason"]
                .to_string()
                .contains("no live replica"),
            "{body}"
        );
    }
    // The root says so: still ready (it is an answer, partial), but shard 1 has no live replica.
    let ready: Value = reqwest::get(format!("{http}/v1/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["degraded"][0]["shard"], 1, "{ready}");
    assert_eq!(ready["degraded"][0]["live"], 0, "{ready}");
}
