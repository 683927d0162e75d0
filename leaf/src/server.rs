//! Serving a leaf: the caller binds, [`serve`] serves and commits on the refresh timer until
//! `shutdown` resolves. Then health says NOT_SERVING while the leaf serves on for its shutdown
//! delay (roots stop choosing it), then it refuses new connections, lets in-flight requests
//! finish and commits what they wrote.

use std::future::Future;

use fanout_proto::pb::leaf_server::LeafServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;

use crate::grpc::GrpcLeaf;
use crate::service::LeafService;

use fanout_proto::MAX_MESSAGE_BYTES;

/// Streams a connection may have reset before they were accepted (see [`serve`]).
const MAX_PENDING_RESETS: usize = 4_096;
/// Requests in flight on one connection; more wait in the peer until one ends. Above what a
/// leaf queues (its search slots and queue), so that the leaf's own fast refusal is what an
/// overloaded root sees rather than a stall in h2.
const MAX_CONCURRENT_STREAMS: u32 = 1_024;

/// Serves the `fanout.v1.Leaf` and `grpc.health.v1.Health` services on `listener`.
pub async fn serve(
    listener: TcpListener,
    leaf: LeafService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // The index is open by the time a LeafService exists, so the leaf is ready from the start,
    // unless it waits for its first import.
    let seeding = match leaf.seed_gate().cloned() {
        Some(gate) if !gate.is_seeded() => {
            health.set_not_serving::<LeafServer<GrpcLeaf>>().await;
            tracing::info!("not serving until an import fills this replica (seed gate)");
            let health = health.clone();
            Some(tokio::spawn(async move {
                gate.wait().await;
                tracing::info!("seeded: serving");
                health.set_serving::<LeafServer<GrpcLeaf>>().await;
            }))
        }
        _ => {
            health.set_serving::<LeafServer<GrpcLeaf>>().await;
            None
        }
    };
    // Nagle's algorithm would hold small responses back for tens of milliseconds.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    let delay = leaf.shutdown_delay();
    let shutdown = async move {
        shutdown.await;
        if let Some(task) = seeding {
            task.abort();
        }
        health.set_not_serving::<LeafServer<GrpcLeaf>>().await;
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "shutting down: health says NOT_SERVING, still serving until the delay ends"
            );
            tokio::time::sleep(delay).await;
        }
    };
    let service = LeafServer::new(GrpcLeaf(leaf.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let server = tonic::transport::Server::builder()
        // Roots cancel hedges that lost and searches whose deadline passed: under load many
        // streams are reset before this server has even accepted them. h2's default allows 20
        // of those per connection before it drops the connection (with every other request on
        // it) as a rapid-reset attack; that turned an overload into failures and ejections.
        // Leaves serve roots, which bound their own load (admission control), so the limit
        // here is only a backstop.
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown);
    // The refresh loop never ends by itself: it stops when the server has drained.
    let served = tokio::select! {
        served = server => served,
        () = leaf.refresh_loop() => unreachable!("the refresh loop runs until dropped"),
    };
    // Everything acknowledged is in the log already; committing it now spares the next start a
    // replay.
    if let Err(e) = leaf.commit().await {
        tracing::error!(error = %e, "final commit failed; the write-ahead log will be replayed");
    }
    served
}

/// A leaf served on a background task, for embedding and tests.
pub struct LeafHandle {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl LeafHandle {
    /// Binds `addr` (port 0 picks a free port) and serves `leaf` on a background task.
    pub async fn spawn(addr: &str, leaf: LeafService) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, leaf, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Begins shutting down (see [`serve`]) without waiting for the end.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down: stops accepting, lets in-flight requests finish, and waits for the server to
    /// end.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        let _ = (&mut self.task).await;
    }
}

impl Drop for LeafHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
