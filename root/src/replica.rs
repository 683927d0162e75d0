//! What a root knows about one replica: requests in flight, a decaying latency estimate, and
//! whether it is ejected after consecutive failures.
//!
//! The latency estimate is a *peak* EWMA (as in Finagle and linkerd): a slower observation
//! replaces the estimate at once, a faster one is blended in with a weight that decays over
//! `decay` time, and reading it decays it toward zero so that a replica once seen slow is tried
//! again later rather than starved forever.
//!
//! Ejection: after `consecutive_failures` failures in a row a replica is ejected for a backoff
//! that doubles with every further ejection (up to a maximum). When the backoff ends the replica
//! is eligible again; one success re-admits it fully, one more failure ejects it again for
//! longer. All times come from `tokio::time`, so tests can drive them with a paused clock.
//!
//! Two states are about the moment, not about failures:
//! - *stalled*: requests are outstanding, none has been answered for `stall_after`, and a
//!   health check then sent did not answer within `stall_after` either. This is judged from
//!   requests still in flight, so a replica that stops (a paused process, a dead host) is seen
//!   within a fraction of a second, not when its requests finally time out. A replica that
//!   answers slowly under load, or runs one long query, still answers its health checks
//!   (they do not wait for a search slot), so it is not stalled. Any answer, or a health check
//!   that succeeds, ends a stall.
//! - *busy*: it said so (RESOURCE_EXHAUSTED: its queue is full) a moment ago. It is doing its
//!   job, so this is no failure; it just gets no new requests for a short while.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How replicas are judged.
#[derive(Clone, Debug)]
pub struct ReplicaPolicy {
    /// Time constant of the latency EWMA. Default 10 s.
    pub decay: Duration,
    /// Failures in a row that eject a replica. Default 2.
    pub consecutive_failures: u32,
    /// First ejection's length. Default 1 s.
    pub base_backoff: Duration,
    /// Longest ejection. Default 30 s.
    pub max_backoff: Duration,
    /// How long a replica with requests outstanding may go without answering any before it
    /// is asked whether it is alive; the question waits twice as long, and at least 250 ms.
    /// Default 50 ms.
    pub stall_after: Duration,
}

impl Default for ReplicaPolicy {
    fn default() -> Self {
        Self {
            decay: Duration::from_secs(10),
            consecutive_failures: 2,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            stall_after: Duration::from_millis(50),
        }
    }
}

/// The shortest `stall_after` taken: shorter would send a health check per look and spin.
pub const MIN_STALL_AFTER: Duration = Duration::from_millis(10);

/// How long a replica that said it is busy gets no new requests: long enough for its queue
/// to drain a little, short enough that its share of the load comes back soon.
const BUSY_FOR: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Ewma {
    cost_us: f64,
    stamp: Instant,
    /// The last answer, or the start of a request sent while none was outstanding.
    progress: Instant,
}

#[derive(Debug)]
struct Health {
    failures: u32,
    ejected_until: Option<Instant>,
    backoff: Duration,
    busy_until: Option<Instant>,
}

/// What a replica is now, as reported in metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Answering.
    Up,
    /// Ejected after failures.
    Ejected,
    /// Requests outstanding, none answered for a while.
    Stalled,
    /// Said its queue is full.
    Busy,
}

impl Condition {
    /// Every condition, in metric order.
    pub const ALL: [Condition; 4] = [
        Condition::Up,
        Condition::Ejected,
        Condition::Stalled,
        Condition::Busy,
    ];

    /// Its name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Up => "up",
            Condition::Ejected => "ejected",
            Condition::Stalled => "stalled",
            Condition::Busy => "busy",
        }
    }
}

/// One replica's load, latency and health, shared by every request of a root, judged by the
/// policy it was made with.
#[derive(Debug)]
pub struct ReplicaState {
    policy: ReplicaPolicy,
    outstanding: AtomicU32,
    stalled: AtomicBool,
    /// Whether a health check about a possible stall is in flight.
    probing: AtomicBool,
    ewma: Mutex<Ewma>,
    health: Mutex<Health>,
}

