//! A run's live counters, shared by the reader, the shard writers and the progress display, and
//! the display itself: a bar on standard error with docs/s, MB/s and, when the inputs' sizes are
//! known, an ETA. indicatif draws nothing when standard error is not a terminal.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counters a run updates as it goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Input bytes consumed, as stored (compressed, for gzip inputs).
    input_bytes: AtomicU64,
    /// Total size of the inputs, when every one is a file; 0 when unknown.
    input_total: AtomicU64,
    /// Documents acknowledged by every live replica of their shard.
    docs: AtomicU64,
}

impl Progress {
    /// Sets the inputs' total size (`None` when one of them is a stream).
    pub fn set_input_total(&self, total: Option<u64>) {
        self.input_total
            .store(total.unwrap_or(0), Ordering::Relaxed);
    }

    /// Counts documents acknowledged.
    pub fn add_docs(&self, n: u64) {
        self.docs.fetch_add(n, Ordering::Relaxed);
    }

    /// Documents acknowledged so far.
    pub fn docs(&self) -> u64 {
        self.docs.load(Ordering::Relaxed)
    }

    /// Input bytes consumed so far.
    pub fn input_bytes(&self) -> u64 {
        self.input_bytes.load(Ordering::Relaxed)
    }

    /// Wraps an input so that what is read from it is counted.
    pub fn counting(self: &Arc<Self>, inner: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
        Box::new(Counting {
            inner,
            progress: Arc::clone(self),
        })
    }

    /// Draws a progress bar on standard error until the returned guard is dropped.
    pub fn display(self: &Arc<Self>) -> DisplayGuard {
        let total = self.input_total.load(Ordering::Relaxed);
        let bar = ProgressBar::with_draw_target(
            (total > 0).then_some(total),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        let template = if total > 0 {
            "{bar:30} {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta}) {msg}"
        } else {
            "{spinner} {bytes} read ({binary_bytes_per_sec}) {msg}"
        };
        bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
        let progress = Arc::clone(self);
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut ticks = tokio::time::interval(Duration::from_millis(250));
            loop {
                ticks.tick().await;
                let docs = progress.docs();
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                shown.set_position(progress.input_bytes());
                shown.set_message(format!("{docs} docs, {:.0} docs/s", docs as f64 / secs));
            }
        });
        DisplayGuard { bar, task }
    }
}

/// Keeps the progress bar drawn; dropping it clears the bar.
pub struct DisplayGuard {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DisplayGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

struct Counting {
    inner: Box<dyn Read + Send>,
    progress: Arc<Progress>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress
            .input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_read_through_it() {
        let progress = Arc::new(Progress::default());
        let mut reader = progress.counting(Box::new(io::Cursor::new(vec![7u8; 10_000])));
        let mut sink = Vec::new();
        reader.read_to_end(&mut sink).unwrap();
        assert_eq!(progress.input_bytes(), 10_000);
        progress.add_docs(3);
        progress.add_docs(4);
        assert_eq!(progress.docs(), 7);
    }
}
