//! Collection that stops when nobody waits for it any more.
//!
//! A root gives up on a search at its deadline, or drops it when a hedge on another replica
//! answered first. Without a check inside collection the leaf would go on scoring every match
//! of an expensive query for nobody, holding a search slot and memory (a 250,000-word query
//! kept two replicas busy for 28 s after its 2 s deadline). [`Interruptible`] wraps a collector
//! and looks at its [`Interrupt`] before each segment and every [`CHECK_EVERY`] documents, so a
//! search stops within a few milliseconds of being abandoned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Weight;
use tantivy::{DocSet, SegmentReader, TantivyError, TERMINATED};

/// Documents scored between two checks: a few hundred microseconds of work at most, and the
/// check (an atomic load and, with a deadline, a clock read) is lost in it.
pub const CHECK_EVERY: u32 = 4_096;

/// Why a search stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Its caller went away (cancelled, a hedge won elsewhere, the gRPC deadline passed).
    Cancelled,
    /// Its own deadline passed.
    DeadlineExceeded,
}

/// When a search should stop: a flag its caller sets on leaving, and a deadline.
#[derive(Debug, Default)]
pub struct Interrupt<'a> {
    /// Set when the caller gave up.
    pub cancelled: Option<&'a AtomicBool>,
    /// When the search must stop.
    pub deadline: Option<Instant>,
}

impl Interrupt<'_> {
    /// An interrupt that never fires.
    pub fn never() -> Self {
        Self::default()
    }

    /// Whether the search should stop now, and why.
    pub fn check(&self) -> Result<(), Stopped> {
        if self.cancelled.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Stopped::Cancelled);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Stopped::DeadlineExceeded);
        }
        Ok(())
    }

    /// [`Interrupt::check`] as a tantivy error, to end a collection. The caller tells an
    /// interruption from other errors by checking the interrupt again: once fired, it stays so.
    fn check_tantivy(&self) -> tantivy::Result<()> {
        self.check()
            .map_err(|why| TantivyError::InternalError(format!("search interrupted: {why:?}")))
    }
}

/// A collector that stops, with an error, when its interrupt fires. It drives each segment's
/// scorer itself rather than through tantivy's `for_each`, which cannot be stopped midway.
pub struct Interruptible<'a, C> {
    /// The collector wrapped.
    pub inner: C,
    /// When to stop.
    pub interrupt: &'a Interrupt<'a>,
}

impl<C: Collector> Collector for Interruptible<'_, C> {
    type Fruit = C::Fruit;
    type Child = C::Child;

    fn for_segment(
        &self,
        segment_local_id: u32,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        self.inner.for_segment(segment_local_id, segment)
    }

    fn requires_scoring(&self) -> bool {
        self.inner.requires_scoring()
    }

    fn merge_fruits(
        &self,
        segment_fruits: Vec<<Self::Child as SegmentCollector>::Fruit>,
    ) -> tantivy::Result<Self::Fruit> {
        self.inner.merge_fruits(segment_fruits)
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment_ord: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<<Self::Child as SegmentCollector>::Fruit> {
        self.interrupt.check_tantivy()?;
        let mut child = self.inner.for_segment(segment_ord, reader)?;
        let mut scorer = weight.scorer(reader, 1.0)?;
        let alive = reader.alive_bitset();
        let scoring = self.inner.requires_scoring();
        let mut until_check = CHECK_EVERY;
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|alive| alive.is_alive(doc)) {
                child.collect(doc, if scoring { scorer.score() } else { 0.0 });
            }
            until_check -= 1;
            if until_check == 0 {
                self.interrupt.check_tantivy()?;
                until_check = CHECK_EVERY;
            }
            doc = scorer.advance();
        }
        Ok(child.harvest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    use tantivy::query::AllQuery;

    use crate::{SchemaConfig, ShardIndex, WriterOptions};

    /// Counts documents, and raises `flag` (as a leaving caller would) after `after` of them.
    #[derive(Clone)]
    struct RaiseAfter {
        flag: Arc<AtomicBool>,
        after: usize,
        seen: Arc<AtomicUsize>,
    }

    impl Collector for RaiseAfter {
        type Fruit = ();
        type Child = RaiseAfter;

        fn for_segment(&self, _: u32, _: &SegmentReader) -> tantivy::Result<Self::Child> {
            Ok(self.clone())
        }

        fn requires_scoring(&self) -> bool {
            false
        }

        fn merge_fruits(&self, _: Vec<()>) -> tantivy::Result<()> {
            Ok(())
        }
    }

    impl SegmentCollector for RaiseAfter {
        type Fruit = ();

        fn collect(&mut self, _: u32, _: f32) {
            if self.seen.fetch_add(1, Ordering::Relaxed) + 1 == self.after {
                self.flag.store(true, Ordering::Relaxed);
            }
        }

        fn harvest(self) {}
    }

    #[test]
    fn a_search_stops_within_one_check_of_its_caller_leaving() {
        let index =
            ShardIndex::in_ram(0, SchemaConfig::default(), &WriterOptions::default()).unwrap();
        let docs: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"id": "{i}", "title": "t"}}"#))
            .collect();
        index.index_batch(0, 0, &docs).unwrap();
        index.commit().unwrap();
        let searcher = index.tantivy_index().reader().unwrap().searcher();
        assert_eq!(
            searcher.segment_readers().len(),
            1,
            "one segment to stop inside"
        );

        let raise = RaiseAfter {
            flag: Arc::default(),
            after: 5_000,
            seen: Arc::default(),
        };
        let interrupt = Interrupt {
            cancelled: Some(&raise.flag),
            deadline: None,
        };
        let collector = Interruptible {
            inner: raise.clone(),
            interrupt: &interrupt,
        };
        assert!(searcher.search(&AllQuery, &collector).is_err());
        assert_eq!(interrupt.check(), Err(Stopped::Cancelled));
        let seen = raise.seen.load(Ordering::Relaxed);
        assert!(
            (5_000..=5_000 + CHECK_EVERY as usize).contains(&seen),
            "stopped after {seen} of 20,000 documents"
        );
    }

    #[test]
    fn an_interrupt_fires_on_its_flag_or_its_deadline() {
        assert_eq!(Interrupt::never().check(), Ok(()));
        let flag = AtomicBool::new(false);
        let interrupt = Interrupt {
            cancelled: Some(&flag),
            deadline: Some(Instant::now() + Duration::from_secs(60)),
        };
        assert_eq!(interrupt.check(), Ok(()));
        flag.store(true, Ordering::Relaxed);
        assert_eq!(interrupt.check(), Err(Stopped::Cancelled));
        let late = Interrupt {
            cancelled: None,
            deadline: Some(Instant::now()),
        };
        assert_eq!(late.check(), Err(Stopped::DeadlineExceeded));
        assert!(late.check_tantivy().is_err());
    }
}
