//! The leaf service as a plain async API over a [`ShardIndex`], apart from gRPC.
//!
//! Tantivy work is CPU- and disk-bound, so every call runs on the blocking pool; the async
//! runtime only moves bytes.
//!
//! Searches run at most `max_concurrent_searches` at a time, and the wait for a slot happens in
//! async code. When a caller gives up (a hedge won on another replica, or the deadline passed),
//! tonic drops the request's future: a search still waiting for a slot, or handed to the
//! blocking pool but not yet started there, is skipped rather than run for nobody.
//!
//! At most `max_queued_searches` wait for a slot; one more is refused at once as busy
//! (RESOURCE_EXHAUSTED), which a root takes as "ask another replica", not as a failure. A
//! longer queue would only make every search in it later: at the default of 16 per slot and a
//! few milliseconds a search, the wait alone is already tens of milliseconds, past a hedge
//! delay.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use fanout_proto::ShardId;

use crate::collect::Interrupt;
use crate::error::LeafError;
use crate::index::{BatchOutcome, LeafHits, ShardIndex};
use crate::refresh::RefreshPolicy;
use crate::seed::SeedGate;
use crate::stats::{CorpusStats, Supplied};
use crate::top::After;

/// Searches that may wait per search slot unless configured.
pub const DEFAULT_QUEUED_PER_SLOT: usize = 16;

/// One replica of one shard, ready to serve.
#[derive(Clone)]
pub struct LeafService {
    index: Arc<ShardIndex>,
    replica: String,
    search_slots: Arc<Semaphore>,
    /// Searches waiting for a slot, and the most that may.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    stats: Arc<SearchStats>,
    refresh: RefreshPolicy,
    shutdown_delay: std::time::Duration,
    seed: Option<Arc<SeedGate>>,
}

/// Counts of searches run and skipped because their caller had gone.
#[derive(Debug, Default)]
pub struct SearchStats {
    run: AtomicU64,
    skipped: AtomicU64,
    refused: AtomicU64,
}

impl SearchStats {
    /// Searches that ran.
    pub fn run(&self) -> u64 {
        self.run.load(Ordering::Relaxed)
    }

