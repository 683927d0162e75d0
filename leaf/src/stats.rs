//! BM25 statistics across shards. A shard scoring with its own document frequencies ranks as
//! if its documents were the whole corpus, so the same document scores differently on
//! different splits. A leaf reports its statistics for a query's terms ([`shard_stats`]); a root
//! sums them over the shards and sends the sums with the search; the leaf then scores with
//! them ([`SuppliedStats`]). A shard's statistics count its live documents only
//! ([`crate::snapshot`]), so summed they are exactly those of one index freshly built from
//! every shard's documents, and so are the scores.

use std::collections::{BTreeMap, BTreeSet};

use tantivy::query::{Bm25StatisticsProvider, Query};
use tantivy::schema::{Field, Schema};
use tantivy::Term;

/// What BM25 needs to know about a corpus: a shard's, or every shard's summed. Ordered maps,
/// so that what goes on the wire comes out in the same order every time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorpusStats {
    /// Live documents.
    pub num_docs: u64,
    /// Total tokens per indexed field, by field name.
    pub fields: BTreeMap<String, u64>,
    /// Documents per term, by [`term_key`].
    pub terms: BTreeMap<Vec<u8>, u64>,
}

/// Statistics a caller sent to score with (the cluster's), and the generation of this replica
/// that the shard's part of them was read from, as far as the caller knows. A search on
/// another generation (or when the caller does not know) answers with the shard's current
/// statistics beside its hits, so that the caller can tell whether the scores it asked for are
/// those of the data searched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Supplied {
    /// The statistics to score with.
    pub stats: CorpusStats,
    /// The generation the shard's part of them came from.
    pub generation: Option<u64>,
}

/// A shard's statistics for the terms `query` scores, read from `live` (see
/// [`crate::snapshot::LiveStats`]).
pub fn shard_stats(
    live: &dyn Bm25StatisticsProvider,
    schema: &Schema,
    query: &dyn Query,
) -> tantivy::Result<CorpusStats> {
    let mut terms = BTreeSet::new();
    query.query_terms(&mut |term, _| {
        terms.insert(term.clone());
    });
    let mut stats = CorpusStats {
        num_docs: live.total_num_docs()?,
        ..CorpusStats::default()
    };
    for (field, entry) in schema.fields() {
        // Every indexed field, not only text: tantivy scores a term on a number or a date
        // with BM25 too, and its average length must be the cluster's.
        if entry.is_indexed() {
            let tokens = live.total_num_tokens(field)?;
            stats.fields.insert(entry.name().to_string(), tokens);
        }
    }
    for term in terms {
        let df = live.doc_freq(&term)?;
        stats.terms.insert(term_key(&term), df);
    }
    Ok(stats)
}

/// A term's key on the wire: its field id (4 bytes, big-endian), then tantivy's bytes of its
/// value (type and value). Shards share the schema, so equal terms have equal keys.
pub fn term_key(term: &Term) -> Vec<u8> {
    let value = term.serialized_value_bytes();
    let mut key = Vec::with_capacity(4 + value.len());
    key.extend_from_slice(&term.field().field_id().to_be_bytes());
    key.extend_from_slice(value);
    key
}

/// Scores with statistics a root supplied, falling back to the shard's own for anything they
/// lack (a term the root did not know the query uses).
pub struct SuppliedStats<'a> {
    /// The statistics the caller sent.
    pub supplied: &'a CorpusStats,
    /// The shard's schema.
    pub schema: &'a Schema,
    /// The shard's own statistics, for terms the caller did not send.
    pub local: &'a dyn Bm25StatisticsProvider,
}

impl Bm25StatisticsProvider for SuppliedStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        match self.supplied.fields.get(self.schema.get_field_name(field)) {
            Some(&tokens) => Ok(tokens),
            None => self.local.total_num_tokens(field),
        }
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        if self.supplied.num_docs == 0 {
            return self.local.total_num_docs();
        }
        Ok(self.supplied.num_docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let df = match self.supplied.terms.get(&term_key(term)) {
            Some(&df) => df,
            None => self.local.doc_freq(term)?,
        };
        // BM25's idf asserts df <= N; statistics gathered at slightly different moments must
        // not turn into a panic.
        Ok(df.min(self.total_num_docs()?))
    }
}
