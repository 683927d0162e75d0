//! Lines that were not indexed: each with its source, line number and reason, counted,
//! sampled for the summary and written to an optional rejects file.

use std::io::{self, Write};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::ndjson::LineError;

/// A line that was not indexed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The input the line came from.
    pub source: Arc<str>,
    /// Its line number, from 1.
    pub line: u64,
    /// Why it was not indexed.
    pub reason: LineError,
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.reason)
    }
}

/// Collects rejects from the reader and the shard writers: counts them, keeps the first few for
/// the summary, and writes every one to an optional rejects file as NDJSON.
pub struct RejectLog {
    inner: Mutex<RejectLogInner>,
}

struct RejectLogInner {
    count: u64,
    sample: Vec<Reject>,
    file: Option<Box<dyn Write + Send>>,
    file_error: Option<io::Error>,
}

/// How many rejects a summary keeps.
pub const REJECT_SAMPLE: usize = 20;

impl RejectLog {
    /// A log that also writes every reject to `file`, if given.
    pub fn new(file: Option<Box<dyn Write + Send>>) -> Self {
        Self {
            inner: Mutex::new(RejectLogInner {
                count: 0,
                sample: Vec::new(),
                file,
                file_error: None,
            }),
        }
    }

    /// Records one reject.
    pub fn record(&self, reject: Reject) {
        let mut inner = self.inner.lock();
        inner.count += 1;
        if let Some(file) = inner.file.as_mut() {
            let line = serde_json::json!({
                "source": &*reject.source, "line": reject.line, "reason": reject.reason.to_string()
            });
            if let Err(e) = writeln!(file, "{line}") {
                inner.file_error.get_or_insert(e);
                inner.file = None;
            }
        }
        if inner.sample.len() < REJECT_SAMPLE {
            inner.sample.push(reject);
        }
    }

    pub(crate) fn finish(&self) -> (u64, Vec<Reject>, Option<io::Error>) {
        let mut inner = self.inner.lock();
        if let Some(file) = inner.file.as_mut() {
            if let Err(e) = file.flush() {
                inner.file_error.get_or_insert(e);
            }
        }
        (
            inner.count,
            std::mem::take(&mut inner.sample),
            inner.file_error.take(),
        )
    }
}
