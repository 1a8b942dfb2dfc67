//! The event-time merge of several record streams.
//!
//! Each stream keeps one decoded record in its own [`Event`] slot; the
//! merge hands out the slot with the earliest event time (ties go to the
//! lower stream index, so the order is deterministic). Quarantined records
//! have no usable time and pass through at once. A stream that is itself
//! out of order stays out of order: the watermark downstream absorbs that.

use super::{Position, Record, RecordStream};
use crate::event::Event;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

struct Slot {
    stream: Box<dyn RecordStream + Send>,
    event: Event,
}

/// What the merge hands out next.
pub enum Merged<'m> {
    Event(&'m Event),
    Quarantined { reason: crate::decode::QuarantineReason, raw: &'m [u8], position: Position },
}

/// Merges streams by event time.
pub struct Merge {
    slots: Vec<Slot>,
    /// (time, stream index) of every slot holding an event.
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// The slot handed out last, to be refilled on the next call.
    pending: Option<usize>,
    /// Streams not yet primed with their first record.
    unprimed: std::ops::Range<usize>,
    raw: Vec<u8>,
}

impl Merge {
    pub fn new(streams: Vec<Box<dyn RecordStream + Send>>) -> Self {
        let n = streams.len();
        Merge {
            slots: streams.into_iter().map(|stream| Slot { stream, event: Event::default() }).collect(),
            heap: BinaryHeap::with_capacity(n),
            pending: None,
            unprimed: 0..n,
            raw: Vec::new(),
        }
    }

    /// Bytes read over all streams.
    pub fn bytes_read(&self) -> u64 {
        self.slots.iter().map(|s| s.stream.bytes_read()).sum()
    }

    /// Advances stream `i` by one record. Returns the reason when it produced
    /// a quarantined record (left in `self.raw`) that must be handed out now.
    fn advance(&mut self, i: usize) -> Option<crate::decode::QuarantineReason> {
        let slot = &mut self.slots[i];
        match slot.stream.next_record(&mut slot.event, &mut self.raw) {
            Some(Record::Event(_)) => {
                self.heap.push(Reverse((slot.event.time.0, i)));
                None
            }
            Some(Record::Quarantined(reason)) => {
                // Hand it out now; the stream is advanced again next call.
                self.pending = Some(i);
                Some(reason)
            }
            None => None,
        }
    }

    /// The next record in event-time order, or `None` when every stream is done.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Merged<'_>> {
        // The stream handed out last is refilled first, so that at most one
        // stream is ever pending.
        if let Some(i) = self.pending.take()
            && let Some(reason) = self.advance(i)
        {
            let position = self.slots[i].stream.position();
            return Some(Merged::Quarantined { reason, raw: &self.raw, position });
        }
        while let Some(i) = self.unprimed.next() {
            if let Some(reason) = self.advance(i) {
                let position = self.slots[i].stream.position();
                return Some(Merged::Quarantined { reason, raw: &self.raw, position });
            }
        }
        let Reverse((_, i)) = self.heap.pop()?;
        self.pending = Some(i);
        Some(Merged::Event(&self.slots[i].event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::lines::{CountingReader, JsonLines};

    fn stream(lines: &[&str]) -> Box<dyn RecordStream + Send> {
        let data = lines.join("\n").into_bytes();
        let (r, n) = CountingReader::new(std::io::Cursor::new(data));
        Box::new(JsonLines::new(Box::new(r), "t".into(), 1 << 20, n))
    }

    fn line(ms: i64, action: &str) -> String {
        format!(r#"{{"timestamp":{ms},"serviceName":"accounts","actionName":"{action}"}}"#)
    }

    #[test]
    fn merges_by_time_and_passes_quarantine_through() {
        let a = [line(1_704_067_200_000, "a1"), line(1_704_067_300_000, "a2")];
        let b = [line(1_704_067_250_000, "b1"), "{broken".to_string(), line(1_704_067_350_000, "b2")];
        let mut m = Merge::new(vec![
            stream(&a.iter().map(String::as_str).collect::<Vec<_>>()),
            stream(&b.iter().map(String::as_str).collect::<Vec<_>>()),
        ]);
        let mut seen = Vec::new();
        while let Some(r) = m.next() {
            match r {
                Merged::Event(e) => seen.push(e.action.clone()),
                Merged::Quarantined { reason, .. } => seen.push(reason.name().to_string()),
            }
        }
        assert_eq!(seen, ["a1", "b1", "malformed_json", "a2", "b2"]);
    }
}
