//! Duplicate suppression by record id within a bounded event-time window.
//!
//! Audit delivery and system-table exports hand the same record over again
//! (redelivery, a delivered file rewritten with lines appended, overlapping
//! exports), hours or days after the first copy. A record is a duplicate
//! when its shape, id, action and event time equal an earlier record's
//! within the window. The filter is time-partitioned: one set per hour of
//! event time, holding a 64-bit hash of each key, so forgetting an hour is
//! dropping its set. It lives in the pipeline's checkpoint, so a redelivery
//! after a restart is still caught.
//!
//! Bounds, documented in the README:
//! - **Window**: [`DEFAULT_WINDOW_HOURS`] of event time behind the newest
//!   record, and never less than the longest allowed lateness + 1 h (the
//!   pipeline sees to it). A copy older than the window is not checked;
//!   every detector has closed its buckets by then, so it is counted late,
//!   never scored twice.
//! - **Memory**: at most `max_ids` hashes (about 16 bytes each in memory,
//!   8 in a checkpoint). When full, the oldest hour is forgotten early and
//!   counted in [`Dedup::evicted`].
//! - **False matches**: a new record is taken for a duplicate only on a
//!   64-bit hash collision with a record of the same hour: about n²/2⁶⁵
//!   for n ids, 3·10⁻⁶ at the 8 M default.
//!
//! Records without an id are never called duplicates.

use crate::event::Event;
use crate::time::MS_PER_HOUR;
use rustc_hash::{FxHashSet, FxHasher};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// Default window: three days of event time.
pub const DEFAULT_WINDOW_HOURS: i64 = 72;

/// Default most ids held: about 128 MiB of memory at worst.
pub const DEFAULT_MAX_IDS: usize = 8 << 20;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Dedup {
    /// Hour of event time → hashes of the keys seen in it.
    hours: BTreeMap<i64, FxHashSet<u64>>,
    /// Ids held over all hours.
    held: usize,
    /// The newest hour seen.
    newest: i64,
    window_hours: i64,
    max_ids: usize,
    /// Ids forgotten before their window ended, because the filter was full.
    evicted: u64,
}

impl Dedup {
    /// Remembers ids for `window_hours` of event time (at least 1), at most
    /// `max_ids` of them.
    pub fn new(window_hours: i64, max_ids: usize) -> Self {
        Dedup {
            hours: BTreeMap::new(),
            held: 0,
            newest: i64::MIN,
            window_hours: window_hours.max(1),
            max_ids: max_ids.max(1),
            evicted: 0,
        }
    }

    /// Ids held now.
    pub fn len(&self) -> usize {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Ids forgotten early because the filter was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Returns `true` when `ev` repeats a record already seen in the window.
    /// One hash probe per record; an hour that fell out of the window is
    /// dropped whole.
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
        if hour > self.newest {
            self.newest = hour;
            let horizon = hour.saturating_sub(self.window_hours);
            while let Some(entry) = self.hours.first_entry() {
                if *entry.key() >= horizon {
                    break;
                }
                self.held -= entry.remove().len();
            }
        }
        if hour < self.newest.saturating_sub(self.window_hours) {
            // Older than the window: it can no longer be checked; let it through.
            return false;
        }
        if !self.hours.entry(hour).or_default().insert(key) {
            return true;
        }
        self.held += 1;
        while self.held > self.max_ids {
            let Some(entry) = self.hours.first_entry() else { break };
            let n = entry.remove().len();
            self.held -= n;
            self.evicted += n as u64;
        }
        false
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
        let mut d = Dedup::new(2, 1000);
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

    #[test]
    fn a_redelivery_days_later_is_caught_within_the_window_and_memory_stays_bounded() {
        let mut d = Dedup::new(72, 4);
        let t = 1_704_067_200_000;
        assert!(!d.is_duplicate(&ev("a", t)));
        // Two days of newer records, then the same record again.
        assert!(!d.is_duplicate(&ev("b", t + 48 * MS_PER_HOUR)));
        assert!(d.is_duplicate(&ev("a", t)), "redelivered two days later");
        // A full filter forgets its oldest hour first, and says so.
        for i in 0..4 {
            assert!(!d.is_duplicate(&ev(&format!("c{i}"), t + 49 * MS_PER_HOUR)));
        }
        assert!(d.len() <= 4);
        assert_eq!(d.evicted(), 2, "hours t and t+48h were forgotten to make room");
        assert!(!d.is_duplicate(&ev("a", t)));
    }
}
