//! One shard's tantivy index: the blocking core of a leaf. Everything here is synchronous and
//! CPU- or disk-bound; [`crate::service`] runs it off the async runtime.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use fanout_proto::query::QueryLimits;
use fanout_proto::ShardId;
use tantivy::schema::{Field, Schema};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use crate::document::{check_owner, parse_document};
use crate::error::LeafError;
use crate::query::QueryBuilder;
use crate::schema::SchemaConfig;
use crate::snapshot::Snapshot;
use crate::stats::CorpusStats;
use crate::top::IdColumns;
use crate::wal::{OpKind, Wal};
use crate::write::{apply_entry, committed_wal_seq, CommittedIds, PAYLOAD_WAL_SEQ};

/// Largest `from + size` a leaf accepts: deeper pages cost memory on every shard.
pub const MAX_WINDOW: usize = 100_000;

/// Most bytes of hits (ids and stored fields) one search answer may carry: below the gRPC
/// message limit, so that a page of huge documents is a clear error rather than a failed
/// encode that looks like a broken replica.
pub const MAX_RESPONSE_BYTES: usize = fanout_proto::MAX_MESSAGE_BYTES - (1 << 20);

/// How the index writer may use the machine.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Indexing threads (tantivy's writer threads).
    pub threads: usize,
    /// Memory budget of the writer across its threads, in bytes.
    pub memory_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            memory_bytes: 64 << 20,
        }
    }
}

/// A hit as the leaf returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafHit {
    /// The document's id.
    pub id: String,
    /// Its BM25 score.
    pub score: f32,
    /// The stored fields as one JSON object, ready for the wire: a field with one value maps
    /// to it, a field with several to an array.
    pub fields_json: String,
}

/// A shard's answer to one query.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafHits {
    /// Documents that matched, all of them, not only those returned.
    pub total_hits: u64,
    /// The top hits, best first.
    pub hits: Vec<LeafHit>,
    /// The commit the search read, which changes when the shard's contents do.
    pub generation: u64,
    /// The shard's own statistics for the query's terms at that commit, when the caller's
    /// were from another one (see [`Supplied`]).
    pub shard_stats: Option<CorpusStats>,
}

/// The outcome of indexing a batch: per-document rejections by position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchOutcome {
    /// Documents taken.
    pub accepted: u32,
    /// Documents refused: their position in the batch, and why.
    pub rejected: Vec<(u32, String)>,
}

/// Everything a write touches, under one lock so that the log's order is the index's order.
struct Writer {
    writer: IndexWriter,
    /// `None` for an index in RAM, which has nothing to make durable.
    wal: Option<Wal>,
    /// Ids added since the last commit, which the reader does not see yet.
    pending_ids: HashSet<String>,
    /// The opstamp of the last durable commit, which searches may not see yet if showing it
    /// to them failed.
    committed: u64,
}

/// What a commit would publish now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uncommitted {
    /// Batches and deletions since the last commit.
    pub ops: u64,
    /// Bytes of write-ahead log since the last commit.
    pub log_bytes: u64,
}

/// One shard's index, its writer and its reader.
pub struct ShardIndex {
    shard: ShardId,
    config: SchemaConfig,
    schema: Schema,
    index: Index,
    id_field: Field,
    /// A std mutex on purpose: a panic midway through a write may leave the log and the
    /// writer disagreeing, and poisoning then refuses every later write (an error, not a
    /// crash) instead of acknowledging writes on top of that.
    writer: Mutex<Writer>,
    /// What the next commit would publish: changed under the writer lock, read without it, so
    /// that the refresh timer and `Info` never wait on the async runtime for a commit or an
    /// fsync to release the lock.
    uncommitted_ops: AtomicU64,
    uncommitted_log_bytes: AtomicU64,
    reader: IndexReader,
    queries: QueryBuilder,
    /// What searches read: replaced whole at each commit. Its generation, the opstamp of the
    /// last commit visible to searches, persists across restarts.
    snapshot: RwLock<Arc<Snapshot>>,
    /// A durable commit whose publication failed (see [`ShardIndex::unpublished`]).
    unpublished: AtomicBool,
    /// Log records replayed when the index was opened.
    replayed: u64,
    /// The segments' id columns, for the total order.
    id_columns: IdColumns,
}

