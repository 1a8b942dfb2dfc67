//! Tail calibration: a model's p-values checked against how often they
//! really come out that small.
//!
//! A model's tail is a guess about buckets it has rarely seen. On data
//! nobody tuned it on the guess may be too light (hours bursty in a way
//! no dispersion captures, light users whose overdispersion cannot show
//! at one or two events an hour), and then every other busy hour reads as
//! a one-in-a-million event. So the p-values of ordinary buckets are
//! counted: of the buckets a detector has scored, how many came out at
//! p ≤ 10⁻¹, 10⁻², ... 10⁻⁶? If the model is right that is the level
//! itself. A raw p-value is then replaced by the share of buckets whose
//! raw p-value was at least as small (interpolated on a log–log scale
//! between the levels, extrapolated below the last with the last
//! segment's slope): the empirical distribution of the p-values, which is
//! uniform where the model is calibrated. Each level starts from
//! [`PRIOR_BUCKETS`] buckets at its nominal rate, and a level's count is
//! taken one bucket low, so the correction moves only on evidence: one
//! incident at p = 10⁻⁸ changes nothing, a level reached thirty times
//! where ten were due does. The correction only ever widens: a
//! p-value is never made smaller than the model's own.
//!
//! Incidents are counted too, but they are rare; a detector drowning in
//! them has bigger problems. Hand-written: an empirical CDF over six fixed
//! levels with a prior is a dozen lines, not a dependency.

/// Levels counted: 10⁻¹ … 10⁻⁶.
pub const LEVELS: usize = 6;
/// Buckets the nominal rates count for at every level.
pub const PRIOR_BUCKETS: f64 = 1000.0;
/// The most a level's rate may be of the level above's: 10^-½.
const MIN_STEP: f64 = 0.316_227_766;

/// Discounted counts of scored buckets and of those whose raw p-value
/// reached each level.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exceedances {
    scored: f64,
    reached: [f64; LEVELS],
}

fn level(j: usize) -> f64 {
    10f64.powi(-(j as i32 + 1))
}

impl Exceedances {
    /// Counts one scored bucket's raw p-value.
    pub fn observe(&mut self, raw: f64) {
        self.scored += 1.0;
        for (j, r) in self.reached.iter_mut().enumerate() {
            if raw <= level(j) {
                *r += 1.0;
            } else {
                break;
            }
        }
    }

    /// Discounts the counts by `keep`.
    pub fn decay(&mut self, keep: f64) {
        self.scored *= keep;
        for r in &mut self.reached {
            *r *= keep;
        }
    }

    /// The rates at each level, with the prior, never below the level and
    /// each at most [`MIN_STEP`] of the one above: a few buckets deep in
    /// the tail cannot flatten the curve, so a smaller raw p-value always
    /// stays a smaller calibrated one (half a decade per decade at least).
    fn rates(&self) -> [f64; LEVELS] {
        let mut rates = [0.0; LEVELS];
        let mut above = 1.0f64;
        for (j, rate) in rates.iter_mut().enumerate() {
            let nominal = level(j);
            // One bucket fewer than counted: a single incident moves no
            // level and hides no later one; a steady excess moves it.
            let k = self.reached[j];
            let r = ((k - 1.0).max(0.0) + PRIOR_BUCKETS * nominal) / (self.scored + PRIOR_BUCKETS);
            *rate = r.max(nominal).min(above * MIN_STEP);
            above = *rate;
        }
        rates
    }

    /// The calibrated p-value of a raw one.
    pub fn calibrate(&self, raw: f64) -> f64 {
        if raw.is_nan() || raw <= 0.0 {
            return raw.max(0.0);
        }
        if raw >= 1.0 {
            return 1.0;
        }
        let rates = self.rates();
        // Points (log level, log rate), from p = 1 (rate 1) down.
        let point = |j: usize| (level(j).ln(), rates[j].ln());
        let x = raw.ln();
        let mut upper = (0.0f64, 0.0f64);
        for j in 0..LEVELS {
            let lower = point(j);
            if x >= lower.0 {
                let f = (x - upper.0) / (lower.0 - upper.0);
                let y = upper.1 + f * (lower.1 - upper.1);
                return y.exp().clamp(raw, 1.0);
            }
            upper = lower;
        }
        // Below the last level: the last segment's slope.
        let (a, b) = (point(LEVELS - 2), point(LEVELS - 1));
        let slope = (b.1 - a.1) / (b.0 - a.0);
        (b.1 + slope * (x - b.0)).exp().clamp(raw, 1.0)
    }
}

/// A principal's own excess of small p-values, after the peers'
/// calibration: the rates at which its calibrated p-values reach 1% and
/// 0.01%, over those levels, scale them (the larger of the two, at least
/// 1, at most [`OWN_MAX_FACTOR`]), each rate starting from
/// [`OWN_PRIOR_BUCKETS`] buckets at its level and, at 0.01%, counting one
/// bucket fewer than seen (one incident is not a habit). A bursty client
/// among calm peers keeps its bursts to itself: one whose hours reach
/// 0.01% four times in five hundred is scaled about thirtyfold. A scale,
/// not a power: the peers' curve already bends the tail; a principal's own
/// few hundred buckets say how much more often it is surprised, not how
/// its far tail is shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OwnTail {
    scored: f32,
    reached: f32,
    deep: f32,
}

