//! Serving the HTTP API: the caller binds, [`serve`] serves until `shutdown` resolves, then
//! drains: readiness fails at once, searches go on being served for the configured shutdown
//! delay (the time a load balancer takes to notice), then new connections are refused and
//! in-flight requests finish.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::api::{router, RootState};
use crate::health::run_prober;

/// How often histogram samples are folded into the metrics' summaries.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

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
    // The recorder keeps every histogram sample until upkeep folds it in. A scrape does that
    // too, but a root nobody scrapes would hold on to every search's latency: about 64 bytes a
    // query, gigabytes a day under load.
    let upkeep = state.metrics.clone().map(|handle| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
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
    for task in discovery.into_iter().chain(upkeep) {
        task.abort();
    }
    result
}
