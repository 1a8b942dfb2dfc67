//! JSON-lines streams: one record per line, plain or gzip.
//!
//! Owns bounded line reading: a line longer than the maximum record size is
//! skipped to its end and reported as too large, never buffered whole.
//! Blank lines are skipped. Never interprets content beyond handing each
//! line to the JSON decoder.

use super::{Position, Record, RecordStream};
use crate::decode::keep::KeepParams;
use crate::decode::{self, QuarantineReason};
use crate::event::Event;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts bytes pulled through a reader (before decompression).
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> CountingReader<R> {
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (CountingReader { inner, count: count.clone() }, count)
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A stream of JSON lines from any reader.
pub struct JsonLines {
    reader: BufReader<Box<dyn Read + Send>>,
    origin: Arc<str>,
    line_no: u64,
    max_record: usize,
    bytes: Arc<AtomicU64>,
    line: Vec<u8>,
    /// Which events keep their request parameters.
    keep: Arc<KeepParams>,
    /// Set after an I/O error: the rest of the file cannot be read.
    failed: bool,
}

/// Outcome of reading one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    Ok,
    /// Longer than the limit: the buffer holds its first 256 bytes only.
    TooLarge,
    Eof,
}

/// Reads one line into `line` (without the newline), refusing lines longer
/// than `max_record` while still consuming them, so memory stays bounded.
pub(crate) fn read_bounded_line<R: BufRead>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max_record: usize,
) -> std::io::Result<Line> {
    line.clear();
    append_bounded_line(reader, line, max_record)
}

/// [`read_bounded_line`], appending the line to what `out` holds already
/// (a chunk of lines is read straight into its buffer, with no copy
/// between).
pub(crate) fn append_bounded_line<R: BufRead>(
    reader: &mut R,
    out: &mut Vec<u8>,
    max_record: usize,
) -> std::io::Result<Line> {
    let start = out.len();
    let mut too_large = false;
    let mut any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(if !any {
                Line::Eof
            } else if too_large {
                Line::TooLarge
            } else {
                Line::Ok
            });
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_large {
            let len = out.len() - start;
            if len + chunk.len() > max_record {
                too_large = true;
                let keep = 256usize.saturating_sub(len).min(chunk.len());
                out.extend_from_slice(&chunk[..keep]);
                out.truncate(start + 256.min(len + keep));
            } else {
                out.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(if too_large { Line::TooLarge } else { Line::Ok });
        }
    }
}

impl JsonLines {
    /// `bytes` is the counter the underlying reader adds to (see [`CountingReader`]).
    pub fn new(reader: Box<dyn Read + Send>, origin: String, max_record: usize, bytes: Arc<AtomicU64>) -> Self {
        JsonLines {
            reader: BufReader::with_capacity(256 * 1024, reader),
            origin: origin.into(),
            line_no: 0,
            max_record,
            bytes,
            line: Vec::with_capacity(4096),
            keep: Arc::new(KeepParams::everything()),
            failed: false,
        }
    }

    /// Keeps request parameters only for the events `keep` names.
    pub fn keeping(mut self, keep: Arc<KeepParams>) -> Self {
        self.keep = keep;
        self
    }

    fn read_line(&mut self) -> std::io::Result<Line> {
        read_bounded_line(&mut self.reader, &mut self.line, self.max_record)
    }
}

/// Decodes one line (without its newline); `None` for a blank line.
pub(crate) fn decode_line(line: &[u8], ev: &mut Event, raw: &mut Vec<u8>, keep: &KeepParams) -> Option<Record> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some(match decode::decode_json_keeping(line, ev, keep) {
        Ok(shape) => Record::Event(shape),
        Err(reason) => {
            raw.clear();
            raw.extend_from_slice(line);
            Record::Quarantined(reason)
        }
    })
}

impl JsonLines {
    /// The common case: the whole next line is already in the read buffer,
    /// and is decoded in place rather than copied out first.
    fn next_in_buffer(&mut self, ev: &mut Event, raw: &mut Vec<u8>) -> Option<Option<Record>> {
        let buf = self.reader.buffer();
        let end = memchr::memchr(b'\n', buf)?;
        if end > self.max_record {
            return None; // The slow path refuses it without buffering.
        }
        let record = decode_line(&buf[..end], ev, raw, &self.keep);
        self.reader.consume(end + 1);
        self.line_no += 1;
        Some(record)
    }
}

impl RecordStream for JsonLines {
    fn next_record(&mut self, ev: &mut Event, raw: &mut Vec<u8>) -> Option<Record> {
        loop {
            if self.failed {
                return None;
            }
            match self.next_in_buffer(ev, raw) {
                Some(Some(record)) => return Some(record),
                Some(None) => continue,
                None => {}
            }
            let outcome = match self.read_line() {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(origin = %self.origin, line = self.line_no + 1, error = %e, "read failed; rest of file skipped");
                    self.failed = true;
                    // What was read of the broken record is quarantined.
                    self.line_no += 1;
                    raw.clear();
                    raw.extend_from_slice(&self.line);
                    return Some(Record::Quarantined(QuarantineReason::Truncated));
                }
            };
            self.line_no += 1;
            match outcome {
                Line::Eof => return None,
                Line::TooLarge => {
                    raw.clear();
                    raw.extend_from_slice(&self.line);
                    return Some(Record::Quarantined(QuarantineReason::TooLarge));
                }
                Line::Ok => {}
            }
            let line = std::mem::take(&mut self.line);
            let record = decode_line(&line, ev, raw, &self.keep);
            self.line = line;
            if let Some(record) = record {
                return Some(record);
            }
        }
    }

    fn position(&self) -> Position {
        Position { origin: self.origin.clone(), record: self.line_no }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(data: &[u8], max: usize) -> JsonLines {
        let (r, n) = CountingReader::new(std::io::Cursor::new(data.to_vec()));
        JsonLines::new(Box::new(r), "test".into(), max, n)
    }

    #[test]
    fn long_lines_are_refused_and_skipped() {
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(5000));
        let data =
            format!("{big}\n{{\"timestamp\":1704067200000,\"serviceName\":\"accounts\",\"actionName\":\"login\"}}\n\n");
        let mut s = stream(data.as_bytes(), 1000);
        let (mut ev, mut raw) = (Event::default(), Vec::new());
        assert_eq!(s.next_record(&mut ev, &mut raw), Some(Record::Quarantined(QuarantineReason::TooLarge)));
        assert!(raw.len() <= 256);
        assert!(matches!(s.next_record(&mut ev, &mut raw), Some(Record::Event(_))));
        assert_eq!(s.position().record, 2);
        assert_eq!(s.next_record(&mut ev, &mut raw), None);
    }

    #[test]
    fn last_line_without_newline_and_crlf() {
        let data = b"{\"timestamp\":1704067200000,\"serviceName\":\"accounts\",\"actionName\":\"login\"}\r\n{\"timestamp\":1704067200000,\"serviceName\":\"accounts\",\"actionName\":\"logout\"}";
        let mut s = stream(data, 1000);
        let (mut ev, mut raw) = (Event::default(), Vec::new());
        assert!(matches!(s.next_record(&mut ev, &mut raw), Some(Record::Event(_))));
        assert!(matches!(s.next_record(&mut ev, &mut raw), Some(Record::Event(_))));
        assert_eq!(ev.action, "logout");
        assert_eq!(s.next_record(&mut ev, &mut raw), None);
    }
}
