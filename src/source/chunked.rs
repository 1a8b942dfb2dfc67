//! JSON-lines streams decoded by several threads, in order.
//!
//! One reader thread splits the stream's files into chunks of whole lines
//! (bounded reading as in [`super::lines`]: an oversized line is cut to a
//! prefix and flagged, never buffered whole); chunk *k* goes to worker
//! *k mod W*, which decodes it into a batch of [`Event`] slots; the
//! consumer takes results from the workers in the same round-robin order,
//! so records leave in exactly the order of the files. This spreads one
//! large stream (a workspace's delivered audit logs) over every core,
//! where a thread per stream would leave the biggest stream on one.
//! Every channel is bounded, and spent chunks and batches are recycled.

use super::files::{Format, sniff};
use super::lines::{CountingReader, Line, append_bounded_line};
use super::{Decoded, Position, Record, RecordStream};
use crate::decode::QuarantineReason;
use crate::decode::keep::KeepParams;
use crate::event::Event;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Lines per chunk.
const CHUNK_LINES: usize = 1024;
/// Chunks (or batches) in flight per worker.
const IN_FLIGHT: usize = 2;

/// Lines read from one file, ready to decode.
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    /// (start, end, line number, refused as too large) per line.
    lines: Vec<(usize, usize, u64, bool)>,
    origin: Arc<str>,
    bytes_read: u64,
}

/// Decoded records of one chunk.
#[derive(Default)]
struct Batch {
    items: Vec<Decoded>,
    len: usize,
    bytes_read: u64,
    /// A file that could not be opened or read, reported in order.
    error: Option<String>,
}

/// What the reader sends a worker.
enum Work {
    Lines(Chunk),
    /// A file failed: pass the message through in order.
    Failed(String),
}

/// A JSON-lines stream decoded by `workers` threads.
pub struct ChunkedLines {
    results: Vec<Receiver<Batch>>,
    recycle: Vec<SyncSender<Batch>>,
    next_worker: usize,
    current: Batch,
    next: usize,
    position: Position,
    bytes_read: u64,
    threads: Vec<JoinHandle<()>>,
}

fn read_files(
    files: Vec<PathBuf>,
    max_record: usize,
    work: Vec<SyncSender<Work>>,
    spent: Receiver<Chunk>,
    bytes_done: Arc<AtomicU64>,
) {
    let mut k = 0usize;
    let mut send = |w: Work| -> bool {
        let ok = work[k % work.len()].send(w).is_ok();
        k += 1;
        ok
    };
    for path in files {
        let origin: Arc<str> = path.display().to_string().into();
        let opened = sniff(&path).and_then(|format| {
            let file = std::fs::File::open(&path)
                .map_err(|source| super::files::SourceError::Io { path: path.clone(), source })?;
            Ok((format, file))
        });
        let (format, file) = match opened {
            Ok(x) => x,
            Err(e) => {
                if !send(Work::Failed(e.to_string())) {
                    return;
                }
                continue;
            }
        };
        let (counted, bytes) = CountingReader::new(file);
        let reader: Box<dyn Read + Send> = match format {
            Format::GzipJsonLines => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(counted))),
            _ => Box::new(counted),
        };
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        let mut line_no = 0u64;
        let mut eof = false;
        while !eof {
            let mut chunk = spent.try_recv().unwrap_or_default();
            chunk.data.clear();
            chunk.lines.clear();
            chunk.origin = origin.clone();
            while chunk.lines.len() < CHUNK_LINES {
                let start = chunk.data.len();
                match append_bounded_line(&mut reader, &mut chunk.data, max_record) {
                    Ok(Line::Eof) => {
                        eof = true;
                        break;
                    }
                    Ok(outcome) => {
                        line_no += 1;
                        chunk.lines.push((start, chunk.data.len(), line_no, matches!(outcome, Line::TooLarge)));
                    }
                    Err(e) => {
                        tracing::warn!(origin = %origin, line = line_no + 1, error = %e, "read failed; rest of file skipped");
                        // What was read of the broken record is decoded and
                        // quarantined like any other line.
                        line_no += 1;
                        chunk.lines.push((start, chunk.data.len(), line_no, false));
                        eof = true;
                        break;
                    }
                }
            }
            chunk.bytes_read = bytes_done.load(Ordering::Relaxed) + bytes.load(Ordering::Relaxed);
            if !chunk.lines.is_empty() && !send(Work::Lines(chunk)) {
                return;
            }
        }
        bytes_done.fetch_add(bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

fn decode_chunks(
    work: Receiver<Work>,
    out: SyncSender<Batch>,
    returned: Receiver<Batch>,
    spent: SyncSender<Chunk>,
    keep: Arc<KeepParams>,
) {
    while let Ok(w) = work.recv() {
        let mut batch = returned.try_recv().unwrap_or_default();
        batch.len = 0;
        batch.error = None;
        match w {
            Work::Failed(message) => batch.error = Some(message),
            Work::Lines(chunk) => {
                batch.bytes_read = chunk.bytes_read;
                for &(start, end, line_no, too_large) in &chunk.lines {
                    if batch.items.len() == batch.len {
                        batch.items.push(Decoded::default());
                    }
                    let item = &mut batch.items[batch.len];
                    let text = &chunk.data[start..end];
                    let record = if too_large {
                        item.raw.clear();
                        item.raw.extend_from_slice(text);
                        Some(Record::Quarantined(QuarantineReason::TooLarge))
                    } else {
                        super::lines::decode_line(text, &mut item.event, &mut item.raw, &keep)
                    };
                    if let Some(record) = record {
                        item.record = record;
                        if !Arc::ptr_eq(&item.position.origin, &chunk.origin) {
                            item.position.origin = chunk.origin.clone();
                        }
                        item.position.record = line_no;
                        batch.len += 1;
                    }
                }
                // The reader may be done; then the chunk is simply dropped.
                let _ = spent.try_send(chunk);
            }
        }
        if out.send(batch).is_err() {
            return;
        }
    }
}

impl ChunkedLines {
    /// Starts a reader and `workers` decoders over `files` (JSON lines,
    /// plain or gzip), read in the given order.
    pub fn spawn(
        files: Vec<PathBuf>,
        max_record: usize,
        workers: usize,
        keep: Arc<KeepParams>,
    ) -> std::io::Result<ChunkedLines> {
        let workers = workers.max(1);
        let (spent_tx, spent_rx) = sync_channel::<Chunk>(workers * (IN_FLIGHT + 1));
        let mut threads = Vec::new();
        let mut work_txs = Vec::new();
        let mut results = Vec::new();
        let mut recycle = Vec::new();
        for _ in 0..workers {
            let (work_tx, work_rx) = sync_channel::<Work>(IN_FLIGHT);
            let (out_tx, out_rx) = sync_channel::<Batch>(IN_FLIGHT);
            let (back_tx, back_rx) = sync_channel::<Batch>(IN_FLIGHT + 1);
            let spent = spent_tx.clone();
            let keep = keep.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("auditwatch-decode".into())
                    .spawn(move || decode_chunks(work_rx, out_tx, back_rx, spent, keep))?,
            );
            work_txs.push(work_tx);
            results.push(out_rx);
            recycle.push(back_tx);
        }
        let bytes_done = Arc::new(AtomicU64::new(0));
        threads.push(
            std::thread::Builder::new()
                .name("auditwatch-read".into())
                .spawn(move || read_files(files, max_record, work_txs, spent_rx, bytes_done))?,
        );
        Ok(ChunkedLines {
            results,
            recycle,
            next_worker: 0,
            current: Batch::default(),
            next: 0,
            position: Position::default(),
            bytes_read: 0,
            threads,
        })
    }
}

