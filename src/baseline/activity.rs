//! Seasonal model of *when* a principal is active: the "when" question,
//! apart from "how much" ([`super::count`]).
//!
//! Per hour of the day and hour of the week it learns the probability that
//! a bucket is active at all, pooled the same way as the counts: the hour
//! of the week shrinks toward the hour of the day, which shrinks toward the
//! principal's overall activity shaped like its peers' day (a newcomer is
//! expected to keep its peers' hours), each by how much those layers
//! really differ ([`super::pool`], Bernoulli variances).
//!
//! An active bucket's **unusualness** is the larger of the two
//! probabilities: an hour is unusual when the principal is rarely active at
//! that hour of the day *and* it is not a regular hour of its week either.
//! A weekday worker's Saturday at 10:00 is an ordinary hour of the day; a
//! principal that runs a Sunday 03:00 maintenance every week is ordinary
//! then.
//!
//! Whether that is surprising is a **rate of novelty**, like
//! `new_source`'s: of the principal's recent active buckets, how many fell
//! at hours at least as unusual? The p-value is `(k + prior + ½) / (N +
//! prior weight + 1)` over the discounted active buckets, with the peers'
//! rates as the prior for a newcomer. An on-call engineer who works a
//! night a week is never surprising at night; a nine-to-five worker's
//! first night is, once. The p-value cannot fall below about `1/N`, so
//! this model can only ever raise low-severity findings.
//! State: 392 `f32`s, an `i64` and the novelty bins, 1,612 bytes.

use super::count::{DAY_HOURS, WEEK_HOURS, hour_of_day, hour_of_week};
use super::pool::{Slot, between_variance, slot_credibility};
use crate::time::{EventTime, MS_PER_DAY};

/// Bins of unusualness: halvings of the activity probability, from ≥ ½
/// (bin 0) to below 1/512 (the last).
pub const BINS: usize = 10;
/// Active buckets the prior rates count for (a day and a half of office
/// hours): a newcomer leans on its peers, a settled principal on itself.
pub const PRIOR_WEIGHT: f64 = 12.0;
/// Buckets the prior activity level counts for (a day of hours).
const LEVEL_PRIOR_BUCKETS: f64 = 24.0;
/// Hours with an activity probability at or above this are never unusual.
pub const USUAL: f64 = 0.05;
const MIN_SAMPLES: f32 = 1e-3;

/// The bin of an activity probability.
pub fn bin_of(p: f64) -> usize {
    if p.is_nan() || p <= 0.0 {
        return BINS - 1;
    }
    ((-p.log2()).floor().max(0.0) as usize).min(BINS - 1)
}

/// What a principal's timing is expected to be before its own history
/// says otherwise: its peers', or global defaults.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActivityPrior {
    /// Fraction of buckets that are active.
    pub active: f64,
    /// Probability of activity per hour of the day.
    pub day: [f64; DAY_HOURS],
    /// Fraction of active buckets per unusualness bin.
    pub unusual: [f64; BINS],
}

impl Default for ActivityPrior {
    /// No peers: active a third of the time, at any hour, and about one
    /// active bucket in a hundred at an hour the principal rarely works.
    fn default() -> Self {
        ActivityPrior {
            active: 0.3,
            day: [0.3; DAY_HOURS],
            unusual: [0.6, 0.25, 0.09, 0.035, 0.012, 0.006, 0.003, 0.002, 0.001, 0.001],
        }
    }
}

/// What the model says of an active bucket's hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Probability that the principal is active at this hour of the day.
    pub day: f64,
    /// Probability that it is active at this hour of the week.
    pub week: f64,
    /// The discounted active buckets behind the rates.
    pub active_samples: f64,
    /// Of those, the (discounted) ones at hours at least this unusual.
    pub as_unusual: f64,
    /// The rate-of-novelty p-value; 1 for an hour that is not unusual.
    pub p_value: f64,
}

impl Timing {
    /// The hour's unusualness: the larger of the two probabilities.
    pub fn usual(&self) -> f64 {
        self.day.max(self.week)
    }
}

/// The per-principal model of when it is active.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeasonalActivity {
    /// Event time of the last update (ms); `i64::MIN` before the first.
    last: i64,
    n: f32,
    a: f32,
    day_n: [f32; DAY_HOURS],
    day_a: [f32; DAY_HOURS],
    #[serde(with = "serde_big_array::BigArray")]
    week_n: [f32; WEEK_HOURS],
    #[serde(with = "serde_big_array::BigArray")]
    week_a: [f32; WEEK_HOURS],
    /// Discounted active buckets per unusualness bin, and their total.
    unusual: [f32; BINS],
    unusual_n: f32,
}

