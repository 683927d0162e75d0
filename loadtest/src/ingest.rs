//! The indexing benchmark: a corpus through the indexer into a local cluster of leaf processes,
//! against tantivy alone indexing the same documents into one index in this process, in turns
//! on the same machine, so that the cluster's throughput is a ratio to a baseline measured in
//! the same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fanout_leaf::SchemaConfig;
use serde::Serialize;
use tantivy::{Index, TantivyDocument};

use crate::cluster::{ClusterSpec, LocalCluster};
use crate::cpu::cpu_seconds;
use crate::direct::for_each_document;

/// One timed import.
#[derive(Clone, Debug, Serialize)]
pub struct IngestRun {
    /// `cluster` or `direct`.
    pub target: String,
    /// Documents indexed.
    pub docs: u64,
    /// Wall-clock time.
    pub seconds: f64,
    /// Documents per second.
    pub docs_per_sec: f64,
    /// Input megabytes per second.
    pub mb_per_sec: f64,
    /// CPU seconds (user + system) of this process (the indexer, or tantivy alone) and of the
    /// leaf processes, over the run.
    pub cpu_self: f64,
    /// CPU seconds the leaves spent.
    pub cpu_leaves: f64,
}

/// The size of the corpus `files` as stored (compressed, if they are).
fn stored_bytes(files: &[PathBuf]) -> std::io::Result<u64> {
    files.iter().map(|f| Ok(std::fs::metadata(f)?.len())).sum()
}

/// Imports the corpus `files` into a fresh local cluster of `spec`'s shape with the indexer's
/// code, and times it from the first byte read to the last replica's commit.
pub async fn cluster_run(spec: &ClusterSpec, files: &[PathBuf]) -> anyhow::Result<IngestRun> {
    let cluster = LocalCluster::start_leaves(spec).await?;
    let bytes = stored_bytes(files)?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let summary = cluster.index_corpus(files).await?;
    let elapsed = started.elapsed();
    let cpu_self = cpu_seconds().0 - cpu_before.0;
    // Children count once reaped; the leaves' start-up and shutdown are in it too, which
    // are small next to an import.
    cluster.stop().await;
    let cpu_leaves = cpu_seconds().1 - cpu_before.1;
    let mut run = run(
        format!("cluster {}x{}", spec.shards, spec.replicas),
        summary.docs_indexed,
        bytes,
        elapsed,
    );
    (run.cpu_self, run.cpu_leaves) = (cpu_self, cpu_leaves);
    Ok(run)
}

/// Indexes the corpus `files` with tantivy alone into a fresh on-disk index in `dir`, with the
/// leaves' schema and `threads` indexing threads, and times it from the first byte read to the
/// commit.
pub fn direct_run(dir: &Path, files: &[PathBuf], threads: usize) -> anyhow::Result<IngestRun> {
    let schema = SchemaConfig::default().build();
    let bytes = stored_bytes(files)?;
    let cpu_before = cpu_seconds().0;
    let started = Instant::now();
    let index = Index::create_in_dir(dir, schema.clone())?;
    let mut writer = index.writer_with_num_threads(threads, threads * (64 << 20))?;
    let mut docs = 0;
    for_each_document(files, |text| {
        // Documents the schema refuses are skipped here as the leaves reject them.
        if let Ok(doc) = TantivyDocument::parse_json(&schema, &text) {
            writer.add_document(doc)?;
            docs += 1;
        }
        Ok(())
    })?;
    writer.commit()?;
    writer.wait_merging_threads()?;
    let mut run = run(
        format!("tantivy alone, {threads} threads"),
        docs,
        bytes,
        started.elapsed(),
    );
    run.cpu_self = cpu_seconds().0 - cpu_before;
    Ok(run)
}

fn run(target: String, docs: u64, bytes: u64, elapsed: Duration) -> IngestRun {
    let secs = elapsed.as_secs_f64();
    IngestRun {
        target,
        docs,
        seconds: secs,
        docs_per_sec: docs as f64 / secs,
        mb_per_sec: bytes as f64 / 1e6 / secs,
        cpu_self: 0.0,
        cpu_leaves: 0.0,
    }
}

