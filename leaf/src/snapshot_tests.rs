use tantivy::schema::{INDEXED, STRING, TEXT};
use tantivy::{doc, Index, IndexWriter, TantivyDocument};

use super::*;

struct Corpus {
    index: Index,
    id: Field,
    title: Field,
    body: Field,
    year: Field,
}

impl Corpus {
    fn new() -> Self {
        let mut builder = Schema::builder();
        let id = builder.add_text_field("id", STRING);
        let title = builder.add_text_field("title", TEXT);
        let body = builder.add_text_field("body", TEXT);
        // A number: its fieldnorm is its count of values, and BM25 scores its terms too.
        let year = builder.add_i64_field("year", INDEXED);
        Self {
            index: Index::create_in_ram(builder.build()),
            id,
            title,
            body,
            year,
        }
    }

    fn writer(&self) -> IndexWriter<TantivyDocument> {
        self.index.writer_with_num_threads(1, 15_000_000).unwrap()
    }

    /// Document `n`: short titles, and bodies some of which are past 40 tokens, where
    /// fieldnorms start to round.
    fn doc(&self, n: u32, version: u32) -> TantivyDocument {
        let body = (0..(n * 7 + version) % 60)
            .map(|i| ["apple", "pear", "fig", "plum"][(i % 4) as usize])
            .collect::<Vec<_>>()
            .join(" ");
        doc!(
            self.id => format!("d{n}"),
            self.title => format!("title {} {}", ["red", "green", "blue"][(n % 3) as usize], version),
            self.body => body,
            self.year => i64::from(1990 + n % 5),
        )
    }

    fn snapshot(&self, previous: Option<&Snapshot>) -> Snapshot {
        let searcher = self.index.reader().unwrap().searcher();
        Snapshot::new(0, searcher, &self.index.schema(), previous).unwrap()
    }

    fn terms(&self) -> Vec<Term> {
        let mut terms: Vec<Term> = ["red", "green", "blue", "title", "0", "1", "2"]
            .iter()
            .map(|t| Term::from_field_text(self.title, t))
            .collect();
        for t in ["apple", "pear", "fig", "plum", "absent"] {
            terms.push(Term::from_field_text(self.body, t));
        }
        for year in 1990..1996 {
            terms.push(Term::from_field_i64(self.year, year));
        }
        terms
    }
}

/// What BM25 would read: documents, tokens per field, and each term's documents.
fn statistics(corpus: &Corpus, stats: &dyn Bm25StatisticsProvider) -> (u64, [u64; 3], Vec<u64>) {
    (
        stats.total_num_docs().unwrap(),
        [corpus.title, corpus.body, corpus.year].map(|f| stats.total_num_tokens(f).unwrap()),
        corpus
            .terms()
            .iter()
            .map(|t| stats.doc_freq(t).unwrap())
            .collect(),
    )
}

#[test]
fn live_statistics_equal_a_fresh_index_of_the_live_documents() {
    // History: three segments, then replacements and deletes, then a merge of some segments.
    let churned = Corpus::new();
    let mut writer = churned.writer();
    let mut live = std::collections::BTreeMap::new();
    for segment in 0..3 {
        for n in segment * 40..(segment + 1) * 40 {
            writer.add_document(churned.doc(n, 0)).unwrap();
            live.insert(n, 0);
        }
        writer.commit().unwrap();
    }
    for n in (0..120).step_by(7) {
        writer.delete_term(Term::from_field_text(churned.id, &format!("d{n}")));
        writer.add_document(churned.doc(n, 1)).unwrap();
        live.insert(n, 1);
    }
    for n in (3..120).step_by(11) {
        writer.delete_term(Term::from_field_text(churned.id, &format!("d{n}")));
        live.remove(&n);
    }
    writer.commit().unwrap();

    let fresh = Corpus::new();
    let mut fresh_writer = fresh.writer();
    for (&n, &version) in &live {
        fresh_writer.add_document(fresh.doc(n, version)).unwrap();
    }
    fresh_writer.commit().unwrap();
    let fresh_snapshot = fresh.snapshot(None);
    let want = statistics(&fresh, &fresh_snapshot.live_stats());
    assert_eq!(want.0, live.len() as u64);

    let before_merge = churned.snapshot(None);
    assert!(before_merge
        .searcher
        .segment_readers()
        .iter()
        .any(|s| s.has_deletes()));
    assert_eq!(statistics(&churned, &before_merge.live_stats()), want);
    // Tantivy's own counts still hold the deleted documents: that is the difference.
    assert_ne!(statistics(&churned, &before_merge.searcher), want);

    // Merge two of the segments with deletes: tantivy estimates the merged token total, and the
    // live statistics must not move.
    let ids: Vec<_> = before_merge.searcher.segment_readers()[..2]
        .iter()
        .map(|s| s.segment_id())
        .collect();
    writer.merge(&ids).wait().unwrap();
    let after_merge = churned.snapshot(Some(&before_merge));
    assert_eq!(statistics(&churned, &after_merge.live_stats()), want);

    // A fresh index's short fields are counted exactly as tantivy counts them.
    assert_eq!(
        fresh_snapshot
            .live_stats()
            .total_num_tokens(fresh.title)
            .unwrap(),
        fresh_snapshot
            .searcher
            .total_num_tokens(fresh.title)
            .unwrap(),
    );
}

#[test]
fn unchanged_segments_keep_their_statistics_across_snapshots() {
    let corpus = Corpus::new();
    let mut writer = corpus.writer();
    for n in 0..10 {
        writer.add_document(corpus.doc(n, 0)).unwrap();
    }
    writer.commit().unwrap();
    let first = corpus.snapshot(None);
    for n in 10..20 {
        writer.add_document(corpus.doc(n, 0)).unwrap();
    }
    writer.commit().unwrap();
    let second = corpus.snapshot(Some(&first));
    assert_eq!(second.segments.len(), 2);
    let kept = second
        .segments
        .iter()
        .filter(|s| Arc::ptr_eq(s, &first.segments[0]))
        .count();
    assert_eq!(kept, 1, "the untouched segment's statistics are reused");

    // A delete in the old segment makes its statistics new ones.
    writer.delete_term(Term::from_field_text(corpus.id, "d3"));
    writer.commit().unwrap();
    let third = corpus.snapshot(Some(&second));
    assert!(third
        .segments
        .iter()
        .all(|s| !Arc::ptr_eq(s, &first.segments[0])));
    assert_eq!(third.live_stats().total_num_docs().unwrap(), 19);
}
