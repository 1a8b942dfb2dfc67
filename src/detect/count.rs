//! The count detectors: count one signal per principal and bucket, and
//! judge each closed bucket against the principal's seasonal baseline.
//!
//! Two questions, two kinds of definition, one bucket machinery:
//!
//! - **How much** (`model = "seasonal_negative_binomial"`: query
//!   frequency, permission changes, failed logins, ...): is this active
//!   bucket's count unusual for an hour the principal is active in
//!   ([`SeasonalCounts`])? These carry the high severities.
//! - **When** (`model = "hour_novelty"`: unusual hours): is the principal
//!   active at an hour it rarely works, more often than it usually turns up
//!   at such hours ([`SeasonalActivity`])? A low-severity finding of its
//!   own, whatever the volume.
//!
//! Per principal it keeps the baseline, first-seen time, suppression state
//! and at most the buckets the watermark has not yet closed. Open buckets
//! (with their evidence strings) are recycled through a pool, so the
//! steady state does not allocate. Buckets in which a principal did
//! nothing are folded into its baseline when it next closes a bucket
//! (bounded by [`MAX_ZERO_FILL`]).
//!
//! **Peers.** A principal's baseline starts from its peers' (the
//! principals of its kind, or of its group when an access snapshot names
//! enough of them): their mean count in an active bucket, how much
//! principals differ from one another, their dispersion, their hours of
//! the day and how often they turn up at unusual hours. A newcomer is
//! thus neither silent nor alarming: it is as uncertain as its peers
//! differ. Peers are read as they were before a bucket, so the order
//! principals close in within a bucket cannot matter.

use super::buckets::{Bucket, Table, Wheel, existing, first_seen_of, open_start, state_of};
use super::definition::{Definition, Model};
use super::evidence::Evidence;
use super::{Fed, round2};
use crate::alert::{Alert, SCHEMA_VERSION, Severity, alert_id};
use crate::baseline::activity::{ActivityPrior, BINS, SeasonalActivity, Timing, bin_of};
use crate::baseline::calibrate::{Exceedances, OwnTail};
use crate::baseline::count::{CountPrior, DAY_HOURS, Learnt, Prediction, SeasonalCounts, hour_of_day};
use crate::baseline::score_of;
use crate::event::{Event, PrincipalKind};
use crate::state::{Interner, PrincipalId};
use crate::time::{EventTime, MS_PER_DAY, MS_PER_HOUR};

/// The most empty buckets folded into a baseline at once: four weeks of
/// hours. Past that the forgetting factor has erased the older history
/// anyway, so the rest is skipped.
pub const MAX_ZERO_FILL: i64 = 24 * 28;

/// A bucket not yet closed (fields set by `Bucket::reset` when opened).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct OpenBucket {
    start: i64,
    count: u64,
    /// The smallest workspace id seen in the bucket (a principal active in
    /// two workspaces in one hour is reported under one, whatever the
    /// arrival order).
    workspace: u64,
    evidence: Evidence,
}

impl Bucket for OpenBucket {
    fn start(&self) -> i64 {
        self.start
    }

    fn reset(&mut self, start: i64) {
        self.start = start;
        self.count = 0;
        self.workspace = u64::MAX;
        self.evidence.clear();
    }
}

/// The previous bucket's count and prediction, for the shift check.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Previous {
    start: i64,
    count: u64,
    prediction: Prediction,
}

/// A principal's baseline, by the question the detector asks.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Baseline {
    Volume(SeasonalCounts),
    Timing(SeasonalActivity),
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PrincipalState {
    kind: PrincipalKind,
    /// Peer group (0: none; see `CountDetector::observe`).
    group: u32,
    previous: Option<Previous>,
    /// Start of the last bucket folded into the baseline.
    last_closed: Option<i64>,
    suppressed_until: i64,
    /// How often its calibrated p-values come out small.
    tail: OwnTail,
    baseline: Baseline,
    open: Vec<OpenBucket>,
}