/// What [`ReplicaState::record_failure`] did to the replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureEffect {
    /// Still eligible.
    Counted,
    /// Ejected now, for this long.
    Ejected(Duration),
}

impl ReplicaState {
    /// A replica with no history: no latency estimate, not ejected.
    pub fn new(policy: &ReplicaPolicy) -> Self {
        let mut policy = policy.clone();
        policy.stall_after = policy.stall_after.max(MIN_STALL_AFTER);
        let base_backoff = policy.base_backoff;
        Self {
            policy,
            outstanding: AtomicU32::new(0),
            stalled: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            ewma: Mutex::new(Ewma {
                cost_us: 0.0,
                stamp: Instant::now(),
                progress: Instant::now(),
            }),
            health: Mutex::new(Health {
                failures: 0,
                ejected_until: None,
                backoff: base_backoff,
                busy_until: None,
            }),
        }
    }

    /// Requests sent and not yet finished or cancelled.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Marks a request as started; [`ReplicaState::finish`] must follow.
    pub fn start(&self) {
        if self.outstanding.fetch_add(1, Ordering::Relaxed) == 0 {
            // An idle replica owes nothing yet: its stall clock starts now.
            self.ewma.lock().progress = Instant::now();
        }
    }

    /// Marks a request as finished after `latency`: `answered` (with a result or an error of
    /// its own) or cancelled. The latency feeds the estimate (for a cancelled request it is a
    /// lower bound, still worth knowing); only an answer shows the replica is making progress.
    pub fn finish(&self, latency: Duration, answered: bool) {
        let policy = &self.policy;
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut ewma = self.ewma.lock();
        if answered {
            ewma.progress = now;
            self.stalled.store(false, Ordering::Relaxed);
        }
        let rtt = latency.as_secs_f64() * 1e6;
        let w = weight(now.saturating_duration_since(ewma.stamp), policy.decay);
        // Peak-sensitive: a slower answer replaces the estimate as it stands now; a faster one
        // is blended in, cost·w + rtt·(1 − w), the old cost weighted once by the time since it.
        let decayed = ewma.cost_us * w;
        ewma.cost_us = if rtt > decayed {
            rtt
        } else {
            decayed + rtt * (1.0 - w)
        };
        ewma.stamp = now;
    }

    /// The latency estimate now, in microseconds.
    pub fn latency_us(&self) -> f64 {
        let policy = &self.policy;
        let ewma = self.ewma.lock();
        ewma.cost_us
            * weight(
                Instant::now().saturating_duration_since(ewma.stamp),
                policy.decay,
            )
    }

    /// Whether the replica may be chosen now (not inside an ejection).
    pub fn is_available(&self) -> bool {
        let health = self.health.lock();
        health
            .ejected_until
            .is_none_or(|until| Instant::now() >= until)
    }

    /// Whether requests are outstanding and none has been answered for the policy's
    /// `stall_after`: time to ask whether the replica is alive.
    pub fn looks_stalled(&self) -> bool {
        self.outstanding() > 0
            && Instant::now().saturating_duration_since(self.ewma.lock().progress)
                > self.policy.stall_after
    }

    /// Claims the health check about a possible stall: for the one caller that should send it
    /// now, the progress stamp it is about, to hand back to [`ReplicaState::stall_checked`].
    pub fn begin_stall_check(&self) -> Option<Instant> {
        if !self.looks_stalled() || self.probing.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(self.ewma.lock().progress)
    }

    /// Takes in the answer of a stall health check begun at progress stamp `since`: alive (its
    /// stall clock starts again) or stalled. An answer that came in while the check was out,
    /// or nothing left outstanding, means no stall, whatever the check said: a late or lost
    /// health check must not shut out a replica that is answering.
    pub fn stall_checked(&self, alive: bool, since: Instant) {
        let mut ewma = self.ewma.lock();
        if alive {
            ewma.progress = Instant::now();
        }
        let stalled = !alive && ewma.progress == since && self.outstanding() > 0;
        self.stalled.store(stalled, Ordering::Relaxed);
        drop(ewma);
        self.probing.store(false, Ordering::Release);
    }

