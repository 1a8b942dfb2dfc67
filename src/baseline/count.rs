//! Seasonal model of how many events a principal has in a bucket it is
//! active in: the "how much" question.
//!
//! Whether a principal is active at an hour at all is another question
//! (see [`super::activity`]); this model only ever sees the buckets in
//! which the principal did something, so a weekday worker's first Saturday
//! at its usual volume is ordinary here, and only its volume can make it
//! unusual.
//!
//! **Overdispersion.** The count `z ≥ 1` of an active bucket is `1 + W`,
//! with `W` negative binomial: mean `μ − 1` and variance
//! `(μ − 1) + φ·(μ − 1)²`. The dispersion `φ` is learnt from the
//! principal's own one-step-ahead prediction errors (method of moments with
//! forgetting: `φ = Σ(e² − mean)·share / Σ mean²`, the share being the
//! part of the excess variance not owed to the mean's uncertainty), so the
//! predictive distribution is as wide as the principal's real bucket-to-
//! bucket variation, never a posterior over one fixed rate (which
//! collapses to Poisson and makes every busy hour look impossible). While
//! the history is short `φ` is shrunk toward the peers' (or a global)
//! dispersion, worth [`DISPERSION_PRIOR_BUCKETS`] buckets.
//!
//! **Seasonality with partial pooling.** The mean has three layers: the
//! principal's overall active-bucket mean (itself shrunk toward its peers'
//! by how much principals of that kind differ), the hour of the day (24
//! slots) shrunk toward it, and the hour of the week (168 slots) shrunk
//! toward its hour of the day. Each layer's shrinkage comes from how much
//! that principal's slots really differ from their parents
//! ([`super::pool`]), on a relative scale; the uncertainty left in the
//! pooled mean widens the prediction. A weekly Monday report is learnt by
//! the hour of the week once Mondays differ; a principal whose Mondays are
//! like its Tuesdays pools them.
//!
//! **A recent level.** Real activity comes in busy and quiet days: every
//! hour of a busy day is busier. The ratio of the recent active buckets'
//! counts to their seasonal means (half-life [`RECENT_HALF_LIFE_HOURS`])
//! scales the next prediction, by its credibility: how much the level
//! really moves is learnt from the covariance of each bucket's relative
//! error with the recent ones before it (single buckets' noise does not
//! covary), so a principal without busy days gets no adjustment, and one
//! whose volume has just doubled for good is followed within hours.
//!
//! **Forgetting** is by elapsed event time: every layer keeps `keep` per
//! day, so each remembers the same span (about `1/(1 − keep)` days) and an
//! hour of the week simply has a seventh of the samples of an hour of the
//! day. **Robustness:** an active bucket's count is clipped at four
//! predictive standard deviations before it is learnt, so an incident
//! does not teach the model that incidents are normal; the prediction
//! error behind the dispersion is clipped the same way.
//!
//! Tail probabilities are mid-p values (which keep a discrete count's
//! p-values close to uniform) of a mixture: given its mean, the count is
//! negative binomial (`statrs`) with the learnt dispersion; the mean
//! itself is lognormal with the variance left by the pooling and the
//! recent level, integrated by Gauss–Hermite quadrature. That mixture's
//! tail is as heavy as a busy day times a busy hour makes it
//! (`tests/calibration.rs`). Where the principal's own buckets say its
//! bursts are lognormal-shaped (an API client, batch retries), a
//! Poisson–lognormal kernel is mixed in by that evidence, its spread the
//! larger of the moment dispersion's and a robust one (the mean absolute
//! log error of its busy buckets), which a heavy tail does not hide.
//! State: 397 `f32`s and one `i64`, 1,596 bytes.

use super::pool::{Slot, between_variance, credibility, slot_credibility};
use crate::time::{EventTime, MS_PER_DAY, MS_PER_HOUR};
use statrs::distribution::{Discrete, DiscreteCDF, NegativeBinomial, Poisson};

/// Hours of the day.
pub const DAY_HOURS: usize = 24;
/// Hours of the week.
pub const WEEK_HOURS: usize = 168;

/// Buckets of evidence the prior dispersion counts for.
pub const DISPERSION_PRIOR_BUCKETS: f64 = 5.0;
/// Half-life of the recent level, in hours of event time: a busy morning
/// says something about the afternoon, little about next week.
pub const RECENT_HALF_LIFE_HOURS: f64 = 6.0;
/// Predictive standard deviations beyond which an observation is clipped
/// before its level is learnt.
const CLIP_SD: f64 = 4.0;
/// And before its error teaches the dispersion: wider, since clipping a
/// heavy tail at four standard deviations would teach a dispersion too
/// small (and the smaller standard deviation would clip more), but bounded,
/// so that a three-hour incident does not teach a bursty principal.
const CLIP_SPREAD_SD: f64 = 6.0;
/// Fewer discounted samples than this count as none.
const MIN_SAMPLES: f32 = 1e-3;

/// The hour of the day of `t`, UTC.
pub fn hour_of_day(t: EventTime) -> usize {
    t.hour_of_day() as usize
}

/// The hour of the week of `t`, 0 = Monday 00:00 UTC.
pub fn hour_of_week(t: EventTime) -> usize {
    (t.day_of_week() * 24 + t.hour_of_day()) as usize
}

/// What a principal is expected to look like before its own history says
/// otherwise: its peers' figures, or global defaults without peers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CountPrior {
    /// Mean count of an active bucket.
    pub mean: f64,
    /// Relative variance of principals' own means around `mean`: how much
    /// principals differ from one another (1.0: by about a factor of two
    /// either way).
    pub between: f64,
    /// Negative binomial dispersion `φ` of an active bucket's count.
    pub dispersion: f64,
    /// Log odds that bursts are lognormal rather than gamma-shaped (see
    /// [`Prediction::lognormal`]).
    pub kernel: f64,
}

