//! Log-scale value model with a Student-t predictive tail.
//!
//! For positive values whose spread grows with their size (job runtimes,
//! hourly cost): the logarithm is tracked with a discounted mean and
//! variance, robust to outliers (an update is clipped to ±3 standard
//! deviations once the model has a few samples, so one incident does not
//! teach the model that incidents are normal). The predictive distribution
//! of the next log value is Student-t with degrees of freedom from the
//! effective sample count and a weak prior on the spread, so a model with
//! little history is wide rather than certain. State: three `f32`s.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Prior standard deviation of log values (±65% is ordinary), worth
/// [`PRIOR_SAMPLES`] samples.
const PRIOR_SD: f64 = 0.5;
const PRIOR_SAMPLES: f64 = 2.0;

/// The discounted log-scale location and spread.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogValues {
    n: f32,
    mean: f32,
    var: f32,
}

/// What the model expects of the next value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValuePrediction {
    /// Median of the predictive distribution (exp of the log location).
    pub expected: f64,
    /// Effective number of samples behind it.
    pub samples: f64,
    location: f64,
    scale: f64,
    dof: f64,
}

impl ValuePrediction {
    /// The predictive Student-t of the log value (parameters were checked
    /// when the prediction was made).
    fn t(&self) -> Option<StudentsT> {
        StudentsT::new(self.location, self.scale, self.dof).ok()
    }

    /// Central 95% predictive interval. Inverting the Student-t costs
    /// dozens of incomplete-beta evaluations, so it is computed only for
    /// the few values that alert.
    pub fn interval(&self) -> (f64, f64) {
        self.t().map_or((0.0, f64::INFINITY), |t| (t.inverse_cdf(0.025).exp(), t.inverse_cdf(0.975).exp()))
    }

    /// P(value ≥ observed).
    pub fn p_value(&self, observed: f64) -> f64 {
        if observed <= 0.0 {
            return 1.0;
        }
        self.t().map_or(1.0, |t| t.sf(observed.ln()))
    }

    /// P(value ≤ observed); values ≤ 0 are below any positive value.
    pub fn p_value_below(&self, observed: f64) -> f64 {
        if observed <= 0.0 {
            return 0.0;
        }
        self.t().map_or(1.0, |t| t.cdf(observed.ln()))
    }
}

/// Samples an hour-of-day location needs before it is preferred to the
/// all-hours one.
const HOUR_MIN_SAMPLES: f64 = 3.0;

/// Values with a daily rhythm (an hourly bill): a location per hour of the
/// day (UTC) with the spread pooled over hours, and the all-hours model
/// until an hour has a few samples of its own. A principal whose daily job
/// bills at 00:00 is judged at 00:00 against earlier midnights.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HourlyValues {
    all: LogValues,
    hours: [LogValues; 24],
    residuals: Residuals,
}

impl HourlyValues {
    /// Values folded in (discounted).
    pub fn samples(&self) -> f64 {
        self.all.samples()
    }

    /// What the model expects at `t`, without changing it.
    pub fn predict(&self, t: crate::time::EventTime) -> Option<ValuePrediction> {
        let hour = &self.hours[t.hour_of_day() as usize];
        if hour.samples() >= HOUR_MIN_SAMPLES { hour.predict_pooled(&self.residuals) } else { self.all.predict() }
    }

    /// Folds in the value at `t`; `keep` discounts the past per value.
    pub fn update(&mut self, t: crate::time::EventTime, value: f64, keep: f64) {
        let hour = &mut self.hours[t.hour_of_day() as usize];
        self.residuals.update(hour, value, keep);
        // One update a day per hour: its memory is stretched to match.
        hour.update(value, keep.powf(1.0 / 24.0));
        self.all.update(value, keep);
    }
}

/// Discounted spread of residuals around per-slot locations, pooled over
/// slots: each hour of the day has its own typical cost, but how much an
/// hour varies is learnt from all hours at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Residuals {
    n: f32,
    var: f32,
}

impl Residuals {
    /// Folds in the residual of a positive `value` against `slot`'s location.
    pub fn update(&mut self, slot: &LogValues, value: f64, keep: f64) {
        if value <= 0.0 || !value.is_finite() || slot.n < 1.0 {
            return;
        }
        let sd = self.var.max(1e-6).sqrt();
        let mut r = value.ln() as f32 - slot.mean;
        if self.n >= 3.0 {
            r = r.clamp(-3.0 * sd, 3.0 * sd);
        }
        self.n = self.n * keep as f32 + 1.0;
        let w = 1.0 / self.n;
        self.var = (1.0 - w) * self.var + w * r * r;
    }
}

impl LogValues {
    pub fn samples(&self) -> f64 {
        self.n as f64
    }

