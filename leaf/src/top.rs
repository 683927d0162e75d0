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
use std::collections::{BinaryHeap, HashMap};
use std::sync::{PoisonError, RwLock};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{StrColumn, TermOrdHit};
use tantivy::index::SegmentId;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyError};

/// One hit in the total order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankedHit {
    /// Its score.
    pub score: Score,
    /// Where it is, to read its id and stored fields.
    pub address: DocAddress,
}

/// The id column of each segment searched lately, opened once: opening one reads the index of
/// its dictionary, which costs more than scoring a small query. Segments never change, so an
/// entry stays right until its segment is merged away ([`IdColumns::keep_only`], called when
/// the index's reader reloads).
#[derive(Default)]
pub struct IdColumns {
    // Poisoning means nothing for a cache of immutable columns: a panicking reader leaves it
    // as it was.
    columns: RwLock<HashMap<SegmentId, Option<StrColumn>>>,
}

impl IdColumns {
    /// The id column of `segment` (none if no document of it has an id).
    fn get(&self, segment: &SegmentReader, field: &str) -> tantivy::Result<Option<StrColumn>> {
        let id = segment.segment_id();
        if let Some(column) = self
            .columns
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(column.clone());
        }
        // An index whose id is not a fast field was built before the total order, and
        // cannot give it.
        let column = segment.fast_fields().str(field).map_err(|e| {
            TantivyError::SchemaError(format!(
                "the id field {field:?} is not a fast field ({e}): this index predates the \
                 total order; re-index it"
            ))
        })?;
        self.columns
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, column.clone());
        Ok(column)
    }

    /// Forgets the columns of segments other than `live`.
    pub fn keep_only(&self, live: &[SegmentId]) {
        self.columns
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| live.contains(id));
    }

    /// Segments whose columns are held.
    pub fn len(&self) -> usize {
        self.columns
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no column is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A position in the total order: the last hit of the previous page, for `search_after`.
#[derive(Clone, Debug, PartialEq)]
pub struct After {
    /// Its score.
    pub score: Score,
    /// Its id.
    pub id: String,
}

/// Collects the first `limit` matches in the total order (score, then id), after `after` if
/// given.
pub struct TopByScoreThenId<'a> {
    /// The id field's name; it must be a fast string field.
    pub id_field: &'a str,
    /// How many to keep.
    pub limit: usize,
    /// Where the segments' id columns are kept between searches.
    pub columns: &'a IdColumns,
    /// Only matches that rank after this one.
    pub after: Option<&'a After>,
}

