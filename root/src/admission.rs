//! Admission control: how many searches a root runs at once, and what becomes of the rest.
//!
//! Every search fans out to every shard, so a root that takes in more searches than the
//! leaves can serve builds queues everywhere: in its own tasks, in h2 streams, in the leaves'
//! search slots. Latency then grows for everyone, until every answer misses its deadline and
//! the cluster does full work for nobody. A bounded number of searches in flight keeps the
//! queues short and the answers fast; past it a search waits briefly in a short queue, and past
//! that it is refused at once (HTTP 503 with `Retry-After`), which a client can act on.
//!
//! The limit adapts to the measured latency with a gradient, as Netflix's concurrency-limits
//! `Gradient2` does (after TCP Vegas): a short average of search latencies against a baseline,
//! the latency unloaded. Each complete search moves the limit a fifth of the way toward
//! `limit × gradient + √limit`, where the gradient is `TOLERANCE × baseline / short`, at most 1
//! and at least ½: while latency stays within `TOLERANCE` of the baseline, queues are not
//! building and the limit grows by its square root; well above it, the limit shrinks. In
//! fixed and off modes the limiter still runs, for its latency estimate (the queue's
//! deadline checks), not for the limit. The baseline follows lower latency within tens of searches and
//! higher latency only over minutes: Gradient2's long average, counted in searches, followed
//! an overload within a second at this service's rates, and then held the limit high.
//! Only searches that every shard answered are samples. A search that lost a shard for want of
//! capacity (a missed deadline, busy leaves) is a drop: the limit shrinks by a tenth, as AIMD
//! limiters do, since queues past the root are building. One that lost a shard to a fault (a
//! stalled or dead replica), was refused, or was dropped by its client says nothing about
//! load, and counting it would drive the limit down for a fault admission cannot help with.
//!
//! A queued search waits at most the policy's `max_wait`, and no longer than its deadline
//! leaves time to run it (by the current latency estimate): a search that would start too late
//! to answer is refused now rather than run for nobody. (Refusing at once a search that, by
//! the estimate, would wait past its turn made refusals faster at the median but not at the
//! tail, and cost goodput: see bench/results/overload.md.)

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How the concurrency limit is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitMode {
    /// Adapts to latency between `min_in_flight` and `max_in_flight`.
    Adaptive,
    /// A fixed number of searches at once.
    Fixed(usize),
    /// No limit: every search runs at once (the behaviour before admission control).
    Off,
}

/// How a root admits searches.
#[derive(Clone, Debug)]
pub struct AdmissionPolicy {
    /// How the limit is set. Default adaptive.
    pub mode: LimitMode,
    /// The adaptive limit's start. Default 16.
    pub initial: usize,
    /// The adaptive limit's floor. Default 8.
    pub min_in_flight: usize,
    /// The adaptive limit's ceiling. Default 256.
    pub max_in_flight: usize,
    /// Searches that may wait for a place; past it they are refused. Default 32.
    pub queue: usize,
    /// Longest a search waits in the queue. Default 10 ms: the queue smooths bursts; a longer
    /// wait would only make refusals slow.
    pub max_wait: Duration,
}

impl Default for AdmissionPolicy {
    fn default() -> Self {
        Self {
            mode: LimitMode::Adaptive,
            initial: 16,
            min_in_flight: 8,
            max_in_flight: 256,
            queue: 32,
            max_wait: Duration::from_millis(10),
        }
    }
}

impl AdmissionPolicy {
    /// Checks that the bounds make sense, naming what does not.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_in_flight == 0 {
            return Err("the least number of searches in flight must be at least 1".into());
        }
        if self.min_in_flight > self.max_in_flight {
            return Err(format!(
                "the adaptive limit's floor ({}) is above its ceiling ({})",
                self.min_in_flight, self.max_in_flight
            ));
        }
        if self.mode == LimitMode::Fixed(0) {
            return Err("a fixed limit must be at least 1".into());
        }
        Ok(())
    }
}

