//! The read side of [`ShardIndex`]: searches and statistics, from one snapshot each.

use tantivy::collector::Count;
use tantivy::schema::Value as _;
use tantivy::TantivyDocument;

use super::{LeafHit, LeafHits, ShardIndex, MAX_RESPONSE_BYTES, MAX_WINDOW};
use crate::collect::{Interrupt, Interruptible};
use crate::document::stored_fields_json;
use crate::error::LeafError;
use crate::stats::{shard_stats, CorpusStats, Supplied, SuppliedStats};
use crate::top::{After, TopByScoreThenId};

impl ShardIndex {
    /// Runs a query: the `size` best hits after skipping `from`, and the number of matches.
    /// With `stats`, scores with those (the cluster's) statistics instead of the shard's own
    /// (see [`Supplied`]). Stops early, with an error, once `interrupt` fires.
    pub fn search(
        &self,
        query: &str,
        from: usize,
        size: usize,
        stats: Option<&Supplied>,
        interrupt: &Interrupt,
    ) -> Result<LeafHits, LeafError> {
        self.search_after(query, from, size, None, stats, interrupt)
    }

    /// [`ShardIndex::search`], counting only hits that rank after `after` in the total order
    /// (the last hit of the previous page); `from` must then be 0. The number of matches is
    /// all of them, as for the first page.
    pub fn search_after(
        &self,
        query: &str,
        from: usize,
        size: usize,
        after: Option<&After>,
        stats: Option<&Supplied>,
        interrupt: &Interrupt,
    ) -> Result<LeafHits, LeafError> {
        if after.is_some_and(|a| a.id.len() > fanout_proto::MAX_ID_BYTES) {
            return Err(LeafError::InvalidArgument(format!(
                "search_after names an id over {} bytes, longer than any id",
                fanout_proto::MAX_ID_BYTES
            )));
        }
        if after.is_some() && from > 0 {
            return Err(LeafError::InvalidArgument(
                "from must be 0 with search_after: the cursor says where the page starts".into(),
            ));
        }
        if from.saturating_add(size) > MAX_WINDOW {
            return Err(LeafError::InvalidArgument(format!(
                "from + size must be at most {MAX_WINDOW}, got {}",
                from.saturating_add(size)
            )));
        }
        let query = self.queries.build(query)?;
        let snapshot = self.snapshot();
        let (generation, searcher) = (snapshot.generation, &snapshot.searcher);
        let live = snapshot.live_stats();
        let collected = if size == 0 {
            let count = Interruptible {
                inner: Count,
                interrupt,
            };
            searcher.search(&query, &count).map(|n| (Vec::new(), n))
        } else {
            // The first from+size in the contract's total order, then the page.
            let top = TopByScoreThenId {
                id_field: &self.config.id_field,
                limit: from + size,
                columns: &self.id_columns,
                after,
            };
            let collector = Interruptible {
                inner: (top, Count),
                interrupt,
            };
            match stats {
                None => searcher.search_with_statistics_provider(&query, &collector, &live),
                Some(supplied) => {
                    let provider = SuppliedStats {
                        supplied: &supplied.stats,
                        schema: &self.schema,
                        local: &live,
                    };
                    searcher.search_with_statistics_provider(&query, &collector, &provider)
                }
            }
        };
        let (top, total_hits) = collected.map_err(|e| search_error(e, interrupt))?;
        let mut hits = Vec::with_capacity(size.min(top.len()));
        let mut response_bytes = 0;
        for (i, hit) in top.into_iter().skip(from).enumerate() {
            // Reading stored documents is most of a deep page's work.
            if i % 64 == 63 {
                interrupt.check().map_err(LeafError::from)?;
            }
            let doc: TantivyDocument = searcher.doc(hit.address)?;
            let id = doc
                .get_first(self.id_field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let fields_json = stored_fields_json(&self.schema, &doc)?;
            response_bytes += id.len() + fields_json.len();
            if response_bytes > MAX_RESPONSE_BYTES {
                return Err(LeafError::InvalidArgument(format!(
                    "the first {} hits' stored fields are over {} MiB, the most a response \
                     carries; ask for fewer hits",
                    i + 1,
                    MAX_RESPONSE_BYTES >> 20
                )));
            }
            hits.push(LeafHit {
                id,
                score: hit.score,
                fields_json,
            });
        }
        // Statistics from another generation scored this page as the data was then: say what
        // the shard's are now, so that the caller can score again.
        let shard_stats = match stats {
            Some(supplied) if supplied.generation != Some(generation) => {
                Some(shard_stats(&live, &self.schema, &*query)?)
            }
            _ => None,
        };
        Ok(LeafHits {
            total_hits: total_hits as u64,
            hits,
            generation,
            shard_stats,
        })
    }

    /// This shard's BM25 statistics for the terms `query` scores, and the generation they are
    /// from.
    pub fn stats(&self, query: &str) -> Result<(u64, CorpusStats), LeafError> {
        let query = self.queries.build(query)?;
        let snapshot = self.snapshot();
        let stats = shard_stats(&snapshot.live_stats(), &self.schema, &*query)?;
        Ok((snapshot.generation, stats))
    }
}

/// A failed search's error: the interruption's reason (an interrupt, once fired, stays so,
/// and then nobody waits for anything else), the query's fault (a field that cannot be searched
/// that way), or the index's.
fn search_error(error: tantivy::TantivyError, interrupt: &Interrupt) -> LeafError {
    use tantivy::TantivyError as E;
    if let Err(stopped) = interrupt.check() {
        return stopped.into();
    }
    match error {
        E::SchemaError(why) | E::InvalidArgument(why) => LeafError::InvalidQuery(why),
        E::FieldNotFound(field) => {
            LeafError::InvalidQuery(format!("field does not exist: {field:?}"))
        }
        other => LeafError::Index(other),
    }
}
