//! Scattering: one search sent to every shard at once, each shard answered by one of its
//! replicas, and nothing waited for past the deadline.
//!
//! Per shard ([`search_shard`]):
//! 1. the primary attempt goes to a replica chosen by power of two choices;
//! 2. if it has not answered after the shard's hedge delay, and the hedge budget has a token, a
//!    hedge goes to a different replica; the first good answer wins and the other attempt is
//!    dropped, which cancels its gRPC stream so the leaf can skip work it has not started;
//! 3. an attempt that fails in a retryable way (refused, unavailable) is retried at once on
//!    another replica while the deadline allows; a bad request is not (every replica would
//!    refuse it), nor one whose replica's connection broke while serving it, unless the query
//!    is known to be harmless on the shard (the request may be what killed the replica:
//!    retrying and hedging would spread it to every replica);
//! 4. at the deadline, whatever is still in flight is cancelled and the shard reported missing.
//!
//! Stalls and overload ([`crate::replica`] says what stalled and busy are):
//! - a shard none of whose replicas is live (each ejected or stalled) is reported missing at
//!   once rather than at the deadline; the health prober, and the first request after an
//!   ejection ends, find out when it is back;
//! - a request whose attempts all wait on stalled replicas goes to a live replica at once,
//!   whatever the hedge budget and even if it may not be hedged: the budget keeps hedging
//!   from multiplying load when the whole cluster is slow, and a stall is one replica's, which
//!   the stalled replica no longer shares; with no live replica left to try, the shard is
//!   given up;
//! - a replica that said it is busy is not a failure: the request goes to another replica, and
//!   neither hedges nor new requests go to the busy one for a moment;
//! - only what a replica did counts against it: a failure, an answer missing at the deadline
//!   while it had stalled, or a stall while a sibling answered the same request. A slow answer
//!   under a load that slows every replica, a cancelled hedge, or a bad request do not.

use std::sync::Arc;
use std::time::Duration;

use fanout_proto::{pb, ShardId};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::time::Instant;

use crate::choose::{choose, Reach};
use crate::client::{check_answer, ShardError};
use crate::cluster::{none_live, Cluster, Replica, ReplicaSet};
use crate::config::RootConfig;
use crate::metrics::AttemptKind;
use crate::replica::{ReplicaState, MIN_STALL_AFTER};
use crate::stats_cache::Source;

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// Its answer was used.
    Won,
    /// It failed, for this reason.
    Failed(String),
    /// Another attempt won first, or the deadline passed: it was dropped.
    Cancelled,
}

/// One request to one replica, for reporting.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptReport {
    /// The replica it went to.
    pub replica: String,
    /// Why it was sent.
    pub kind: AttemptKind,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Time from sending to the answer, failure or cancellation.
    pub elapsed_us: u64,
    /// Of `elapsed_us`, the time the leaf says it spent on the request (the winning attempt
    /// only); the rest is the network and gRPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_took_us: Option<u64>,
}

/// What one shard contributed to a search.
#[derive(Debug)]
pub struct ShardOutcome {
    /// The shard.
    pub shard: ShardId,
    /// The answering replica's name and its response, or why no replica answered.
    pub result: Result<(String, pb::SearchResponse), ShardError>,
    /// Every request sent for this shard, in the order they were sent.
    pub attempts: Vec<AttemptReport>,
}

/// Per-request switches.
#[derive(Clone, Copy)]
pub struct ScatterOptions<'a> {
    /// Whether this request may be hedged.
    pub hedge: bool,
    /// Per shard, whether this query is known to run there without breaking a replica, so that
    /// a broken connection is retried like any failure (see [`crate::quarantine::KnownGood`]).
    /// Shards past the end are not.
    pub proven: &'a [bool],
    /// With global statistics: per shard, the replica and generation its part came from.
    /// An attempt to that replica carries the generation, and one to any other replica none,
    /// so that a replica not on the statistics' generation answers with its own (see
    /// `stats_generation` in the contract). Empty without global statistics.
    pub sources: &'a [Source],
}

