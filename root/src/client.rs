//! How a root talks to one replica: the [`LeafClient`] trait, its gRPC implementation, and the
//! per-shard error it reports.
//!
//! The scatter logic sees only the trait, so tests drive it with in-process fakes (a slow
//! replica, a dead one) without a network.

use std::time::Duration;

use fanout_proto::pb;
use fanout_proto::ReplicaAddr;
use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};

use fanout_proto::wire::{is_transient, with_deadline, MAX_MESSAGE_BYTES};

/// Why one attempt at one shard failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// No answer before the request's deadline.
    #[error("no answer within the deadline")]
    Timeout,
    /// The replica could not be reached or refused the request (not serving, shutting down).
    #[error("replica unavailable: {0}")]
    Unavailable(String),
    /// The replica's queue is full: it refused the request without working on it. Not its
    /// fault, so no failure against it; another replica may take the request.
    #[error("replica busy: {0}")]
    Busy(String),
    /// The request itself is bad (an unparsable query): every replica would say the same.
    #[error("{0}")]
    InvalidArgument(String),
    /// The replica failed while serving the request.
    #[error("leaf error: {0}")]
    Leaf(String),
    /// The replica's connection broke while it held the request: the replica may have died
    /// running it. Not retried elsewhere unless the query is known to be harmless, so that a
    /// query that kills leaves kills one.
    #[error("the replica's connection broke while it was serving this request ({0}); not retried on another replica, in case the request is what broke it")]
    ConnectionLost(String),
}

impl ShardError {
    /// Whether another replica might answer where this one failed. A bad request never: every
    /// replica would refuse it. A broken connection only for a query `proven` harmless on this
    /// shard (see [`crate::quarantine::KnownGood`]): otherwise the request may be what killed
    /// the replica, and retrying it would spread it to every replica.
    pub fn is_retryable(&self, proven: bool) -> bool {
        match self {
            ShardError::InvalidArgument(_) => false,
            ShardError::ConnectionLost(_) => proven,
            _ => true,
        }
    }

    /// Classifies a gRPC status from a leaf, or from the client's transport.
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let message = status.message().to_string();
        if broke_mid_request(status) {
            return ShardError::ConnectionLost(message);
        }
        match status.code() {
            Code::DeadlineExceeded | Code::Cancelled => ShardError::Timeout,
            Code::InvalidArgument => ShardError::InvalidArgument(message),
            Code::ResourceExhausted => ShardError::Busy(message),
            code if is_transient(code) => ShardError::Unavailable(if message.is_empty() {
                code.to_string()
            } else {
                message
            }),
            _ => ShardError::Leaf(message),
        }
    }
}

/// Whether `status` says the connection broke after the request went out. A status the leaf
/// sent has no source; one the client's transport made has the transport error as its source.
/// Of those, some say the leaf never took the request, and are safe to retry:
/// - a failure to connect sent nothing;
/// - a stream the leaf refused (REFUSED_STREAM), or one past the last it said it would serve
///   in a GOAWAY (as on a graceful shutdown), was not processed;
/// - a keep-alive ping that went unanswered says the leaf stopped answering anything, not that
///   this request broke it.
fn broke_mid_request(status: &tonic::Status) -> bool {
    use std::error::Error;
    let Some(source) = status.source() else {
        return false;
    };
    let mut cause: Option<&(dyn Error + 'static)> = Some(source);
    while let Some(error) = cause {
        if error.is::<tonic::ConnectError>() {
            return false;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote())
            {
                return false;
            }
        }
        if error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            return false;
        }
        cause = error.source();
    }
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
    )
}

/// Checks what the API passes on verbatim: every hit's stored fields must be JSON. A replica
/// that sends anything else is broken, and its answer counts as a failed attempt (retried on
/// another replica, and against this one's health) rather than reaching a client.
pub fn check_answer(response: &pb::SearchResponse) -> Result<(), ShardError> {
    for hit in &response.hits {
        if let Err(e) = serde_json::from_str::<&serde_json::value::RawValue>(&hit.fields_json) {
            tracing::warn!(id = %hit.id, error = %e, "a leaf sent stored fields that are not JSON");
            return Err(ShardError::Leaf(format!(
                "the stored fields of {:?} are not JSON: {e}",
                hit.id
            )));
        }
    }
    Ok(())
}

