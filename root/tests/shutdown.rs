//! A root told to stop first fails readiness while it goes on serving searches for its
//! shutdown delay (the time a load balancer needs to stop sending), then refuses connections.

use std::sync::Arc;
use std::time::Duration;

use fanout_root::{Cluster, RootConfig, RootState};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_fails_readiness_but_serves_until_the_delay_ends() {
    let (leaf, topology) = support::empty_leaf().await;
    let config = RootConfig {
        shutdown_delay: Duration::from_secs(3),
        ..RootConfig::default()
    };
    let cluster = Arc::new(Cluster::connect(&topology, &config).unwrap());
    let state = Arc::new(RootState::new(cluster, config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let root = tokio::spawn(fanout_root::server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{http}{path}")).send();

    let ready = get("/v1/ready").await.unwrap();
    assert_eq!(ready.status(), 200);

    stop.send(()).unwrap();
    let started = tokio::time::Instant::now();
    let mut draining = false;
    while started.elapsed() < Duration::from_secs(2) {
        let ready = get("/v1/ready").await.unwrap();
        if ready.status() == 503 {
            let body: serde_json::Value = ready.json().await.unwrap();
            assert_eq!(body["draining"], true, "{body}");
            draining = true;
            break;
        }
    }
    assert!(draining, "readiness fails as soon as shutdown begins");
    let search = get("/v1/search?q=anything").await.unwrap();
    assert_eq!(
        search.status(),
        200,
        "searches are still served while draining"
    );

    root.await.unwrap().unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the delay is kept"
    );
    assert!(
        get("/v1/ready").await.is_err(),
        "after the delay, connections are refused"
    );
    leaf.shutdown().await;
}