/// Why a search was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The limit is reached and the queue is full.
    QueueFull,
    /// It waited as long as it may, or its deadline leaves too little time to run it.
    Deadline,
}

impl Refusal {
    /// Its name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::Deadline => "deadline",
        }
    }
}

/// Short average latency over the baseline above which the limit shrinks.
const TOLERANCE: f64 = 1.5;
/// Weight of a new sample in the short average: about the last 10 searches.
const SHORT_WEIGHT: f64 = 0.1;
/// Weight of a lower short average in the baseline: it follows better latency within tens
/// of searches.
const BASELINE_FALL: f64 = 0.05;
/// Time constant of the baseline's rise toward a higher short average. Counted in time, not
/// searches: at 1,000 searches a second, a baseline of 500 searches would follow an overload
/// within a second, and the limit would then let the queues it caused stand.
const BASELINE_RISE: Duration = Duration::from_secs(120);
/// The share of the limit in use above which the limit is what holds searches back.
const BINDING: f64 = 0.9;
/// What a drop leaves of the limit.
const DROP_FACTOR: f64 = 0.9;
/// How much of each newly computed limit is taken in.
const SMOOTHING: f64 = 0.2;

/// The gradient limiter: pure arithmetic on latency samples.
#[derive(Clone, Debug)]
pub struct GradientLimit {
    limit: f64,
    min: f64,
    max: f64,
    short_us: Option<f64>,
    /// The latency of the system unloaded, as far as recent searches show it.
    baseline_us: Option<f64>,
    last: Option<Instant>,
}

impl GradientLimit {
    /// A limiter starting at `initial`, kept within `min..=max`.
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        let (min, max) = (min.max(1) as f64, max.max(min.max(1)) as f64);
        Self {
            limit: (initial as f64).clamp(min, max),
            min,
            max,
            short_us: None,
            baseline_us: None,
            last: None,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// The recent average latency, once there is one.
    pub fn estimate(&self) -> Option<Duration> {
        self.short_us.map(|us| Duration::from_micros(us as u64))
    }

    /// Takes in a search that lost a shard for want of capacity, with `in_flight` searches at
    /// once: the limit shrinks by a tenth, if it is what holds searches back.
    pub fn drop_sample(&mut self, in_flight: usize) {
        if (in_flight as f64) < self.limit * BINDING {
            return;
        }
        self.limit = (self.limit * DROP_FACTOR).clamp(self.min, self.max);
    }

    /// Takes in the latency of a search that ran with `in_flight` searches at once.
    pub fn sample(&mut self, latency: Duration, in_flight: usize) {
        let rtt = latency.as_secs_f64() * 1e6;
        let blend = |old: Option<f64>, weight: f64| match old {
            Some(old) => old * (1.0 - weight) + rtt * weight,
            None => rtt,
        };
        let short = blend(self.short_us, SHORT_WEIGHT);
        let now = Instant::now();
        let since = self.last.map_or(Duration::ZERO, |last| now - last);
        let baseline = match self.baseline_us {
            None => short,
            Some(base) if short < base => base + (short - base) * BASELINE_FALL,
            // Latency can rise for good (a bigger index), so the baseline follows, slowly.
            Some(base) => base + (short - base) * (1.0 - weight(since, BASELINE_RISE)),
        };
        self.short_us = Some(short);
        self.baseline_us = Some(baseline);
        self.last = Some(now);
        // Two guards on what latency may say about the limit. With fewer than half the places
        // used, nothing: the limit would grow without bound under a light load and then let a
        // burst in at once. With the limit not reached (under 90% used), nothing against it:
        // it held nothing back, so the latency came from elsewhere (a costly query mix, another
        // root), and shrinking it would only refuse a later burst.
        if (in_flight as f64) < self.limit / 2.0 {
            return;
        }
        let gradient = (TOLERANCE * baseline / short.max(1.0)).clamp(0.5, 1.0);
        if gradient < 1.0 && (in_flight as f64) < self.limit * BINDING {
            return;
        }
        let proposed = self.limit * gradient + self.limit.sqrt();
        self.limit =
            (self.limit * (1.0 - SMOOTHING) + proposed * SMOOTHING).clamp(self.min, self.max);
    }
}

/// How much of a value `elapsed` old still counts: e^(−elapsed / tau).
fn weight(elapsed: Duration, tau: Duration) -> f64 {
    (-elapsed.as_secs_f64() / tau.as_secs_f64()).exp()
}

/// The limit as the gauge shows it: 0 for none (`off`).
fn gauge_value(limit: usize) -> f64 {
    if limit == usize::MAX {
        0.0
    } else {
        limit as f64
    }
}

struct State {
    limiter: GradientLimit,
    in_flight: usize,
    waiting: VecDeque<oneshot::Sender<()>>,
}

/// The gate every search passes: a permit while it runs, a short wait, or a refusal.
pub struct Admission {
    policy: AdmissionPolicy,
    state: Mutex<State>,
    limit_gauge: metrics::Gauge,
    in_flight_gauge: metrics::Gauge,
    queued_gauge: metrics::Gauge,
    refused: [metrics::Counter; 2],
}

impl Admission {
    /// A gate with nothing in flight.
    pub fn new(policy: &AdmissionPolicy) -> Arc<Self> {
        let initial = match policy.mode {
            LimitMode::Adaptive => policy.initial,
            LimitMode::Fixed(n) => n,
            LimitMode::Off => usize::MAX,
        };
        let refused = [Refusal::QueueFull, Refusal::Deadline]
            .map(|r| metrics::counter!("fanout_root_refused_total", "reason" => r.as_str()));
        let admission = Self {
            policy: policy.clone(),
            state: Mutex::new(State {
                limiter: GradientLimit::new(initial, policy.min_in_flight, policy.max_in_flight),
                in_flight: 0,
                waiting: VecDeque::new(),
            }),
            limit_gauge: metrics::gauge!("fanout_root_admission_limit"),
            in_flight_gauge: metrics::gauge!("fanout_root_searches_in_flight"),
            queued_gauge: metrics::gauge!("fanout_root_admission_queued"),
            refused,
        };
        admission.limit_gauge.set(gauge_value(admission.limit()));
        Arc::new(admission)
    }

