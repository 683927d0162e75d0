//! Serving the HTTP API: the caller binds, [`serve`] serves until `shutdown` resolves, then
//! drains: readiness fails at once, searches go on being served for the configured shutdown
//! delay (the time a load balancer takes to notice), then new connections are refused and
//! in-flight requests finish.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::api::{router, RootState};
use crate::health::run_prober;

/// Serves the API on `listener`; probes replica health, and discovers replicas if configured,
/// in the background.
pub async fn serve(
    listener: TcpListener,
    state: Arc<RootState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let prober = tokio::spawn(run_prober(Arc::clone(&state.cluster), state.config.clone()));
    let discovery = state.discovery.clone().map(|discovery| {
        tokio::spawn(discovery.run(Arc::clone(&state.cluster), state.config.clone()))
    });
    let draining = Arc::clone(&state);
    let shutdown = async move {
        shutdown.await;
        draining.draining.store(true, Ordering::Relaxed);
        let delay = draining.config.shutdown_delay;
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "shutting down: not ready, still serving until the delay ends"
            );
            tokio::time::sleep(delay).await;
        }
    };
    // Nagle's algorithm would hold small responses back for tens of milliseconds.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    prober.abort();
    if let Some(task) = discovery {
        task.abort();
    }
    result
}