impl Default for SeasonalActivity {
    fn default() -> Self {
        SeasonalActivity {
            last: i64::MIN,
            n: 0.0,
            a: 0.0,
            day_n: [0.0; DAY_HOURS],
            day_a: [0.0; DAY_HOURS],
            week_n: [0.0; WEEK_HOURS],
            week_a: [0.0; WEEK_HOURS],
            unusual: [0.0; BINS],
            unusual_n: 0.0,
        }
    }
}

fn clamp_p(p: f64) -> f64 {
    p.clamp(1e-4, 1.0 - 1e-4)
}

/// A slot's activity probability, pooled toward `parent`.
fn pool_slot(parent: f64, n: f32, a: f32, tau2: f64) -> f64 {
    if n < MIN_SAMPLES {
        return parent;
    }
    let d = (a / n) as f64 - parent;
    let (z, _) = slot_credibility(Slot { n: n as f64, d, v: parent * (1.0 - parent) }, tau2);
    clamp_p(parent + z * d)
}

impl SeasonalActivity {
    /// Discounted buckets seen, and the active ones among them.
    pub fn samples(&self) -> (f64, f64) {
        (self.n as f64, self.a as f64)
    }

    /// Activity probabilities at `t` (hour of the day, hour of the week).
    pub fn rates(&self, t: EventTime, prior: &ActivityPrior) -> (f64, f64) {
        let base =
            clamp_p((self.a as f64 + LEVEL_PRIOR_BUCKETS * prior.active) / (self.n as f64 + LEVEL_PRIOR_BUCKETS));
        // The peers' shape of the day, scaled to this principal's level.
        let shape = |h: usize| clamp_p(base * prior.day[h] / prior.active.max(1e-4));
        let slots = |h: usize| {
            let m = shape(h);
            Slot {
                n: self.day_n[h] as f64,
                d: if self.day_n[h] >= MIN_SAMPLES { (self.day_a[h] / self.day_n[h]) as f64 - m } else { 0.0 },
                v: m * (1.0 - m),
            }
        };
        let tau_day = between_variance((0..DAY_HOURS).map(slots), 1);
        let mut day = [0.0; DAY_HOURS];
        for (h, p) in day.iter_mut().enumerate() {
            *p = pool_slot(shape(h), self.day_n[h], self.day_a[h], tau_day);
        }
        let tau_week = between_variance(
            (0..WEEK_HOURS).map(|w| {
                let m = day[w % DAY_HOURS];
                Slot {
                    n: self.week_n[w] as f64,
                    d: if self.week_n[w] >= MIN_SAMPLES { (self.week_a[w] / self.week_n[w]) as f64 - m } else { 0.0 },
                    v: m * (1.0 - m),
                }
            }),
            DAY_HOURS,
        );
        let w = hour_of_week(t);
        let h = hour_of_day(t);
        (day[h], pool_slot(day[h], self.week_n[w], self.week_a[w], tau_week))
    }

    /// Judges an active bucket at `t`, without changing the model.
    pub fn judge(&self, t: EventTime, prior: &ActivityPrior) -> Timing {
        let (day, week) = self.rates(t, prior);
        let usual = day.max(week);
        // Hours at most about twice as usual as this one count as being as
        // unusual: the bins are coarse, and an on-call engineer whose nights
        // fell at 1-in-20 hours is not surprised by a 1-in-40 one.
        let b = bin_of(usual).saturating_sub(1);
        let own: f64 = self.unusual[b..].iter().map(|&x| x as f64).sum();
        let peers: f64 = prior.unusual[b..].iter().sum::<f64>() * PRIOR_WEIGHT;
        let p_value = if usual >= USUAL {
            1.0
        } else {
            ((own + peers + 0.5) / (self.unusual_n as f64 + PRIOR_WEIGHT + 1.0)).min(1.0)
        };
        Timing { day, week, active_samples: self.unusual_n as f64, as_unusual: own, p_value }
    }

    fn decay_to(&mut self, t: EventTime, keep_per_day: f64) {
        if self.last != i64::MIN && t.0 > self.last {
            let k = keep_per_day.powf((t.0 - self.last) as f64 / MS_PER_DAY as f64) as f32;
            if k < 1.0 {
                self.n *= k;
                self.a *= k;
                self.unusual_n *= k;
                for x in self
                    .day_n
                    .iter_mut()
                    .chain(&mut self.day_a)
                    .chain(&mut self.week_n)
                    .chain(&mut self.week_a)
                    .chain(&mut self.unusual)
                {
                    *x *= k;
                }
            }
        }
        self.last = self.last.max(t.0);
    }