impl Default for CountPrior {
    /// No peers: a few events per active bucket, principals differing by
    /// factors, bursty counts (φ = 0.5: the standard deviation of a busy
    /// bucket is 70% of its mean), with bursts more likely gamma- than
    /// lognormal-shaped (odds 1 to e).
    fn default() -> Self {
        CountPrior { mean: 3.0, between: 2.0, dispersion: 0.5, kernel: -1.0 }
    }
}

/// The predictive distribution of an active bucket's count. Tail
/// probabilities and intervals cost incomplete beta evaluations, so they
/// are computed only when asked.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    /// Predictive mean count of the bucket, given that it is active.
    pub expected: f64,
    /// Predictive variance of that count.
    pub variance: f64,
    /// The part of the variance that is uncertainty about the mean.
    pub parameter_variance: f64,
    /// Discounted active buckets of the principal behind the prediction.
    pub samples: f64,
    /// The seasonal mean alone, before the recent level adjusted it.
    pub seasonal: f64,
    /// The negative binomial dispersion of one bucket around its mean.
    pub dispersion: f64,
    /// Relative variance of the mean itself (`parameter_variance / expected²`).
    pub uncertainty: f64,
    /// Weight of the lognormal kernel. How bursty counts scatter around
    /// their mean is not one shape: a gamma-distributed busyness (the
    /// negative binomial) has an exponential tail, a lognormal one (API
    /// clients, batch retries) a far heavier tail for the same variance.
    /// Both kernels are kept, weighted by how well each predicted the
    /// principal's own buckets (Bayesian model averaging with forgetting).
    pub lognormal: f64,
    /// Fraction of the principal's buckets at this hour of the day that are
    /// active.
    pub active: f64,
    /// Variance of the log count learnt robustly from the principal's own
    /// busy buckets (`(π/2)·E|ln(z/μ)|²`; 0 until [`LOG_SPREAD_MIN`] of
    /// them): a heavy-tailed client's moment dispersion lags its real
    /// spread, a mean absolute deviation of logs does not.
    pub log_spread: f64,
}

/// Probabilists' Gauss–Hermite rule with 9 points: (node, weight) with
/// Σ weight·f(node) ≈ E[f(Z)] for Z ~ N(0, 1). Written out: nine constants
/// do not justify a quadrature crate.
const GAUSS_HERMITE_9: [(f64, f64); 9] = [
    (-4.512_745_863_399_8, 2.234_584_400_774_7e-5),
    (-3.205_407_202_163_0, 2.789_141_321_231_7e-3),
    (-2.076_847_978_677_8, 4.991_640_676_521_8e-2),
    (-1.023_255_663_789_1, 2.440_975_028_949_4e-1),
    (0.0, 4.063_492_063_492_1e-1),
    (1.023_255_663_789_1, 2.440_975_028_949_4e-1),
    (2.076_847_978_677_8, 4.991_640_676_521_8e-2),
    (3.205_407_202_163_0, 2.789_141_321_231_7e-3),
    (4.512_745_863_399_8, 2.234_584_400_774_7e-5),
];

/// How an expectation over a standard normal is computed.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// [`GAUSS_HERMITE_9`].
    GaussHermite,
    /// The normal density on a grid of quarter standard deviations from −6
    /// to 9 (trapezoid), for far tails.
    Fine,
}

impl Rule {
    fn expect(self, f: impl Fn(f64) -> f64) -> f64 {
        match self {
            Rule::GaussHermite => GAUSS_HERMITE_9.iter().map(|(z, w)| w * f(*z)).sum(),
            Rule::Fine => {
                let (mut total, mut weight) = (0.0, 0.0);
                for i in 0..=60 {
                    let z = -6.0 + 0.25 * i as f64;
                    let density = (-0.5 * z * z).exp();
                    total += density * f(z);
                    weight += density;
                }
                total / weight
            }
        }
    }
}

/// The Poisson–lognormal distribution of `W = count − 1` (see
/// [`Prediction::lognormal`]).
#[derive(Debug, Clone, Copy)]
struct LogNormalKernel {
    /// The lognormal mean of the count, and the variance of its logarithm.
    mean: f64,
    sigma2: f64,
}

/// Excess above which the Poisson–lognormal is read as a lognormal of the
/// count itself: the Poisson's width is then small beside the lognormal's
/// and is added to it on the log scale; below it, the Poisson is
/// integrated over the lognormal on a grid (where a grid over a sharp
/// Poisson would alias).
const LOGNORMAL_CONTINUOUS: f64 = 8.0;
/// Hours of the day whose activity an hour's own is shrunk toward.
const NEIGHBOURHOOD: usize = 5;
/// The least rate an hour's prior bucket of evidence is given: people do
/// turn up on a night they never worked before, and a rate no history can
/// learn below must not be assumed. At 3% the joint p-value stays within
/// 2α down to α = 10⁻⁴ on series with night work on up to 8% of days
/// (tests/calibration.rs); with no floor it reached 3α there.
const ACTIVE_FLOOR: f64 = 0.03;
/// Busy buckets before their robust log spread is used.
const LOG_SPREAD_MIN: f64 = 10.0;
/// The most one bucket adds to that spread's sum.
const LOG_ABS_CLIP: f64 = 4.0;

impl LogNormalKernel {
    fn excess(&self) -> f64 {
        (self.mean - 1.0).max(1e-9)
    }

