//! Writing one shard: every batch goes to every replica of the shard, with retries and backoff;
//! a document counts as indexed only when all replicas acknowledged it. A leaf acknowledges a
//! batch once it is in its write-ahead log, so an acknowledged document is durable; the commit
//! at the end makes the run's documents searchable at once rather than at the next refresh.

use std::sync::Arc;
use std::time::Duration;

use fanout_proto::pb::leaf_client::LeafClient;
use fanout_proto::pb::{self, CommitRequest, DeleteRequest, IndexRequest};
use fanout_proto::wire::{is_transient, with_deadline, MAX_MESSAGE_BYTES};
use fanout_proto::{ReplicaAddr, ShardId, ShardSpec};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::ndjson::LineError;
use crate::options::{IndexerOptions, WriteMode};
use crate::progress::Progress;
use crate::rejects::{Reject, RejectLog};

/// Documents bound for one shard, with the input lines they came from.
#[derive(Debug, Default)]
pub struct Batch {
    /// JSON documents, or ids in delete mode.
    pub docs: Vec<String>,
    /// Per document, where it came from: input name and line number.
    pub origins: Vec<(Arc<str>, u64)>,
    /// The documents' size in bytes.
    pub bytes: usize,
}

/// A replica that stopped taking writes, and what it missed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFailure {
    /// The replica's shard.
    pub shard: ShardId,
    /// The replica.
    pub replica: ReplicaAddr,
    /// Documents of this input the replica does not have.
    pub docs_missed: u64,
    /// Why it stopped taking writes.
    pub reason: WriteFailure,
}

