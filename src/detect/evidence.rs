//! The evidence an alert carries: the ids of the events behind it.
//!
//! A bucket may hold thousands of events; an alert names at most a few.
//! Which few must not depend on the order events arrived in (reordering
//! within the allowed lateness must not change an alert), so the kept ids
//! are the earliest by (event time, id), not the first to arrive. The
//! strings are reused when a bucket is recycled, so the steady state does
//! not allocate.

/// The earliest `limit` (time, id) pairs seen, in order.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    /// Sorted by (time, id); only the first `len` are live, the rest is
    /// recycled capacity.
    items: Vec<(i64, String)>,
    len: usize,
    /// Every event offered, with or without an id.
    total: u64,
}

impl Evidence {
    /// Forgets everything, keeping the allocations.
    pub fn clear(&mut self) {
        self.len = 0;
        self.total = 0;
    }

    /// Offers one event. Events without an id count towards the total but
    /// are not kept.
    pub fn offer(&mut self, time: i64, id: &str, limit: usize) {
        self.total += 1;
        if id.is_empty() || limit == 0 {
            return;
        }
        let live = &self.items[..self.len];
        // Events mostly arrive in time order: once the evidence is full, a
        // later event is past its end, decided on the time alone.
        if self.len >= limit
            && let Some((last, _)) = live.last()
            && time > *last
        {
            return;
        }
        let at = live.partition_point(|(t, i)| (*t, i.as_str()) < (time, id));
        if live.get(at).is_some_and(|(t, i)| *t == time && i == id) {
            return; // the same event twice (e.g. a row and its duplicate)
        }
        if at >= limit {
            return;
        }
        if self.len < limit {
            if self.len == self.items.len() {
                // One at a time: most buckets hold a few events, and a
                // doubling Vec would keep room for ten in each of them.
                self.items.reserve_exact(1);
                self.items.push((0, String::new()));
            }
            self.len += 1;
        }
        // Rotate the spare (or evicted last) slot into place, then fill it.
        self.items[at..self.len].rotate_right(1);
        let slot = &mut self.items[at];
        slot.0 = time;
        slot.1.clear();
        slot.1.push_str(id);
    }

    /// The kept ids, earliest first.
    pub fn ids(&self) -> Vec<String> {
        self.items[..self.len].iter().map(|(_, id)| id.clone()).collect()
    }

    /// The kept (time, id) pairs, earliest first.
    pub fn items(&self) -> impl Iterator<Item = (i64, &str)> {
        self.items[..self.len].iter().map(|(t, id)| (*t, id.as_str()))
    }

    /// The earliest kept id.
    pub fn first(&self) -> Option<&str> {
        self.items[..self.len].first().map(|(_, id)| id.as_str())
    }

    /// How many events were offered.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::Evidence;
    use proptest::prelude::*;

    #[test]
    fn keeps_the_earliest_whatever_the_order() {
        let mut e = Evidence::default();
        for (t, id) in [(5, "e"), (1, "a"), (3, "c"), (2, "b"), (4, "d"), (1, "a")] {
            e.offer(t, id, 3);
        }
        assert_eq!(e.ids(), ["a", "b", "c"]);
        assert_eq!(e.total(), 6);
        e.clear();
        e.offer(9, "z", 3);
        e.offer(8, "", 3);
        assert_eq!((e.ids(), e.total()), (vec!["z".to_owned()], 2));
    }

    proptest! {
        #[test]
        fn order_does_not_matter(mut events in prop::collection::vec((0i64..50, "[a-d]{1,2}"), 0..40), limit in 0usize..6) {
            let mut a = Evidence::default();
            for (t, id) in &events {
                a.offer(*t, id, limit);
            }
            events.reverse();
            let mut b = Evidence::default();
            for (t, id) in &events {
                b.offer(*t, id, limit);
            }
            prop_assert_eq!(a.ids(), b.ids());
            events.sort();
            events.dedup();
            let want: Vec<String> = events.iter().take(limit).map(|(_, id)| id.clone()).collect();
            prop_assert_eq!(a.ids(), want);
        }
    }
}