    /// `Σ weight · f(Poisson)` over the lognormal mean.
    fn expect(&self, rule: Rule, f: impl Fn(&Poisson) -> f64) -> f64 {
        let sigma = self.sigma2.sqrt();
        rule.expect(|z| {
            let rate = (self.mean * (sigma * z - 0.5 * self.sigma2).exp() - 1.0).max(1e-9);
            Poisson::new(rate).map_or(1.0, |p| f(&p))
        })
    }

    /// The standardized log of `w` under the continuous reading.
    fn z(&self, w: f64) -> f64 {
        let excess = self.excess();
        let s2 = self.sigma2 + (1.0 / excess).ln_1p();
        (w.max(1e-9).ln() - (excess.ln() - 0.5 * s2)) / s2.sqrt()
    }

    fn continuous(&self) -> bool {
        self.excess() >= LOGNORMAL_CONTINUOUS
    }

    /// `P(W > w) + ½·P(W = w)`.
    fn upper_mid(&self, w: u64, rule: Rule) -> f64 {
        if self.continuous() {
            let (lo, hi) = (self.z(w as f64 - 0.5), self.z(w as f64 + 0.5));
            return 0.5 * (standard_sf(lo) + standard_sf(hi));
        }
        self.expect(rule, |p| p.sf(w) + 0.5 * p.pmf(w))
    }

    /// `P(W < w) + ½·P(W = w)`.
    fn lower_mid(&self, w: u64, rule: Rule) -> f64 {
        if self.continuous() {
            let (lo, hi) = (self.z(w as f64 - 0.5), self.z(w as f64 + 0.5));
            return 0.5 * (standard_sf(-lo) + standard_sf(-hi));
        }
        self.expect(rule, |p| if w == 0 { 0.0 } else { p.cdf(w - 1) } + 0.5 * p.pmf(w))
    }

    /// `P(W = w)`.
    fn pmf(&self, w: u64) -> f64 {
        if self.continuous() {
            return (standard_sf(self.z(w as f64 - 0.5)) - standard_sf(self.z(w as f64 + 0.5))).max(0.0);
        }
        self.expect(Rule::Fine, |p| p.pmf(w))
    }
}

/// `P(Z > z)` of a standard normal, accurate far into the tail (erfc).
fn standard_sf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(z / std::f64::consts::SQRT_2)
}

impl Prediction {
    /// The negative binomial of `W = count − 1`, matched to the mean and
    /// variance (a variance at or below the mean is treated as barely
    /// overdispersed: Poisson's limit).
    fn excess(&self) -> Option<NegativeBinomial> {
        negative_binomial(self.expected - 1.0, self.variance)
    }

    /// `Σ weight · f(NB)` over the uncertainty about the mean: the mean is
    /// lognormal around `expected` with relative variance `uncertainty`,
    /// and given it `W` is negative binomial with the learnt dispersion.
    /// The mixture's tail is heavier than a single negative binomial of the
    /// same variance, as a busy day times a busy hour is.
    fn mixture(&self, f: impl Fn(&NegativeBinomial) -> f64, rule: Rule) -> f64 {
        let u = self.uncertainty.max(0.0);
        if u < 1e-6 {
            let excess = self.expected - 1.0;
            return negative_binomial(excess, excess + self.dispersion * excess * excess).map_or(1.0, |nb| f(&nb));
        }
        let sigma2 = u.ln_1p();
        let sigma = sigma2.sqrt();
        rule.expect(|z| {
            let excess = (self.expected * (sigma * z - 0.5 * sigma2).exp() - 1.0).max(0.0);
            negative_binomial(excess, excess + self.dispersion * excess * excess).map_or(1.0, |nb| f(&nb))
        })
    }

    /// The Poisson–lognormal kernel: the mean of the bucket's count is
    /// lognormal around `expected`, its relative variance the mean's
    /// uncertainty plus the dispersion (on the count's scale), and the
    /// count beyond the first event is Poisson given it.
    fn lognormal_kernel(&self) -> LogNormalKernel {
        let m = self.expected.max(1.0);
        let excess = m - 1.0;
        let relative = self.uncertainty.max(0.0) + self.dispersion.max(0.0) * (excess / m).powi(2);
        // The robust spread holds the count's Poisson part too (≈ 1/m on
        // the log scale), which the kernel adds itself.
        let robust = self.log_spread - 1.0 / m;
        LogNormalKernel { mean: m, sigma2: relative.ln_1p().max(robust).min(9.0) }
    }

    /// The two kernels' value of a tail probability, weighted. Nine
    /// Gauss–Hermite points are exact enough for the body; a tail below
    /// 10⁻³ is recomputed on the fine grid, since there the nine points'
    /// outermost node (4.5 standard deviations, weight 2·10⁻⁵) would stand
    /// for the whole far tail of the mean and cap the p-value near 10⁻⁵.
    fn averaged(&self, nb: impl Fn(&NegativeBinomial) -> f64, pln: impl Fn(&LogNormalKernel, Rule) -> f64) -> f64 {
        let w = self.lognormal.clamp(0.0, 1.0);
        let kernel = self.lognormal_kernel();
        let at = |rule: Rule| {
            let gamma = if w < 1.0 { self.mixture(&nb, rule) } else { 0.0 };
            let lognormal = if w > 0.0 { pln(&kernel, rule) } else { 0.0 };
            (1.0 - w) * gamma + w * lognormal
        };
        let coarse = at(Rule::GaussHermite);
        if coarse < 1e-3 { at(Rule::Fine) } else { coarse }
    }

