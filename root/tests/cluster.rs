//! Searches against a real cluster in-process (`support::cluster`): what was indexed is found,
//! bad requests get clear errors, missing shards are reported, hostile queries kill nothing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fanout_leaf::server::LeafHandle;
use fanout_leaf::{LeafService, SchemaConfig, ShardIndex, WriterOptions};
use fanout_proto::{shard_for_id, ReplicaAddr, ShardSpec, Topology};
use fanout_root::RootConfig;
use serde_json::Value;
use support::cluster::{corpus, hit_ids, TestCluster};
use support::start_root;

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_returns_what_was_indexed_from_every_shard() {
    let docs = corpus(256);
    let cluster = TestCluster::start(&docs, RootConfig::default()).await;

    // "+apple +banana" matches exactly the documents with bits 0 and 1 set.
    let expected: BTreeSet<String> = docs
        .iter()
        .filter(|(_, t)| t.contains("apple") && t.contains("banana"))
        .map(|(id, _)| id.clone())
        .collect();
    let (status, body) = cluster
        .get("/v1/search?q=%2Bapple%20%2Bbanana&size=1000")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_hits"], expected.len() as u64);
    let got: BTreeSet<String> = hit_ids(&body).into_iter().collect();
    assert_eq!(got, expected);
    assert_eq!(body["shards"]["total"], 2);
    assert_eq!(body["shards"]["successful"], 2);
    assert_eq!(body["partial"], false);
    // Which replica answered each shard, and how many requests it took.
    for (shard, detail) in body["shards"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(detail["shard"], shard);
        let replica = detail["replica"].as_str().unwrap();
        assert!(
            cluster.topology.shards()[shard]
                .replicas
                .iter()
                .any(|r| r.as_uri() == replica),
            "{detail}"
        );
        assert!(detail["requests"].as_u64().unwrap() >= 1);
        assert!(
            detail.get("attempts").is_none(),
            "attempts only with debug=true"
        );
    }
    let (_, debug) = cluster
        .get("/v1/search?q=apple&hedge=false&debug=true")
        .await;
    // The times nest: each leaf's own time within its attempt, each attempt within the search.
    let took_us = debug["took_us"].as_u64().unwrap();
    assert!(debug["stats_us"].as_u64().unwrap() < took_us, "{debug}");
    assert!(
        body.get("stats_us").is_none(),
        "stats_us only with debug=true"
    );
    for detail in debug["shards"]["details"].as_array().unwrap() {
        assert_eq!(detail["hedged"], false, "hedge=false: {detail}");
        let attempt = &detail["attempts"][0];
        assert_eq!(attempt["kind"], "primary");
        assert_eq!(attempt["outcome"], "won");
        let elapsed = attempt["elapsed_us"].as_u64().unwrap();
        let leaf = attempt["leaf_took_us"].as_u64().unwrap();
        assert!(0 < leaf && leaf < elapsed && elapsed < took_us, "{debug}");
    }

    // Every hit names the shard the shard function assigns, and carries its stored fields.
    let mut shards_seen = BTreeSet::new();
    for hit in body["hits"].as_array().unwrap() {
        let id = hit["id"].as_str().unwrap();
        assert_eq!(
            hit["shard"],
            shard_for_id(id, cluster.topology.num_shards())
        );
        shards_seen.insert(hit["shard"].as_u64().unwrap());
        let title = &docs.iter().find(|(d, _)| d == id).unwrap().1;
        assert_eq!(hit["fields"]["title"], title.as_str());
        assert_eq!(hit["fields"]["id"], id);
    }
    assert_eq!(shards_seen.len(), 2, "both shards contributed");

    // Scores never increase down the page; equal scores are ordered by id.
    let hits = body["hits"].as_array().unwrap();
    for pair in hits.windows(2) {
        let (a, b) = (
            pair[0]["score"].as_f64().unwrap(),
            pair[1]["score"].as_f64().unwrap(),
        );
        assert!(
            a > b || (a == b && pair[0]["id"].as_str() < pair[1]["id"].as_str()),
            "{pair:?}"
        );
    }

    // A phrase and an exclusion.
    let (_, body) = cluster
        .get("/v1/search?q=%22apple%20banana%22%20-cherry&size=1000")
        .await;
    let expected = docs
        .iter()
        .filter(|(_, t)| t.starts_with("apple banana") && !t.contains("cherry"))
        .count();
    assert_eq!(body["total_hits"], expected as u64);
}

