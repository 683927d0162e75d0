//! One shard's tantivy index: the blocking core of a leaf. Everything here is synchronous and
//! CPU- or disk-bound; [`crate::service`] runs it off the async runtime.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use fanout_proto::{shard_for_id, ShardId};
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::QueryParser;
use tantivy::schema::{Field, OwnedValue, Schema, Value as _};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::error::LeafError;
use crate::schema::SchemaConfig;

/// Largest `from + size` a leaf accepts: deeper pages cost memory on every shard.
pub const MAX_WINDOW: usize = 100_000;

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
    pub id: String,
    pub score: f32,
    /// The stored fields as one JSON object, ready for the wire: a field with one value maps
    /// to it, a field with several to an array.
    pub fields_json: String,
}

/// A shard's answer to one query.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafHits {
    pub total_hits: u64,
    pub hits: Vec<LeafHit>,
    pub generation: u64,
}

/// The outcome of indexing a batch: per-document rejections by position.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchOutcome {
    pub accepted: u32,
    pub rejected: Vec<(u32, String)>,
}

/// One shard's index, its writer and its reader.
pub struct ShardIndex {
    shard: ShardId,
    config: SchemaConfig,
    schema: Schema,
    index: Index,
    id_field: Field,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    query_parser: QueryParser,
    /// The opstamp of the last commit visible to searches: persists across restarts.
    generation: AtomicU64,
}

