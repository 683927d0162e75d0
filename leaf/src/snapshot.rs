//! What a search reads: one searcher, the generation it shows, and the BM25 statistics of its
//! live documents, swapped whole at each commit so that no search sees the data of one commit
//! with the generation (or statistics) of another.
//!
//! Live statistics: tantivy counts a deleted document in BM25's document count, token totals
//! and document frequencies until a merge drops it, and merges happen at different moments on
//! different replicas and shard layouts. Scores would then depend on the merge history. Here
//! they count live documents only, so that N shards score exactly like one index freshly built
//! from the same documents, whatever happened before:
//!
//! - documents: the live ones;
//! - a field's tokens: the sum over live documents of the field's length as BM25 reads it for
//!   each document (its fieldnorm). That is the exact token count for values of up to 40
//!   tokens, and the length BM25 already uses per document for longer ones. Tantivy's own
//!   total is exact for fresh segments but estimated from fieldnorms after a merge that drops
//!   deleted documents, so using it would make the total depend on the merge history;
//! - a term's documents: its postings, less the deleted documents. Only segments with deletes
//!   need the walk; its result is cached per segment and term.
//!
//! A segment's statistics are computed once: segments never change, and the deletes of one are
//! only ever added to, so (segment id, deleted count) names its live documents exactly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tantivy::index::SegmentId;
use tantivy::query::Bm25StatisticsProvider;
use tantivy::schema::{Field, FieldType, IndexRecordOption, Schema};
use tantivy::{DocSet, Searcher, SegmentReader, Term, TERMINATED};

/// Terms whose live document frequency a segment remembers; past this it starts over, so that
/// a stream of queries with ever new terms cannot grow the cache without bound.
const MAX_CACHED_TERMS: usize = 100_000;

/// A consistent view for searches: the searcher, its generation, and its live statistics.
pub struct Snapshot {
    /// The opstamp of the commit the searcher shows.
    pub generation: u64,
    /// The searcher.
    pub searcher: Searcher,
    /// Per segment of `searcher`, in the same order.
    segments: Vec<Arc<SegmentLive>>,
}

/// One segment's live statistics.
struct SegmentLive {
    id: SegmentId,
    deleted: u32,
    /// Tokens of live documents per indexed text field, by field.
    tokens: HashMap<Field, u64>,
    /// Live documents per term, for a segment with deletes; filled as queries ask.
    doc_freqs: Mutex<HashMap<Term, u64>>,
}

impl Snapshot {
    /// The view of `searcher` at `generation`, reusing what `previous` computed for segments
    /// that did not change.
    pub fn new(
        generation: u64,
        searcher: Searcher,
        schema: &Schema,
        previous: Option<&Snapshot>,
    ) -> tantivy::Result<Self> {
        let mut segments = Vec::with_capacity(searcher.segment_readers().len());
        for reader in searcher.segment_readers() {
            let known = previous.and_then(|p| {
                p.segments
                    .iter()
                    .find(|s| s.id == reader.segment_id() && s.deleted == reader.num_deleted_docs())
            });
            segments.push(match known {
                Some(known) => known.clone(),
                None => Arc::new(SegmentLive::new(reader, schema)?),
            });
        }
        Ok(Self {
            generation,
            searcher,
            segments,
        })
    }

    /// BM25 statistics of the live documents.
    pub fn live_stats(&self) -> LiveStats<'_> {
        LiveStats { snapshot: self }
    }
}

impl SegmentLive {
    fn new(reader: &SegmentReader, schema: &Schema) -> tantivy::Result<Self> {
        let mut tokens = HashMap::new();
        for (field, entry) in schema.fields() {
            if matches!(entry.field_type(), FieldType::Str(_)) && entry.is_indexed() {
                tokens.insert(field, live_tokens(reader, field)?);
            }
        }
        Ok(Self {
            id: reader.segment_id(),
            deleted: reader.num_deleted_docs(),
            tokens,
            doc_freqs: Mutex::new(HashMap::new()),
        })
    }

    fn doc_freq(&self, reader: &SegmentReader, term: &Term) -> tantivy::Result<u64> {
        let Some(alive) = reader.alive_bitset() else {
            // Without deletes the dictionary's count is exact: a merge writes live documents
            // only.
            return Ok(reader.inverted_index(term.field())?.doc_freq(term)?.into());
        };
        // A panic while holding this lock leaves a cache of correct counts.
        let mut cache = self
            .doc_freqs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(&df) = cache.get(term) {
            return Ok(df);
        }
        let mut live = 0u64;
        let index = reader.inverted_index(term.field())?;
        if let Some(mut postings) = index.read_postings(term, IndexRecordOption::Basic)? {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                live += u64::from(alive.is_alive(doc));
                doc = postings.advance();
            }
        }
        if cache.len() >= MAX_CACHED_TERMS {
            cache.clear();
        }
        cache.insert(term.clone(), live);
        Ok(live)
    }
}

/// The tokens of `field` over the live documents of a segment: the sum of their fieldnorms,
/// counted per fieldnorm code (256 of them) rather than looked up per document. Without
/// fieldnorms (a field indexed without them) only tantivy's total is known, deleted
/// documents included.
fn live_tokens(reader: &SegmentReader, field: Field) -> tantivy::Result<u64> {
    let Some(norms) = reader.fieldnorms_readers().get_field(field)? else {
        return Ok(reader.inverted_index(field)?.total_num_tokens());
    };
    let mut per_code = [0u64; 256];
    for doc in reader.doc_ids_alive() {
        per_code[usize::from(norms.fieldnorm_id(doc))] += 1;
    }
    Ok(per_code
        .iter()
        .enumerate()
        .map(|(code, &docs)| {
            docs * u64::from(tantivy::fieldnorm::FieldNormReader::id_to_fieldnorm(
                code as u8,
            ))
        })
        .sum())
}

/// The statistics of a snapshot's live documents, as BM25 asks for them.
pub struct LiveStats<'a> {
    snapshot: &'a Snapshot,
}

impl LiveStats<'_> {
    fn segments(&self) -> impl Iterator<Item = (&SegmentReader, &SegmentLive)> {
        self.snapshot
            .searcher
            .segment_readers()
            .iter()
            .zip(self.snapshot.segments.iter().map(Arc::as_ref))
    }
}

impl Bm25StatisticsProvider for LiveStats<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let mut total = 0;
        for (reader, live) in self.segments() {
            total += match live.tokens.get(&field) {
                Some(&tokens) => tokens,
                None => reader.inverted_index(field)?.total_num_tokens(),
            };
        }
        Ok(total)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.snapshot.searcher.num_docs())
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let mut total = 0;
        for (reader, live) in self.segments() {
            total += live.doc_freq(reader, term)?;
        }
        Ok(total)
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
