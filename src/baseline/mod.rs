//! Baselines: per-principal statistical models of a signal.
//!
//! Owns the models and their scoring: [`count::SeasonalCounts`], a
//! Gamma–Poisson (negative binomial predictive) model of counts per bucket
//! with forgetting and an hour-of-day × weekday/weekend profile. Tail
//! probabilities come from `statrs`. A baseline knows nothing of buckets,
//! watermarks or alerts: it is updated with closed buckets and asked how
//! surprising a count is.

pub mod count;
pub mod novelty;
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
