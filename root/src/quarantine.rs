//! Queries suspected of killing leaves, refused for a while without a fan-out.
//!
//! When a replica's connection breaks while it serves a query, the root does not retry the
//! query elsewhere (see [`crate::scatter`]) and remembers its fingerprint here. Copies that
//! arrive before the quarantine ends are refused at once: a client retrying a query of death
//! in a loop would otherwise take down one replica per shard per try. Each new strike doubles
//! the quarantine, up to a cap, so an honest query caught by a coincidental crash is back soon
//! while a real poison stays out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long a quarantine lasts and how much it remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuarantinePolicy {
    /// The first quarantine of a query. Default 60 s.
    pub base: Duration,
    /// The longest, after repeated strikes. Default 1 h.
    pub max: Duration,
    /// Queries remembered at once; when full, the one whose quarantine ends first is
    /// forgotten. Default 10,000.
    pub capacity: usize,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            max: Duration::from_secs(3_600),
            capacity: 10_000,
        }
    }
}

/// A query's fingerprint: XXH64 of its text. The text is what the leaf parses and runs.
fn fingerprint(query: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(query.as_bytes(), 0)
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    until: Instant,
    strikes: u32,
}

/// The quarantined queries.
pub struct Quarantine {
    policy: QuarantinePolicy,
    entries: Mutex<HashMap<u64, Entry>>,
    /// When the last quarantine ends, in microseconds since `epoch`: every search asks, and
    /// almost always nothing is quarantined, so the answer must need no lock and no hash.
    latest_end_us: AtomicU64,
    epoch: Instant,
    refused: metrics::Counter,
    added: metrics::Counter,
}

impl Quarantine {
    pub fn new(policy: QuarantinePolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
            latest_end_us: AtomicU64::new(0),
            epoch: Instant::now(),
            refused: metrics::counter!("fanout_root_quarantine_refused_total"),
            added: metrics::counter!("fanout_root_quarantine_added_total"),
        }
    }

    fn micros_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// `Err(time left)` while `query` is quarantined.
    pub fn check(&self, query: &str) -> Result<(), Duration> {
        let now = Instant::now();
        if self.micros_since_epoch(now) >= self.latest_end_us.load(Ordering::Acquire) {
            return Ok(());
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&fingerprint(query)) {
            Some(entry) if entry.until > now => {
                self.refused.increment(1);
                Err(entry.until - now)
            }
            _ => Ok(()),
        }
    }

    /// Quarantines `query`, twice as long as last time if it was quarantined before, and says
    /// so in the log. Returns how long.
    pub fn add(&self, query: &str) -> Duration {
        let now = Instant::now();
        let fingerprint = fingerprint(query);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.policy.capacity && !entries.contains_key(&fingerprint) {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= self.policy.capacity {
                let first = entries.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k);
                if let Some(first) = first {
                    entries.remove(&first);
                }
            }
        }
        let strikes = entries.get(&fingerprint).map_or(0, |e| e.strikes) + 1;
        let factor = 1u32 << (strikes - 1).min(16);
        let length = self.policy.base.saturating_mul(factor).min(self.policy.max);
        let until = now + length;
        entries.insert(fingerprint, Entry { until, strikes });
        // Rounded up, so that the lock-free test never says "free" a microsecond early.
        self.latest_end_us
            .fetch_max(self.micros_since_epoch(until) + 1, Ordering::AcqRel);
        self.added.increment(1);
        tracing::warn!(
            fingerprint,
            strikes,
            quarantine_s = length.as_secs(),
            "a replica's connection broke while serving a query: quarantined"
        );
        length
    }

    /// Queries remembered now (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Quarantine {
    fn default() -> Self {
        Self::new(QuarantinePolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_quarantine_ends_and_doubles_on_each_strike() {
        let quarantine = Quarantine::default();
        let poison = "(((";
        assert_eq!(quarantine.check(poison), Ok(()));
        assert_eq!(quarantine.add(poison), Duration::from_secs(60));
        assert_eq!(quarantine.check(poison), Err(Duration::from_secs(60)));
        assert_eq!(quarantine.check("other"), Ok(()));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(quarantine.check(poison), Ok(()));
        assert_eq!(quarantine.add(poison), Duration::from_secs(120));
        for _ in 0..10 {
            quarantine.add(poison);
        }
        assert_eq!(quarantine.add(poison), Duration::from_secs(3_600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_quarantine_forgets_what_ends_first() {
        let quarantine = Quarantine::new(QuarantinePolicy {
            capacity: 2,
            ..QuarantinePolicy::default()
        });
        quarantine.add("1");
        tokio::time::advance(Duration::from_secs(1)).await;
        quarantine.add("2");
        quarantine.add("3");
        assert_eq!(quarantine.len(), 2);
        assert_eq!(quarantine.check("1"), Ok(()));
        assert!(quarantine.check("2").is_err() && quarantine.check("3").is_err());
    }
}