impl ShardIndex {
    /// Opens the index in `dir`, creating it (and `dir`) if there is none, and replays what its
    /// write-ahead log (`dir/wal`) holds beyond the last commit. An existing index must have been
    /// created with the same schema.
    pub fn open_or_create(
        dir: &Path,
        shard: ShardId,
        config: SchemaConfig,
        writer_options: &WriterOptions,
    ) -> Result<Self, LeafError> {
        config
            .validate()
            .map_err(|e| LeafError::Config(e.to_string()))?;
        let schema = config.build();
        std::fs::create_dir_all(dir)
            .map_err(|e| LeafError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let index = if dir.join("meta.json").exists() {
            let index = Index::open_in_dir(dir)?;
            if index.schema() != schema {
                return Err(LeafError::Config(format!(
                    "the index in {} was created with a different schema (an index built before \
                     the id field became a fast column is one: re-import it into an empty \
                     directory, or start fanout-cluster with --fresh)",
                    dir.display()
                )));
            }
            index
        } else {
            Index::create_in_dir(dir, schema.clone())?
        };
        let mut opened = Self::from_index(index, shard, config, writer_options)?;
        opened.open_log(&dir.join("wal"))?;
        Ok(opened)
    }

    /// Replays the log's records after the last commit into the writer, then commits them so
    /// that they are searchable and the log can be trimmed.
    fn open_log(&mut self, dir: &Path) -> Result<(), LeafError> {
        let applied = committed_wal_seq(&self.index)?;
        let state = self.writer.get_mut().expect("writer lock poisoned");
        let (wal, replayed) = Wal::open(dir, applied, |entry| {
            apply_entry(
                &state.writer,
                &self.schema,
                &self.config,
                self.id_field,
                entry,
            )
        })?;
        state.wal = Some(wal);
        *self.uncommitted_ops.get_mut() = replayed;
        self.replayed = replayed;
        if replayed > 0 {
            tracing::info!(
                shard = self.shard,
                records = replayed,
                "replayed the write-ahead log"
            );
            self.commit()?;
        }
        Ok(())
    }

    /// An index held in memory only, for tests and benchmarks.
    pub fn in_ram(
        shard: ShardId,
        config: SchemaConfig,
        writer_options: &WriterOptions,
    ) -> Result<Self, LeafError> {
        config
            .validate()
            .map_err(|e| LeafError::Config(e.to_string()))?;
        let index = Index::create_in_ram(config.build());
        Self::from_index(index, shard, config, writer_options)
    }

    fn from_index(
        index: Index,
        shard: ShardId,
        config: SchemaConfig,
        writer_options: &WriterOptions,
    ) -> Result<Self, LeafError> {
        crate::schema::register_tokenizers(&index);
        let schema = index.schema();
        let id_field = schema
            .get_field(&config.id_field)
            .expect("validated: id field exists");
        let writer =
            index.writer_with_num_threads(writer_options.threads, writer_options.memory_bytes)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let queries = QueryBuilder::new(&index, &config, QueryLimits::default());
        let generation = index.load_metas()?.opstamp;
        let snapshot = Snapshot::new(generation, reader.searcher(), &schema, None)?;
        Ok(Self {
            shard,
            config,
            schema,
            index,
            id_field,
            writer: Mutex::new(Writer {
                writer,
                wal: None,
                pending_ids: HashSet::new(),
                committed: generation,
            }),
            uncommitted_ops: AtomicU64::new(0),
            uncommitted_log_bytes: AtomicU64::new(0),
            reader,
            queries,
            snapshot: RwLock::new(Arc::new(snapshot)),
            unpublished: AtomicBool::new(false),
            replayed: 0,
            id_columns: IdColumns::default(),
        })
    }

    /// Checks queries against `limits` instead of the contract's defaults.
    pub fn set_query_limits(&mut self, limits: QueryLimits) {
        self.queries = QueryBuilder::new(&self.index, &self.config, limits);
    }

    /// The shard this index serves.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The schema configuration the index was opened with.
    pub fn schema_config(&self) -> &SchemaConfig {
        &self.config
    }

    /// The underlying tantivy index.
    pub fn tantivy_index(&self) -> &Index {
        &self.index
    }

    /// What searches read now.
    fn snapshot(&self) -> Arc<Snapshot> {
        // A snapshot is replaced whole, so a panic elsewhere cannot leave half of one.
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.snapshot().searcher.num_docs()
    }

    /// The generation visible to searches.
    pub fn generation(&self) -> u64 {
        self.snapshot().generation
    }

    /// Log records replayed when the index was opened.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Whether a durable commit is not yet shown to searches (showing it failed): a commit
    /// with nothing new shows it.
    pub fn unpublished(&self) -> bool {
        self.unpublished.load(Ordering::Acquire)
    }

    /// What the next commit would publish.
    pub fn uncommitted(&self) -> Uncommitted {
        Uncommitted {
            ops: self.uncommitted_ops.load(Ordering::Acquire),
            log_bytes: self.uncommitted_log_bytes.load(Ordering::Acquire),
        }
    }

    /// Counts one more operation for the next commit; called with the writer lock held.
    fn count_write(&self, state: &Writer) {
        self.uncommitted_ops.fetch_add(1, Ordering::AcqRel);
        let log_bytes = state.wal.as_ref().map_or(0, Wal::pending_bytes);
        self.uncommitted_log_bytes
            .store(log_bytes, Ordering::Release);
    }

    /// Adds or replaces (by id) a batch of JSON documents. `num_shards` is the shard count the
    /// sender routed with; 0 skips the routing check. When this returns, the accepted documents
    /// are in the write-ahead log on disk; they become searchable at the next commit.
    pub fn index_batch<S: AsRef<str>>(
        &self,
        shard: ShardId,
        num_shards: u32,
        docs: &[S],
    ) -> Result<BatchOutcome, LeafError> {
        self.check_shard(shard, num_shards)?;
        let mut outcome = BatchOutcome::default();
        // Parse before taking the lock: it is most of the CPU work.
        let mut accepted = Vec::with_capacity(docs.len());
        for (position, json) in docs.iter().enumerate() {
            let json = json.as_ref();
            match parse_document(&self.schema, &self.config, json) {
                Ok((id, doc)) => match check_owner(self.shard, &id, num_shards) {
                    Ok(()) => accepted.push((json, id, doc)),
                    Err(reason) => outcome.rejected.push((position as u32, reason)),
                },
                Err(reason) => outcome.rejected.push((position as u32, reason)),
            }
        }
        if accepted.is_empty() {
            return Ok(outcome);
        }
        let mut state = self.writer.lock().expect("writer lock poisoned");
        if let Some(wal) = state.wal.as_mut() {
            wal.append(OpKind::Upsert, accepted.iter().map(|(json, _, _)| *json))?;
        }
        // Under the writer lock the reader shows exactly the last commit, and `pending_ids`
        // holds what came since: together, every id the index may hold.
        let committed = CommittedIds::new(&self.reader.searcher(), self.id_field)?;
        for (_, id, doc) in accepted {
            let term = Term::from_field_text(self.id_field, &id);
            // A delete costs a term lookup and a scorer in every segment at the next commit,
            // about a sixth of a leaf's indexing work; a new id, the common case of a bulk
            // import, needs none.
            if state.pending_ids.contains(&id) || committed.holds(&term)? {
                state.writer.delete_term(term);
            }
            state.writer.add_document(doc)?;
            state.pending_ids.insert(id);
            outcome.accepted += 1;
        }
        self.count_write(&state);
        Ok(outcome)
    }

    /// Deletes documents by id; an id that is not there is not an error. Rejects an empty id,
    /// and (when `num_shards` > 0) an id that belongs to another shard.
    pub fn delete_batch<S: AsRef<str>>(
        &self,
        shard: ShardId,
        num_shards: u32,
        ids: &[S],
    ) -> Result<BatchOutcome, LeafError> {
        self.check_shard(shard, num_shards)?;
        let mut outcome = BatchOutcome::default();
        let mut accepted = Vec::with_capacity(ids.len());
        for (position, id) in ids.iter().enumerate() {
            let id = id.as_ref();
            let checked = if id.is_empty() {
                Err("empty id".to_string())
            } else {
                check_owner(self.shard, id, num_shards)
            };
            match checked {
                Ok(()) => accepted.push(id),
                Err(reason) => outcome.rejected.push((position as u32, reason)),
            }
        }
        if accepted.is_empty() {
            return Ok(outcome);
        }
        let mut state = self.writer.lock().expect("writer lock poisoned");
        if let Some(wal) = state.wal.as_mut() {
            wal.append(OpKind::Delete, accepted.iter().copied())?;
        }
        for id in accepted {
            state
                .writer
                .delete_term(Term::from_field_text(self.id_field, id));
            outcome.accepted += 1;
        }
        self.count_write(&state);
        Ok(outcome)
    }

    fn check_shard(&self, shard: ShardId, num_shards: u32) -> Result<(), LeafError> {
        if num_shards > 0 && shard != self.shard {
            return Err(LeafError::WrongShard {
                sent_to: shard,
                serves: self.shard,
            });
        }
        Ok(())
    }

    /// Makes everything indexed so far visible, and trims the write-ahead log it no longer
    /// needs. Returns the generation, which changes only when there was something to commit.
    pub fn commit(&self) -> Result<u64, LeafError> {
        let mut state = self.writer.lock().expect("writer lock poisoned");
        if self.uncommitted_ops.load(Ordering::Acquire) == 0 {
            // Nothing new, but a commit whose publication failed is shown now.
            if self.generation() != state.committed {
                self.publish(state.committed)?;
                state.pending_ids.clear();
            }
            return Ok(state.committed);
        }
        let Writer { writer, wal, .. } = &mut *state;
        let wal_seq = wal.as_ref().map_or(0, Wal::last_seq);
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&serde_json::json!({ PAYLOAD_WAL_SEQ: wal_seq }).to_string());
        let opstamp = prepared.commit()?;
        state.committed = opstamp;
        let Writer { wal, .. } = &mut *state;
        if let Some(wal) = wal.as_mut() {
            wal.checkpoint(wal_seq)?;
        }
        self.uncommitted_ops.store(0, Ordering::Release);
        self.uncommitted_log_bytes.store(0, Ordering::Release);
        self.publish(opstamp)?;
        state.pending_ids.clear();
        Ok(opstamp)
    }