impl ShardIndex {
    /// Opens the index in `dir`, creating it (and `dir`) if there is none. An existing index must
    /// have been created with the same schema.
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
                    "the index in {} was created with a different schema",
                    dir.display()
                )));
            }
            index
        } else {
            Index::create_in_dir(dir, schema.clone())?
        };
        Self::from_index(index, shard, config, writer_options)
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
        let query_parser = QueryParser::for_index(&index, config.default_search_fields(&schema));
        let generation = index.load_metas()?.opstamp;
        Ok(Self {
            shard,
            config,
            schema,
            index,
            id_field,
            writer: Mutex::new(writer),
            reader,
            query_parser,
            generation: AtomicU64::new(generation),
        })
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

    /// Documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The generation visible to searches.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Adds or replaces (by id) a batch of JSON documents. `num_shards` is the shard count the
    /// sender routed with; 0 skips the routing check.
    pub fn index_batch<S: AsRef<str>>(
        &self,
        shard: ShardId,
        num_shards: u32,
        docs: &[S],
    ) -> Result<BatchOutcome, LeafError> {
        if num_shards > 0 && shard != self.shard {
            return Err(LeafError::WrongShard {
                sent_to: shard,
                serves: self.shard,
            });
        }
        let writer = self.writer.lock().expect("writer lock poisoned");
        let mut outcome = BatchOutcome::default();
        for (position, json) in docs.iter().enumerate() {
            match self.parse_document(json.as_ref(), num_shards) {
                Ok((id, doc)) => {
                    // Delete-then-add in one writer makes the batch an upsert: a re-run of an
                    // import replaces documents rather than duplicating them.
                    writer.delete_term(Term::from_field_text(self.id_field, &id));
                    writer.add_document(doc)?;
                    outcome.accepted += 1;
                }
                Err(reason) => outcome.rejected.push((position as u32, reason)),
            }
        }
        Ok(outcome)
    }

    fn parse_document(
        &self,
        json: &str,
        num_shards: u32,
    ) -> Result<(String, TantivyDocument), String> {
        let mut object: Map<String, Value> = match serde_json::from_str(json) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err("not a JSON object".into()),
            Err(e) => return Err(format!("invalid JSON: {e}")),
        };
        let id_name = &self.config.id_field;
        let id = match object.get(id_name) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(_) => return Err(format!("field {id_name:?} must be a non-empty string")),
            None => return Err(format!("missing id field {id_name:?}")),
        };
        if num_shards > 0 {
            let owner = shard_for_id(&id, num_shards);
            if owner != self.shard {
                return Err(format!(
                    "id {id:?} belongs to shard {owner} of {num_shards}, not to shard {}",
                    self.shard
                ));
            }
        }
        object.insert(id_name.clone(), Value::String(id.clone()));
        let doc =
            TantivyDocument::from_json_object(&self.schema, object).map_err(|e| e.to_string())?;
        Ok((id, doc))
    }

    /// Makes everything indexed so far durable and visible. Returns the new generation.
    pub fn commit(&self) -> Result<u64, LeafError> {
        let mut writer = self.writer.lock().expect("writer lock poisoned");
        let opstamp = writer.commit()?;
        self.reader.reload()?;
        self.generation.store(opstamp, Ordering::Release);
        Ok(opstamp)
    }

    /// Runs a query: the `size` best hits after skipping `from`, and the number of matches.
    pub fn search(&self, query: &str, from: usize, size: usize) -> Result<LeafHits, LeafError> {
        if from.saturating_add(size) > MAX_WINDOW {
            return Err(LeafError::InvalidArgument(format!(
                "from + size must be at most {MAX_WINDOW}, got {}",
                from.saturating_add(size)
            )));
        }
        let query = self
            .query_parser
            .parse_query(query)
            .map_err(|e| LeafError::InvalidQuery(e.to_string()))?;
        let generation = self.generation();
        let searcher = self.reader.searcher();
        let (top, total_hits) = if size == 0 {
            (Vec::new(), searcher.search(&query, &Count)?)
        } else {
            let top = TopDocs::with_limit(size).and_offset(from).order_by_score();
            searcher.search(&query, &(top, Count))?
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let id = doc
                .get_first(self.id_field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            hits.push(LeafHit {
                id,
                score,
                fields_json: self.stored_fields_json(&doc)?,
            });
        }
        Ok(LeafHits {
            total_hits: total_hits as u64,
            hits,
            generation,
        })
    }

    /// A stored document as a JSON object, written directly from the stored values: one value
    /// per field, or an array when it has several.
    fn stored_fields_json(&self, doc: &TantivyDocument) -> Result<String, LeafError> {
        let mut out = Vec::with_capacity(512);
        let mut serializer = serde_json::Serializer::new(&mut out);
        let written: Result<(), serde_json::Error> = (|| {
            let mut map = serializer.serialize_map(None)?;
            for (field, entry) in self.schema.fields() {
                if !entry.is_stored() {
                    continue;
                }
                let mut values = doc.get_all(field).map(OwnedValue::from);
                let Some(first) = values.next() else { continue };
                match values.next() {
                    None => map.serialize_entry(entry.name(), &first)?,
                    Some(second) => {
                        let all: Vec<OwnedValue> =
                            [first, second].into_iter().chain(values).collect();
                        map.serialize_entry(entry.name(), &all)?
                    }
                }
            }
            map.end()
        })();
        written.map_err(|e| LeafError::Internal(format!("cannot encode stored fields: {e}")))?;
        Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hit's stored fields, parsed back.
    fn fields(hit: &LeafHit) -> Value {
        serde_json::from_str(&hit.fields_json).unwrap()
    }

    fn index_with(docs: &[&str]) -> ShardIndex {
        let index =
            ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        let outcome = index.index_batch(0, 0, docs).unwrap();
        assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
        index.commit().unwrap();
        index
    }

    #[test]
    fn finds_what_was_indexed_with_stored_fields() {
        let index = index_with(&[
            r#"{"id": "a", "title": "red fox", "body": "quick brown"}"#,
            r#"{"id": "b", "title": "blue whale", "body": "the largest animal"}"#,
            r#"{"id": "c", "title": "red panda", "body": "red fur", "date": "2024-01-02T03:04:05Z"}"#,
        ]);
        let found = index.search("red", 0, 10).unwrap();
        assert_eq!(found.total_hits, 2);
        let ids: Vec<_> = found.hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["c", "a"], "c mentions red twice");
        assert_eq!(fields(&found.hits[0])["title"], "red panda");
        assert_eq!(fields(&found.hits[0])["date"], "2024-01-02T03:04:05Z");
        assert!(
            fields(&found.hits[0]).get("author").is_none(),
            "absent fields are left out"
        );
        let multi = index_with(&[r#"{"id": "m", "title": "duo", "author": ["ann", "bob"]}"#]);
        let hit = &multi.search("duo", 0, 1).unwrap().hits[0];
        assert_eq!(
            fields(hit)["author"],
            serde_json::json!(["ann", "bob"]),
            "several values: an array"
        );
        assert_eq!(fields(hit)["id"], "m");
        assert_eq!(index.search("+red -panda", 0, 10).unwrap().hits[0].id, "a");
        assert_eq!(
            index.search("\"largest animal\"", 0, 10).unwrap().hits[0].id,
            "b"
        );
        assert_eq!(index.search("title:whale", 0, 10).unwrap().total_hits, 1);
        let second = index.search("red", 1, 10).unwrap();
        assert_eq!(second.hits.len(), 1);
        assert_eq!(second.total_hits, 2);
        assert_eq!(index.search("red", 0, 0).unwrap().total_hits, 2);
    }

    #[test]
    fn reindexing_an_id_replaces_the_document() {
        let index = index_with(&[r#"{"id": "a", "title": "old"}"#]);
        index
            .index_batch(0, 0, &[r#"{"id": "a", "title": "new"}"#])
            .unwrap();
        index.commit().unwrap();
        assert_eq!(index.num_docs(), 1);
        assert_eq!(index.search("old", 0, 10).unwrap().total_hits, 0);
        assert_eq!(index.search("new", 0, 10).unwrap().total_hits, 1);
    }

    #[test]
    fn bad_documents_are_rejected_one_by_one() {
        let index =
            ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        let outcome = index
            .index_batch(
                0,
                0,
                &[
                    r#"{"id": "ok", "title": "fine"}"#,
                    r#"{"title": "no id"}"#,
                    r#"{"id": "d", "date": "yesterday"}"#,
                    r#"[1, 2]"#,
                    r#"{"id": "x""#,
                    r#"{"id": 42, "title": "numeric ids are kept as strings"}"#,
                ],
            )
            .unwrap();
        assert_eq!(outcome.accepted, 2);
        let positions: Vec<u32> = outcome.rejected.iter().map(|r| r.0).collect();
        assert_eq!(positions, [1, 2, 3, 4]);
        assert!(
            outcome.rejected[0].1.contains("missing id"),
            "{:?}",
            outcome.rejected
        );
        assert!(
            outcome.rejected[1].1.contains("date"),
            "{:?}",
            outcome.rejected
        );
        index.commit().unwrap();
        assert_eq!(index.search("id:42", 0, 1).unwrap().hits[0].id, "42");
    }

    #[test]
    fn refuses_documents_routed_to_the_wrong_shard() {
        let index =
            ShardIndex::in_ram(1, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        let err = index.index_batch(0, 2, &[r#"{"id": "a"}"#]).unwrap_err();
        assert!(
            matches!(
                err,
                LeafError::WrongShard {
                    sent_to: 0,
                    serves: 1
                }
            ),
            "{err}"
        );
        let ids: Vec<String> = (0..20).map(|i| format!("doc-{i}")).collect();
        let docs: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"id": "{id}"}}"#))
            .collect();
        let outcome = index.index_batch(1, 2, &docs).unwrap();
        let expected_ok = ids.iter().filter(|id| shard_for_id(id, 2) == 1).count();
        assert_eq!(outcome.accepted as usize, expected_ok);
        assert!(outcome
            .rejected
            .iter()
            .all(|(_, r)| r.contains("belongs to shard 0")));
    }

    #[test]
    fn bad_queries_and_windows_are_invalid_arguments() {
        let index = index_with(&[r#"{"id": "a", "title": "x"}"#]);
        let err = index.search("title:(", 0, 10).unwrap_err();
        assert!(matches!(err, LeafError::InvalidQuery(_)), "{err}");
        let err = index.search("nosuchfield:x", 0, 10).unwrap_err();
        assert!(matches!(err, LeafError::InvalidQuery(_)), "{err}");
        let err = index.search("x", MAX_WINDOW, 1).unwrap_err();
        assert!(matches!(err, LeafError::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn generation_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WriterOptions::default();
        let generation = {
            let index =
                ShardIndex::open_or_create(dir.path(), 0, SchemaConfig::default(), &opts).unwrap();
            index
                .index_batch(0, 0, &[r#"{"id": "a", "title": "kept"}"#])
                .unwrap();
            index.commit().unwrap()
        };
        assert!(generation > 0);
        let index =
            ShardIndex::open_or_create(dir.path(), 0, SchemaConfig::default(), &opts).unwrap();
        assert_eq!(index.generation(), generation);
        assert_eq!(index.search("kept", 0, 10).unwrap().total_hits, 1);
        let mut other = SchemaConfig::default();
        other.fields.pop();
        drop(index);
        let err = ShardIndex::open_or_create(dir.path(), 0, other, &opts)
            .err()
            .unwrap();
        assert!(err.to_string().contains("different schema"), "{err}");
    }
}
