//! What global statistics cost a query: the same queries, one at a time, against a local
//! cluster in three passes: with per-shard statistics (no statistics at all, the baseline the
//! others are ratios to), each query's first time with global statistics (cold: a statistics
//! round trip to every shard first), and the same queries again (warm: statistics from the
//! root's cache).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::report::{Answer, Recorder, ScenarioReport};

/// One pass: its latency report, and how often the root said it got the statistics each way.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    /// Latency of the pass.
    pub report: ScenarioReport,
    /// How often each statistics source answered.
    pub sources: BTreeMap<String, u64>,
}

/// The one field of a response the latency report does not read.
#[derive(Deserialize)]
struct StatsField {
    stats: String,
}

/// Runs `queries` once each, in order, with `stats` (`global` or `shard`), one at a time.
pub async fn pass(url: &str, name: &str, queries: &[String], stats: &str) -> anyhow::Result<Pass> {
    let client = reqwest::Client::new();
    let mut recorder = Recorder::default();
    let mut sources = BTreeMap::<String, u64>::new();
    let started = Instant::now();
    for q in queries {
        let sent = Instant::now();
        let response = client
            .get(format!("{url}/v1/search"))
            .query(&[("q", q.as_str()), ("stats", stats)])
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let latency = sent.elapsed();
        if !status.is_success() {
            recorder.failed(format!("HTTP {}", status.as_u16()));
            continue;
        }
        recorder.answered(latency, &Answer::from_body(&body)?);
        let source = serde_json::from_slice::<StatsField>(&body)?.stats;
        *sources.entry(source).or_default() += 1;
    }
    Ok(Pass {
        report: recorder.report(name, started.elapsed()),
        sources,
    })
}

/// The passes as the harness's table (ratios to the first pass), and what each answer said
/// about its statistics.
pub fn table(passes: &[Pass]) -> String {
    let reports: Vec<ScenarioReport> = passes.iter().map(|p| p.report.clone()).collect();
    let mut out = crate::report::table(&reports);
    for p in passes {
        let sources: Vec<String> = p.sources.iter().map(|(s, n)| format!("{s} {n}")).collect();
        out += &format!("{} statistics: {}\n", p.report.scenario, sources.join(", "));
    }
    out
}
