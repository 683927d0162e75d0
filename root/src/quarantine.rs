//! Containing a query of death: what the root knows of queries under which a replica's
//! connection broke, and of queries that ran without breaking anything.
//!
//! A broken connection cannot say whether the query killed the replica or the replica died
//! under it (a kill, a lost node): the root sees the same transport error either way. So:
//!
//! - [`KnownGood`] remembers, per shard, queries that have run there and come back. Such a
//!   query did not kill a replica of that shard last time, so when a connection breaks under
//!   it the request is retried on another replica like any failure: a leaf restarted or
//!   killed under load costs no answer for the queries it had already served.
//! - Any other query is not retried (see [`crate::scatter`]), and its fingerprint goes into
//!   the [`Quarantine`]: copies that arrive before it ends are refused at once, because a
//!   client retrying a query of death in a loop would otherwise take down one replica per
//!   shard per try. Each new strike doubles the quarantine, up to a cap, so an honest query
//!   caught by a coincidental crash is back soon while a real poison stays out.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fanout_proto::ShardId;
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
pub fn fingerprint(query: &str) -> u64 {
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
    /// Read by every search while a quarantine lasts, written only on a strike.
    entries: RwLock<HashMap<u64, Entry>>,
    /// When the last quarantine ends, in microseconds since `epoch`: every search asks, and
    /// almost always nothing is quarantined, so the answer must need no lock.
    latest_end_us: AtomicU64,
    epoch: Instant,
    refused: metrics::Counter,
    added: metrics::Counter,
}

impl Quarantine {
    /// An empty quarantine.
    pub fn new(policy: QuarantinePolicy) -> Self {
        Self {
            policy,
            entries: RwLock::new(HashMap::new()),
            latest_end_us: AtomicU64::new(0),
            epoch: Instant::now(),
            refused: metrics::counter!("fanout_root_quarantine_refused_total"),
            added: metrics::counter!("fanout_root_quarantine_added_total"),
        }
    }

    fn micros_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// `Err(time left)` while the query with this fingerprint is quarantined.
    pub fn check(&self, fingerprint: u64) -> Result<(), Duration> {
        let now = Instant::now();
        if self.micros_since_epoch(now) >= self.latest_end_us.load(Ordering::Acquire) {
            return Ok(());
        }
        let entries = self.entries.read();
        match entries.get(&fingerprint) {
            Some(entry) if entry.until > now => {
                self.refused.increment(1);
                Err(entry.until - now)
            }
            _ => Ok(()),
        }
    }

    /// Quarantines the query with this fingerprint, twice as long as last time if it was
    /// quarantined before, and says so in the log. Returns how long.
    pub fn add(&self, fingerprint: u64) -> Duration {
        let now = Instant::now();
        let mut entries = self.entries.write();
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
        self.entries.read().len()
    }

    /// Whether nothing is quarantined.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Quarantine {
    fn default() -> Self {
        Self::new(QuarantinePolicy::default())
    }
}

/// Queries known to have run on a shard and come back, by fingerprint and shard: a table of
/// [`KNOWN_GOOD_SLOTS`] atomics, each slot holding the key last recorded there. Recording and
/// asking take no lock and allocate nothing, on every search; a newer query evicts an older one
/// that shares its slot, which only makes that one unknown again (not retried on a broken
/// connection until it has run once more).
pub struct KnownGood {
    slots: Box<[AtomicU64]>,
}

/// Slots of [`KnownGood`]: 512 KiB, enough for the working set of a busy query log.
pub const KNOWN_GOOD_SLOTS: usize = 1 << 16;

/// A query and how many hits each shard returns for it (`from + size`): what [`KnownGood`]
/// knows. A query that ran for 10 hits is not known to run for 10,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run(u64);

impl Run {
    /// The run of the query with this fingerprint, for this many hits.
    pub fn new(fingerprint: u64, window: usize) -> Self {
        Self(fingerprint ^ (window as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
    }
}

impl KnownGood {
    /// The slot key of a run on a shard: never 0, which marks an empty slot.
    fn key(run: Run, shard: ShardId) -> u64 {
        let mixed = run.0 ^ (u64::from(shard) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        mixed.max(1)
    }

    fn slot(&self, key: u64) -> &AtomicU64 {
        &self.slots[key as usize % self.slots.len()]
    }

    /// Notes that `run` ran on `shard` and came back.
    pub fn record(&self, run: Run, shard: ShardId) {
        let key = Self::key(run, shard);
        let slot = self.slot(key);
        // Most searches repeat what is there: reading first keeps the cache line shared.
        if slot.load(Ordering::Relaxed) != key {
            slot.store(key, Ordering::Relaxed);
        }
    }

    /// Whether `run` is known to have run on `shard`.
    pub fn contains(&self, run: Run, shard: ShardId) -> bool {
        let key = Self::key(run, shard);
        self.slot(key).load(Ordering::Relaxed) == key
    }
}

impl Default for KnownGood {
    fn default() -> Self {
        Self {
            slots: (0..KNOWN_GOOD_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_known_good_per_shard_once_recorded() {
        let known = KnownGood::default();
        let query = Run::new(fingerprint("apple"), 10);
        assert!(!known.contains(query, 0));
        known.record(query, 0);
        assert!(known.contains(query, 0));
        assert!(
            !known.contains(query, 1),
            "a query harmless on one shard may not be on another"
        );
        assert!(!known.contains(Run::new(fingerprint("pear"), 10), 0));
        assert!(
            !known.contains(Run::new(fingerprint("apple"), 10_000), 0),
            "nor for more hits"
        );
        // A query that shares the slot evicts it: unknown again, never wrongly known.
        let rival = (1..)
            .map(|i| Run::new(fingerprint(&format!("q{i}")), 10))
            .find(|&f| {
                KnownGood::key(f, 0) as usize % KNOWN_GOOD_SLOTS
                    == KnownGood::key(query, 0) as usize % KNOWN_GOOD_SLOTS
            })
            .unwrap();
        known.record(rival, 0);
        assert!(known.contains(rival, 0) && !known.contains(query, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quarantine_ends_and_doubles_on_each_strike() {
        let quarantine = Quarantine::default();
        let poison = fingerprint("(((");
        assert_eq!(quarantine.check(poison), Ok(()));
        assert_eq!(quarantine.add(poison), Duration::from_secs(60));
        assert_eq!(quarantine.check(poison), Err(Duration::from_secs(60)));
        assert_eq!(quarantine.check(fingerprint("other")), Ok(()));
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
        quarantine.add(1);
        tokio::time::advance(Duration::from_secs(1)).await;
        quarantine.add(2);
        quarantine.add(3);
        assert_eq!(quarantine.len(), 2);
        assert_eq!(quarantine.check(1), Ok(()));
        assert!(quarantine.check(2).is_err() && quarantine.check(3).is_err());
    }
}