    /// Searches whose caller gave up before they started.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Searches refused as busy: the queue was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Shared between a search's request future and the blocking task that runs it.
#[derive(Default)]
struct SearchControl {
    /// Set by whichever comes first: the blocking task starting the search, or the request's
    /// future being dropped.
    claimed: AtomicBool,
    /// Set when the request's future is dropped after the search started: the search stops
    /// at its next check (see [`crate::collect`]).
    cancelled: AtomicBool,
}

/// A search between its arrival and its end.
struct Pending {
    control: Arc<SearchControl>,
    /// Whether the search was handed to the blocking pool (which then counts a skip itself).
    handed_off: bool,
    stats: Arc<SearchStats>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let started = self.control.claimed.swap(true, Ordering::AcqRel);
        if started {
            // Still running if the caller left early; finished otherwise, and then harmless.
            self.control.cancelled.store(true, Ordering::Release);
        } else if !self.handed_off {
            // Dropped while waiting for a search slot.
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A search waiting for a slot; leaves the queue when dropped.
struct QueuePlace(Arc<AtomicUsize>);

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a leaf says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafInfo {
    /// The shard served.
    pub shard: ShardId,
    /// The replica's name.
    pub replica: String,
    /// Documents searchable now.
    pub num_docs: u64,
    /// The commit searches read.
    pub generation: u64,
    /// The schema's id field.
    pub id_field: String,
    /// The schema's default fields.
    pub default_fields: Vec<String>,
    /// Searches run since the start.
    pub searches_run: u64,
    /// Searches skipped because their caller left before they started.
    pub searches_skipped: u64,
    /// Write-ahead log records replayed at the start.
    pub replayed_records: u64,
    /// Batches acknowledged and not yet committed.
    pub uncommitted_batches: u64,
}

impl LeafService {
    /// Serves `index` under the replica name `replica` (used in responses and logs).
    pub fn new(index: ShardIndex, replica: impl Into<String>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_search_slots(index, replica, cpus)
    }

    /// Like [`LeafService::new`], running at most `slots` searches at a time.
    pub fn with_search_slots(index: ShardIndex, replica: impl Into<String>, slots: usize) -> Self {
        Self {
            index: Arc::new(index),
            replica: replica.into(),
            search_slots: Arc::new(Semaphore::new(slots.max(1))),
            queued: Arc::default(),
            max_queued: DEFAULT_QUEUED_PER_SLOT * slots.max(1),
            stats: Arc::new(SearchStats::default()),
            refresh: RefreshPolicy::default(),
            shutdown_delay: std::time::Duration::ZERO,
            seed: None,
        }
    }

    /// Lets at most `searches` wait for a slot; more are refused as busy.
    pub fn with_search_queue(mut self, searches: usize) -> Self {
        self.max_queued = searches;
        self
    }

    /// On shutdown, keep serving this long while health says NOT_SERVING, so that roots stop
    /// choosing this replica before it stops accepting.
    pub fn with_shutdown_delay(mut self, delay: std::time::Duration) -> Self {
        self.shutdown_delay = delay;
        self
    }

    /// Reports NOT_SERVING until `gate` is open (see [`crate::seed`]); a `Commit` opens it.
    pub fn with_seed_gate(mut self, gate: SeedGate) -> Self {
        self.seed = Some(Arc::new(gate));
        self
    }

    /// The seed gate, if this leaf has one.
    pub fn seed_gate(&self) -> Option<&Arc<SeedGate>> {
        self.seed.as_ref()
    }

    /// How long this leaf keeps serving after it was told to stop.
    pub fn shutdown_delay(&self) -> std::time::Duration {
        self.shutdown_delay
    }

    /// Commits by `policy` rather than the default (once a second).
    pub fn with_refresh(mut self, policy: RefreshPolicy) -> Self {
        self.refresh = policy;
        self
    }

    /// When this leaf commits.
    pub fn refresh_policy(&self) -> RefreshPolicy {
        self.refresh
    }

    /// How many searches ran and how many were skipped.
    pub fn search_stats(&self) -> &SearchStats {
        &self.stats
    }

    /// The replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The shard served.
    pub fn shard(&self) -> ShardId {
        self.index.shard()
    }

    /// Runs a query on the blocking pool, unless the caller gives up before it starts; stops it
    /// if the caller gives up while it runs, or once `timeout` has passed since the call. With
    /// `global`, scores with those statistics (the cluster's) instead of the shard's own; with
    /// `after`, returns only hits that rank after it (see [`ShardIndex::search_after`]).
    pub async fn search(
        &self,
        query: String,
        (from, size): (usize, usize),
        after: Option<After>,
        global: Option<Supplied>,
        timeout: Option<std::time::Duration>,
    ) -> Result<LeafHits, LeafError> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let control = Arc::new(SearchControl::default());
        let mut pending = Pending {
            control: Arc::clone(&control),
            handed_off: false,
            stats: Arc::clone(&self.stats),
        };
        let slot = match Arc::clone(&self.search_slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let _place = self.queue_place()?;
                match Arc::clone(&self.search_slots).acquire_owned().await {
                    Ok(slot) => slot,
                    Err(_) => return Err(LeafError::Internal("search slots closed".into())),
                }
            }
        };
        let stats = Arc::clone(&self.stats);
        pending.handed_off = true;
        let result = self
            .blocking(move |index| {
                let _slot = slot;
                // Claim the search; if the caller already left, skip it.
                if control.claimed.swap(true, Ordering::AcqRel) {
                    stats.skipped.fetch_add(1, Ordering::Relaxed);
                    return Err(LeafError::Cancelled);
                }
                stats.run.fetch_add(1, Ordering::Relaxed);
                let interrupt = Interrupt {
                    cancelled: Some(&control.cancelled),
                    deadline,
                };
                index.search_after(
                    &query,
                    from,
                    size,
                    after.as_ref(),
                    global.as_ref(),
                    &interrupt,
                )
            })
            .await;
        drop(pending);
        result
    }

    /// A place in the queue for a slot, or busy if the queue is full.
    fn queue_place(&self) -> Result<QueuePlace, LeafError> {
        let waiting = self.queued.fetch_add(1, Ordering::AcqRel);
        let place = QueuePlace(Arc::clone(&self.queued));
        if waiting >= self.max_queued {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LeafError::Busy { queued: waiting });
        }
        Ok(place)
    }

    /// The shard's BM25 statistics for a query's terms, and their generation.
    pub async fn stats(&self, query: String) -> Result<(u64, CorpusStats), LeafError> {
        self.blocking(move |index| index.stats(&query)).await
    }

    /// Indexes a batch on the blocking pool.
    pub async fn index(
        &self,
        shard: ShardId,
        num_shards: u32,
        docs: Vec<String>,
    ) -> Result<BatchOutcome, LeafError> {
        self.blocking(move |index| index.index_batch(shard, num_shards, &docs))
            .await
    }

