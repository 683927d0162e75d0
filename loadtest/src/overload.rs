//! `fanout-loadtest overload`: how a cluster holds the line past its capacity, and under long
//! stalls.
//!
//! On a local cluster of real processes: find the capacity C (closed loop, 16 clients: the
//! completed searches per second), then offer 0.5C, 1.5C and 2C open loop (Poisson) for a step
//! each, every search with the same deadline. Per step: goodput (complete answers within the
//! deadline per second), refusals (503 from admission control) and their latency, the latency
//! of answers, the worst overshoot of the deadline, ejections, the most memory the root and a
//! leaf held, and, after an overload step, how long until the p99 of a 0.5C load is back to
//! normal. Then two faults at 0.5C: one replica paused (SIGSTOP) for a long stall, and both
//! replicas of a shard paused. Latency counts from each search's intended send time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use hdrhistogram::Histogram;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

use crate::cluster::{sibling_binary, ClusterSpec, LocalCluster};
use crate::direct::{corpus_name, corpus_or_demo, load_queries};
use crate::load::pace;
use crate::schedule::{send_offsets, Arrivals};
use fanout_proto::args::parse_duration;

/// `overload`: capacity, then overload steps and stalls, on a local cluster.
#[derive(Debug, Clone, Args)]
pub struct OverloadArgs {
    /// NDJSON corpus files (plain or gzip), read one after another. Default: the demo corpus.
    #[arg(long, value_delimiter = ',')]
    pub corpus: Vec<PathBuf>,
    /// Queries: JSON lines with a `query` field, or plain text lines.
    #[arg(long)]
    pub queries: PathBuf,
    /// Shuffle the queries with this seed.
    #[arg(long, default_value_t = 1)]
    pub shuffle_seed: u64,
    /// Length of each load step.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub step: Duration,
    /// Skip the capacity search and use this many searches per second as C.
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Every search's deadline (`timeout_ms`).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub deadline: Duration,
    /// How long the single replica is paused in the long-stall run.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub stall: Duration,
    /// A flag for the spawned root; repeatable.
    #[arg(long, allow_hyphen_values = true)]
    pub root_arg: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How one search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Complete,
    Partial,
    Refused,
    Failed,
}

/// What one step measured.
#[derive(Debug, Serialize)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// Searches per second offered.
    pub offered: f64,
    /// Searches sent.
    pub sent: u64,
    /// Complete answers within the deadline, per second.
    pub goodput: f64,
    /// Answers with a shard missing.
    pub partial: u64,
    /// 503s from admission control.
    pub refused: u64,
    /// Other failures (504, other 503s, client timeouts).
    pub failed: u64,
    /// Answers (complete or partial): p50, p99, p99.9, max, in µs.
    pub answered_us: [u64; 4],
    /// Partial answers: p50, p99, max, in µs.
    pub partial_us: [u64; 3],
    /// Refusals: p50, p99, max, in µs.
    pub refused_us: [u64; 3],
    /// Responses of any kind later than the deadline + 50 ms.
    pub late: u64,
    /// The latest response past the deadline, in ms (0 if none was late).
    pub worst_overshoot_ms: f64,
    /// Replica ejections during the step.
    pub ejections: u64,
    /// Most resident memory of the root, in MiB.
    pub root_rss_mib: f64,
    /// Most resident memory of any leaf, in MiB.
    pub leaf_rss_mib: f64,
    /// After an overload step: seconds until the p99 of each second of a 0.5C load was back
    /// within 1.5x that of the 0.5C step (None if it never was within the recovery run).
    pub back_to_normal_s: Option<f64>,
}

#[derive(Default)]
struct Samples {
    results: Vec<(Duration, Duration, Outcome)>,
}

