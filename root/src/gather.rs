//! One round of a search: scatter to every shard and gather what comes back; and, when an
//! answer shows that the statistics the search was scored with are a commit old, one more
//! round with fresh ones (the contract's generation handshake).

use std::time::Duration;

use fanout_proto::{pb, ShardId};
use serde::Serialize;
use tokio::time::Instant;

use crate::client::ShardError;
use crate::cluster::Cluster;
use crate::config::RootConfig;
use crate::error::ApiError;
use crate::merge::ShardHit;
use crate::metrics::AttemptKind;
use crate::quarantine;
use crate::scatter::{scatter, AttemptOutcome, AttemptReport, ScatterOptions, ShardOutcome};
use crate::stats::StatsSource;
use crate::stats_cache::{Origin, Sums};

/// The least time a second round is given: below it, scheduling noise alone would fail it.
const MIN_SECOND_ROUND: Duration = Duration::from_millis(20);

/// One search's rounds: what they share.
pub struct Round<'a> {
    /// The cluster searched.
    pub cluster: &'a Cluster,
    /// How the root searches.
    pub config: &'a RootConfig,
    /// The query text, as the statistics cache and the quarantine know it.
    pub query: &'a str,
    /// Whether shard requests may be hedged.
    pub hedge: bool,
    /// Whether to report every attempt.
    pub debug: bool,
    /// The query and window, for the quarantine's record of where it ran (none for a cursor
    /// page, which nothing proves harmless).
    pub run: Option<quarantine::Run>,
    /// When the search must be answered.
    pub deadline: Instant,
}

impl Round<'_> {
    /// Per shard, whether this query is known to run there without breaking a replica.
    pub fn proven(&self) -> Vec<bool> {
        (0..self.cluster.shards().len() as ShardId)
            .map(|shard| {
                self.run
                    .is_some_and(|run| self.cluster.known_good.contains(run, shard))
            })
            .collect()
    }

    /// Sends `request` (scored with `sums`, if any) to every shard and gathers the answers by
    /// `deadline`; quarantines the query if a connection broke under it.
    pub async fn run(
        &self,
        request: &pb::SearchRequest,
        sums: Option<&Sums>,
        deadline: Instant,
    ) -> Gathered {
        let proven = self.proven();
        let options = ScatterOptions {
            hedge: self.hedge,
            proven: &proven,
            sources: sums.map_or(&[][..], |s| &s.sources),
        };
        let outcomes = scatter(self.cluster, self.config, request, deadline, options).await;
        let gathered = Gathered::from_outcomes(self, sums, &proven, outcomes);
        if gathered.lost_connection {
            self.cluster
                .quarantine
                .add(quarantine::fingerprint(self.query));
        }
        gathered
    }

    /// Whether `replica` still serves `shard`: an answer from one that discovery removed
    /// meanwhile must not become the shard's source of statistics.
    fn is_member(&self, shard: ShardId, replica: &str) -> bool {
        self.cluster
            .shards()
            .get(shard as usize)
            .is_some_and(|set| set.replicas().iter().any(|r| r.name == replica))
    }

    /// Scores from the cluster's statistics are exact only if every shard's answer was scored
    /// with statistics that match its data. When one was not (a commit since the statistics
    /// were learnt; a replica that differs from the one they came from), the query runs once
    /// more with the sums as the cache holds them now, if they changed, every shard answered
    /// the first round, the query is not quarantined meanwhile, the time left is at least
    /// twice what the first round took (and 20 ms), and the cluster's rescore budget allows.
    /// The second round gets only that much time. Otherwise the first answer stands, labelled
    /// stale (or partial, if its sums already lacked a shard); so does a second round that
    /// fails anywhere: a complete answer scored a commit ago beats a partial one.
    pub async fn freshen(
        &self,
        request: &pb::SearchRequest,
        first: Gathered,
        label: StatsSource,
        scattered: Instant,
    ) -> (Gathered, StatsSource) {
        // Without hits there are no scores to be exact about.
        if !first.inexact || request.size == 0 {
            return (first, label);
        }
        let not_exact = match label {
            StatsSource::Partial => StatsSource::Partial,
            _ => StatsSource::Stale,
        };
        let now = Instant::now();
        let time = scattered.elapsed().saturating_mul(2).max(MIN_SECOND_ROUND);
        let current = self
            .cluster
            .stats
            .lookup(self.query)
            .filter(|c| Some(&c.stats) != request.global_stats.as_ref());
        let allowed = current.is_some()
            && first.complete()
            && self.deadline.saturating_duration_since(now) >= time
            && self
                .cluster
                .quarantine
                .check(quarantine::fingerprint(self.query))
                .is_ok()
            && self.cluster.rescore_budget.try_withdraw();
        let Some(current) = current.filter(|_| allowed) else {
            return (first, not_exact);
        };
        self.cluster.rescored.increment(1);
        let again = pb::SearchRequest {
            global_stats: Some(current.stats.clone()),
            timeout_ms: time.as_millis().min(u128::from(u32::MAX)) as u32,
            ..request.clone()
        };
        let second = self.run(&again, Some(&current), now + time).await;
        if !second.complete() {
            return (first, not_exact);
        }
        let label = if second.inexact {
            StatsSource::Stale
        } else {
            StatsSource::Rescored
        };
        (second, label)
    }
}

/// How one shard was answered.
#[derive(Debug, Serialize)]
pub struct ShardDetail {
    /// The shard.
    pub shard: ShardId,
    /// The replica whose answer was used, if any.
    pub replica: Option<String>,
    /// Requests sent to the shard's replicas (1 unless hedged or retried).
    pub requests: usize,
    /// Whether a hedge was sent.
    pub hedged: bool,
    /// Whether a retry was sent.
    pub retried: bool,
    /// Which attempt's answer was used: `primary`, `hedge` or `retry`.
    pub won: Option<AttemptKind>,
    /// Every attempt, with `debug=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptReport>>,
}

