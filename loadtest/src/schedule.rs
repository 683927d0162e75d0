//! When each request of an open-loop run is meant to be sent. Open loop (wrk2, oha): requests
//! go out on a schedule whatever the server does, and latency is measured from the intended send
//! time, so a stall delays the measurement of every request scheduled during it instead of
//! silently pausing the load (coordinated omission).

use std::time::Duration;

/// How arrivals are spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrivals {
    /// Exactly `1 / rate` apart.
    Constant,
    /// A Poisson process: exponential gaps with mean `1 / rate`, from a seeded generator.
    Poisson,
}

/// The intended send offsets (from the start of the run) of every request within `duration`.
pub fn send_offsets(rate: f64, duration: Duration, arrivals: Arrivals, seed: u64) -> Vec<Duration> {
    assert!(rate > 0.0, "the rate must be positive");
    let end = duration.as_secs_f64();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut offsets = Vec::with_capacity((rate * end) as usize + 1);
    let mut t = 0.0;
    let mut i = 0u64;
    loop {
        t = match arrivals {
            Arrivals::Constant => i as f64 / rate,
            // Inverse transform of the exponential distribution; 1 - U avoids ln(0).
            Arrivals::Poisson => t + -(1.0 - rng.f64()).ln() / rate,
        };
        if t >= end {
            return offsets;
        }
        offsets.push(Duration::from_secs_f64(t));
        i += 1;
    }
}

/// Pause windows of a fault: `(start, length)` offsets, one every `every`, starting at `every`.
pub fn pause_windows(
    every: Duration,
    length: Duration,
    duration: Duration,
) -> Vec<(Duration, Duration)> {
    if every.is_zero() {
        return Vec::new();
    }
    (1..)
        .map(|k| every * k)
        .take_while(|&start| start + length <= duration)
        .map(|start| (start, length))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_arrivals_are_evenly_spaced() {
        let offsets = send_offsets(100.0, Duration::from_secs(2), Arrivals::Constant, 0);
        assert_eq!(offsets.len(), 200);
        assert_eq!(offsets[0], Duration::ZERO);
        assert_eq!(offsets[1], Duration::from_millis(10));
        assert_eq!(offsets[199], Duration::from_millis(1_990));
    }

    #[test]
    fn poisson_arrivals_have_the_rate_on_average_and_are_reproducible() {
        let a = send_offsets(1_000.0, Duration::from_secs(20), Arrivals::Poisson, 7);
        let b = send_offsets(1_000.0, Duration::from_secs(20), Arrivals::Poisson, 7);
        assert_eq!(a, b, "same seed, same schedule");
        // 20,000 expected; the standard deviation of a Poisson count is sqrt(20,000) ≈ 141.
        assert!((19_500..20_500).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        // Exponential gaps: about 1/e of them are longer than the mean gap.
        let long = a
            .windows(2)
            .filter(|w| w[1] - w[0] > Duration::from_millis(1))
            .count();
        let share = long as f64 / a.len() as f64;
        assert!((share - (-1f64).exp()).abs() < 0.02, "{share}");
        assert_ne!(
            a,
            send_offsets(1_000.0, Duration::from_secs(20), Arrivals::Poisson, 8)
        );
    }

    #[test]
    fn pause_windows_repeat_within_the_run() {
        let w = pause_windows(
            Duration::from_secs(2),
            Duration::from_millis(200),
            Duration::from_secs(7),
        );
        let starts: Vec<u64> = w.iter().map(|(s, _)| s.as_millis() as u64).collect();
        assert_eq!(starts, [2_000, 4_000, 6_000]);
        assert!(w.iter().all(|(_, l)| *l == Duration::from_millis(200)));
        assert!(pause_windows(
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_secs(1)
        )
        .is_empty());
    }
}
