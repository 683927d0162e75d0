//! A leaf's readiness over its life, as gRPC health reports it: a new replica behind the seed
//! gate waits for an import to fill it; a leaf told to stop says NOT_SERVING at once, goes on
//! answering searches for its shutdown delay, then refuses connections.

use std::time::Duration;

use fanout_leaf::seed::SeedGate;
use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, RefreshPolicy, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::{CommitRequest, Document, IndexRequest, InfoRequest, SearchRequest};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_fails_first_and_searches_go_on_until_the_delay_ends() {
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let leaf = LeafService::new(index, "r").with_shutdown_delay(Duration::from_secs(2));
    let mut handle = LeafHandle::spawn("127.0.0.1:0", leaf).await.unwrap();
    let uri = format!("http://{}", handle.addr);
    let channel = tonic::transport::Endpoint::from_shared(uri.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let mut leaf = LeafClient::new(channel);
    let status = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    let serving =
        |r: tonic_health::pb::HealthCheckResponse| r.status == ServingStatus::Serving as i32;
    let answer = health.check(status("fanout.v1.Leaf")).await.unwrap();
    assert!(serving(answer.into_inner()), "ready once open");

    handle.begin_shutdown();
    let started = tokio::time::Instant::now();
    loop {
        let answer = health.check(status("fanout.v1.Leaf")).await.unwrap();
        if !serving(answer.into_inner()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "health still SERVING"
        );
    }
    let request = SearchRequest {
        query: "anything".into(),
        size: 10,
        ..Default::default()
    };
    leaf.search(request)
        .await
        .expect("searches are still answered while draining");

    handle.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the delay is kept"
    );
    assert!(
        tonic::transport::Endpoint::from_shared(uri)
            .unwrap()
            .connect()
            .await
            .is_err(),
        "after the delay, connections are refused"
    );
}

async fn leaf_serving(handle: &LeafHandle) -> bool {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", handle.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: "fanout.v1.Leaf".into(),
    };
    health.check(request).await.unwrap().into_inner().status == ServingStatus::Serving as i32
}

async fn gated_leaf(dir: &std::path::Path) -> (LeafHandle, LeafClient<Channel>) {
    let index =
        ShardIndex::open_or_create(dir, 0, SchemaConfig::default(), &WriterOptions::default())
            .unwrap();
    let leaf = LeafService::new(index, "new")
        .with_refresh(RefreshPolicy {
            interval: Duration::from_millis(20),
            ..RefreshPolicy::default()
        })
        .with_seed_gate(SeedGate::open(dir));
    let handle = LeafHandle::spawn("127.0.0.1:0", leaf).await.unwrap();
    let client = LeafClient::connect(format!("http://{}", handle.addr))
        .await
        .unwrap();
    (handle, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_serves_only_once_an_import_has_filled_it() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, mut client) = gated_leaf(dir.path()).await;
    assert!(
        !leaf_serving(&handle).await,
        "empty and never imported into"
    );

    let batch = IndexRequest {
        shard: 0,
        num_shards: 1,
        docs: vec![Document {
            json: r#"{"id": "a", "title": "apple"}"#.into(),
        }],
    };
    client.index(batch).await.unwrap();
    // The refresh timer commits the batch; that is not the end of an import.
    let mut committed = false;
    for _ in 0..500 {
        committed = client
            .info(InfoRequest {})
            .await
            .unwrap()
            .into_inner()
            .num_docs
            == 1;
        if committed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(committed, "the refresh timer committed the batch");
    assert!(!leaf_serving(&handle).await, "mid-import");

    client.commit(CommitRequest {}).await.unwrap();
    // The health status follows the gate on a task of its own: poll briefly.
    let mut serving = false;
    for _ in 0..200 {
        serving = leaf_serving(&handle).await;
        if serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(serving, "the import's closing commit opens the gate");

    handle.shutdown().await;
    let (handle, _client) = gated_leaf(dir.path()).await;
    assert!(
        leaf_serving(&handle).await,
        "a restart with its data serves at once"
    );
    handle.shutdown().await;
}
