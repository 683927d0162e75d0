//! Closed-loop query latency, one query at a time: against a root over HTTP, and against one
//! in-process tantivy index holding the same corpus, so that the cluster's figures come with a
//! baseline measured in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use fanout_indexer::ndjson::{Line, LineReader};
use fanout_leaf::{SchemaConfig, ShardIndex, WriterOptions};
use hdrhistogram::Histogram;

/// Reads queries: JSON lines with a `query` field (the sbg log's format), or plain text lines.
pub fn load_queries(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let queries: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(v) if v["query"].is_string() => v["query"].as_str().unwrap_or_default().to_string(),
            _ => l.trim().to_string(),
        })
        .collect();
    anyhow::ensure!(!queries.is_empty(), "{} holds no queries", path.display());
    Ok(queries)
}

/// Latency figures of one run, in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyReport {
    pub target: String,
    pub queries: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl LatencyReport {
    fn from_histogram(target: &str, h: &Histogram<u64>, errors: u64) -> Self {
        Self {
            target: target.to_string(),
            queries: h.len(),
            errors,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs `count` queries (cycling through `queries`) one after another against a root, after
/// `warmup` unrecorded ones.
pub async fn measure_root(
    url: &str,
    queries: &[String],
    count: usize,
    warmup: usize,
    size: usize,
) -> anyhow::Result<LatencyReport> {
    let client = reqwest::Client::new();
    let endpoint = format!("{url}/v1/search");
    let mut h = histogram();
    let mut errors = 0;
    for (i, q) in queries.iter().cycle().take(warmup + count).enumerate() {
        let started = Instant::now();
        let response = client
            .get(&endpoint)
            .query(&[("q", q.as_str()), ("size", &size.to_string())])
            .send()
            .await;
        let ok = match response {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        let took = started.elapsed();
        if i >= warmup {
            if ok {
                h.saturating_record(micros(took));
            } else {
                errors += 1;
            }
        }
    }
    Ok(LatencyReport::from_histogram(url, &h, errors))
}

/// Builds one in-memory tantivy index (the leaves' schema and code) holding `corpus`.
pub fn build_direct_index(corpus: &Path) -> anyhow::Result<ShardIndex> {
    let index = ShardIndex::in_ram(
        0,
        SchemaConfig::default(),
        &WriterOptions {
            threads: 2,
            memory_bytes: 256 << 20,
        },
    )?;
    let file =
        std::fs::File::open(corpus).with_context(|| format!("cannot open {}", corpus.display()))?;
    let mut reader = LineReader::open(Box::new(file), 10 << 20)?;
    let mut batch = Vec::with_capacity(10_000);
    while let Some((_, line)) = reader.next_line()? {
        if let Line::Text(t) = line {
            batch.push(t);
        }
        if batch.len() == 10_000 {
            index.index_batch(0, 0, &batch)?;
            batch.clear();
        }
    }
    index.index_batch(0, 0, &batch)?;
    index.commit()?;
    Ok(index)
}

/// Runs the same queries, one after another, directly on `index` in this process.
pub fn measure_direct(
    index: &ShardIndex,
    queries: &[String],
    count: usize,
    warmup: usize,
    size: usize,
) -> LatencyReport {
    let mut h = histogram();
    let mut errors = 0;
    for (i, q) in queries.iter().cycle().take(warmup + count).enumerate() {
        let started = Instant::now();
        let ok = index.search(q, 0, size).is_ok();
        let took = started.elapsed();
        if i >= warmup {
            if ok {
                h.saturating_record(micros(took));
            } else {
                errors += 1;
            }
        }
    }
    LatencyReport::from_histogram("direct (one in-process tantivy index)", &h, errors)
}

fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, u128::from(u64::MAX)) as u64
}

/// The reports as a table, with each figure's ratio to the first report.
pub fn table(reports: &[LatencyReport]) -> String {
    let mut out = format!(
        "{:<44} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
        "target", "queries", "errors", "p50 µs", "p90 µs", "p99 µs", "max µs"
    );
    for r in reports {
        out += &format!(
            "{:<44} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
            r.target, r.queries, r.errors, r.p50_us, r.p90_us, r.p99_us, r.max_us
        );
    }
    if let [base, rest @ ..] = reports {
        for r in rest {
            out += &format!(
                "{} / {}: p50 x{:.2}, p90 x{:.2}, p99 x{:.2}\n",
                r.target,
                base.target,
                r.p50_us as f64 / base.p50_us.max(1) as f64,
                r.p90_us as f64 / base.p90_us.max(1) as f64,
                r.p99_us as f64 / base.p99_us.max(1) as f64,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_and_plain_queries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        std::fs::write(
            &path,
            "{\"query\": \"+a +b\", \"tags\": []}\nplain words\n\n",
        )
        .unwrap();
        assert_eq!(load_queries(&path).unwrap(), ["+a +b", "plain words"]);
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let r = LatencyReport::from_histogram("t", &h, 2);
        assert_eq!((r.queries, r.errors), (1000, 2));
        assert_eq!(r.p50_us, 500);
        assert_eq!(r.p99_us, 990);
        assert_eq!(r.max_us, 1000);
    }
}
