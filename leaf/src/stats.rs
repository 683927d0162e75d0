//! BM25 statistics across shards. A shard scoring with its own document frequencies ranks as
//! if its documents were the whole corpus, so the same document scores differently on
//! different splits. A leaf reports its statistics for a query's terms ([`shard_stats`]); a root
//! sums them over the shards and sends the sums with the search; the leaf then scores with
//! them ([`SuppliedStats`]). Summed this way, tantivy's statistics are exactly those of one
//! index holding every shard's documents, so the scores are too.

use std::collections::{BTreeMap, BTreeSet};

use tantivy::query::{Bm25StatisticsProvider, Query};
use tantivy::schema::{Field, FieldType, Schema};
use tantivy::{Searcher, Term};

/// What BM25 needs to know about a corpus: a shard's, or every shard's summed. Ordered maps,
/// so that what goes on the wire comes out in the same order every time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorpusStats {
    /// Documents, counted as tantivy does for BM25 (deleted ones not merged away included).
    pub num_docs: u64,
    /// Total tokens per indexed text field, by field name.
    pub fields: BTreeMap<String, u64>,
    /// Documents per term, by [`term_key`].
    pub terms: BTreeMap<Vec<u8>, u64>,
}

/// A shard's statistics for the terms `query` scores, read from `searcher`.
pub fn shard_stats(
    searcher: &Searcher,
    schema: &Schema,
    query: &dyn Query,
) -> tantivy::Result<CorpusStats> {
    let mut terms = BTreeSet::new();
    query.query_terms(&mut |term, _| {
        terms.insert(term.clone());
    });
    let mut stats = CorpusStats {
        num_docs: Bm25StatisticsProvider::total_num_docs(searcher)?,
        ..CorpusStats::default()
    };
    for (field, entry) in schema.fields() {
        if matches!(entry.field_type(), FieldType::Str(_)) && entry.is_indexed() {
            let tokens = Bm25StatisticsProvider::total_num_tokens(searcher, field)?;
            stats.fields.insert(entry.name().to_string(), tokens);
        }
    }
    for term in terms {
        let df = searcher.doc_freq(&term)?;
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
    pub local: &'a Searcher,
}

impl Bm25StatisticsProvider for SuppliedStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        match self.supplied.fields.get(self.schema.get_field_name(field)) {
            Some(&tokens) => Ok(tokens),
            None => Bm25StatisticsProvider::total_num_tokens(self.local, field),
        }
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        if self.supplied.num_docs == 0 {
            return Bm25StatisticsProvider::total_num_docs(self.local);
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
