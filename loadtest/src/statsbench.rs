//! What global statistics cost a query: the same queries, one at a time, against a local
//! cluster in three passes: each query's first time (cold: a statistics round trip to every
//! shard first), the same queries again (warm: statistics from the root's cache), and with
//! per-shard statistics (no statistics at all), as the baseline the other two are ratios to.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

/// One pass's latencies.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    pub name: String,
    pub queries: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    /// How the root said each answer's statistics were obtained, and how often.
    pub sources: Vec<(String, u64)>,
}

/// Runs `queries` once each, in order, with `stats` (`global` or `shard`), one at a time.
pub async fn pass(url: &str, name: &str, queries: &[String], stats: &str) -> anyhow::Result<Pass> {
    let client = reqwest::Client::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut sources = std::collections::BTreeMap::<String, u64>::new();
    for q in queries {
        let started = Instant::now();
        let response = client
            .get(format!("{url}/v1/search"))
            .query(&[("q", q.as_str()), ("stats", stats)])
            .send()
            .await?;
        let ok = response.status().is_success();
        let body = response.bytes().await?;
        let took = started.elapsed();
        if !ok {
            // An unparsable query is refused the same way in every pass.
            continue;
        }
        latency.saturating_record(took.max(Duration::from_micros(1)).as_micros() as u64);
        let source = serde_json::from_slice::<Value>(&body)?["stats"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        *sources.entry(source).or_default() += 1;
    }
    Ok(Pass {
        name: name.to_string(),
        queries: latency.len(),
        p50_us: latency.value_at_quantile(0.5),
        p90_us: latency.value_at_quantile(0.9),
        p99_us: latency.value_at_quantile(0.99),
        sources: sources.into_iter().collect(),
    })
}

/// The three passes as a table, with p50 and p99 as ratios to the per-shard pass.
pub fn table(passes: &[Pass]) -> String {
    let base = passes.iter().find(|p| p.name == "per-shard");
    let ratio = |v: u64, b: Option<u64>| {
        b.map_or(String::new(), |b| {
            format!("{:.2}x", v as f64 / b.max(1) as f64)
        })
    };
    let mut out = format!(
        "{:<22} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9}  statistics\n",
        "pass", "queries", "p50 µs", "p90 µs", "p99 µs", "p50 ratio", "p99 ratio"
    );
    for p in passes {
        let sources: Vec<String> = p.sources.iter().map(|(s, n)| format!("{s} {n}")).collect();
        out += &format!(
            "{:<22} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9}  {}\n",
            p.name,
            p.queries,
            p.p50_us,
            p.p90_us,
            p.p99_us,
            ratio(p.p50_us, base.map(|b| b.p50_us)),
            ratio(p.p99_us, base.map(|b| b.p99_us)),
            sources.join(", ")
        );
    }
    out
}
