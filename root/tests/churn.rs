//! One total order whatever the split and the history: the demo corpus (WordNet) goes through
//! rounds of random upserts and deletes on 1, 2, 3 and 8 shards, each shard merging its
//! segments at its own random moments. Then every layout, behind a root with global
//! statistics, must rank every query exactly as one index freshly built from the live
//! documents: the same ids in the same order (ties included) with the same scores (1e-5
//! relative). And every layout pages the same way: pages of 10 concatenate to one request of
//! 300, and `search_after` pages to 20,000 hits without a repeat or a gap.

use std::collections::BTreeMap;

use fanout_leaf::collect::Interrupt;
use fanout_leaf::{SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::shard_for_id;
use fanout_root::RootConfig;
use serde_json::Value;
use support::{demo, serve_shards, start_root};

mod support;

/// Documents loaded first; the `search_after` walk needs more than 20,000 to stay live.
const DOCS: usize = 22_000;
const ROUNDS: usize = 6;

/// One round of churn: documents written (new or replacing, by id) and ids deleted.
struct Round {
    upserts: Vec<String>,
    deletes: Vec<String>,
}

/// The history every layout goes through, and the live documents it leaves, by id.
fn history(docs: &[Value]) -> (Vec<Round>, BTreeMap<String, String>) {
    let mut rng = fastrand::Rng::with_seed(16);
    let line = |doc: &Value| doc.to_string();
    let id = |doc: &Value| doc["id"].as_str().unwrap().to_string();
    let mut live: BTreeMap<String, String> =
        docs[..DOCS].iter().map(|d| (id(d), line(d))).collect();
    let mut rounds = vec![Round {
        upserts: docs[..DOCS].iter().map(line).collect(),
        deletes: Vec::new(),
    }];
    for _ in 0..ROUNDS {
        let mut round = Round {
            upserts: Vec::new(),
            deletes: Vec::new(),
        };
        let ids: Vec<String> = live.keys().cloned().collect();
        for _ in 0..400 {
            // An existing id gets another document's text; a spare one comes in new.
            let mut doc = docs[rng.usize(..docs.len())].clone();
            if rng.bool() {
                doc["id"] = ids[rng.usize(..ids.len())].clone().into();
            }
            live.insert(id(&doc), line(&doc));
            round.upserts.push(line(&doc));
        }
        for _ in 0..150 {
            let victim = &ids[rng.usize(..ids.len())];
            live.remove(victim);
            round.deletes.push(victim.clone());
        }
        // A document written and deleted in one round: deletes apply after upserts here, as
        // they do when both are in the log before one commit.
        rounds.push(round);
    }
    (rounds, live)
}

/// A layout of `shards` shards that went through `rounds`, committing after each and merging
/// at random moments of its own.
fn churned_layout(shards: u32, rounds: &[Round]) -> Vec<ShardIndex> {
    let mut rng = fastrand::Rng::with_seed(u64::from(shards) * 1_000 + 3);
    let options = WriterOptions::default();
    let indexes: Vec<ShardIndex> = (0..shards)
        .map(|s| ShardIndex::in_ram(s, SchemaConfig::default(), &options).unwrap())
        .collect();
    let owner = |line: &str| {
        let doc: Value = serde_json::from_str(line).unwrap();
        shard_for_id(doc["id"].as_str().unwrap(), shards)
    };
    for round in rounds {
        for (shard, index) in indexes.iter().enumerate() {
            let shard = shard as u32;
            let mine: Vec<&str> = round
                .upserts
                .iter()
                .map(String::as_str)
                .filter(|l| owner(l) == shard)
                .collect();
            // Several batches and commits: several segments to merge or not.
            for batch in mine.chunks(mine.len() / 3 + 1) {
                assert!(index
                    .index_batch(shard, shards, batch)
                    .unwrap()
                    .rejected
                    .is_empty());
                if rng.bool() {
                    index.commit().unwrap();
                }
            }
            let gone: Vec<&str> = round
                .deletes
                .iter()
                .map(String::as_str)
                .filter(|id| shard_for_id(id, shards) == shard)
                .collect();
            index.delete_batch(shard, shards, &gone).unwrap();
            index.commit().unwrap();
            if rng.u8(..3) == 0 {
                index.merge_segments().unwrap();
            }
        }
    }
    indexes
}

type Ranking = Vec<(String, f32)>;

async fn ranking(http: &str, query: &str, size: usize) -> Option<Ranking> {
    let response = reqwest::Client::new()
        .get(format!("{http}/v1/search"))
        .query(&[
            ("q", query),
            ("size", &size.to_string()),
            ("stats", "global"),
        ])
        .send()
        .await
        .unwrap();
    if response.status() == 400 {
        return None;
    }
    assert_eq!(response.status(), 200, "{query}");
    let body: Value = response.json().await.unwrap();
    Some(
        body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let id = h["id"].as_str().unwrap().to_string();
                (id, h["score"].as_f64().unwrap() as f32)
            })
            .collect(),
    )
}

