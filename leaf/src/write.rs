//! The write side's pieces: replaying logged operations into the writer, upserts, and which
//! ids the committed segments already hold.

use std::sync::Arc;

use serde_json::Value;
use tantivy::schema::{Field, Schema};
use tantivy::{Index, IndexWriter, InvertedIndexReader, Searcher, TantivyDocument, Term};

use crate::document::parse_document;
use crate::error::LeafError;
use crate::schema::SchemaConfig;
use crate::wal::{Entry, OpKind};

/// The key in a tantivy commit's payload that records the last write-ahead log record the
/// commit contains.
pub const PAYLOAD_WAL_SEQ: &str = "wal_seq";

/// The last log record the index's newest commit contains (0 if it records none).
pub fn committed_wal_seq(index: &Index) -> Result<u64, LeafError> {
    let Some(payload) = index.load_metas()?.payload else {
        return Ok(0);
    };
    let parsed: Value = serde_json::from_str(&payload)
        .map_err(|e| LeafError::Config(format!("unreadable commit payload {payload:?}: {e}")))?;
    Ok(parsed
        .get(PAYLOAD_WAL_SEQ)
        .and_then(Value::as_u64)
        .unwrap_or(0))
}

/// Re-applies one logged operation. Documents were checked when they were first accepted, so
/// one failing now means the schema changed under the log: refuse to open rather than drop it.
pub fn apply_entry(
    writer: &IndexWriter,
    schema: &Schema,
    config: &SchemaConfig,
    id_field: Field,
    entry: Entry,
) -> Result<(), LeafError> {
    for item in &entry.items {
        match entry.kind {
            OpKind::Upsert => {
                let (id, doc) = parse_document(schema, config, item).map_err(|why| {
                    LeafError::Config(format!(
                        "write-ahead log record {} no longer fits the schema: {why}",
                        entry.seq
                    ))
                })?;
                upsert(writer, id_field, &id, doc)?;
            }
            OpKind::Delete => {
                writer.delete_term(Term::from_field_text(id_field, item));
            }
        }
    }
    Ok(())
}

/// The id field's postings in every committed segment, opened once per batch.
pub struct CommittedIds(Vec<Arc<InvertedIndexReader>>);

impl CommittedIds {
    /// The postings of `id_field` in every segment `searcher` sees.
    pub fn new(searcher: &Searcher, id_field: Field) -> Result<Self, LeafError> {
        let postings = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.inverted_index(id_field))
            .collect::<tantivy::Result<_>>()?;
        Ok(Self(postings))
    }

    /// Whether any segment has `term`, deleted documents included.
    pub fn holds(&self, term: &Term) -> Result<bool, LeafError> {
        for postings in &self.0 {
            if postings
                .doc_freq(term)
                .map_err(tantivy::TantivyError::from)?
                > 0
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Delete-then-add in one writer makes an add an upsert: a re-run of an import replaces
/// documents rather than duplicating them.
pub fn upsert(
    writer: &IndexWriter,
    id_field: Field,
    id: &str,
    doc: TantivyDocument,
) -> Result<(), LeafError> {
    writer.delete_term(Term::from_field_text(id_field, id));
    writer.add_document(doc)?;
    Ok(())
}
