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
use tokio::sync::Semaphore;
use tokio_io_timeout::TimeoutStream;

use crate::api::{router, RootState};
use crate::config::RootConfig;
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
    let limits = ConnectionLimits::from(&state.config);
    let result = serve_connections(listener, router(state), limits, shutdown).await;
    prober.abort();
    for task in discovery.into_iter().chain(upkeep) {
        task.abort();
    }
    result
}

/// What each connection is held to.
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    header_read_timeout: Duration,
    write_timeout: Duration,
    max_connections: usize,
    /// How long a shutdown waits for open connections: past the longest search, a connection
    /// still open belongs to a client that is not reading its answer.
    drain: Duration,
}

impl From<&RootConfig> for ConnectionLimits {
    fn from(config: &RootConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            write_timeout: config.write_timeout,
            max_connections: config.max_connections,
            drain: config.max_timeout + config.write_timeout,
        }
    }
}

/// Accepts HTTP/1.1 connections until `shutdown` resolves, then waits for the open ones to
/// finish their requests, for at most the drain time. Each connection is held to a header-read
/// timeout (also its idle timeout), which axum's own `serve` cannot set, and a write timeout:
/// without them a client that opens connections and sends nothing, trickles a head, or never
/// reads its answers would hold a socket and a task for as long as it liked.
async fn serve_connections(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BUFFER_BYTES)
        .max_headers(MAX_HEADERS_PARSED);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accept = async {
            // Past the limit, stop accepting: new connections wait in the kernel's backlog.
            let slot = Arc::clone(&slots).acquire_owned().await;
            (slot, listener.accept().await)
        };
        let (slot, tcp) = tokio::select! {
            (slot, accepted) = accept => match accepted {
                Ok((tcp, _)) => (slot, tcp),
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
        let mut io = TimeoutStream::new(tcp);
        io.set_write_timeout(Some(limits.write_timeout));
        let service = TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(TokioIo::new(Box::pin(io)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(drain = ?limits.drain, "connections still open after the drain are dropped");
    }
    Ok(())
}