    /// Mid-p value of the upper tail: `P(X > x) + ½·P(X = x)`. A count of 0
    /// (an inactive bucket) is never surprising here.
    pub fn p_value(&self, observed: u64) -> f64 {
        if observed == 0 {
            return 1.0;
        }
        let w = observed - 1;
        self.averaged(|nb| nb.sf(w) + 0.5 * nb.pmf(w), |k, rule| k.upper_mid(w, rule)).clamp(0.0, 1.0)
    }

    /// Mid-p value of the lower tail, `P(X < x) + ½·P(X = x)`, for a
    /// bucket that is active; an inactive one is as surprising as the
    /// principal is usually active at that hour.
    pub fn p_value_below(&self, observed: u64) -> f64 {
        if observed == 0 {
            return (0.5 * (1.0 - self.active)).clamp(0.0, 1.0);
        }
        let w = observed - 1;
        self.averaged(|nb| if w == 0 { 0.0 } else { nb.cdf(w - 1) } + 0.5 * nb.pmf(w), |k, rule| k.lower_mid(w, rule))
            .clamp(0.0, 1.0)
    }

    /// Log probabilities of an active bucket's count under each kernel
    /// (gamma-shaped, lognormal), for the weight between them. The
    /// likelihood is censored below the mean: a count under it says only
    /// that it was under it. The kernels are weighed for their upper tail,
    /// the one alerts come from; how often a bursty client has a nearly
    /// idle hour (where a gamma-shaped kernel with its mode at zero wins)
    /// must not decide how heavy its bursts are.
    fn log_likelihoods(&self, observed: u64) -> (f64, f64) {
        let w = observed.saturating_sub(1);
        let floor = 1e-300f64;
        let mean = (self.expected - 1.0).max(0.0).floor() as u64;
        let kernel = self.lognormal_kernel();
        let (gamma, lognormal) = if w < mean {
            (
                self.mixture(|nb| nb.cdf(mean - 1), Rule::GaussHermite),
                1.0 - kernel.upper_mid(mean - 1, Rule::Fine) - 0.5 * kernel.pmf(mean - 1),
            )
        } else {
            (self.mixture(|nb| nb.pmf(w), Rule::GaussHermite), kernel.pmf(w))
        };
        (gamma.max(floor).ln(), lognormal.max(floor).ln())
    }

    /// Central 95% predictive interval of an active bucket's count.
    pub fn interval(&self) -> (f64, f64) {
        match self.excess() {
            Some(nb) => (1.0 + nb.inverse_cdf(0.025) as f64, 1.0 + nb.inverse_cdf(0.975) as f64),
            None => (1.0, self.expected),
        }
    }

    /// Mean and variance of a bucket's count whether or not it is active.
    pub fn unconditional(&self) -> (f64, f64) {
        let (q, m, v) = (self.active, self.expected, self.variance);
        (q * m, q * v + q * (1.0 - q) * m * m)
    }

    /// Upper-tail mid-p value of `total`, the sum of the bucket before this
    /// one (`previous`, active or not) and this active bucket (treated as
    /// independent). A burst is then told from a shift: a job that ran
    /// late moves its events into the next hour, which looks busy alone
    /// and ordinary together with the quiet hour before it.
    pub fn p_value_with(&self, previous: &Prediction, total: u64) -> f64 {
        // This bucket's distribution, moved by the previous bucket's mean
        // and widened by its variance, keeping its shape.
        let (pm, pv) = previous.unconditional();
        let combined = Prediction { expected: self.expected + pm, variance: self.variance + pv, ..*self };
        combined.p_value(total)
    }
}

/// The negative binomial with this mean and variance.
fn negative_binomial(mean: f64, variance: f64) -> Option<NegativeBinomial> {
    let m = mean.max(1e-6);
    let v = variance.max(m * (1.0 + 1e-6));
    let p = m / v;
    NegativeBinomial::new(m * p / (1.0 - p), p).ok()
}

/// Relative variance of one active bucket's count around a mean `m`: the
/// negative binomial variance of `m − 1`, over `m²`.
fn relative_variance(m: f64, phi: f64) -> f64 {
    let w = (m - 1.0).max(0.0);
    ((w + phi * w * w) / (m * m)).max(1e-4)
}

/// The per-principal model of active-bucket counts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeasonalCounts {
    /// Event time of the last update (ms); `i64::MIN` before the first.
    last: i64,
    /// Discounted buckets, active buckets, and the sum of active buckets' counts.
    n: f32,
    a: f32,
    s: f32,
    day_a: [f32; DAY_HOURS],
    day_s: [f32; DAY_HOURS],
    #[serde(with = "serde_big_array::BigArray")]
    week_a: [f32; WEEK_HOURS],
    #[serde(with = "serde_big_array::BigArray")]
    week_s: [f32; WEEK_HOURS],
    /// Dispersion: discounted Σ(e² − mean)·share (the share of the excess
    /// variance the prediction put on the bucket's dispersion rather than
    /// on its mean's uncertainty), Σ mean² and the number of active
    /// buckets behind them.
    disp_num: f32,
    disp_den: f32,
    disp_n: f32,
    /// The recent level: active buckets, their counts and their seasonal
    /// means, discounted with [`RECENT_HALF_LIFE_HOURS`].
    recent_n: f32,
    recent_z: f32,
    recent_mu: f32,
    /// How much the recent level really moves: discounted Σ ε·ε̄ (a
    /// bucket's relative error times the recent mean error before it, whose
    /// expectation is the variance of a level shared by nearby buckets:
    /// the noise of single buckets cancels out) and how many.
    level_cov: f32,
    level_n: f32,
    /// Discounted Σ ln(P_lognormal / P_gamma) of the active buckets: the
    /// evidence for the lognormal kernel.
    kernel: f32,
    /// Discounted Σ |ln(count / predicted mean)| over active buckets
    /// predicted at [`LOGNORMAL_CONTINUOUS`] or more, and their number: a
    /// robust spread of the log count, for the lognormal kernel.
    log_abs: f32,
    log_n: f32,
}

