//! The HTTP boundary's one error type: each variant maps once to a status code and a JSON body
//! `{"error": {"status": 400, "reason": "..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Why an HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: a bad parameter, an unparsable query.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request target is over the limit.
    #[error("{0}")]
    UriTooLong(String),
    /// The request's headers are over the limit.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The request body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// No such route.
    #[error("{0}")]
    NotFound(String),
    /// Not a single shard answered, or one did not and the request wanted all of them.
    #[error("{0}")]
    Unavailable(String),
    /// A shard did not answer within the deadline and the request said `allow_partial=false`.
    #[error("{0}")]
    GatewayTimeout(String),
    /// The root is at its concurrency limit and its queue is full, or the search could not
    /// have started in time: refused at once so that the client can retry elsewhere or later.
    #[error("{0}")]
    Overloaded(String),
    /// The query is quarantined: a replica's connection broke while serving it.
    #[error("this query was being served when a replica's connection broke, so it may crash leaves; it is refused for the next {retry_after_s} s")]
    Quarantined {
        /// Seconds until the quarantine ends.
        retry_after_s: u64,
    },
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::Overloaded(_) | ApiError::Quarantined { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({
            "error": { "status": status.as_u16(), "reason": self.to_string() }
        });
        let mut response = (status, Json(body)).into_response();
        let retry_after_s = match self {
            ApiError::Quarantined { retry_after_s } => Some(retry_after_s),
            // Long enough for the queues to drain; short enough not to lose the client.
            ApiError::Overloaded(_) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after_s {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
