//! The load driver: open loop at a fixed rate (latency from each request's intended send time)
//! or closed loop at a fixed concurrency, against a root over HTTP or against one in-process
//! tantivy index (the direct baseline), with scenarios interleaved request by request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use fanout_leaf::{LeafService, ShardIndex};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::{per_request, CpuMeter};
use crate::report::{Answer, Recorder, ScenarioReport};
use crate::schedule::{send_offsets, Arrivals};

/// What the load is sent to.
#[derive(Clone)]
pub enum Target {
    /// A root's HTTP API.
    Http {
        /// The HTTP client, shared by every request.
        client: reqwest::Client,
        /// The root's base URL.
        url: String,
    },
    /// One tantivy index in this process, searched through a leaf's own service code: on the
    /// blocking pool, at most one search per core at a time, and a search whose caller gave up
    /// before it started is skipped. Without that bound, an overloaded baseline would start
    /// every late search at once and oversubscribe the cores, which no server does.
    Direct(LeafService),
}

impl Target {
    /// A root at `url` (e.g. `http://127.0.0.1:8080`).
    pub fn http(url: &str) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1_024)
            .tcp_nodelay(true)
            .build()
            .expect("a plain HTTP client builds");
        Target::Http {
            client,
            url: format!("{}/v1/search", url.trim_end_matches('/')),
        }
    }

    /// The direct baseline over `index`, with as many search slots as the machine has cores
    /// (a leaf's default).
    pub fn direct(index: ShardIndex) -> Self {
        Target::Direct(LeafService::new(index, "direct"))
    }

    /// Sends one search; the error is the kind of failure, for the report.
    async fn send(
        &self,
        query: &str,
        size: usize,
        params: &[(String, String)],
        timeout: Duration,
    ) -> Result<Answer, String> {
        match self {
            Target::Http { client, url } => {
                let response = client
                    .get(url)
                    .query(&[("q", query), ("size", &size.to_string())])
                    .query(params)
                    .timeout(timeout)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        match r.bytes().await.map(|b| Answer::from_body(&b)) {
                            Ok(Ok(answer)) => Ok(answer),
                            Ok(Err(_)) | Err(_) => Err("unreadable body".into()),
                        }
                    }
                    Ok(r) => Err(format!("http {}", r.status().as_u16())),
                    Err(e) if e.is_timeout() => Err("client timeout".into()),
                    Err(e) if e.is_connect() => Err("connect".into()),
                    Err(_) => Err("transport".into()),
                }
            }
            Target::Direct(leaf) => {
                let search = leaf.search(query.to_string(), (0, size), None, None, None);
                match tokio::time::timeout(timeout, search).await {
                    Ok(Ok(_)) => Ok(Answer {
                        leaf_requests: 1,
                        shards: 1,
                        ..Answer::default()
                    }),
                    Ok(Err(e)) => Err(format!(
                        "search: {}",
                        e.to_string().split(':').next().unwrap_or("error")
                    )),
                    Err(_) => Err("client timeout".into()),
                }
            }
        }
    }
}

/// A named variant of the request, interleaved with the others (e.g. `hedge=false`).
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its name in reports.
    pub name: String,
    /// Extra query parameters.
    pub params: Vec<(String, String)>,
}

impl Scenario {
    /// Parses `NAME` or `NAME:key=value&key=value`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        if name.is_empty() {
            return Err(format!("{spec:?}: a scenario needs a name"));
        }
        let params = params
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or(format!("{p:?}: expected key=value"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.to_string(),
            params,
        })
    }
}

/// Open or closed loop.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Requests at `rate` per second on a schedule, whatever the target does.
    Open {
        /// Requests per second.
        rate: f64,
        /// Constant or Poisson gaps.
        arrivals: Arrivals,
        /// Seed of the Poisson gaps.
        seed: u64,
    },
    /// `concurrency` clients, each sending its next request when the last one is answered.
    Closed {
        /// Clients.
        concurrency: usize,
    },
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Open or closed loop.
    pub mode: Mode,
    /// Requests before this are sent but not measured.
    pub warmup: Duration,
    /// Measured time after the warm-up.
    pub duration: Duration,
    /// What to send, interleaved.
    pub scenarios: Vec<Scenario>,
    /// Hits per search.
    pub size: usize,
    /// How long the client waits for an answer.
    pub timeout: Duration,
    /// Print a progress line to standard error every second.
    pub progress: bool,
    /// Processes whose CPU time to report per request, over the measured period.
    pub cpu: Option<CpuMeter>,
}