/// Sends `request` to every shard and gathers what arrives by `deadline`, in shard order.
pub async fn scatter(
    cluster: &Cluster,
    config: &RootConfig,
    request: &pb::SearchRequest,
    deadline: Instant,
    options: ScatterOptions<'_>,
) -> Vec<ShardOutcome> {
    let calls = cluster
        .shards()
        .iter()
        .map(|set| search_shard(set, config, request, deadline, options));
    futures::future::join_all(calls).await
}

/// Keeps a replica's in-flight count and latency estimate right however an attempt ends:
/// answered, failed, or dropped (cancelled).
pub(crate) struct InFlight<'a> {
    state: &'a ReplicaState,
    started: Instant,
    /// Whether the replica answered (with a result or an error of its own).
    pub(crate) answered: bool,
}

impl<'a> InFlight<'a> {
    /// Counts a request to the replica of `state` until dropped.
    pub(crate) fn new(state: &'a ReplicaState) -> Self {
        state.start();
        Self {
            state,
            started: Instant::now(),
            answered: false,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.state.finish(self.started.elapsed(), self.answered);
    }
}

/// One attempt: the replica's answer, tagged with the attempt's slot in the report list.
async fn attempt(
    replica: &Replica,
    request: pb::SearchRequest,
    deadline: Instant,
    slot: usize,
) -> (usize, Result<pb::SearchResponse, ShardError>, Duration) {
    let mut in_flight = InFlight::new(&replica.state);
    let timeout = deadline.saturating_duration_since(Instant::now());
    let result = replica.client.search(request, timeout).await;
    in_flight.answered = !matches!(result, Err(ShardError::Timeout));
    let result = result.and_then(|response| check_answer(&response).map(|()| response));
    (slot, result, in_flight.started.elapsed())
}

/// An attempt in flight: resolves to its report slot, the replica's answer and the time taken.
type AttemptFuture<'a> = BoxFuture<'a, (usize, Result<pb::SearchResponse, ShardError>, Duration)>;

/// The attempts of one shard request so far.
struct Attempts<'a> {
    set: &'a ReplicaSet,
    /// The shard's membership when the request started.
    replicas: &'a [Arc<Replica>],
    request: &'a pb::SearchRequest,
    sources: &'a [Source],
    deadline: Instant,
    tried: Vec<bool>,
    reports: Vec<AttemptReport>,
    /// Per report slot: which replica, and when it was sent.
    sent: Vec<(usize, Instant)>,
    in_flight: FuturesUnordered<AttemptFuture<'a>>,
}

impl<'a> Attempts<'a> {
    /// Sends the request to a replica not tried yet, if there is one.
    fn launch(&mut self, kind: AttemptKind) -> bool {
        let reach = match kind {
            AttemptKind::Hedge => Reach::Live,
            AttemptKind::Primary | AttemptKind::Retry => Reach::Any,
        };
        let Some(index) = choose(self.replicas, &self.tried, reach) else {
            return false;
        };
        self.tried[index] = true;
        let slot = self.reports.len();
        let replica = &self.replicas[index];
        self.reports.push(AttemptReport {
            replica: replica.name.clone(),
            kind,
            outcome: AttemptOutcome::Cancelled,
            elapsed_us: 0,
            leaf_took_us: None,
        });
        self.sent.push((index, Instant::now()));
        self.set.metrics.requests[kind as usize].increment(1);
        let mut request = self.request.clone();
        request.stats_generation = match self.sources.get(self.set.shard as usize) {
            Some(Some((source, generation))) if *source == replica.name => Some(*generation),
            _ => None,
        };
        self.in_flight
            .push(Box::pin(attempt(replica, request, self.deadline, slot)));
        true
    }

