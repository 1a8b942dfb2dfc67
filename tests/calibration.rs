//! Calibration: on data without anomalies, the fraction of buckets with
//! p ≤ α must be close to α, or the scores do not mean what they say.
//!
//! The series are drawn here, with seeded randomness, from a process the
//! models do not assume: principals whose levels differ by factors, office
//! and shift rhythms, weekend and night work at ordinary volume, a busy or
//! quiet day multiplying every hour of it, and hour-to-hour variation far
//! beyond Poisson (counts); daily rhythms, day effects, lognormal, Gaussian
//! and heavy-tailed noise, series around zero (values). The first four
//! weeks of each series are learnt, not judged. The check: the fraction of
//! judged buckets with p ≤ α lies in [α/2, 2α], for α = 10⁻² and 10⁻³.

use auditwatch::baseline::count::{CountPrior, SeasonalCounts};
use auditwatch::baseline::value::{Forgetting, SeasonalValues};
use auditwatch::time::{EventTime, MS_PER_HOUR};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, LogNormal, Normal, Poisson, StudentT};

const T0: i64 = 1_704_067_200_000; // Monday 2024-01-01
const WEEKS: i64 = 16;
const WARMUP_HOURS: i64 = 4 * 7 * 24;
const ALPHAS: [f64; 2] = [1e-2, 1e-3];

/// p-values of the judged buckets, and a line saying what they were.
struct Tally {
    p: Vec<f64>,
}

impl Tally {
    fn fraction(&self, alpha: f64) -> f64 {
        self.p.iter().filter(|&&p| p <= alpha).count() as f64 / self.p.len() as f64
    }

    fn check(&self, what: &str) {
        let mut report = format!("{what}: {} judged buckets", self.p.len());
        for alpha in ALPHAS {
            report += &format!("; fraction with p ≤ {alpha:e}: {:.5}", self.fraction(alpha));
        }
        println!("{report}");
        for alpha in ALPHAS {
            let f = self.fraction(alpha);
            assert!((alpha / 2.0..=2.0 * alpha).contains(&f), "{report}");
        }
    }
}

impl Tally {
    /// The joint p-value of a bucket is conservative by construction (an
    /// idle bucket is never small), so only its excess is checked: at most
    /// 2α (for α down to 10⁻⁴, some 44 buckets here), and a principal at an hour it rarely works is not made rarer
    /// than it is.
    fn at_most(&self, what: &str) {
        let alphas = [1e-2, 1e-3, 1e-4];
        let mut report = format!("{what}: {} buckets", self.p.len());
        for alpha in alphas {
            report += &format!("; fraction with p ≤ {alpha:e}: {:.6}", self.fraction(alpha));
        }
        println!("{report}");
        for alpha in alphas {
            assert!(self.fraction(alpha) <= 2.0 * alpha, "{report}");
        }
    }
}

fn gamma_mean_one(rng: &mut ChaCha8Rng, shape: f64) -> f64 {
    Gamma::new(shape, 1.0 / shape).expect("valid gamma").sample(rng)
}

/// How a simulated person spreads their work over the week.
#[derive(Clone, Copy)]
enum Rhythm {
    Office { start: i64, end: i64 },
    Shift { start: i64, hours: i64 },
}

/// One principal's hourly counts over [`WEEKS`] weeks, scored online.
fn count_series(rng: &mut ChaCha8Rng, tally: &mut Tally, joint: &mut Tally) {
    let level = LogNormal::new(10f64.ln(), 0.9).unwrap().sample(rng).max(1.5);
    let (day_shape, hour_shape) = (rng.random_range(2.5..12.0), rng.random_range(1.5..10.0));
    let rhythm = if rng.random_bool(0.75) {
        let start = rng.random_range(6..11);
        Rhythm::Office { start, end: start + rng.random_range(7..11) }
    } else {
        Rhythm::Shift { start: rng.random_range(0..24), hours: rng.random_range(6..10) }
    };
    let weekend_work = rng.random_range(0.0..0.5);
    let night_work = rng.random_range(0.0..0.08);
    let lunch = rng.random_range(0.3..1.0);
    let mut model = SeasonalCounts::default();
    let prior = CountPrior::default();
    for day in 0..WEEKS * 7 {
        let busy = gamma_mean_one(rng, day_shape);
        let weekend = day % 7 >= 5;
        let works_today = !weekend || rng.random_bool(weekend_work);
        let night = rng.random_bool(night_work).then(|| rng.random_range(0..6));
        for hour in 0..24 {
            let on = match rhythm {
                Rhythm::Office { start, end } => works_today && (start..end).contains(&hour),
                Rhythm::Shift { start, hours } => works_today && (hour - start).rem_euclid(24) < hours,
            } || night == Some(hour);
            let mean = if on { level * busy * gamma_mean_one(rng, hour_shape) } else { 0.0 };
            let mean = if on && hour == 12 { mean * lunch } else { mean };
            let count = if mean > 0.0 { Poisson::new(mean).unwrap().sample(rng) as u64 } else { 0 };
            let h = day * 24 + hour;
            let t = EventTime(T0 + h * MS_PER_HOUR);
            if count == 0 {
                if h >= WARMUP_HOURS {
                    joint.p.push(1.0);
                }
                model.update(t, 0, None, 0.95);
                continue;
            }
            let p = model.predict(t, &prior);
            if h >= WARMUP_HOURS {
                tally.p.push(p.p_value(count));
                joint.p.push(p.active.clamp(0.0, 1.0) * p.p_value(count));
            }
            model.update(t, count, Some(&p), 0.95);
        }
    }
}

