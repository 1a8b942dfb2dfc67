//! Open buckets per principal, and the order they close in: the
//! bookkeeping every per-principal bucketed detector shares.
//!
//! A detector keeps, per principal, the buckets the watermark has not yet
//! closed (usually one or two) and a wheel from bucket start to the
//! principals with that bucket open. Closed buckets are recycled, so the
//! steady state does not allocate. Buckets close in start order and, within
//! a start, in principal-name order, so that the order events arrived in
//! cannot change what a detector sees.

use crate::state::{Interner, PrincipalId, grow};
use crate::time::EventTime;
use std::collections::BTreeMap;

/// What a bucket must offer to be kept open and recycled.
pub trait Bucket: Default {
    fn start(&self) -> i64;
    /// Empties the bucket for reuse at `start`, keeping its allocations.
    fn reset(&mut self, start: i64);
}

/// The wheel of open buckets and the pool of spare ones.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Wheel<B> {
    due: BTreeMap<i64, Vec<PrincipalId>>,
    /// The earliest start in `due` (`i64::MAX` when empty): a detector is
    /// asked to close buckets after every event, and almost always has
    /// nothing to close.
    first: i64,
    spare: Vec<B>,
}

impl<B> Default for Wheel<B> {
    fn default() -> Self {
        Wheel { due: BTreeMap::new(), first: i64::MAX, spare: Vec::new() }
    }
}

impl<B: Bucket> Wheel<B> {
    /// The bucket starting at `start` among `open` (a principal's open
    /// buckets), opened and put on the wheel if it is not there yet.
    pub fn open<'a>(&mut self, open: &'a mut Vec<B>, principal: PrincipalId, start: i64) -> &'a mut B {
        match open.iter().position(|b| b.start() == start) {
            Some(i) => &mut open[i],
            None => {
                let mut b = self.spare.pop().unwrap_or_default();
                b.reset(start);
                open.push(b);
                self.due.entry(start).or_default().push(principal);
                self.first = self.first.min(start);
                open.last_mut().expect("just pushed")
            }
        }
    }

    /// When the earliest open bucket ends (`i64::MAX` with none open).
    pub fn due_at(&self, bucket_ms: i64) -> i64 {
        self.first.saturating_add(bucket_ms)
    }

    /// The earliest bucket start that ends at or before `watermark`, with
    /// the principals that have it open, in name order.
    pub fn next_due(
        &mut self,
        watermark: EventTime,
        bucket_ms: i64,
        names: &Interner,
    ) -> Option<(i64, Vec<PrincipalId>)> {
        if self.first.saturating_add(bucket_ms) > watermark.0 {
            return None;
        }
        let (start, mut ids) = self.due.pop_first()?;
        self.first = self.due.first_key_value().map_or(i64::MAX, |(k, _)| *k);
        ids.sort_by(|a, b| names.name(*a).cmp(names.name(*b)));
        ids.dedup();
        Some((start, ids))
    }

    /// Takes the bucket starting at `start` out of `open`.
    pub fn take(open: &mut Vec<B>, start: i64) -> Option<B> {
        let pos = open.iter().position(|b| b.start() == start)?;
        Some(open.swap_remove(pos))
    }

    /// Returns a closed bucket to the pool.
    pub fn recycle(&mut self, bucket: B) {
        self.spare.push(bucket);
    }
}

/// Removes and returns, in key order, the entries of `map` due at
/// `watermark`: those whose time (`time_of` the key, the key's first part
/// for the detectors that wait for the watermark) is at or before it.
pub fn take_due<K: Ord, V>(map: &mut BTreeMap<K, V>, watermark: EventTime, time_of: impl Fn(&K) -> i64) -> Vec<(K, V)> {
    let mut due = Vec::new();
    while let Some(e) = map.first_entry() {
        if time_of(e.key()) > watermark.0 {
            break;
        }
        due.push(e.remove_entry());
    }
    due
}

/// The start of the bucket an event at `time` falls in, or `None` when the
/// watermark has closed it (the event is late).
pub fn open_start(time: EventTime, bucket_ms: i64, watermark: EventTime) -> Option<i64> {
    let start = time.floor(bucket_ms).0;
    (start + bucket_ms > watermark.0).then_some(start)
}

/// A per-principal table, indexed by [`PrincipalId`]. Ids are shared by
/// every detector, and most principals feed only a few signals, so a slot
/// holds a box: an absent principal costs 8 bytes, not a whole state.
pub type Table<S> = Vec<Option<Box<S>>>;

/// The state of `id` in a per-principal table, created by `init` on first use.
pub fn state_of<S>(table: &mut Table<S>, id: PrincipalId, init: impl FnOnce() -> S) -> &mut S {
    let idx = id.0 as usize;
    if table.len() <= idx {
        grow(table, idx + 1);
        table.resize_with(idx + 1, || None);
    }
    table[idx].get_or_insert_with(|| Box::new(init()))
}

/// The state of `id`, if it has one.
pub fn existing<S>(table: &mut Table<S>, id: PrincipalId) -> Option<&mut S> {
    table.get_mut(id.0 as usize).and_then(|s| s.as_deref_mut())
}

/// When the baseline of `id` starts for a bucket starting at `start`: its
/// first event of any kind, read at close time (when everything before the
/// watermark has arrived, so it does not depend on arrival order).
pub fn first_seen_of(first_seen: &[EventTime], id: PrincipalId, start: i64) -> EventTime {
    first_seen.get(id.0 as usize).copied().unwrap_or(EventTime(start)).min(EventTime(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct B {
        start: i64,
        n: u32,
    }

    impl Bucket for B {
        fn start(&self) -> i64 {
            self.start
        }
        fn reset(&mut self, start: i64) {
            self.start = start;
            self.n = 0;
        }
    }

    #[test]
    fn buckets_close_in_start_then_name_order_and_are_recycled() {
        let mut names = Interner::default();
        let (zed, amy) = (names.intern("zed"), names.intern("amy"));
        let mut wheel = Wheel::<B>::default();
        let (mut zed_open, mut amy_open) = (Vec::new(), Vec::new());
        wheel.open(&mut zed_open, zed, 0).n += 1;
        wheel.open(&mut zed_open, zed, 0).n += 1;
        wheel.open(&mut amy_open, amy, 0).n += 1;
        wheel.open(&mut amy_open, amy, 10).n += 1;
        assert_eq!(wheel.next_due(EventTime(9), 10, &names), None);
        assert_eq!(wheel.next_due(EventTime(10), 10, &names), Some((0, vec![amy, zed])));
        let b = Wheel::take(&mut zed_open, 0).unwrap();
        assert_eq!(b.n, 2);
        wheel.recycle(b);
        assert_eq!(wheel.open(&mut zed_open, zed, 20).n, 0, "a recycled bucket starts empty");
        assert_eq!(wheel.next_due(EventTime(100), 10, &names), Some((10, vec![amy])));
    }
}
