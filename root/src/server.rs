//! Serving the HTTP API: the caller binds, [`serve`] serves until `shutdown` resolves, then
//! lets in-flight requests finish.

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::api::{router, RootState};
use crate::health::run_prober;

/// Serves the API on `listener` and probes replica health in the background.
pub async fn serve(
    listener: TcpListener,
    state: Arc<RootState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let prober = tokio::spawn(run_prober(Arc::clone(&state.cluster), state.config.clone()));
    // Nagle's algorithm would hold small responses back for tens of milliseconds.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    prober.abort();
    result
}
