//! The leaf's write-ahead log: what a leaf acknowledges is on disk first.
//!
//! Tantivy makes documents durable only at a commit, and a commit is too expensive to make per
//! batch. So every accepted batch is appended here and fsynced before the leaf acknowledges it,
//! and commits happen on a timer. Each commit records in its payload the last sequence number it
//! contains; after a crash the leaf replays the records after that number, which are exactly the
//! acknowledged operations the index had not committed. Once a commit covers a segment, the
//! segment is deleted.
//!
//! On disk: `DIR/<first sequence number, 20 digits>.wal` segment files. A record is
//!
//! ```text
//! u32 LE payload length | u32 LE CRC-32 of the payload | payload
//! payload = u64 LE sequence number | u8 kind (1 upsert, 2 delete) | u32 LE item count
//!           | item count x (u32 LE length | UTF-8 bytes: a JSON document, or an id)
//! ```
//!
//! A crash in the middle of an append leaves a short or mis-checksummed record at the end of
//! the last segment, with nothing valid after it. That record was never acknowledged, so
//! opening the log cuts it off. A bad record anywhere else (in an earlier segment, or followed
//! by a valid record, as after a flipped bit), or a record whose checksum holds but whose
//! contents or sequence number are wrong, is corruption of acknowledged data: opening fails,
//! naming the file and offset, rather than silently dropping it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// What a record asks the index to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Add or replace documents (JSON objects) by id.
    Upsert = 1,
    /// Delete documents by id.
    Delete = 2,
}

/// One record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number, one more than the record before.
    pub seq: u64,
    /// Upserts or deletes.
    pub kind: OpKind,
    /// The documents (JSON) or ids.
    pub items: Vec<String>,
}

/// Why the log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Reading or writing a log file failed.
    #[error("write-ahead log I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A record in the middle of a file is bad: restore the replica from another.
    #[error("write-ahead log {path} is corrupt at byte {offset}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// An earlier write failed midway: nothing more is appended.
    #[error("write-ahead log is unusable after an earlier write failure; restart the leaf")]
    Poisoned,
}

const HEADER: usize = 8;
/// Largest payload accepted on replay; anything bigger is a corrupt length field.
const MAX_PAYLOAD: usize = 1 << 30;

/// An open log, appending to its newest segment.
pub struct Wal {
    dir: PathBuf,
    /// First sequence numbers of the segments on disk, oldest first; the last is `file`'s.
    segments: Vec<u64>,
    file: File,
    next_seq: u64,
    /// Bytes appended since the last checkpoint.
    pending_bytes: u64,
    buf: Vec<u8>,
    poisoned: bool,
}