/// Fewest principals (that have closed a bucket) for peers to stand in
/// for a principal's own history; fewer, and the global priors do.
const MIN_PEERS: u32 = 5;
/// Observations the global prior counts for against the peers' figures.
const PEER_PRIOR_WEIGHT: f64 = 3.0;
/// The peer slot every principal of the detector feeds, whatever its kind:
/// the fallback of a kind with too few principals of its own.
const ALL: usize = 4;
/// Buckets of a principal's own the peers' kernel evidence counts for.
const KERNEL_PRIOR_BUCKETS: f64 = 20.0;

/// What the principals of one kind (or one group) do, pooled: the priors
/// a principal's baseline starts from. Forgets by event time like the
/// baselines.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Peers {
    last: i64,
    /// Principals that have closed a bucket.
    principals: u32,
    /// Active buckets and the sum of their counts.
    active: f64,
    sum: f64,
    /// Pooled dispersion sums (as in `SeasonalCounts`).
    disp_num: f64,
    disp_den: f64,
    disp_n: f64,
    /// How much principals differ: Σ (ln²(own mean / peers' mean) − the
    /// noise of the own mean on that scale), and how many.
    spread_sq: f64,
    spread_n: f64,
    /// The principals' evidence for the lognormal kernel: Σ increments per
    /// active bucket, and how many.
    kernel_sum: f64,
    kernel_n: f64,
    /// Buckets (active or not) and active ones, overall and per hour of the day.
    buckets: f64,
    busy: f64,
    day_n: [f64; DAY_HOURS],
    day_a: [f64; DAY_HOURS],
    /// Active buckets per unusualness bin, and their total.
    unusual: [f64; BINS],
    unusual_n: f64,
    /// How often the peers' raw p-values come out small (see `baseline::calibrate`).
    tail: Exceedances,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            last: i64::MIN,
            principals: 0,
            active: 0.0,
            sum: 0.0,
            disp_num: 0.0,
            disp_den: 0.0,
            disp_n: 0.0,
            spread_sq: 0.0,
            spread_n: 0.0,
            kernel_sum: 0.0,
            kernel_n: 0.0,
            buckets: 0.0,
            busy: 0.0,
            day_n: [0.0; DAY_HOURS],
            day_a: [0.0; DAY_HOURS],
            unusual: [0.0; BINS],
            unusual_n: 0.0,
            tail: Exceedances::default(),
        }
    }
}

impl Peers {
    fn enough(&self) -> bool {
        self.principals >= MIN_PEERS
    }

    fn mean(&self) -> Option<f64> {
        (self.active > 1e-3).then(|| self.sum / self.active)
    }

    /// The prior of a principal's count baseline: the peers' figures, each
    /// shrunk toward the global prior by how little the peers have seen
    /// ([`PEER_PRIOR_WEIGHT`] observations' worth), so that a sparse signal
    /// (failed logins: a handful of single mistypes among all the peers)
    /// still says what it has seen. `global` is the definition's prior, used
    /// alone when there are not enough peers.
    fn count_prior(&self, global: CountPrior) -> CountPrior {
        if !self.enough() {
            return global;
        }
        let k = PEER_PRIOR_WEIGHT;
        let mean = (self.sum + k * global.mean) / (self.active + k);
        let between = ((self.spread_sq.max(0.0) + k * global.between.ln_1p()) / (self.spread_n + k)).exp() - 1.0;
        let dispersion = if self.disp_n > 1e-3 && self.disp_den > 0.0 {
            let mean_den = self.disp_den / self.disp_n;
            (self.disp_num + k * global.dispersion * mean_den) / (self.disp_den + k * mean_den)
        } else {
            global.dispersion
        };
        CountPrior {
            mean,
            between: between.clamp(0.02, 10.0),
            dispersion: dispersion.clamp(0.0, 50.0),
            // The peers' evidence per bucket, as worth KERNEL_PRIOR_BUCKETS
            // buckets of a newcomer's own.
            kernel: ((self.kernel_sum + k * global.kernel / KERNEL_PRIOR_BUCKETS) / (self.kernel_n + k)
                * KERNEL_PRIOR_BUCKETS)
                .clamp(-5.0, 5.0),
        }
    }