    /// Like [`LogValues::predict`], located at this slot's mean but with the
    /// spread pooled over all slots.
    pub fn predict_pooled(&self, residuals: &Residuals) -> Option<ValuePrediction> {
        if self.n <= 0.0 || residuals.n <= 0.0 {
            return self.predict();
        }
        let n = residuals.n as f64;
        let var = (n * residuals.var as f64 + PRIOR_SAMPLES * PRIOR_SD * PRIOR_SD) / (n + PRIOR_SAMPLES);
        let scale = (var * (1.0 + 1.0 / self.n as f64)).sqrt();
        let dof = (n + PRIOR_SAMPLES - 1.0).max(1.0);
        let location = self.mean as f64;
        // Refuses parameters the distribution cannot take (NaN, zero scale).
        StudentsT::new(location, scale, dof).ok()?;
        Some(ValuePrediction { expected: location.exp(), samples: self.n as f64, location, scale, dof })
    }

    /// Folds in a positive value; `keep` in (0, 1] discounts the past.
    pub fn update(&mut self, value: f64, keep: f64) {
        if value <= 0.0 || !value.is_finite() {
            return;
        }
        let mut y = value.ln() as f32;
        if self.n >= 3.0 {
            let sd = self.var.max(1e-6).sqrt();
            y = y.clamp(self.mean - 3.0 * sd, self.mean + 3.0 * sd);
        }
        let n = self.n * keep as f32 + 1.0;
        let w = 1.0 / n;
        let delta = y - self.mean;
        self.mean += w * delta;
        self.var = (1.0 - w) * (self.var + w * delta * delta);
        self.n = n;
    }

    /// The predictive distribution of the next value; `None` before any.
    pub fn predict(&self) -> Option<ValuePrediction> {
        if self.n <= 0.0 {
            return None;
        }
        let n = self.n as f64;
        let var = (n * self.var as f64 + PRIOR_SAMPLES * PRIOR_SD * PRIOR_SD) / (n + PRIOR_SAMPLES);
        let scale = (var * (1.0 + 1.0 / n)).sqrt();
        let dof = (n + PRIOR_SAMPLES - 1.0).max(1.0);
        let location = self.mean as f64;
        // Refuses parameters the distribution cannot take (NaN, zero scale).
        StudentsT::new(location, scale, dof).ok()?;
        Some(ValuePrediction { expected: location.exp(), samples: n, location, scale, dof })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_typical_value_and_flags_a_long_one() {
        let mut m = LogValues::default();
        for i in 0..30 {
            m.update(600.0 * (1.0 + 0.1 * ((i % 5) as f64 - 2.0) / 2.0), 0.97);
        }
        let p = m.predict().unwrap();
        assert!((p.expected - 600.0).abs() < 30.0, "{p:?}");
        let (low, high) = p.interval();
        assert!(low < 600.0 && high > 600.0);
        assert!(p.p_value(650.0) > 0.05, "{}", p.p_value(650.0));
        assert!(p.p_value(4000.0) < 1e-6, "{}", p.p_value(4000.0));
    }

    #[test]
    fn one_outlier_does_not_become_normal() {
        let mut m = LogValues::default();
        for _ in 0..20 {
            m.update(100.0, 0.97);
        }
        m.update(10_000.0, 0.97);
        assert!(m.predict().unwrap().expected < 130.0);
    }

    #[test]
    fn pooled_spread_sharpens_a_thin_slot() {
        let (mut midnight, mut residuals) = (LogValues::default(), Residuals::default());
        let mut other = LogValues::default();
        for day in 0..10 {
            let jitter = 1.0 + 0.05 * ((day % 3) as f64 - 1.0);
            for _ in 0..23 {
                residuals.update(&other, 1.0 * jitter, 0.999);
                other.update(1.0 * jitter, 0.999);
            }
            residuals.update(&midnight, 5.0 * jitter, 0.999);
            midnight.update(5.0 * jitter, 0.99);
        }
        let alone = midnight.predict().unwrap();
        let pooled = midnight.predict_pooled(&residuals).unwrap();
        assert!((pooled.expected - 5.0).abs() < 0.3, "{pooled:?}");
        assert!(pooled.p_value(20.0) < alone.p_value(20.0), "{pooled:?} {alone:?}");
        assert!(pooled.p_value(20.0) < 1e-6, "{}", pooled.p_value(20.0));
    }

    #[test]
    fn little_history_is_wide() {
        let mut m = LogValues::default();
        m.update(100.0, 1.0);
        let p = m.predict().unwrap();
        assert!(p.p_value(300.0) > 1e-3, "{}", p.p_value(300.0));
        assert_eq!(LogValues::default().predict(), None);
    }
}
