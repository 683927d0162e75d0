//! The driver against a small in-process HTTP server that answers one request at a time and
//! stalls once: open loop must charge the stall to every request scheduled during it,
//! closed loop only to the one request that met it (coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;

use super::*;

async fn stalling_server(stall_at: u64, stall: Duration) -> String {
    let count = Arc::new(AtomicU64::new(0));
    let one_at_a_time = Arc::new(tokio::sync::Mutex::new(()));
    let app = axum::Router::new().route(
        "/v1/search",
        get(move || {
            let (count, one_at_a_time) = (Arc::clone(&count), Arc::clone(&one_at_a_time));
            async move {
                let _serial = one_at_a_time.lock().await;
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(if n == stall_at {
                    stall
                } else {
                    Duration::from_millis(1)
                })
                .await;
                axum::Json(serde_json::json!({
                    "partial": false,
                    "shards": {"details": [{"requests": 1, "hedged": false, "retried": false}]}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn plan(mode: Mode, duration: Duration) -> LoadPlan {
    LoadPlan {
        mode,
        warmup: Duration::ZERO,
        duration,
        scenarios: vec![Scenario::parse("a").unwrap()],
        size: 10,
        timeout: Duration::from_secs(10),
        progress: false,
        cpu: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_the_stall_against_every_request_scheduled_during_it() {
    let url = stalling_server(10, Duration::from_millis(500)).await;
    let queries = Arc::new(vec!["q".to_string()]);
    let open = Mode::Open {
        rate: 100.0,
        arrivals: Arrivals::Constant,
        seed: 1,
    };
    let report = &run_load(
        &Target::http(&url),
        queries,
        &plan(open, Duration::from_secs(2)),
        None,
    )
    .await[0];
    assert_eq!(report.requests, 200);
    assert_eq!(report.errors, 0);
    // ~50 of the 200 requests were due during the 500 ms stall and waited for its end: the
    // stall reaches past the 90th percentile, to within a factor of the worst wait.
    assert!(report.max_us >= 450_000, "max {} µs", report.max_us);
    assert!(
        report.p90_us * 4 >= report.max_us,
        "p90 {} µs hides the stall (max {} µs)",
        report.p90_us,
        report.max_us
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_sees_the_stall_once() {
    let url = stalling_server(10, Duration::from_millis(500)).await;
    let queries = Arc::new(vec!["q".to_string()]);
    let closed = Mode::Closed { concurrency: 1 };
    let report = &run_load(
        &Target::http(&url),
        queries,
        &plan(closed, Duration::from_millis(1_500)),
        None,
    )
    .await[0];
    assert!(report.max_us >= 500_000, "max {} µs", report.max_us);
    // One slow answer among many: the 90th percentile stays a small fraction of it.
    assert!(
        report.p90_us * 3 < report.max_us,
        "one slow answer in many: p90 {} µs, max {} µs",
        report.p90_us,
        report.max_us
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_are_interleaved_and_failures_counted_by_kind() {
    // Nothing listens on this port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut plan = plan(
        Mode::Open {
            rate: 200.0,
            arrivals: Arrivals::Constant,
            seed: 1,
        },
        Duration::from_millis(500),
    );
    plan.scenarios = vec![
        Scenario::parse("on").unwrap(),
        Scenario::parse("off:hedge=false&debug=true").unwrap(),
    ];
    assert_eq!(
        plan.scenarios[1].params,
        [
            ("hedge".into(), "false".into()),
            ("debug".into(), "true".into())
        ]
    );
    let reports = run_load(
        &Target::http(&format!("http://{dead}")),
        Arc::new(vec!["q".into()]),
        &plan,
        None,
    )
    .await;
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].requests, 50);
    assert_eq!(reports[1].requests, 50);
    assert_eq!(reports[0].errors_by_kind["connect"], 50);
    assert!(Scenario::parse(":x=1").is_err());
    assert!(Scenario::parse("a:x").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_baseline_searches_through_a_leafs_service() {
    use fanout_leaf::{SchemaConfig, WriterOptions};
    let options = WriterOptions {
        threads: 1,
        memory_bytes: 15 << 20,
    };
    let index = ShardIndex::in_ram(0, SchemaConfig::default(), &options).unwrap();
    let docs = [
        r#"{"id": "a", "title": "cold wind", "body": "a wind from the north"}"#,
        r#"{"id": "b", "title": "warm wind", "body": "a wind from the south"}"#,
    ];
    index.index_batch(0, 0, &docs).unwrap();
    index.commit().unwrap();
    let target = Target::direct(index);
    let mut plan = plan(Mode::Closed { concurrency: 2 }, Duration::from_millis(300));
    plan.scenarios = vec![Scenario::parse("direct").unwrap()];
    let queries = Arc::new(vec!["wind".to_string(), "title:(".to_string()]);
    let report = &run_load(&target, queries, &plan, None).await[0];
    let Target::Direct(leaf) = &target else {
        unreachable!()
    };
    // Every request ran on the leaf's search path: the good query answered, the broken one
    // was reported as a search error, nothing was skipped or timed out.
    assert!(report.requests > 10, "{report:?}");
    assert!(leaf.search_stats().run() >= report.requests);
    assert_eq!(leaf.search_stats().skipped(), 0);
    let kinds: Vec<_> = report.errors_by_kind.keys().collect();
    assert_eq!(kinds, ["search: invalid query"]);
    let failed = report.errors_by_kind["search: invalid query"];
    assert!(failed > 0 && failed < report.requests, "{report:?}");
}
