//! What stopping a search midway costs: the leaf's [`Interruptible`] collection (it drives each
//! segment's scorer itself and checks its interrupt every 4,096 documents) against tantivy's own
//! collection of the same top 10 and count, on the same in-RAM index and queries, in
//! alternating rounds.
//!
//! ```sh
//! cargo run --release -p fanout-loadtest --example collect_cost -- [CORPUS] [QUERIES] [ROUNDS]
//! ```
//!
//! Defaults: the bundled demo corpus and its 1,000 queries, 15 rounds. Runs two sets: the
//! queries as they are (mostly one word), and the same words four to a query (an OR of four
//! terms, so many more matches to collect), plus `*` (every document). Prints each set's
//! median time per query for both, and the median of the per-round ratios.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use fanout_leaf::collect::{Interrupt, Interruptible};
use fanout_leaf::query::QueryBuilder;
use fanout_leaf::top::{IdColumns, TopByScoreThenId};
use fanout_leaf::{SchemaConfig, ShardIndex, WriterOptions};
use fanout_loadtest::direct::{for_each_document, load_queries};
use fanout_proto::query::QueryLimits;
use tantivy::collector::{Count, TopDocs};

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let corpus = args
        .next()
        .map_or_else(|| root.join("demo/wordnet.ndjson.gz"), PathBuf::from);
    let queries = args
        .next()
        .map_or_else(|| root.join("demo/queries.txt"), PathBuf::from);
    let rounds: usize = args.next().map_or(Ok(15), |r| r.parse())?;

    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default())?;
    let mut batch = Vec::new();
    for_each_document(&[corpus], |doc| {
        batch.push(doc);
        if batch.len() == 5_000 {
            index.index_batch(0, 0, &std::mem::take(&mut batch))?;
        }
        Ok(())
    })?;
    index.index_batch(0, 0, &batch)?;
    index.commit()?;
    let searcher = index.tantivy_index().reader()?.searcher();
    let builder = QueryBuilder::new(
        index.tantivy_index(),
        index.schema_config(),
        QueryLimits::default(),
    );
    let texts = load_queries(&queries, None)?;
    let fours: Vec<String> = texts
        .chunks(4)
        .map(|c| c.join(" "))
        .chain(["*".to_string()])
        .collect();
    println!(
        "{} documents in {} segments, {rounds} rounds",
        searcher.num_docs(),
        searcher.segment_readers().len(),
    );
    for (name, set) in [("as logged", &texts), ("four words an OR, and *", &fours)] {
        let built: Vec<_> = set.iter().filter_map(|q| builder.build(q).ok()).collect();
        compare(name, &searcher, &built, rounds)?;
    }
    Ok(())
}

/// Runs every query with tantivy's collection, then with the interruptible one, `rounds`
/// times after a warm-up, and prints the medians.
fn compare(
    name: &str,
    searcher: &tantivy::Searcher,
    queries: &[Box<dyn tantivy::query::Query>],
    rounds: usize,
) -> anyhow::Result<()> {
    let flag = AtomicBool::new(false);
    let interrupt = Interrupt {
        cancelled: Some(&flag),
        deadline: Some(Instant::now() + Duration::from_secs(3_600)),
    };
    let top = || (TopDocs::with_limit(10).order_by_score(), Count);
    // What the leaf runs now: the interruptible wrapper around the total-order collection.
    let columns = IdColumns::default();
    let ordered = || {
        (
            TopByScoreThenId {
                id_field: "id",
                limit: 10,
                columns: &columns,
                after: None,
            },
            Count,
        )
    };
    let (mut plain_us, mut checked_us, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ordered_us, mut ordered_ratios) = (Vec::new(), Vec::new());
    let per_query = |d: Duration| d.as_secs_f64() * 1e6 / queries.len() as f64;
    for round in 0..=rounds {
        let started = Instant::now();
        let mut plain_hits = 0;
        for q in queries {
            plain_hits += searcher.search(q, &top())?.1;
        }
        let plain = started.elapsed();
        let started = Instant::now();
        let mut checked_hits = 0;
        for q in queries {
            let collector = Interruptible {
                inner: top(),
                interrupt: &interrupt,
            };
            checked_hits += searcher.search(q, &collector)?.1;
        }
        let checked = started.elapsed();
        let started = Instant::now();
        let mut ordered_hits = 0;
        for q in queries {
            let collector = Interruptible {
                inner: ordered(),
                interrupt: &interrupt,
            };
            ordered_hits += searcher.search(q, &collector)?.1;
        }
        let in_order = started.elapsed();
        anyhow::ensure!(
            plain_hits == checked_hits && plain_hits == ordered_hits,
            "the collections disagree"
        );
        if round > 0 {
            plain_us.push(per_query(plain));
            checked_us.push(per_query(checked));
            ordered_us.push(per_query(in_order));
            ratios.push(checked.as_secs_f64() / plain.as_secs_f64());
            ordered_ratios.push(in_order.as_secs_f64() / plain.as_secs_f64());
        }
    }
    let ratio = median(&mut ratios);
    let ordered_ratio = median(&mut ordered_ratios);
    println!(
        "{name}: total order (score, then id), interruptible {:.1} µs/query; ratio to tantivy \
         {ordered_ratio:.3} (min {:.3}, max {:.3})",
        median(&mut ordered_us),
        ordered_ratios.first().unwrap_or(&f64::NAN),
        ordered_ratios.last().unwrap_or(&f64::NAN),
    );
    println!(
        "{name} ({} queries): tantivy {:.1} µs/query, interruptible {:.1} µs/query (medians); \
         ratio of pairs {:.3} (min {:.3}, max {:.3})",
        queries.len(),
        median(&mut plain_us),
        median(&mut checked_us),
        ratio,
        ratios.first().unwrap_or(&f64::NAN),
        ratios.last().unwrap_or(&f64::NAN),
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