#[test]
fn count_p_values_are_calibrated_on_overdispersed_seasonal_counts() {
    let mut rng = ChaCha8Rng::seed_from_u64(20261201);
    let mut tally = Tally { p: Vec::new() };
    let mut joint = Tally { p: Vec::new() };
    for _ in 0..220 {
        count_series(&mut rng, &mut tally, &mut joint);
    }
    assert!(tally.p.len() > 100_000, "{}", tally.p.len());
    tally.check("counts (upper tail, mid-p)");
    joint.at_most("counts over all buckets, P(active at that hour) · P(X ≥ x | active)");
}

/// Noise of a value series.
#[derive(Clone, Copy)]
enum Noise {
    LogNormal(f64),
    LogStudent(f64, f64),
    Additive(f64),
}

/// One key's hourly values over [`WEEKS`] weeks, scored online.
fn value_series(rng: &mut ChaCha8Rng, tally: &mut Tally, upper: bool) {
    let level = LogNormal::new(3.0, 1.5).unwrap().sample(rng);
    let noise = match rng.random_range(0..4) {
        0 | 1 => Noise::LogNormal(rng.random_range(0.05..0.5)),
        2 => Noise::LogStudent(rng.random_range(0.05..0.3), rng.random_range(3.0..8.0)),
        _ => Noise::Additive(level * rng.random_range(0.1..1.0)),
    };
    let centre = if matches!(noise, Noise::Additive(_)) && rng.random_bool(0.5) { 0.0 } else { level };
    let day_sd = rng.random_range(0.0..0.2);
    // A daily rhythm: a peak over some hours (by day for people, by night
    // for batch jobs), flat for others.
    let (peak_from, peak_len, peak): (i64, i64, f64) =
        (rng.random_range(0..24), rng.random_range(4..14), rng.random_range(1.0..6.0));
    let weekend = rng.random_range(0.3..1.0);
    let mut model = SeasonalValues::<168>::default();
    let normal = Normal::<f64>::new(0.0, 1.0).unwrap();
    for day in 0..WEEKS * 7 {
        let day_effect = (day_sd * normal.sample(rng)).exp();
        for hour in 0..24 {
            let rhythm = if (hour - peak_from).rem_euclid(24) < peak_len { peak } else { 1.0 };
            let rhythm = if day % 7 >= 5 { 1.0 + (rhythm - 1.0) * weekend } else { rhythm };
            let typical = centre * rhythm * day_effect;
            let y = match noise {
                Noise::LogNormal(s) => typical * (s * normal.sample(rng)).exp(),
                Noise::LogStudent(s, dof) => typical * (s * StudentT::new(dof).unwrap().sample(rng)).exp(),
                Noise::Additive(s) => typical + s * normal.sample(rng),
            };
            let h = day * 24 + hour;
            let t = EventTime(T0 + h * MS_PER_HOUR);
            if let Some(p) = model.predict(t)
                && h >= WARMUP_HOURS
            {
                tally.p.push(if upper { p.p_value(y) } else { p.p_value_below(y) });
            }
            model.update(t, y, Forgetting::PerDay(0.95));
        }
    }
}

#[test]
fn value_p_values_are_calibrated_on_noisy_seasonal_values() {
    for (upper, seed) in [(true, 7), (false, 8)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tally = Tally { p: Vec::new() };
        for _ in 0..60 {
            value_series(&mut rng, &mut tally, upper);
        }
        assert!(tally.p.len() > 100_000, "{}", tally.p.len());
        tally.check(if upper { "values (upper tail)" } else { "values (lower tail)" });
    }
}
