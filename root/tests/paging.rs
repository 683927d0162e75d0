//! Pages of a ranking, by `from` and by `search_after`, against a real 2x2 cluster: every
//! cut uses the contract's total order, so pages concatenate to the ranking, once each.

use fanout_root::RootConfig;
use serde_json::Value;
use support::cluster::{corpus, hit_ids, TestCluster};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_concatenate_to_the_full_ranking_and_post_matches_get() {
    let docs = corpus(256);
    let cluster = TestCluster::start(&docs, RootConfig::default()).await;
    let (_, all) = cluster.get("/v1/search?q=grape%20hazel&size=200").await;
    let all_ids = hit_ids(&all);
    assert_eq!(all_ids.len(), 256 - 64, "docs with bit 6 or bit 7 set");
    let mut paged = Vec::new();
    for from in (0..all_ids.len()).step_by(7) {
        let (_, page) = cluster
            .get(&format!("/v1/search?q=grape%20hazel&size=7&from={from}"))
            .await;
        paged.extend(hit_ids(&page));
    }
    assert_eq!(paged, all_ids);

    let response = reqwest::Client::new()
        .post(format!("{}/v1/search", cluster.http))
        .json(&serde_json::json!({"q": "grape hazel", "size": 200}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(hit_ids(&body), all_ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_are_cut_by_id_so_pages_never_repeat_or_skip() {
    // Indexed last id first: a cut by insertion order (tantivy's own tie-break) would keep the
    // largest ids.
    let mut docs = corpus(300);
    docs.reverse();
    let cluster = TestCluster::start(&docs, RootConfig::default()).await;
    let mut ids: Vec<String> = docs.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    // Every document ties: `*` scores 1, and every body is the one word "fruit".
    for q in ["*", "body:fruit"] {
        let (_, all) = cluster.get(&format!("/v1/search?q={q}&size=300")).await;
        assert_eq!(hit_ids(&all), ids, "{q}: ties rank by id");
        let (_, first) = cluster.get(&format!("/v1/search?q={q}&size=10")).await;
        assert_eq!(
            hit_ids(&first),
            ids[..10],
            "{q}: the first page is the smallest ids"
        );
        let mut paged = Vec::new();
        for from in (0..300).step_by(10) {
            let (_, page) = cluster
                .get(&format!("/v1/search?q={q}&size=10&from={from}"))
                .await;
            paged.extend(hit_ids(&page));
        }
        assert_eq!(
            paged, ids,
            "{q}: pages of 10 are the whole ranking, once each"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_after_pages_past_the_window_without_repeats_or_gaps() {
    let n = 12_000;
    let mut docs = corpus(n);
    docs.reverse();
    let cluster = TestCluster::start(&docs, RootConfig::default()).await;
    let mut ids: Vec<String> = docs.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    let cursor_pages = |q: &'static str, size: usize, pages: usize| {
        let cluster = &cluster;
        async move {
            let mut seen = Vec::new();
            let mut next: Option<String> = None;
            for _ in 0..pages {
                let after = next
                    .as_ref()
                    .map_or(String::new(), |c| format!("&search_after={c}"));
                let (status, page) = cluster
                    .get(&format!("/v1/search?q={q}&size={size}{after}"))
                    .await;
                assert_eq!(status, 200, "{page}");
                if hit_ids(&page).is_empty() {
                    assert!(page.get("next").is_none(), "an empty page ends the ranking");
                    break;
                }
                seen.extend(hit_ids(&page));
                next = Some(page["next"].as_str().unwrap().to_string());
            }
            seen
        }
    };
    // Every document ties for `*`: 12,000 of them, past from + size = 10,000, in id order.
    assert_eq!(cursor_pages("*", 1_000, 20).await, ids);
    // A scored query: cursor pages of 100 are the first 1,000 of one request.
    let (_, one) = cluster.get("/v1/search?q=apple&size=1000").await;
    assert_eq!(cursor_pages("apple", 100, 10).await, hit_ids(&one));

    let (status, body) = cluster
        .get("/v1/search?q=*&from=10&search_after=v1.3f8000006162")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("from must be 0"),
        "{body}"
    );
    let (status, body) = cluster.get("/v1/search?q=*&search_after=nonsense").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["reason"].as_str().unwrap().contains("cursor"));
}
