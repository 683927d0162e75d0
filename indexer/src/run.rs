//! One indexing run: read the inputs on a thread, route each document to its shard by the
//! `fanout.v1` shard function, and feed per-shard writers that run concurrently, one batch in
//! flight per shard so that a later version of a document never overtakes an earlier one.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fanout_proto::{shard_for_id, ShardId, Topology};
use tokio::sync::mpsc;

use crate::ndjson::{extract_id, Line, LineReader};
use crate::options::{IndexerOptions, WriteMode};
use crate::progress::Progress;
use crate::rejects::{Reject, RejectLog};
use crate::writer::{Batch, ReplicaFailure, ShardWriter};

/// One input: a name for messages and a byte stream (plain or gzip NDJSON).
pub struct Input {
    /// A name for messages: the path, or `<stdin>`.
    pub name: Arc<str>,
    /// Its bytes, plain or gzip NDJSON.
    pub reader: Box<dyn Read + Send>,
    /// Bytes the input holds, when known (a file), for the progress display's ETA.
    pub size: Option<u64>,
}

impl Input {
    /// A file; `-` is standard input.
    pub fn open(path: &Path) -> io::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self::stdin());
        }
        let file = std::fs::File::open(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        Ok(Self {
            name: path.display().to_string().into(),
            reader: Box::new(file),
            size,
        })
    }

    /// Standard input.
    pub fn stdin() -> Self {
        Self {
            name: "<stdin>".into(),
            reader: Box::new(io::stdin()),
            size: None,
        }
    }

    /// Bytes held in memory, for tests and embedding.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            size: Some(bytes.len() as u64),
            reader: Box::new(io::Cursor::new(bytes)),
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    /// Lines read, good and bad.
    pub lines: u64,
    /// Bytes read (after decompression).
    pub bytes: u64,
    /// Documents acknowledged by every replica of their shard (deleted, in delete mode).
    pub docs_indexed: u64,
    /// Documents indexed per shard.
    pub per_shard: Vec<u64>,
    /// Lines not indexed.
    pub rejected: u64,
    /// The first rejected lines, in the order they were found.
    pub sample_rejects: Vec<Reject>,
    /// Replicas that stopped taking writes.
    pub replica_failures: Vec<ReplicaFailure>,
    /// Inputs that could not be read to the end.
    pub input_errors: Vec<String>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// Whether everything that was readable got indexed on every replica.
    pub fn is_complete(&self) -> bool {
        self.replica_failures.is_empty() && self.input_errors.is_empty()
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A replica address of the topology is not a valid endpoint.
    #[error("invalid replica address: {0}")]
    Address(#[from] tonic::transport::Error),
    /// The rejects file could not be written.
    #[error("cannot write the rejects file: {0}")]
    RejectsFile(io::Error),
}

/// Indexes `inputs` into the cluster `topology` describes, counting what it does in `progress`.
pub async fn index_inputs(
    topology: &Topology,
    inputs: Vec<Input>,
    options: &IndexerOptions,
    rejects: Arc<RejectLog>,
    progress: Arc<Progress>,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let num_shards = topology.num_shards();
    progress.set_input_total(inputs.iter().map(|i| i.size).sum());
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for spec in topology.shards() {
        let mut writer =
            ShardWriter::new(spec, num_shards, options.clone(), Arc::clone(&progress))?;
        // Capacity 1: one batch in flight and one waiting per shard bounds memory.
        let (tx, mut rx) = mpsc::channel::<Batch>(1);
        let rejects = Arc::clone(&rejects);
        workers.push(tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                writer.write(batch, &rejects).await;
            }
            writer.finish().await
        }));
        senders.push(tx);
    }

    let reader_options = options.clone();
    let reader_rejects = Arc::clone(&rejects);
    let reader = tokio::task::spawn_blocking(move || {
        read_and_route(
            inputs,
            num_shards,
            &reader_options,
            &reader_rejects,
            &progress,
            &senders,
        )
    });
    let read = reader.await.expect("the reader thread does not panic");

    let mut per_shard = vec![0; num_shards as usize];
    let mut replica_failures = Vec::new();
    for worker in workers {
        let report = worker.await.expect("shard writers do not panic");
        per_shard[report.shard as usize] = report.docs_indexed;
        replica_failures.extend(report.failures);
    }
    let (rejected, sample_rejects, file_error) = rejects.finish();
    if let Some(e) = file_error {
        return Err(RunError::RejectsFile(e));
    }
    Ok(Summary {
        lines: read.lines,
        bytes: read.bytes,
        docs_indexed: per_shard.iter().sum(),
        per_shard,
        rejected,
        sample_rejects,
        replica_failures,
        input_errors: read.errors,
        elapsed: started.elapsed(),
    })
}

