//! Seasonal model of values (a job run's runtime, a principal's hourly
//! cost, any exported metric) with a Student-t predictive tail.
//!
//! **Scale.** Values are modelled as `asinh(y / c)`: logarithmic for values
//! well above `c` (a runtime or a bill whose spread grows with its size),
//! linear near zero, and defined for zero and negative values (an idle
//! hour, a billing retraction). `c` is a tenth of the typical magnitude of
//! the first [`WARM`] values, fixed once and kept in the state, so the
//! model's meaning never shifts under it.
//!
//! **Location** has the same layers as the counts ([`super::count`]): the
//! overall mean, the hour of the day shrunk toward it, and (for
//! `SeasonalValues<168>`) the hour of the week shrunk toward its hour of
//! the day, each by how much those slots really differ
//! ([`super::pool`]). Updates are winsorized at four predictive standard
//! deviations, so one incident does not become the norm.
//!
//! **A recent level** follows a value that has moved for now (a busy
//! day, a job whose data doubled): the mean error of the last few values
//! against the seasonal location ([`RECENT_KEEP`]) shifts the prediction by
//! its credibility, learnt from how much errors covary with the recent
//! ones (a series without such moves gets none).
//!
//! **Spread and tail.** The spread is learnt from the one-step-ahead
//! prediction errors beyond the uncertainty the prediction admitted about
//! its location (clipped at eight standard deviations: bounded influence,
//! heavy tails still seen), per hour of the day shrunk toward all hours'
//! spread, with a weak prior. The Student-t's
//! degrees of freedom are the smaller of what the history supports (its
//! effective sample count) and what the errors' shape says: the ratio
//! `E|e| / √E[e²]` is `√(2/π) ≈ 0.80` for Gaussian errors and falls as the
//! tail gets heavier (0.74 at 5 degrees of freedom, 0.64 at 3); the degrees
//! of freedom are read off at the upper end of that ratio's sampling
//! interval, the lightest tail the errors allow. Real metric series are
//! heavy-tailed, and a Gaussian tail on them makes every other bucket look
//! impossible. Tail probabilities come from `statrs`.
//! State: `(3 + 2·24 + 2·W) f32`s and a few more, 232 bytes for per-run
//! values and 1,576 for hourly ones.

use super::count::{DAY_HOURS, hour_of_day, hour_of_week};
use super::pool::{Slot, between_variance, credibility, slot_credibility};
use crate::time::{EventTime, MS_PER_DAY};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Values held back to fix the scale `c`.
pub const WARM: usize = 8;
/// The prior variance of a value around its location, on the model's scale,
/// is the local noise of the first values, between [`PRIOR_VAR_MIN`] (±1%)
/// and [`PRIOR_VAR_MAX`] (±50%), worth [`PRIOR_SAMPLES`] errors: a fixed
/// prior would outweigh hundreds of errors of a quiet series.
const PRIOR_VAR_MIN: f64 = 1e-4;
const PRIOR_VAR_MAX: f64 = 0.25;
const PRIOR_SAMPLES: f64 = 2.0;
const CLIP_LEARN: f64 = 4.0;
const CLIP_SPREAD: f64 = 8.0;
/// The most degrees of freedom used: beyond it the Student-t is Gaussian.
const MAX_DOF: f64 = 1000.0;
/// The fewest: a tail heavier than this is not told apart.
const MIN_DOF: f64 = 2.5;
const MIN_SAMPLES: f32 = 1e-3;

/// How a model forgets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Forgetting {
    /// Keep this weight per day of event time (hourly values).
    PerDay(f64),
    /// Keep this weight per value folded in (runs).
    PerValue(f64),
}

/// What the model expects of the next value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValuePrediction {
    /// Median of the predictive distribution, in the value's units.
    pub expected: f64,
    /// Effective number of values behind it.
    pub samples: f64,
    /// Degrees of freedom of the heavier of its two tails.
    pub dof: f64,
    dof_up: f64,
    dof_down: f64,
    location: f64,
    /// Student-t scales above and below the location, and the share of
    /// values above it.
    scale_up: f64,
    scale_down: f64,
    share_up: f64,
    /// The predictive standard deviation on the model's scale (for
    /// clipping), and the part of its variance that is uncertainty about
    /// the location.
    sd: f64,
    uncertainty: f64,
    c: f64,
}

