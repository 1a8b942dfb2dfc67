//! Prices billing usage with `system.billing.list_prices` rows.
//!
//! A SKU's price is the row whose `[price_start_time, price_end_time)` holds
//! the usage time; an open end runs forever. Rows may arrive in any order;
//! a usage row seen before any price for its SKU stays in DBUs.

use rustc_hash::FxHashMap;

use crate::time::EventTime;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Price {
    start: EventTime,
    /// `EventTime(0)` for open-ended.
    end: EventTime,
    per_unit: f64,
}

/// List prices by SKU.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PriceBook {
    by_sku: FxHashMap<Box<str>, Vec<Price>>,
}

impl PriceBook {
    /// Adds (or replaces, for the same start) a price for `sku`.
    pub fn add(&mut self, sku: &str, start: EventTime, end: EventTime, per_unit: f64) {
        let prices = match self.by_sku.get_mut(sku) {
            Some(p) => p,
            None => self.by_sku.entry(sku.into()).or_default(),
        };
        let price = Price { start, end, per_unit };
        match prices.binary_search_by_key(&start, |p| p.start) {
            Ok(i) => prices[i] = price,
            Err(i) => prices.insert(i, price),
        }
    }

    /// The price per unit of `sku` at `at`, if one is known.
    pub fn price(&self, sku: &str, at: EventTime) -> Option<f64> {
        let prices = self.by_sku.get(sku)?;
        let i = prices.partition_point(|p| p.start <= at);
        let p = prices.get(i.checked_sub(1)?)?;
        (p.end.0 == 0 || at < p.end).then_some(p.per_unit)
    }

    pub fn len(&self) -> usize {
        self.by_sku.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sku.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_in_force_at_the_usage_time() {
        let mut b = PriceBook::default();
        b.add("JOBS", EventTime(2000), EventTime(0), 0.20);
        b.add("JOBS", EventTime(1000), EventTime(2000), 0.15);
        assert_eq!(b.price("JOBS", EventTime(500)), None);
        assert_eq!(b.price("JOBS", EventTime(1500)), Some(0.15));
        assert_eq!(b.price("JOBS", EventTime(2000)), Some(0.20));
        assert_eq!(b.price("SQL", EventTime(2000)), None);
    }
}