/// Sends `rate` searches per second for `length`, Poisson, each with the deadline; returns
/// each one's intended send offset, latency and outcome.
async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    queries: &Arc<Vec<String>>,
    rate: f64,
    length: Duration,
    deadline: Duration,
    seed: u64,
) -> Vec<(Duration, Duration, Outcome)> {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let start = Instant::now() + Duration::from_millis(5);
    let mut due = pace(start, send_offsets(rate, length, Arrivals::Poisson, seed));
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((i, intended)) = due.recv().await {
        let (client, samples, queries) = (client.clone(), samples.clone(), queries.clone());
        let url = url.to_string();
        tasks.spawn(async move {
            let query = &queries[i % queries.len()];
            let outcome = search(&client, &url, query, deadline).await;
            let latency = intended.elapsed();
            samples
                .lock()
                .results
                .push((intended - start, latency, outcome));
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut results = std::mem::take(&mut samples.lock().results);
    results.sort_by_key(|r| r.0);
    results
}

async fn search(client: &reqwest::Client, url: &str, query: &str, deadline: Duration) -> Outcome {
    let response = client
        .get(format!("{url}/v1/search"))
        .query(&[
            ("q", query),
            ("timeout_ms", &deadline.as_millis().to_string()),
        ])
        .timeout(deadline + Duration::from_secs(3))
        .send()
        .await;
    let Ok(response) = response else {
        return Outcome::Failed;
    };
    let status = response.status().as_u16();
    let Ok(body) = response.bytes().await else {
        return Outcome::Failed;
    };
    match status {
        200 => {
            // `"partial":true` is all the harness reads; parsing the hits would cost the cores
            // it measures.
            if memchr_partial(&body) {
                Outcome::Partial
            } else {
                Outcome::Complete
            }
        }
        503 if String::from_utf8_lossy(&body).contains("overloaded") => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

fn memchr_partial(body: &[u8]) -> bool {
    body.windows(14).any(|w| w == b"\"partial\":true")
}

/// Completed searches per second of 16 clients, each sending its next search when answered.
async fn capacity(
    client: &reqwest::Client,
    url: &str,
    queries: &Arc<Vec<String>>,
    deadline: Duration,
) -> f64 {
    let measure = Duration::from_secs(10);
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let warm_until = Instant::now() + Duration::from_secs(3);
    let end = warm_until + measure;
    let clients = (0..16).map(|_| {
        let (client, url, queries, done, next) = (
            client.clone(),
            url.to_string(),
            queries.clone(),
            done.clone(),
            next.clone(),
        );
        tokio::spawn(async move {
            while Instant::now() < end {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let outcome = search(&client, &url, &queries[i % queries.len()], deadline).await;
                let now = Instant::now();
                if outcome == Outcome::Complete && now >= warm_until && now < end {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
    });
    futures::future::join_all(clients).await;
    done.load(std::sync::atomic::Ordering::Relaxed) as f64 / measure.as_secs_f64()
}

/// Ejections the root counted so far, from its metrics.
async fn ejections(client: &reqwest::Client, url: &str) -> u64 {
    let Ok(response) = client.get(format!("{url}/metrics")).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("fanout_root_ejections_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Resident memory of `pid` in MiB, from `/proc`.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Samples the most memory the root and any leaf hold, twice a second, until dropped.
fn watch_memory(cluster: &LocalCluster) -> (Arc<Mutex<(f64, f64)>>, tokio::task::JoinHandle<()>) {
    let root = cluster.root.as_ref().and_then(|p| p.pid());
    let leaves: Vec<u32> = cluster
        .leaves
        .iter()
        .flatten()
        .filter_map(|p| p.pid())
        .collect();
    let peak = Arc::new(Mutex::new((0.0f64, 0.0f64)));
    let shared = peak.clone();
    let task = tokio::spawn(async move {
        loop {
            let r = root.map_or(0.0, rss_mib);
            let l = leaves.iter().map(|&p| rss_mib(p)).fold(0.0, f64::max);
            {
                let mut peak = shared.lock();
                peak.0 = peak.0.max(r);
                peak.1 = peak.1.max(l);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    (peak, task)
}

fn percentiles(latencies: impl Iterator<Item = Duration>, qs: &[f64]) -> Vec<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    for l in latencies {
        let _ = h.record((l.as_micros() as u64).max(1));
    }
    if h.is_empty() {
        return vec![0; qs.len()];
    }
    qs.iter()
        .map(|&q| {
            if q >= 1.0 {
                h.max()
            } else {
                h.value_at_quantile(q)
            }
        })
        .collect()
}

/// Summarises one step's searches.
fn summarise(
    name: &str,
    offered: f64,
    length: Duration,
    deadline: Duration,
    results: &[(Duration, Duration, Outcome)],
) -> StepReport {
    let of = |o: Outcome| results.iter().filter(move |r| r.2 == o);
    let good = of(Outcome::Complete).filter(|r| r.1 <= deadline).count();
    let answered = results
        .iter()
        .filter(|r| matches!(r.2, Outcome::Complete | Outcome::Partial));
    let a = percentiles(answered.map(|r| r.1), &[0.5, 0.99, 0.999, 1.0]);
    let p = percentiles(of(Outcome::Partial).map(|r| r.1), &[0.5, 0.99, 1.0]);
    let f = percentiles(of(Outcome::Refused).map(|r| r.1), &[0.5, 0.99, 1.0]);
    let worst = results.iter().map(|r| r.1).max().unwrap_or_default();
    StepReport {
        name: name.to_string(),
        offered,
        sent: results.len() as u64,
        goodput: good as f64 / length.as_secs_f64(),
        partial: of(Outcome::Partial).count() as u64,
        refused: of(Outcome::Refused).count() as u64,
        failed: of(Outcome::Failed).count() as u64,
        answered_us: [a[0], a[1], a[2], a[3]],
        partial_us: [p[0], p[1], p[2]],
        refused_us: [f[0], f[1], f[2]],
        late: results
            .iter()
            .filter(|r| r.1 > deadline + Duration::from_millis(50))
            .count() as u64,
        worst_overshoot_ms: worst.saturating_sub(deadline).as_secs_f64() * 1e3,
        ejections: 0,
        root_rss_mib: 0.0,
        leaf_rss_mib: 0.0,
        back_to_normal_s: None,
    }
}

/// Seconds from the start of `results` until every later one-second window's answered p99 is
/// within `normal_us`.
fn back_to_normal(results: &[(Duration, Duration, Outcome)], normal_us: u64) -> Option<f64> {
    let seconds = results.last()?.0.as_secs() + 1;
    let p99 = |s: u64| {
        let window = results
            .iter()
            .filter(|r| r.0.as_secs() == s && matches!(r.2, Outcome::Complete | Outcome::Partial));
        percentiles(window.map(|r| r.1), &[0.99])[0]
    };
    // A second with no answer at all (everything refused or failed) is not normal.
    let windows: Vec<u64> = (0..seconds)
        .map(|s| match p99(s) {
            0 => u64::MAX,
            p => p,
        })
        .collect();
    (0..windows.len())
        .find(|&s| windows[s..].iter().all(|&w| w <= normal_us))
        .map(|s| s as f64)
}

/// The pids of the named processes.
fn pids(cluster: &LocalCluster, names: &[&str]) -> anyhow::Result<Vec<i32>> {
    names
        .iter()
        .map(|n| {
            cluster
                .process(n)
                .and_then(|p| p.pid())
                .map(|p| p as i32)
                .ok_or_else(|| anyhow::anyhow!("no running process {n} to pause"))
        })
        .collect()
}

/// Pauses `pids` from `from` for `length`; resumes them however the run ends.
async fn pause(pids: Vec<i32>, from: Duration, length: Duration) {
    struct Resume(Vec<i32>);
    impl Drop for Resume {
        fn drop(&mut self) {
            for &pid in &self.0 {
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
            }
        }
    }
    tokio::time::sleep(from).await;
    let resume = Resume(pids.clone());
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
    }
    tokio::time::sleep(length).await;
    drop(resume);
}

/// Runs the benchmark.
pub async fn run(args: OverloadArgs) -> anyhow::Result<()> {
    let corpus = corpus_or_demo(&args.corpus);
    let queries = Arc::new(load_queries(&args.queries, Some(args.shuffle_seed))?);
    let data = tempfile::tempdir()?;
    let spec = ClusterSpec {
        root_args: args.root_arg.clone(),
        ..ClusterSpec::new(
            2,
            2,
            data.path().to_path_buf(),
            sibling_binary("fanout-cluster")?,
        )
    };
    let mut cluster = LocalCluster::start_leaves(&spec).await?;
    eprintln!("indexing {} into 2 x 2 ...", corpus_name(&corpus));
    let indexed = cluster.index_corpus(&corpus).await?;
    eprintln!("indexed {} documents", indexed.docs_indexed);
    let url = cluster.start_root(&spec).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4_096)
        .tcp_nodelay(true)
        .build()?;
    let c = match args.capacity {
        Some(c) => c,
        None => capacity(&client, &url, &queries, args.deadline).await,
    };
    println!("# capacity C = {c:.0} searches/s (closed loop, 16 clients, 10 s)");
    let mut reports = Vec::new();
    let mut normal_us = 0;
    for (i, factor) in [0.5, 1.5, 2.0].into_iter().enumerate() {
        let before = ejections(&client, &url).await;
        let (memory, watcher) = watch_memory(&cluster);
        let name = format!("{factor}C");
        let step = open_loop(
            &client,
            &url,
            &queries,
            factor * c,
            args.step,
            args.deadline,
            i as u64,
        );
        // After an overload step, 0.5C from the moment its schedule ends, while its backlog
        // is still being answered: how long until latency is normal again.
        let recovery = async {
            if factor < 1.0 {
                return Vec::new();
            }
            tokio::time::sleep(args.step).await;
            let rate = 0.5 * c;
            let length = Duration::from_secs(10);
            open_loop(&client, &url, &queries, rate, length, args.deadline, 99).await
        };
        let (results, recovery) = tokio::join!(step, recovery);
        watcher.abort();
        let mut report = summarise(&name, factor * c, args.step, args.deadline, &results);
        report.ejections = ejections(&client, &url).await - before;
        (report.root_rss_mib, report.leaf_rss_mib) = *memory.lock();
        if factor < 1.0 {
            normal_us = report.answered_us[1] * 3 / 2;
        } else {
            report.back_to_normal_s = back_to_normal(&recovery, normal_us);
        }
        print_report(&report);
        reports.push(report);
    }
    // A long stall of one replica, and a shard with both replicas stopped, at 0.5C.
    let faults: [(&str, Vec<&str>, Duration); 2] = [
        ("0.5C, leaf-0-0 paused", vec!["leaf-0-0"], args.stall),
        (
            "0.5C, shard 1 paused",
            vec!["leaf-1-0", "leaf-1-1"],
            Duration::from_secs(10),
        ),
    ];
    for (i, (name, victims, length)) in faults.into_iter().enumerate() {
        let before = ejections(&client, &url).await;
        let run_for = length + Duration::from_secs(10);
        let load = open_loop(
            &client,
            &url,
            &queries,
            0.5 * c,
            run_for,
            args.deadline,
            10 + i as u64,
        );
        let (memory, watcher) = watch_memory(&cluster);
        let fault = pause(pids(&cluster, &victims)?, Duration::from_secs(5), length);
        let (results, ()) = tokio::join!(load, fault);
        watcher.abort();
        let mut report = summarise(name, 0.5 * c, run_for, args.deadline, &results);
        report.ejections = ejections(&client, &url).await - before;
        (report.root_rss_mib, report.leaf_rss_mib) = *memory.lock();
        print_report(&report);
        reports.push(report);
        // Let the prober find the replicas back before the next run.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&serde_json::json!({
                "capacity": c,
                "deadline_ms": args.deadline.as_millis() as u64,
                "steps": reports,
            }))?,
        )?;
    }
    cluster.stop().await;
    Ok(())
}

fn print_report(r: &StepReport) {
    let ms = |us: u64| us as f64 / 1e3;
    println!(
        "{:<24} offered {:>6.0}/s  goodput {:>6.0}/s  sent {:>6}  partial {:>5}  refused {:>6}  failed {:>5}",
        r.name, r.offered, r.goodput, r.sent, r.partial, r.refused, r.failed
    );
    println!(
        "{:<24} answered p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1} ms; refused p50 {:.2} p99 {:.2} max {:.1} ms; partial p50 {:.1} p99 {:.1} max {:.1} ms",
        "", ms(r.answered_us[0]), ms(r.answered_us[1]), ms(r.answered_us[2]), ms(r.answered_us[3]),
        ms(r.refused_us[0]), ms(r.refused_us[1]), ms(r.refused_us[2]),
        ms(r.partial_us[0]), ms(r.partial_us[1]), ms(r.partial_us[2]),
    );
    println!(
        "{:<24} late (> deadline + 50 ms) {}  worst overshoot {:.0} ms  ejections {}  RSS root {:.0} MiB, leaf {:.0} MiB  back to normal {}",
        "", r.late, r.worst_overshoot_ms, r.ejections, r.root_rss_mib, r.leaf_rss_mib,
        r.back_to_normal_s.map_or("-".into(), |s| format!("{s:.0} s")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_step_counts_goodput_refusals_and_lateness() {
        let deadline = ms(100);
        let results = vec![
            (ms(0), ms(10), Outcome::Complete),
            (ms(10), ms(120), Outcome::Complete),
            (ms(20), ms(200), Outcome::Partial),
            (ms(30), ms(1), Outcome::Refused),
            (ms(40), ms(100), Outcome::Failed),
        ];
        let r = summarise("x", 5.0, Duration::from_secs(1), deadline, &results);
        assert_eq!(r.goodput, 1.0, "one complete answer within the deadline");
        assert_eq!((r.partial, r.refused, r.failed, r.sent), (1, 1, 1, 5));
        assert_eq!(r.late, 1, "only the 200 ms answer is past 150 ms");
        assert_eq!(r.worst_overshoot_ms, 100.0);
        assert!(r.refused_us[0] >= 999 && r.refused_us[0] <= 1_001);
    }

    #[test]
    fn back_to_normal_is_the_first_second_after_which_every_second_is_normal() {
        let at = |s: u64, l: u64| (Duration::from_secs(s), ms(l), Outcome::Complete);
        let results = vec![at(0, 500), at(1, 5), at(2, 300), at(3, 5), at(4, 4)];
        assert_eq!(back_to_normal(&results, 10_000), Some(3.0));
        assert_eq!(back_to_normal(&results[..3], 10_000), None);
        // A second with nothing answered is not normal.
        let refused = (Duration::from_secs(3), ms(1), Outcome::Refused);
        let gap = vec![at(0, 5), at(1, 5), at(2, 5), refused, at(4, 5)];
        assert_eq!(back_to_normal(&gap, 10_000), Some(4.0));
        assert!(memchr_partial(br#"{"partial":true,"hits":[]}"#));
        assert!(!memchr_partial(br#"{"partial":false}"#));
    }
}