/// One replica of one shard, as the root sees it.
pub trait LeafClient: Send + Sync + 'static {
    /// Runs a search, giving up after `timeout`.
    fn search(
        &self,
        request: pb::SearchRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<pb::SearchResponse, ShardError>>;

    /// Asks for the shard's BM25 statistics of a query's terms, giving up after `timeout`.
    fn stats(
        &self,
        request: pb::StatsRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<pb::StatsResponse, ShardError>>;

    /// Whether the replica says it is serving, within `timeout`.
    fn check_health(&self, timeout: Duration) -> BoxFuture<'static, bool>;
}

/// A [`LeafClient`] over a lazily connected gRPC channel, which reconnects by itself.
#[derive(Clone)]
pub struct GrpcLeafClient {
    leaf: pb::leaf_client::LeafClient<Channel>,
    health: tonic_health::pb::health_client::HealthClient<Channel>,
}

impl GrpcLeafClient {
    /// A client for `addr`; connects on first use, and gives up connecting after
    /// `connect_timeout` so that a dead host fails fast instead of eating the deadline.
    pub fn new(
        addr: &ReplicaAddr,
        connect_timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(addr.as_uri().to_string())?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self {
            leaf: pb::leaf_client::LeafClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
        })
    }
}

/// Awaits a unary call for at most `timeout`, mapping its failure to a [`ShardError`].
async fn unary<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ShardError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(ShardError::from_status(&status)),
        Err(_) => Err(ShardError::Timeout),
    }
}

impl LeafClient for GrpcLeafClient {
    fn search(
        &self,
        request: pb::SearchRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<pb::SearchResponse, ShardError>> {
        let mut leaf = self.leaf.clone();
        Box::pin(async move { unary(timeout, leaf.search(with_deadline(request, timeout))).await })
    }

    fn stats(
        &self,
        request: pb::StatsRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<pb::StatsResponse, ShardError>> {
        let mut leaf = self.leaf.clone();
        Box::pin(async move { unary(timeout, leaf.stats(with_deadline(request, timeout))).await })
    }

    fn check_health(&self, timeout: Duration) -> BoxFuture<'static, bool> {
        let mut health = self.health.clone();
        Box::pin(async move {
            let request = tonic_health::pb::HealthCheckRequest {
                service: fanout_proto::LEAF_SERVICE_NAME.to_string(),
            };
            let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
            matches!(
                tokio::time::timeout(timeout, health.check(request)).await,
                Ok(Ok(response)) if response.get_ref().status == serving
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_whose_stored_fields_are_not_json_is_a_leaf_error() {
        let answer = |fields: &[&str]| pb::SearchResponse {
            hits: fields
                .iter()
                .map(|f| pb::Hit {
                    id: "a".into(),
                    score: 1.0,
                    fields_json: f.to_string(),
                })
                .collect(),
            ..Default::default()
        };
        assert!(check_answer(&answer(&[r#"{"title":"x"}"#, "{}"])).is_ok());
        let bad = check_answer(&answer(&[r#"{"title":"x"}"#, "{"]));
        assert!(matches!(bad, Err(ShardError::Leaf(m)) if m.contains("not JSON")));
        assert!(ShardError::Leaf(String::new()).is_retryable(false));
    }

    fn transport(error: impl std::error::Error + Send + Sync + 'static) -> ShardError {
        ShardError::from_status(&tonic::Status::from_error(Box::new(error)))
    }

    #[test]
    fn only_a_connection_that_broke_under_the_request_is_connection_lost() {
        // The transport lost the connection with the request on it.
        let broken = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stream closed");
        assert!(matches!(transport(broken), ShardError::ConnectionLost(_)));
        // The leaf refused the stream: nothing was processed.
        let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert!(matches!(transport(refused), ShardError::Unavailable(_)));
        // The leaf answered with a status of its own, whatever its code.
        for status in [
            tonic::Status::unavailable("shutting down"),
            tonic::Status::internal("index error"),
            tonic::Status::unknown("?"),
        ] {
            let e = ShardError::from_status(&status);
            assert!(
                !matches!(e, ShardError::ConnectionLost(_)),
                "{status:?}: {e}"
            );
        }
        assert!(matches!(
            ShardError::from_status(&tonic::Status::invalid_argument("bad")),
            ShardError::InvalidArgument(_)
        ));
    }

    #[test]
    fn a_lost_connection_is_retried_only_for_a_proven_query() {
        let lost = ShardError::ConnectionLost("reset".into());
        assert!(!lost.is_retryable(false));
        assert!(lost.is_retryable(true));
        assert!(!ShardError::InvalidArgument("bad".into()).is_retryable(true));
        assert!(ShardError::Timeout.is_retryable(false));
    }
}