impl ShardDetail {
    fn new(shard: ShardId, attempts: Vec<AttemptReport>, debug: bool) -> Self {
        let winner = attempts.iter().find(|a| a.outcome == AttemptOutcome::Won);
        Self {
            shard,
            replica: winner.map(|a| a.replica.clone()),
            requests: attempts.len(),
            hedged: attempts.iter().any(|a| a.kind == AttemptKind::Hedge),
            retried: attempts.iter().any(|a| a.kind == AttemptKind::Retry),
            won: winner.map(|a| a.kind),
            attempts: debug.then_some(attempts),
        }
    }
}

/// A shard that contributed nothing, and why.
#[derive(Debug, Serialize)]
pub struct ShardFailure {
    /// The shard.
    pub shard: ShardId,
    /// Why it did not answer.
    pub reason: String,
}

/// What the shards' outcomes add up to, before the page is merged.
pub struct Gathered {
    /// Per answering shard, its hits, best first.
    pub partials: Vec<Vec<ShardHit<String>>>,
    /// Matches over the shards that answered.
    pub total_hits: u64,
    /// Shards that did not answer, and why.
    pub failed: Vec<ShardFailure>,
    /// Per shard, how it was answered.
    pub details: Vec<ShardDetail>,
    /// A shard missed the deadline.
    timed_out: bool,
    /// A shard's replicas said they were busy.
    busy: bool,
    /// A replica's connection broke under a query not known to be harmless there.
    lost_connection: bool,
    /// A shard's parser refused the query: the same on every shard, so it is the answer.
    bad_request: Option<String>,
    /// A shard's answer was scored with statistics that do not match its data (see
    /// [`Sums::is_exact`]).
    inexact: bool,
}

impl Gathered {
    fn from_outcomes(
        round: &Round<'_>,
        sums: Option<&Sums>,
        proven: &[bool],
        outcomes: Vec<ShardOutcome>,
    ) -> Self {
        let cluster = round.cluster;
        let mut gathered = Gathered {
            partials: Vec::with_capacity(outcomes.len()),
            total_hits: 0,
            failed: Vec::new(),
            details: Vec::with_capacity(outcomes.len()),
            timed_out: false,
            busy: false,
            lost_connection: false,
            bad_request: None,
            inexact: false,
        };
        for outcome in outcomes {
            let shard = outcome.shard;
            gathered
                .details
                .push(ShardDetail::new(shard, outcome.attempts, round.debug));
            let failure = match outcome.result {
                Ok((replica, mut response)) => {
                    if let Some(run) = round.run {
                        cluster.known_good.record(run, shard);
                    }
                    // Was it scored with statistics that match its data? And what do they
                    // teach the cache (see `stats_cache`)?
                    let generation = response.generation;
                    let shard_stats = response.shard_stats.take();
                    if let Some(sums) = sums {
                        let from = (replica.as_str(), generation);
                        gathered.inexact |= !sums.is_exact(shard, from, shard_stats.as_ref());
                    }
                    match shard_stats {
                        Some(stats) if sums.is_some() && round.is_member(shard, &replica) => {
                            let from = (replica.as_str(), generation);
                            cluster
                                .stats
                                .absorb(round.query, from, shard, &stats, Origin::Search);
                        }
                        _ => cluster.stats.observe(shard, &replica, generation),
                    }
                    gathered.total_hits += response.total_hits;
                    gathered.partials.push(
                        response
                            .hits
                            .into_iter()
                            .map(|h| ShardHit {
                                id: h.id,
                                score: h.score,
                                shard,
                                fields: h.fields_json,
                            })
                            .collect(),
                    );
                    continue;
                }
                Err(ShardError::InvalidArgument(message)) => {
                    gathered.bad_request = Some(message);
                    continue;
                }
                Err(e) => e,
            };
            gathered.timed_out |= failure == ShardError::Timeout;
            gathered.busy |= matches!(failure, ShardError::Busy(_));
            // A query that ran here before did not break the replica (see `quarantine`).
            if matches!(failure, ShardError::ConnectionLost(_)) && !proven[shard as usize] {
                gathered.lost_connection = true;
            }
            gathered.failed.push(ShardFailure {
                shard,
                reason: failure.to_string(),
            });
        }
        gathered
    }

    /// Whether a shard is missing for want of capacity: it missed the deadline, or its
    /// replicas were busy. Not for a stall or a dead replica, which are faults.
    pub fn overloaded(&self) -> bool {
        self.timed_out || self.busy
    }

    /// Whether every shard answered.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.bad_request.is_none()
    }

    /// The answer these outcomes allow: a parser's refusal, an error when too few shards
    /// answered, or what to merge.
    pub fn into_answer(self, total: usize, allow_partial: bool) -> Result<Self, ApiError> {
        if let Some(message) = self.bad_request {
            return Err(ApiError::BadRequest(message));
        }
        if self.failed.len() == total || (!allow_partial && !self.failed.is_empty()) {
            let reasons: Vec<String> = self
                .failed
                .iter()
                .map(|f| format!("shard {}: {}", f.shard, f.reason))
                .collect();
            let message = format!(
                "{} of {total} shards did not answer ({})",
                self.failed.len(),
                reasons.join("; ")
            );
            return Err(if self.timed_out {
                ApiError::GatewayTimeout(message)
            } else {
                ApiError::Unavailable(message)
            });
        }
        Ok(self)
    }
}
