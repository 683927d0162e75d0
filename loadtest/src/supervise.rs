//! Supervision of a local cluster, as a process supervisor would do it: a process that exits
//! is reported (how it ended, how long it ran, the end of its log) and started again on its
//! address, after a delay that doubles while it keeps crashing. On Kubernetes the kubelet does
//! this, driven by the probes.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster::{log_tail, ClusterSpec, Exited, LocalCluster};

/// How often the supervisor looks for exited processes.
const POLL: Duration = Duration::from_millis(200);

/// Lines of a dead process's log shown in its report.
const LOG_TAIL_LINES: usize = 8;

/// Delays before restarts: `initial`, doubling with each crash in a row up to `max`. A
/// process that ran for `stable_after` before it exited starts the count again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// A run this long resets the count of crashes in a row.
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
    /// Left down for good (reported once).
    abandoned: bool,
}

/// Restarts the cluster's processes as they exit, until the future is dropped.
pub async fn supervise(cluster: &mut LocalCluster, spec: &ClusterSpec, backoff: Backoff) {
    let mut watches: HashMap<String, Watch> = HashMap::new();
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        for exited in cluster.exited() {
            let watch = watches.entry(exited.name.clone()).or_default();
            if watch.abandoned {
                continue;
            }
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
                    if let Some(data) = cluster.data_dir(spec, &exited.name) {
                        if !data.exists() {
                            // A replica started on an empty directory would serve empty answers
                            // as its shard's: leave it down and say so, once.
                            eprintln!(
                                "{} is not restarted: its data directory {} is gone; start the cluster with --fresh, or copy a replica's data there",
                                exited.name,
                                data.display()
                            );
                            watch.abandoned = true;
                            continue;
                        }
                    }
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
}