impl Collector for TopByScoreThenId<'_> {
    type Fruit = Vec<RankedHit>;
    type Child = SegmentTop;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentTop> {
        let ids = self.columns.get(segment, self.id_field)?;
        // Among matches tied with the cursor's score, those whose id ordinal is at least this
        // rank after it: the ordinal just past the cursor's id in this segment's dictionary.
        let after = match self.after {
            None => None,
            Some(after) => {
                let first_after = match &ids {
                    None => 0,
                    Some(ids) => match ids.dictionary().term_ord_or_next(after.id.as_bytes())? {
                        TermOrdHit::Exact(ord) => ord + 1,
                        TermOrdHit::Next(ord) => ord,
                    },
                };
                Some((after.score, first_after))
            }
        };
        Ok(SegmentTop {
            after,
            ids,
            segment_ord,
            limit: self.limit,
            heap: BinaryHeap::with_capacity(self.limit.min(1 << 16)),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, segments: Vec<SegmentFruit>) -> tantivy::Result<Vec<RankedHit>> {
        let mut all: Vec<(Score, SegmentOrdinal, u64, DocId)> = segments
            .iter()
            .flat_map(|s| {
                s.kept
                    .iter()
                    .map(|k| (k.score, s.segment_ord, k.ord, k.doc))
            })
            .collect();
        all.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        // Equal scores: within one segment the id ordinals order like the ids, so only a tie
        // that spans segments needs the ids themselves, and only if it reaches the cut.
        let columns: HashMap<SegmentOrdinal, &Option<StrColumn>> =
            segments.iter().map(|s| (s.segment_ord, &s.ids)).collect();
        let mut start = 0;
        while start < all.len().min(self.limit) {
            // Equal as the sort saw it: total_cmp, so that NaN scores (a boost of 0 times an
            // infinite one) form a group and the walk always moves on.
            let end = start
                + all[start..]
                    .iter()
                    .take_while(|h| h.0.total_cmp(&all[start].0) == Ordering::Equal)
                    .count();
            let group = &mut all[start..end];
            if group.iter().all(|h| h.1 == group[0].1) {
                group.sort_unstable_by_key(|h| h.2);
            } else {
                let mut keyed = Vec::with_capacity(group.len());
                for &h in group.iter() {
                    let mut id = String::new();
                    if let Some(Some(column)) = columns.get(&h.1) {
                        if h.2 != u64::MAX && !column.ord_to_str(h.2, &mut id)? {
                            return Err(TantivyError::InternalError(format!(
                                "id ordinal {} is not in segment {}'s dictionary",
                                h.2, h.1
                            )));
                        }
                    }
                    // A document without an id sorts after the others of its score, as it
                    // does within its segment.
                    keyed.push(((h.2 == u64::MAX, id), h));
                }
                keyed.sort_by(|a, b| {
                    a.0.cmp(&b.0)
                        .then_with(|| (a.1 .1, a.1 .2).cmp(&(b.1 .1, b.1 .2)))
                });
                for (slot, (_, h)) in group.iter_mut().zip(keyed) {
                    *slot = h;
                }
            }
            start = end;
        }
        all.truncate(self.limit);
        Ok(all
            .into_iter()
            .map(|(score, segment, _, doc)| RankedHit {
                score,
                address: DocAddress::new(segment, doc),
            })
            .collect())
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
    /// The cursor's score, and the first id ordinal that ranks after it among ties.
    after: Option<(Score, u64)>,
    ids: Option<StrColumn>,
    segment_ord: SegmentOrdinal,
    limit: usize,
    heap: BinaryHeap<Kept>,
}

impl SegmentTop {
    /// The ordinal of `doc`'s id in this segment; a document without one sorts after every
    /// other of its score.
    fn ord(&self, doc: DocId) -> u64 {
        self.ids
            .as_ref()
            .and_then(|ids| ids.ords().first(doc))
            .unwrap_or(u64::MAX)
    }
}

/// One segment's kept documents, and its id column to break ties across segments.
pub struct SegmentFruit {
    ids: Option<StrColumn>,
    segment_ord: SegmentOrdinal,
    kept: Vec<Kept>,
}

impl SegmentCollector for SegmentTop {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.limit == 0 {
            return;
        }
        if self.heap.len() == self.limit
            && self
                .heap
                .peek()
                .is_some_and(|worst| score.total_cmp(&worst.score) == Ordering::Less)
        {
            // Below the worst kept: no need to read its id.
            return;
        }
        let ord = match self.after {
            Some((after, _)) if score.total_cmp(&after) == Ordering::Greater => return,
            Some((after, first_after)) if score.total_cmp(&after) == Ordering::Equal => {
                let ord = self.ord(doc);
                if ord < first_after {
                    return;
                }
                ord
            }
            _ => self.ord(doc),
        };
        let candidate = Kept { score, ord, doc };
        if self.heap.len() < self.limit {
            self.heap.push(candidate);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if candidate < *worst {
                *worst = candidate;
            }
        }
    }

    fn harvest(self) -> SegmentFruit {
        SegmentFruit {
            ids: self.ids,
            segment_ord: self.segment_ord,
            kept: self.heap.into_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::Count;
    use tantivy::query::AllQuery;
    use tantivy::schema::{Schema, Value, STORED, STRING, TEXT};
    use tantivy::{doc, Index};

    /// An index of ids `0..n` (zero-padded, so string order is number order) spread over
    /// several segments in a shuffled order, every document scoring the same for `*`.
    fn tied_index(n: usize, segments: usize) -> (Index, tantivy::schema::Field) {
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
        (index, id)
    }

    #[test]
    fn ties_are_cut_by_id_whatever_the_segments() {
        let (index, id) = tied_index(500, 5);
        let searcher = index.reader().unwrap().searcher();
        let segments = searcher.segment_readers().len();
        assert!(segments > 1);
        let columns = IdColumns::default();
        for limit in [0, 1, 7, 100, 499, 500, 800] {
            let collector = TopByScoreThenId {
                id_field: "id",
                limit,
                columns: &columns,
                after: None,
            };
            let (top, count) = searcher.search(&AllQuery, &(collector, Count)).unwrap();
            assert_eq!(count, 500);
            let ids: Vec<String> = top
                .iter()
                .map(|h| {
                    let doc: tantivy::TantivyDocument = searcher.doc(h.address).unwrap();
                    doc.get_first(id).unwrap().as_str().unwrap().to_string()
                })
                .collect();
            let expected: Vec<String> = (0..limit.min(500)).map(|i| format!("{i:05}")).collect();
            assert_eq!(ids, expected, "limit {limit}");
        }
        assert_eq!(
            columns.len(),
            segments,
            "each segment's column is opened once"
        );
        columns.keep_only(&[searcher.segment_readers()[0].segment_id()]);
        assert_eq!(columns.len(), 1);
    }

    #[test]
    fn pages_after_a_cursor_continue_the_order_exactly() {
        let (index, id) = tied_index(500, 5);
        let searcher = index.reader().unwrap().searcher();
        let columns = IdColumns::default();
        let id_of = |h: &RankedHit| {
            let doc: tantivy::TantivyDocument = searcher.doc(h.address).unwrap();
            doc.get_first(id).unwrap().as_str().unwrap().to_string()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<After> = None;
        loop {
            let collector = TopByScoreThenId {
                id_field: "id",
                limit: 37,
                columns: &columns,
                after: cursor.as_ref(),
            };
            let page = searcher.search(&AllQuery, &collector).unwrap();
            let Some(last) = page.last() else { break };
            cursor = Some(After {
                score: last.score,
                id: id_of(last),
            });
            seen.extend(page.iter().map(id_of));
        }
        let expected: Vec<String> = (0..500).map(|i| format!("{i:05}")).collect();
        assert_eq!(seen, expected);
        // A cursor between ids, as after a delete: the next id follows.
        let collector = TopByScoreThenId {
            id_field: "id",
            limit: 2,
            columns: &columns,
            after: Some(&After {
                score: 1.0,
                id: "00041x".into(),
            }),
        };
        let page = searcher.search(&AllQuery, &collector).unwrap();
        assert_eq!(
            page.iter().map(id_of).collect::<Vec<_>>(),
            ["00042", "00043"]
        );
    }

    #[test]
    fn nan_scores_end_the_walk_and_rank_as_total_cmp_says() {
        // A boost of 0 times an infinite one scores NaN: the merge must still finish.
        let (index, _) = tied_index(50, 3);
        let searcher = index.reader().unwrap().searcher();
        let columns = IdColumns::default();
        let nan = tantivy::query::BoostQuery::new(Box::new(AllQuery), f32::NAN);
        let collector = TopByScoreThenId {
            id_field: "id",
            limit: 10,
            columns: &columns,
            after: None,
        };
        let top = searcher.search(&nan, &collector).unwrap();
        assert_eq!(top.len(), 10);
        assert!(top.iter().all(|h| h.score.is_nan()));
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
        let columns = IdColumns::default();
        let collector = TopByScoreThenId {
            id_field: "id",
            limit: 3,
            columns: &columns,
            after: None,
        };
        let err = searcher.search(&AllQuery, &collector).unwrap_err();
        assert!(err.to_string().contains("not a fast field"), "{err}");
    }
}
