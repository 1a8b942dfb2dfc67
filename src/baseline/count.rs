//! Seasonal Gamma–Poisson model of event counts per bucket.
//!
//! Counts in a bucket are Poisson with a rate that has a Gamma posterior,
//! so the predictive distribution of the next count is negative binomial.
//! The rate has two seasonal layers. The *slot* (hour of day ×
//! weekday/weekend, 48 slots) learns fast, from every day: a principal who
//! works 9–17 on weekdays is not surprising at 10:00 on a Tuesday and is at
//! 03:00 on a Sunday. The *hour of the week* (168 slots) learns a weekly
//! rhythm on top, one update a week: a report that runs every Monday at
//! 09:00 stops being an anomaly after a Monday or two. Each layer is the
//! prior of the next, worth [`PRIOR_WEIGHT`] buckets: hour of week leans
//! on the slot, the slot on the same hour of the other kind of day and the
//! principal's all-hours rate, and those on a weak global prior. Old
//! buckets fade with a forgetting factor so the baseline follows a
//! principal whose work changes. State: 216 (`f32` sum, `u16` count) pairs
//! and one `f32` pair, 1,304 bytes.

use statrs::distribution::{DiscreteCDF, NegativeBinomial};

/// Slots of the daily profile: 24 hours × {weekday, weekend}.
pub const SLOTS: usize = 48;
/// Hours of the week.
pub const WEEK_HOURS: usize = 168;

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

/// The hour of the week of `t`, 0 = Monday 00:00 UTC.
pub fn hour_of_week(t: crate::time::EventTime) -> usize {
    (t.day_of_week() * 24 + t.hour_of_day()) as usize
}

/// Sufficient statistics with forgetting: discounted sum of counts and
/// discounted number of buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// A discounted number of buckets in 8.8 fixed point. With forgetting it
/// only grows to 1/(1 − forgetting) (20 for 0.95), so two bytes hold it to
/// 1/256 of a bucket and saturate at 256 buckets, where one more changes
/// nothing; a full `f32` per slot would cost a third more state.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Samples(u16);

impl Samples {
    fn get(self) -> f32 {
        self.0 as f32 / 256.0
    }

    fn update(&mut self, keep: f32) {
        self.0 = ((self.get() * keep + 1.0) * 256.0).round().min(u16::MAX as f32) as u16;
    }
}

/// One seasonal layer: per slot, the discounted sum of counts and the
/// discounted number of buckets (in separate arrays: no padding).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Layer<const N: usize> {
    #[serde(with = "serde_big_array::BigArray")]
    sum: [f32; N],
    #[serde(with = "serde_big_array::BigArray")]
    n: [Samples; N],
}

impl<const N: usize> Default for Layer<N> {
    fn default() -> Self {
        Layer { sum: [0.0; N], n: [Samples::default(); N] }
    }
}

impl<const N: usize> Layer<N> {
    fn get(&self, i: usize) -> Stat {
        Stat { sum: self.sum[i], n: self.n[i].get() }
    }

    fn update(&mut self, i: usize, count: f32, keep: f32) {
        self.sum[i] = self.sum[i] * keep + count;
        self.n[i].update(keep);
    }
}

/// The predictive distribution of a bucket's count. The mean and variance
/// are cheap; tail probabilities and intervals cost incomplete beta
/// evaluations, so they are computed only when asked (a detector asks for
/// the tail only when the count could alert, and for the interval only
/// when it does).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    /// Predictive mean.
    pub expected: f64,
    /// Predictive variance (≥ the mean: counts are overdispersed).
    pub variance: f64,
    /// Discounted number of buckets behind the expectation.
    pub samples: f64,
}

impl Prediction {
    /// The negative binomial with this mean and variance.
    fn distribution(&self) -> Option<NegativeBinomial> {
        let m = self.expected.max(1e-9);
        let v = self.variance.max(m * (1.0 + 1e-9));
        let p = m / v;
        NegativeBinomial::new(m * p / (1.0 - p), p).ok()
    }

    /// P(X ≥ observed).
    pub fn p_value(&self, observed: u64) -> f64 {
        match (observed, self.distribution()) {
            (0, _) | (_, None) => 1.0,
            (k, Some(nb)) => nb.sf(k - 1),
        }
    }

    /// P(X ≤ observed).
    pub fn p_value_below(&self, observed: u64) -> f64 {
        self.distribution().map_or(1.0, |nb| nb.cdf(observed))
    }

    /// Central 95% predictive interval.
    pub fn interval(&self) -> (f64, f64) {
        match self.distribution() {
            Some(nb) => (nb.inverse_cdf(0.025) as f64, nb.inverse_cdf(0.975) as f64),
            None => (0.0, self.expected),
        }
    }

    /// The prediction of the sum of two buckets' counts, by matching mean
    /// and variance (the buckets' rates are treated as independent).
    pub fn plus(&self, other: &Prediction) -> Prediction {
        Prediction {
            expected: self.expected + other.expected,
            variance: self.variance + other.variance,
            samples: self.samples.min(other.samples),
        }
    }
}

