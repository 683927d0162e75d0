//! What a run measured, per scenario: latency percentiles from an HDR histogram, errors by kind,
//! and what the root said it did (partial answers, hedges, retries, extra leaf requests).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::breakdown::{Breakdown, PartsRecorder, Timing};

/// The parts of a `/v1/search` response the harness reads; everything else is skipped.
#[derive(Deserialize)]
struct SearchBody {
    #[serde(default)]
    partial: bool,
    #[serde(default)]
    shards: ShardsBody,
    took_us: Option<u64>,
    /// Only with `debug=true`, as are the attempts.
    stats_us: Option<u64>,
}

#[derive(Default, Deserialize)]
struct ShardsBody {
    #[serde(default)]
    details: Vec<DetailBody>,
}

#[derive(Deserialize)]
struct DetailBody {
    #[serde(default = "one")]
    requests: u64,
    #[serde(default)]
    hedged: bool,
    #[serde(default)]
    retried: bool,
    #[serde(default)]
    attempts: Vec<AttemptBody>,
}

#[derive(Deserialize)]
struct AttemptBody {
    outcome: serde_json::Value,
    elapsed_us: u64,
    leaf_took_us: Option<u64>,
}

fn one() -> u64 {
    1
}

/// Collects one scenario's results.
#[derive(Debug)]
pub struct Recorder {
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    partial: u64,
    hedged: u64,
    retried: u64,
    leaf_requests: u64,
    shard_requests: u64,
    parts: PartsRecorder,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("valid histogram bounds"),
            errors: BTreeMap::new(),
            partial: 0,
            hedged: 0,
            retried: 0,
            leaf_requests: 0,
            shard_requests: 0,
            parts: PartsRecorder::default(),
        }
    }
}

/// What the root reported about one answered search.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answer {
    /// Some shard was missing from the answer.
    pub partial: bool,
    /// Shards that sent a hedge / a retry.
    pub hedged: u64,
    /// A shard request was retried.
    pub retried: u64,
    /// Requests sent to leaves, and shards asked (one request each without hedges or retries).
    pub leaf_requests: u64,
    /// Shards that answered.
    pub shards: u64,
    /// The root's timing of the search along its slowest shard, when it reported one
    /// (`debug=true`).
    pub timing: Option<Timing>,
}

impl Answer {
    /// Reads the `/v1/search` response body's `partial` and `shards.details`, skipping the hits
    /// unbuilt: the load generator shares the cores it measures, so it parses no more than it
    /// needs.
    pub fn from_body(body: &[u8]) -> serde_json::Result<Self> {
        let body: SearchBody = serde_json::from_slice(body)?;
        let details = &body.shards.details;
        // The winning attempt the answer waited longest for.
        let slowest = details
            .iter()
            .flat_map(|d| &d.attempts)
            .filter(|a| a.outcome == "won")
            .max_by_key(|a| a.elapsed_us);
        let timing = match (body.took_us, body.stats_us, slowest) {
            (Some(took_us), Some(stats_us), Some(a)) => a.leaf_took_us.map(|leaf_us| Timing {
                took_us,
                stats_us,
                attempt_us: a.elapsed_us,
                leaf_us,
            }),
            _ => None,
        };
        Ok(Self {
            partial: body.partial,
            hedged: details.iter().filter(|d| d.hedged).count() as u64,
            retried: details.iter().filter(|d| d.retried).count() as u64,
            leaf_requests: details.iter().map(|d| d.requests).sum(),
            shards: details.len() as u64,
            timing,
        })
    }
}

impl Recorder {
    /// Records an answered request and its latency (from its intended send time).
    pub fn answered(&mut self, latency: Duration, answer: &Answer) {
        self.latency_us.saturating_record(micros(latency));
        self.partial += u64::from(answer.partial);
        self.hedged += answer.hedged;
        self.retried += answer.retried;
        self.leaf_requests += answer.leaf_requests;
        self.shard_requests += answer.shards;
        if let Some(timing) = &answer.timing {
            self.parts.record(latency, timing);
        }
    }

