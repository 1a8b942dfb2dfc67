//! Duplicate suppression by record id within a bounded event-time window.
//!
//! Audit delivery and system-table exports can hand the same record over
//! twice (redelivery, overlapping exports). A record is a duplicate when its
//! shape, id, action and event time equal an earlier record's within the
//! window. Only a 64-bit hash of that key is kept, in hourly generations, so
//! memory is bounded by the records of the window (a false match needs a
//! 64-bit collision among them: about 1e-8 for 10^6 records). Records
//! without an id are never called duplicates.

use crate::event::Event;
use crate::time::MS_PER_HOUR;
use rustc_hash::{FxHashSet, FxHasher};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

#[derive(Debug)]
pub struct Dedup {
    /// (hour, hashes of records whose event time falls in that hour).
    generations: VecDeque<(i64, FxHashSet<u64>)>,
    window_hours: i64,
}

impl Dedup {
    /// Remembers ids for `window_hours` of event time (at least 1).
    pub fn new(window_hours: i64) -> Self {
        Dedup { generations: VecDeque::new(), window_hours: window_hours.max(1) }
    }

    /// Returns `true` when `ev` repeats a record already seen in the window.
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
        let newest = self.generations.back().map(|g| g.0).unwrap_or(i64::MIN);
        // Expire generations that fell out of the window behind the newest hour.
        let horizon = newest.max(hour) - self.window_hours;
        while self.generations.front().is_some_and(|g| g.0 < horizon) {
            self.generations.pop_front();
        }
        if hour < horizon {
            // Older than the window: it can no longer be checked; let it through.
            return false;
        }
        if self.generations.iter().any(|(_, set)| set.contains(&key)) {
            return true;
        }
        match self.generations.iter_mut().find(|g| g.0 == hour) {
            Some((_, set)) => {
                set.insert(key);
            }
            None => {
                let pos = self.generations.iter().position(|g| g.0 > hour).unwrap_or(self.generations.len());
                let mut set = FxHashSet::default();
                set.insert(key);
                self.generations.insert(pos, (hour, set));
            }
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
