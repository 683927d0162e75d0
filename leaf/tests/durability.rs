//! A leaf over gRPC on a real data directory: writes become searchable on the refresh timer
//! without a Commit, deletions work, and a graceful shutdown commits what was acknowledged.

use std::time::{Duration, Instant};

use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, RefreshPolicy, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::{DeleteRequest, Document, IndexRequest, InfoRequest, SearchRequest};
use tonic::transport::Channel;

fn open(dir: &std::path::Path) -> ShardIndex {
    ShardIndex::open_or_create(dir, 0, SchemaConfig::default(), &WriterOptions::default()).unwrap()
}

async fn serve(index: ShardIndex, refresh: Duration) -> (LeafHandle, LeafClient<Channel>) {
    let leaf = LeafService::new(index, "r").with_refresh(RefreshPolicy {
        interval: refresh,
        ..RefreshPolicy::default()
    });
    let handle = LeafHandle::spawn("127.0.0.1:0", leaf).await.unwrap();
    let client = LeafClient::connect(format!("http://{}", handle.addr))
        .await
        .unwrap();
    (handle, client)
}

fn batch(docs: &[(&str, &str)]) -> IndexRequest {
    IndexRequest {
        shard: 0,
        num_shards: 1,
        docs: docs
            .iter()
            .map(|(id, title)| Document {
                json: serde_json::json!({"id": id, "title": title}).to_string(),
            })
            .collect(),
    }
}

async fn hits(client: &mut LeafClient<Channel>, query: &str) -> u64 {
    let request = SearchRequest {
        query: query.into(),
        size: 10,
        ..Default::default()
    };
    client
        .search(request)
        .await
        .unwrap()
        .into_inner()
        .total_hits
}

/// Polls until `query` matches `want` documents; panics after a generous limit.
async fn eventually(client: &mut LeafClient<Channel>, query: &str, want: u64) {
    let started = Instant::now();
    while hits(client, query).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{query:?} never reached {want} hits"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_become_searchable_on_the_refresh_timer_and_deletes_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut client) = serve(open(dir.path()), Duration::from_millis(50)).await;
    let response = client
        .index(batch(&[("a", "timer apple"), ("b", "timer banana")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.accepted, 2);
    // No Commit call: the refresh loop publishes the batch.
    eventually(&mut client, "timer", 2).await;
    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.uncommitted_batches, 0);

    let deleted = client
        .delete(DeleteRequest {
            shard: 0,
            num_shards: 1,
            ids: vec!["a".into(), "never-indexed".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.accepted, 2, "deleting a missing id is not an error");
    eventually(&mut client, "timer", 1).await;
    assert_eq!(hits(&mut client, "apple").await, 0);
    let wrong = client
        .delete(DeleteRequest {
            shard: 1,
            num_shards: 2,
            ids: vec!["b".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::FailedPrecondition);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_commits_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // A refresh interval far beyond the test: only the shutdown can commit.
    let (handle, mut client) = serve(open(dir.path()), Duration::from_secs(3600)).await;
    client
        .index(batch(&[("a", "kept through a restart")]))
        .await
        .unwrap();
    assert_eq!(hits(&mut client, "kept").await, 0, "not refreshed yet");
    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.uncommitted_batches, 1);
    drop(client);
    handle.shutdown().await;

    let index = open(dir.path());
    assert_eq!(
        index.replayed(),
        0,
        "the shutdown committed, so nothing to replay"
    );
    assert_eq!(
        index
            .search(
                "kept",
                0,
                10,
                None,
                &fanout_leaf::collect::Interrupt::never()
            )
            .unwrap()
            .total_hits,
        1
    );
}
