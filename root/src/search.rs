//! One search from request to response: validate, scatter, merge, report.

use std::time::Duration;

use fanout_proto::{pb, ShardId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::client::ShardError;
use crate::cluster::Cluster;
use crate::config::RootConfig;
use crate::config::StatsMode;
use crate::cursor;
use crate::error::ApiError;
use crate::gather::{Round, ShardDetail, ShardFailure};
use crate::merge::{merge_top_k, ShardHit};
use crate::quarantine;
use crate::stats::{cluster_stats, StatsSource};
use crate::stats_cache::Sums;

/// A search as the HTTP API takes it, from the query string or a JSON body.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Tantivy query syntax: `+must -not "a phrase" field:term`.
    pub q: Option<String>,
    /// Hits per page; default 10.
    pub size: Option<usize>,
    /// Hits to skip; default 0.
    pub from: Option<usize>,
    /// Milliseconds to wait for shards; default and maximum come from the root's configuration.
    pub timeout_ms: Option<u64>,
    /// `false` turns hedging off for this request (for A/B measurement). Default true.
    pub hedge: Option<bool>,
    /// `false` makes a missing shard an error (504 at the deadline, 503 if it was unreachable)
    /// instead of a partial answer. Default true.
    pub allow_partial: Option<bool>,
    /// `true` reports every attempt sent to every shard. Default false.
    pub debug: Option<bool>,
    /// `global` scores with the cluster's statistics (as one index would), `shard` with each
    /// shard's own. Default: the root's `--stats`.
    pub stats: Option<StatsMode>,
    /// The `next` of the previous page: this page starts right after its last hit, with no
    /// limit on how deep. `from` must then be 0.
    pub search_after: Option<String>,
}

/// A validated search.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPlan {
    /// The query text.
    pub query: String,
    /// Hits on the page.
    pub size: usize,
    /// Hits skipped before it.
    pub from: usize,
    /// The deadline, from arrival.
    pub timeout: Duration,
    /// When the search arrived (was validated): time spent waiting for admission counts
    /// against its deadline.
    pub arrived: Instant,
    /// Whether shard requests may be hedged.
    pub hedge: bool,
    /// Whether a missing shard is a partial answer, not an error.
    pub allow_partial: bool,
    /// Whether to report every attempt.
    pub debug: bool,
    /// The statistics to score with.
    pub stats: StatsMode,
    /// Where the page starts, for `search_after`.
    pub after: Option<pb::SearchAfter>,
}

impl SearchPlan {
    /// When the answer is due.
    pub fn deadline(&self) -> Instant {
        self.arrived + self.timeout
    }
}

impl SearchParams {
    /// Checks the parameters against the configured limits, with a message that names the limit.
    pub fn validate(self, config: &RootConfig) -> Result<SearchPlan, ApiError> {
        let arrived = Instant::now();
        let query = self.q.unwrap_or_default();
        if query.trim().is_empty() {
            return Err(ApiError::BadRequest(
                "parameter q is required: a query such as `dog` or `+title:dog -cat` (`*` matches everything)".into(),
            ));
        }
        let size = self.size.unwrap_or(10);
        if size > config.max_size {
            return Err(ApiError::BadRequest(format!(
                "size must be at most {}, got {size}",
                config.max_size
            )));
        }
        let from = self.from.unwrap_or(0);
        let after = self
            .search_after
            .as_deref()
            .map(cursor::decode)
            .transpose()
            .map_err(ApiError::BadRequest)?;
        if after.is_some() && from > 0 {
            return Err(ApiError::BadRequest(format!(
                "from must be 0 with search_after (the cursor says where the page starts), got {from}"
            )));
        }
        if from.saturating_add(size) > config.max_window {
            return Err(ApiError::BadRequest(format!(
                "from + size must be at most {}, got {}",
                config.max_window,
                from.saturating_add(size)
            )));
        }
        let timeout = match self.timeout_ms {
            None => config.default_timeout,
            Some(0) => return Err(ApiError::BadRequest("timeout_ms must be at least 1".into())),
            Some(ms) if Duration::from_millis(ms) > config.max_timeout => {
                return Err(ApiError::BadRequest(format!(
                    "timeout_ms must be at most {}, got {ms}",
                    config.max_timeout.as_millis()
                )))
            }
            Some(ms) => Duration::from_millis(ms),
        };
        // Parsed here, once, before anything is sent, and after the cheap checks: a query no
        // leaf could (or should) run is refused without a fan-out. Leaves check it again for
        // callers other than roots.
        fanout_proto::query::parse(&query, &config.query).map_err(|e| {
            if e.is_callers() {
                ApiError::BadRequest(e.to_string())
            } else {
                ApiError::Unavailable(e.to_string())
            }
        })?;
        Ok(SearchPlan {
            query,
            size,
            from,
            timeout,
            arrived,
            hedge: self.hedge.unwrap_or(true),
            allow_partial: self.allow_partial.unwrap_or(true),
            debug: self.debug.unwrap_or(false),
            stats: self.stats.unwrap_or(config.stats),
            after,
        })
    }
}

