//! What travels with every `fanout.v1` call besides its message: the size limit, the deadline,
//! and which failures are worth another attempt. Every component takes these from here, so
//! that a root, a leaf and the indexer cannot disagree.

use std::time::Duration;

/// Largest gRPC message any fanout component sends or accepts: an indexing batch of big
/// documents, or a search answer's hits with their stored fields.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A request carrying its deadline as `grpc-timeout`, so that the leaf knows how long the
/// caller waits and drops the work when it passes.
pub fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// Whether a call that failed with `code` may succeed if made again, on this replica later or
/// on another: the replica could not take it now (unavailable, overloaded, aborted, or an
/// unknown failure such as a reset stream). A bad request fails the same way everywhere, and a
/// passed deadline is the caller's to judge (a root has no time left; the indexer, whose
/// writes are idempotent, retries its own per-request deadline).
pub fn is_transient(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::ResourceExhausted | Code::Aborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_the_moment_are_transient() {
        use tonic::Code;
        for code in [
            Code::Unavailable,
            Code::Unknown,
            Code::ResourceExhausted,
            Code::Aborted,
        ] {
            assert!(is_transient(code), "{code:?}");
        }
        for code in [
            Code::Ok,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::NotFound,
            Code::Internal,
            Code::FailedPrecondition,
        ] {
            assert!(!is_transient(code), "{code:?}");
        }
    }

    #[test]
    fn the_deadline_travels_as_grpc_timeout() {
        let request = with_deadline((), Duration::from_millis(250));
        let header = request.metadata().get("grpc-timeout").unwrap();
        assert_eq!(header.to_str().unwrap(), "250000u");
    }
}