    /// Records a failed request by the kind of failure.
    pub fn failed(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    /// The figures of this scenario over a measured period of `elapsed`.
    pub fn report(&self, scenario: &str, elapsed: Duration) -> ScenarioReport {
        let h = &self.latency_us;
        let errors: u64 = self.errors.values().sum();
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        ScenarioReport {
            scenario: scenario.to_string(),
            requests: h.len() + errors,
            answered: h.len(),
            achieved_rate: (h.len() + errors) as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.max(),
            over_50ms: if h.is_empty() {
                0
            } else {
                h.count_between(SLOW_US + 1, h.max().max(SLOW_US + 1))
            },
            errors,
            errors_by_kind: self.errors.clone(),
            partial: self.partial,
            hedged: self.hedged,
            retried: self.retried,
            extra_leaf_requests_pct: if self.shard_requests == 0 {
                0.0
            } else {
                100.0 * (self.leaf_requests - self.shard_requests.min(self.leaf_requests)) as f64
                    / self.shard_requests as f64
            },
            percentile_curve: curve(h),
            breakdown: self.parts.report(),
            cpu_us_per_request: BTreeMap::new(),
        }
    }
}

/// The latency above which an answer counts as slow in reports, in µs.
const SLOW_US: u64 = 50_000;

fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, u128::from(u64::MAX)) as u64
}

/// Latency at a ladder of percentiles, for plots: (percentile, µs).
fn curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    [
        0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
    ]
    .iter()
    .map(|&p| (p, h.value_at_percentile(p)))
    .collect()
}

/// One scenario's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    /// The scenario.
    pub scenario: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered with 200.
    pub answered: u64,
    /// Requests per second actually sent.
    pub achieved_rate: f64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Worst, µs.
    pub max_us: u64,
    /// Answers slower than 50 ms: how many requests met a straggler, whatever the percentiles say.
    pub over_50ms: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Answers that lacked a shard.
    pub partial: u64,
    /// Shard requests that sent a hedge, or a retry.
    pub hedged: u64,
    /// Answers in which some shard request was retried.
    pub retried: u64,
    /// Leaf requests beyond one per shard per search, in percent.
    pub extra_leaf_requests_pct: f64,
    /// (percentile, µs) points of the latency curve.
    pub percentile_curve: Vec<(f64, u64)>,
    /// CPU µs per request, by role (`root`, `leaves`, `load generator`), when the run was told
    /// which processes to watch.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_us_per_request: BTreeMap<String, f64>,
    /// Where the time went, when the root reported its timing (`debug=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
}

/// The reports as a table; every scenario after the first also as ratios to the first.
pub fn table(reports: &[ScenarioReport]) -> String {
    let mut out = rows(reports);
    if let [base, rest @ ..] = reports {
        for r in rest {
            let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
            out += &format!(
                "{} / {}: p50 x{:.2}, p99 x{:.2}, p99.9 x{:.2}\n",
                r.scenario,
                base.scenario,
                ratio(r.p50_us, base.p50_us),
                ratio(r.p99_us, base.p99_us),
                ratio(r.p999_us, base.p999_us),
            );
        }
    }
    out
}

