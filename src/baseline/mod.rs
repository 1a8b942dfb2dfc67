//! Baselines: per-principal statistical models of a signal.
//!
//! Owns the models and their scoring. A baseline knows nothing of buckets,
//! watermarks or alerts: it is updated with closed buckets and asked how
//! surprising one is.
//!
//! - [`count`]: how many events an active bucket has ("how much"): a
//!   negative binomial whose dispersion is learnt from the principal's own
//!   bucket-to-bucket variation, with hour-of-week → hour-of-day → overall
//!   partial pooling.
//! - [`activity`]: whether a principal is active at an hour at all
//!   ("when"), and how often it turns up at hours this unusual.
//! - [`value`]: runtimes and costs: robust location and spread on an
//!   `asinh` scale (zero and negative values allowed), the same pooling, a
//!   Student-t tail whose degrees of freedom follow the history and the
//!   errors' shape.
//! - [`pool`]: the credibility weights all three share.
//! - [`calibrate`]: p-values checked against how often they really come
//!   out that small, across a detector's principals and per principal.
//! - [`novelty`]: values never seen before (networks, clients).
//!
//! Tail probabilities come from `statrs`. Calibration is tested, not
//! assumed: `tests/calibration.rs` draws long, overdispersed, seasonal
//! series without anomalies and checks that the fraction of p ≤ α is near α.

pub mod activity;
pub mod calibrate;
pub mod count;
pub mod novelty;
pub mod pool;
pub mod value;

/// A score 0–100 from a tail probability: `-10·log10(p)`, capped at 100.
/// p = 1e-3 scores 30, 1e-6 scores 60, 1e-10 or less scores 100.
pub fn score_of(p_value: f64) -> u8 {
    if p_value.is_nan() || p_value >= 1.0 {
        return 0;
    }
    let p = p_value.max(1e-300);
    (-10.0 * p.log10()).clamp(0.0, 100.0).round() as u8
}

#[cfg(test)]
mod tests {
    #[test]
    fn scores() {
        assert_eq!(super::score_of(1.0), 0);
        assert_eq!(super::score_of(1e-3), 30);
        assert_eq!(super::score_of(1e-6), 60);
        assert_eq!(super::score_of(0.0), 100);
        assert_eq!(super::score_of(f64::NAN), 0);
    }
}
