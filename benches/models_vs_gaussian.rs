//! Detection quality, not speed: labelled hourly series with injected
//! anomalies, scored in the same run by auditwatch's models (through
//! `score_series`, as `auditwatch score-series --model auto` does) and by
//! the simple reference every anomaly tool must beat: a trailing-window
//! Gaussian (mean and standard deviation of the previous 30 rows, score =
//! −10·log10 of its upper tail).
//!
//! Five families, each with its parameters drawn per seed: office-hours
//! counts with weekend work at ordinary volume, heavy-tailed counts of a
//! bursty API client, counts of a workload that grows, job runtimes, and
//! hourly cost with idle zeros and the odd negative credit. Every series
//! gets a few anomalies: single-hour spikes and bursts of two to four
//! hours, three to fifteen times the hour's usual level for counts, four
//! to ten spreads above it for values. The seeds (from 5001) are none the
//! models were tuned on.
//!
//! Per family and method it reports the average precision of the row
//! scores against the labelled rows (threshold-free: how well the score
//! ranks), the anomaly windows with a row at score ≥ 40 (p ≤ 10⁻⁴), the
//! windows found at the threshold where ordinary rows alarm one hour in a
//! thousand (the methods at equal noise, whatever their p-values claim),
//! and how often an ordinary row reaches p ≤ 10⁻² and p ≤ 10⁻⁴
//! (calibration: 1% and 0.01% if the p-values mean what they say).
//!
//! `cargo bench --bench models_vs_gaussian` runs 12 series per family;
//! `cargo test --benches` runs 2 to check that it works. The run fails if
//! the Gaussian ranks better than the models in any family.

use auditwatch::score_series::{ScoreOptions, score_series};
use auditwatch::time::{EventTime, MS_PER_HOUR};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, LogNormal, Poisson, StudentT};
use statrs::distribution::{ContinuousCDF, Normal};
use std::fmt::Write;

const DAYS: i64 = 56;
const WINDOW: usize = 30;
/// Score at which a row counts as detected: p ≤ 10⁻⁴.
const DETECT: u8 = 40;
/// Ordinary rows that may alarm when the methods are compared at equal
/// noise: one hour in a thousand, about one false alarm per six weeks.
const EQUAL_NOISE: f64 = 1e-3;
/// 2024-01-01, a Monday.
const START: i64 = 1_704_067_200_000;

#[derive(Clone, Copy, Debug)]
enum Family {
    OfficeCounts,
    HeavyTailCounts,
    GrowingCounts,
    Runtimes,
    CostWithZeros,
}

const FAMILIES: [Family; 5] =
    [Family::OfficeCounts, Family::HeavyTailCounts, Family::GrowingCounts, Family::Runtimes, Family::CostWithZeros];

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::OfficeCounts => "office counts, weekend work",
            Family::HeavyTailCounts => "heavy-tailed API counts",
            Family::GrowingCounts => "growing workload counts",
            Family::Runtimes => "job runtimes",
            Family::CostWithZeros => "hourly cost, zeros, credits",
        }
    }

    fn counts(self) -> bool {
        matches!(self, Family::OfficeCounts | Family::HeavyTailCounts | Family::GrowingCounts)
    }
}

/// One hourly series: its rows, the hour's usual level and spread (what
/// an anomaly is scaled by), and which rows are anomalous.
struct Series {
    values: Vec<f64>,
    anomalous: Vec<bool>,
    windows: Vec<(usize, usize)>,
}

fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    if mean <= 0.0 { 0.0 } else { Poisson::new(mean).expect("positive mean").sample(rng) }
}