impl ValuePrediction {
    /// The standard Student-t of each side.
    fn t(&self) -> Option<(StudentsT, StudentsT)> {
        Some((StudentsT::new(0.0, 1.0, self.dof_up).ok()?, StudentsT::new(0.0, 1.0, self.dof_down).ok()?))
    }

    fn transformed(&self, y: f64) -> f64 {
        (y / self.c).asinh()
    }

    /// `P(X ≥ x)` on the model's scale: a Student-t with one scale above
    /// the location and another below it (errors are rarely symmetric:
    /// spikes outnumber dips), each half holding its share of the values.
    fn upper(&self, (up, down): &(StudentsT, StudentsT), x: f64) -> f64 {
        if x >= self.location {
            self.share_up * 2.0 * up.sf((x - self.location) / self.scale_up)
        } else {
            1.0 - (1.0 - self.share_up) * 2.0 * down.sf((self.location - x) / self.scale_down)
        }
    }

    /// P(value ≥ observed).
    pub fn p_value(&self, observed: f64) -> f64 {
        if !observed.is_finite() {
            return 1.0;
        }
        self.t().map_or(1.0, |t| self.upper(&t, self.transformed(observed)).clamp(0.0, 1.0))
    }

    /// P(value ≤ observed).
    pub fn p_value_below(&self, observed: f64) -> f64 {
        if !observed.is_finite() {
            return 1.0;
        }
        self.t().map_or(1.0, |t| (1.0 - self.upper(&t, self.transformed(observed))).clamp(0.0, 1.0))
    }

    /// Central 95% predictive interval, in the value's units. Inverting the
    /// Student-t costs dozens of incomplete-beta evaluations, so it is
    /// computed only for the few values that alert.
    pub fn interval(&self) -> (f64, f64) {
        self.t().map_or((f64::NEG_INFINITY, f64::INFINITY), |(up, down)| {
            let below = 1.0 - self.share_up;
            let low = self.location - self.scale_down * down.inverse_cdf(1.0 - (0.025 / (2.0 * below)).min(0.5));
            let high = self.location + self.scale_up * up.inverse_cdf(1.0 - (0.025 / (2.0 * self.share_up)).min(0.5));
            (self.c * low.sinh(), self.c * high.sinh())
        })
    }
}

/// The scale `c` of the `asinh` transform, from the first values: a tenth
/// of their typical magnitude when that magnitude is at least three times
/// their local noise (the median change between consecutive values, in
/// time order), else three times the noise. Values whose level stands
/// well above their noise (a bill, a runtime) are then on a log scale;
/// values hovering around zero (a balance, a difference) on a linear one,
/// where a log scale would squash their tails.
fn scale_of(values: &[f32; WARM], times: &[i64; WARM]) -> f64 {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 { 0.0 } else { 0.5 * (v[(n - 1) / 2] + v[n / 2]) }
    };
    let mut order: Vec<usize> = (0..WARM).collect();
    order.sort_by_key(|&i| (times[i], i));
    let magnitudes: Vec<f64> = values.iter().map(|v| (*v as f64).abs()).collect();
    let mean = magnitudes.iter().sum::<f64>() / WARM as f64;
    let typical = median(magnitudes).max(mean);
    let noise = median(order.windows(2).map(|w| (values[w[1]] as f64 - values[w[0]] as f64).abs()).collect());
    let c = if typical >= 3.0 * noise { 0.1 * typical } else { (0.1 * typical).max(3.0 * noise) };
    if c > 0.0 && c.is_finite() { c } else { 1.0 }
}

/// The prior variance on the model's scale: the squared local noise of the
/// first values (the median change between consecutive ones, over 0.954,
/// is the standard deviation of Gaussian noise), within the prior's bounds.
fn prior_var_of(values: &[f32; WARM], times: &[i64; WARM], c: f64) -> f64 {
    let mut order: Vec<usize> = (0..WARM).collect();
    order.sort_by_key(|&i| (times[i], i));
    let x: Vec<f64> = order.iter().map(|&i| (values[i] as f64 / c).asinh()).collect();
    let mut changes: Vec<f64> = x.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    changes.sort_by(f64::total_cmp);
    let n = changes.len();
    let median = 0.5 * (changes[(n - 1) / 2] + changes[n / 2]);
    let sd = median / 0.954;
    (sd * sd).clamp(PRIOR_VAR_MIN, PRIOR_VAR_MAX)
}