struct Shared {
    recorders: Vec<Mutex<Recorder>>,
    sent: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

/// Runs `plan` against `target` with `queries` (cycled in order) and reports every scenario.
/// `started` fires with the start instant once the first request is about to go, so that
/// faults can be scheduled from the same clock.
pub async fn run_load(
    target: &Target,
    queries: Arc<Vec<String>>,
    plan: &LoadPlan,
    started: Option<tokio::sync::oneshot::Sender<Instant>>,
) -> Vec<ScenarioReport> {
    assert!(!queries.is_empty() && !plan.scenarios.is_empty());
    let shared = Arc::new(Shared {
        recorders: plan
            .scenarios
            .iter()
            .map(|_| Mutex::new(Recorder::default()))
            .collect(),
        sent: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let start = Instant::now() + Duration::from_millis(5);
    if let Some(tx) = started {
        let _ = tx.send(start);
    }
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let progress = plan
        .progress
        .then(|| tokio::spawn(print_progress(Arc::clone(&shared), start)));
    // CPU is sampled at the edges of the measured period, as the requests are.
    let cpu = plan.cpu.clone().map(|meter| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from).await;
            let before = meter.sample();
            tokio::time::sleep_until(end).await;
            (before, meter.sample())
        })
    });
    let sender = Sender {
        target: target.clone(),
        queries,
        shared: Arc::clone(&shared),
        scenarios: plan.scenarios.iter().map(|s| s.params.clone()).collect(),
        size: plan.size,
        timeout: plan.timeout,
        measure_from,
    };
    drive(&sender, plan, start, end).await;
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let mut reports: Vec<ScenarioReport> = shared
        .recorders
        .iter()
        .zip(&plan.scenarios)
        .map(|(r, s)| r.lock().report(&s.name, plan.duration))
        .collect();
    if let Some(Ok((before, after))) = match cpu {
        Some(task) => Some(task.await),
        None => None,
    } {
        // Interleaved scenarios share the processes: the CPU is per request of the whole run.
        let requests = reports.iter().map(|r| r.requests).sum();
        let cpu = per_request(&before, &after, requests);
        for report in &mut reports {
            report.cpu_us_per_request = cpu.clone();
        }
    }
    reports
}

/// What every request of a run needs, cloned into each.
#[derive(Clone)]
struct Sender {
    target: Target,
    queries: Arc<Vec<String>>,
    shared: Arc<Shared>,
    /// Each scenario's extra parameters; request `i` belongs to scenario `i % len`.
    scenarios: Arc<[Vec<(String, String)>]>,
    size: usize,
    timeout: Duration,
    /// Requests due before this are the warm-up: sent, not recorded.
    measure_from: Instant,
}

impl Sender {
    /// Sends request `i` and records its latency from `sent_at`.
    async fn send(self, i: usize, sent_at: Instant) {
        let scenario = i % self.scenarios.len();
        let shared = &self.shared;
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let query = &self.queries[i % self.queries.len()];
        let result = self
            .target
            .send(query, self.size, &self.scenarios[scenario], self.timeout)
            .await;
        let latency = sent_at.elapsed();
        shared.done.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        if sent_at >= self.measure_from {
            let mut recorder = shared.recorders[scenario].lock();
            match result {
                Ok(answer) => recorder.answered(latency, &answer),
                Err(kind) => recorder.failed(kind),
            }
        }
    }
}

/// Sends the plan's requests from `start` to `end`: on a schedule (open loop) or as answers
/// come back (closed loop).
async fn drive(sender: &Sender, plan: &LoadPlan, start: Instant, end: Instant) {
    match plan.mode {
        Mode::Open {
            rate,
            arrivals,
            seed,
        } => {
            let offsets = send_offsets(rate, plan.warmup + plan.duration, arrivals, seed);
            let mut due = pace(start, offsets);
            let mut in_flight = JoinSet::new();
            while let Some((i, intended)) = due.recv().await {
                // Latency counts from the intended time, even when the send itself is late.
                in_flight.spawn(sender.clone().send(i, intended));
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
        }
        Mode::Closed { concurrency } => {
            tokio::time::sleep_until(start).await;
            let next = AtomicUsize::new(0);
            let client = || async {
                while Instant::now() < end {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    // Closed loop: the next request waits for this answer, so latency counts
                    // from the actual send.
                    sender.clone().send(i, Instant::now()).await;
                }
            };
            futures::future::join_all((0..concurrency).map(|_| client())).await;
        }
    }
}

/// Hands out each request's index at its intended send time, from a thread of its own.
///
/// tokio's timers have a resolution of one millisecond and round up: a request scheduled by
/// them leaves up to a millisecond late, and since latency counts from the intended time, the
/// report would charge the harness's own lateness to the system measured (about 0.5-1 ms at the
/// median at low rates). A thread's sleep is accurate to tens of microseconds.
pub fn pace(
    start: Instant,
    offsets: Vec<Duration>,
) -> tokio::sync::mpsc::UnboundedReceiver<(usize, Instant)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for (i, offset) in offsets.into_iter().enumerate() {
            let intended = start + offset;
            std::thread::sleep(intended.saturating_duration_since(Instant::now()));
            if tx.send((i, intended)).is_err() {
                return;
            }
        }
    });
    rx
}

async fn print_progress(shared: Arc<Shared>, start: Instant) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    loop {
        tick.tick().await;
        eprint!(
            "\r{:>5.0} s  sent {:>8}  answered {:>8}  failed {:>6}",
            start.elapsed().as_secs_f64(),
            shared.sent.load(Ordering::Relaxed),
            shared.done.load(Ordering::Relaxed) - shared.failed.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
