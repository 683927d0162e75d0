//! The leaf's side of the contract's one total order: score descending, then id ascending.
//!
//! tantivy's `TopDocs` breaks ties between equal scores by document address, which depends
//! on the segment layout, so the documents a leaf cut off at `from + size` could differ from
//! those a single index (or another replica) would keep: pages repeated and skipped documents
//! when many tied. [`TopByScoreThenId`] keeps, per segment, the best `limit` documents by
//! (score, id), reading the id from its fast column (its ordinal within the segment orders
//! like the id itself), and merges segments by (score, id string). Its result is exactly the
//! first `limit` of the shard's matches in the total order, whatever the segments.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyError};

/// One hit in the total order.
#[derive(Clone, Debug, PartialEq)]
pub struct RankedHit {
    /// Its score.
    pub score: Score,
    /// Its id.
    pub id: String,
    /// Where it is, to read its stored fields.
    pub address: DocAddress,
}

/// Whether `a` ranks before `b`: a higher score, or an equal score and a smaller id.
pub fn rank(a: (Score, &str), b: (Score, &str)) -> Ordering {
    b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

/// Collects the first `limit` matches in the total order (score, then id).
pub struct TopByScoreThenId {
    /// The id field's name; it must be a fast string field.
    pub id_field: String,
    /// How many to keep.
    pub limit: usize,
}

impl Collector for TopByScoreThenId {
    type Fruit = Vec<RankedHit>;
    type Child = SegmentTop;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentTop> {
        // A segment whose documents have no id has no column (None); an index whose id is not
        // a fast field was built before the total order, and cannot give it.
        let ids = segment.fast_fields().str(&self.id_field).map_err(|e| {
            TantivyError::SchemaError(format!(
                "the id field {:?} is not a fast field ({e}): this index predates the total \
                 order; re-index it",
                self.id_field
            ))
        })?;
        Ok(SegmentTop {
            ids,
            segment_ord,
            limit: self.limit,
            heap: BinaryHeap::with_capacity(self.limit.min(1 << 16)),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, segments: Vec<Vec<RankedHit>>) -> tantivy::Result<Vec<RankedHit>> {
        let mut all: Vec<RankedHit> = segments.into_iter().flatten().collect();
        all.sort_unstable_by(|a, b| rank((a.score, &a.id), (b.score, &b.id)));
        all.truncate(self.limit);
        Ok(all)
    }
}

/// A kept document of one segment. The heap's top is the worst kept one: the lowest score,
/// and among equal scores the largest id ordinal.
#[derive(Clone, Copy, Debug)]
struct Kept {
    score: Score,
    ord: u64,
    doc: DocId,
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        // "Greater" is worse, so that the max-heap's top is the first to drop.
        other
            .score
            .total_cmp(&self.score)
            .then_with(|| self.ord.cmp(&other.ord))
            .then_with(|| self.doc.cmp(&other.doc))
    }
}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Kept {}

/// One segment's best `limit` documents by (score, id ordinal).
pub struct SegmentTop {
    ids: Option<StrColumn>,
    segment_ord: SegmentOrdinal,
    limit: usize,
    heap: BinaryHeap<Kept>,
}

impl SegmentCollector for SegmentTop {
    type Fruit = Vec<RankedHit>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.limit == 0 {
            return;
        }
        // A document without an id sorts after every other of its score.
        let ord = self
            .ids
            .as_ref()
            .and_then(|ids| ids.ords().first(doc))
            .unwrap_or(u64::MAX);
        let candidate = Kept { score, ord, doc };
        if self.heap.len() < self.limit {
            self.heap.push(candidate);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if candidate < *worst {
                *worst = candidate;
            }
        }
    }

    fn harvest(self) -> Vec<RankedHit> {
        let mut id = String::new();
        self.heap
            .into_iter()
            .map(|kept| {
                id.clear();
                // An ordinal of this segment's own column always has its term.
                if let Some(ids) = &self.ids {
                    let _ = ids.ord_to_str(kept.ord, &mut id);
                }
                RankedHit {
                    score: kept.score,
                    id: id.clone(),
                    address: DocAddress::new(self.segment_ord, kept.doc),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::Count;
    use tantivy::query::AllQuery;
    use tantivy::schema::{Schema, STORED, STRING, TEXT};
    use tantivy::{doc, Index};

    /// An index of ids `0..n` (zero-padded, so string order is number order) spread over
    /// several segments in a shuffled order, every document scoring the same for `*`.
    fn tied_index(n: usize, segments: usize) -> Index {
        let mut schema = Schema::builder();
        let id = schema.add_text_field("id", STRING | STORED | tantivy::schema::FAST);
        let body = schema.add_text_field("body", TEXT);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        // A fixed shuffle: 7,919 is prime and does not divide `n`, so this is a permutation.
        assert_ne!(n % 7_919, 0);
        let order: Vec<usize> = (0..n).map(|i| i * 7_919 % n).collect();
        for chunk in order.chunks(n.div_ceil(segments)) {
            for i in chunk {
                writer
                    .add_document(doc!(id => format!("{i:05}"), body => "same words"))
                    .unwrap();
            }
            writer.commit().unwrap();
        }
        index
    }

    #[test]
    fn ties_are_cut_by_id_whatever_the_segments() {
        let index = tied_index(500, 5);
        let searcher = index.reader().unwrap().searcher();
        assert!(searcher.segment_readers().len() > 1);
        for limit in [0, 1, 7, 100, 499, 500, 800] {
            let collector = TopByScoreThenId {
                id_field: "id".into(),
                limit,
            };
            let (top, count) = searcher.search(&AllQuery, &(collector, Count)).unwrap();
            assert_eq!(count, 500);
            let ids: Vec<String> = top.iter().map(|h| h.id.clone()).collect();
            let expected: Vec<String> = (0..limit.min(500)).map(|i| format!("{i:05}")).collect();
            assert_eq!(ids, expected, "limit {limit}");
        }
    }

    #[test]
    fn a_higher_score_ranks_first_and_ties_go_to_the_smaller_id() {
        assert_eq!(rank((2.0, "b"), (1.0, "a")), Ordering::Less);
        assert_eq!(rank((1.0, "a"), (1.0, "b")), Ordering::Less);
        assert_eq!(rank((1.0, "b"), (1.0, "a")), Ordering::Greater);
        assert_eq!(rank((1.0, "a"), (1.0, "a")), Ordering::Equal);
    }

    #[test]
    fn an_index_without_a_fast_id_is_refused_with_a_reason() {
        let mut schema = Schema::builder();
        schema.add_text_field("id", STRING);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.add_document(doc!()).unwrap();
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let collector = TopByScoreThenId {
            id_field: "id".into(),
            limit: 3,
        };
        let err = searcher.search(&AllQuery, &collector).unwrap_err();
        assert!(err.to_string().contains("not a fast field"), "{err}");
    }
}
