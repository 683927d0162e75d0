//! Scale on paper: the root's latency when a query fans out to N leaves, each drawn from a leaf
//! latency distribution, with and without hedging (the "choosing the number of leaves" question
//! of scatter/gather: a query is as slow as its slowest leaf, so P(query slow) = 1 - P(leaf
//! fast)^N).
//!
//! Hedging is modelled as the root does it: a leaf request outstanding longer than the hedge
//! delay (a percentile of the leaf distribution) gets a second, independent draw, and the leaf's
//! latency is `min(first, delay + second)`. The hedge budget is not modelled: the extra
//! requests are reported instead.

use serde::Serialize;

/// A leaf's latency distribution.
#[derive(Clone, Debug)]
pub enum LeafModel {
    /// Log-normal with this median (ms) and log-space spread, plus stragglers: with probability
    /// `straggler_prob` a request takes `straggler_ms` more.
    LogNormal {
        /// Median, in ms.
        median_ms: f64,
        /// Spread in log space.
        sigma: f64,
        /// Probability that a request straggles.
        straggler_prob: f64,
        /// What a straggler adds, in ms.
        straggler_ms: f64,
    },
    /// A measured distribution: (percentile, latency in ms) points, interpolated linearly.
    Measured(Vec<(f64, f64)>),
}

impl LeafModel {
    /// One draw, in milliseconds.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> f64 {
        match self {
            LeafModel::LogNormal {
                median_ms,
                sigma,
                straggler_prob,
                straggler_ms,
            } => {
                let base = median_ms * (sigma * standard_normal(rng)).exp();
                if rng.f64() < *straggler_prob {
                    base + straggler_ms
                } else {
                    base
                }
            }
            LeafModel::Measured(points) => inverse_cdf(points, rng.f64() * 100.0),
        }
    }
}

/// Box–Muller: one standard normal draw.
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The latency at percentile `p` of a measured curve (points sorted by percentile).
fn inverse_cdf(points: &[(f64, f64)], p: f64) -> f64 {
    match points.iter().position(|&(q, _)| q >= p) {
        None => points.last().map_or(0.0, |&(_, v)| v),
        Some(0) => points[0].1,
        Some(i) => {
            let ((q0, v0), (q1, v1)) = (points[i - 1], points[i]);
            if q1 <= q0 {
                v1
            } else {
                v0 + (v1 - v0) * (p - q0) / (q1 - q0)
            }
        }
    }
}

/// The root's latency at one fan-out width.
#[derive(Clone, Debug, Serialize)]
pub struct FanoutRow {
    /// Leaves a search fans out to.
    pub leaves: usize,
    /// Median without hedging, ms.
    pub unhedged_p50_ms: f64,
    /// 99th percentile without hedging, ms.
    pub unhedged_p99_ms: f64,
    /// 99.9th percentile without hedging, ms.
    pub unhedged_p999_ms: f64,
    /// Median with hedging, ms.
    pub hedged_p50_ms: f64,
    /// 99th percentile with hedging, ms.
    pub hedged_p99_ms: f64,
    /// 99.9th percentile with hedging, ms.
    pub hedged_p999_ms: f64,
    /// Leaf requests beyond one per leaf, in percent.
    pub extra_requests_pct: f64,
}

