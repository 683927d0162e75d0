//! The rate sweep: the highest open-loop rate whose p99 stays within a target. Double the rate
//! while the target holds, then bisect between the last rate that held and the first that did
//! not, until they are within 10% of each other.

use std::sync::Arc;
use std::time::Duration;

use crate::load::{run_load, LoadPlan, Mode, Scenario, Target};
use crate::report::ScenarioReport;

/// The state of the search.
#[derive(Clone, Debug)]
pub struct RateSearch {
    start: f64,
    max_steps: usize,
    steps: usize,
    /// The highest rate that met the target, and the lowest that did not.
    best: Option<f64>,
    failed: Option<f64>,
}

impl RateSearch {
    /// A search starting at `start` requests per second, for at most `max_steps` runs.
    pub fn new(start: f64, max_steps: usize) -> Self {
        Self {
            start,
            max_steps,
            steps: 0,
            best: None,
            failed: None,
        }
    }

    /// The next rate to try, or `None` when the search is done.
    pub fn next_rate(&self) -> Option<f64> {
        if self.steps >= self.max_steps {
            return None;
        }
        match (self.best, self.failed) {
            (None, None) => Some(self.start),
            (Some(ok), None) => Some(ok * 2.0),
            // Even the start failed: halve, down to a floor of 1/64 of it.
            (None, Some(bad)) => (bad / 2.0 >= self.start / 64.0).then_some(bad / 2.0),
            (Some(ok), Some(bad)) => (bad / ok > 1.1).then_some((ok + bad) / 2.0),
        }
    }

    /// Records whether `rate` met the target.
    pub fn record(&mut self, rate: f64, met: bool) {
        self.steps += 1;
        if met {
            self.best = Some(self.best.map_or(rate, |b| b.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
    }

    /// The highest rate that met the target so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }
}

/// What a sweep found.
pub struct Sweep {
    /// The highest rate that met the target, if any did.
    pub best: Option<f64>,
    /// The median latency at the low rate.
    pub low_p50_us: u64,
    /// A report per step: the low-rate run first, the half-rate run last.
    pub reports: Vec<ScenarioReport>,
}

/// Runs at `low_rate`, finds the highest rate meeting the p99 target on `target`, then runs at
/// half of it.
pub async fn sweep(
    target: &Target,
    queries: &Arc<Vec<String>>,
    plan: &LoadPlan,
    p99: Duration,
    low_rate: f64,
    label: &str,
) -> Sweep {
    let Mode::Open {
        rate: start,
        arrivals,
        seed,
    } = plan.mode
    else {
        unreachable!("--sweep-p99 requires --rate");
    };
    let step = |rate: f64, name: String| LoadPlan {
        mode: Mode::Open {
            rate,
            arrivals,
            seed,
        },
        scenarios: vec![Scenario {
            name,
            params: Vec::new(),
        }],
        ..plan.clone()
    };
    let mut search = RateSearch::new(start, 12);
    let low = format!("{label} @ low, {low_rate:.0}/s");
    let mut reports = run_load(target, Arc::clone(queries), &step(low_rate, low), None).await;
    let low_p50_us = reports[0].p50_us;
    while let Some(rate) = search.next_rate() {
        let name = format!("{label} @ {rate:.0}/s");
        let report = run_load(target, Arc::clone(queries), &step(rate, name), None)
            .await
            .remove(0);
        // Met: no errors, the p99 within target, and the target kept up with the offered rate.
        let met = report.errors == 0
            && report.p99_us <= p99.as_micros() as u64
            && report.achieved_rate >= 0.95 * rate;
        let verdict = if met { "met" } else { "missed" };
        eprintln!(
            "{label}: {rate:.0}/s p99 {} µs, {} errors: {verdict}",
            report.p99_us, report.errors
        );
        search.record(rate, met);
        reports.push(report);
    }
    if let Some(best) = search.best() {
        let half = best / 2.0;
        let name = format!("{label} @ half, {half:.0}/s");
        reports.extend(run_load(target, Arc::clone(queries), &step(half, name), None).await);
    }
    Sweep {
        best: search.best(),
        low_p50_us,
        reports,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a system that meets the target up to `capacity`.
    fn search(capacity: f64, start: f64) -> (Option<f64>, Vec<f64>) {
        let mut s = RateSearch::new(start, 20);
        let mut tried = Vec::new();
        while let Some(rate) = s.next_rate() {
            tried.push(rate);
            s.record(rate, rate <= capacity);
        }
        (s.best(), tried)
    }

    #[test]
    fn doubles_then_bisects_to_within_ten_percent() {
        let (best, tried) = search(700.0, 100.0);
        assert_eq!(&tried[..4], [100.0, 200.0, 400.0, 800.0]);
        let best = best.unwrap();
        assert!(
            best <= 700.0 && best > 700.0 / 1.1,
            "{best} after {tried:?}"
        );
    }

    #[test]
    fn halves_when_even_the_start_is_too_much_and_gives_up_at_a_floor() {
        let (best, tried) = search(30.0, 100.0);
        assert_eq!(&tried[..3], [100.0, 50.0, 25.0]);
        assert!(best.unwrap() > 30.0 / 1.1);
        let (best, _) = search(0.5, 100.0);
        assert_eq!(best, None, "nothing met the target");
    }

    #[test]
    fn stops_after_the_step_limit() {
        let mut s = RateSearch::new(1.0, 3);
        for _ in 0..3 {
            let r = s.next_rate().unwrap();
            s.record(r, true);
        }
        assert_eq!(s.next_rate(), None);
        assert_eq!(s.best(), Some(4.0));
    }
}
