//! Serving a leaf: the caller binds, [`serve`] serves until `shutdown` resolves, then lets
//! in-flight requests finish.

use std::future::Future;

use fanout_proto::pb::leaf_server::LeafServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

use crate::grpc::GrpcLeaf;
use crate::service::LeafService;

/// Largest gRPC message a leaf accepts: an indexing batch of big documents.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Serves the `fanout.v1.Leaf` and `grpc.health.v1.Health` services on `listener`.
pub async fn serve(
    listener: TcpListener,
    leaf: LeafService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // The index is open by the time a LeafService exists, so the leaf is ready from the start.
    health.set_serving::<LeafServer<GrpcLeaf>>().await;
    // Nagle's algorithm would hold small responses back for tens of milliseconds.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    let leaf = LeafServer::new(GrpcLeaf(leaf))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(leaf)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
