use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fixed(limit: usize, queue: usize) -> Arc<Admission> {
    Admission::new(&AdmissionPolicy {
        mode: LimitMode::Fixed(limit),
        queue,
        ..AdmissionPolicy::default()
    })
}

#[test]
fn the_limit_grows_while_latency_holds_and_shrinks_when_it_climbs() {
    let mut limit = GradientLimit::new(16, 4, 256);
    for _ in 0..200 {
        let in_flight = limit.limit();
        limit.sample(ms(10), in_flight);
    }
    let grown = limit.limit();
    assert!(
        grown > 64,
        "steady latency at full use grows the limit: {grown}"
    );
    // Queues build: latency triples at the same load.
    for _ in 0..50 {
        let in_flight = limit.limit();
        limit.sample(ms(30), in_flight);
    }
    let shrunk = limit.limit();
    assert!(shrunk < grown / 2, "{grown} -> {shrunk}");
    assert!(shrunk >= 4, "never below the floor: {shrunk}");
}

#[test]
fn a_lightly_used_limit_does_not_move_and_bounds_hold() {
    let mut limit = GradientLimit::new(16, 4, 20);
    for _ in 0..100 {
        limit.sample(ms(10), 2);
    }
    assert_eq!(limit.limit(), 16, "two of sixteen in use says nothing");
    for _ in 0..100 {
        limit.sample(ms(10), 20);
    }
    assert_eq!(limit.limit(), 20, "held at the ceiling");
    assert_eq!(GradientLimit::new(1, 4, 8).limit(), 4);
    assert_eq!(limit.estimate(), Some(ms(10)));
}

#[test]
fn policies_with_impossible_bounds_are_refused() {
    let policy = |mode, min, max| AdmissionPolicy {
        mode,
        min_in_flight: min,
        max_in_flight: max,
        ..AdmissionPolicy::default()
    };
    assert!(policy(LimitMode::Adaptive, 4, 256).validate().is_ok());
    assert!(policy(LimitMode::Adaptive, 0, 256).validate().is_err());
    assert!(policy(LimitMode::Adaptive, 10, 5).validate().is_err());
    assert!(policy(LimitMode::Fixed(0), 4, 256).validate().is_err());
}

#[tokio::test(start_paused = true)]
async fn past_the_limit_with_no_queue_a_search_is_refused_at_once() {
    let gate = fixed(1, 0);
    let deadline = Instant::now() + ms(2_000);
    let first = gate.admit(deadline).await.expect("a place is free");
    assert_eq!(gate.admit(deadline).await.err(), Some(Refusal::QueueFull));
    drop(first);
    assert_eq!(gate.in_flight(), 0);
    let _again = gate.admit(deadline).await.expect("the place came back");
}