/// Why a replica stopped taking writes: the last failed request, after its retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFailure {
    /// The request: `index`, `delete` or `commit`.
    pub what: &'static str,
    /// The replica it went to.
    pub replica: ReplicaAddr,
    /// The gRPC code of the last failure.
    pub code: Code,
    /// Its message.
    pub message: String,
    /// Attempts made, the first included.
    pub attempts: u32,
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} failed: {} ({:?})",
            self.what, self.replica, self.message, self.code
        )?;
        if self.attempts > 1 {
            write!(f, ", after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

struct ReplicaWriter {
    addr: ReplicaAddr,
    client: LeafClient<Channel>,
    /// Set once the replica failed after retries; it is not written to again in this run.
    failure: Option<WriteFailure>,
    /// Documents it acknowledged in this run. Batches go in order, so a replica that failed
    /// holds a prefix of the run.
    acked: u64,
}

/// Writes one shard's batches, in order, to all of its replicas.
pub struct ShardWriter {
    shard: ShardId,
    num_shards: u32,
    replicas: Vec<ReplicaWriter>,
    options: IndexerOptions,
    progress: Arc<Progress>,
    /// Documents of this run the leaves accepted (every reject is a reject on all replicas).
    accepted: u64,
}

/// What became of one shard at the end of a run.
#[derive(Debug)]
pub struct ShardReport {
    /// The shard written.
    pub shard: ShardId,
    /// Documents acknowledged by every replica.
    pub docs_indexed: u64,
    /// Replicas that stopped taking writes, and what each missed.
    pub failures: Vec<ReplicaFailure>,
}

impl ShardWriter {
    /// A writer for `spec`'s replicas; connections are made lazily.
    pub fn new(
        spec: &ShardSpec,
        num_shards: u32,
        options: IndexerOptions,
        progress: Arc<Progress>,
    ) -> Result<Self, tonic::transport::Error> {
        let replicas = spec
            .replicas
            .iter()
            .map(|addr| {
                let channel = Endpoint::from_shared(addr.as_uri().to_string())?
                    .connect_timeout(options.connect_timeout)
                    .tcp_nodelay(true)
                    .connect_lazy();
                let client = LeafClient::new(channel)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES);
                Ok(ReplicaWriter {
                    addr: addr.clone(),
                    client,
                    failure: None,
                    acked: 0,
                })
            })
            .collect::<Result<_, tonic::transport::Error>>()?;
        Ok(Self {
            shard: spec.id,
            num_shards,
            replicas,
            options,
            progress,
            accepted: 0,
        })
    }

    /// Sends a batch to every replica still taking writes and records rejected documents.
    pub async fn write(&mut self, batch: Batch, rejects: &RejectLog) {
        let n = batch.docs.len() as u64;
        let request = match self.options.mode {
            WriteMode::Upsert => Request::Index(IndexRequest {
                shard: self.shard,
                num_shards: self.num_shards,
                docs: batch
                    .docs
                    .into_iter()
                    .map(|json| pb::Document { json })
                    .collect(),
            }),
            WriteMode::Delete => Request::Delete(DeleteRequest {
                shard: self.shard,
                num_shards: self.num_shards,
                ids: batch.docs,
            }),
        };
        let options = &self.options;
        let request = &request;
        let sends = self.replicas.iter_mut().map(|replica| {
            async move {
                if replica.failure.is_some() {
                    return None;
                }
                let client = replica.client.clone();
                let result = with_retries(options, &replica.addr, request.name(), || {
                    let client = client.clone();
                    request.send(client, options.request_timeout)
                })
                .await;
                match result {
                    Ok(response) => Some(response),
                    Err(reason) => {
                        tracing::warn!(replica = %replica.addr, %reason, "replica failed; no more writes to it");
                        replica.failure = Some(reason);
                        None
                    }
                }
            }
        });
        let responses: Vec<Option<pb::IndexResponse>> = futures::future::join_all(sends).await;
        let answered = responses.iter().flatten().count();
        // Replicas share the schema, so they reject the same documents; report them once.
        let mut rejected_positions = std::collections::BTreeMap::new();
        for response in responses.iter().flatten() {
            for r in &response.rejected {
                rejected_positions
                    .entry(r.position)
                    .or_insert_with(|| r.reason.clone());
            }
        }
        for (position, reason) in rejected_positions.iter() {
            if let Some((source, line)) = batch.origins.get(*position as usize) {
                rejects.record(Reject {
                    source: Arc::clone(source),
                    line: *line,
                    reason: LineError::Rejected(reason.clone()),
                });
            }
        }
        let accepted = n - rejected_positions.len() as u64;
        self.accepted += accepted;
        for (replica, response) in self.replicas.iter_mut().zip(&responses) {
            if response.is_some() {
                replica.acked += accepted;
            }
        }
        if answered > 0 && self.replicas.iter().all(|r| r.failure.is_none()) {
            self.progress.add_docs(accepted);
        }
    }

    /// Commits every replica still taking writes, and reports the shard.
    pub async fn finish(mut self) -> ShardReport {
        let options = &self.options;
        let commits = self
            .replicas
            .iter_mut()
            .filter(|r| r.failure.is_none())
            .map(|replica| async move {
                let client = replica.client.clone();
                let result = with_retries(options, &replica.addr, "commit", || {
                    let mut client = client.clone();
                    let request = with_deadline(CommitRequest {}, options.request_timeout);
                    async move { client.commit(request).await }
                })
                .await;
                if let Err(reason) = result {
                    replica.failure = Some(reason);
                }
            });
        futures::future::join_all(commits).await;
        let failures = self
            .replicas
            .iter()
            .filter_map(|r| {
                let reason = r.failure.clone()?;
                Some(ReplicaFailure {
                    shard: self.shard,
                    replica: r.addr.clone(),
                    docs_missed: self.accepted - r.acked,
                    reason,
                })
            })
            .collect();
        ShardReport {
            shard: self.shard,
            docs_indexed: self.replicas.iter().map(|r| r.acked).min().unwrap_or(0),
            failures,
        }
    }
}

/// One batch's request: the same one goes to every replica, and again on a retry, which is
/// safe because writes are upserts and deletes by id.
enum Request {
    Index(IndexRequest),
    Delete(DeleteRequest),
}

impl Request {
    fn name(&self) -> &'static str {
        match self {
            Request::Index(_) => "index",
            Request::Delete(_) => "delete",
        }
    }

    async fn send(
        &self,
        mut client: LeafClient<Channel>,
        timeout: Duration,
    ) -> Result<pb::IndexResponse, tonic::Status> {
        let response = match self {
            Request::Index(request) => {
                client
                    .index(with_deadline(request.clone(), timeout))
                    .await?
            }
            Request::Delete(request) => {
                client
                    .delete(with_deadline(request.clone(), timeout))
                    .await?
            }
        };
        Ok(response.into_inner())
    }
}

/// Runs `call` until it succeeds, fails for good, or runs out of retries; backs off
/// exponentially between attempts. Returns the last failure.
async fn with_retries<T, F, Fut>(
    options: &IndexerOptions,
    addr: &ReplicaAddr,
    what: &'static str,
    mut call: F,
) -> Result<T, WriteFailure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut backoff = options.initial_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(value),
            Err(status) => {
                // A write is an upsert or a delete by id, so one that outlived its own
                // per-request deadline is safe to send again.
                let retryable =
                    is_transient(status.code()) || status.code() == Code::DeadlineExceeded;
                let failure = WriteFailure {
                    what,
                    replica: addr.clone(),
                    code: status.code(),
                    message: status.message().to_string(),
                    attempts: attempt,
                };
                if !retryable || attempt > options.retries {
                    return Err(failure);
                }
                tracing::debug!(reason = %failure, "retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
