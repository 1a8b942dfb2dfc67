//! Decoding off the pipeline's thread.
//!
//! Each stream is read and decoded by its own thread into batches of
//! [`Event`] slots, handed over a bounded channel; the consumer swaps each
//! slot with its own (no copy), and spent batches go back to the producer
//! for reuse, so the steady state allocates nothing. The channel bound
//! keeps memory flat: a slow pipeline stalls the decoders, it never queues
//! without limit. On two cores this overlaps parsing (the larger cost)
//! with bucketing and scoring. Order within a stream is kept.

use super::{Decoded, Position, Record, RecordStream};
use crate::event::Event;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Records per batch: large enough to amortise channel costs, small enough
/// that the batches in flight stay at a few MB per stream.
pub const BATCH: usize = 1024;
/// Batches in flight per stream.
const IN_FLIGHT: usize = 4;

#[derive(Default)]
struct Batch {
    items: Vec<Decoded>,
    len: usize,
    bytes_read: u64,
}

/// A stream decoded on its own thread.
pub struct Batched {
    rx: Receiver<Batch>,
    recycle: SyncSender<Batch>,
    current: Batch,
    next: usize,
    position: Position,
    bytes_read: u64,
    thread: Option<JoinHandle<()>>,
}

fn produce(mut stream: Box<dyn RecordStream + Send>, tx: SyncSender<Batch>, returned: Receiver<Batch>) {
    loop {
        let mut batch = returned.try_recv().unwrap_or_default();
        batch.len = 0;
        let mut done = false;
        while batch.len < BATCH {
            if batch.items.len() == batch.len {
                batch.items.push(Decoded::default());
            }
            let item = &mut batch.items[batch.len];
            match stream.next_record(&mut item.event, &mut item.raw) {
                Some(r) => {
                    item.record = r;
                    item.position = stream.position();
                    batch.len += 1;
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        batch.bytes_read = stream.bytes_read();
        if batch.len > 0 && tx.send(batch).is_err() {
            return; // The consumer is gone.
        }
        if done {
            return;
        }
    }
}

impl Batched {
    /// Starts a thread that drains `stream`. If no thread can be started,
    /// the stream is drained on the caller's thread instead.
    pub fn spawn(stream: Box<dyn RecordStream + Send>) -> Box<dyn RecordStream + Send> {
        let (tx, rx) = sync_channel::<Batch>(IN_FLIGHT);
        let (recycle, returned) = sync_channel::<Batch>(IN_FLIGHT + 2);
        // `spawn` consumes its closure even when it fails; the stream waits
        // in this holder so the fallback can take it back.
        let holder = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
        let taken = holder.clone();
        let spawned = std::thread::Builder::new().name("auditwatch-decode".into()).spawn(move || {
            let stream = taken.lock().ok().and_then(|mut s| s.take());
            if let Some(stream) = stream {
                produce(stream, tx, returned);
            }
        });
        match spawned {
            Ok(thread) => Box::new(Batched {
                rx,
                recycle,
                current: Batch::default(),
                next: 0,
                position: Position::default(),
                bytes_read: 0,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no decode thread; decoding inline");
                let stream = holder.lock().ok().and_then(|mut s| s.take());
                stream.unwrap_or_else(|| Box::new(super::Empty))
            }
        }
    }
}

impl RecordStream for Batched {
    fn next_record(&mut self, ev: &mut Event, raw: &mut Vec<u8>) -> Option<Record> {
        if self.next >= self.current.len {
            let spent = std::mem::take(&mut self.current);
            // The producer may have finished; a full recycle queue just drops the batch.
            let _ = self.recycle.try_send(spent);
            self.current = self.rx.recv().ok()?;
            self.next = 0;
            self.bytes_read = self.current.bytes_read;
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

impl Drop for Batched {
    fn drop(&mut self) {
        // Closing the channel stops the producer at its next send.
        let (_, dead) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, dead));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::lines::{CountingReader, JsonLines};

    #[test]
    fn batched_stream_yields_the_same_records_in_order() {
        let mut data = String::new();
        for i in 0..(3 * BATCH + 7) {
            if i % 100 == 0 {
                data.push_str("{broken\n");
            }
            data.push_str(&format!(
                "{{\"timestamp\":{},\"serviceName\":\"accounts\",\"actionName\":\"a{i}\"}}\n",
                1_704_067_200_000i64 + i as i64
            ));
        }
        let open = || {
            let (r, n) = CountingReader::new(std::io::Cursor::new(data.clone().into_bytes()));
            Box::new(JsonLines::new(Box::new(r), "t".into(), 1 << 20, n)) as Box<dyn RecordStream + Send>
        };
        let collect = |mut s: Box<dyn RecordStream + Send>| {
            let (mut ev, mut raw, mut out) = (Event::default(), Vec::new(), Vec::new());
            while let Some(r) = s.next_record(&mut ev, &mut raw) {
                out.push(match r {
                    Record::Event(_) => ev.action.clone(),
                    Record::Quarantined(q) => format!("{q}:{}:{}", String::from_utf8_lossy(&raw), s.position().record),
                });
            }
            out
        };
        let direct = collect(open());
        let batched = collect(Batched::spawn(open()));
        assert_eq!(direct.len(), 3 * BATCH + 7 + 31);
        assert_eq!(direct, batched);
    }

    #[test]
    fn dropping_early_stops_the_producer() {
        let data =
            "{\"timestamp\":1704067200000,\"serviceName\":\"accounts\",\"actionName\":\"x\"}\n".repeat(20 * BATCH);
        let (r, n) = CountingReader::new(std::io::Cursor::new(data.into_bytes()));
        let mut s = Batched::spawn(Box::new(JsonLines::new(Box::new(r), "t".into(), 1 << 20, n)));
        let (mut ev, mut raw) = (Event::default(), Vec::new());
        assert!(s.next_record(&mut ev, &mut raw).is_some());
        drop(s); // must not hang
    }
}
