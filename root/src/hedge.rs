//! The hedging policy: when to send a second copy of a shard request, and how many extra
//! requests the root may send at all.
//!
//! "The Tail at Scale" (Dean & Barroso, 2013): defer the hedge until the request has been
//! outstanding longer than, say, the 95th percentile of recent latencies, so that only the
//! slowest few percent are hedged. [`LatencyWindow`] keeps a shard's recent latencies and that
//! percentile; [`HedgeBudget`] caps hedges at a fraction of primary requests so that hedging
//! never multiplies load when the whole cluster is slow (Finagle's retry budget, gRPC A6's
//! throttling).

use parking_lot::Mutex;
use std::time::Duration;

/// How a root hedges.
#[derive(Clone, Debug)]
pub struct HedgePolicy {
    /// Whether hedging is on at all (a request can still turn it off for itself).
    pub enabled: bool,
    /// The percentile of recent latencies after which a request is hedged. Default 0.95.
    pub percentile: f64,
    /// Shortest hedge delay. Default 1 ms.
    pub min_delay: Duration,
    /// Longest hedge delay, also used until enough latencies are known. Default 200 ms.
    pub max_delay: Duration,
    /// Recent latencies kept per shard. Default 1,000.
    pub window: usize,
    /// Latencies needed before the percentile is trusted. Default 20.
    pub min_samples: usize,
    /// Hedges allowed per primary request, on average. Default 0.05.
    pub budget_ratio: f64,
    /// Hedges that may be sent in a burst when the budget is full. Default 10.
    pub budget_burst: f64,
}

impl Default for HedgePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            percentile: 0.95,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(200),
            window: 1_000,
            min_samples: 20,
            budget_ratio: 0.05,
            budget_burst: 10.0,
        }
    }
}

/// A shard's recent latencies and the hedge delay they imply.
#[derive(Debug)]
pub struct LatencyWindow {
    policy: HedgePolicy,
    samples_us: Vec<u32>,
    next: usize,
    since_estimate: usize,
    delay: Duration,
}

/// How many new samples between recomputations of the percentile: sorting a thousand numbers
/// on every request would cost more than the hedge saves.
const RECOMPUTE_EVERY: usize = 16;

impl LatencyWindow {
    /// An empty window; until `policy.min_samples` arrive the delay is `policy.max_delay`.
    pub fn new(policy: &HedgePolicy) -> Self {
        Self {
            policy: policy.clone(),
            samples_us: Vec::with_capacity(policy.window),
            next: 0,
            since_estimate: 0,
            delay: policy.max_delay,
        }
    }

    /// Adds a latency, replacing the oldest once the window is full.
    pub fn record(&mut self, latency: Duration) {
        let policy = &self.policy;
        let us = latency.as_micros().min(u128::from(u32::MAX)) as u32;
        if self.samples_us.len() < policy.window.max(1) {
            self.samples_us.push(us);
        } else {
            self.samples_us[self.next] = us;
            self.next = (self.next + 1) % self.samples_us.len();
        }
        self.since_estimate += 1;
        if self.samples_us.len() >= policy.min_samples
            && (self.since_estimate >= RECOMPUTE_EVERY
                || self.samples_us.len() == policy.min_samples)
        {
            self.since_estimate = 0;
            let p = percentile_us(&self.samples_us, policy.percentile);
            self.delay = Duration::from_micros(p).clamp(policy.min_delay, policy.max_delay);
        }
    }

    /// How long to wait before hedging.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// The `q` quantile (nearest rank) of `samples`, which must not be empty.
pub fn percentile_us(samples: &[u32], q: f64) -> u64 {
    let mut copy = samples.to_vec();
    let rank = ((q.clamp(0.0, 1.0) * copy.len() as f64).ceil() as usize).clamp(1, copy.len());
    let (_, nth, _) = copy.select_nth_unstable(rank - 1);
    u64::from(*nth)
}

/// A token bucket of hedges: every primary request adds `ratio` of a token, every hedge takes
/// one, and the bucket holds at most `burst`.
#[derive(Debug)]
pub struct HedgeBudget {
    ratio: f64,
    burst: f64,
    balance: Mutex<f64>,
}

impl HedgeBudget {
    /// A full budget.
    pub fn new(policy: &HedgePolicy) -> Self {
        Self::with_rate(policy.budget_ratio, policy.budget_burst)
    }

    /// A full budget of `burst` tokens, earning `ratio` of one per deposit.
    pub fn with_rate(ratio: f64, burst: f64) -> Self {
        Self {
            ratio,
            burst,
            balance: Mutex::new(burst),
        }
    }

    /// Credits one primary request.
    pub fn deposit(&self) {
        let mut balance = self.balance.lock();
        *balance = (*balance + self.ratio).min(self.burst);
    }

    /// Takes a token for a hedge, if there is one.
    pub fn try_withdraw(&self) -> bool {
        let mut balance = self.balance.lock();
        if *balance >= 1.0 {
            *balance -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile_us(&samples, 0.95), 95);
        assert_eq!(percentile_us(&samples, 0.5), 50);
        assert_eq!(percentile_us(&samples, 1.0), 100);
        assert_eq!(percentile_us(&samples, 0.0), 1);
        assert_eq!(percentile_us(&[7], 0.95), 7);
    }

    #[test]
    fn the_delay_is_the_recent_p95_clamped() {
        let policy = HedgePolicy::default();
        let mut w = LatencyWindow::new(&policy);
        assert_eq!(
            w.delay(),
            policy.max_delay,
            "no data yet: the cautious maximum"
        );
        for i in 0..100u64 {
            // 95 fast requests and 5 slow ones per hundred.
            w.record(if i % 20 == 0 { ms(50) } else { ms(3) });
        }
        assert_eq!(w.delay(), ms(3));
        // Latencies shift up: the window forgets the old ones.
        for _ in 0..1_000 {
            w.record(ms(10));
        }
        assert_eq!(w.delay(), ms(10));
        for _ in 0..1_000 {
            w.record(Duration::from_micros(10));
        }
        assert_eq!(w.delay(), policy.min_delay);
        for _ in 0..1_000 {
            w.record(ms(5_000));
        }
        assert_eq!(w.delay(), policy.max_delay);
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_ratio() {
        let policy = HedgePolicy::default();
        let budget = HedgeBudget::new(&policy);
        let mut hedges = 0;
        for _ in 0..10_000 {
            budget.deposit();
            if budget.try_withdraw() {
                hedges += 1;
            }
        }
        // Every request wanted a hedge: only the burst plus 5% of requests got one (give or take
        // one for the rounding of repeated 0.05 deposits).
        assert!((509..=510).contains(&hedges), "{hedges}");
    }
}
