//! A leaf told to stop says NOT_SERVING on gRPC health at once, goes on answering searches for
//! its shutdown delay, then refuses connections.

use std::time::Duration;

use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::SearchRequest;
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