    /// The most searches run at once now.
    pub fn limit(&self) -> usize {
        let state = self.state.lock();
        self.current_limit(&state)
    }

    fn current_limit(&self, state: &State) -> usize {
        match self.policy.mode {
            LimitMode::Adaptive => state.limiter.limit(),
            LimitMode::Fixed(n) => n,
            LimitMode::Off => usize::MAX,
        }
    }

    /// Searches running now.
    pub fn in_flight(&self) -> usize {
        self.state.lock().in_flight
    }

    /// Admits a search that must answer by `deadline`: at once if there is a place, after a
    /// short wait in the queue if one frees in time, else refuses it.
    pub async fn admit(self: &Arc<Self>, deadline: Instant) -> Result<Permit, Refusal> {
        let (receiver, wait_until) = {
            let mut state = self.state.lock();
            if state.in_flight < self.current_limit(&state) && state.waiting.is_empty() {
                state.in_flight += 1;
                self.in_flight_gauge.set(state.in_flight as f64);
                return Ok(self.permit());
            }
            // Searches whose clients left while queued still hold their senders.
            state.waiting.retain(|sender| !sender.is_closed());
            self.queued_gauge.set(state.waiting.len() as f64);
            if state.waiting.len() >= self.policy.queue {
                return Err(self.refuse(Refusal::QueueFull));
            }
            let now = Instant::now();
            let run_time = state.limiter.estimate().unwrap_or(Duration::ZERO);
            let latest_start = deadline.checked_sub(run_time).unwrap_or(now);
            let wait_until = (now + self.policy.max_wait).min(latest_start);
            if wait_until <= now {
                return Err(self.refuse(Refusal::Deadline));
            }
            let (sender, receiver) = oneshot::channel();
            state.waiting.push_back(sender);
            self.queued_gauge.set(state.waiting.len() as f64);
            (receiver, wait_until)
        };
        let mut waiter = Waiter {
            receiver,
            admitted: false,
            admission: self,
        };
        match tokio::time::timeout_at(wait_until, &mut waiter.receiver).await {
            Ok(Ok(())) => {
                waiter.admitted = true;
                Ok(self.permit())
            }
            // The gate dropped the sender: only when it is dropped itself.
            Ok(Err(_)) => Err(self.refuse(Refusal::QueueFull)),
            Err(_) => Err(self.refuse(Refusal::Deadline)),
        }
    }