    /// The prior of a principal's timing baseline.
    fn activity_prior(&self) -> ActivityPrior {
        let global = ActivityPrior::default();
        if !self.enough() || self.buckets < 1.0 {
            return global;
        }
        let active = ((self.busy + global.active) / (self.buckets + 1.0)).clamp(1e-3, 0.999);
        let mut prior = ActivityPrior { active, ..global };
        for h in 0..DAY_HOURS {
            prior.day[h] = ((self.day_a[h] + active) / (self.day_n[h] + 1.0)).clamp(1e-4, 0.999);
        }
        for b in 0..BINS {
            prior.unusual[b] = (self.unusual[b] + global.unusual[b]) / (self.unusual_n + 1.0);
        }
        prior
    }

    fn decay_to(&mut self, t: i64, keep_per_day: f64) {
        if self.last != i64::MIN && t > self.last {
            let k = keep_per_day.powf((t - self.last) as f64 / MS_PER_DAY as f64);
            for x in [
                &mut self.active,
                &mut self.sum,
                &mut self.disp_num,
                &mut self.disp_den,
                &mut self.disp_n,
                &mut self.spread_sq,
                &mut self.spread_n,
                &mut self.kernel_sum,
                &mut self.kernel_n,
                &mut self.buckets,
                &mut self.busy,
                &mut self.unusual_n,
            ] {
                *x *= k;
            }
            for x in self.day_n.iter_mut().chain(&mut self.day_a).chain(&mut self.unusual) {
                *x *= k;
            }
            self.tail.decay(k);
        }
        self.last = self.last.max(t);
    }

    /// A bucket of a peer: idle (`count` 0) or active.
    fn bucket(&mut self, t: i64, active: bool, keep_per_day: f64) {
        self.decay_to(t, keep_per_day);
        let h = hour_of_day(EventTime(t));
        self.buckets += 1.0;
        self.day_n[h] += 1.0;
        if active {
            self.busy += 1.0;
            self.day_a[h] += 1.0;
        }
    }

    /// An active bucket of a peer's count baseline: its count, its own level
    /// with it (mean, and that mean's relative variance), and what it
    /// added to the dispersion and kernel evidence.
    fn volume(&mut self, count: u64, own: Option<(f64, f64)>, learnt: Option<Learnt>) {
        if let (Some((mean, noise)), Some(peers)) = (own, self.mean())
            && mean > 0.0
        {
            // Bounded: one principal's incident is not how principals differ.
            let l = (mean / peers).ln().clamp(-2.0, 2.0);
            self.spread_sq += l * l - noise;
            self.spread_n += 1.0;
        }
        self.active += 1.0;
        self.sum += count as f64;
        if let Some(Learnt { dispersion: (num, den), kernel }) = learnt {
            self.kernel_sum += kernel;
            self.kernel_n += 1.0;
            self.disp_num += num;
            self.disp_den += den;
            self.disp_n += 1.0;
        }
    }

    /// An active bucket of a peer's timing baseline, at an hour this unusual.
    fn timing(&mut self, usual: f64) {
        self.unusual[bin_of(usual)] += 1.0;
        self.unusual_n += 1.0;
    }
}

/// Outcome counters of a detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CountDetectorStats {
    pub late: u64,
    pub buckets_scored: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub too_young: u64,
    /// Buckets of principals with too little history of their own that
    /// were judged mostly on their peers' baseline.
    pub judged_by_peers: u64,
    /// Alerts withheld because the bucket and the one before it together were not anomalous.
    pub shifted: u64,
}

/// One count detector (e.g. query frequency, unusual hours).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CountDetector {
    def: Definition,
    principals: Table<PrincipalState>,
    /// Bucket start → principals with that bucket open.
    wheel: Wheel<OpenBucket>,
    /// Peer statistics: slots 0–3 per principal kind, 4 for every
    /// principal ([`ALL`]), then one per (kind, peer group) as
    /// `group_slots` assigns them.
    peers: Vec<Peers>,
    group_slots: rustc_hash::FxHashMap<(usize, u32), usize>,
    pub stats: CountDetectorStats,
}

fn kind_index(k: PrincipalKind) -> usize {
    match k {
        PrincipalKind::User => 0,
        PrincipalKind::ServicePrincipal => 1,
        PrincipalKind::System => 2,
        PrincipalKind::Unknown => 3,
    }
}

/// How unusually quiet the bucket before must have been (lower-tail
/// p-value) for a busy bucket to be read as a shift in time.
const SHIFT_QUIET: f64 = 0.05;

