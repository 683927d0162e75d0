//! Reading NDJSON: numbered lines with a bounded length, gzip detected by its magic bytes, and
//! the one thing the indexer must know of each document before a leaf sees it, its id.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// Why one input line is not indexed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line holds nothing but whitespace.
    #[error("empty line")]
    Empty,
    /// The line is not UTF-8; the byte offset of the first bad byte.
    #[error("line is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    /// The line is longer than `--max-line-bytes`.
    #[error("line is {len} bytes, over the limit of {limit} bytes")]
    TooLong {
        /// The line's length, in bytes.
        len: usize,
        /// The longest line accepted.
        limit: usize,
    },
    /// The line is not JSON: the parser's message.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The document has no id field: its name.
    #[error("missing id field {0:?}")]
    MissingId(String),
    /// The id field holds neither a non-empty string nor an integer: its name.
    #[error("id field {0:?} must be a non-empty string or an integer")]
    BadId(String),
    /// A leaf refused the document (a field of the wrong type, for example).
    #[error("{0}")]
    Rejected(String),
}

/// One line read from an input.
#[derive(Debug)]
pub enum Line {
    /// The line's text, without its line break.
    Text(String),
    /// The line could not be read as text.
    Bad(LineError),
}

/// Reads lines of at most `max_bytes`, numbering them from 1. A longer line is skipped to its
/// end without being held in memory, and reported.
pub struct LineReader<R> {
    reader: R,
    max_bytes: usize,
    number: u64,
    bytes_read: u64,
    buf: Vec<u8>,
}

impl LineReader<Box<dyn BufRead + Send>> {
    /// Wraps an input, decompressing it if it starts with the gzip magic bytes.
    pub fn open(input: Box<dyn Read + Send>, max_bytes: usize) -> io::Result<Self> {
        let mut buffered = BufReader::with_capacity(256 << 10, input);
        let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                256 << 10,
                flate2::bufread::MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        Ok(LineReader::new(reader, max_bytes))
    }
}

impl<R: BufRead> LineReader<R> {
    /// Reads lines from `reader`.
    pub fn new(reader: R, max_bytes: usize) -> Self {
        Self {
            reader,
            max_bytes,
            number: 0,
            bytes_read: 0,
            buf: Vec::new(),
        }
    }

    /// Lines read so far from this input.
    pub fn lines_read(&self) -> u64 {
        self.number
    }

    /// Bytes consumed so far (decompressed).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next line and its number, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line)>> {
        self.buf.clear();
        let mut overflow = 0usize;
        let mut saw_any = false;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            saw_any = true;
            let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], i + 1),
                None => (chunk, chunk.len()),
            };
            let room = self.max_bytes.saturating_sub(self.buf.len());
            if overflow == 0 && part.len() <= room {
                self.buf.extend_from_slice(part);
            } else {
                // Over the limit: keep counting, stop storing.
                overflow += part.len();
            }
            let found_newline = done > part.len();
            self.reader.consume(done);
            self.bytes_read += done as u64;
            if found_newline {
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.number += 1;
        if overflow > 0 {
            let len = self.buf.len() + overflow;
            self.buf = Vec::new(); // give the memory of a huge line back
            return Ok(Some((
                self.number,
                Line::Bad(LineError::TooLong {
                    len,
                    limit: self.max_bytes,
                }),
            )));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let line = match std::str::from_utf8(&self.buf) {
            Ok(text) if text.trim().is_empty() => Line::Bad(LineError::Empty),
            Ok(text) => Line::Text(text.to_string()),
            Err(e) => Line::Bad(LineError::InvalidUtf8(e.valid_up_to())),
        };
        Ok(Some((self.number, line)))
    }
}

/// Checks that `line` is one JSON object and returns its id as a string (integers are
/// converted), without building the document: leaves parse it against their schema.
pub fn extract_id(line: &str, id_field: &str) -> Result<String, LineError> {
    let mut de = serde_json::Deserializer::from_str(line);
    let id = IdSeed(id_field)
        .deserialize(&mut de)
        .and_then(|id| de.end().map(|()| id))
        .map_err(|e| LineError::InvalidJson(e.to_string()))?;
    match id {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(_) => Err(LineError::BadId(id_field.to_string())),
        None => Err(LineError::MissingId(id_field.to_string())),
    }
}