/// The response body of `/v1/search`.
#[derive(Debug, Serialize)]
pub struct SearchResult {
    /// Time from arrival to answer, in ms.
    pub took_ms: u64,
    /// The same in microseconds: from the request's validation to its hits merged.
    pub took_us: u64,
    /// With `debug=true`: of `took_us`, the time before the scatter, which is getting the
    /// cluster's statistics (a round trip when `stats` is `fetched`, next to nothing otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_us: Option<u64>,
    /// Matches over the shards that answered.
    pub total_hits: u64,
    /// True when a shard did not answer, so hits and totals may be missing some documents.
    pub partial: bool,
    /// The page, best first.
    pub hits: Vec<HitOut>,
    /// The cursor of the page's last hit: pass it as `search_after` for the next page. Absent
    /// when the page is empty, which ends the ranking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Which shards answered, and how.
    pub shards: ShardsSummary,
    /// Whether a shard is missing for want of capacity (see [`crate::gather::Gathered::overloaded`]):
    /// a signal for admission control, not part of the response.
    #[serde(skip)]
    pub overloaded: bool,
    /// Which statistics the scores come from: `cached` or `fetched` (the cluster's; fetched
    /// cost a round trip), `partial` (the cluster's minus a shard that could not be asked),
    /// `shard` (each shard's own), `rescored` (the cluster's, after a shard's answer showed the
    /// root's were not its data's and the query ran again with new ones), or `stale` (the
    /// cluster's, but an answer's statistics did not match its shard's data and it could not
    /// run again; see [`StatsSource::Stale`]).
    pub stats: StatsSource,
}

/// One hit of the response.
#[derive(Debug, Serialize)]
pub struct HitOut {
    /// The document's id.
    pub id: String,
    /// Its score.
    pub score: f32,
    /// The shard that holds it.
    pub shard: ShardId,
    /// The stored fields, exactly as the leaf sent them.
    pub fields: Box<RawValue>,
}

/// Which shards answered, and how.
#[derive(Debug, Serialize)]
pub struct ShardsSummary {
    /// Shards in the cluster.
    pub total: usize,
    /// Shards that answered.
    pub successful: usize,
    /// Shards that did not, and why.
    pub failed: Vec<ShardFailure>,
    /// Per shard: which replica answered, and whether a hedge or retry was sent.
    pub details: Vec<ShardDetail>,
}

