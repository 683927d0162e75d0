//! Scatter against in-process fake replicas, on tokio's paused clock: every duration below is
//! exact, not a sleep.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::client::LeafClient;
use crate::cluster::ReplicaSet;
use crate::hedge::HedgePolicy;
use crate::testing::{Behaviour, FakeLeaf};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cluster(shards: Vec<Vec<Arc<FakeLeaf>>>, config: &RootConfig) -> Cluster {
    Cluster::new(
        shards
            .into_iter()
            .enumerate()
            .map(|(s, fakes)| {
                let replicas = fakes
                    .into_iter()
                    .enumerate()
                    .map(|(r, f)| (format!("s{s}r{r}"), Arc::new(f) as Arc<dyn LeafClient>))
                    .collect();
                ReplicaSet::new(s as u32, replicas, config)
            })
            .collect(),
    )
}

/// A configuration whose hedge delay is always `delay`, whatever the latencies.
fn hedge_after(delay: Duration) -> RootConfig {
    RootConfig {
        hedge: HedgePolicy {
            min_delay: delay,
            max_delay: delay,
            ..HedgePolicy::default()
        },
        ..RootConfig::default()
    }
}

const HEDGE: ScatterOptions = ScatterOptions {
    hedge: true,
    proven: &[],
    sources: &[],
};
const NO_HEDGE: ScatterOptions = ScatterOptions {
    hedge: false,
    proven: &[],
    sources: &[],
};

