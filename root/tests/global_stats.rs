//! Exact global BM25: the demo corpus (WordNet, a real corpus) split over 1, 2, 3 and 8 shards
//! behind a root ranks every query exactly as one tantivy index holding all the documents does:
//! the same top-10 ids in the same order (ids may swap only among exactly equal scores), with
//! the same scores to 1e-5 relative. Per-shard statistics, for contrast, must differ.
//!
//! Queries: boolean, phrase and plain queries built from the corpus's own words, and, when the
//! shared data is at hand (`FANOUT_SHARED_DATA`, or `../shared/data` beside the repository),
//! the sbg query log too.

use fanout_leaf::{SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::shard_for_id;
use fanout_root::RootConfig;
use serde_json::Value;
use support::{demo, serve_shards, start_root};

mod support;

const DOCS: usize = 12_000;

/// The demo corpus's first documents, as (id, NDJSON line).
fn corpus() -> Vec<(String, String)> {
    demo::documents(DOCS)
        .into_iter()
        .map(|doc| (doc["id"].as_str().unwrap().to_string(), doc.to_string()))
        .collect()
}

/// `(id, score)` of the reference's top hits, ordered as the root orders them (score, then id).
fn reference(index: &ShardIndex, query: &str) -> Vec<(String, f32)> {
    let mut hits: Vec<(String, f32)> = match index.search(
        query,
        0,
        50,
        None,
        &fanout_leaf::collect::Interrupt::never(),
    ) {
        Ok(found) => found.hits.into_iter().map(|h| (h.id, h.score)).collect(),
        Err(_) => return Vec::new(),
    };
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    hits
}

/// Whether `got` is the reference's top 10: same scores to 1e-5 relative, same ids except
/// among exactly equal scores.
fn same_ranking(got: &[(String, f32)], want: &[(String, f32)]) -> Result<(), String> {
    let want_top = &want[..want.len().min(10)];
    if got.len() != want_top.len() {
        return Err(format!("{} hits, want {}", got.len(), want_top.len()));
    }
    for (i, ((id, score), (want_id, want_score))) in got.iter().zip(want_top).enumerate() {
        let relative = (score - want_score).abs() / want_score.abs().max(f32::MIN_POSITIVE);
        if relative > 1e-5 {
            return Err(format!(
                "#{i}: {id} scores {score}, want {want_id} at {want_score}"
            ));
        }
        let tied = want.iter().any(|(w, s)| w == id && s == want_score);
        if id != want_id && !tied {
            return Err(format!("#{i}: {id}, want {want_id} (score {want_score})"));
        }
    }
    Ok(())
}

async fn search(http: &str, query: &str, stats: &str) -> Option<(Vec<(String, f32)>, String)> {
    let response = reqwest::Client::new()
        .get(format!("{http}/v1/search"))
        .query(&[("q", query), ("size", "10"), ("stats", stats)])
        .send()
        .await
        .unwrap();
    if response.status() == 400 {
        return None;
    }
    assert!(
        response.status().is_success(),
        "{query}: {}",
        response.status()
    );
    let body: Value = response.json().await.unwrap();
    let hits = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_string(),
                h["score"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    Some((hits, body["stats"].as_str().unwrap().to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_split_ranks_exactly_as_one_index_and_per_shard_statistics_do_not() {
    let docs = corpus();
    let options = WriterOptions::default();
    let whole = ShardIndex::in_ram(0, SchemaConfig::default(), &options).unwrap();
    let lines: Vec<&str> = docs.iter().map(|(_, l)| l.as_str()).collect();
    assert!(whole.index_batch(0, 0, &lines).unwrap().rejected.is_empty());
    whole.commit().unwrap();
    let values: Vec<Value> = docs
        .iter()
        .map(|(_, line)| serde_json::from_str(line).unwrap())
        .collect();
    let mut queries = demo::generated_queries(&values, 200, false);
    queries.extend(demo::sbg_queries(usize::MAX));
    let references: Vec<Vec<(String, f32)>> =
        queries.iter().map(|q| reference(&whole, q)).collect();
    assert!(
        references.iter().filter(|r| r.len() >= 2).count() > 100,
        "enough queries must rank several documents to compare"
    );

    for shards in [1u32, 2, 3, 8] {
        let indexes = (0..shards)
            .map(|shard| {
                let index = ShardIndex::in_ram(shard, SchemaConfig::default(), &options).unwrap();
                let mine: Vec<&str> = docs
                    .iter()
                    .filter(|(id, _)| shard_for_id(id, shards) == shard)
                    .map(|(_, l)| l.as_str())
                    .collect();
                index.index_batch(shard, shards, &mine).unwrap();
                index.commit().unwrap();
                index
            })
            .collect();
        let (leaves, topology) = serve_shards(indexes).await;
        let (http, root) = start_root(&topology, RootConfig::default()).await;

        let mut compared = 0;
        let mut differ_per_shard = 0;
        for (query, want) in queries.iter().zip(&references) {
            let Some((got, source)) = search(&http, query, "global").await else {
                assert!(
                    want.is_empty(),
                    "{query:?} was refused but runs on one index"
                );
                continue;
            };
            assert_ne!(source, "partial", "{query:?}");
            if let Err(why) = same_ranking(&got, want) {
                panic!("{shards} shards, {query:?}: {why}\ngot {got:?}\nwant {want:?}");
            }
            compared += 1;
            // Asked again, the statistics come from the cache.
            if compared % 50 == 0 {
                let (again, source) = search(&http, query, "global").await.unwrap();
                assert_eq!(source, "cached", "{query:?}");
                assert_eq!(again, got);
            }
            if shards > 1 {
                let (local, _) = search(&http, query, "shard").await.unwrap();
                differ_per_shard += usize::from(same_ranking(&local, want).is_err());
            }
        }
        eprintln!(
            "{shards} shards: {compared} queries ranked as one index; per-shard statistics differ on {differ_per_shard}"
        );
        if shards > 1 {
            assert!(
                differ_per_shard > 0,
                "per-shard statistics ranked as one index on {shards} shards"
            );
        }
        root.abort();
        for leaf in leaves {
            leaf.shutdown().await;
        }
    }
}