/// The reports as a table, one row each, with the errors of those that had any.
pub fn rows(reports: &[ScenarioReport]) -> String {
    let mut out = format!(
        "{:<28} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7} {:>8}\n",
        "scenario",
        "requests",
        "rate/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        ">50ms",
        "errors",
        "partial",
        "hedged",
        "extra %"
    );
    for r in reports {
        out += &format!(
            "{:<28} {:>8} {:>8.1} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7} {:>7} {:>7} {:>7} {:>8.2}\n",
            r.scenario,
            r.requests,
            r.achieved_rate,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            r.over_50ms,
            r.errors,
            r.partial,
            r.hedged,
            r.extra_leaf_requests_pct
        );
    }
    for r in reports.iter().filter(|r| r.errors > 0) {
        out += &format!("{} errors: {:?}\n", r.scenario, r.errors_by_kind);
    }
    for r in reports.iter().filter(|r| !r.cpu_us_per_request.is_empty()) {
        let total: f64 = r.cpu_us_per_request.values().sum();
        let parts: Vec<String> = r
            .cpu_us_per_request
            .iter()
            .map(|(role, us)| format!("{role} {us:.0}"))
            .collect();
        out += &format!(
            "{} CPU µs per request: {total:.0} ({})\n",
            r.scenario,
            parts.join(", ")
        );
    }
    let breakdowns: Vec<_> = reports
        .iter()
        .filter_map(|r| Some((r.scenario.as_str(), r.breakdown.as_ref()?)))
        .collect();
    out += &crate::breakdown::table(&breakdowns);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_counts_come_from_what_was_recorded() {
        let mut r = Recorder::default();
        let plain = Answer {
            leaf_requests: 2,
            shards: 2,
            ..Answer::default()
        };
        for ms in 1..=1000u64 {
            r.answered(Duration::from_millis(ms), &plain);
        }
        let hedged = Answer {
            hedged: 1,
            leaf_requests: 3,
            shards: 2,
            ..Answer::default()
        };
        r.answered(Duration::from_millis(5), &hedged);
        r.failed("http 503");
        r.failed("http 503");
        let report = r.report("a", Duration::from_secs(1));
        assert_eq!(
            (report.requests, report.answered, report.errors),
            (1003, 1001, 2)
        );
        assert_eq!(report.errors_by_kind["http 503"], 2);
        // HDR histograms keep 3 significant digits.
        assert!(
            (499_000..=501_000).contains(&report.p50_us),
            "{}",
            report.p50_us
        );
        assert!(
            (990_000..=991_000).contains(&report.p99_us),
            "{}",
            report.p99_us
        );
        assert!(
            (999_000..=1_001_000).contains(&report.max_us),
            "{}",
            report.max_us
        );
        assert_eq!(report.hedged, 1);
        // One extra leaf request over 1,001 searches of 2 shards.
        assert!((report.extra_leaf_requests_pct - 100.0 / 2002.0).abs() < 1e-9);
        assert!((report.achieved_rate - 1003.0).abs() < 1e-9);
    }

    #[test]
    fn reads_the_roots_report_of_a_search() {
        let body = serde_json::json!({
            "partial": true,
            "shards": {"details": [
                {"shard": 0, "requests": 2, "hedged": true, "retried": false},
                {"shard": 1, "requests": 1, "hedged": false, "retried": false},
                {"shard": 2, "requests": 3, "hedged": true, "retried": true}
            ]}
        });
        let a = Answer::from_body(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(
            a,
            Answer {
                partial: true,
                hedged: 2,
                retried: 1,
                leaf_requests: 6,
                shards: 3,
                timing: None,
            }
        );
    }

    #[test]
    fn reads_the_timing_of_the_slowest_shard_from_a_debug_report() {
        let body = serde_json::json!({
            "took_us": 1500, "stats_us": 20, "partial": false,
            "shards": {"details": [
                {"requests": 1, "attempts": [
                    {"outcome": "won", "elapsed_us": 900, "leaf_took_us": 400}]},
                {"requests": 2, "hedged": true, "attempts": [
                    {"outcome": "cancelled", "elapsed_us": 1300},
                    {"outcome": "won", "elapsed_us": 1100, "leaf_took_us": 700}]}
            ]}
        });
        let a = Answer::from_body(&serde_json::to_vec(&body).unwrap()).unwrap();
        let timing = Timing {
            took_us: 1500,
            stats_us: 20,
            attempt_us: 1100,
            leaf_us: 700,
        };
        assert_eq!(a.timing, Some(timing));
        // Without debug=true there is no attempt to read, so no timing.
        let plain = serde_json::json!({"took_us": 1500, "shards": {"details": [{"requests": 1}]}});
        let a = Answer::from_body(&serde_json::to_vec(&plain).unwrap()).unwrap();
        assert_eq!(a.timing, None);
    }
}