async fn one(
    cluster: &Cluster,
    config: &RootConfig,
    timeout: Duration,
    options: ScatterOptions<'_>,
) -> (Vec<ShardOutcome>, Duration) {
    let started = Instant::now();
    let out = scatter(
        cluster,
        config,
        &pb::SearchRequest::default(),
        started + timeout,
        options,
    )
    .await;
    (out, started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn an_unavailable_replica_is_retried_on_another_at_once() {
    let config = RootConfig::default();
    let dead = FakeLeaf::with(Behaviour::Fail(ShardError::Unavailable(
        "connection refused".into(),
    )));
    let live = FakeLeaf::ok(5);
    let cluster = cluster(vec![vec![dead.clone(), live.clone()]], &config);
    for _ in 0..20 {
        let (out, took) = one(&cluster, &config, ms(1_000), NO_HEDGE).await;
        let (replica, _) = out[0].result.as_ref().unwrap();
        assert_eq!(replica, "s0r1");
        assert_eq!(took, ms(5), "the refusal costs no time");
    }
    // The dead replica was tried until ejected (2 failures), then left alone.
    assert_eq!(dead.calls(), 2);
    let retried = scatter(
        &cluster,
        &config,
        &pb::SearchRequest::default(),
        Instant::now() + ms(1_000),
        NO_HEDGE,
    )
    .await;
    assert_eq!(retried[0].attempts.len(), 1, "{:?}", retried[0].attempts);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_replica_costs_at_most_the_hedge_delay_plus_the_other_replicas_latency() {
    let config = RootConfig::default();
    let a = FakeLeaf::ok(4);
    let b = FakeLeaf::ok(4);
    let cluster = cluster(vec![vec![a.clone(), b.clone()]], &config);
    // Learn the shard's latencies: p95 = 4 ms becomes the hedge delay.
    for _ in 0..40 {
        one(&cluster, &config, ms(1_000), HEDGE).await;
    }
    let delay = cluster.shards()[0].hedge_delay();
    assert_eq!(delay, ms(4));

    a.set(Behaviour::Stall);
    let calls_before_stall = a.calls();
    let cancelled_before_stall = a.cancelled();
    let mut hedged_wins = 0;
    for _ in 0..50 {
        let (out, took) = one(&cluster, &config, ms(1_000), HEDGE).await;
        assert_eq!(out[0].result.as_ref().unwrap().0, "s0r1");
        assert!(took <= delay + ms(4), "took {took:?}");
        if out[0]
            .attempts
            .iter()
            .any(|r| r.kind == AttemptKind::Hedge && r.outcome == AttemptOutcome::Won)
        {
            hedged_wins += 1;
        }
    }
    assert!(
        hedged_wins >= 1,
        "the first request after the stall is rescued by a hedge"
    );
    let stalled_calls = a.calls() - calls_before_stall;
    assert!(stalled_calls >= 1);
    assert_eq!(
        a.cancelled() - cancelled_before_stall,
        stalled_calls,
        "every attempt on the stalled replica was cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn without_hedging_a_stalled_primary_is_still_routed_around_once_it_is_seen_stalled() {
    let config = RootConfig::default();
    // A stalled replica and a healthy one that looks busy, so the stalled one is the primary.
    let stalled_primary = || {
        let stalled = FakeLeaf::with(Behaviour::Stall);
        let cluster = cluster(vec![vec![stalled.clone(), FakeLeaf::ok(4)]], &config);
        for _ in 0..3 {
            cluster.shards()[0].replicas()[1].state.start();
        }
        (stalled, cluster)
    };
    // Unhedged: silent past stall_after (50 ms), its health check unanswered at the next look
    // (75 ms), routed around at the one after (100 ms), answered 4 ms later.
    let (stalled, unhedged) = stalled_primary();
    let (out, took) = one(&unhedged, &config, ms(1_000), NO_HEDGE).await;
    assert!(out[0].result.is_ok());
    assert_eq!(took, ms(104));
    assert_eq!(stalled.cancelled(), 1);
    // The same request hedged: with no latencies known the hedge delay is a cautious 200 ms,
    // but the stall is seen as soon, and routed around.
    let (stalled, hedged) = stalled_primary();
    let (out, took) = one(&hedged, &config, ms(300), HEDGE).await;
    assert!(out[0].result.is_ok());
    assert_eq!(took, ms(104));
    assert!(took < config.hedge.max_delay);
    assert_eq!(stalled.cancelled(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_loser_of_a_hedge_is_cancelled() {
    let config = hedge_after(ms(10));
    let slow = FakeLeaf::ok(100);
    let fast = FakeLeaf::ok(5);
    let cluster = cluster(vec![vec![slow.clone(), fast.clone()]], &config);
    // Make the slow one the primary: the fast one is busy.
    for _ in 0..3 {
        cluster.shards()[0].replicas()[1].state.start();
    }
    let (out, took) = one(&cluster, &config, ms(1_000), HEDGE).await;
    assert_eq!(took, ms(15), "hedge sent at 10 ms, answered 5 ms later");
    let kinds: Vec<_> = out[0]
        .attempts
        .iter()
        .map(|a| (a.kind, a.outcome.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (AttemptKind::Primary, AttemptOutcome::Cancelled),
            (AttemptKind::Hedge, AttemptOutcome::Won)
        ]
    );
    assert_eq!(out[0].attempts[0].elapsed_us, 15_000);
    assert_eq!(slow.cancelled(), 1);
    assert_eq!(slow.answered.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        cluster.shards()[0].replicas()[0].state.outstanding(),
        0,
        "the cancelled request is no longer counted"
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_hedges_when_every_request_is_slow() {
    let config = hedge_after(ms(10));
    let a = FakeLeaf::ok(50);
    let b = FakeLeaf::ok(50);
    let cluster = cluster(vec![vec![a.clone(), b.clone()]], &config);
    let n = 1_000;
    for _ in 0..n {
        one(&cluster, &config, ms(1_000), HEDGE).await;
    }
    let hedges = a.calls() + b.calls() - n;
    // Every request outlived the hedge delay; only the burst plus 5% were hedged.
    let cap = (config.hedge.budget_burst + config.hedge.budget_ratio * f64::from(n)) as u32;
    assert!(
        hedges <= cap && hedges >= cap - 2,
        "{hedges} hedges for {n} requests, cap {cap}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_replica_is_ejected_then_readmitted_after_its_backoff() {
    let config = RootConfig::default();
    let flaky = FakeLeaf::with(Behaviour::Fail(ShardError::Unavailable("refused".into())));
    let steady = FakeLeaf::ok(2);
    let cluster = cluster(vec![vec![flaky.clone(), steady.clone()]], &config);
    let replica = &cluster.shards()[0].replicas()[0];
    while flaky.calls() < 2 {
        let (out, _) = one(&cluster, &config, ms(1_000), NO_HEDGE).await;
        assert!(
            out[0].result.is_ok(),
            "the other replica answers every request"
        );
    }
    assert!(
        !replica.state.is_available(),
        "ejected after two failures in a row"
    );
    for _ in 0..50 {
        one(&cluster, &config, ms(1_000), NO_HEDGE).await;
    }
    assert_eq!(flaky.calls(), 2, "not tried while ejected");

    // It recovers; after the backoff it is tried again and re-admitted by one success.
    flaky.set(Behaviour::Answer(ms(1)));
    tokio::time::advance(config.replica.base_backoff).await;
    assert!(replica.state.is_available());
    for _ in 0..100 {
        one(&cluster, &config, ms(1_000), NO_HEDGE).await;
        if flaky.calls() > 2 {
            break;
        }
    }
    assert!(flaky.calls() > 2, "tried again after the backoff");
    assert!(!replica.state.is_failing(), "re-admitted");
}

#[tokio::test(start_paused = true)]
async fn at_the_deadline_the_answered_shards_come_back_and_the_rest_are_named() {
    // Stall detection slower than the deadline: the deadline must hold on its own.
    let mut config = RootConfig::default();
    config.replica.stall_after = ms(10_000);
    let stalled = || FakeLeaf::with(Behaviour::Stall);
    let (s1a, s1b) = (stalled(), stalled());
    let cluster = cluster(
        vec![
            vec![FakeLeaf::ok(3), FakeLeaf::ok(3)],
            vec![s1a.clone(), s1b.clone()],
        ],
        &config,
    );
    let (out, took) = one(&cluster, &config, ms(250), HEDGE).await;
    assert_eq!(took, ms(250), "answered at the deadline, not later");
    assert!(out[0].result.is_ok());
    assert_eq!(out[1].result.as_ref().unwrap_err(), &ShardError::Timeout);
    // The hedge (sent at the cautious initial delay) was cancelled at the deadline too.
    assert_eq!(out[1].attempts.len(), 2);
    assert_eq!(s1a.cancelled() + s1b.cancelled(), 2);
}

#[tokio::test(start_paused = true)]
async fn invalid_requests_are_not_retried() {
    let config = RootConfig::default();
    let first = FakeLeaf::with(Behaviour::Fail(ShardError::InvalidArgument(
        "bad query".into(),
    )));
    let second = FakeLeaf::with(Behaviour::Fail(ShardError::InvalidArgument(
        "bad query".into(),
    )));
    let cluster = cluster(vec![vec![first.clone(), second.clone()]], &config);
    let (out, _) = one(&cluster, &config, ms(1_000), HEDGE).await;
    assert!(matches!(out[0].result, Err(ShardError::InvalidArgument(_))));
    assert_eq!(first.calls() + second.calls(), 1);
    assert!(
        cluster.shards()[0].has_reachable_replica(),
        "a bad request is not the replica's fault"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_broken_mid_request_is_neither_retried_nor_hedged() {
    let config = hedge_after(ms(10));
    let dying = FakeLeaf::with(Behaviour::Fail(ShardError::ConnectionLost(
        "connection reset".into(),
    )));
    let healthy = FakeLeaf::ok(5);
    let cluster = cluster(vec![vec![dying.clone(), healthy.clone()]], &config);
    let mut seen_loss = false;
    for _ in 0..20 {
        let (out, _) = one(&cluster, &config, ms(1_000), HEDGE).await;
        if let Err(e) = &out[0].result {
            assert!(matches!(e, ShardError::ConnectionLost(_)), "{e}");
            assert_eq!(out[0].attempts.len(), 1, "{:?}", out[0].attempts);
            seen_loss = true;
        }
    }
    assert!(seen_loss, "the dying replica was chosen at least once");
    assert_eq!(
        healthy.calls() + dying.calls(),
        20,
        "one request per search"
    );
    assert!(
        dying.calls() <= 2,
        "ejected after its failures: {}",
        dying.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_broken_under_a_proven_query_is_retried_like_any_failure() {
    let config = RootConfig::default();
    let dying = FakeLeaf::with(Behaviour::Fail(ShardError::ConnectionLost(
        "connection reset".into(),
    )));
    let healthy = FakeLeaf::ok(5);
    let cluster = cluster(vec![vec![dying.clone(), healthy.clone()]], &config);
    let proven = ScatterOptions {
        hedge: false,
        proven: &[true],
        sources: &[],
    };
    for _ in 0..20 {
        let (out, _) = one(&cluster, &config, ms(1_000), proven).await;
        let (replica, _) = out[0].result.as_ref().unwrap();
        assert_eq!(replica, "s0r1");
    }
    // One failure per broken connection, as for any failure: ejected after the second.
    assert_eq!(dying.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_is_not_json_fails_its_replica_and_is_retried() {
    let config = RootConfig::default();
    let garbled = FakeLeaf::with(Behaviour::Garbled);
    let healthy = FakeLeaf::ok(1);
    let cluster = cluster(vec![vec![garbled.clone(), healthy.clone()]], &config);
    // The healthy replica looks busy, so the garbled one is the primary.
    for _ in 0..3 {
        cluster.shards()[0].replicas()[1].state.start();
    }
    let (out, _) = one(&cluster, &config, ms(300), NO_HEDGE).await;
    assert!(out[0].result.is_ok(), "{:?}", out[0].result);
    let kinds: Vec<_> = out[0]
        .attempts
        .iter()
        .map(|a| (a.kind, &a.outcome))
        .collect();
    assert!(
        matches!(&kinds[..], [(AttemptKind::Primary, AttemptOutcome::Failed(why)), (AttemptKind::Retry, AttemptOutcome::Won)] if why.contains("not JSON")),
        "{kinds:?}"
    );
    assert!(cluster.shards()[0].replicas()[0].state.is_failing());
}

/// No hedges from the budget: any hedge sent is a free one, away from a stall.
fn no_budget() -> RootConfig {
    let mut config = hedge_after(ms(10));
    config.hedge.budget_ratio = 0.0;
    config.hedge.budget_burst = 0.0;
    config
}

#[tokio::test(start_paused = true)]
async fn a_busy_replica_is_asked_no_more_for_a_moment_and_never_ejected() {
    let config = RootConfig::default();
    let busy = FakeLeaf::with(Behaviour::Fail(ShardError::Busy("queue full".into())));
    let idle = FakeLeaf::ok(2);
    let cluster = cluster(vec![vec![busy.clone(), idle.clone()]], &config);
    for _ in 0..50 {
        let (out, took) = one(&cluster, &config, ms(1_000), HEDGE).await;
        assert_eq!(out[0].result.as_ref().unwrap().0, "s0r1");
        assert_eq!(took, ms(2), "a refusal costs no time");
        tokio::time::advance(ms(10)).await;
    }
    let replica = &cluster.shards()[0].replicas()[0];
    assert!(!replica.state.is_failing(), "busy is no failure");
    assert!(replica.state.is_available(), "never ejected");
    // 50 searches over 500 ms, and a busy replica is left alone for 100 ms after each refusal.
    assert!(busy.calls() <= 6, "{} calls", busy.calls());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_replica_is_routed_around_while_its_request_is_outstanding() {
    let config = no_budget();
    let stalled = FakeLeaf::with(Behaviour::Stall);
    let live = FakeLeaf::ok(1);
    let cluster = cluster(vec![vec![stalled.clone(), live.clone()]], &config);
    let replicas = cluster.shards()[0].replicas();
    // Make the stalled replica the primary: the other looks loaded.
    replicas[1].state.start();
    replicas[1].state.start();
    let (out, took) = one(&cluster, &config, ms(2_000), HEDGE).await;
    replicas[1].state.finish(ms(1), true);
    replicas[1].state.finish(ms(1), true);
    let attempts = &out[0].attempts;
    assert_eq!(out[0].result.as_ref().unwrap().0, "s0r1", "{attempts:?}");
    assert_eq!(attempts[0].replica, "s0r0");
    assert_eq!(attempts[1].kind, AttemptKind::Hedge);
    // Silent for stall_after (50 ms), its health check unanswered, seen at the next look.
    assert!(took > ms(50) && took < ms(150), "took {took:?}");
    assert!(
        replicas[0].state.is_stalled() && replicas[0].state.is_failing(),
        "stalled while its sibling answered: that counts against it"
    );
    // New searches go to the live replica at once.
    for _ in 0..10 {
        let (out, took) = one(&cluster, &config, ms(2_000), HEDGE).await;
        assert_eq!(out[0].attempts.len(), 1);
        assert_eq!(out[0].result.as_ref().unwrap().0, "s0r1");
        assert_eq!(took, ms(1));
    }
    assert_eq!(stalled.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_shard_whose_replicas_all_stalled_answers_at_once() {
    let config = hedge_after(ms(10));
    let (a, b) = (
        FakeLeaf::with(Behaviour::Stall),
        FakeLeaf::with(Behaviour::Stall),
    );
    let cluster = cluster(
        vec![vec![a.clone(), b.clone()], vec![FakeLeaf::ok(1)]],
        &config,
    );
    // The first search finds out: it gives up once both replicas it asked have stalled.
    let (out, took) = one(&cluster, &config, ms(2_000), HEDGE).await;
    assert!(
        took < ms(300),
        "gave up after {took:?}, not at the deadline"
    );
    assert!(
        matches!(&out[0].result, Err(ShardError::Unavailable(m)) if m.contains("stalled")),
        "{:?}",
        out[0].result
    );
    assert!(out[1].result.is_ok());
    // The next ones do not wait at all, and send nothing to the shard.
    let calls = a.calls() + b.calls();
    let (out, took) = one(&cluster, &config, ms(2_000), HEDGE).await;
    assert_eq!(took, ms(1), "only the live shard's latency");
    assert!(
        matches!(&out[0].result, Err(ShardError::Unavailable(m)) if m.contains("no live replica")),
        "{:?}",
        out[0].result
    );
    assert_eq!(a.calls() + b.calls(), calls);
    // Back: a health check that succeeds ends the stall.
    a.set(Behaviour::Answer(ms(1)));
    crate::health::probe_all(&cluster, &config).await;
    let (out, _) = one(&cluster, &config, ms(2_000), HEDGE).await;
    assert_eq!(out[0].result.as_ref().unwrap().0, "s0r0");
}

#[tokio::test(start_paused = true)]
async fn a_deadline_missed_by_a_replica_that_still_answers_health_checks_is_no_failure() {
    // The whole cluster is slow (overload): every answer comes after the deadline, but the
    // replicas are alive. Nothing is ejected.
    let config = RootConfig::default();
    let slow = [FakeLeaf::ok(3_000), FakeLeaf::ok(3_000)];
    let cluster = cluster(vec![slow.to_vec()], &config);
    for _ in 0..5 {
        let (out, took) = one(&cluster, &config, ms(1_000), HEDGE).await;
        assert_eq!(took, ms(1_000));
        assert_eq!(out[0].result.as_ref().unwrap_err(), &ShardError::Timeout);
    }
    for replica in cluster.shards()[0].replicas().iter() {
        assert!(!replica.state.is_failing(), "{}", replica.name);
    }
}