impl Default for SeasonalCounts {
    fn default() -> Self {
        SeasonalCounts {
            last: i64::MIN,
            n: 0.0,
            a: 0.0,
            s: 0.0,
            day_a: [0.0; DAY_HOURS],
            day_s: [0.0; DAY_HOURS],
            week_a: [0.0; WEEK_HOURS],
            week_s: [0.0; WEEK_HOURS],
            disp_num: 0.0,
            disp_den: 0.0,
            disp_n: 0.0,
            recent_n: 0.0,
            recent_z: 0.0,
            recent_mu: 0.0,
            level_cov: 0.0,
            level_n: 0.0,
            kernel: 0.0,
            log_abs: 0.0,
            log_n: 0.0,
        }
    }
}

/// What an active bucket taught a principal's model, for its peers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learnt {
    /// Added to the dispersion's numerator and denominator.
    pub dispersion: (f64, f64),
    /// Added to the evidence for the lognormal kernel.
    pub kernel: f64,
}

/// The pooled mean of a slot and the relative uncertainty left in it.
#[derive(Debug, Clone, Copy)]
struct Pooled {
    mean: f64,
    uncertainty: f64,
}

fn pool_slot(parent: Pooled, a: f32, s: f32, phi: f64, tau2: f64) -> Pooled {
    if a < MIN_SAMPLES {
        return Pooled { mean: parent.mean, uncertainty: tau2 + parent.uncertainty };
    }
    let d = (s / a) as f64 / parent.mean - 1.0;
    let (z, tau2) = slot_credibility(Slot { n: a as f64, d, v: relative_variance(parent.mean, phi) }, tau2);
    Pooled {
        mean: (parent.mean * (1.0 + z * d)).max(1.0),
        uncertainty: (1.0 - z) * tau2 + (1.0 - z) * (1.0 - z) * parent.uncertainty,
    }
}

impl SeasonalCounts {
    /// Discounted active buckets seen.
    pub fn active_samples(&self) -> f64 {
        self.a as f64
    }

    /// Discounted buckets seen, active or not.
    pub fn samples(&self) -> f64 {
        self.n as f64
    }

    /// The principal's own mean active-bucket count, if it has one.
    pub fn own_mean(&self) -> Option<f64> {
        (self.a >= MIN_SAMPLES).then(|| (self.s / self.a) as f64)
    }

    /// The fraction of buckets at hour of the day `h` that are active: an
    /// hour of the day has a 24th of the buckets seen, plus one bucket of
    /// evidence at the rate of the hours around it (two either side, with
    /// half a bucket of evidence either way of their own). An hour in the
    /// middle of the principal's day keeps about half a bucket's worth; an
    /// hour in the middle of five hours it has never worked is about as
    /// rare as the five together, not a coin toss for each.
    fn active_at(&self, h: usize) -> f64 {
        let buckets = self.n as f64 / DAY_HOURS as f64;
        let around: f64 =
            (0..NEIGHBOURHOOD).map(|d| self.day_a[(h + DAY_HOURS + d - NEIGHBOURHOOD / 2) % DAY_HOURS] as f64).sum();
        let rate = ((around + 0.5) / (NEIGHBOURHOOD as f64 * buckets + 1.0)).max(ACTIVE_FLOOR);
        ((self.day_a[h] as f64 + rate) / (buckets + 1.0)).clamp(0.0, 1.0)
    }

    /// The principal's own mean active-bucket count and that mean's
    /// relative variance (one bucket's, over the buckets behind it), for
    /// peers learning how much principals differ.
    pub fn own_level(&self, prior: &CountPrior) -> Option<(f64, f64)> {
        let mean = self.own_mean()?;
        Some((mean, relative_variance(mean, self.dispersion(prior)) / (self.a as f64).max(1e-3)))
    }

    /// The learnt dispersion, shrunk toward the prior's while history is short.
    pub fn dispersion(&self, prior: &CountPrior) -> f64 {
        let phi0 = prior.dispersion.max(0.0);
        if self.disp_n < MIN_SAMPLES || self.disp_den <= 0.0 {
            return phi0;
        }
        let mean_den = (self.disp_den / self.disp_n) as f64;
        let k = DISPERSION_PRIOR_BUCKETS * mean_den;
        ((self.disp_num as f64 + k * phi0) / (self.disp_den as f64 + k)).clamp(0.0, 50.0)
    }