/// Deserializes a JSON object, keeping only the value of one field.
struct IdSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdSeed<'_> {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.0 && id.is_none() {
                id = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(u64, String)> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some((n, line)) = reader.next_line().unwrap() {
            out.push((
                n,
                match line {
                    Line::Text(t) => t,
                    Line::Bad(e) => format!("ERR {e}"),
                },
            ));
        }
        assert_eq!(reader.bytes_read(), input.len() as u64);
        out
    }

    #[test]
    fn numbers_lines_and_reports_bad_ones() {
        let input = b"{\"id\":1}\r\n\n  \n\xff\xfe\n0123456789abc\nlast";
        let got = lines(input, 10);
        assert_eq!(got[0], (1, "{\"id\":1}".to_string()));
        assert_eq!(got[1], (2, "ERR empty line".to_string()));
        assert_eq!(got[2], (3, "ERR empty line".to_string()));
        assert_eq!(
            got[3],
            (4, "ERR line is not valid UTF-8 (at byte 0)".to_string())
        );
        assert_eq!(
            got[4],
            (
                5,
                "ERR line is 13 bytes, over the limit of 10 bytes".to_string()
            )
        );
        assert_eq!(got[5], (6, "last".to_string()));
        assert_eq!(
            got.len(),
            6,
            "a final line without a newline counts; no phantom line after it"
        );
    }

    #[test]
    fn a_long_line_is_skipped_across_buffer_refills() {
        let mut input = b"{\"id\":\"a\"}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend(b"\n{\"id\":\"b\"}\n");
        let reader = BufReader::with_capacity(64, &input[..]);
        let mut reader = LineReader::new(reader, 1_000);
        let mut got = Vec::new();
        while let Some((n, line)) = reader.next_line().unwrap() {
            got.push((n, matches!(line, Line::Text(_))));
        }
        assert_eq!(got, [(1, true), (2, false), (3, true)]);
    }

    #[test]
    fn reads_gzip_transparently() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"id\":\"a\"}\n{\"id\":\"b\"}\n").unwrap();
        let data = gz.finish().unwrap();
        let mut reader = LineReader::open(Box::new(std::io::Cursor::new(data)), 100).unwrap();
        let mut n = 0;
        while let Some((_, Line::Text(t))) = reader.next_line().unwrap() {
            assert!(extract_id(&t, "id").is_ok());
            n += 1;
        }
        assert_eq!(n, 2);
    }

    #[test]
    fn extracts_ids_and_explains_failures() {
        assert_eq!(
            extract_id(r#"{"title": "x", "id": "a\"b"}"#, "id").unwrap(),
            "a\"b"
        );
        assert_eq!(extract_id(r#"{"id": 42}"#, "id").unwrap(), "42");
        assert_eq!(extract_id(r#"{"key": "k"}"#, "key").unwrap(), "k");
        assert_eq!(
            extract_id(r#"{"title": "x"}"#, "id"),
            Err(LineError::MissingId("id".into()))
        );
        assert_eq!(
            extract_id(r#"{"id": ""}"#, "id"),
            Err(LineError::BadId("id".into()))
        );
        assert_eq!(
            extract_id(r#"{"id": [1]}"#, "id"),
            Err(LineError::BadId("id".into()))
        );
        assert_eq!(
            extract_id(r#"{"id": 1.5}"#, "id"),
            Err(LineError::BadId("id".into()))
        );
        let err = extract_id(r#"{"id": "a", "title": }"#, "id").unwrap_err();
        assert!(matches!(err, LineError::InvalidJson(_)), "{err}");
        let err = extract_id(r#"[1, 2]"#, "id").unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
        let err = extract_id(r#"{"id": "a"} {"id": "b"}"#, "id").unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }
}