struct ReadTotals {
    lines: u64,
    bytes: u64,
    errors: Vec<String>,
}

/// The reader thread: numbered lines in, per-shard batches out.
fn read_and_route(
    inputs: Vec<Input>,
    num_shards: u32,
    options: &IndexerOptions,
    rejects: &RejectLog,
    progress: &Arc<Progress>,
    senders: &[mpsc::Sender<Batch>],
) -> ReadTotals {
    let mut totals = ReadTotals {
        lines: 0,
        bytes: 0,
        errors: Vec::new(),
    };
    let mut batches: Vec<Batch> = (0..num_shards).map(|_| Batch::default()).collect();
    let send = |shard: ShardId, batch: Batch| {
        // Fails only if the writer task is gone, which only happens if it panicked.
        let _ = senders[shard as usize].blocking_send(batch);
    };
    for input in inputs {
        let name = Arc::clone(&input.name);
        let counted = progress.counting(input.reader);
        let mut reader = match LineReader::open(counted, options.max_line_bytes) {
            Ok(reader) => reader,
            Err(e) => {
                totals.errors.push(format!("{name}: {e}"));
                continue;
            }
        };
        loop {
            let (number, line) = match reader.next_line() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    let after = reader.lines_read();
                    totals
                        .errors
                        .push(format!("{name}: read error after line {after}: {e}"));
                    break;
                }
            };
            totals.lines += 1;
            let routed = match line {
                Line::Text(text) => extract_id(&text, &options.id_field).map(|id| (id, text)),
                Line::Bad(e) => Err(e),
            };
            match routed {
                Ok((id, text)) => {
                    let shard = shard_for_id(&id, num_shards);
                    let batch = &mut batches[shard as usize];
                    let item = match options.mode {
                        WriteMode::Upsert => text,
                        WriteMode::Delete => id,
                    };
                    batch.bytes += item.len();
                    batch.docs.push(item);
                    batch.origins.push((Arc::clone(&name), number));
                    if batch.docs.len() >= options.batch_docs || batch.bytes >= options.batch_bytes
                    {
                        send(shard, std::mem::take(batch));
                    }
                }
                Err(reason) => rejects.record(Reject {
                    source: Arc::clone(&name),
                    line: number,
                    reason,
                }),
            }
        }
        totals.bytes += reader.bytes_read();
    }
    for (shard, batch) in batches.into_iter().enumerate() {
        if !batch.docs.is_empty() {
            send(shard as ShardId, batch);
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn a_broken_input_is_reported_with_its_own_line_count() {
        // Nothing listens there: only the reading matters here.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let topology = Topology::from_specs(&[format!("0={dead}")]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..20_000 {
            writeln!(
                gz,
                "{{\"id\": \"doc-{i}\", \"title\": \"line {i} of a gzip input\"}}"
            )
            .unwrap();
        }
        let mut truncated = gz.finish().unwrap();
        truncated.truncate(truncated.len() / 2);
        let inputs = vec![
            Input::from_bytes(
                "first.ndjson",
                b"{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"c\"}\n".to_vec(),
            ),
            Input::from_bytes("second.ndjson.gz", truncated),
        ];
        let options = IndexerOptions {
            retries: 0,
            ..IndexerOptions::default()
        };
        let summary = index_inputs(
            &topology,
            inputs,
            &options,
            Arc::new(RejectLog::new(None)),
            Arc::default(),
        )
        .await
        .unwrap();
        assert_eq!(summary.input_errors.len(), 1, "{:?}", summary.input_errors);
        let from_second = summary.lines - 3;
        assert!(from_second > 0 && from_second < 20_000);
        let expected = format!("second.ndjson.gz: read error after line {from_second}: ");
        assert!(
            summary.input_errors[0].starts_with(&expected),
            "{:?}",
            summary.input_errors
        );
        assert!(!summary.is_complete());
    }
}