fn same(got: &Ranking, want: &Ranking) -> Result<(), String> {
    let ids = |r: &Ranking| r.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    if ids(got) != ids(want) {
        return Err(format!("ids {:?}\n   want {:?}", got, want));
    }
    for ((id, score), (_, want_score)) in got.iter().zip(want) {
        let relative = (score - want_score).abs() / want_score.abs().max(f32::MIN_POSITIVE);
        if relative > 1e-5 {
            return Err(format!("{id} scores {score}, want {want_score}"));
        }
    }
    Ok(())
}

async fn ids_of(http: &str, query: &str) -> Vec<String> {
    let body: Value = reqwest::get(format!("{http}/v1/search?{query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["hits"].is_array(), "{query}: {body}");
    support::cluster::hit_ids(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_churn_every_split_ranks_and_pages_as_one_fresh_index() {
    let docs = demo::documents(DOCS + 2_000);
    let (rounds, live) = history(&docs);
    let fresh = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    let lines: Vec<&str> = live.values().map(String::as_str).collect();
    assert!(fresh.index_batch(0, 0, &lines).unwrap().rejected.is_empty());
    fresh.commit().unwrap();
    assert_eq!(fresh.num_docs(), live.len() as u64);
    assert!(live.len() > 20_000, "{} live documents", live.len());

    let mut queries = demo::generated_queries(&docs, 350, true);
    queries.extend(demo::sbg_queries(300));
    let window = 20;
    let want: Vec<Option<Ranking>> = queries
        .iter()
        .map(|q| {
            fresh
                .search(q, 0, window, None, &Interrupt::never())
                .ok()
                .map(|found| found.hits.into_iter().map(|h| (h.id, h.score)).collect())
        })
        .collect();
    let tied = want
        .iter()
        .flatten()
        .filter(|r| r.windows(2).any(|w| w[0].1 == w[1].1))
        .count();
    assert!(tied > 20, "only {tied} rankings hold ties");
    // Queries refused alike by both sides compare as equal: they must be the exception.
    let ranked = want.iter().flatten().filter(|r| r.len() >= 2).count();
    assert!(
        ranked * 2 > queries.len(),
        "only {ranked} of {} queries rank two documents or more",
        queries.len()
    );
    let sorted_ids: Vec<String> = live.keys().cloned().collect();

    for shards in [1u32, 2, 3, 8] {
        let indexes = churned_layout(shards, &rounds);
        let held: u64 = indexes.iter().map(ShardIndex::num_docs).sum();
        assert_eq!(
            held,
            live.len() as u64,
            "{shards} shards hold the live documents"
        );
        let (leaves, topology) = serve_shards(indexes).await;
        let (http, root) = start_root(&topology, RootConfig::default()).await;

        let mut failures = Vec::new();
        for (query, want) in queries.iter().zip(&want) {
            match (ranking(&http, query, window).await, want) {
                (None, None) => {}
                (Some(got), Some(want)) => {
                    if let Err(why) = same(&got, want) {
                        failures.push(format!("{query:?}: {why}"));
                    }
                }
                (got, want) => failures.push(format!("{query:?}: {got:?}, want {want:?}")),
            }
        }
        assert!(
            failures.is_empty(),
            "{shards} shards: {} of {} queries rank otherwise than one fresh index:\n{}",
            failures.len(),
            queries.len(),
            failures[..failures.len().min(5)].join("\n")
        );

        // Pages of 10 by `from` are one request of 300, cut in ten-hit pieces. (Deeper pages
        // by `from` cost every shard the whole window's stored fields: `search_after` is the
        // way down.)
        for query in ["*", "title:genus", "body:small"] {
            let q = query.replace(' ', "%20");
            let one = ids_of(&http, &format!("q={q}&size=300")).await;
            assert_eq!(one.len(), 300, "{query}");
            let mut paged = Vec::new();
            for from in (0..one.len()).step_by(10) {
                paged.extend(ids_of(&http, &format!("q={q}&size=10&from={from}")).await);
            }
            assert_eq!(paged, one, "{shards} shards, {query}");
        }
        // `search_after` past the window: every live document once, in id order (all tie).
        let mut walked = Vec::new();
        let mut next = String::new();
        while walked.len() < 20_000 {
            let url = format!("{http}/v1/search?q=*&size=1000{next}");
            let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            walked.extend(support::cluster::hit_ids(&body));
            next = format!("&search_after={}", body["next"].as_str().unwrap());
        }
        assert_eq!(walked, sorted_ids[..walked.len()], "{shards} shards");
        eprintln!(
            "{shards} shards: {} queries as one fresh index",
            queries.len()
        );

        root.abort();
        for leaf in leaves {
            leaf.shutdown().await;
        }
    }
}