    fn replica(&self, slot: usize) -> &'a Replica {
        &self.replicas[self.sent[slot].0]
    }

    /// Attempts neither answered nor failed: the ones about to be cancelled.
    fn unfinished(&self) -> Vec<usize> {
        (0..self.reports.len())
            .filter(|&slot| self.reports[slot].outcome == AttemptOutcome::Cancelled)
            .collect()
    }

    /// Takes in the answer of attempt `slot`: the shard is answered.
    fn answered(
        &mut self,
        slot: usize,
        response: pb::SearchResponse,
        elapsed: Duration,
    ) -> (String, pb::SearchResponse) {
        let replica = self.replica(slot);
        replica.state.record_success();
        self.set.record_latency(elapsed);
        let report = &mut self.reports[slot];
        report.elapsed_us = elapsed.as_micros() as u64;
        report.outcome = AttemptOutcome::Won;
        report.leaf_took_us = (response.took_us > 0).then_some(response.took_us);
        (replica.name.clone(), response)
    }

    /// Takes in the failure of attempt `slot`, and retries on another replica if the failure
    /// allows it and the deadline has not passed. Returns the failure if the shard has nothing
    /// left in flight, or must not be retried.
    fn failed(
        &mut self,
        slot: usize,
        error: ShardError,
        elapsed: Duration,
        proven: bool,
    ) -> Option<ShardError> {
        let replica = self.replica(slot);
        let report = &mut self.reports[slot];
        report.elapsed_us = elapsed.as_micros() as u64;
        report.outcome = AttemptOutcome::Failed(error.to_string());
        // Once per failure, and never for a bad request: every replica would refuse it, and
        // none is at fault.
        match error {
            ShardError::InvalidArgument(_) => {}
            ShardError::Busy(_) => replica.state.mark_busy(),
            ShardError::ConnectionLost(_) => replica.record_failure("connection broke mid-request"),
            _ => replica.record_failure("request failed"),
        }
        if !error.is_retryable(proven) {
            return Some(error);
        }
        if Instant::now() < self.deadline && self.launch(AttemptKind::Retry) {
            self.set.metrics.retries.increment(1);
        }
        self.in_flight.is_empty().then_some(error)
    }

    /// Asks each replica an attempt waits on whether it is alive, if it has been silent for a
    /// while.
    fn check_for_stalls(&self, timeout: Duration) {
        for slot in self.unfinished() {
            self.replicas[self.sent[slot].0].check_for_stall(timeout);
        }
    }

    /// Whether every attempt still in flight waits on a replica that has stalled.
    fn waiting_only_on_stalls(&self) -> bool {
        let waiting = self.unfinished();
        !waiting.is_empty()
            && waiting
                .iter()
                .all(|&slot| self.replica(slot).state.is_stalled())
    }

    /// Every attempt in flight waits on a stalled replica: send the request to a live replica
    /// not tried yet, whatever the budget and whether or not the request may be hedged (the
    /// stalled replica no longer shares the load, so this adds none). Returns false when no
    /// live replica is left: nothing can answer any more. (A busy replica is not live: it
    /// would refuse at once.)
    fn route_around_stall(&mut self) -> bool {
        let sent = self.launch(AttemptKind::Hedge);
        if sent {
            self.set.metrics.hedges_sent.increment(1);
        }
        sent
    }

    /// The hedge delay passed with no answer: hedge to an untried live replica if the budget
    /// allows.
    fn hedge(&mut self) {
        if !self.tried.iter().any(|t| !t) {
            return;
        }
        if self.set.budget.try_withdraw() {
            if self.launch(AttemptKind::Hedge) {
                self.set.metrics.hedges_sent.increment(1);
            }
        } else {
            self.set.metrics.hedges_skipped_budget.increment(1);
        }
    }

    /// Cancels what is still in flight, records the shard's metrics, and returns the reports.
    /// An attempt left unanswered counts against its replica only if the replica had stalled,
    /// and only when the shard timed out or a sibling answered: then the replica, not the load,
    /// is what kept the answer.
    fn finish(mut self, answered: bool, timed_out: bool, started: Instant) -> Vec<AttemptReport> {
        let now = Instant::now();
        for slot in self.unfinished() {
            self.reports[slot].elapsed_us =
                now.duration_since(self.sent[slot].1).as_micros() as u64;
            let replica = self.replica(slot);
            if (timed_out || answered) && replica.state.is_stalled() {
                replica.record_failure(if answered {
                    "stalled while a sibling answered"
                } else {
                    "stalled: no answer by the deadline"
                });
            }
        }
        drop(self.in_flight);
        if self
            .reports
            .iter()
            .any(|r| r.outcome == AttemptOutcome::Won && r.kind == AttemptKind::Hedge)
        {
            self.set.metrics.hedges_won.increment(1);
        }
        self.set
            .metrics
            .latency
            .record(started.elapsed().as_secs_f64());
        self.reports
    }
}

