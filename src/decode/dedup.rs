//! Duplicate suppression by record id within a bounded event-time window.
//!
//! Audit delivery and system-table exports can hand the same record over
//! twice (redelivery, overlapping exports). A record is a duplicate when its
//! shape, id, action and event time equal an earlier record's within the
//! window. Only a 64-bit hash of that key is kept, with the hour it was seen
//! in, so memory is bounded by the records of the window (a false match needs a
//! 64-bit collision among them: about 1e-8 for 10^6 records). Records
//! without an id are never called duplicates.

use crate::event::Event;
use crate::time::MS_PER_HOUR;
use rustc_hash::{FxHashMap, FxHasher};
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Dedup {
    /// Hash of a record's key → the hour of its event time.
    seen: FxHashMap<u64, i64>,
    /// The newest hour seen, and the horizon up to which `seen` was last swept.
    newest: i64,
    swept: i64,
    window_hours: i64,
}

impl Dedup {
    /// Remembers ids for `window_hours` of event time (at least 1).
    pub fn new(window_hours: i64) -> Self {
        Dedup { seen: FxHashMap::default(), newest: i64::MIN, swept: i64::MIN, window_hours: window_hours.max(1) }
    }

    /// Returns `true` when `ev` repeats a record already seen in the window.
    /// One hash probe per record; entries that fell out of the window are
    /// swept once per hour of event time.
    pub fn is_duplicate(&mut self, ev: &Event) -> bool {
        if ev.id.is_empty() {
            return false;
        }
        let mut h = FxHasher::default();
        ev.shape.hash(&mut h);
        ev.id.hash(&mut h);
        ev.action.hash(&mut h);
        ev.time.hash(&mut h);
        let key = h.finish();
        let hour = ev.time.0.div_euclid(MS_PER_HOUR);
        self.newest = self.newest.max(hour);
        let horizon = self.newest.saturating_sub(self.window_hours);
        if hour < horizon {
            // Older than the window: it can no longer be checked; let it through.
            return false;
        }
        if self.swept < horizon {
            self.seen.retain(|_, h| *h >= horizon);
            self.swept = horizon;
        }
        match self.seen.entry(key) {
            Entry::Occupied(mut e) if *e.get() < horizon => {
                // Left over from before the window: not a repeat.
                e.insert(hour);
                false
            }
            Entry::Occupied(_) => true,
            Entry::Vacant(e) => {
                e.insert(hour);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Shape;
    use crate::time::EventTime;

    fn ev(id: &str, ms: i64) -> Event {
        Event { shape: Some(Shape::AuditDelivery), id: id.into(), time: EventTime(ms), ..Event::default() }
    }

    #[test]
    fn repeats_are_caught_within_the_window() {
        let mut d = Dedup::new(2);
        let t = 1_704_067_200_000;
        assert!(!d.is_duplicate(&ev("r1", t)));
        assert!(d.is_duplicate(&ev("r1", t)));
        assert!(!d.is_duplicate(&ev("r1", t + 1)), "same id at another time is another event");
        assert!(!d.is_duplicate(&ev("", t)));
        assert!(!d.is_duplicate(&ev("", t)), "no id, never a duplicate");
        // Five hours later the first hour has been forgotten.
        assert!(!d.is_duplicate(&ev("r2", t + 5 * MS_PER_HOUR)));
        assert!(!d.is_duplicate(&ev("r1", t)));
    }
}