/// Indexes `docs` (id, title) through the indexer, which commits on every replica.
async fn index_more(cluster: &TestCluster, docs: &[(String, &str)]) {
    let ndjson: String = docs
        .iter()
        .map(|(id, title)| format!("{}\n", serde_json::json!({"id": id, "title": title})))
        .collect();
    let summary = fanout_indexer::index_inputs(
        &cluster.topology,
        vec![fanout_indexer::Input::from_bytes(
            "more.ndjson",
            ndjson.into_bytes(),
        )],
        &fanout_indexer::IndexerOptions::default(),
        std::sync::Arc::new(fanout_indexer::RejectLog::new(None)),
        std::sync::Arc::default(),
    )
    .await
    .unwrap();
    assert!(summary.is_complete(), "{summary:?}");
}

fn scores(body: &Value) -> Vec<(String, f64)> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().into(),
                h["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The scores a root that never saw older statistics gives `query`: fetched fresh.
async fn fresh_scores(cluster: &TestCluster, query: &str) -> Vec<(String, f64)> {
    let (http, other_root) = start_root(&cluster.topology, RootConfig::default()).await;
    let fresh: Value = reqwest::get(format!("{http}/v1/search?{query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    other_root.abort();
    assert_eq!(fresh["stats"], "fetched", "{fresh}");
    scores(&fresh)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_search_after_a_commit_is_scored_again_with_the_new_statistics() {
    // One replica per shard: every answer comes from the replica the statistics came from.
    let cluster = TestCluster::start_with(&corpus(64), RootConfig::default(), 1).await;
    let stats = |body: &Value| body["stats"].as_str().unwrap().to_string();
    let query = "q=apple&size=50";
    let (_, first) = cluster.get(&format!("/v1/search?{query}")).await;
    assert_eq!(stats(&first), "fetched");
    let (_, again) = cluster.get(&format!("/v1/search?{query}")).await;
    assert_eq!(stats(&again), "cached");

    // A commit on every shard: 16 more documents hold the term.
    let more: Vec<(String, &str)> = (0..16).map(|i| (format!("new-{i}"), "apple")).collect();
    index_more(&cluster, &more).await;

    // The leaves answer with their new statistics; the root runs the query again with them,
    // so the very first answer after the commit is scored as the data now is.
    let (_, after_commit) = cluster.get(&format!("/v1/search?{query}")).await;
    assert_eq!(stats(&after_commit), "rescored", "{after_commit}");
    assert_eq!(
        after_commit["total_hits"].as_u64().unwrap(),
        first["total_hits"].as_u64().unwrap() + 16
    );
    assert_eq!(scores(&after_commit), fresh_scores(&cluster, query).await);
    let (_, next) = cluster.get(&format!("/v1/search?{query}")).await;
    assert_eq!(stats(&next), "cached", "{next}");
    assert_eq!(scores(&next), scores(&after_commit));
    // The term is more common now: a document that ranked before scores lower.
    let old = &scores(&first)[0];
    let now = scores(&after_commit)
        .into_iter()
        .find(|(id, _)| *id == old.0)
        .expect("the best old document is still on the page");
    assert!(now.1 < old.1, "{old:?} then {now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replicas_every_label_after_a_commit_tells_the_truth() {
    // Two replicas per shard, each with its own generations: an answer may come from the
    // replica the statistics came from or the other. Whatever the label says must hold:
    // `stale` may follow a commit, anything else must be the fresh scores.
    let cluster = TestCluster::start(&corpus(64), RootConfig::default()).await;
    let query = "q=apple%20banana&size=50";
    for round in 0..3 {
        let (_, warm) = cluster.get(&format!("/v1/search?{query}")).await;
        assert_ne!(warm["stats"], "stale", "{warm}");
        let more: Vec<(String, &str)> = (0..8)
            .map(|i| (format!("round-{round}-{i}"), "apple"))
            .collect();
        index_more(&cluster, &more).await;
        let fresh = fresh_scores(&cluster, query).await;
        let mut labels = Vec::new();
        for _ in 0..12 {
            let (_, body) = cluster.get(&format!("/v1/search?{query}")).await;
            let label = body["stats"].as_str().unwrap().to_string();
            if label != "stale" {
                assert_eq!(scores(&body), fresh, "labelled {label}: {body}");
            }
            labels.push(label);
        }
        assert_eq!(
            labels.last().map(String::as_str),
            Some("cached"),
            "{labels:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_revealed_by_a_partial_answer_is_labelled_stale() {
    // One replica per shard, so that stopping one takes its shard away.
    let mut cluster = TestCluster::start_with(&corpus(64), RootConfig::default(), 1).await;
    let stats = |body: &Value| body["stats"].as_str().unwrap().to_string();
    let (_, first) = cluster.get("/v1/search?q=apple").await;
    assert_eq!(stats(&first), "fetched");

    // Shard 0 commits new documents, then shard 1 goes away: the answer has only shard 0,
    // scored with statistics from before its commit, and there is nothing complete to score
    // again.
    let on_shard_0: Vec<(String, &str)> = (0..200)
        .map(|i| format!("more-{i}"))
        .filter(|id| shard_for_id(id, 2) == 0)
        .take(8)
        .map(|id| (id, "apple"))
        .collect();
    index_more(&cluster, &on_shard_0).await;
    cluster.stop_replica(1, 0).await;
    let (status, partial) = cluster.get("/v1/search?q=apple").await;
    assert_eq!(status, 200, "{partial}");
    assert_eq!(partial["partial"], true);
    assert_eq!(stats(&partial), "stale", "{partial}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let cluster = TestCluster::start(&corpus(16), RootConfig::default()).await;
    let reason = |body: &Value| body["error"]["reason"].as_str().unwrap().to_string();

    let (status, body) = cluster.get("/v1/search?q=title:(apple").await;
    assert_eq!(status, 400, "{body}");
    assert!(reason(&body).contains("invalid query"), "{body}");
    let (status, body) = cluster.get("/v1/search?q=nosuchfield:apple").await;
    assert_eq!(status, 400);
    assert!(reason(&body).contains("nosuchfield"), "{body}");
    let (status, body) = cluster.get("/v1/search?q=apple&size=5000").await;
    assert_eq!(status, 400);
    assert_eq!(reason(&body), "size must be at most 1000, got 5000");
    let (status, body) = cluster.get("/v1/search?q=apple&from=9999&size=10").await;
    assert_eq!(status, 400);
    assert_eq!(
        reason(&body),
        "from + size must be at most 10000, got 10009"
    );
    let (status, body) = cluster.get("/v1/search?q=apple&size=-1").await;
    assert_eq!(status, 400);
    assert!(reason(&body).contains("size"), "{body}");
    let (status, body) = cluster.get("/v1/search?q=apple&colour=red").await;
    assert_eq!(status, 400);
    assert!(reason(&body).contains("colour"), "{body}");
    let (status, body) = cluster.get("/v1/search").await;
    assert_eq!(status, 400);
    assert!(reason(&body).contains("q is required"), "{body}");
    let (status, body) = cluster.get("/v2/search?q=apple").await;
    assert_eq!(status, 404);
    assert!(reason(&body).contains("/v2/search"), "{body}");

    let response = reqwest::Client::new()
        .post(format!("{}/v1/search", cluster.http))
        .header("content-type", "application/json")
        .body("{\"q\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_with_every_replica_down_is_reported_while_the_other_answers() {
    let docs = corpus(64);
    let config = RootConfig {
        probe_interval: Duration::from_millis(50),
        ..RootConfig::default()
    };
    let mut cluster = TestCluster::start(&docs, config).await;
    let (status, body) = cluster.get("/v1/ready").await;
    assert_eq!(status, 200, "{body}");

    // One replica down: nothing is lost.
    cluster.stop_replica(1, 0).await;
    let (status, body) = cluster.get("/v1/search?q=apple&size=100").await;
    assert_eq!(status, 200);
    assert_eq!(body["partial"], false, "{body}");
    assert_eq!(body["total_hits"], 32);

    // Both replicas of shard 1 down: shard 0's hits, and shard 1 named as failed.
    cluster.stop_replica(1, 1).await;
    let started = Instant::now();
    let (status, body) = cluster
        .get("/v1/search?q=apple&size=100&timeout_ms=3000")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a refused connection fails fast"
    );
    assert_eq!(status, 200);
    assert_eq!(body["partial"], true);
    assert_eq!(body["shards"]["successful"], 1);
    assert_eq!(body["shards"]["failed"][0]["shard"], 1);
    assert!(
        body["shards"]["failed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{body}"
    );
    let expected: BTreeSet<String> = docs
        .iter()
        .filter(|(id, t)| t.contains("apple") && shard_for_id(id, 2) == 0)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(
        hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(body["total_hits"], expected.len() as u64);

    // Unless the request wants every shard.
    let (status, body) = cluster.get("/v1/search?q=apple&allow_partial=false").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("shard 1"),
        "{body}"
    );

    // Readiness follows within a few probe intervals.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = cluster.get("/v1/ready").await;
        if status == 503 {
            assert_eq!(body["shards_without_replica"], serde_json::json!([1]));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "root still ready with shard 1 down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_never_answers_cannot_hold_a_search_past_its_deadline() {
    // A listener that accepts connections and never says a word: what a paused (SIGSTOP) or
    // wedged leaf looks like from the network.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = ReplicaAddr::parse(&silent.local_addr().unwrap().to_string()).unwrap();
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
    index
        .index_batch(0, 0, &[r#"{"id": "x", "title": "apple"}"#])
        .unwrap();
    index.commit().unwrap();
    let live = LeafHandle::spawn("127.0.0.1:0", LeafService::new(index, "live"))
        .await
        .unwrap();
    let topology = Topology::new(vec![
        ShardSpec {
            id: 0,
            replicas: vec![ReplicaAddr::parse(&live.addr.to_string()).unwrap()],
        },
        ShardSpec {
            id: 1,
            replicas: vec![silent_addr],
        },
    ])
    .unwrap();
    // Stall detection would give up on the silent replica before the deadline (see
    // tests/overload.rs); here it is slower than the deadline, which must hold on its own.
    let mut config = RootConfig::default();
    config.replica.stall_after = Duration::from_secs(60);
    let (http, root) = start_root(&topology, config).await;

    let started = Instant::now();
    let body: Value = reqwest::get(format!("{http}/v1/search?q=apple&timeout_ms=300"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "answered before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "held past the deadline: {took:?}"
    );
    assert_eq!(body["partial"], true);
    assert_eq!(hit_ids(&body), ["x"]);
    assert_eq!(body["shards"]["failed"][0]["shard"], 1);
    // The same with allow_partial=false: a 504 at the deadline.
    let started = Instant::now();
    let response = reqwest::get(format!(
        "{http}/v1/search?q=apple&timeout_ms=300&allow_partial=false"
    ))
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("no answer within the deadline"),
        "{body}"
    );
    root.abort();
    drop(silent);
}

/// The reproductions of the query-of-death report: each is refused with a 400 that says why (or,
/// for wildcards, answered), no replica is ejected, and every leaf still answers afterwards, to
/// the root and to a caller that speaks gRPC to it directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_refused_and_every_replica_survives() {
    let cluster = TestCluster::start(&corpus(64), RootConfig::default()).await;
    let post = |q: String| {
        let url = format!("{}/v1/search", cluster.http);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&serde_json::json!({ "q": q }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let reason = |body: &Value| body["error"]["reason"].as_str().unwrap_or("").to_string();
    let words: Vec<String> = (0..250_000).map(|i| format!("w{i}")).collect();
    let refused = [
        ("(".repeat(3_000), "`(` and `NOT`s"),
        (format!("title:{}", "(".repeat(3_000)), "`(` and `NOT`s"),
        ("NOT ".repeat(3_000) + "apple", "`(` and `NOT`s"),
        (words[..1_500].join(" "), "terms; the limit is 1024"),
        (words.join(" "), "bytes long; the limit is 16384"),
        ("title:*".into(), "needs a fast field"),
        ("apple~1".into(), "fuzzy"),
        ("title:/app.*/".into(), "regular expressions"),
    ];
    for (q, why) in refused {
        let (status, body) = post(q.clone()).await;
        assert_eq!(status, 400, "{}: {body}", &q[..q.len().min(40)]);
        assert!(reason(&body).contains(why), "{body}");
    }
    // Wildcards match by pattern: "app*" finds what "apple" finds.
    let (_, apple) = cluster.get("/v1/search?q=apple&size=100").await;
    let (status, wild) = cluster.get("/v1/search?q=app*&size=100").await;
    assert_eq!(status, 200, "{wild}");
    assert_eq!(wild["total_hits"], apple["total_hits"]);
    assert_eq!(wild["total_hits"], 32);

    // Nothing above counted against a replica: every shard is whole, and answers.
    let (status, ready) = cluster.get("/v1/ready").await;
    assert_eq!(status, 200, "{ready}");
    let (status, body) = cluster.get("/v1/search?q=apple").await;
    assert_eq!((status, body["partial"].as_bool()), (200, Some(false)));
    // A caller that skips the root meets the same limits at every leaf, which stays up.
    for replicas in &cluster.leaves {
        for handle in replicas.iter().flatten() {
            let mut leaf = fanout_proto::pb::leaf_client::LeafClient::connect(format!(
                "http://{}",
                handle.addr
            ))
            .await
            .unwrap();
            let deadly = fanout_proto::pb::SearchRequest {
                query: format!("{}apple", "(".repeat(5_000)),
                size: 10,
                ..Default::default()
            };
            let status = leaf.search(deadly).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            let info = leaf.info(fanout_proto::pb::InfoRequest {}).await.unwrap();
            assert!(info.into_inner().num_docs > 0);
        }
    }
}

/// Every error the root sends is the API's JSON, the ones axum writes itself included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_json_with_their_status() {
    let cluster = TestCluster::start(&corpus(4), RootConfig::default()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/search", cluster.http);
    let cases = [
        (client.delete(&url), 405),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 3 << 20]),
            413,
        ),
    ];
    for (request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["status"], expected, "{body}");
        assert!(!body["error"]["reason"].as_str().unwrap().is_empty());
    }
}