    /// Deletes a batch of ids on the blocking pool.
    pub async fn delete(
        &self,
        shard: ShardId,
        num_shards: u32,
        ids: Vec<String>,
    ) -> Result<BatchOutcome, LeafError> {
        self.blocking(move |index| index.delete_batch(shard, num_shards, &ids))
            .await
    }

    /// Commits by the refresh policy until the future is dropped: searches see acknowledged
    /// writes within the policy's interval.
    pub async fn refresh_loop(&self) {
        let policy = self.refresh;
        let mut ticks = tokio::time::interval(policy.tick());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_commit = tokio::time::Instant::now();
        loop {
            ticks.tick().await;
            let due = policy.due(last_commit.elapsed(), self.index.uncommitted());
            if !due && !self.index.unpublished() {
                continue;
            }
            if let Err(e) = self.commit().await {
                tracing::error!(error = %e, "refresh commit failed; will retry");
            }
            last_commit = tokio::time::Instant::now();
        }
    }

    /// Commits on the blocking pool; returns the new generation and document count.
    pub async fn commit(&self) -> Result<(u64, u64), LeafError> {
        self.blocking(|index| Ok((index.commit()?, index.num_docs())))
            .await
    }

    /// The shard, replica, size and generation.
    pub fn info(&self) -> LeafInfo {
        let config = self.index.schema_config();
        LeafInfo {
            shard: self.index.shard(),
            replica: self.replica.clone(),
            num_docs: self.index.num_docs(),
            generation: self.index.generation(),
            id_field: config.id_field.clone(),
            default_fields: config.default_fields.clone(),
            searches_run: self.stats.run(),
            searches_skipped: self.stats.skipped(),
            replayed_records: self.index.replayed(),
            uncommitted_batches: self.index.uncommitted().ops,
        }
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, LeafError>
    where
        T: Send + 'static,
        F: FnOnce(&ShardIndex) -> Result<T, LeafError> + Send + 'static,
    {
        let index = Arc::clone(&self.index);
        tokio::task::spawn_blocking(move || work(&index))
            .await
            .map_err(|e| LeafError::Internal(format!("leaf worker failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SchemaConfig, WriterOptions};

    fn leaf(slots: usize) -> LeafService {
        let index =
            ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        index
            .index_batch(0, 0, &[r#"{"id": "a", "title": "apple"}"#])
            .unwrap();
        index.commit().unwrap();
        LeafService::with_search_slots(index, "test", slots)
    }

    #[tokio::test]
    async fn a_search_cancelled_while_waiting_for_a_slot_never_runs() {
        let leaf = leaf(1);
        let busy = Arc::clone(&leaf.search_slots).try_acquire_owned().unwrap();
        let mut waiting = Box::pin(leaf.search("apple".into(), (0, 10), None, None, None));
        assert!(
            futures_poll_once(waiting.as_mut()).await.is_none(),
            "no free slot"
        );
        drop(waiting);
        drop(busy);
        assert_eq!(
            (leaf.search_stats().run(), leaf.search_stats().skipped()),
            (0, 1)
        );
        let found = leaf
            .search("apple".into(), (0, 10), None, None, None)
            .await
            .unwrap();
        assert_eq!(found.total_hits, 1);
        assert_eq!(
            (leaf.search_stats().run(), leaf.search_stats().skipped()),
            (1, 1)
        );
        assert_eq!(leaf.info().searches_run, 1);
    }

    #[tokio::test]
    async fn past_a_full_queue_a_search_is_refused_as_busy_at_once() {
        let leaf = leaf(1).with_search_queue(1);
        let held = Arc::clone(&leaf.search_slots).try_acquire_owned().unwrap();
        let mut queued = Box::pin(leaf.search("apple".into(), (0, 10), None, None, None));
        assert!(futures_poll_once(queued.as_mut()).await.is_none(), "queued");
        let refused = leaf.search("apple".into(), (0, 10), None, None, None).await;
        assert!(
            matches!(refused, Err(LeafError::Busy { queued: 1 })),
            "{refused:?}"
        );
        let status = tonic::Status::from(refused.unwrap_err());
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(leaf.search_stats().refused(), 1);
        drop(held);
        assert_eq!(queued.await.unwrap().total_hits, 1);
        // The queue emptied: the next one waits again rather than being refused.
        let held = Arc::clone(&leaf.search_slots).try_acquire_owned().unwrap();
        let mut queued = Box::pin(leaf.search("apple".into(), (0, 10), None, None, None));
        assert!(futures_poll_once(queued.as_mut()).await.is_none());
        drop(queued);
        drop(held);
        assert_eq!(leaf.queued.load(Ordering::Relaxed), 0);
    }

    /// Polls a future once: `Some(output)` if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