    /// The predictive distribution of the count of an active bucket
    /// starting at `t`, without changing the model.
    pub fn predict(&self, t: EventTime, prior: &CountPrior) -> Prediction {
        let phi = self.dispersion(prior);
        let prior_mean = prior.mean.max(1.0);
        // The principal's overall level, shrunk toward its peers'.
        let overall = match self.own_mean() {
            Some(own) => {
                let z = credibility(self.a as f64, relative_variance(prior_mean, phi), prior.between.max(0.0));
                Pooled {
                    mean: (prior_mean * (1.0 + z * (own / prior_mean - 1.0))).max(1.0),
                    uncertainty: (1.0 - z) * prior.between.max(0.0),
                }
            }
            None => Pooled { mean: prior_mean, uncertainty: prior.between.max(0.0) },
        };
        // Hours of the day around the overall level.
        let v0 = relative_variance(overall.mean, phi);
        let tau_day = between_variance(
            (0..DAY_HOURS).map(|h| Slot {
                n: self.day_a[h] as f64,
                d: if self.day_a[h] >= MIN_SAMPLES {
                    (self.day_s[h] / self.day_a[h]) as f64 / overall.mean - 1.0
                } else {
                    0.0
                },
                v: v0,
            }),
            1,
        );
        let mut day = [overall; DAY_HOURS];
        for (h, slot) in day.iter_mut().enumerate() {
            *slot = pool_slot(overall, self.day_a[h], self.day_s[h], phi, tau_day);
        }
        // Hours of the week around their hour of the day.
        let tau_week = between_variance(
            (0..WEEK_HOURS).map(|w| {
                let parent = day[w % DAY_HOURS].mean;
                Slot {
                    n: self.week_a[w] as f64,
                    d: if self.week_a[w] >= MIN_SAMPLES {
                        (self.week_s[w] / self.week_a[w]) as f64 / parent - 1.0
                    } else {
                        0.0
                    },
                    v: relative_variance(parent, phi),
                }
            }),
            DAY_HOURS,
        );
        let w = hour_of_week(t);
        let slot = pool_slot(day[w % DAY_HOURS], self.week_a[w], self.week_s[w], phi, tau_week);
        let seasonal = slot.mean.max(1.0);
        // The recent level: a busy day makes every hour of it busier.
        let noise = relative_variance(seasonal, phi);
        let (recent, level) = self.recent_level(t, noise);
        let z = credibility(recent.0, noise, level);
        let mean = (seasonal * (1.0 + z * (recent.1 - 1.0))).max(1.0);
        let uncertainty = slot.uncertainty + (1.0 - z) * level;
        let excess = mean - 1.0;
        let parameter_variance = uncertainty * mean * mean;
        Prediction {
            expected: mean,
            variance: excess + phi * excess * excess + parameter_variance,
            parameter_variance,
            samples: self.a as f64,
            seasonal,
            dispersion: phi,
            uncertainty,
            lognormal: 1.0 / (1.0 + (-(self.kernel as f64 + prior.kernel)).exp()),
            active: self.active_at(hour_of_day(t)),
            log_spread: if self.log_n as f64 >= LOG_SPREAD_MIN {
                let m = (self.log_abs / self.log_n) as f64;
                std::f64::consts::FRAC_PI_2 * m * m
            } else {
                0.0
            },
        }
    }

    /// The recent level at `t`: (discounted active buckets, ratio of their
    /// counts to their seasonal means), and the variance of the true level
    /// learnt so far; `noise` is one bucket's relative variance.
    fn recent_level(&self, t: EventTime, noise: f64) -> ((f64, f64), f64) {
        let hours = if self.last == i64::MIN { 0.0 } else { (t.0 - self.last).max(0) as f64 / MS_PER_HOUR as f64 };
        let k = 0.5f64.powf(hours / RECENT_HALF_LIFE_HOURS);
        let n = self.recent_n as f64 * k;
        let ratio = if self.recent_mu > 0.0 { (self.recent_z / self.recent_mu) as f64 } else { 1.0 };
        // The level's variance counts only beyond two standard errors of
        // the covariance estimate: noise alone does not move the level.
        let level = if self.level_n >= 3.0 {
            let se = noise / (self.recent_n.max(1.0) as f64 * self.level_n as f64).sqrt();
            ((self.level_cov / self.level_n) as f64 - 2.0 * se).clamp(0.0, 4.0)
        } else {
            0.0
        };
        ((n, ratio), level)
    }

    /// Forgets by the event time elapsed since the last update.
    fn decay_to(&mut self, t: EventTime, keep_per_day: f64) {
        if self.last != i64::MIN && t.0 > self.last {
            let elapsed = (t.0 - self.last) as f64;
            let recent = 0.5f64.powf(elapsed / MS_PER_HOUR as f64 / RECENT_HALF_LIFE_HOURS) as f32;
            for x in [&mut self.recent_n, &mut self.recent_z, &mut self.recent_mu] {
                *x *= recent;
            }
            let k = keep_per_day.powf(elapsed / MS_PER_DAY as f64) as f32;
            if k < 1.0 {
                for x in [
                    &mut self.n,
                    &mut self.a,
                    &mut self.s,
                    &mut self.disp_num,
                    &mut self.disp_den,
                    &mut self.disp_n,
                    &mut self.level_cov,
                    &mut self.level_n,
                    &mut self.kernel,
                    &mut self.log_abs,
                    &mut self.log_n,
                ] {
                    *x *= k;
                }
                for x in self.day_a.iter_mut().chain(&mut self.day_s).chain(&mut self.week_a).chain(&mut self.week_s) {
                    *x *= k;
                }
            }
        }
        self.last = self.last.max(t.0);
    }