    /// Folds in the bucket starting at `t`; `judged` is what
    /// [`SeasonalActivity::judge`] said of it when it was active (`None`:
    /// an inactive bucket).
    pub fn update(&mut self, t: EventTime, judged: Option<&Timing>, keep_per_day: f64) {
        self.decay_to(t, keep_per_day);
        let (h, w) = (hour_of_day(t), hour_of_week(t));
        self.n += 1.0;
        self.day_n[h] += 1.0;
        self.week_n[w] += 1.0;
        if let Some(j) = judged {
            self.a += 1.0;
            self.day_a[h] += 1.0;
            self.week_a[w] += 1.0;
            self.unusual[bin_of(j.usual())] += 1.0;
            self.unusual_n += 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MS_PER_HOUR;

    fn at(day: i64, hour: i64) -> EventTime {
        EventTime(1_704_067_200_000 + (day * 24 + hour) * MS_PER_HOUR) // day 0 = Monday
    }

    fn learn(days: i64, active: impl Fn(i64, i64) -> bool) -> SeasonalActivity {
        let mut m = SeasonalActivity::default();
        let prior = ActivityPrior::default();
        for day in 0..days {
            for hour in 0..24 {
                let t = at(day, hour);
                let j = active(day, hour).then(|| m.judge(t, &prior));
                m.update(t, j.as_ref(), 0.95);
            }
        }
        m
    }

    fn office(day: i64, hour: i64) -> bool {
        day % 7 < 5 && (9..17).contains(&hour)
    }

    #[test]
    fn bins() {
        assert_eq!(bin_of(0.9), 0);
        assert_eq!(bin_of(0.3), 1);
        assert_eq!(bin_of(0.05), 4);
        assert_eq!(bin_of(0.001), 9);
        assert_eq!(bin_of(0.0), 9);
    }

    #[test]
    fn a_first_night_is_unusual_a_weekend_morning_is_not() {
        let m = learn(28, office);
        let prior = ActivityPrior::default();
        let night = m.judge(at(28, 3), &prior);
        assert!(night.usual() < 0.05, "{night:?}");
        assert!(night.p_value < 0.01, "{night:?}");
        // Saturday 10:00 is an hour of the day this principal works.
        let saturday = m.judge(at(33, 10), &prior);
        assert!(saturday.day > 0.3 && saturday.p_value == 1.0, "{saturday:?}");
        // A weekday at 10:00 is entirely ordinary.
        assert_eq!(m.judge(at(29, 10), &prior).p_value, 1.0);
    }

    #[test]
    fn someone_who_works_nights_now_and_then_is_not_surprising_at_night() {
        // On call: a night session every few days, at whatever hour it takes.
        let m = learn(28, |day, hour| {
            office(day, hour) || (day % 3 == 1 && hour == [1, 3, 0, 4, 2, 5][(day / 3 % 6) as usize])
        });
        let night = m.judge(at(29, 22), &ActivityPrior::default());
        assert!(night.p_value > 0.02, "{night:?}");
    }

    #[test]
    fn a_weekly_night_job_is_a_regular_hour_of_the_week() {
        let m = learn(35, |day, hour| office(day, hour) || (day % 7 == 6 && hour == 3));
        let sunday = m.judge(at(41, 3), &ActivityPrior::default());
        assert!(sunday.week > 0.1, "{sunday:?}");
        assert_eq!(sunday.p_value, 1.0);
        let tuesday = m.judge(at(36, 3), &ActivityPrior::default());
        assert!(tuesday.week < sunday.week, "{tuesday:?} {sunday:?}");
    }

    #[test]
    fn a_newcomer_keeps_its_peers_hours() {
        let mut prior = ActivityPrior::default();
        for (h, p) in prior.day.iter_mut().enumerate() {
            *p = if (9..17).contains(&h) { 0.8 } else { 0.002 };
        }
        prior.active = 0.27;
        let m = learn(1, office);
        assert!(m.rates(at(1, 3), &prior).0 < 0.02, "{:?}", m.rates(at(1, 3), &prior));
        assert!(m.rates(at(1, 10), &prior).0 > 0.5, "{:?}", m.rates(at(1, 10), &prior));
    }

    #[test]
    fn the_model_is_small() {
        assert!(std::mem::size_of::<SeasonalActivity>() <= 1640, "{}", std::mem::size_of::<SeasonalActivity>());
    }
}