impl Wal {
    /// Opens the log in `dir` (created if missing) and hands `apply` every record after
    /// `applied`, the sequence number the index's last commit contains, in order. Returns the
    /// log, ready to append, and how many records were replayed.
    pub fn open<E>(
        dir: &Path,
        applied: u64,
        mut apply: impl FnMut(Entry) -> Result<(), E>,
    ) -> Result<(Self, u64), E>
    where
        E: From<WalError>,
    {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WalError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut segments = list_segments(dir).map_err(io(dir))?;
        let mut last_seq = applied;
        let mut replayed = 0;
        for (i, &start) in segments.iter().enumerate() {
            let path = segment_path(dir, start);
            // Records go to `apply` as they are read. Should a segment turn out corrupt, the
            // open fails and the index writer they went to is dropped uncommitted.
            let mut expected = start;
            let bad = read_segment::<E>(&path, |entry| {
                if entry.seq != expected {
                    return Ok(Err(format!(
                        "sequence number {} where {expected} was expected",
                        entry.seq
                    )));
                }
                expected += 1;
                last_seq = last_seq.max(entry.seq);
                if entry.seq > applied {
                    replayed += 1;
                    apply(entry)?;
                }
                Ok(Ok(()))
            })?;
            if let Some(BadRecord { offset, why, whole }) = bad {
                // A crash mid-append leaves a bad record with nothing valid after it. A whole
                // record (its checksum holds) that is wrong, or a bad one followed by a good
                // one, is damage to acknowledged data: cutting there would drop every later
                // acknowledged batch without a word.
                if i + 1 != segments.len() || whole {
                    return Err(WalError::Corrupt { path, offset, why }.into());
                }
                if let Some(next) =
                    valid_record_after(&path, offset, expected).map_err(io(&path))?
                {
                    return Err(WalError::Corrupt {
                        path,
                        offset,
                        why: format!("{why}, followed by a valid record at byte {next}: restore this replica from another"),
                    }
                    .into());
                }
                tracing::warn!(path = %path.display(), offset, %why, "cutting off a torn record at the end of the write-ahead log");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                file.set_len(offset).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
            }
        }
        let next_seq = last_seq + 1;
        // New appends go to a fresh segment; a last segment that starts at `next_seq` holds no
        // records, so it is simply reused.
        if segments.last() != Some(&next_seq) {
            segments.push(next_seq);
        }
        let path = segment_path(dir, next_seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        sync_dir(dir).map_err(io(dir))?;
        Ok((
            Self {
                dir: dir.to_path_buf(),
                segments,
                file,
                next_seq,
                pending_bytes: 0,
                buf: Vec::new(),
                poisoned: false,
            },
            replayed,
        ))
    }

    /// Appends a record and waits until it is on disk. Returns its sequence number.
    pub fn append<'a>(
        &mut self,
        kind: OpKind,
        items: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<u64, WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        let seq = self.next_seq;
        encode(&mut self.buf, seq, kind, items);
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // A half-written record followed by good ones would read as a torn tail on replay
            // and take the good ones with it: stop appending instead.
            self.poisoned = true;
            return Err(WalError::Io {
                path: segment_path(&self.dir, *self.segments.last().expect("one segment")),
                source,
            });
        }
        self.next_seq += 1;
        self.pending_bytes += self.buf.len() as u64;
        Ok(seq)
    }

    /// The sequence number of the last record appended (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Bytes appended since the last checkpoint.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Records that a commit now contains every record up to `applied`: starts a new segment
    /// and deletes the segments the commit covers.
    pub fn checkpoint(&mut self, applied: u64) -> Result<(), WalError> {
        let current = *self.segments.last().expect("one segment");
        if self.next_seq > current && applied >= self.last_seq() {
            let path = segment_path(&self.dir, self.next_seq);
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| WalError::Io {
                    path: path.clone(),
                    source,
                })?;
            self.segments.push(self.next_seq);
        }
        // A segment ends where the next begins; the newest is never deleted.
        let mut keep_from = 0;
        for i in 0..self.segments.len() - 1 {
            if self.segments[i + 1] - 1 <= applied {
                let path = segment_path(&self.dir, self.segments[i]);
                std::fs::remove_file(&path).map_err(|source| WalError::Io { path, source })?;
                keep_from = i + 1;
            } else {
                break;
            }
        }
        self.segments.drain(..keep_from);
        sync_dir(&self.dir).map_err(|source| WalError::Io {
            path: self.dir.clone(),
            source,
        })?;
        if applied >= self.last_seq() {
            self.pending_bytes = 0;
        }
        Ok(())
    }

    /// Segment files on disk, oldest first (for tests and diagnostics).
    pub fn segment_files(&self) -> Vec<PathBuf> {
        self.segments
            .iter()
            .map(|&s| segment_path(&self.dir, s))
            .collect()
    }
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join(format!("{start:020}.wal"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut starts = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(start) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            starts.push(start);
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Makes a created or deleted file's directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn encode<'a>(
    buf: &mut Vec<u8>,
    seq: u64,
    kind: OpKind,
    items: impl ExactSizeIterator<Item = &'a str>,
) {
    buf.clear();
    buf.extend_from_slice(&[0; HEADER]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for item in items {
        buf.extend_from_slice(&(item.len() as u32).to_le_bytes());
        buf.extend_from_slice(item.as_bytes());
    }
    let payload = &buf[HEADER..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    buf[..4].copy_from_slice(&len);
    buf[4..HEADER].copy_from_slice(&crc);
}

/// Reads a segment's records and hands each to `on_entry`, which may refuse it (the inner
/// error) or fail the whole read (the outer one). Returns where and why the readable part ends
/// early: `None` when the segment ends cleanly after its last record.
fn read_segment<E: From<WalError>>(
    path: &Path,
    mut on_entry: impl FnMut(Entry) -> Result<Result<(), String>, E>,
) -> Result<Option<BadRecord>, E> {
    let io = |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut offset = 0u64;
    loop {
        let mut header = [0u8; HEADER];
        match read_full(&mut reader, &mut header).map_err(io)? {
            0 => return Ok(None),
            HEADER => {}
            _ => return Ok(Some(BadRecord::torn(offset, "a short record header"))),
        }
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
        // No record is shorter than MIN_PAYLOAD; zeros (a file extended before its data was
        // written) read as a length of 0, whose empty payload's checksum is 0 too.
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&len) {
            return Ok(Some(BadRecord::torn(
                offset,
                format!("a length of {len} bytes"),
            )));
        }
        let mut payload = vec![0; len];
        if read_full(&mut reader, &mut payload).map_err(io)? < len {
            return Ok(Some(BadRecord::torn(offset, "a short record")));
        }
        if crc32fast::hash(&payload) != crc {
            return Ok(Some(BadRecord::torn(offset, "a checksum mismatch")));
        }
        // The checksum holds, so the record was written whole: a problem with it now is not a
        // torn write.
        let refused = match decode(&payload) {
            Ok(entry) => on_entry(entry)?.err(),
            Err(why) => Some(why),
        };
        if let Some(why) = refused {
            return Ok(Some(BadRecord {
                offset,
                why,
                whole: true,
            }));
        }
        offset += (HEADER + len) as u64;
    }
}

/// The smallest payload: a sequence number, a kind and an item count.
const MIN_PAYLOAD: usize = 8 + 1 + 4;

/// Where a segment's readable part ends early, and why.
struct BadRecord {
    offset: u64,
    why: String,
    /// Whether the record was written whole (its checksum holds), so that it cannot be a torn
    /// write.
    whole: bool,
}

impl BadRecord {
    /// A record that may be a torn write.
    fn torn(offset: u64, why: impl Into<String>) -> Self {
        Self {
            offset,
            why: why.into(),
            whole: false,
        }
    }
}

/// Where, after the bad record at `bad`, a valid record of this segment starts, if anywhere: a
/// header whose length fits the file, a checksum that holds, and a sequence number at or after
/// `expected` (the bad record's own). Scans byte by byte, but checks a checksum only where the
/// sequence number is plausible, so a long damaged tail costs one pass.
fn valid_record_after(path: &Path, bad: u64, expected: u64) -> io::Result<Option<u64>> {
    let bytes = std::fs::read(path)?;
    let plausible = expected..expected.saturating_add(bytes.len() as u64);
    for start in (bad as usize + 1)..bytes.len().saturating_sub(HEADER + 8) {
        let len = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()) as usize;
        let body = start + HEADER;
        if len < MIN_PAYLOAD || body + len > bytes.len() {
            continue;
        }
        let seq = u64::from_le_bytes(bytes[body..body + 8].try_into().unwrap());
        if !plausible.contains(&seq) {
            continue;
        }
        let crc = u32::from_le_bytes(bytes[start + 4..body].try_into().unwrap());
        if crc32fast::hash(&bytes[body..body + len]) == crc {
            return Ok(Some(start as u64));
        }
    }
    Ok(None)
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn decode(payload: &[u8]) -> Result<Entry, String> {
    let mut rest = payload;
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("a record shorter than its contents".into());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let seq = u64::from_le_bytes(take(8)?.try_into().unwrap());
    let kind = match take(1)?[0] {
        1 => OpKind::Upsert,
        2 => OpKind::Delete,
        other => return Err(format!("unknown record kind {other}")),
    };
    let count = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize;
    let mut items = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize;
        let bytes = take(len)?;
        let item =
            std::str::from_utf8(bytes).map_err(|e| format!("an item that is not UTF-8: {e}"))?;
        items.push(item.to_string());
    }
    if !rest.is_empty() {
        return Err("trailing bytes in a record".into());
    }
    Ok(Entry { seq, kind, items })
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