    /// Folds in the bucket starting at `t` with `count` events. For an
    /// active bucket, `predicted` is what [`SeasonalCounts::predict`] said
    /// of it beforehand (its error teaches the dispersion, and clips what
    /// is learnt); an inactive bucket only ages the model. `keep_per_day`
    /// in (0, 1] is the weight the past keeps per day of event time.
    /// Returns what the bucket taught, for peers that pool it.
    pub fn update(
        &mut self,
        t: EventTime,
        count: u64,
        predicted: Option<&Prediction>,
        keep_per_day: f64,
    ) -> Option<Learnt> {
        self.decay_to(t, keep_per_day);
        self.n += 1.0;
        if count == 0 {
            return None;
        }
        let mut z = count as f64;
        let mut contribution = None;
        if let Some(p) = predicted {
            let sd = p.variance.max(0.0).sqrt();
            let excess = p.expected - 1.0;
            let e = (z - p.expected).clamp(-CLIP_SPREAD_SD * sd, CLIP_SPREAD_SD * sd);
            // The variance beyond Poisson's, split between the bucket's own
            // dispersion and the mean's uncertainty in the proportion the
            // prediction put them (subtracting the uncertainty instead goes
            // far negative while a newcomer's mean is still uncertain).
            let process = p.dispersion * excess * excess;
            let share =
                if process + p.parameter_variance > 0.0 { process / (process + p.parameter_variance) } else { 1.0 };
            let (num, den) = ((e * e - excess) * share, excess * excess);
            self.disp_num += num as f32;
            self.disp_den += den as f32;
            self.disp_n += 1.0;
            let (gamma, lognormal) = p.log_likelihoods(count);
            // One bucket moves the odds by at most e²: an incident is not
            // evidence about the shape of ordinary bursts.
            let kernel = (lognormal - gamma).clamp(-2.0, 2.0);
            self.kernel += kernel as f32;
            if p.expected >= LOGNORMAL_CONTINUOUS {
                // Bounded at e⁴ (55×): an incident widens the kernel a little, not for good.
                self.log_abs += (z / p.expected).ln().abs().min(LOG_ABS_CLIP) as f32;
                self.log_n += 1.0;
            }
            contribution = Some(Learnt { dispersion: (num, den), kernel });
            if p.samples >= 3.0 {
                z = z.min(p.expected + CLIP_SD * sd);
            }
            // The recent level, and how much it moves.
            let noise = sd / p.expected.max(1.0);
            let error = (z / p.seasonal - 1.0).clamp(-CLIP_SD * noise, CLIP_SD * noise);
            if self.recent_n >= 0.5 && self.recent_mu > 0.0 {
                let before = (self.recent_z / self.recent_mu) as f64 - 1.0;
                self.level_cov += (error * before) as f32;
                self.level_n += 1.0;
            }
            self.recent_n += 1.0;
            self.recent_z += (p.seasonal * (1.0 + error)) as f32;
            self.recent_mu += p.seasonal as f32;
        }
        let z = z as f32;
        let (h, w) = (hour_of_day(t), hour_of_week(t));
        self.a += 1.0;
        self.s += z;
        self.day_a[h] += 1.0;
        self.day_s[h] += z;
        self.week_a[w] += 1.0;
        self.week_s[w] += z;
        contribution
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Gamma, Poisson};

    fn at(day: i64, hour: i64) -> EventTime {
        EventTime(1_704_067_200_000 + (day * 24 + hour) * MS_PER_HOUR) // day 0 = Monday
    }

    /// Feeds the model `count(day, hour)` for every hour of `days` days.
    fn learn(days: i64, count: impl Fn(i64, i64) -> u64) -> SeasonalCounts {
        let mut m = SeasonalCounts::default();
        let prior = CountPrior::default();
        for day in 0..days {
            for hour in 0..24 {
                let t = at(day, hour);
                let c = count(day, hour);
                let p = (c > 0).then(|| m.predict(t, &prior));
                m.update(t, c, p.as_ref(), 0.95);
            }
        }
        m
    }