/// How long a stall's health check waits: twice the silence that raised the question, and at
/// least 250 ms. A replica busy enough to be slow to answer its health check is not stalled:
/// with 100 ms, a healthy leaf running costly queries on saturated cores (a test suite's debug
/// build) was taken for stalled and its shard failed at once.
pub fn stall_check_timeout(stall_after: Duration) -> Duration {
    (stall_after * 2).max(Duration::from_millis(250))
}

/// Searches one shard with replica choice, hedging, retries and the deadline.
pub async fn search_shard(
    set: &ReplicaSet,
    config: &RootConfig,
    request: &pb::SearchRequest,
    deadline: Instant,
    options: ScatterOptions<'_>,
) -> ShardOutcome {
    let proven = options
        .proven
        .get(set.shard as usize)
        .copied()
        .unwrap_or(false);
    let started = Instant::now();
    // One snapshot for the whole request; attempts borrow their replicas from it.
    let replicas = set.replicas();
    let mut attempts = Attempts {
        set,
        tried: vec![false; replicas.len()],
        replicas: &replicas,
        request,
        sources: options.sources,
        deadline,
        reports: Vec::new(),
        sent: Vec::new(),
        in_flight: FuturesUnordered::new(),
    };
    set.budget.deposit();
    if none_live(&replicas) {
        return ShardOutcome {
            shard: set.shard,
            result: Err(ShardError::Unavailable(
                "no live replica: every replica is ejected or stalled".into(),
            )),
            attempts: Vec::new(),
        };
    }
    if !attempts.launch(AttemptKind::Primary) {
        return ShardOutcome {
            shard: set.shard,
            result: Err(ShardError::Unavailable(
                "the shard has no known replica".into(),
            )),
            attempts: Vec::new(),
        };
    }
    let hedging = options.hedge && config.hedge.enabled && replicas.len() > 1;
    let stall_after = config.replica.stall_after.max(MIN_STALL_AFTER);
    // The attempts are looked at every half `stall_after`, to ask a silent replica whether it
    // is alive and to route around, or give up on, one that stalled; and once at the hedge
    // delay, to hedge.
    let mut hedge_at = hedging.then(|| started + set.hedge_delay());
    let next_look = |now: Instant, hedge_at: Option<Instant>| {
        let look = now + stall_after / 2;
        hedge_at.map_or(look, |at| look.min(at)).min(deadline)
    };
    let mut look_at = next_look(started, hedge_at);
    let mut timed_out = false;
    let result = loop {
        tokio::select! {
            biased;
            Some((slot, result, elapsed)) = attempts.in_flight.next() => match result {
                Ok(response) => break Ok(attempts.answered(slot, response, elapsed)),
                Err(e) => {
                    if let Some(e) = attempts.failed(slot, e, elapsed, proven) {
                        break Err(e);
                    }
                }
            },
            // Before the look, which falls on the deadline at the end.
            _ = tokio::time::sleep_until(deadline) => {
                timed_out = true;
                break Err(ShardError::Timeout);
            }
            _ = tokio::time::sleep_until(look_at) => {
                let now = Instant::now();
                attempts.check_for_stalls(stall_check_timeout(stall_after));
                if attempts.waiting_only_on_stalls() {
                    if !attempts.route_around_stall() {
                        break Err(ShardError::Unavailable(
                            "every replica asked has stalled and no live one is left".into(),
                        ));
                    }
                } else if hedge_at.is_some_and(|at| now >= at) {
                    hedge_at = None;
                    attempts.hedge();
                }
                look_at = next_look(now, hedge_at);
            }
        }
    };
    ShardOutcome {
        shard: set.shard,
        attempts: attempts.finish(result.is_ok(), timed_out, started),
        result,
    }
}

#[cfg(test)]
#[path = "scatter_tests.rs"]
mod tests;