    fn permit(self: &Arc<Self>) -> Permit {
        Permit {
            admission: Arc::clone(self),
            started: Instant::now(),
            outcome: Outcome::Unknown,
        }
    }

    fn refuse(&self, why: Refusal) -> Refusal {
        let counter = match why {
            Refusal::QueueFull => &self.refused[0],
            Refusal::Deadline => &self.refused[1],
        };
        counter.increment(1);
        why
    }

    /// Gives a place back, with what the search says of the load, and hands free places to
    /// the searches waiting longest.
    fn release(&self, sample: Sample) {
        let mut state = self.state.lock();
        match sample {
            Sample::Latency(latency) => {
                let in_flight = state.in_flight;
                state.limiter.sample(latency, in_flight);
            }
            Sample::Drop => {
                let in_flight = state.in_flight;
                state.limiter.drop_sample(in_flight);
            }
            Sample::Nothing => {}
        }
        state.in_flight -= 1;
        let limit = self.current_limit(&state);
        while state.in_flight < limit {
            let Some(next) = state.waiting.pop_front() else {
                break;
            };
            // A send fails only when the waiter left; the place goes to the next one.
            if next.send(()).is_ok() {
                state.in_flight += 1;
            }
        }
        self.limit_gauge.set(gauge_value(limit));
        self.in_flight_gauge.set(state.in_flight as f64);
        self.queued_gauge.set(state.waiting.len() as f64);
    }
}

/// A queued search's side of the handover. Dropped without being admitted (its client left,
/// or its wait ran out) just as a place was handed to it, it gives that place back: otherwise
/// the place would be lost for good.
struct Waiter<'a> {
    receiver: oneshot::Receiver<()>,
    admitted: bool,
    admission: &'a Admission,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        self.receiver.close();
        if self.receiver.try_recv().is_ok() {
            self.admission.release(Sample::Nothing);
        }
    }
}

/// What a finished search says of the load.
#[derive(Clone, Copy, Debug)]
enum Sample {
    /// Every shard answered, in this time.
    Latency(Duration),
    /// A shard was lost for want of capacity.
    Drop,
    /// Nothing: a fault, an error, a client that left.
    Nothing,
}

/// A place for one search, given back when dropped.
pub struct Permit {
    admission: Arc<Admission>,
    started: Instant,
    outcome: Outcome,
}

/// How the search a permit is for ended, as far as the limit cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Not said: a fault, an error, a client that left.
    Unknown,
    /// Every shard answered.
    Complete,
    /// A shard was lost for want of capacity.
    Overloaded,
}

impl Permit {
    /// Marks the search as answered by every shard: its latency is a sample for the limit.
    pub fn complete(&mut self) {
        self.outcome = Outcome::Complete;
    }

    /// Marks the search as having lost a shard for want of capacity: the limit shrinks.
    pub fn overloaded(&mut self) {
        self.outcome = Outcome::Overloaded;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let sample = match self.outcome {
            Outcome::Complete => Sample::Latency(self.started.elapsed()),
            Outcome::Overloaded => Sample::Drop,
            Outcome::Unknown => Sample::Nothing,
        };
        self.admission.release(sample);
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