impl RecordStream for ChunkedLines {
    fn next_record(&mut self, ev: &mut Event, raw: &mut Vec<u8>) -> Option<Record> {
        while self.next >= self.current.len {
            let spent = std::mem::take(&mut self.current);
            let _ = self.recycle[(self.next_worker + self.results.len() - 1) % self.results.len()].try_send(spent);
            // Results are taken round-robin, the order chunks were dealt in.
            self.current = self.results[self.next_worker].recv().ok()?;
            self.next_worker = (self.next_worker + 1) % self.results.len();
            self.next = 0;
            self.bytes_read = self.bytes_read.max(self.current.bytes_read);
            if let Some(message) = self.current.error.take() {
                tracing::warn!(error = %message, "input file skipped");
            }
        }
        let item = &mut self.current.items[self.next];
        self.next += 1;
        Some(item.hand_over(ev, raw, &mut self.position))
    }

    fn position(&self) -> Position {
        self.position.clone()
    }

    fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

impl Drop for ChunkedLines {
    fn drop(&mut self) {
        // Dropping the receivers makes the workers' sends fail, and the
        // reader's after them; then every thread ends.
        self.results.clear();
        self.recycle.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::files::FileChain;

    #[test]
    fn same_records_in_the_same_order_as_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for f in 0..3 {
            let mut data = String::new();
            for i in 0..(2 * CHUNK_LINES + 13 * f) {
                if i % 97 == 5 {
                    data.push_str("{broken\n\n");
                }
                if i == 700 {
                    data.push_str(&format!("{{\"pad\":\"{}\"}}\n", "x".repeat(5000)));
                }
                data.push_str(&format!(
                    "{{\"timestamp\":{},\"serviceName\":\"accounts\",\"actionName\":\"a{f}-{i}\"}}\n",
                    1_704_067_200_000i64 + i as i64
                ));
            }
            let path = dir.path().join(format!("f{f}.json"));
            std::fs::write(&path, data).unwrap();
            files.push(path);
        }
        files.insert(1, dir.path().join("missing.json"));
        let collect = |mut s: Box<dyn RecordStream>| {
            let (mut ev, mut raw, mut out) = (Event::default(), Vec::new(), Vec::new());
            while let Some(r) = s.next_record(&mut ev, &mut raw) {
                let p = s.position();
                out.push(match r {
                    Record::Event(_) => format!("{}@{}", ev.action, p.record),
                    Record::Quarantined(q) => format!("{q}:{}@{}:{}", raw.len().min(300), p.origin, p.record),
                });
            }
            out
        };
        let one = collect(Box::new(FileChain::new(files.clone(), 1000)));
        for workers in [1, 2, 3] {
            let many = collect(Box::new(
                ChunkedLines::spawn(files.clone(), 1000, workers, Arc::new(KeepParams::everything())).unwrap(),
            ));
            assert_eq!(one.len(), many.len());
            assert_eq!(one, many, "{workers} workers");
        }
        assert!(one.iter().any(|r| r.starts_with("too_large:256")));
    }

    #[test]
    fn dropping_early_ends_every_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let line = "{\"timestamp\":1704067200000,\"serviceName\":\"accounts\",\"actionName\":\"x\"}\n";
        std::fs::write(&path, line.repeat(50 * CHUNK_LINES)).unwrap();
        let mut s = ChunkedLines::spawn(vec![path], 1 << 20, 2, Arc::new(KeepParams::everything())).unwrap();
        let (mut ev, mut raw) = (Event::default(), Vec::new());
        assert!(s.next_record(&mut ev, &mut raw).is_some());
        drop(s); // must not hang
    }
}
