//! What the root's integration tests share: a root served in-process on port 0.

use std::sync::Arc;

use fanout_proto::Topology;
use fanout_root::{Cluster, RootConfig, RootState};

/// Serves a root over `topology` on a free port; returns its base URL and its task.
pub async fn start_root(
    topology: &Topology,
    config: RootConfig,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let cluster = Arc::new(Cluster::connect(topology, &config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(RootState::new(cluster, config));
    (
        http,
        tokio::spawn(fanout_root::server::serve(
            listener,
            state,
            std::future::pending(),
        )),
    )
}
