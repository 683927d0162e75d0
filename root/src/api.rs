//! The HTTP API, version 1.
//!
//! - `GET /v1/search?q=...&size=10&from=0&timeout_ms=...` and `POST /v1/search` with the same
//!   fields as a JSON body: search every shard, return the merged page.
//! - `GET /v1/health`: liveness; 200 while the process serves HTTP.
//! - `GET /v1/ready`: readiness; 200 while every shard has a reachable replica, else 503 naming
//!   the shards without one; 503 too once the root is shutting down. `degraded` lists shards
//!   with fewer live replicas than members (still 200 if each has one).
//! - `GET /metrics`: Prometheus metrics, when the root was given a recorder.
//!
//! Anything else is a JSON 404. Errors are `{"error": {"status": N, "reason": "..."}}`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admission::{Admission, Refusal};
use crate::cluster::Cluster;
use crate::config::RootConfig;
use crate::discovery::Discovery;
use crate::error::ApiError;
use crate::health::{degraded_shards, unavailable_shards};
use crate::http_limits::within_limits;
use crate::search::{search, SearchParams, SearchResult};

/// What every handler shares.
pub struct RootState {
    /// Every shard's replicas, and what the root knows of them.
    pub cluster: Arc<Cluster>,
    /// How searches are served.
    pub config: RootConfig,
    /// The gate every search passes: how many run at once.
    pub admission: Arc<Admission>,
    /// The Prometheus recorder `/metrics` renders, if any.
    pub metrics: Option<PrometheusHandle>,
    /// Where each shard's replicas come from when they are not fixed.
    pub discovery: Option<Discovery>,
    /// Set once shutdown began: readiness fails so that load balancers stop sending, while
    /// searches are still served.
    pub draining: AtomicBool,
}

impl RootState {
    /// State over a cluster with fixed membership and no metrics.
    pub fn new(cluster: Arc<Cluster>, config: RootConfig) -> Self {
        Self {
            admission: Admission::new(&config.admission),
            cluster,
            config,
            metrics: None,
            discovery: None,
            draining: AtomicBool::new(false),
        }
    }

    /// Serves `/metrics` from this recorder.
    pub fn with_metrics(mut self, metrics: PrometheusHandle) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Fills each shard's replicas from DNS.
    pub fn with_discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = Some(discovery);
        self
    }
}

/// The root's routes.
pub fn router(state: Arc<RootState>) -> Router {
    let body_timeout = state.config.body_read_timeout;
    Router::new()
        .route("/v1/search", get(search_get).post(search_post))
        .route(
            "/v1/health",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/v1/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::NotFound(format!(
                "no route for {uri}; see /v1/search, /v1/health, /v1/ready"
            ))
        })
        .layer(axum::middleware::from_fn(move |request, next| {
            within_limits(body_timeout, request, next)
        }))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Gives every error response the API's JSON body, including those axum writes itself (405 for
/// a wrong method, 413 for a body over the limit), which come as plain text or nothing.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let canonical = status.canonical_reason().unwrap_or("error");
    let reason = match text.trim() {
        "" => canonical.to_string(),
        text => format!("{canonical}: {text}"),
    };
    let body = serde_json::json!({ "error": { "status": status.as_u16(), "reason": reason } });
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

async fn search_get(
    State(state): State<Arc<RootState>>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    run(&state, params).await
}

async fn search_post(
    State(state): State<Arc<RootState>>,
    params: Result<Json<SearchParams>, JsonRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    // The body's size and arrival time were checked by `within_limits`.
    let Json(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    run(&state, params).await
}

/// Validates (a bad request costs no place), passes the admission gate, searches. A search
/// every shard answered is a latency sample for the concurrency limit; one missing a shard for
/// want of capacity (a deadline missed, busy replicas) tells the limit to shrink; one missing a
/// shard for a fault (a stall, a dead replica) says nothing about load.
async fn run(state: &RootState, params: SearchParams) -> Result<Json<SearchResult>, ApiError> {
    let plan = params.validate(&state.config)?;
    let mut permit = state
        .admission
        .admit(plan.deadline())
        .await
        .map_err(|why| overloaded(&state.admission, why))?;
    let result = match search(&state.cluster, &state.config, &plan).await {
        Ok(result) => result,
        Err(e) => {
            // A shard missed the deadline, and the search wanted every shard.
            if matches!(e, ApiError::GatewayTimeout(_)) {
                permit.overloaded();
            }
            return Err(e);
        }
    };
    if !result.partial {
        permit.complete();
    } else if result.overloaded {
        permit.overloaded();
    }
    Ok(Json(result))
}

/// The refusal a client sees: what was full, and when to come back (`Retry-After`).
fn overloaded(admission: &Admission, why: Refusal) -> ApiError {
    let limit = admission.limit();
    ApiError::Overloaded(match why {
        Refusal::QueueFull => format!(
            "overloaded: {limit} searches are running, the most this root runs at once, and its queue is full; retry after 1 s"
        ),
        Refusal::Deadline => format!(
            "overloaded: {limit} searches are running, the most this root runs at once, and no place freed in time to answer within the deadline; retry after 1 s"
        ),
    })
}

async fn ready(State(state): State<Arc<RootState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        let body = serde_json::json!({ "ready": false, "draining": true });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let missing = unavailable_shards(&state.cluster);
    let degraded = degraded_shards(&state.cluster);
    if missing.is_empty() {
        let mut body = serde_json::json!({ "ready": true });
        if !degraded.is_empty() {
            // Still ready: every shard can answer, but with less to spare.
            body["degraded"] = serde_json::json!(degraded);
        }
        Json(body).into_response()
    } else {
        let body = serde_json::json!({
            "ready": false,
            "shards_without_replica": missing,
            "degraded": degraded,
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn metrics(State(state): State<Arc<RootState>>) -> Response {
    match &state.metrics {
        Some(handle) => {
            // Replica conditions change with time alone (an ejection ends): look now.
            degraded_shards(&state.cluster);
            handle.render().into_response()
        }
        None => ApiError::NotFound("metrics are not enabled on this root".into()).into_response(),
    }
}
