//! Serving the HTTP API: the caller binds, [`serve`] serves until `shutdown` resolves, then
//! drains: readiness fails at once, searches go on being served for the configured shutdown
//! delay (the time a load balancer takes to notice), then new connections are refused and
//! in-flight requests finish.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::api::{router, RootState};
use crate::health::run_prober;
use crate::http_limits::{MAX_HEADERS_PARSED, MAX_HEAD_BUFFER_BYTES};

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
    let header_read_timeout = state.config.header_read_timeout;
    let result = serve_connections(listener, router(state), header_read_timeout, shutdown).await;
    prober.abort();
    for task in discovery.into_iter().chain(upkeep) {
        task.abort();
    }
    result
}

/// Accepts HTTP/1.1 connections until `shutdown` resolves, then waits for the open ones to
/// finish their requests. Each connection is held to a header-read timeout, which axum's own
/// `serve` cannot set: without it a client that opens connections and sends nothing, or
/// trickles a head, holds a socket and a task for as long as it likes.
async fn serve_connections(
    listener: TcpListener,
    app: axum::Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD_BUFFER_BYTES)
        .max_headers(MAX_HEADERS_PARSED);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine, so back off briefly rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Nagle's algorithm would hold small responses back for tens of milliseconds.
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