    /// Merges every segment into one, dropping deleted documents, and shows the result to
    /// searches. The contents do not change, and neither do the generation nor the live
    /// statistics: only the layout does, which is how tests show that scores do not depend on
    /// when merges happen.
    pub fn merge_segments(&self) -> Result<(), LeafError> {
        let mut state = self.writer.lock().expect("writer lock poisoned");
        // A merge the writer's own policy runs in the background may hold some of the
        // segments, and then this one is refused: try again on the segments as they are once
        // it has finished.
        let mut attempts = 0;
        loop {
            let segments = self.index.searchable_segment_ids()?;
            let snapshot = self.snapshot();
            let deletes = snapshot
                .searcher
                .segment_readers()
                .iter()
                .any(|s| s.has_deletes());
            if segments.len() < 2 && !deletes {
                return Ok(());
            }
            match state.writer.merge(&segments).wait() {
                Ok(_) => break,
                Err(tantivy::TantivyError::InvalidArgument(_)) if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.publish(state.committed)
    }

    /// Shows searches what the index holds now, as `generation`. Called with the writer lock
    /// held, so that two publications cannot interleave. Until one succeeds,
    /// [`ShardIndex::unpublished`] says so, so that the refresh timer tries again.
    fn publish(&self, generation: u64) -> Result<(), LeafError> {
        self.unpublished.store(true, Ordering::Release);
        self.reader.reload()?;
        let snapshot = Snapshot::new(
            generation,
            self.reader.searcher(),
            &self.schema,
            Some(&self.snapshot()),
        )?;
        // Searches see new segments only from here: forget the id columns of merged-away ones
        // once per publication, not on every search.
        let live: Vec<_> = snapshot
            .searcher
            .segment_readers()
            .iter()
            .map(|s| s.segment_id())
            .collect();
        self.id_columns.keep_only(&live);
        self.unpublished.store(false, Ordering::Release);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        Ok(())
    }
}

#[path = "index_search.rs"]
mod search;

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
