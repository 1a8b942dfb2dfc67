//! Partial pooling of seasonal slots toward their parents.
//!
//! A principal's hour of the week says little on its own (a handful of
//! buckets), its hour of the day more, its overall level most. Each slot's
//! estimate is shrunk toward its parent's by the credibility weight of
//! Bühlmann–Straub (empirical Bayes for a normal means model):
//!
//! ```text
//!   μ_s = m_s + Z_s · (ȳ_s − m_s),   Z_s = n_s·τ² / (n_s·τ² + v_s)
//! ```
//!
//! where `n_s` is the slot's (discounted) number of samples, `v_s` the
//! variance of one sample, and `τ²` how much the slots of the layer really
//! differ from their parents. `τ²` is not a fixed weight: it is estimated
//! from the layer itself by the method of moments, since
//! `E[(ȳ_s − m_s)²] = τ² + v_s/n_s`:
//!
//! ```text
//!   τ² = max(0, (Σ w_s·d_s² − k − 2·√(2k)) / Σ w_s),   w_s = n_s / v_s
//! ```
//!
//! with `k = S − P` degrees of freedom: `S` slots holding samples, `P`
//! parents estimated from the same data. Without real differences
//! `Σ w·d²` is about χ² with `k` degrees of freedom; the estimate counts
//! only what lies beyond two of its standard deviations (`√(2k)`), so noise
//! alone does not unpool the slots: a slot's estimate moves away from its
//! parent's only when the layer's slots differ beyond chance, and an
//! estimate that chased noise would only widen every prediction. A principal whose
//! Mondays look like its Tuesdays gets a τ² near zero and its hour of the
//! week follows its hour of the day; one whose weekends differ from its
//! weekdays gets a large τ² and its own hours of the week.
//!
//! Hand-written: these are a dozen lines of arithmetic over two small
//! arrays, on the path of every closed bucket; no crate offers
//! credibility weights without a data frame around them.

/// One slot as the pooling sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Effective number of samples (discounted).
    pub n: f64,
    /// Deviation of the slot's own mean from its parent's (on whatever
    /// scale the caller pools on: absolute or relative).
    pub d: f64,
    /// Variance of one sample on the same scale.
    pub v: f64,
}

/// Fewer samples than this and a slot says nothing (its deviation is all
/// noise, and dividing by its count would only amplify rounding).
const MIN_SAMPLES: f64 = 1e-3;

/// How much the slots of a layer differ from their parents beyond noise:
/// the method-of-moments τ². `parents` is the number of parent means that
/// were fitted to the same data.
pub fn between_variance(slots: impl Iterator<Item = Slot>, parents: usize) -> f64 {
    let (mut wd2, mut w, mut used) = (0.0, 0.0, 0usize);
    for s in slots {
        if s.n < MIN_SAMPLES || s.v.is_nan() || s.v <= 0.0 || !s.d.is_finite() {
            continue;
        }
        let ws = s.n / s.v;
        wd2 += ws * s.d * s.d;
        w += ws;
        used += 1;
    }
    let dof = used.saturating_sub(parents) as f64;
    if w <= 0.0 || dof <= 0.0 {
        return 0.0;
    }
    ((wd2 - dof - 2.0 * (2.0 * dof).sqrt()) / w).max(0.0)
}

/// The credibility weight of a slot within a layer: [`credibility`] with
/// the layer's τ², or with the slot's own excess when it alone differs
/// beyond chance: its squared deviation beyond `(1 + 2√2)·v/n`, the mean
/// plus two standard deviations of a noise-only deviation's square. A
/// layer where most slots agree pools them; its one slot that really
/// differs (a Monday-morning report among 168 hours) keeps its own.
/// Returns the weight and the τ² it used.
pub fn slot_credibility(slot: Slot, layer_tau2: f64) -> (f64, f64) {
    if slot.n < MIN_SAMPLES || slot.v.is_nan() || slot.v <= 0.0 || !slot.d.is_finite() {
        return (credibility(slot.n, slot.v, layer_tau2), layer_tau2);
    }
    let noise = slot.v / slot.n;
    let tau2 = layer_tau2.max(slot.d * slot.d - (1.0 + 2.0 * std::f64::consts::SQRT_2) * noise);
    (credibility(slot.n, slot.v, tau2), tau2)
}

/// The credibility weight of a slot: how far its estimate moves from its
/// parent's toward its own mean.
pub fn credibility(n: f64, v: f64, tau2: f64) -> f64 {
    if n < MIN_SAMPLES || tau2 <= 0.0 {
        return 0.0;
    }
    if v.is_nan() || v <= 0.0 {
        return 1.0;
    }
    n * tau2 / (n * tau2 + v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_that_do_not_differ_are_pooled_fully() {
        // 24 slots whose deviations are pure noise of variance v/n.
        let slots: Vec<Slot> =
            (0..24).map(|i| Slot { n: 20.0, d: if i % 2 == 0 { 0.2 } else { -0.2 }, v: 1.0 }).collect();
        // E[d²] = 0.05 = v/n: nothing beyond noise, nor does a little more
        // than noise count.
        assert_eq!(between_variance(slots.iter().copied(), 1), 0.0);
        let a_bit_more: Vec<Slot> = slots.iter().map(|s| Slot { d: s.d * 1.2, ..*s }).collect();
        assert_eq!(between_variance(a_bit_more.into_iter(), 1), 0.0);
        assert_eq!(credibility(20.0, 1.0, 0.0), 0.0);
    }

    #[test]
    fn slots_that_differ_keep_their_own_means() {
        let slots: Vec<Slot> =
            (0..24).map(|i| Slot { n: 20.0, d: if i % 2 == 0 { 2.0 } else { -2.0 }, v: 1.0 }).collect();
        let tau2 = between_variance(slots.iter().copied(), 1);
        assert!((tau2 - 3.98).abs() < 0.1, "{tau2}");
        let z = credibility(20.0, 1.0, tau2);
        assert!(z > 0.98, "{z}");
        // A thin slot of the same layer leans on its parent more.
        let thin = credibility(0.5, 1.0, tau2);
        assert!(thin < z && thin > 0.5, "{thin}");
    }

    #[test]
    fn a_lone_slot_that_differs_keeps_its_own_mean() {
        let mut slots: Vec<Slot> = (0..168).map(|_| Slot { n: 3.0, d: 0.0, v: 1.0 }).collect();
        slots[9].d = 3.0;
        let tau2 = between_variance(slots.iter().copied(), 24);
        assert_eq!(tau2, 0.0, "one slot does not make a layer differ");
        assert!(slot_credibility(slots[9], tau2).0 > 0.8, "{:?}", slot_credibility(slots[9], tau2));
        assert_eq!(slot_credibility(Slot { d: 0.5, ..slots[9] }, tau2).0, 0.0, "a deviation within noise");
    }

    #[test]
    fn empty_and_degenerate_slots_are_ignored() {
        let slots =
            [Slot { n: 0.0, d: 5.0, v: 1.0 }, Slot { n: 3.0, d: f64::NAN, v: 1.0 }, Slot { n: 3.0, d: 1.0, v: 0.0 }];
        assert_eq!(between_variance(slots.into_iter(), 0), 0.0);
        assert_eq!(credibility(0.0, 1.0, 1.0), 0.0);
    }
}