/// Simulates `queries` queries at each fan-out width in `leaves`, hedging at the
/// `hedge_percentile` of the leaf distribution.
pub fn simulate(
    model: &LeafModel,
    leaves: &[usize],
    queries: usize,
    hedge_percentile: f64,
    seed: u64,
) -> Vec<FanoutRow> {
    let mut rng = fastrand::Rng::with_seed(seed);
    // The hedge delay the root would learn: the percentile of many leaf draws.
    let mut draws: Vec<f64> = (0..100_000).map(|_| model.sample(&mut rng)).collect();
    draws.sort_by(f64::total_cmp);
    let delay = draws[((hedge_percentile * draws.len() as f64) as usize).min(draws.len() - 1)];
    leaves
        .iter()
        .map(|&n| {
            let (mut plain, mut hedged, mut extra) = (
                Vec::with_capacity(queries),
                Vec::with_capacity(queries),
                0u64,
            );
            for _ in 0..queries {
                let (mut slowest, mut slowest_hedged) = (0f64, 0f64);
                for _ in 0..n {
                    let first = model.sample(&mut rng);
                    slowest = slowest.max(first);
                    let with_hedge = if first > delay {
                        extra += 1;
                        first.min(delay + model.sample(&mut rng))
                    } else {
                        first
                    };
                    slowest_hedged = slowest_hedged.max(with_hedge);
                }
                plain.push(slowest);
                hedged.push(slowest_hedged);
            }
            plain.sort_by(f64::total_cmp);
            hedged.sort_by(f64::total_cmp);
            let q = |v: &[f64], p: f64| v[((p * v.len() as f64) as usize).min(v.len() - 1)];
            FanoutRow {
                leaves: n,
                unhedged_p50_ms: q(&plain, 0.5),
                unhedged_p99_ms: q(&plain, 0.99),
                unhedged_p999_ms: q(&plain, 0.999),
                hedged_p50_ms: q(&hedged, 0.5),
                hedged_p99_ms: q(&hedged, 0.99),
                hedged_p999_ms: q(&hedged, 0.999),
                extra_requests_pct: 100.0 * extra as f64 / (queries * n) as f64,
            }
        })
        .collect()
}

/// The rows as a table.
pub fn sim_table(rows: &[FanoutRow]) -> String {
    let mut out = format!(
        "{:>7} | {:>10} {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>7}\n",
        "leaves", "p50 ms", "p99 ms", "p99.9 ms", "hedged p50", "p99", "p99.9", "extra %"
    );
    for r in rows {
        out += &format!(
            "{:>7} | {:>10.2} {:>10.2} {:>10.2} | {:>10.2} {:>10.2} {:>10.2} | {:>7.2}\n",
            r.leaves,
            r.unhedged_p50_ms,
            r.unhedged_p99_ms,
            r.unhedged_p999_ms,
            r.hedged_p50_ms,
            r.hedged_p99_ms,
            r.hedged_p999_ms,
            r.extra_requests_pct
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_a_max_of_n_uniforms_is_the_nth_root_of_a_half() {
        // Uniform leaf latency on 0..1 ms: P(max of n <= x) = x^n, so the median is 0.5^(1/n).
        let uniform = LeafModel::Measured(vec![(0.0, 0.0), (100.0, 1.0)]);
        let rows = simulate(&uniform, &[1, 10], 20_000, 1.0, 3);
        assert!((rows[0].unhedged_p50_ms - 0.5).abs() < 0.02, "{rows:?}");
        assert!(
            (rows[1].unhedged_p50_ms - 0.5f64.powf(0.1)).abs() < 0.01,
            "{rows:?}"
        );
        // Hedging at the 100th percentile never hedges.
        assert_eq!(rows[1].extra_requests_pct, 0.0);
        assert_eq!(rows[1].hedged_p50_ms, rows[1].unhedged_p50_ms);
    }

    #[test]
    fn stragglers_dominate_wide_fanouts_unless_hedged() {
        let model = LeafModel::LogNormal {
            median_ms: 1.0,
            sigma: 0.2,
            straggler_prob: 0.01,
            straggler_ms: 100.0,
        };
        let rows = simulate(&model, &[1, 100], 5_000, 0.95, 7);
        // One leaf: a straggler only in the tail. A hundred: most queries meet one (1 - 0.99^100 = 63%).
        assert!(rows[0].unhedged_p50_ms < 2.0);
        assert!(rows[1].unhedged_p50_ms > 100.0, "{rows:?}");
        // Hedged at p95 (~1.4 ms), a straggler costs one more draw: the median stays near 2 ms.
        assert!(rows[1].hedged_p50_ms < 5.0, "{rows:?}");
        assert!((rows[1].extra_requests_pct - 5.0).abs() < 0.5, "{rows:?}");
    }

    #[test]
    fn measured_curves_interpolate_between_points() {
        let curve = vec![(0.0, 1.0), (50.0, 2.0), (100.0, 10.0)];
        assert_eq!(inverse_cdf(&curve, 0.0), 1.0);
        assert_eq!(inverse_cdf(&curve, 25.0), 1.5);
        assert_eq!(inverse_cdf(&curve, 75.0), 6.0);
        assert_eq!(inverse_cdf(&curve, 100.0), 10.0);
    }
}