/// The median docs/s of the runs whose target starts with `prefix`.
pub fn median_rate(runs: &[IngestRun], prefix: &str) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.target.starts_with(prefix))
            .map(|r| r.docs_per_sec)
            .collect(),
    )
}

/// The middle value, or the mean of the two middle ones.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// Each cluster run against the direct run right after it, as [`compare`] alternates them:
/// cluster docs/s over direct docs/s, and direct CPU over the cluster's (indexer and leaves).
/// The two runs of a pair share the machine's state of the moment; on a shared machine that
/// state changes more from one minute to the next than the two systems differ, so the median
/// of the pairs is steadier than the ratio of the two medians.
pub fn pair_ratios(runs: &[IngestRun]) -> Vec<PairRatio> {
    runs.windows(2)
        .filter(|w| w[0].target.starts_with("cluster") && w[1].target.starts_with("tantivy"))
        .map(|w| PairRatio {
            rate: w[0].docs_per_sec / w[1].docs_per_sec.max(f64::MIN_POSITIVE),
            cpu: w[1].cpu_self / (w[0].cpu_self + w[0].cpu_leaves).max(f64::MIN_POSITIVE),
        })
        .collect()
}

/// One cluster run against the direct run after it; see [`pair_ratios`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PairRatio {
    /// Cluster docs/s over direct docs/s.
    pub rate: f64,
    /// Direct CPU seconds over the cluster's.
    pub cpu: f64,
}

/// What a comparison found.
#[derive(Clone, Debug, Serialize)]
pub struct Findings {
    /// Median documents per second of the cluster's runs.
    pub median_cluster_docs_per_sec: f64,
    /// Median documents per second of tantivy alone.
    pub median_direct_docs_per_sec: f64,
    /// The ratio of the two medians.
    pub ratio: f64,
    /// Each run of one against the run of the other next to it.
    pub pairs: Vec<PairRatio>,
    /// Median of the pairs' throughput ratios.
    pub median_pair_ratio: f64,
    /// Median of the pairs' CPU ratios.
    pub median_pair_cpu_ratio: f64,
}

impl Findings {
    /// The medians and pairs of runs made by [`compare`].
    pub fn of(runs: &[IngestRun]) -> Self {
        let cluster = median_rate(runs, "cluster").unwrap_or(0.0);
        let direct = median_rate(runs, "tantivy").unwrap_or(0.0);
        let pairs = pair_ratios(runs);
        let median_of =
            |of: fn(&PairRatio) -> f64| median(pairs.iter().map(of).collect()).unwrap_or(0.0);
        Self {
            median_cluster_docs_per_sec: cluster,
            median_direct_docs_per_sec: direct,
            ratio: cluster / direct.max(f64::MIN_POSITIVE),
            median_pair_ratio: median_of(|p| p.rate),
            median_pair_cpu_ratio: median_of(|p| p.cpu),
            pairs,
        }
    }

    /// The closing lines of the report; `cluster` names the cluster's shape.
    pub fn report(&self, cluster: &str, threads: usize) -> String {
        let percents = |of: fn(&PairRatio) -> f64| {
            let list: Vec<String> = self
                .pairs
                .iter()
                .map(|p| format!("{:.1}", 100.0 * of(p)))
                .collect();
            list.join(", ")
        };
        format!(
            "median: {cluster} {:.0} docs/s, tantivy alone ({threads} threads) {:.0} docs/s: {:.1}% of tantivy alone\n\
             each cluster run against the direct run after it: {}%; median {:.1}%\n\
             the same by CPU seconds (direct over indexer + leaves): {}%; median {:.1}%",
            self.median_cluster_docs_per_sec,
            self.median_direct_docs_per_sec,
            100.0 * self.ratio,
            percents(|p| p.rate),
            100.0 * self.median_pair_ratio,
            percents(|p| p.cpu),
            100.0 * self.median_pair_cpu_ratio,
        )
    }
}

