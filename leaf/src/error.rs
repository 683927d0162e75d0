//! The leaf's one error type, mapped once to a gRPC status.

use fanout_proto::ShardId;

/// Why a leaf operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LeafError {
    /// The query does not parse against the schema. The message is the parser's.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The query breaks one of the contract's limits, or asks for what is not supported.
    #[error(transparent)]
    Query(#[from] fanout_proto::query::QueryError),
    /// A request parameter is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A batch was routed to a leaf that does not serve its shard.
    #[error("batch for shard {sent_to} was sent to a leaf serving shard {serves}")]
    WrongShard {
        /// The shard the batch was for.
        sent_to: ShardId,
        /// The shard this leaf serves.
        serves: ShardId,
    },
    /// The leaf's configuration or data directory is unusable.
    #[error("configuration error: {0}")]
    Config(String),
    /// Tantivy failed (I/O, a corrupt index, ...).
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The write-ahead log could not be written or read: nothing was acknowledged.
    #[error(transparent)]
    Log(#[from] crate::wal::WalError),
    /// Every search slot is taken and the queue for them is full: refused without any work,
    /// so the caller can ask another replica.
    #[error("busy: {queued} searches are already waiting for a search slot")]
    Busy {
        /// Searches waiting.
        queued: usize,
    },
    /// The caller gave up, so the work was skipped or stopped.
    #[error("cancelled by the caller")]
    Cancelled,
    /// The search's deadline passed, so it was stopped.
    #[error("the search's deadline passed")]
    DeadlineExceeded,
    /// Anything else: a panicked worker.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tantivy::directory::error::OpenReadError> for LeafError {
    fn from(e: tantivy::directory::error::OpenReadError) -> Self {
        LeafError::Index(e.into())
    }
}

impl From<crate::collect::Stopped> for LeafError {
    fn from(stopped: crate::collect::Stopped) -> Self {
        match stopped {
            crate::collect::Stopped::Cancelled => LeafError::Cancelled,
            crate::collect::Stopped::DeadlineExceeded => LeafError::DeadlineExceeded,
        }
    }
}

impl From<LeafError> for tonic::Status {
    fn from(e: LeafError) -> Self {
        let message = e.to_string();
        match e {
            // The root maps INVALID_ARGUMENT to an HTTP 400 with this message.
            LeafError::Query(e) if !e.is_callers() => tonic::Status::internal(message),
            LeafError::InvalidQuery(_) | LeafError::Query(_) | LeafError::InvalidArgument(_) => {
                tonic::Status::invalid_argument(message)
            }
            LeafError::WrongShard { .. } => tonic::Status::failed_precondition(message),
            // Roots take it as "ask another replica", never as a fault of this one.
            LeafError::Busy { .. } => tonic::Status::resource_exhausted(message),
            LeafError::Cancelled => tonic::Status::cancelled(message),
            LeafError::DeadlineExceeded => tonic::Status::deadline_exceeded(message),
            // Retryable: a full disk may drain, and a restarted leaf has a fresh log.
            LeafError::Log(_) => tonic::Status::unavailable(message),
            LeafError::Config(_) | LeafError::Index(_) | LeafError::Internal(_) => {
                tonic::Status::internal(message)
            }
        }
    }
}
