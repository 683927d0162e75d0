//! Where a search's time goes, read from the root's own report (`debug=true`). Each answered
//! request's latency is cut along the path of its slowest shard, the one the answer waited for:
//!
//! - **client + HTTP**: the latency minus the root's `took_us`: the load generator's own wait
//!   (in open loop, the time a request was late), the HTTP hop both ways, the root's parsing of
//!   the request and encoding of the answer, and the client's reading of it;
//! - **statistics**: the root's `stats_us`, the cluster's BM25 statistics fetched before the
//!   scatter (a round trip when not cached);
//! - **root**: the rest of `took_us` beyond statistics and the slowest attempt: sending, waiting
//!   to be scheduled, merging;
//! - **network + gRPC**: the slowest shard's attempt minus the leaf's own time;
//! - **leaf**: the leaf's `took_us` for that attempt: waiting for a search slot, searching,
//!   reading the hits' stored fields.
//!
//! The parts of one request add up to its latency, so their means add up to the mean latency;
//! their medians need not add up to the median.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The names of the parts, in path order.
pub const PARTS: [&str; 5] = [
    "client + HTTP",
    "statistics",
    "root",
    "network + gRPC",
    "leaf",
];

/// What the root reported of one search's timing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// The root's time on the search.
    pub took_us: u64,
    /// Of that, before the scatter.
    pub stats_us: u64,
    /// The slowest shard's winning attempt, as the root timed it.
    pub attempt_us: u64,
    /// Of that, the leaf's own time.
    pub leaf_us: u64,
}

impl Timing {
    /// The parts of a request that took `latency` end to end, in the order of [`PARTS`].
    pub fn parts(&self, latency_us: u64) -> [u64; 5] {
        [
            latency_us.saturating_sub(self.took_us),
            self.stats_us,
            self.took_us
                .saturating_sub(self.stats_us)
                .saturating_sub(self.attempt_us),
            self.attempt_us.saturating_sub(self.leaf_us),
            self.leaf_us,
        ]
    }
}

/// Collects the parts of every request that had a timing report.
#[derive(Debug)]
pub struct PartsRecorder {
    parts: [Histogram<u64>; 5],
    sums: [u64; 5],
}

impl Default for PartsRecorder {
    fn default() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
        Self {
            parts: std::array::from_fn(|_| histogram()),
            sums: [0; 5],
        }
    }
}

impl PartsRecorder {
    /// Adds one request's latency and the times its hops reported.
    pub fn record(&mut self, latency: Duration, timing: &Timing) {
        let latency_us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        for (i, part) in timing.parts(latency_us).into_iter().enumerate() {
            self.parts[i].saturating_record(part);
            self.sums[i] += part;
        }
    }

    /// The median and mean of each part, or `None` if nothing was recorded.
    pub fn report(&self) -> Option<Breakdown> {
        let n = self.parts[0].len();
        (n > 0).then(|| Breakdown {
            requests: n,
            parts: PARTS
                .iter()
                .enumerate()
                .map(|(i, name)| Part {
                    name: name.to_string(),
                    p50_us: self.parts[i].value_at_quantile(0.5),
                    mean_us: self.sums[i] as f64 / n as f64,
                })
                .collect(),
        })
    }
}

/// One scenario's latency, part by part.
#[derive(Clone, Debug, Serialize)]
pub struct Breakdown {
    /// Requests with a timing report.
    pub requests: u64,
    /// The hops, in request order.
    pub parts: Vec<Part>,
}

/// One hop of a request: its median and mean time.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// The hop.
    pub name: String,
    /// Its median, in µs.
    pub p50_us: u64,
    /// Its mean, in µs.
    pub mean_us: f64,
}

/// The breakdowns of the scenarios that have one, as a table of medians and means.
pub fn table(reports: &[(&str, &Breakdown)]) -> String {
    if reports.is_empty() {
        return String::new();
    }
    let mut out = format!("{:<28} {:>9}", "where the time goes", "requests");
    for part in PARTS {
        out += &format!(" {part:>16}");
    }
    out += "\n";
    for (scenario, b) in reports {
        for (label, pick) in [("p50 µs", true), ("mean µs", false)] {
            out += &format!("{:<28} {:>9}", format!("{scenario} {label}"), b.requests);
            for part in &b.parts {
                let value = if pick {
                    part.p50_us as f64
                } else {
                    part.mean_us
                };
                out += &format!(" {value:>16.0}");
            }
            out += "\n";
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_a_request_add_up_to_its_latency() {
        let t = Timing {
            took_us: 900,
            stats_us: 300,
            attempt_us: 500,
            leaf_us: 350,
        };
        let parts = t.parts(1_200);
        assert_eq!(parts, [300, 300, 100, 150, 350]);
        assert_eq!(parts.iter().sum::<u64>(), 1_200);
        // A report that does not fit (clocks of two processes) never underflows.
        assert_eq!(t.parts(800)[0], 0);
    }

    #[test]
    fn means_add_up_and_medians_come_from_the_histograms() {
        let mut r = PartsRecorder::default();
        assert!(r.report().is_none());
        for i in 1..=100u64 {
            let t = Timing {
                took_us: 1_000 + i,
                stats_us: 0,
                attempt_us: 800,
                leaf_us: 600,
            };
            r.record(Duration::from_micros(1_500 + 2 * i), &t);
        }
        let b = r.report().unwrap();
        assert_eq!(b.requests, 100);
        let median = |name: &str| b.parts.iter().find(|p| p.name == name).unwrap().p50_us;
        assert_eq!(median("leaf"), 600);
        assert_eq!(median("network + gRPC"), 200);
        assert_eq!(median("statistics"), 0);
        assert_eq!(median("root"), 250);
        let mean_latency = 1_500.0 + 101.0;
        let sum: f64 = b.parts.iter().map(|p| p.mean_us).sum();
        assert!((sum - mean_latency).abs() < 1e-9, "{sum}");
        let text = table(&[("cluster", &b)]);
        assert!(
            text.contains("cluster p50 µs") && text.contains("cluster mean µs"),
            "{text}"
        );
    }
}