    /// Whether the replica stalled: it left requests unanswered and then a health check too,
    /// and has answered nothing since.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Records that the replica said it is busy: no new requests for a moment, and no failure.
    pub fn mark_busy(&self) {
        self.health.lock().busy_until = Some(Instant::now() + BUSY_FOR);
    }

    /// Whether the replica said it is busy a moment ago.
    pub fn is_busy(&self) -> bool {
        self.health
            .lock()
            .busy_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether the replica may take a new request now: not ejected, stalled or busy.
    pub fn is_live(&self) -> bool {
        self.condition() == Condition::Up
    }

    /// What the replica is now; ejection first, then a stall, then busy.
    pub fn condition(&self) -> Condition {
        if !self.is_available() {
            Condition::Ejected
        } else if self.is_stalled() {
            Condition::Stalled
        } else if self.is_busy() {
            Condition::Busy
        } else {
            Condition::Up
        }
    }

    /// Whether the replica is ejected or has failed since its last success.
    pub fn is_failing(&self) -> bool {
        self.health.lock().failures > 0
    }

    /// Records a success: the replica is fully re-admitted.
    pub fn record_success(&self) {
        let policy = &self.policy;
        // An answer from the replica: a stall check still out must not undo it.
        self.ewma.lock().progress = Instant::now();
        self.stalled.store(false, Ordering::Relaxed);
        let mut health = self.health.lock();
        health.failures = 0;
        health.ejected_until = None;
        health.backoff = policy.base_backoff;
    }

    /// Records a failure; ejects the replica once failures in a row reach the threshold.
    pub fn record_failure(&self) -> FailureEffect {
        let policy = &self.policy;
        let now = Instant::now();
        let mut health = self.health.lock();
        health.failures += 1;
        let ejected = health.ejected_until.is_some_and(|until| now < until);
        if ejected || health.failures < policy.consecutive_failures.max(1) {
            return FailureEffect::Counted;
        }
        let backoff = health.backoff;
        health.ejected_until = Some(now + backoff);
        health.backoff = (backoff * 2).min(policy.max_backoff);
        FailureEffect::Ejected(backoff)
    }
}

/// How much of an estimate `elapsed` old still counts: e^(−elapsed / tau).
fn weight(elapsed: Duration, tau: Duration) -> f64 {
    (-elapsed.as_secs_f64() / tau.as_secs_f64().max(1e-9)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_observation_counts_at_once_and_decays_away() {
        let policy = ReplicaPolicy::default();
        let r = ReplicaState::new(&policy);
        r.start();
        r.finish(ms(2), true);
        tokio::time::advance(ms(100)).await;
        r.start();
        r.finish(ms(200), true);
        let peak = r.latency_us();
        assert!((peak - 200_000.0).abs() < 1.0, "peak taken at once: {peak}");
        tokio::time::advance(policy.decay).await;
        let later = r.latency_us();
        assert!(
            (later / peak - (-1f64).exp()).abs() < 1e-3,
            "decays by e per time constant: {later}"
        );
        // A fast observation after a long quiet period pulls the estimate most of the way down.
        tokio::time::advance(policy.decay * 5).await;
        r.start();
        r.finish(ms(1), true);
        assert!(r.latency_us() < 3_000.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_faster_observation_blends_with_the_old_cost_weighted_once() {
        let policy = ReplicaPolicy::default();
        let r = ReplicaState::new(&policy);
        r.start();
        r.finish(ms(10), true);
        tokio::time::advance(policy.decay).await;
        r.start();
        r.finish(ms(1), true);
        // 10 ms · e^-1 + 1 ms · (1 - e^-1): the old cost decays once, not twice.
        let e = (-1f64).exp();
        let expected = 10_000.0 * e + 1_000.0 * (1.0 - e);
        assert!(
            (r.latency_us() - expected).abs() < 1.0,
            "{}",
            r.latency_us()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_eject_with_growing_backoff_and_a_success_readmits() {
        let policy = ReplicaPolicy::default();
        let r = ReplicaState::new(&policy);
        assert_eq!(r.record_failure(), FailureEffect::Counted);
        assert!(r.is_available());
        assert_eq!(r.record_failure(), FailureEffect::Ejected(ms(1_000)));
        assert!(!r.is_available());
        // Failures while ejected do not extend the ejection.
        assert_eq!(r.record_failure(), FailureEffect::Counted);
        tokio::time::advance(ms(1_000)).await;
        assert!(r.is_available(), "eligible again after the backoff");
        // Still failing: ejected again at once, for twice as long.
        assert_eq!(r.record_failure(), FailureEffect::Ejected(ms(2_000)));
        tokio::time::advance(ms(2_000)).await;
        r.record_success();
        assert!(r.is_available() && !r.is_failing());
        assert_eq!(
            r.record_failure(),
            FailureEffect::Counted,
            "a success resets the count"
        );
        assert_eq!(
            r.record_failure(),
            FailureEffect::Ejected(ms(1_000)),
            "and the backoff"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_that_answers_nothing_while_asked_is_stalled_and_a_busy_one_recovers() {
        let policy = ReplicaPolicy {
            stall_after: ms(100),
            ..ReplicaPolicy::default()
        };
        let r = ReplicaState::new(&policy);
        tokio::time::advance(ms(1_000)).await;
        assert!(!r.looks_stalled(), "idle is not stalled");
        r.start();
        tokio::time::advance(ms(60)).await;
        r.start();
        tokio::time::advance(ms(60)).await;
        assert!(r.looks_stalled(), "120 ms with no answer");
        let since = r.begin_stall_check().expect("one check is sent");
        assert!(r.begin_stall_check().is_none(), "and only one");
        // It answers its health check: a long search, not a stall.
        r.stall_checked(true, since);
        assert!(!r.looks_stalled() && r.is_live());
        tokio::time::advance(ms(120)).await;
        let since = r.begin_stall_check().unwrap();
        // An answer while the check was out: the check's silence does not count.
        r.start();
        r.finish(ms(1), true);
        r.stall_checked(false, since);
        assert!(r.is_live());
        tokio::time::advance(ms(120)).await;
        let since = r.begin_stall_check().unwrap();
        r.stall_checked(false, since);
        assert_eq!(r.condition(), Condition::Stalled);
        // A cancelled request is no progress; an answer is.
        r.finish(ms(240), false);
        assert!(r.is_stalled());
        r.finish(ms(60), true);
        assert!(!r.is_stalled() && !r.looks_stalled());
        // Steady answers under load keep it up, however long each takes.
        r.start();
        for _ in 0..10 {
            r.start();
            tokio::time::advance(ms(90)).await;
            r.finish(ms(300), true);
            assert!(!r.looks_stalled());
        }
        r.mark_busy();
        assert_eq!(r.condition(), Condition::Busy);
        assert!(!r.is_failing(), "busy is no failure");
        tokio::time::advance(BUSY_FOR).await;
        assert!(r.is_live());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped() {
        let policy = ReplicaPolicy {
            consecutive_failures: 1,
            max_backoff: ms(3_000),
            ..Default::default()
        };
        let r = ReplicaState::new(&policy);
        let mut lengths = Vec::new();
        for _ in 0..4 {
            if let FailureEffect::Ejected(d) = r.record_failure() {
                lengths.push(d);
                tokio::time::advance(d).await;
            }
        }
        assert_eq!(lengths, [ms(1_000), ms(2_000), ms(3_000), ms(3_000)]);
    }
}