/// The per-principal seasonal count model.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SeasonalCounts {
    slots: Layer<SLOTS>,
    week: Layer<WEEK_HOURS>,
    all: Stat,
}

/// Gamma posterior mean of a layer whose prior mean is `prior`.
fn layer_mean(s: Stat, prior: f32) -> f32 {
    (PRIOR_WEIGHT * prior + s.sum) / (PRIOR_WEIGHT + s.n)
}

impl SeasonalCounts {
    /// Folds the count of the bucket starting at `t` into every layer.
    /// `keep` is the forgetting factor in (0, 1]: 1 never forgets.
    pub fn update(&mut self, t: crate::time::EventTime, count: f64, keep: f64) {
        let (c, k) = (count as f32, keep as f32);
        self.slots.update(slot_of(t), c, k);
        self.week.update(hour_of_week(t), c, k);
        // The all-hours rate sees 48 times as many buckets as a slot; its
        // memory is stretched to match.
        self.all.update(c, k.powf(1.0 / SLOTS as f32));
    }

    /// The predictive distribution for the bucket starting at `t`, without
    /// changing the model. The prior mean of the slot is the same hour on
    /// the other kind of day (weekday ↔ weekend) blended with the all-hours
    /// rate: a service principal that runs at 01:00 every night is not
    /// surprising at 01:00 on its first Saturday, and a weekday worker's
    /// first weekend morning is judged against weekday mornings.
    pub fn predict(&self, t: crate::time::EventTime) -> Prediction {
        let slot = slot_of(t);
        let all_rate = (self.all.sum + GLOBAL_PRIOR_COUNT) / (self.all.n + GLOBAL_PRIOR_BUCKETS);
        let other = layer_mean(self.slots.get((slot + 24) % SLOTS), all_rate);
        let daily = layer_mean(self.slots.get(slot), other);
        let w = self.week.get(hour_of_week(t));
        // Gamma(shape, rate) posterior of the hour of the week; the
        // predictive negative binomial has mean shape/rate and variance
        // mean·(1 + 1/rate).
        let shape = (PRIOR_WEIGHT * daily + w.sum) as f64;
        let rate = (PRIOR_WEIGHT + w.n) as f64;
        let expected = shape / rate;
        Prediction { expected, variance: expected * (1.0 + 1.0 / rate), samples: (self.slots.get(slot).n + w.n) as f64 }
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

    fn at(day: i64, hour: i64) -> EventTime {
        EventTime(1_704_067_200_000 + (day * 24 + hour) * MS_PER_HOUR) // day 0 = Monday
    }

    #[test]
    fn learns_a_rate_and_flags_a_burst() {
        let mut m = SeasonalCounts::default();
        for day in 0..21 {
            if day % 7 < 5 {
                m.update(at(day, 10), 20.0 + (day % 5) as f64, 0.95);
            }
            m.update(at(day, 3), 0.0, 0.95);
        }
        let usual = m.predict(at(21, 10));
        assert!(usual.p_value(22) > 0.05, "{usual:?}");
        assert!((usual.expected - 22.0).abs() < 4.0, "{usual:?}");
        let (low, high) = usual.interval();
        assert!(low < 22.0 && high > 22.0, "{low} {high}");
        assert!(usual.p_value(200) < 1e-6, "{}", usual.p_value(200));
        // The same 22 queries at 03:00, where there are usually none, is rare.
        assert!(m.predict(at(21, 3)).p_value(22) < 1e-6);
        // A first Saturday at 10:00 leans on weekday 10:00, not on the night.
        assert!(m.predict(at(26, 10)).p_value(22) > 1e-3, "{:?}", m.predict(at(26, 10)));
        assert!(m.predict(at(26, 3)).p_value(22) < 1e-6, "{:?}", m.predict(at(26, 3)));
    }

    #[test]
    fn a_weekly_spike_becomes_normal() {
        let mut m = SeasonalCounts::default();
        for day in 0..21 {
            if day % 7 < 5 {
                let monday_report = if day % 7 == 0 { 3.0 } else { 1.0 };
                m.update(at(day, 9), 8.0 * monday_report, 0.95);
            }
        }
        let monday = m.predict(at(21, 9));
        let tuesday = m.predict(at(22, 9));
        assert!(monday.expected > 1.8 * tuesday.expected, "{monday:?} {tuesday:?}");
        assert!(monday.p_value(24) > 0.01, "{monday:?}");
    }

    #[test]
    fn sums_of_buckets() {
        let a = Prediction { expected: 2.0, variance: 3.0, samples: 5.0 };
        let b = a.plus(&a);
        assert_eq!((b.expected, b.variance), (4.0, 6.0));
        assert!(b.p_value(4) > 0.3 && b.p_value(30) < 1e-6);
    }

    #[test]
    fn a_new_principal_is_not_certain_of_anything() {
        let m = SeasonalCounts::default();
        assert!(m.predict(at(0, 0)).p_value(3) > 0.01);
        assert_eq!(m.predict(at(0, 0)).p_value(0), 1.0);
    }
}
