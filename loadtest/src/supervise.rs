//! Supervision of a local cluster, as a process supervisor would do it: a process that exits
//! is reported (how it ended, how long it ran, the end of its log) and started again on its
//! address, after a delay that doubles while it keeps crashing. On Kubernetes the kubelet does
//! this, driven by the probes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::{ClusterSpec, Exited, LocalCluster};

/// How often the supervisor looks for exited processes.
const POLL: Duration = Duration::from_millis(200);

/// Lines of a dead process's log shown in its report.
const LOG_TAIL_LINES: usize = 8;

/// Delays before restarts: `initial`, doubling with each crash in a row up to `max`. A
/// process that ran for `stable_after` before it exited starts the count again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before the restart that follows `crashes` crashes in a row (0 for the first).
    pub fn delay(&self, crashes: u32) -> Duration {
        let factor = 1u32.checked_shl(crashes.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// One process's crashes in a row, and when it is due to restart.
#[derive(Debug, Default)]
struct Watch {
    crashes: u32,
    due: Option<Instant>,
}

/// Restarts the cluster's processes as they exit, until the future is dropped.
pub async fn supervise(cluster: &mut LocalCluster, spec: &ClusterSpec, backoff: Backoff) {
    let mut watches: HashMap<String, Watch> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        for exited in cluster.exited() {
            let watch = watches.entry(exited.name.clone()).or_default();
            match watch.due {
                None => {
                    if exited.uptime >= backoff.stable_after {
                        watch.crashes = 0;
                    }
                    let delay = backoff.delay(watch.crashes);
                    watch.crashes += 1;
                    watch.due = Some(Instant::now() + delay);
                    eprintln!("{}", report(&exited, delay));
                }
                Some(due) if Instant::now() >= due => {
                    match cluster.restart(spec, &exited.name).await {
                        Ok(()) => {
                            watch.due = None;
                            eprintln!("{} restarted", exited.name);
                        }
                        Err(e) => {
                            let delay = backoff.delay(watch.crashes);
                            watch.crashes += 1;
                            watch.due = Some(Instant::now() + delay);
                            eprintln!(
                                "{} could not be restarted, trying again in {delay:?}: {e:#}",
                                exited.name
                            );
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }
}

/// What an operator needs to know of a process that exited.
fn report(exited: &Exited, delay: Duration) -> String {
    let mut text = format!(
        "{} exited ({}) after {:.1} s; restarting it in {delay:?}",
        exited.name,
        exited.status,
        exited.uptime.as_secs_f64()
    );
    let tail = log_tail(&exited.log, LOG_TAIL_LINES);
    if !tail.is_empty() {
        text.push_str(&format!("; its log ({}) ends:", exited.log.display()));
        for line in tail {
            text.push_str("\n    ");
            text.push_str(&line);
        }
    }
    text
}

/// The last `n` lines of the file at `path`; none if it cannot be read. Reads at most the
/// last 64 KiB, since a log can be large.
fn log_tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_initial_up_to_the_cap() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (0..9)
            .map(|n| backoff.delay(n).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(backoff.delay(u32::MAX), backoff.max);
    }

    #[test]
    fn the_log_tail_is_the_last_non_empty_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leaf.log");
        std::fs::write(&path, "one\ntwo\n\nthree\nfour\n\n").unwrap();
        assert_eq!(log_tail(&path, 2), ["three", "four"]);
        assert_eq!(log_tail(&path, 10), ["one", "two", "three", "four"]);
        assert!(log_tail(&dir.path().join("missing.log"), 3).is_empty());
    }
}