/// Runs the cluster and direct imports in turns, `runs` times each, in fresh directories under
/// `scratch`.
pub async fn compare(
    spec: &ClusterSpec,
    files: &[PathBuf],
    runs: usize,
    threads: usize,
    scratch: &Path,
) -> anyhow::Result<Vec<IngestRun>> {
    let mut results = Vec::new();
    for i in 0..runs {
        let mut spec = spec.clone();
        spec.data_dir = scratch.join(format!("cluster-{i}"));
        let cluster = cluster_run(&spec, files).await?;
        eprintln!("{}", line(&cluster));
        results.push(cluster);
        let dir: PathBuf = scratch.join(format!("direct-{i}"));
        std::fs::create_dir_all(&dir)?;
        let files = files.to_vec();
        let direct =
            tokio::task::spawn_blocking(move || direct_run(&dir, &files, threads)).await??;
        eprintln!("{}", line(&direct));
        results.push(direct);
    }
    Ok(results)
}

/// One run as a line of the report.
pub fn line(r: &IngestRun) -> String {
    format!(
        "{:<26} {:>8} docs in {:>6.2} s: {:>8.0} docs/s, {:>6.1} MB/s; CPU s: {:.1} here, {:.1} leaves",
        r.target, r.docs, r.seconds, r.docs_per_sec, r.mb_per_sec, r.cpu_self, r.cpu_leaves
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_by_target() {
        let r = |target: &str, rate: f64| IngestRun {
            target: target.into(),
            docs: 1,
            seconds: 1.0,
            docs_per_sec: rate,
            mb_per_sec: 0.0,
            cpu_self: 0.0,
            cpu_leaves: 0.0,
        };
        let runs = [
            r("cluster 2x2", 30.0),
            r("tantivy alone", 100.0),
            r("cluster 2x2", 10.0),
            r("cluster 2x2", 20.0),
            r("tantivy alone", 50.0),
        ];
        assert_eq!(median_rate(&runs, "cluster"), Some(20.0));
        assert_eq!(median_rate(&runs, "tantivy"), Some(75.0));
        assert_eq!(median_rate(&runs, "nothing"), None);
    }

    #[test]
    fn pairs_each_cluster_run_with_the_direct_run_after_it() {
        let r = |target: &str, rate: f64, cpu_self: f64, cpu_leaves: f64| IngestRun {
            target: target.into(),
            docs: 1,
            seconds: 1.0,
            docs_per_sec: rate,
            mb_per_sec: 0.0,
            cpu_self,
            cpu_leaves,
        };
        let runs = [
            r("cluster 2x2", 40.0, 1.0, 19.0),
            r("tantivy alone", 100.0, 8.0, 0.0),
            r("cluster 2x2", 30.0, 1.0, 9.0),
            r("tantivy alone", 50.0, 5.0, 0.0),
        ];
        let pairs = pair_ratios(&runs);
        assert_eq!(
            pairs,
            vec![
                PairRatio {
                    rate: 0.4,
                    cpu: 0.4
                },
                PairRatio {
                    rate: 0.6,
                    cpu: 0.5
                },
            ]
        );
        let findings = Findings::of(&runs);
        assert_eq!(findings.median_pair_ratio, 0.5);
        assert_eq!(findings.median_pair_cpu_ratio, 0.45);
        assert_eq!(findings.ratio, 35.0 / 75.0);
        assert!(findings
            .report("cluster 2x2", 2)
            .contains("after it: 40.0, 60.0%; median 50.0%"));
        // A direct run before its cluster run pairs with nothing.
        assert!(pair_ratios(&runs[1..3]).is_empty());
    }

    #[test]
    fn tantivy_alone_indexes_what_the_schema_takes() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("c.ndjson");
        std::fs::write(
            &corpus,
            "{\"id\": \"a\", \"title\": \"x\"}\n{\"id\": \"b\", \"date\": \"never\"}\n\n{\"id\": \"c\"}\n",
        )
        .unwrap();
        let index_dir = dir.path().join("index");
        std::fs::create_dir_all(&index_dir).unwrap();
        let run = direct_run(&index_dir, &[corpus], 1).unwrap();
        assert_eq!(run.docs, 2);
        let index = Index::open_in_dir(&index_dir).unwrap();
        assert_eq!(index.reader().unwrap().searcher().num_docs(), 2);
    }
}