#[tokio::test(start_paused = true)]
async fn a_queued_search_gets_the_next_free_place_in_order() {
    let gate = fixed(1, 2);
    let deadline = Instant::now() + ms(2_000);
    let first = gate.admit(deadline).await.unwrap();
    let (a, b) = (Arc::clone(&gate), Arc::clone(&gate));
    let second = tokio::spawn(async move { a.admit(deadline).await.map(|_| "second") });
    tokio::task::yield_now().await;
    let third = tokio::spawn(async move { b.admit(deadline).await.map(|_| "third") });
    tokio::task::yield_now().await;
    assert_eq!(gate.admit(deadline).await.err(), Some(Refusal::QueueFull));
    tokio::time::advance(ms(10)).await;
    drop(first);
    assert_eq!(second.await.unwrap(), Ok("second"));
    // The second's permit was dropped with its task: the third gets that place.
    assert_eq!(third.await.unwrap(), Ok("third"));
    assert_eq!(gate.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_wait_is_bounded_by_the_policy_and_by_the_deadline() {
    let gate = fixed(1, 4);
    let _held = gate.admit(Instant::now() + ms(2_000)).await.unwrap();
    let start = Instant::now();
    let refused = gate.admit(start + ms(2_000)).await.err();
    assert_eq!(refused, Some(Refusal::Deadline));
    assert_eq!(start.elapsed(), AdmissionPolicy::default().max_wait);
    let start = Instant::now();
    assert_eq!(
        gate.admit(start + ms(5)).await.err(),
        Some(Refusal::Deadline)
    );
    assert_eq!(start.elapsed(), ms(5), "no wait past the deadline");
}

#[tokio::test(start_paused = true)]
async fn a_search_that_could_not_finish_by_its_deadline_is_not_queued() {
    let gate = Admission::new(&AdmissionPolicy {
        initial: 4,
        min_in_flight: 4,
        max_in_flight: 4,
        ..AdmissionPolicy::default()
    });
    let deadline = Instant::now() + ms(2_000);
    let mut permits = Vec::new();
    for _ in 0..4 {
        let mut permit = gate.admit(deadline).await.unwrap();
        permit.complete();
        permits.push(permit);
    }
    tokio::time::advance(ms(100)).await;
    // Searches take 100 ms: one with 30 ms left is refused without waiting.
    permits.pop();
    let _refill = gate.admit(deadline).await.unwrap();
    let start = Instant::now();
    assert_eq!(
        gate.admit(start + ms(30)).await.err(),
        Some(Refusal::Deadline)
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_place_handed_to_a_search_that_left_is_not_lost() {
    let gate = fixed(1, 1);
    let deadline = Instant::now() + ms(2_000);
    let first = gate.admit(deadline).await.unwrap();
    let mut queued = Box::pin(gate.admit(deadline));
    assert!(futures::poll!(&mut queued).is_pending(), "queued");
    // The place is handed over, and the queued search is dropped before it looks.
    drop(first);
    assert_eq!(gate.in_flight(), 1, "handed to the waiter");
    drop(queued);
    assert_eq!(gate.in_flight(), 0, "and given back when it left");
    let _next = gate.admit(deadline).await.expect("the place is free");
}

#[tokio::test(start_paused = true)]
async fn incomplete_searches_do_not_move_the_limit() {
    let gate = Admission::new(&AdmissionPolicy::default());
    let deadline = Instant::now() + ms(2_000);
    let before = gate.limit();
    for _ in 0..100 {
        let permits: Vec<_> = futures::future::join_all((0..before).map(|_| gate.admit(deadline)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // Each ran into its deadline (a hung shard): two seconds, no sample.
        tokio::time::advance(ms(2_000)).await;
        drop(permits);
    }
    assert_eq!(gate.limit(), before);
}

#[tokio::test(start_paused = true)]
async fn a_search_that_lost_a_shard_to_the_load_shrinks_the_limit() {
    let gate = Admission::new(&AdmissionPolicy::default());
    let deadline = Instant::now() + ms(2_000);
    let before = gate.limit();
    // With one search running the limit holds nothing back: a drop says nothing.
    let mut permit = gate.admit(deadline).await.unwrap();
    permit.overloaded();
    drop(permit);
    assert_eq!(gate.limit(), before);
    // With every place taken, it does.
    let mut full: Vec<_> = futures::future::join_all((0..before).map(|_| gate.admit(deadline)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut last = full.pop().unwrap();
    last.overloaded();
    drop(last);
    assert_eq!(gate.limit(), before * 9 / 10);
    drop(full);
    for _ in 0..100 {
        let mut permits: Vec<_> =
            futures::future::join_all((0..gate.limit()).map(|_| gate.admit(deadline)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        permits[0].overloaded();
    }
    assert_eq!(gate.limit(), AdmissionPolicy::default().min_in_flight);
}

#[tokio::test(start_paused = true)]
async fn a_lasting_overload_does_not_become_the_baseline_within_a_minute() {
    let mut limit = GradientLimit::new(64, 4, 256);
    for _ in 0..100 {
        let in_flight = limit.limit();
        limit.sample(ms(10), in_flight);
        tokio::time::advance(ms(10)).await;
    }
    // A minute of searches five times slower at full use: queues stand somewhere.
    for _ in 0..6_000 {
        let in_flight = limit.limit();
        limit.sample(ms(50), in_flight);
        tokio::time::advance(ms(10)).await;
    }
    assert!(
        limit.limit() < 32,
        "the limit stays down while latency stays up: {}",
        limit.limit()
    );
}

#[test]
fn a_limit_that_is_not_reached_does_not_shrink() {
    let mut limit = GradientLimit::new(16, 8, 256);
    for _ in 0..20 {
        limit.sample(ms(10), 16);
    }
    let before = limit.limit();
    // Slow searches (a costly query mix), with the limit not binding: nothing to hold back.
    for _ in 0..50 {
        limit.sample(ms(40), 10);
    }
    assert_eq!(limit.limit(), before);
}
