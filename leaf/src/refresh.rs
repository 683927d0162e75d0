//! When a leaf commits. Tantivy shows documents to searches only after a commit, and a commit
//! costs an fsync of new segment files, so the leaf commits on a timer rather than per batch
//! (the write-ahead log already made each batch durable). The timer bounds how long an
//! acknowledged write stays invisible; the log-size bound keeps a long interval from growing
//! the log, and with it the replay after a crash, without limit.

use std::time::Duration;

use crate::index::Uncommitted;

/// The refresh settings, with their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Longest time an acknowledged write waits to become searchable. Default 1 s.
    pub interval: Duration,
    /// Commit early once this much log has built up since the last commit. Default 256 MiB.
    pub max_log_bytes: u64,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            max_log_bytes: 256 << 20,
        }
    }
}

impl RefreshPolicy {
    /// Whether to commit now, `since_commit` after the last one.
    pub fn due(&self, since_commit: Duration, pending: Uncommitted) -> bool {
        pending.ops > 0
            && (since_commit >= self.interval || pending.log_bytes >= self.max_log_bytes)
    }

    /// How often to look: often enough that a write waits at most about a quarter interval
    /// past it, and at least once a second so the log-size bound is noticed.
    pub fn tick(&self) -> Duration {
        (self.interval / 4).clamp(Duration::from_millis(5), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(ops: u64, log_bytes: u64) -> Uncommitted {
        Uncommitted { ops, log_bytes }
    }

    #[test]
    fn commits_when_the_interval_passed_or_the_log_grew_and_only_with_news() {
        let policy = RefreshPolicy {
            interval: Duration::from_secs(2),
            max_log_bytes: 1_000,
        };
        let early = Duration::from_millis(500);
        let late = Duration::from_secs(2);
        assert!(!policy.due(early, pending(3, 10)));
        assert!(policy.due(late, pending(3, 10)));
        assert!(policy.due(early, pending(3, 1_000)));
        assert!(!policy.due(late, pending(0, 0)), "nothing to commit");
        assert!(!policy.due(Duration::from_secs(3600), pending(0, 0)));
    }

    #[test]
    fn ticks_a_quarter_interval_within_bounds() {
        let tick = |ms| {
            RefreshPolicy {
                interval: Duration::from_millis(ms),
                ..RefreshPolicy::default()
            }
            .tick()
        };
        assert_eq!(tick(1_000), Duration::from_millis(250));
        assert_eq!(tick(4), Duration::from_millis(5));
        assert_eq!(tick(3_600_000), Duration::from_secs(1));
    }
}
