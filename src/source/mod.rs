//! Sources: where records come from, and in what order they enter the
//! pipeline.
//!
//! Owns file discovery (files, directories laid out as audit log delivery
//! writes them), format sniffing (plain, gzip, Parquet), bounded reading of
//! records, and the event-time merge of several input streams. A source
//! decodes through [`crate::decode`] but never judges events: every record
//! leaves as an [`Event`] or as a quarantined [`Record::Quarantined`].

pub mod batched;
pub mod chunked;
pub mod files;
pub mod lines;
pub mod merge;
pub mod parquet;
pub mod sort;

use crate::decode::QuarantineReason;
use crate::event::{Event, Shape};
use std::sync::Arc;

/// What reading one record produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The slot holds a decoded event of this shape.
    Event(Shape),
    /// The record was refused; the raw bytes were written to the caller's buffer.
    Quarantined(QuarantineReason),
}

/// Where a record came from, for the quarantine file and error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// File path (or topic/partition in live mode). Shared, so that a
    /// position can be taken per record without allocating.
    pub origin: Arc<str>,
    /// 1-based line number or row index within the origin.
    pub record: u64,
}

/// A stream of records read in order from one origin.
pub trait RecordStream {
    /// Reads the next record into `ev` (on success) or its raw bytes into
    /// `raw` (when quarantined). `None` at the end of the stream.
    fn next_record(&mut self, ev: &mut Event, raw: &mut Vec<u8>) -> Option<Record>;

    /// Where the record last returned came from.
    fn position(&self) -> Position;

    /// Bytes read so far (compressed size for gzip), for progress.
    fn bytes_read(&self) -> u64;
}

/// A record decoded on one thread and handed to another: the event slot,
/// the outcome, the raw bytes when quarantined, and where it came from.
/// Handing over swaps slots, so no event is copied between threads.
pub(crate) struct Decoded {
    pub event: Event,
    pub record: Record,
    pub raw: Vec<u8>,
    pub position: Position,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            event: Event::default(),
            record: Record::Event(Shape::AuditDelivery),
            raw: Vec::new(),
            position: Position::default(),
        }
    }
}

impl Decoded {
    /// Gives the record to the consumer's slots and takes theirs for reuse.
    pub(crate) fn hand_over(&mut self, ev: &mut Event, raw: &mut Vec<u8>, position: &mut Position) -> Record {
        std::mem::swap(ev, &mut self.event);
        if matches!(self.record, Record::Quarantined(_)) {
            std::mem::swap(raw, &mut self.raw);
        }
        position.clone_from(&self.position);
        self.record
    }
}

/// A stream with no records.
pub struct Empty;

impl RecordStream for Empty {
    fn next_record(&mut self, _: &mut Event, _: &mut Vec<u8>) -> Option<Record> {
        None
    }

    fn position(&self) -> Position {
        Position::default()
    }

    fn bytes_read(&self) -> u64 {
        0
    }
}
