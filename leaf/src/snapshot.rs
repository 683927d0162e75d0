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
//!   deleted documents, so using it would make the total depend on the merge history. (Numbers
//!   and dates have fieldnorms too: their count of values.) A field indexed without fieldnorms
//!   is read by BM25 as length 1 in every document, so its total is the live document count;
//! - a term's documents: its postings, less the deleted documents. Only segments with deletes
//!   need the walk; the counts of frequent terms are cached per segment.
//!
//! A segment's statistics are computed once: segments never change, and the deletes of one are
//! only ever added to, so (segment id, deleted count) names its live documents exactly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tantivy::index::SegmentId;
use tantivy::query::Bm25StatisticsProvider;
use tantivy::schema::{Field, IndexRecordOption, Schema};
use tantivy::{DocSet, Searcher, SegmentReader, Term, TERMINATED};

/// Bytes of terms whose live document frequency a segment remembers; past this it starts over,
/// so that a stream of queries with ever new terms cannot grow the cache without bound.
const MAX_CACHED_TERM_BYTES: usize = 4 << 20;

/// Terms in fewer documents than this are counted afresh each time: walking a short posting
/// list costs about what a cache lookup does, and keeping them out of the cache means junk
/// terms cannot flush the counts that are worth keeping.
const MIN_CACHED_DOC_FREQ: u32 = 256;

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
    /// Tokens of live documents per indexed field, by field.
    tokens: HashMap<Field, u64>,
    /// Live documents per frequent term, for a segment with deletes, and the bytes of the
    /// terms held; filled as queries ask.
    doc_freqs: Mutex<(HashMap<Term, u64>, usize)>,
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
            if entry.is_indexed() {
                tokens.insert(field, live_tokens(reader, field)?);
            }
        }
        Ok(Self {
            id: reader.segment_id(),
            deleted: reader.num_deleted_docs(),
            tokens,
            doc_freqs: Mutex::new((HashMap::new(), 0)),
        })
    }

    fn doc_freq(&self, reader: &SegmentReader, term: &Term) -> tantivy::Result<u64> {
        let index = reader.inverted_index(term.field())?;
        let Some(info) = index.get_term_info(term)? else {
            return Ok(0);
        };
        let Some(alive) = reader.alive_bitset() else {
            // Without deletes the dictionary's count is exact: a merge writes live documents
            // only.
            return Ok(info.doc_freq.into());
        };
        let cached = info.doc_freq >= MIN_CACHED_DOC_FREQ;
        if cached {
            if let Some(&df) = self.lock_doc_freqs().0.get(term) {
                return Ok(df);
            }
        }
        // The walk runs without the lock: searches of other terms need not wait for it.
        let mut postings = index.read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
        let mut live = 0u64;
        let mut doc = postings.doc();
        while doc != TERMINATED {
            live += u64::from(alive.is_alive(doc));
            doc = postings.advance();
        }
        if cached {
            let mut guard = self.lock_doc_freqs();
            let (terms, bytes) = &mut *guard;
            // The term's bytes, and about what a map entry of a term and a count costs.
            let size = 64 + term.serialized_value_bytes().len();
            if *bytes + size > MAX_CACHED_TERM_BYTES {
                terms.clear();
                *bytes = 0;
            }
            if terms.insert(term.clone(), live).is_none() {
                *bytes += size;
            }
        }
        Ok(live)
    }

    fn lock_doc_freqs(&self) -> std::sync::MutexGuard<'_, (HashMap<Term, u64>, usize)> {
        // A panic while holding this lock leaves a cache of correct counts.
        self.doc_freqs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tokens of `field` over the live documents of a segment: the sum of their fieldnorms,
/// counted per fieldnorm code (256 of them) rather than looked up per document. Without
/// fieldnorms BM25 reads every document's length as 1, so the total is the live documents.
fn live_tokens(reader: &SegmentReader, field: Field) -> tantivy::Result<u64> {
    let Some(norms) = reader.fieldnorms_readers().get_field(field)? else {
        return Ok(reader.num_docs().into());
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
                // Not an indexed field: nothing scores on it.
                None => u64::from(reader.num_docs()),
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
