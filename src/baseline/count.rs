//! Seasonal Gamma–Poisson model of event counts per bucket.
//!
//! Counts in a bucket are Poisson with a rate that has a Gamma posterior,
//! so the predictive distribution of the next count is negative binomial.
//! The rate is kept per *slot* (hour of day × weekday/weekend, 48 slots) so
//! that a principal who works 9–17 on weekdays is not surprising at 10:00 on
//! a Tuesday and is at 03:00 on a Sunday. A slot with little history leans
//! on the principal's all-hours rate (a prior worth [`PRIOR_WEIGHT`]
//! buckets), and that in turn on a weak global prior. Old buckets fade with
//! a forgetting factor so the baseline follows a principal whose work
//! changes. State: 49 pairs of `f32`, under 400 bytes.

use statrs::distribution::{DiscreteCDF, NegativeBinomial};

/// Slots of the seasonal profile: 24 hours × {weekday, weekend}.
pub const SLOTS: usize = 48;

/// How many buckets' worth of evidence the all-hours rate counts for, as
/// the prior of a slot.
pub const PRIOR_WEIGHT: f32 = 2.0;

/// The global prior: a weak belief in one event per bucket (half a bucket of
/// evidence), so a principal's own history dominates within a day.
const GLOBAL_PRIOR_COUNT: f32 = 0.5;
const GLOBAL_PRIOR_BUCKETS: f32 = 0.5;

/// The slot of a bucket starting at `t`.
pub fn slot_of(t: crate::time::EventTime) -> usize {
    let weekend = t.day_of_week() >= 5;
    t.hour_of_day() as usize + if weekend { 24 } else { 0 }
}

/// Sufficient statistics with forgetting: discounted sum of counts and
/// discounted number of buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Stat {
    sum: f32,
    n: f32,
}

impl Stat {
    fn update(&mut self, count: f32, keep: f32) {
        self.sum = self.sum * keep + count;
        self.n = self.n * keep + 1.0;
    }
}

/// The predictive distribution of a slot's next count. The mean is cheap;
/// tail probabilities and intervals cost incomplete beta evaluations, so
/// they are computed only when asked (a detector asks for the tail only
/// when the count could alert, and for the interval only when it does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    shape: f64,
    rate: f64,
    /// Predictive mean.
    pub expected: f64,
    /// Discounted number of buckets behind the slot's rate.
    pub samples: f64,
}

impl Prediction {
    fn distribution(&self) -> Option<NegativeBinomial> {
        NegativeBinomial::new(self.shape.max(1e-6), self.rate / (self.rate + 1.0)).ok()
    }

    /// P(X ≥ observed).
    pub fn p_value(&self, observed: u64) -> f64 {
        match (observed, self.distribution()) {
            (0, _) | (_, None) => 1.0,
            (k, Some(nb)) => nb.sf(k - 1),
        }
    }

    /// Central 95% predictive interval.
    pub fn interval(&self) -> (f64, f64) {
        match self.distribution() {
            Some(nb) => (nb.inverse_cdf(0.025) as f64, nb.inverse_cdf(0.975) as f64),
            None => (0.0, self.expected),
        }
    }
}

/// The per-principal seasonal count model.
#[derive(Debug, Clone, PartialEq)]
pub struct SeasonalCounts {
    slots: [Stat; SLOTS],
    all: Stat,
}

impl Default for SeasonalCounts {
    fn default() -> Self {
        SeasonalCounts { slots: [Stat::default(); SLOTS], all: Stat::default() }
    }
}

impl SeasonalCounts {
    /// Gamma posterior (shape, rate) of the slot's rate. Its prior mean is
    /// the same hour on the other kind of day (weekday ↔ weekend) blended
    /// with the all-hours rate, worth [`PRIOR_WEIGHT`] buckets: a service
    /// principal that runs at 01:00 every night is not surprising at 01:00
    /// on its first Saturday, and a weekday worker's first weekend morning
    /// is judged against weekday mornings rather than the night.
    fn posterior(&self, slot: usize) -> (f64, f64) {
        let all_rate = (self.all.sum + GLOBAL_PRIOR_COUNT) / (self.all.n + GLOBAL_PRIOR_BUCKETS);
        let s = self.slots[slot];
        let other = self.slots[(slot + 24) % SLOTS];
        let base = (other.sum + PRIOR_WEIGHT * all_rate) / (other.n + PRIOR_WEIGHT);
        let shape = PRIOR_WEIGHT * base + s.sum;
        let rate = PRIOR_WEIGHT + s.n;
        (shape as f64, rate as f64)
    }

    /// Folds a closed bucket's count into the slot and the all-hours rate.
    /// `keep` is the forgetting factor in (0, 1]: 1 never forgets.
    pub fn update(&mut self, slot: usize, count: f64, keep: f64) {
        let (c, k) = (count as f32, keep as f32);
        self.slots[slot].update(c, k);
        // The all-hours rate sees 48 times as many buckets as a slot; its
        // memory is stretched to match.
        self.all.update(c, k.powf(1.0 / SLOTS as f32));
    }

    /// The predictive distribution for `slot`, without changing the model.
    pub fn predict(&self, slot: usize) -> Prediction {
        let (shape, rate) = self.posterior(slot);
        Prediction { shape, rate, expected: shape / rate, samples: self.slots[slot].n as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{EventTime, MS_PER_HOUR};

    #[test]
    fn slots_split_hour_and_weekend() {
        let monday_10 = EventTime(1_704_067_200_000 + 10 * MS_PER_HOUR);
        let saturday_10 = EventTime(monday_10.0 + 5 * 24 * MS_PER_HOUR);
        assert_eq!(slot_of(monday_10), 10);
        assert_eq!(slot_of(saturday_10), 34);
    }

    #[test]
    fn learns_a_rate_and_flags_a_burst() {
        let mut m = SeasonalCounts::default();
        for day in 0..20 {
            m.update(10, 20.0 + (day % 5) as f64, 0.95);
            m.update(3, 0.0, 0.95);
        }
        let usual = m.predict(10);
        assert!(usual.p_value(22) > 0.1, "{usual:?}");
        assert!((usual.expected - 22.0).abs() < 3.0, "{usual:?}");
        let (low, high) = usual.interval();
        assert!(low < 22.0 && high > 22.0, "{low} {high}");
        assert!(usual.p_value(200) < 1e-10);
        // The same 22 queries at 03:00, where there are usually none, is rare.
        assert!(m.predict(3).p_value(22) < 1e-6);
        // A first Saturday at 10:00 leans on weekday 10:00, not on the night.
        assert!(m.predict(34).p_value(22) > 1e-3, "{:?}", m.predict(34));
        assert!(m.predict(27).p_value(22) < 1e-6, "{:?}", m.predict(27));
    }

    #[test]
    fn a_new_principal_is_not_certain_of_anything() {
        let m = SeasonalCounts::default();
        assert!(m.predict(0).p_value(3) > 0.01);
        assert_eq!(m.predict(0).p_value(0), 1.0);
    }
}