/// Buckets each level's nominal rate counts for in a principal's own tail rates.
pub const OWN_PRIOR_BUCKETS: f64 = 200.0;
/// The most a principal's own excess scales its p-values by.
pub const OWN_MAX_FACTOR: f64 = 30.0;
/// Weight an earlier bucket keeps per scored bucket (about 200 buckets).
const OWN_KEEP: f32 = 0.995;
/// The two levels counted.
const OWN_LEVEL: f64 = 0.01;
const OWN_DEEP: f64 = 1e-4;

impl OwnTail {
    /// Counts one scored bucket's calibrated p-value.
    pub fn observe(&mut self, calibrated: f64) {
        self.scored = self.scored * OWN_KEEP + 1.0;
        self.reached = self.reached * OWN_KEEP + if calibrated <= OWN_LEVEL { 1.0 } else { 0.0 };
        self.deep = self.deep * OWN_KEEP + if calibrated <= OWN_DEEP { 1.0 } else { 0.0 };
    }

    /// The factor (≥ 1) the principal's p-values are scaled by.
    pub fn temper(&self) -> f64 {
        let n = self.scored as f64 + OWN_PRIOR_BUCKETS;
        let at_level = (self.reached as f64 + OWN_PRIOR_BUCKETS * OWN_LEVEL) / n / OWN_LEVEL;
        let deep = ((self.deep as f64 - 1.0).max(0.0) + OWN_PRIOR_BUCKETS * OWN_DEEP) / n / OWN_DEEP;
        at_level.max(deep).clamp(1.0, OWN_MAX_FACTOR)
    }

    /// `calibrated · factor`, at most 1.
    pub fn apply(&self, calibrated: f64) -> f64 {
        (calibrated.max(0.0) * self.temper()).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibrated_model_is_left_alone() {
        let mut e = Exceedances::default();
        // 100,000 buckets whose p-values are uniform: at each level, its share.
        for i in 0..100_000u32 {
            e.observe((i as f64 + 0.5) / 100_000.0);
        }
        for raw in [0.5, 0.05, 3e-3, 2e-4, 1e-7] {
            let c = e.calibrate(raw);
            assert!(c >= raw && c < raw * 1.3, "{raw}: {c}");
        }
    }

    #[test]
    fn a_tail_too_light_is_widened_and_the_order_kept() {
        let mut e = Exceedances::default();
        // The model claims 10⁻⁴ ten times as often as it should.
        for i in 0..100_000u32 {
            let u = (i as f64 + 0.5) / 100_000.0;
            e.observe(if u < 1e-3 { u / 10.0 } else { u });
        }
        // Widened toward 10⁻³, as far as half a decade below the 10⁻³
        // level allows (no raw p-value falls between 10⁻⁴ and 10⁻³ here).
        let c = e.calibrate(1e-4);
        assert!(c > 3e-4 && c < 2e-3, "{c}");
        assert!(e.calibrate(1e-5) > 5e-5, "{}", e.calibrate(1e-5));
        assert!(e.calibrate(1e-8) < e.calibrate(1e-6) && e.calibrate(1e-6) < c);
        assert_eq!(e.calibrate(1.0), 1.0);
    }

    #[test]
    fn one_incident_changes_nothing() {
        let mut e = Exceedances::default();
        for i in 0..10_000u32 {
            e.observe((i as f64 + 0.5) / 10_000.0);
        }
        e.observe(1e-8);
        let c = e.calibrate(1e-6);
        assert!(c < 1.3e-6, "{c}");
        // A second at that depth is evidence.
        e.observe(1e-8);
        e.observe(1e-8);
        assert!(e.calibrate(1e-6) > 2e-6, "{}", e.calibrate(1e-6));
    }

    #[test]
    fn a_principal_with_its_own_bursts_is_tempered() {
        let mut calm = OwnTail::default();
        let mut bursty = OwnTail::default();
        for i in 0..500 {
            calm.observe(if i % 100 == 0 { 0.005 } else { 0.5 });
            bursty.observe(if i % 10 == 0 { 0.005 } else { 0.5 });
        }
        assert_eq!(calm.temper(), 1.0);
        assert!(bursty.temper() > 4.0, "{}", bursty.temper());
        assert!(bursty.apply(1e-8) > 4e-8);
    }

    #[test]
    fn a_deep_tail_of_its_own_is_tempered_and_one_incident_is_not() {
        let mut heavy = OwnTail::default();
        let mut once = OwnTail::default();
        for i in 0..500 {
            heavy.observe(if i % 120 == 7 { 1e-6 } else { 0.5 });
            once.observe(if i == 250 { 1e-9 } else { 0.5 });
        }
        assert!(heavy.temper() > 10.0, "{}", heavy.temper());
        assert_eq!(once.temper(), 1.0);
    }
}