/// Runs a validated search over the cluster: refuse a quarantined query, learn the
/// statistics to score with, scatter, gather what came back, merge the page.
pub async fn search(
    cluster: &Cluster,
    config: &RootConfig,
    plan: &SearchPlan,
) -> Result<SearchResult, ApiError> {
    let started = plan.arrived;
    let deadline = plan.deadline();
    let fingerprint = quarantine::fingerprint(&plan.query);
    if let Err(left) = cluster.quarantine.check(fingerprint) {
        return Err(ApiError::Quarantined {
            retry_after_s: left.as_secs().max(1),
        });
    }
    // Each shard returns its own top from+size; the page is cut after merging.
    let window = plan.from + plan.size;
    // Where a broken connection under this query may be retried (see `quarantine`): where the
    // same query, for as many hits, ran before. A cursor page reads other documents each time,
    // so nothing proves it: it is neither looked up nor recorded.
    let run = plan
        .after
        .is_none()
        .then(|| quarantine::Run::new(fingerprint, window));
    let round = Round {
        cluster,
        config,
        query: &plan.query,
        hedge: plan.hedge,
        debug: plan.debug,
        run,
        deadline,
    };
    let (sums, stats_source) =
        scoring_stats(cluster, plan, deadline, &round.proven(), fingerprint).await?;
    let stats_us = plan.debug.then(|| started.elapsed().as_micros() as u64);
    let request = pb::SearchRequest {
        query: plan.query.clone(),
        size: window as u32,
        from: 0,
        // What is left of the deadline after the statistics round trip.
        timeout_ms: deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, u128::from(u32::MAX)) as u32,
        global_stats: sums.as_ref().map(|s| s.stats.clone()),
        search_after: plan.after.clone(),
        stats_generation: None,
    };
    let scattered = Instant::now();
    let gathered = round.run(&request, sums.as_ref(), deadline).await;
    let (gathered, stats_source) = match stats_source {
        StatsSource::Shard => (gathered, StatsSource::Shard),
        source => {
            cluster.rescore_budget.deposit();
            round.freshen(&request, gathered, source, scattered).await
        }
    };
    let answered = gathered.into_answer(cluster.shards().len(), plan.allow_partial)?;
    let overloaded = answered.overloaded();
    if !answered.failed.is_empty() {
        cluster.partial_responses.increment(1);
    }
    let took = started.elapsed();
    cluster.search_seconds.record(took.as_secs_f64());
    let total = cluster.shards().len();
    let hits = page(merge_top_k(answered.partials, plan.from, plan.size))?;
    Ok(SearchResult {
        took_ms: took.as_millis() as u64,
        took_us: took.as_micros() as u64,
        stats_us,
        total_hits: answered.total_hits,
        partial: !answered.failed.is_empty(),
        next: hits.last().map(|h| cursor::encode(h.score, &h.id)),
        hits,
        shards: ShardsSummary {
            total,
            successful: total - answered.failed.len(),
            failed: answered.failed,
            details: answered.details,
        },
        stats: stats_source,
        overloaded,
    })
}

/// The statistics to score with: none for per-shard scoring, else the cluster's, from the
/// cache or one round trip. A connection that broke under the round trip quarantines the
/// query, as one broken under the search would.
async fn scoring_stats(
    cluster: &Cluster,
    plan: &SearchPlan,
    deadline: Instant,
    proven: &[bool],
    fingerprint: u64,
) -> Result<(Option<Sums>, StatsSource), ApiError> {
    match plan.stats {
        StatsMode::Shard => Ok((None, StatsSource::Shard)),
        StatsMode::Global => cluster_stats(cluster, &plan.query, deadline, proven)
            .await
            .map_err(|e| match e {
                ShardError::InvalidArgument(message) => ApiError::BadRequest(message),
                lost @ ShardError::ConnectionLost(_) => {
                    cluster.quarantine.add(fingerprint);
                    ApiError::Unavailable(format!("statistics: {lost}"))
                }
                other => ApiError::Unavailable(other.to_string()),
            }),
    }
}

/// The page's hits as the API gives them, stored fields passed on verbatim. Scatter refused
/// any answer whose fields are not JSON ([`crate::client::check_answer`]), so a failure here is
/// a bug, reported rather than papered over.
fn page(hits: Vec<ShardHit<String>>) -> Result<Vec<HitOut>, ApiError> {
    hits.into_iter()
        .map(|h| {
            let fields = RawValue::from_string(h.fields).map_err(|e| {
                ApiError::Unavailable(format!(
                    "shard {}: the stored fields of {:?} are not JSON: {e}",
                    h.shard, h.id
                ))
            })?;
            Ok(HitOut {
                id: h.id,
                score: h.score,
                shard: h.shard,
                fields,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> SearchParams {
        SearchParams {
            q: Some(q.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_apply_and_limits_are_named() {
        let config = RootConfig::default();
        let plan = params("dog").validate(&config).unwrap();
        assert_eq!(
            (plan.size, plan.from, plan.timeout),
            (10, 0, config.default_timeout)
        );

        let err = SearchParams {
            size: Some(1001),
            ..params("dog")
        }
        .validate(&config)
        .unwrap_err();
        assert_eq!(err.to_string(), "size must be at most 1000, got 1001");
        let err = SearchParams {
            from: Some(9_995),
            ..params("dog")
        }
        .validate(&config)
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "from + size must be at most 10000, got 10005"
        );
        let err = SearchParams {
            timeout_ms: Some(60_000),
            ..params("dog")
        }
        .validate(&config)
        .unwrap_err();
        assert!(err.to_string().contains("at most 30000"), "{err}");
        let err = params("  ").validate(&config).unwrap_err();
        assert!(err.to_string().contains("q is required"), "{err}");
    }
}