/// The series before anomalies: (value, usual level, usual spread) per hour.
fn ordinary(family: Family, rng: &mut ChaCha8Rng) -> Vec<(f64, f64, f64)> {
    let hours = (DAYS * 24) as usize;
    let mut out = Vec::with_capacity(hours);
    match family {
        Family::OfficeCounts => {
            let level: f64 = LogNormal::new(1.5, 0.6).unwrap().sample(rng);
            let shape = 1.0 / rng.random_range(0.1..1.0);
            let (from, to) = (rng.random_range(7..10), rng.random_range(16..19));
            let weekend_days: Vec<i64> = (0..DAYS).filter(|d| d % 7 >= 5 && rng.random_bool(0.3)).collect();
            for h in 0..hours {
                let (day, hour) = (h as i64 / 24, h % 24);
                let working = (from..to).contains(&hour) && (day % 7 < 5 || weekend_days.contains(&day));
                let mean = if working { level } else { 0.05 * level.min(2.0) };
                let rate = mean * Gamma::new(shape, 1.0 / shape).unwrap().sample(rng);
                out.push((poisson(rng, rate), mean, (mean + mean * mean / shape).sqrt()));
            }
        }
        Family::HeavyTailCounts => {
            let level: f64 = LogNormal::new(4.0, 1.0).unwrap().sample(rng);
            let sigma = rng.random_range(0.4..0.9);
            let burst = LogNormal::new(-sigma * sigma / 2.0, sigma).unwrap();
            for h in 0..hours {
                let daily = 1.0 + 0.5 * ((h % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
                let mean = level * daily;
                let rate = mean * burst.sample(rng);
                out.push((poisson(rng, rate), mean, mean * sigma + mean.sqrt()));
            }
        }
        Family::GrowingCounts => {
            let level: f64 = LogNormal::new(2.5, 0.5).unwrap().sample(rng);
            let growth: f64 = rng.random_range(1.5..3.0);
            let shape = 1.0 / rng.random_range(0.05..0.5);
            for h in 0..hours {
                let trend = growth.powf(h as f64 / hours as f64);
                let weekday = if (h / 24) % 7 < 5 { 1.0 } else { 0.4 };
                let daily = if (8..20).contains(&(h % 24)) { 1.0 } else { 0.3 };
                let mean = level * trend * weekday * daily;
                let rate = mean * Gamma::new(shape, 1.0 / shape).unwrap().sample(rng);
                out.push((poisson(rng, rate), mean, (mean + mean * mean / shape).sqrt()));
            }
        }
        Family::Runtimes => {
            let typical: f64 = LogNormal::new(6.5, 1.0).unwrap().sample(rng);
            let sigma: f64 = rng.random_range(0.05..0.35);
            let dof: f64 = rng.random_range(3.0..30.0);
            let t = StudentT::new(dof).unwrap();
            let night_factor = rng.random_range(1.0..2.5);
            for h in 0..hours {
                let usual = if h % 24 < 6 { typical * night_factor } else { typical };
                let v: f64 = usual * (sigma * t.sample(rng)).exp();
                out.push(((v * 10.0).round() / 10.0, usual, usual * sigma));
            }
        }
        Family::CostWithZeros => {
            let day_cost: f64 = LogNormal::new(2.0, 1.0).unwrap().sample(rng);
            let ragged: f64 = rng.random_range(0.2..0.8);
            let idle = rng.random_range(0.2..0.7);
            for h in 0..hours {
                let working = (8..20).contains(&(h % 24)) && (h / 24) % 7 < 5;
                let v: f64 = if working && !rng.random_bool(idle * 0.3) {
                    day_cost * LogNormal::new(-ragged * ragged / 2.0, ragged).unwrap().sample(rng)
                } else if rng.random_bool(0.01) {
                    // A credit or correction.
                    -day_cost * rng.random_range(0.1..1.0)
                } else {
                    0.0
                };
                let (usual, spread) = if working { (day_cost, day_cost * ragged) } else { (0.0, 0.1 * day_cost) };
                out.push(((v * 100.0).round() / 100.0, usual, spread));
            }
        }
    }
    out
}

fn series(family: Family, seed: u64) -> Series {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows = ordinary(family, &mut rng);
    let mut values: Vec<f64> = rows.iter().map(|r| r.0).collect();
    let mut anomalous = vec![false; rows.len()];
    let mut windows = Vec::new();
    let n = rng.random_range(3..=5);
    // Anomalies after two weeks of history, at least two days apart.
    let mut at = (14 * 24) as usize;
    for _ in 0..n {
        let room = (rows.len() - at) / 2;
        if room <= 48 {
            break;
        }
        at += rng.random_range(48..room);
        let hours = if rng.random_bool(0.5) { 1 } else { rng.random_range(2..=4) };
        if at + hours >= rows.len() {
            break;
        }
        let counts = family.counts();
        let factor = if counts { rng.random_range(3.0..15.0) } else { rng.random_range(4.0..10.0) };
        for (i, value) in values.iter_mut().enumerate().skip(at).take(hours) {
            let (_, usual, spread) = rows[i];
            *value = if counts {
                // Counts: the hour's level times the factor, at least a
                // handful of events above what it usually does.
                poisson(&mut rng, usual.max(1.0) * factor).max(usual + 5.0 * spread).round()
            } else {
                ((usual + factor * spread.max(0.05 * usual.abs()).max(0.01)) * 100.0).round() / 100.0
            };
            anomalous[i] = true;
        }
        windows.push((at, at + hours));
        at += hours;
    }
    Series { values, anomalous, windows }
}

/// The trailing-window Gaussian's scores (0 while the window fills).
fn gaussian_scores(values: &[f64]) -> Vec<u8> {
    let normal = Normal::new(0.0, 1.0).unwrap();
    (0..values.len())
        .map(|i| {
            if i < WINDOW {
                return 0;
            }
            let w = &values[i - WINDOW..i];
            let mean = w.iter().sum::<f64>() / WINDOW as f64;
            let sd = (w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (WINDOW - 1) as f64).sqrt();
            let p = if sd > 0.0 {
                normal.sf((values[i] - mean) / sd)
            } else if values[i] > mean {
                0.0
            } else {
                1.0
            };
            score(p)
        })
        .collect()
}

fn score(p: f64) -> u8 {
    (-10.0 * p.max(1e-10).log10()).round().clamp(0.0, 100.0) as u8
}

/// auditwatch's scores, through the CSV path `score-series` uses (the
/// first day is learnt, not scored: written as 0).
fn model_scores(family: Family, values: &[f64], dir: &std::path::Path) -> Vec<u8> {
    let (input, output) = (dir.join("in.csv"), dir.join("out.csv"));
    let mut csv = String::from("timestamp,value\n");
    for (i, v) in values.iter().enumerate() {
        let t = EventTime(START + i as i64 * MS_PER_HOUR);
        if family.counts() {
            writeln!(csv, "{t},{}", *v as u64).unwrap();
        } else {
            writeln!(csv, "{t},{v:.2}").unwrap();
        }
    }
    std::fs::write(&input, csv).unwrap();
    score_series(&input, &output, &ScoreOptions::default()).unwrap();
    let text = std::fs::read_to_string(&output).unwrap();
    text.lines().skip(1).map(|l| l.rsplit(',').next().unwrap_or("").parse().unwrap_or(0)).collect()
}

/// Average precision of `scores` ranking the anomalous rows first, rows
/// of equal score taken together (a tie is neither ordered nor broken
/// in anyone's favour).
fn average_precision(scores: &[u8], anomalous: &[bool]) -> f64 {
    let positives = anomalous.iter().filter(|a| **a).count() as f64;
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    for s in (0..=100u8).rev() {
        let at: Vec<bool> = scores.iter().zip(anomalous).filter(|(x, _)| **x == s).map(|(_, a)| *a).collect();
        if at.is_empty() {
            continue;
        }
        let hits = at.iter().filter(|a| **a).count() as f64;
        tp += hits;
        seen += at.len() as f64;
        ap += hits / positives * (tp / seen);
    }
    ap
}

/// One method's results over a family's series.
struct Tally {
    ap: f64,
    series: f64,
    /// The highest score in each anomaly window.
    windows: Vec<u8>,
    /// Ordinary rows by score.
    ordinary: [u64; 101],
}

impl Default for Tally {
    fn default() -> Self {
        Tally { ap: 0.0, series: 0.0, windows: Vec::new(), ordinary: [0; 101] }
    }
}

impl Tally {
    fn add(&mut self, scores: &[u8], s: &Series) {
        // The first day is warm-up for the models: left out for both.
        let from = 24;
        self.ap += average_precision(&scores[from..], &s.anomalous[from..]);
        self.series += 1.0;
        for &(a, b) in &s.windows {
            self.windows.push(scores[a..b].iter().copied().max().unwrap_or(0));
        }
        for (x, a) in scores.iter().zip(&s.anomalous).skip(from) {
            if !a {
                self.ordinary[*x as usize] += 1;
            }
        }
    }

    /// The share of ordinary rows at or above `score`.
    fn alarm_rate(&self, score: u8) -> f64 {
        let total: u64 = self.ordinary.iter().sum();
        self.ordinary[score as usize..].iter().sum::<u64>() as f64 / total.max(1) as f64
    }

    fn found(&self, score: u8) -> usize {
        self.windows.iter().filter(|m| **m >= score).count()
    }

    /// Windows found at the lowest threshold whose ordinary rows alarm at
    /// most `rate` of the time: the methods compared at equal noise,
    /// whatever their p-values claim.
    fn found_at_rate(&self, rate: f64) -> usize {
        (0..=100u8).find(|t| self.alarm_rate(*t) <= rate).map_or(0, |t| self.found(t))
    }

    fn row(&self, name: &str, method: &str) -> String {
        let n = self.windows.len();
        format!(
            "{name:<29} {method:<10} {:>5.3} {:>6}/{n:<3} {:>6}/{n:<3} {:>8.3}% {:>8.4}%",
            self.ap / self.series,
            self.found(DETECT),
            self.found_at_rate(EQUAL_NOISE),
            100.0 * self.alarm_rate(20),
            100.0 * self.alarm_rate(40),
        )
    }
}

fn main() {
    let per_family: u64 = if std::env::args().any(|a| a == "--bench") { 12 } else { 2 };
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{} series per family, {DAYS} days hourly each, seeds from 5001; detected: a window with a row at score ≥ {DETECT}",
        per_family
    );
    println!(
        "{:<29} {:<10} {:>5} {:>10} {:>10} {:>9} {:>9}",
        "family", "method", "AP", "p≤1e-4", "equal", "p≤1e-2", "p≤1e-4"
    );
    println!("{:<29} {:<10} {:>5} {:>10} {:>10} {:>19}", "", "", "", "windows", "noise", "ordinary rows at");
    let mut behind = Vec::new();
    for (f, family) in FAMILIES.into_iter().enumerate() {
        let (mut ours, mut gauss) = (Tally::default(), Tally::default());
        for k in 0..per_family {
            let s = series(family, 5001 + 100 * f as u64 + k);
            ours.add(&model_scores(family, &s.values, dir.path()), &s);
            gauss.add(&gaussian_scores(&s.values), &s);
        }
        println!("{}", ours.row(family.name(), "auditwatch"));
        println!("{}", gauss.row("", "gaussian"));
        if gauss.ap > ours.ap {
            behind.push(family.name());
        }
    }
    if !behind.is_empty() {
        eprintln!("the trailing-window Gaussian ranks better than the models on: {}", behind.join(", "));
        std::process::exit(1);
    }
}