    #[test]
    fn a_heavy_tailed_client_gets_a_wide_lognormal_spread_and_a_steady_one_does_not() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let heavy = rand_distr::LogNormal::new(-0.605, 1.1).unwrap();
        let mut draws = |scale: bool| -> Vec<u64> {
            (0..21 * 24)
                .map(|_| {
                    let rate = 50.0 * if scale { heavy.sample(&mut rng) } else { 1.0 };
                    Poisson::new(rate).unwrap().sample(&mut rng) as u64 + 1
                })
                .collect()
        };
        let (bursty, steady) = (draws(true), draws(false));
        let spread = |counts: &[u64]| {
            learn(21, |d, h| counts[(d * 24 + h) as usize]).predict(at(21, 10), &CountPrior::default()).log_spread
        };
        let (b, s) = (spread(&bursty), spread(&steady));
        // ln-variance 1.21 drawn; the mean absolute deviation about the
        // predicted mean (not the median) reads somewhat wider.
        assert!(b > 0.8 && b < 2.5, "{b}");
        assert!(s < 0.1, "{s}");
    }

    #[test]
    fn hour_slots() {
        assert_eq!(hour_of_week(at(0, 10)), 10);
        assert_eq!(hour_of_week(at(5, 10)), 130);
        assert_eq!(hour_of_day(at(5, 10)), 10);
    }

    #[test]
    fn learns_a_level_and_flags_a_burst() {
        let m = learn(21, |day, hour| if day % 7 < 5 && (9..17).contains(&hour) { 20 + (day % 5) as u64 } else { 0 });
        let p = m.predict(at(21, 10), &CountPrior::default());
        assert!((p.expected - 22.0).abs() < 3.0, "{p:?}");
        assert!(p.p_value(22) > 0.2, "{p:?}");
        let (low, high) = p.interval();
        assert!(low < 22.0 && high > 22.0, "{low} {high}");
        assert!(p.p_value(200) < 1e-6, "{}", p.p_value(200));
    }

    #[test]
    fn an_ordinary_volume_at_an_unusual_hour_is_ordinary_volume() {
        // The "when" question belongs to the activity model: 22 queries at
        // 03:00 or on a Saturday are an ordinary amount for this principal.
        let m = learn(21, |day, hour| if day % 7 < 5 && (9..17).contains(&hour) { 20 + (day % 5) as u64 } else { 0 });
        let prior = CountPrior::default();
        assert!(m.predict(at(21, 3), &prior).p_value(22) > 0.05, "{:?}", m.predict(at(21, 3), &prior));
        assert!(m.predict(at(26, 10), &prior).p_value(22) > 0.05, "{:?}", m.predict(at(26, 10), &prior));
        // Ten times the usual volume at night is not.
        assert!(m.predict(at(21, 3), &prior).p_value(300) < 1e-6, "{:?}", m.predict(at(21, 3), &prior));
    }

    #[test]
    fn an_hour_amid_hours_never_worked_is_rarer_than_one_beside_the_working_day() {
        // Works 09–17 on weekdays, and 17–18 on Wednesdays.
        let m = learn(28, |day, hour| match hour {
            9..17 if day % 7 < 5 => 20,
            17 if day % 7 == 2 => 5,
            _ => 0,
        });
        let prior = CountPrior::default();
        let (night, evening, day) = (
            m.predict(at(28, 3), &prior).active,
            m.predict(at(28, 18), &prior).active,
            m.predict(at(28, 12), &prior).active,
        );
        // 03:00 sits in five hours never worked: rare, but not below the floor.
        assert!((ACTIVE_FLOOR / 29.0..0.01).contains(&night), "{night}");
        // 18:00, never worked either, sits next to the working day.
        assert!(evening > 3.0 * night, "{evening} {night}");
        assert!(day > 0.6, "{day}");
    }

    #[test]
    fn a_weekly_spike_is_learnt_by_the_hour_of_the_week() {
        let m = learn(35, |day, hour| match (day % 7, hour) {
            (0, 9) => 30 + (day % 3) as u64,
            (0..5, 9..17) => 10 + (day % 3) as u64,
            _ => 0,
        });
        let prior = CountPrior::default();
        let monday = m.predict(at(35, 9), &prior);
        let tuesday = m.predict(at(36, 9), &prior);
        assert!(monday.expected > 1.6 * tuesday.expected, "{monday:?} {tuesday:?}");
        assert!(monday.p_value(31) > 0.05, "{monday:?}");
    }

    #[test]
    fn dispersion_is_learnt_from_the_data() {
        // Poisson counts around 30 versus a gamma-mixed (φ = 0.5) version.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let gamma = Gamma::new(2.0, 0.5).unwrap();
        let draws: Vec<(u64, u64)> = (0..24 * 60)
            .map(|_| {
                let calm = Poisson::new(30.0).unwrap().sample(&mut rng) as u64;
                let busy = Poisson::new(30.0 * gamma.sample(&mut rng)).unwrap().sample(&mut rng) as u64;
                (calm.max(1), busy.max(1))
            })
            .collect();
        let calm = learn(60, |d, h| draws[(d * 24 + h) as usize].0);
        let bursty = learn(60, |d, h| draws[(d * 24 + h) as usize].1);
        let prior = CountPrior::default();
        let (pc, pb) = (calm.dispersion(&prior), bursty.dispersion(&prior));
        assert!(pc < 0.05, "{pc}");
        assert!((0.3..0.8).contains(&pb), "{pb}");
        // The same 80 events: impossible for the calm principal, a busy
        // hour for the bursty one.
        assert!(calm.predict(at(60, 10), &prior).p_value(80) < 1e-9);
        assert!(bursty.predict(at(60, 10), &prior).p_value(80) > 1e-3);
    }

    #[test]
    fn one_incident_does_not_become_normal() {
        let mut m = learn(21, |_, hour| if (9..17).contains(&hour) { 10 } else { 0 });
        let prior = CountPrior::default();
        let t = at(21, 10);
        let p = m.predict(t, &prior);
        m.update(t, 1000, Some(&p), 0.95);
        assert!(m.predict(at(22, 10), &prior).p_value(1000) < 1e-6);
    }

    #[test]
    fn a_new_principal_leans_on_its_prior_and_is_not_certain() {
        let m = SeasonalCounts::default();
        let prior = CountPrior { mean: 10.0, between: 1.0, dispersion: 0.3, kernel: -1.0 };
        let p = m.predict(at(0, 10), &prior);
        assert_eq!(p.expected, 10.0);
        // Principals differ: three times the peers' mean is no surprise.
        assert!(p.p_value(30) > 0.01, "{p:?}");
        assert!(p.p_value(1000) < 1e-6, "{p:?}");
        assert_eq!(p.p_value(0), 1.0);
    }

    #[test]
    fn mid_p_values_of_an_exact_model_are_uniform() {
        // Counts drawn from the very distribution predicted: the fraction
        // of p ≤ α is α (mid-p makes up for the discreteness).
        let p = Prediction {
            expected: 4.0,
            variance: 6.0,
            parameter_variance: 0.0,
            samples: 10.0,
            seasonal: 4.0,
            dispersion: 1.0 / 3.0,
            uncertainty: 0.0,
            lognormal: 0.0,
            active: 1.0,
            log_spread: 0.0,
        };
        let nb = p.excess().unwrap();
        for alpha in [0.05, 0.2] {
            let mut frac = 0.0;
            for w in 0..200u64 {
                if p.p_value(w + 1) <= alpha {
                    frac += nb.pmf(w);
                }
            }
            assert!(frac > alpha / 2.0 && frac <= alpha * 1.2, "{alpha}: {frac}");
        }
    }

    #[test]
    fn the_model_is_small() {
        assert!(std::mem::size_of::<SeasonalCounts>() <= 1600, "{}", std::mem::size_of::<SeasonalCounts>());
    }
}