/// Own active buckets below which a principal is said to be judged on its
/// peers (the figure in `judged_by_peers` and the summary's wording).
const OWN_SAMPLES: f64 = 8.0;

impl CountDetector {
    pub fn new(def: Definition) -> Self {
        CountDetector {
            def,
            principals: Vec::new(),
            wheel: Wheel::default(),
            peers: vec![Peers::default(); 5],
            group_slots: rustc_hash::FxHashMap::default(),
            stats: CountDetectorStats::default(),
        }
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// When its earliest open bucket ends (`i64::MAX` with none open): it
    /// has something to close once its watermark reaches this.
    pub fn due_at(&self) -> i64 {
        self.wheel.due_at(self.def.bucket_ms)
    }

    fn timing(&self) -> bool {
        self.def.model == Model::UnusualHours
    }

    /// Counts `ev` for `principal` (of `kind`) unless its bucket is already
    /// closed. `group` gives its peer group (0 for none); it is asked once,
    /// when the principal is first seen.
    pub fn observe(
        &mut self,
        principal: PrincipalId,
        kind: PrincipalKind,
        group: impl FnOnce() -> u32,
        ev: &Event,
        watermark: EventTime,
    ) -> Fed {
        let Some(start) = open_start(ev.time, self.def.bucket_ms, watermark) else {
            self.stats.late += 1;
            return Fed::Late;
        };
        let timing = self.timing();
        let state = state_of(&mut self.principals, principal, || PrincipalState {
            kind,
            group: group(),
            previous: None,
            last_closed: None,
            suppressed_until: i64::MIN,
            tail: OwnTail::default(),
            baseline: if timing {
                Baseline::Timing(SeasonalActivity::default())
            } else {
                Baseline::Volume(SeasonalCounts::default())
            },
            open: Vec::with_capacity(2),
        });
        if state.last_closed.is_some_and(|c| start <= c) {
            // Its bucket was folded already (only possible when the bucket
            // was closed by the end-of-input flush): late by the same rule.
            self.stats.late += 1;
            return Fed::Late;
        }
        let bucket = self.wheel.open(&mut state.open, principal, start);
        bucket.count += 1;
        bucket.workspace = bucket.workspace.min(ev.workspace);
        bucket.evidence.offer(ev.time.0, &ev.id, self.def.evidence_limit);
        Fed::Taken
    }

    /// Closes every bucket that ends at or before `watermark`, appending
    /// alerts in (bucket, principal name) order. `first_seen` gives, per
    /// principal, its earliest event of any kind: the baseline starts
    /// there, so a principal whose first failed login is an attack has two
    /// weeks of zero failed logins behind it, not no history at all. Read
    /// at close time, when everything before the watermark has arrived, it
    /// does not depend on arrival order.
    pub fn advance(&mut self, watermark: EventTime, names: &Interner, first_seen: &[EventTime], out: &mut Vec<Alert>) {
        while let Some((start, ids)) = self.wheel.next_due(watermark, self.def.bucket_ms, names) {
            // Peers are read as they were before this bucket, so that the
            // order principals close in within the bucket cannot matter.
            let peers_before = self.peers.clone();
            for id in ids {
                let first = first_seen_of(first_seen, id, start);
                self.close(id, start, first, &peers_before, names, out);
            }
        }
    }

    /// The peer slots a principal feeds: its kind's, and its group's.
    fn peer_slots(&mut self, kind: PrincipalKind, group: u32) -> (usize, Option<usize>) {
        let kind_slot = kind_index(kind);
        let group_slot = (group != 0).then(|| {
            let next = self.peers.len();
            *self.group_slots.entry((kind_slot, group)).or_insert(next)
        });
        if group_slot == Some(self.peers.len()) {
            self.peers.push(Peers::default());
        }
        (kind_slot, group_slot)
    }

    fn close(
        &mut self,
        id: PrincipalId,
        start: i64,
        first_seen: EventTime,
        peers_before: &[Peers],
        names: &Interner,
        out: &mut Vec<Alert>,
    ) {
        let Some(state) = existing(&mut self.principals, id) else {
            return;
        };
        let (kind, group) = (state.kind, state.group);
        let (kind_slot, group_slot) = self.peer_slots(kind, group);
        let def = &self.def;
        let keep = def.forgetting;
        let Some(state) = existing(&mut self.principals, id) else {
            return;
        };
        let Some(bucket) = Wheel::take(&mut state.open, start) else {
            return;
        };
        // Its group's peers when there are enough of them, else its kind's,
        // else every principal's.
        let in_group = group_slot.and_then(|g| peers_before.get(g)).filter(|p| p.enough());
        let of_kind = Some(&peers_before[kind_slot]).filter(|p| p.enough());
        let peers = in_group.or(of_kind).unwrap_or(&peers_before[ALL]);
        let slots: [Option<usize>; 3] = [Some(kind_slot), group_slot, Some(ALL)];
        let count_prior = peers.count_prior(def.count_prior);
        let activity_prior = peers.activity_prior();

        // Fold the empty buckets since the last closed one (or since the
        // principal was first seen).
        let first_bucket = first_seen.floor(def.bucket_ms).0;
        let last = state.last_closed.unwrap_or(first_bucket - def.bucket_ms);
        let gap = (start - last) / def.bucket_ms - 1;
        let skip = (gap - MAX_ZERO_FILL).max(0);
        for k in (skip + 1)..=gap {
            let t = EventTime(last + k * def.bucket_ms);
            match &mut state.baseline {
                Baseline::Volume(m) => {
                    if k == gap {
                        let prediction = m.predict(t, &count_prior);
                        state.previous = Some(Previous { start: t.0, count: 0, prediction });
                    }
                    m.update(t, 0, None, keep);
                }
                Baseline::Timing(m) => m.update(t, None, keep),
            }
            for s in slots.iter().flatten() {
                self.peers[*s].bucket(t.0, false, keep);
            }
        }
        let t = EventTime(start);
        let end = start + def.bucket_ms;
        let age_ms = end - first_seen.0;
        let young = age_ms < def.min_history_ms;
        if state.last_closed.is_none() {
            for s in slots.iter().flatten() {
                self.peers[*s].principals += 1;
            }
        }
        for s in slots.iter().flatten() {
            self.peers[*s].bucket(start, true, keep);
        }
        state.last_closed = Some(start);
        self.stats.buckets_scored += 1;
        let principal = names.name(id);
        let context = |peer_value: Option<f64>, samples: f64| {
            let age_hours = round2(age_ms as f64 / MS_PER_HOUR as f64);
            def.context(kind, age_hours, round2(samples), peer_value.map(round2), bucket.count)
        };

        // Judge, then learn.
        let judged = match &mut state.baseline {
            Baseline::Volume(m) => {
                let prediction = m.predict(t, &count_prior);
                let previous = state.previous.filter(|p| p.start == start - def.bucket_ms);
                state.previous = Some(Previous { start, count: bucket.count, prediction });
                let contribution = m.update(t, bucket.count, Some(&prediction), keep);
                // Its level with this bucket in: a principal's first active
                // bucket already says something about how principals differ.
                let own = m.own_level(&count_prior);
                for s in slots.iter().flatten() {
                    self.peers[*s].volume(bucket.count, own, contribution);
                }
                Judged::Volume { prediction, previous }
            }
            Baseline::Timing(m) => {
                let timing = m.judge(t, &activity_prior);
                m.update(t, Some(&timing), keep);
                for s in slots.iter().flatten() {
                    self.peers[*s].timing(timing.usual());
                }
                Judged::Timing(timing)
            }
        };
        let (p_value, could_fire) = match &judged {
            // The tail probability is computed for a count large enough to
            // alert and for every bucket above half a standard deviation
            // over its mean (none below can reach p ≤ 0.1), so that the
            // p-values' calibration counts all buckets; the score is the model's
            // p-value calibrated against its peers', then tempered by the
            // principal's own excess of small ones.
            Judged::Volume { prediction, .. } => {
                let could = bucket.count >= def.min_count && bucket.count as f64 >= def.min_ratio * prediction.expected;
                let raw = if could || bucket.count as f64 >= prediction.expected + 0.5 * prediction.variance.sqrt() {
                    prediction.p_value(bucket.count)
                } else {
                    1.0
                };
                let calibrated = peers.tail.calibrate(raw);
                let p = state.tail.apply(calibrated);
                state.tail.observe(calibrated);
                for s in slots.iter().flatten() {
                    self.peers[*s].tail.observe(raw);
                }
                // A bucket's count is judged over all the principal's
                // buckets at that hour of the day, not only its active
                // ones: P(X ≥ x) = P(active) · P(X ≥ x | active). Fifty
                // queries at an hour the principal is rarely active in are
                // rarer than fifty at an hour it works every day; an
                // ordinary amount at an unusual hour stays far from any
                // threshold, since P(active) cannot be learnt below about a
                // twentieth with twenty days of memory.
                (p * prediction.active.clamp(0.0, 1.0), could)
            }
            Judged::Timing(timing) => (timing.p_value, bucket.count >= def.min_count),
        };
        let s = score_of(p_value);
        let mut fires = could_fire && s >= def.threshold;
        // A shift in time is not a burst: a job that ran late moves its
        // events into the next hour, which then looks busy while the hour
        // before looks unusually quiet. After such a quiet hour the bucket
        // must also be anomalous together with it.
        if fires
            && let Judged::Volume { prediction, previous: Some(prev) } = &judged
            && prev.prediction.p_value_below(prev.count) < SHIFT_QUIET
            && score_of(prediction.p_value_with(&prev.prediction, prev.count + bucket.count)) < def.threshold
        {
            fires = false;
            self.stats.shifted += 1;
        }
        if fires && young {
            self.stats.too_young += 1;
            fires = false;
        }
        if fires && start < state.suppressed_until {
            self.stats.suppressed += 1;
            fires = false;
        }
        if fires {
            state.suppressed_until = end + def.suppress_ms;
            self.stats.alerts += 1;
            let severity = if s >= def.high_score { def.severity.max(Severity::High) } else { def.severity };
            let (summary, expected, (low, high), ctx) = match &judged {
                Judged::Volume { prediction, .. } => {
                    let by_peers = prediction.samples < OWN_SAMPLES;
                    if by_peers {
                        self.stats.judged_by_peers += 1;
                    }
                    let interval = prediction.interval();
                    let interval = (round2(interval.0), round2(interval.1));
                    let e = Explained {
                        kind,
                        start,
                        end,
                        count: bucket.count,
                        expected: prediction.expected,
                        interval,
                        age_ms,
                        samples: prediction.samples,
                        peers: peers.enough().then(|| (peers.principals, count_prior.mean, in_group.is_some())),
                    };
                    (
                        volume_summary(def, principal, &e),
                        round2(prediction.expected),
                        interval,
                        context(peers.enough().then_some(count_prior.mean), prediction.samples),
                    )
                }
                Judged::Timing(timing) => {
                    let h = hour_of_day(t);
                    let peer_rate = peers.enough().then_some(activity_prior.day[h]);
                    (
                        timing_summary(kind, principal, start, end, bucket.count, timing, peer_rate),
                        round4(timing.usual()),
                        (0.0, 1.0),
                        context(peer_rate.map(round4), timing.active_samples),
                    )
                }
            };
            out.push(Alert {
                schema_version: SCHEMA_VERSION,
                alert_id: alert_id(&def.name, principal, start, &def.config_version),
                detector: def.name.clone(),
                principal: principal.to_owned(),
                workspace_id: bucket.workspace.to_string(),
                window_start: EventTime(start).to_string(),
                window_end: EventTime(end).to_string(),
                observed: bucket.count as f64,
                expected,
                expected_low: low,
                expected_high: high,
                score: s,
                p_value,
                severity,
                summary,
                evidence: bucket.evidence.ids(),
                corrects: None,
                triage: def.triage(severity, s),
                context: ctx,
            });
        }
        self.wheel.recycle(bucket);
    }

    /// Principals with state.
    pub fn principals(&self) -> usize {
        self.principals.iter().filter(|p| p.is_some()).count()
    }

    /// Bytes of state per tracked principal (baseline, bookkeeping and the
    /// slot in the principal table), excluding open buckets' evidence.
    pub fn bytes_per_principal() -> usize {
        std::mem::size_of::<Option<Box<PrincipalState>>>() + std::mem::size_of::<PrincipalState>()
    }
}

/// What a closed bucket was judged to be.
enum Judged {
    Volume { prediction: Prediction, previous: Option<Previous> },
    Timing(Timing),
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn what(def: &Definition, n: u64) -> String {
    use crate::event::Signal::*;
    let (one, many) = match def.signal {
        QueryFrequency => ("query or command", "queries and commands"),
        PermissionChange => ("permission change", "permission changes"),
        JobRun => ("job run event", "job run events"),
        Cost => ("billing record", "billing records"),
        FailedLogin => ("failed login", "failed logins"),
        TokenCreation => ("token created", "tokens created"),
        SecretRead => ("secret read", "secret reads"),
        DataDownload => ("download or export", "downloads and exports"),
        Source => ("action naming its source", "actions naming their source"),
        Activity => ("action", "actions"),
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What a volume summary is made of.
struct Explained {
    kind: PrincipalKind,
    start: i64,
    end: i64,
    count: u64,
    expected: f64,
    interval: (f64, f64),
    age_ms: i64,
    /// The principal's own active buckets behind the baseline.
    samples: f64,
    /// Peers: how many, their mean active-bucket count, and whether of its group.
    peers: Option<(u32, f64, bool)>,
}

fn kind_names(kind: PrincipalKind) -> (&'static str, &'static str) {
    match kind {
        PrincipalKind::User => ("User", "users"),
        PrincipalKind::ServicePrincipal => ("Service principal", "service principals"),
        PrincipalKind::System => ("System identity", "system identities"),
        PrincipalKind::Unknown => ("Principal", "principals"),
    }
}

/// "between 02:00–03:00 UTC on Thursday 2024-01-11"
fn when(start: i64, end: i64) -> String {
    let t = EventTime(start);
    let day = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][t.day_of_week() as usize];
    format!("between {}–{} UTC on {day} {}", hhmm(start), hhmm(end), &t.to_string()[..10])
}

fn age(ms: i64) -> String {
    if ms < 72 * MS_PER_HOUR {
        format!("{:.0} hours", ms as f64 / MS_PER_HOUR as f64)
    } else {
        format!("{:.0} days", ms as f64 / MS_PER_DAY as f64)
    }
}

fn volume_summary(def: &Definition, principal: &str, e: &Explained) -> String {
    let ratio = e.count as f64 / e.expected.max(0.01);
    let (low, high) = e.interval;
    let (kind, kinds) = kind_names(e.kind);
    let peers = match e.peers {
        Some((n, mean, in_group)) => {
            format!("; {n} {kinds}{} average {mean:.1} in an active hour", if in_group { " of its group" } else { "" })
        }
        None => String::new(),
    };
    let basis = if e.samples < OWN_SAMPLES {
        format!("judged mostly on its peers: it was first seen {} earlier", age(e.age_ms))
    } else {
        format!("judged against {} of its own history", age(e.age_ms))
    };
    format!(
        "{kind} {principal} had {} {}, about {ratio:.0}× the {:.1} expected of it in an active hour at that time (95% range {low:.0}–{high:.0}), {basis}{peers}.",
        what(def, e.count),
        when(e.start, e.end),
        e.expected,
    )
}

fn percent(p: f64) -> String {
    if p >= 0.01 { format!("{:.0}%", p * 100.0) } else { format!("{:.1}%", p * 100.0) }
}

fn timing_summary(
    kind: PrincipalKind,
    principal: &str,
    start: i64,
    end: i64,
    count: u64,
    t: &Timing,
    peer_rate: Option<f64>,
) -> String {
    let (kind, _) = kind_names(kind);
    let peers = peer_rate.map_or(String::new(), |p| format!(" (its peers: {})", percent(p)));
    format!(
        "{kind} {principal} was active {} ({count} actions), an hour of the day it is active on about {} of days{peers} and {} at that hour of the week; {:.0} of its last {:.0} active hours were at an hour this unusual. This says when, not how much: the volume detectors judge the amount.",
        when(start, end),
        percent(t.day),
        percent(t.week),
        t.as_unusual,
        t.active_samples,
    )
}

fn hhmm(ms: i64) -> String {
    let t = EventTime(ms);
    let minutes = ms.div_euclid(60_000).rem_euclid(60);
    format!("{:02}:{minutes:02}", t.hour_of_day())
}

#[cfg(test)]
mod tests;
