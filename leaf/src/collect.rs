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
    pub cancelled: Option<&'a AtomicBool>,
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

    /// [`Interrupt::check`] as a tantivy error, to end a collection.
    fn check_tantivy(&self) -> tantivy::Result<()> {
        self.check()
            .map_err(|why| TantivyError::InternalError(format!("{STOPPED}: {why:?}")))
    }
}

/// The message prefix of the tantivy error that ends an interrupted collection.
const STOPPED: &str = "search interrupted";

/// A collector that stops, with an error, when its interrupt fires. It drives each segment's
/// scorer itself rather than through tantivy's `for_each`, which cannot be stopped midway.
pub struct Interruptible<'a, C> {
    pub inner: C,
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

/// Whether `error` is the one an interrupted collection ends with.
pub fn is_interruption(error: &TantivyError) -> bool {
    matches!(error, TantivyError::InternalError(message) if message.starts_with(STOPPED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let error = late.check_tantivy().unwrap_err();
        assert!(is_interruption(&error), "{error}");
    }
}