/// `E|T| / √E[T²]` of a Student-t with `dof` degrees of freedom (> 2).
fn abs_moment_ratio(dof: f64) -> f64 {
    use statrs::function::gamma::ln_gamma;
    let e_abs = 2.0 * (dof / std::f64::consts::PI).sqrt() / (dof - 1.0)
        * (ln_gamma((dof + 1.0) / 2.0) - ln_gamma(dof / 2.0)).exp();
    e_abs / (dof / (dof - 2.0)).sqrt()
}

/// The degrees of freedom whose moment ratio is `r` (bisection on the log
/// of the degrees of freedom; the ratio rises with them).
fn dof_of_ratio(r: f64) -> f64 {
    if r >= abs_moment_ratio(MAX_DOF) {
        return MAX_DOF;
    }
    if r <= abs_moment_ratio(MIN_DOF) {
        return MIN_DOF;
    }
    let (mut lo, mut hi) = (MIN_DOF.ln(), MAX_DOF.ln());
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if abs_moment_ratio(mid.exp()) < r {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

/// The per-key seasonal value model; `W` is 168 to learn hours of the
/// week, 0 for hours of the day only.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeasonalValues<const W: usize> {
    /// Event time of the last update (ms); `i64::MIN` before the first.
    last: i64,
    /// The scale `c`; 0 until [`WARM`] values have been seen.
    c: f32,
    /// The prior variance, fixed with `c`.
    prior_var: f32,
    warm: [f32; WARM],
    warm_times: [i64; WARM],
    warm_n: u8,
    n: f32,
    s: f32,
    day_n: [f32; DAY_HOURS],
    day_s: [f32; DAY_HOURS],
    #[serde(with = "serde_big_array::BigArray")]
    week_n: [f32; W],
    #[serde(with = "serde_big_array::BigArray")]
    week_s: [f32; W],
    /// Discounted prediction errors: their number; Σ e²·v/(v + u), the share
    /// of the squared error that is the value's own spread `v` rather than
    /// the prediction's uncertainty `u` about its location (so the spread
    /// of one value is learnt, not the learning itself), overall and per
    /// hour of the day; and Σ|s|, Σs² of the standardized errors `s`, whose
    /// ratio tells the tail's shape.
    err_n: f32,
    err_sq: f32,
    /// The errors above the location: how many, and their share of the squares.
    up_n: f32,
    up_sq: f32,
    day_err_n: [f32; DAY_HOURS],
    day_err_sq: [f32; DAY_HOURS],
    std_abs: f32,
    std_sq: f32,
    /// The same of the standardized errors above the location.
    up_abs: f32,
    up_std_sq: f32,
    /// The recent level: discounted values and their errors against the
    /// seasonal location, with [`RECENT_KEEP`] per value.
    recent_n: f32,
    recent_e: f32,
    /// How much the level really moves: discounted Σ e·ē (an error times
    /// the recent mean error before it; single values' noise does not
    /// covary) and how many.
    level_cov: f32,
    level_n: f32,
}

/// Weight a recent value keeps per later value (about seven values).
pub const RECENT_KEEP: f64 = 0.85;

impl<const W: usize> Default for SeasonalValues<W> {
    fn default() -> Self {
        SeasonalValues {
            last: i64::MIN,
            c: 0.0,
            prior_var: PRIOR_VAR_MAX as f32,
            warm: [0.0; WARM],
            warm_times: [0; WARM],
            warm_n: 0,
            n: 0.0,
            s: 0.0,
            day_n: [0.0; DAY_HOURS],
            day_s: [0.0; DAY_HOURS],
            week_n: [0.0; W],
            week_s: [0.0; W],
            err_n: 0.0,
            err_sq: 0.0,
            up_n: 0.0,
            up_sq: 0.0,
            day_err_n: [0.0; DAY_HOURS],
            day_err_sq: [0.0; DAY_HOURS],
            std_abs: 0.0,
            std_sq: 0.0,
            up_abs: 0.0,
            up_std_sq: 0.0,
            recent_n: 0.0,
            recent_e: 0.0,
            level_cov: 0.0,
            level_n: 0.0,
        }
    }
}

/// Location of a slot pooled toward its parent, and the variance left in it.
fn pool_slot(parent: (f64, f64), n: f32, s: f32, v: f64, tau2: f64) -> (f64, f64) {
    if n < MIN_SAMPLES {
        return (parent.0, tau2 + parent.1);
    }
    let d = (s / n) as f64 - parent.0;
    let (z, tau2) = slot_credibility(Slot { n: n as f64, d, v }, tau2);
    (parent.0 + z * d, (1.0 - z) * tau2 + (1.0 - z) * (1.0 - z) * parent.1)
}

/// Errors an hour of the day needs before its own spread is considered.
const HOUR_SPREAD_MIN: f64 = 5.0;

/// Mean and variance of `ln(χ²_n / n)`: how a log mean square of `n`
/// Gaussian errors scatters around the log of the true variance
/// (`ψ(n/2) − ln(n/2)` and `ψ'(n/2)`). statrs has the digamma function but
/// no trigamma, whose asymptotic series is accurate to 1e-4 from n = 5.
fn log_mean_square_noise(n: f64) -> (f64, f64) {
    let x = n / 2.0;
    let trigamma = 1.0 / x + 1.0 / (2.0 * x * x) + 1.0 / (6.0 * x * x * x) - 1.0 / (30.0 * x.powi(5));
    (statrs::function::gamma::digamma(x) - x.ln(), trigamma)
}

/// What a prediction is made of, before it becomes a Student-t.
struct Parts {
    seasonal: f64,
    location: f64,
    uncertainty: f64,
    /// Spread of one value at this hour, above and below the location.
    up: f64,
    down: f64,
    share_up: f64,
    /// Degrees of freedom above and below.
    dof: (f64, f64),
}

/// Errors each side needs before the spread is split between them.
const SIDE_MIN: f64 = 10.0;

impl<const W: usize> SeasonalValues<W> {
    /// Values folded in (discounted; the held-back first values count).
    pub fn samples(&self) -> f64 {
        if self.c > 0.0 { self.n as f64 } else { self.warm_n as f64 }
    }

    /// The spread of one value around its location (model scale), pooled
    /// over hours, and the degrees of freedom of its tail above and below.
    fn spread(&self) -> (f64, (f64, f64)) {
        let n = self.err_n as f64;
        let var = ((self.err_sq as f64).max(0.0) + PRIOR_SAMPLES * self.prior_var as f64) / (n + PRIOR_SAMPLES);
        let var = var.max(1e-12);
        let history = (n + PRIOR_SAMPLES - 1.0).max(1.0);
        // The tail's shape from the ratio E|s|/√E[s²], read one standard
        // error (about 0.21/√n for Gaussian errors) toward the light side:
        // Gaussian errors then keep a Gaussian tail, while a tail as heavy
        // as a Student-t with 8 degrees of freedom is still seen.
        let shape = |n: f64, abs: f64, sq: f64| {
            if n >= 5.0 && sq > 0.0 { dof_of_ratio((abs / n) / (sq / n).sqrt() + 0.21 / n.sqrt()) } else { MAX_DOF }
        };
        let all = shape(n, self.std_abs as f64, self.std_sq as f64);
        let (up_n, up_abs, up_sq) = (self.up_n as f64, self.up_abs as f64, self.up_std_sq as f64);
        let side = |n: f64, abs: f64, sq: f64| {
            if n >= 30.0 { shape(n, abs, sq) } else { all }.min(history).clamp(1.0, MAX_DOF)
        };
        let up = side(up_n, up_abs, up_sq);
        let down = side(n - up_n, self.std_abs as f64 - up_abs, self.std_sq as f64 - up_sq);
        (var, (up, down))
    }

    /// The spread at hour of the day `h`, and the errors behind it: the
    /// hours' own spreads are pooled toward all hours' on a log scale, by
    /// how much they really differ beyond the sampling noise of a log mean
    /// square, so a series whose hours are alike keeps the well-estimated
    /// pooled spread and one whose nights are calmer than its days gets
    /// its own. Hours with fewer than [`HOUR_SPREAD_MIN`] errors keep the
    /// pooled spread.
    fn hour_spread(&self, h: usize, var: f64) -> (f64, f64) {
        let log_var = var.ln();
        let own = |h: usize| {
            let n = self.day_err_n[h] as f64;
            let sq = (self.day_err_sq[h] as f64).max(0.0);
            if n < HOUR_SPREAD_MIN || sq <= 0.0 {
                return None;
            }
            let (mean, variance) = log_mean_square_noise(n);
            Some(Slot { n, d: (sq / n).ln() - log_var - mean, v: variance * n })
        };
        let tau2 = between_variance((0..DAY_HOURS).filter_map(own), 1);
        match own(h) {
            Some(slot) => {
                let z = credibility(slot.n, slot.v, tau2);
                ((var * (z * slot.d).exp()).max(1e-12), z * slot.n + (1.0 - z) * self.err_n as f64)
            }
            None => (var, self.err_n as f64),
        }
    }

    fn parts(&self, t: EventTime) -> Parts {
        let (var, dof) = self.spread();
        let overall = ((self.s / self.n) as f64, var / self.n as f64);
        let tau_day = between_variance(
            (0..DAY_HOURS).map(|h| Slot {
                n: self.day_n[h] as f64,
                d: if self.day_n[h] >= MIN_SAMPLES { (self.day_s[h] / self.day_n[h]) as f64 - overall.0 } else { 0.0 },
                v: var,
            }),
            1,
        );
        let h = hour_of_day(t);
        let (seasonal, uncertainty) = if W == 0 {
            pool_slot(overall, self.day_n[h], self.day_s[h], var, tau_day)
        } else {
            let mut day = [(0.0, 0.0); DAY_HOURS];
            for (hh, d) in day.iter_mut().enumerate() {
                *d = pool_slot(overall, self.day_n[hh], self.day_s[hh], var, tau_day);
            }
            let tau_week = between_variance(
                (0..W).map(|w| {
                    let parent = day[w % DAY_HOURS].0;
                    Slot {
                        n: self.week_n[w] as f64,
                        d: if self.week_n[w] >= MIN_SAMPLES {
                            (self.week_s[w] / self.week_n[w]) as f64 - parent
                        } else {
                            0.0
                        },
                        v: var,
                    }
                }),
                DAY_HOURS,
            );
            let w = hour_of_week(t) % W;
            pool_slot(day[h], self.week_n[w], self.week_s[w], var, tau_week)
        };
        let (var_h, behind) = self.hour_spread(h, var);
        // The spread's own uncertainty widens the tail: a spread learnt
        // from `behind` errors supports about that many degrees of freedom.
        let dof = (dof.0.min(behind + 1.0).max(1.0), dof.1.min(behind + 1.0).max(1.0));
        // The recent level, by its credibility. Its variance counts only
        // beyond two standard errors of the covariance estimate (about
        // var / √(recent · estimates)): noise alone does not move it.
        let level = if self.level_n >= 3.0 {
            let se = var / (self.recent_n.max(1.0) as f64 * self.level_n as f64).sqrt();
            ((self.level_cov / self.level_n) as f64 - 2.0 * se).max(0.0)
        } else {
            0.0
        };
        let recent = if self.recent_n > MIN_SAMPLES { (self.recent_e / self.recent_n) as f64 } else { 0.0 };
        let z = credibility(self.recent_n as f64, var_h, level);
        // The split of the spread above and below: the log ratio of the two
        // sides' mean squares (each varies by about 2/n on its own), counted
        // only beyond two of its standard errors, split evenly.
        let (n, sq) = (self.err_n as f64, (self.err_sq as f64).max(0.0));
        let (up_n, up_sq) = (self.up_n as f64, (self.up_sq as f64).max(0.0));
        let (down_n, down_sq) = (n - up_n, (sq - up_sq).max(0.0));
        let skew = if up_n >= SIDE_MIN && down_n >= SIDE_MIN && up_sq > 0.0 && down_sq > 0.0 {
            let d = (up_sq / up_n).ln() - (down_sq / down_n).ln();
            let margin = 2.0 * (2.0 / up_n + 2.0 / down_n).sqrt();
            d.signum() * (d.abs() - margin).max(0.0)
        } else {
            0.0
        };
        Parts {
            seasonal,
            location: seasonal + z * recent,
            uncertainty: uncertainty + (1.0 - z) * level,
            up: var_h * (0.5 * skew).exp(),
            down: var_h * (-0.5 * skew).exp(),
            share_up: ((up_n + 2.5) / (n + 5.0)).clamp(0.2, 0.8),
            dof,
        }
    }

    /// What the model expects at `t`, without changing it; `None` until the
    /// scale is fixed.
    pub fn predict(&self, t: EventTime) -> Option<ValuePrediction> {
        if self.c <= 0.0 || self.n < MIN_SAMPLES {
            return None;
        }
        let p = self.parts(t);
        // The Student-t scale whose variance is `var` (plus the location's uncertainty).
        let scale = |var: f64, dof: f64| {
            let total = var + p.uncertainty;
            if dof > 2.0 { (total * (dof - 2.0) / dof).sqrt() } else { (total / 3.0).sqrt() }
        };
        let (scale_up, scale_down) = (scale(p.up, p.dof.0), scale(p.down, p.dof.1));
        let c = self.c as f64;
        // Refuses parameters the distributions cannot take (NaN, zero scale).
        StudentsT::new(p.location, scale_up, p.dof.0).ok()?;
        StudentsT::new(p.location, scale_down, p.dof.1).ok()?;
        Some(ValuePrediction {
            expected: c * p.location.sinh(),
            samples: self.n as f64,
            dof: p.dof.0.min(p.dof.1),
            dof_up: p.dof.0,
            dof_down: p.dof.1,
            location: p.location,
            scale_up,
            scale_down,
            share_up: p.share_up,
            sd: (0.5 * (p.up + p.down) + p.uncertainty).sqrt(),
            uncertainty: p.uncertainty,
            c,
        })
    }

    fn decay(&mut self, k: f32) {
        if k >= 1.0 {
            return;
        }
        for x in [
            &mut self.n,
            &mut self.s,
            &mut self.err_n,
            &mut self.err_sq,
            &mut self.up_n,
            &mut self.up_sq,
            &mut self.std_abs,
            &mut self.std_sq,
            &mut self.up_abs,
            &mut self.up_std_sq,
            &mut self.level_cov,
            &mut self.level_n,
        ] {
            *x *= k;
        }
        for x in self
            .day_n
            .iter_mut()
            .chain(&mut self.day_s)
            .chain(&mut self.week_n)
            .chain(&mut self.week_s)
            .chain(&mut self.day_err_n)
            .chain(&mut self.day_err_sq)
        {
            *x *= k;
        }
    }

    /// Folds in the value `y` at `t`. Non-finite values are ignored.
    pub fn update(&mut self, t: EventTime, y: f64, forgetting: Forgetting) {
        if !y.is_finite() {
            return;
        }
        if self.c <= 0.0 {
            self.warm[self.warm_n as usize] = y as f32;
            self.warm_times[self.warm_n as usize] = t.0;
            self.warm_n += 1;
            if (self.warm_n as usize) < WARM {
                return;
            }
            self.c = scale_of(&self.warm, &self.warm_times) as f32;
            self.prior_var = prior_var_of(&self.warm, &self.warm_times, self.c as f64) as f32;
            let (warm, times) = (self.warm, self.warm_times);
            for (v, at) in warm.iter().zip(times) {
                self.fold(EventTime(at), *v as f64, forgetting);
            }
            return;
        }
        self.fold(t, y, forgetting);
    }

    fn fold(&mut self, t: EventTime, y: f64, forgetting: Forgetting) {
        let k = match forgetting {
            Forgetting::PerValue(k) => k,
            Forgetting::PerDay(k) if self.last != i64::MIN && t.0 > self.last => {
                k.powf((t.0 - self.last) as f64 / MS_PER_DAY as f64)
            }
            Forgetting::PerDay(_) => 1.0,
        };
        self.decay(k as f32);
        self.last = self.last.max(t.0);
        let h = hour_of_day(t);
        let mut x = (y / self.c as f64).asinh();
        // A model with hours of the week learns its errors once it has seen
        // a day (a day of hourly values, or a day of time): before that
        // every new hour of the day is a surprise of learning, not of the
        // data, and would make the tail look heavy for weeks.
        let first = self.warm_times.iter().copied().min().unwrap_or(t.0);
        let learns =
            self.n >= MIN_SAMPLES && (W == 0 || self.n as f64 >= DAY_HOURS as f64 || t.0 - first >= MS_PER_DAY);
        if learns {
            let p = self.parts(t);
            let e = x - p.location;
            let sd = (if e >= 0.0 { p.up } else { p.down } + p.uncertainty).sqrt();
            let standard = (e / sd).clamp(-CLIP_SPREAD, CLIP_SPREAD);
            let clipped = standard * sd;
            // The share of the squared error that belongs to the value's
            // own spread rather than to the location's uncertainty, in the
            // proportion the prediction put them (subtracting the
            // uncertainty instead goes negative while a young model still
            // overstates it, and the spread then collapses for weeks).
            let own = if e >= 0.0 { p.up } else { p.down };
            let beyond = (clipped * clipped * own / (own + p.uncertainty)) as f32;
            self.err_n += 1.0;
            self.err_sq += beyond;
            if e >= 0.0 {
                self.up_n += 1.0;
                self.up_sq += beyond;
            }
            self.day_err_n[h] += 1.0;
            self.day_err_sq[h] += beyond;
            self.std_abs += standard.abs() as f32;
            self.std_sq += (standard * standard) as f32;
            if e >= 0.0 {
                self.up_abs += standard.abs() as f32;
                self.up_std_sq += (standard * standard) as f32;
            }
            // The recent level, and how much it moves.
            let error = (x - p.seasonal).clamp(-CLIP_LEARN * sd, CLIP_LEARN * sd);
            if self.recent_n >= 0.5 {
                self.level_cov += (error * (self.recent_e / self.recent_n) as f64) as f32;
                self.level_n += 1.0;
            }
            self.recent_n = self.recent_n * RECENT_KEEP as f32 + 1.0;
            self.recent_e = self.recent_e * RECENT_KEEP as f32 + error as f32;
            if self.err_n >= 3.0 {
                x = p.location + e.clamp(-CLIP_LEARN * sd, CLIP_LEARN * sd);
            }
        }
        let x = x as f32;
        self.n += 1.0;
        self.s += x;
        self.day_n[h] += 1.0;
        self.day_s[h] += x;
        if W > 0 {
            let w = hour_of_week(t) % W;
            self.week_n[w] += 1.0;
            self.week_s[w] += x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MS_PER_HOUR;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal, StudentT};

    const T0: i64 = 1_704_067_200_000;

    fn hour(h: i64) -> EventTime {
        EventTime(T0 + h * MS_PER_HOUR)
    }

    #[test]
    fn moment_ratios_of_the_student_t() {
        assert!((abs_moment_ratio(1e6) - (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-3);
        assert!((abs_moment_ratio(5.0) - 0.735).abs() < 0.005, "{}", abs_moment_ratio(5.0));
        assert!((abs_moment_ratio(3.0) - 0.637).abs() < 0.005, "{}", abs_moment_ratio(3.0));
        assert!((dof_of_ratio(abs_moment_ratio(6.0)) - 6.0).abs() < 0.01);
        assert_eq!(dof_of_ratio(0.9), MAX_DOF);
        assert_eq!(dof_of_ratio(0.1), MIN_DOF);
    }

    #[test]
    fn learns_a_typical_run_and_flags_a_long_one() {
        let mut m = SeasonalValues::<0>::default();
        for i in 0..30 {
            m.update(hour(i * 6), 600.0 * (1.0 + 0.1 * ((i % 5) as f64 - 2.0) / 2.0), Forgetting::PerValue(0.97));
        }
        let p = m.predict(hour(180)).unwrap();
        assert!((p.expected - 600.0).abs() < 30.0, "{p:?}");
        let (low, high) = p.interval();
        assert!(low < 600.0 && high > 600.0, "{low} {high}");
        assert!(p.p_value(650.0) > 0.05, "{}", p.p_value(650.0));
        assert!(p.p_value(4000.0) < 1e-6, "{}", p.p_value(4000.0));
    }

    #[test]
    fn zero_and_negative_values_are_values() {
        let mut m = SeasonalValues::<0>::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0, 1.0).unwrap();
        for i in 0..200 {
            m.update(hour(i), noise.sample(&mut rng), Forgetting::PerValue(0.99));
        }
        let p = m.predict(hour(200)).unwrap();
        assert!(p.expected.abs() < 0.5, "{p:?}");
        assert!(p.p_value(0.0) > 0.2 && p.p_value_below(0.0) > 0.2, "{p:?}");
        assert!(p.p_value(8.0) < 1e-6, "{}", p.p_value(8.0));
        assert!(p.p_value_below(-8.0) < 1e-6, "{}", p.p_value_below(-8.0));
    }

    #[test]
    fn one_outlier_does_not_become_normal() {
        let mut m = SeasonalValues::<0>::default();
        for i in 0..20 {
            m.update(hour(i), 100.0 + (i % 3) as f64, Forgetting::PerValue(0.97));
        }
        m.update(hour(20), 10_000.0, Forgetting::PerValue(0.97));
        assert!(m.predict(hour(21)).unwrap().expected < 130.0);
    }

    #[test]
    fn an_hourly_rhythm_is_learnt_and_pooled() {
        // Cost with a daily rhythm: 40 by day, 6 by night, ±10%.
        let mut m = SeasonalValues::<168>::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let noise = Normal::new(1.0, 0.1).unwrap();
        for h in 0..24 * 28 {
            let usual = if (8..20).contains(&(h % 24)) { 40.0 } else { 6.0 };
            m.update(hour(h), usual * noise.sample(&mut rng), Forgetting::PerDay(0.95));
        }
        let night = m.predict(hour(24 * 28 + 2)).unwrap();
        let day = m.predict(hour(24 * 28 + 12)).unwrap();
        assert!((night.expected - 6.0).abs() < 0.6, "{night:?}");
        assert!((day.expected - 40.0).abs() < 3.0, "{day:?}");
        // Daytime cost at night is anomalous; at daytime it is not.
        assert!(night.p_value(40.0) < 1e-6, "{}", night.p_value(40.0));
        assert!(day.p_value(44.0) > 0.05, "{}", day.p_value(44.0));
    }

    #[test]
    fn heavy_tailed_errors_give_a_heavy_tail() {
        let mut gaussian = SeasonalValues::<0>::default();
        let mut heavy = SeasonalValues::<0>::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (n, t) = (Normal::<f64>::new(0.0, 1.0).unwrap(), StudentT::<f64>::new(3.0).unwrap());
        for i in 0..2000 {
            gaussian.update(hour(i), 100.0 * (0.05 * n.sample(&mut rng)).exp(), Forgetting::PerValue(0.995));
            heavy.update(hour(i), 100.0 * (0.05 * t.sample(&mut rng)).exp(), Forgetting::PerValue(0.995));
        }
        let (g, h) = (gaussian.predict(hour(2000)).unwrap(), heavy.predict(hour(2000)).unwrap());
        assert!(g.dof > 50.0, "{g:?}");
        assert!(h.dof < 8.0, "{h:?}");
    }

    #[test]
    fn little_history_is_wide() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let noise = Normal::<f64>::new(0.0, 0.05).unwrap();
        let mut m = SeasonalValues::<0>::default();
        for i in 0..WARM as i64 {
            m.update(hour(i), 100.0 * noise.sample(&mut rng).exp(), Forgetting::PerValue(1.0));
        }
        let young = m.predict(hour(10)).unwrap();
        for i in WARM as i64..200 {
            m.update(hour(i), 100.0 * noise.sample(&mut rng).exp(), Forgetting::PerValue(1.0));
        }
        let old = m.predict(hour(200)).unwrap();
        assert!(young.dof < 12.0 && old.dof > young.dof, "{young:?} {old:?}");
        assert!(young.p_value(300.0) > 100.0 * old.p_value(300.0), "{} {}", young.p_value(300.0), old.p_value(300.0));
        assert_eq!(SeasonalValues::<0>::default().predict(hour(0)), None);
    }

    #[test]
    fn the_models_are_small() {
        assert!(std::mem::size_of::<SeasonalValues<0>>() <= 560, "{}", std::mem::size_of::<SeasonalValues<0>>());
        assert!(std::mem::size_of::<SeasonalValues<168>>() <= 1950, "{}", std::mem::size_of::<SeasonalValues<168>>());
    }
}
