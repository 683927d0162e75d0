//! What global statistics cost a query: the same queries, one at a time, against a local
//! cluster in three passes: with per-shard statistics (no statistics at all, the baseline the
//! others are ratios to), each query's first time with global statistics (cold: a statistics
//! round trip to every shard first), and the same queries again (warm: statistics from the
//! root's cache). Then a tenth of the corpus is deleted and the passes show the first query
//! after that commit (scored again with the new statistics, and labelled so) and warm queries
//! on a corpus with deletes. [`live_cost`] measures what counting live documents only costs
//! a leaf, in process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fanout_leaf::collect::Interrupt;
use fanout_leaf::snapshot::Snapshot;

use serde::{Deserialize, Serialize};

use crate::report::{Answer, Recorder, ScenarioReport};

/// One pass: its latency report, and how often the root said it got the statistics each way.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    /// Latency of the pass.
    pub report: ScenarioReport,
    /// How often each statistics source answered.
    pub sources: BTreeMap<String, u64>,
    /// Per query, the page's ids and scores (`None` for a failed request), to tell whether
    /// two passes ranked alike.
    #[serde(skip)]
    pub rankings: Vec<Option<Vec<(String, f32)>>>,
}

/// How alike two passes ranked the queries both answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Agreement {
    /// Queries both answered.
    pub compared: usize,
    /// Pages with the same ids in the same order and the same score bits.
    pub identical: usize,
    /// Pages with the same ids in the same order, scores within 1e-5 relative.
    pub equivalent: usize,
    /// The first queries whose pages differ otherwise.
    pub different: Vec<String>,
}

impl Pass {
    /// How alike this pass and `other`, run with the same `queries`, ranked.
    pub fn agreement(&self, other: &Pass, queries: &[String]) -> Agreement {
        let mut agreement = Agreement::default();
        for ((a, b), query) in self.rankings.iter().zip(&other.rankings).zip(queries) {
            let (Some(a), Some(b)) = (a, b) else { continue };
            agreement.compared += 1;
            let same_ids = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0);
            let close = a
                .iter()
                .zip(b)
                .all(|(x, y)| (x.1 - y.1).abs() <= 1e-5 * x.1.abs().max(y.1.abs()));
            if same_ids && a.iter().zip(b).all(|(x, y)| x.1.to_bits() == y.1.to_bits()) {
                agreement.identical += 1;
            } else if same_ids && close {
                agreement.equivalent += 1;
            } else if agreement.different.len() < 5 {
                agreement.different.push(query.clone());
            }
        }
        agreement
    }
}

/// The fields of a response the latency report does not read.
#[derive(Deserialize)]
struct StatsFields {
    stats: String,
    hits: Vec<HitFields>,
}

#[derive(Deserialize)]
struct HitFields {
    id: String,
    score: f32,
}

/// Runs `queries` once each, in order, with `stats` (`global` or `shard`), one at a time.
pub async fn pass(url: &str, name: &str, queries: &[String], stats: &str) -> anyhow::Result<Pass> {
    let client = reqwest::Client::new();
    let mut recorder = Recorder::default();
    let mut sources = BTreeMap::<String, u64>::new();
    let mut rankings = Vec::with_capacity(queries.len());
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
            rankings.push(None);
            continue;
        }
        recorder.answered(latency, &Answer::from_body(&body)?);
        let fields = serde_json::from_slice::<StatsFields>(&body)?;
        rankings.push(Some(
            fields.hits.into_iter().map(|h| (h.id, h.score)).collect(),
        ));
        *sources.entry(fields.stats).or_default() += 1;
    }
    Ok(Pass {
        report: recorder.report(name, started.elapsed()),
        sources,
        rankings,
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

/// What counting live documents only costs a leaf, measured in process on one index of the
/// whole corpus: the per-segment work when a commit shows new segments, against the time to
/// index the corpus; and the statistics of every query, without deletes and with a tenth of
/// the documents deleted (where each term's postings are walked once per segment, then cached).
#[derive(Clone, Debug, Serialize)]
pub struct LiveCost {
    /// Documents indexed.
    pub docs: u64,
    /// Indexing them and committing, in ms.
    pub index_ms: f64,
    /// The live statistics of every segment from scratch (median of 5), in ms, without deletes.
    pub snapshot_ms: f64,
    /// The same with a tenth of the documents deleted.
    pub snapshot_deleted_ms: f64,
    /// Statistics of every query, in µs per query: no deletes (cold, warm), then a tenth
    /// deleted (cold: the first time after the commit, walking postings; warm: cached).
    pub stats_us: [f64; 4],
}

/// Measures [`LiveCost`] on `corpus` with `queries`.
pub fn live_cost(corpus: &[PathBuf], queries: &[String]) -> anyhow::Result<LiveCost> {
    let started = Instant::now();
    let index = crate::direct::build_direct_index(corpus)?;
    let index_ms = ms(started.elapsed());
    let docs = index.num_docs();
    let snapshot_ms = median_snapshot_ms(&index)?;
    let per_query = |index: &fanout_leaf::ShardIndex| {
        let started = Instant::now();
        for q in queries {
            // Refused queries cost their parse only; they are in both runs alike.
            let _ = index.stats(q);
        }
        started.elapsed().as_secs_f64() * 1e6 / queries.len().max(1) as f64
    };
    let (cold, warm) = (per_query(&index), per_query(&index));
    let mut ids = Vec::new();
    let mut n = 0u64;
    crate::direct::for_each_document(corpus, |line| {
        n += 1;
        if n.is_multiple_of(10) {
            let doc: serde_json::Value = serde_json::from_str(&line)?;
            ids.push(doc["id"].as_str().unwrap_or_default().to_string());
        }
        Ok(())
    })?;
    index.delete_batch(0, 0, &ids)?;
    index.commit()?;
    let (deleted_cold, deleted_warm) = (per_query(&index), per_query(&index));
    // Searches still run on it: a tenth deleted, as a check that the index is what it says.
    let found = index.search("*", 0, 0, None, &Interrupt::never())?;
    anyhow::ensure!(
        found.total_hits + ids.len() as u64 >= docs,
        "deletes lost documents"
    );
    Ok(LiveCost {
        docs,
        index_ms,
        snapshot_ms,
        snapshot_deleted_ms: median_snapshot_ms(&index)?,
        stats_us: [cold, warm, deleted_cold, deleted_warm],
    })
}

/// Median of 5: the live statistics of every segment of `index` computed from scratch.
fn median_snapshot_ms(index: &fanout_leaf::ShardIndex) -> anyhow::Result<f64> {
    let tantivy = index.tantivy_index();
    let searcher = tantivy.reader()?.searcher();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        Snapshot::new(0, searcher.clone(), &tantivy.schema(), None)?;
        runs.push(ms(started.elapsed()));
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl std::fmt::Display for LiveCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "live statistics, in process, {} documents: indexing and commit {:.0} ms; every segment's live statistics from scratch {:.1} ms ({:.2}% of indexing), {:.1} ms with a tenth deleted",
            self.docs,
            self.index_ms,
            self.snapshot_ms,
            100.0 * self.snapshot_ms / self.index_ms,
            self.snapshot_deleted_ms
        )?;
        let [cold, warm, deleted_cold, deleted_warm] = self.stats_us;
        writeln!(
            f,
            "statistics per query: no deletes {cold:.1} µs cold, {warm:.1} µs warm; a tenth deleted {deleted_cold:.1} µs cold (postings walked), {deleted_warm:.1} µs warm (cached)"
        )
    }
}
