//! The limits the HTTP server holds every connection and request to, so that a slow or hostile
//! client costs the root a bounded amount of time and memory.
//!
//! hyper enforces the connection limits (the header-read timeout, [`MAX_HEAD_BUFFER_BYTES`]);
//! [`within_limits`] enforces the request limits below them, where it can still answer with the
//! API's JSON error. Only what passes hyper's own ceilings reaches it: a target of 64 KiB or
//! more, or a head over [`MAX_HEAD_BUFFER_BYTES`], gets hyper's bare 414 or 431 and the
//! connection closes.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;

/// Longest request target (path and query string). A GET's `q` is percent-encoded, so a query
/// at the 16 KiB limit fits as ASCII; longer or non-ASCII ones go in a POST body.
pub const MAX_URI_BYTES: usize = 48 << 10;

/// Largest sum of header names and values.
pub const MAX_HEADER_BYTES: usize = 32 << 10;

/// Most headers in one request.
pub const MAX_HEADERS: usize = 100;

/// Largest request body: a search's JSON, with room for the longest query a flag allows.
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Most of a refused body read and dropped so that its client sees the 413 (see [`admit`]).
const MAX_DRAIN_BYTES: usize = 16 << 20;

/// hyper's read buffer, which bounds a request head and what each connection may hold while
/// its head arrives. Above [`MAX_URI_BYTES`] plus [`MAX_HEADER_BYTES`], so that a head past
/// either limit but under this gets a JSON 414 or 431 from [`within_limits`] rather than
/// hyper's bare one; small enough that `--max-connections` clients trickling heads hold at
/// most 128 MiB.
pub const MAX_HEAD_BUFFER_BYTES: usize = 128 << 10;

/// hyper's ceiling on the header count, above [`MAX_HEADERS`] for the same reason.
pub const MAX_HEADERS_PARSED: usize = 1000;

/// Refuses a request past a limit with the API's JSON error, and reads its body within
/// `body_timeout` and [`MAX_BODY_BYTES`] before any handler runs, so that a client trickling
/// a body is cut off rather than holding a task.
pub async fn within_limits(body_timeout: Duration, request: Request, next: Next) -> Response {
    match admit(request, body_timeout).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn admit(request: Request, body_timeout: Duration) -> Result<Request, ApiError> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(format!(
            "the request target is {uri_bytes} bytes, over the limit of {MAX_URI_BYTES}; send long queries as a POST body"
        )));
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request has {} headers, over the limit of {MAX_HEADERS}",
            headers.len()
        )));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request's headers are {header_bytes} bytes, over the limit of {MAX_HEADER_BYTES}"
        )));
    }
    let (parts, body) = request.into_parts();
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the request body is over {MAX_BODY_BYTES} bytes, the limit"
        ))
    };
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        // Read and drop what the client is still sending, for a while, as a lingering close
        // would: a connection closed under a client still writing its body makes the client
        // fail on the write (a broken pipe) before it reads this answer.
        tokio::spawn(async move {
            let drain = Limited::new(body, MAX_DRAIN_BYTES).collect();
            let _ = tokio::time::timeout(body_timeout, drain).await;
        });
        return Err(too_large());
    }
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let bytes = match tokio::time::timeout(body_timeout, read).await {
        Err(_) => {
            return Err(ApiError::RequestTimeout(format!(
                "the request body did not arrive within {body_timeout:?}"
            )))
        }
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => return Err(ApiError::BadRequest(format!("reading the body: {e}"))),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
