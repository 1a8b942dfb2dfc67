//! The count detector: counts one signal per principal and bucket, and
//! scores each closed bucket against the principal's seasonal baseline.
//!
//! Per principal it keeps the baseline, first-seen time, suppression state
//! and at most the buckets the watermark has not yet closed. Open buckets
//! (with their evidence strings) are recycled through a pool so that the
//! steady state does not allocate. Buckets in which a principal did nothing are folded into its
//! baseline as zeros when it next closes a bucket (bounded by
//! [`MAX_ZERO_FILL`]).

use super::buckets::{Bucket, Table, Wheel, existing, first_seen_of, open_start, state_of};
use super::definition::Definition;
use super::evidence::Evidence;
use super::round2;
use crate::alert::{Alert, AlertContext, SCHEMA_VERSION, Severity, alert_id};
use crate::baseline::count::{Prediction, SLOTS, SeasonalCounts, slot_of};
use crate::baseline::score_of;
use crate::event::{Event, PrincipalKind};
use crate::state::{Interner, PrincipalId};
use crate::time::{EventTime, MS_PER_HOUR};

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

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PrincipalState {
    kind: PrincipalKind,
    /// Peer group (0: none; see `CountDetector::observe`).
    group: u32,
    previous: Option<Previous>,
    /// Start of the last bucket folded into the baseline.
    last_closed: Option<i64>,
    suppressed_until: i64,
    baseline: SeasonalCounts,
    open: Vec<OpenBucket>,
}

/// Peer statistics over the principals of one kind, per slot: the
/// discounted mean count (empty hours count as zeros, folded in when a
/// principal next closes a bucket) and the busiest bucket of any peer.
///
/// A principal too new for a baseline of its own (or with too little of it
/// at an hour) is judged against its peers by the busiest of them: activity
/// differs across principals by factors (a few heavy users do ten times
/// what most do), so no simple distribution over peers is both quiet for a
/// heavy newcomer and alert to a takeover. "More than twice what the
/// busiest peer has recently done at this hour, and far above its own
/// first hours" is both, and says itself in a sentence. Peers are the
/// principals of the same kind and, when an access snapshot names their
/// groups, of the same group (with enough members; else the kind).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Peers {
    #[serde(with = "serde_big_array::BigArray")]
    sum: [f64; SLOTS],
    #[serde(with = "serde_big_array::BigArray")]
    n: [f64; SLOTS],
    /// The busiest bucket of any peer, fading by about one forgetting step
    /// a day.
    #[serde(with = "serde_big_array::BigArray")]
    high: [f64; SLOTS],
    /// Principals of this kind that have closed a bucket.
    principals: u32,
}

impl Default for Peers {
    fn default() -> Self {
        Peers { sum: [0.0; SLOTS], n: [0.0; SLOTS], high: [0.0; SLOTS], principals: 0 }
    }
}

/// Fewest other principals of a kind, and buckets in a slot, for their
/// busiest to stand in for a new principal's baseline.
const MIN_PEERS: u32 = 5;
const MIN_PEER_BUCKETS: f64 = 10.0;
/// How many times the busiest peer a newcomer must exceed.
const PEER_MARGIN: f64 = 2.0;

/// What the peers did at an hour.
#[derive(Debug, Clone, Copy)]
struct PeerView {
    mean: f64,
    busiest: f64,
}

impl Peers {
    fn mean(&self, slot: usize) -> Option<f64> {
        (self.n[slot] > 0.0).then(|| self.sum[slot] / self.n[slot])
    }

    /// The peers at `slot`, when there are enough of them to say. A slot
    /// seen too rarely (the first weekend) borrows the same hour on the
    /// other kind of day.
    fn view(&self, slot: usize) -> Option<PeerView> {
        if self.principals <= MIN_PEERS {
            return None;
        }
        let slot = [slot, (slot + 24) % SLOTS].into_iter().find(|&s| self.n[s] >= MIN_PEER_BUCKETS)?;
        Some(PeerView { mean: self.sum[slot] / self.n[slot], busiest: self.high[slot] })
    }

    fn update(&mut self, slot: usize, count: f64, keep: f64) {
        self.sum[slot] = self.sum[slot] * keep + count;
        self.n[slot] = self.n[slot] * keep + 1.0;
        // Each principal updates the slot once a day: fade by one step per
        // day, not per update.
        let fade = keep.powf(1.0 / self.principals.max(1) as f64);
        self.high[slot] = (self.high[slot] * fade).max(count);
    }
}

/// What a bucket was judged against.
#[derive(Debug, Clone, Copy)]
enum Basis {
    /// The principal's own baseline.
    Own,
    /// A principal too new for its own, or with too little of it at this
    /// hour: its own short history, and only when it is also more than
    /// [`PEER_MARGIN`] times busier than the busiest of its peers.
    Peers { principals: u32, mean: f64, busiest: f64, in_group: bool },
}

/// Discounted buckets of its own at an hour (slot and hour of week) a
/// principal needs to be judged on its own there.
const MIN_OWN_SAMPLES: f64 = 3.0;

/// Outcome counters of a detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CountDetectorStats {
    pub late: u64,
    pub buckets_scored: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub too_young: u64,
    /// Buckets of principals too new for a baseline of their own that were
    /// judged against their peers instead.
    pub judged_by_peers: u64,
    /// Alerts withheld because the bucket and the one before it together were not anomalous.
    pub shifted: u64,
}

/// One count detector (e.g. query frequency).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CountDetector {
    def: Definition,
    principals: Table<PrincipalState>,
    /// Bucket start → principals with that bucket open.
    wheel: Wheel<OpenBucket>,
    /// Peer statistics: slots 0–3 per principal kind, then one per (kind,
    /// peer group) as `group_slots` assigns them.
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

impl CountDetector {
    pub fn new(def: Definition) -> Self {
        CountDetector {
            def,
            principals: Vec::new(),
            wheel: Wheel::default(),
            peers: vec![Peers::default(); 4],
            group_slots: rustc_hash::FxHashMap::default(),
            stats: CountDetectorStats::default(),
        }
    }

    pub fn definition(&self) -> &Definition {
        &self.def
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
    ) {
        let Some(start) = open_start(ev.time, self.def.bucket_ms, watermark) else {
            self.stats.late += 1;
            return;
        };
        let state = state_of(&mut self.principals, principal, || PrincipalState {
            kind,
            group: group(),
            previous: None,
            last_closed: None,
            suppressed_until: i64::MIN,
            baseline: SeasonalCounts::default(),
            open: Vec::with_capacity(2),
        });
        if state.last_closed.is_some_and(|c| start <= c) {
            // Its bucket was folded already (only possible when the bucket
            // was closed by the end-of-input flush): late by the same rule.
            self.stats.late += 1;
            return;
        }
        let bucket = self.wheel.open(&mut state.open, principal, start);
        bucket.count += 1;
        bucket.workspace = bucket.workspace.min(ev.workspace);
        bucket.evidence.offer(ev.time.0, &ev.id, self.def.evidence_limit);
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
            let slot = slot_of(EventTime(start));
            // Peers are read as they were before this bucket, so that the
            // order principals close in within the bucket cannot matter.
            let peers_before = self.peers.clone();
            for id in ids {
                let first = first_seen_of(first_seen, id, start);
                self.close(id, start, slot, first, &peers_before, names, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn close(
        &mut self,
        id: PrincipalId,
        start: i64,
        slot: usize,
        first_seen: EventTime,
        peers_before: &[Peers],
        names: &Interner,
        out: &mut Vec<Alert>,
    ) {
        let def = &self.def;
        let Some(state) = existing(&mut self.principals, id) else {
            return;
        };
        let Some(bucket) = Wheel::take(&mut state.open, start) else {
            return;
        };
        // Fold the empty buckets since the last closed one (or since the
        // principal was first seen).
        let first_bucket = first_seen.floor(def.bucket_ms).0;
        if let Some(last) = state.last_closed.or(Some(first_bucket - def.bucket_ms)) {
            let gap = (start - last) / def.bucket_ms - 1;
            let skip = (gap - MAX_ZERO_FILL).max(0);
            for k in (skip + 1)..=gap {
                let t = EventTime(last + k * def.bucket_ms);
                if k == gap {
                    state.previous = Some(Previous { start: t.0, count: 0, prediction: state.baseline.predict(t) });
                }
                state.baseline.update(t, 0.0, def.forgetting);
                self.peers[kind_index(state.kind)].update(slot_of(t), 0.0, def.forgetting);
                if let Some(&g) = self.group_slots.get(&(kind_index(state.kind), state.group)) {
                    self.peers[g].update(slot_of(t), 0.0, def.forgetting);
                }
            }
        }
        let own = state.baseline.predict(EventTime(start));
        let previous = state.previous.filter(|p| p.start == start - def.bucket_ms);
        state.previous = Some(Previous { start, count: bucket.count, prediction: own });
        // Its group's peers when there are enough of them, else its kind's.
        let kind_slot = kind_index(state.kind);
        let group_slot = (state.group != 0).then(|| {
            let next = self.peers.len();
            *self.group_slots.entry((kind_slot, state.group)).or_insert(next)
        });
        if group_slot == Some(self.peers.len()) {
            self.peers.push(Peers::default());
        }
        let in_group = group_slot.and_then(|g| peers_before.get(g)).filter(|p| p.principals > MIN_PEERS);
        let peers = in_group.unwrap_or(&peers_before[kind_slot]);
        let peer_value = peers.mean(slot);
        state.baseline.update(EventTime(start), bucket.count as f64, def.forgetting);
        for s in std::iter::once(kind_slot).chain(group_slot) {
            if state.last_closed.is_none() {
                self.peers[s].principals += 1;
            }
            self.peers[s].update(slot, bucket.count as f64, def.forgetting);
        }
        state.last_closed = Some(start);
        self.stats.buckets_scored += 1;

        let end = start + def.bucket_ms;
        let age_ms = end - first_seen.0;
        // A principal with enough history at this hour is judged against
        // its own baseline; a newer one against its peers, when there are
        // enough of them, and else not at all.
        let young = age_ms < def.min_history_ms;
        let basis = match peers.view(slot).filter(|_| young || own.samples < MIN_OWN_SAMPLES) {
            Some(v) => Basis::Peers {
                principals: peers.principals,
                mean: v.mean,
                busiest: v.busiest,
                in_group: in_group.is_some(),
            },
            None => Basis::Own,
        };
        // The tail probability is only worth computing when the count is
        // large enough, absolutely and relative to the expectation (and, for
        // a newcomer, to its peers), to alert.
        let beyond_peers = match basis {
            Basis::Own => true,
            Basis::Peers { busiest, .. } => bucket.count as f64 > PEER_MARGIN * busiest,
        };
        let could_fire =
            bucket.count >= def.min_count && bucket.count as f64 >= def.min_ratio * own.expected && beyond_peers;
        let p_value = if could_fire { own.p_value(bucket.count) } else { 1.0 };
        let s = score_of(p_value);
        let mut fires = could_fire && s >= def.threshold;
        // A shift in time is not a burst: a job that ran late moves its
        // queries into the next hour, which then looks busy while the hour
        // before looks quiet. The bucket must also be anomalous together
        // with the one before it.
        if fires
            && matches!(basis, Basis::Own)
            && let Some(prev) = previous
        {
            let together = prev.prediction.plus(&own).p_value(prev.count + bucket.count);
            if score_of(together) < def.threshold {
                fires = false;
                self.stats.shifted += 1;
            }
        }
        if fires && young && matches!(basis, Basis::Own) {
            self.stats.too_young += 1;
            fires = false;
        }
        if fires {
            if matches!(basis, Basis::Peers { .. }) {
                self.stats.judged_by_peers += 1;
            }
            if start < state.suppressed_until {
                self.stats.suppressed += 1;
            } else {
                state.suppressed_until = end + def.suppress_ms;
                self.stats.alerts += 1;
                let principal = names.name(id);
                let severity = if s >= def.high_score { def.severity.max(Severity::High) } else { def.severity };
                let (low, high) = own.interval();
                let explained = Explained {
                    kind: state.kind,
                    start,
                    end,
                    count: bucket.count,
                    expected: own.expected,
                    interval: (low, high),
                    age_ms,
                    basis,
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
                    expected: round2(own.expected),
                    expected_low: low,
                    expected_high: high,
                    score: s,
                    p_value,
                    severity,
                    summary: summary(def, principal, &explained),
                    evidence: bucket.evidence.ids(),
                    context: AlertContext {
                        principal_kind: state.kind,
                        groups: Vec::new(),
                        privileges: Vec::new(),
                        signal: def.signal.name().to_owned(),
                        model: def.model.name().to_owned(),
                        baseline_age_hours: round2(age_ms as f64 / MS_PER_HOUR as f64),
                        baseline_samples: round2(own.samples),
                        peer_value: peer_value.map(round2),
                        evidence_total: bucket.count,
                        config_version: def.config_version.clone(),
                    },
                });
            }
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

/// What a summary sentence is made of.
struct Explained {
    kind: PrincipalKind,
    start: i64,
    end: i64,
    count: u64,
    expected: f64,
    interval: (f64, f64),
    age_ms: i64,
    basis: Basis,
}

fn summary(def: &Definition, principal: &str, e: &Explained) -> String {
    let t = EventTime(e.start);
    let day = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][t.day_of_week() as usize];
    let when = format!("{}–{} UTC on {day} {}", hhmm(e.start), hhmm(e.end), &t.to_string()[..10]);
    let ratio = e.count as f64 / e.expected.max(0.01);
    let (low, high) = e.interval;
    let (kind, kinds) = match e.kind {
        PrincipalKind::User => ("User", "users"),
        PrincipalKind::ServicePrincipal => ("Service principal", "service principals"),
        PrincipalKind::System => ("System identity", "system identities"),
        PrincipalKind::Unknown => ("Principal", "principals"),
    };
    let what = what(def, e.count);
    // "300× the 0.0 expected" reads as a bug: below one event a ratio says
    // less than the expectation itself.
    let versus = |whose: &str| {
        if e.expected >= 0.5 {
            format!("about {ratio:.0}× the {:.1} {whose}", e.expected)
        } else {
            format!("against {:.2} {whose}", e.expected)
        }
    };
    match e.basis {
        Basis::Own => format!(
            "{kind} {principal} had {what} between {when}, {} (95% range {low:.0}–{high:.0}), judged against {:.0} days of its own history.",
            versus("expected at that hour"),
            e.age_ms as f64 / (24.0 * MS_PER_HOUR as f64)
        ),
        Basis::Peers { principals, mean, busiest, in_group } => format!(
            "{kind} {principal}, first seen {}, had {what} between {when}: {}, and {} (95% range {low:.0}–{high:.0}) from its own history, which is short at that hour.",
            if e.age_ms < 72 * MS_PER_HOUR {
                format!("{:.0} hours earlier", e.age_ms as f64 / MS_PER_HOUR as f64)
            } else {
                format!("{:.0} days earlier", e.age_ms as f64 / (24 * MS_PER_HOUR) as f64)
            },
            {
                let peers = if in_group {
                    format!("{principals} {kinds} of its group")
                } else {
                    format!("{principals} {kinds}")
                };
                if busiest < 0.5 {
                    format!("an hour at which none of {peers} had lately been active")
                } else {
                    format!(
                        "more than twice the busiest of {peers} at that hour ({busiest:.0}; they average {mean:.1})"
                    )
                }
            },
            versus("expected")
        ),
    }
}

fn hhmm(ms: i64) -> String {
    let t = EventTime(ms);
    let minutes = ms.div_euclid(60_000).rem_euclid(60);
    format!("{:02}:{minutes:02}", t.hour_of_day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::definition::built_in;
    use crate::event::Shape;

    fn query(principal: &str, ms: i64, id: &str) -> Event {
        Event {
            shape: Some(Shape::AuditDelivery),
            time: EventTime(ms),
            principal: principal.into(),
            principal_kind: PrincipalKind::User,
            id: id.into(),
            ..Event::default()
        }
    }

    /// Feeds `per_hour(day, hour)` queries for each hour of `days` days and
    /// returns the alerts.
    fn run(days: i64, per_hour: impl Fn(i64, i64) -> u64) -> (Vec<Alert>, CountDetectorStats) {
        let mut d = CountDetector::new(built_in().unwrap().remove(0));
        let mut names = Interner::default();
        let id = names.intern("ana@x");
        let mut out = Vec::new();
        let t0 = 1_704_067_200_000; // Monday
        let mut n = 0;
        for day in 0..days {
            for hour in 0..24 {
                let start = t0 + (day * 24 + hour) * MS_PER_HOUR;
                let k = per_hour(day, hour);
                for i in 0..k {
                    n += 1;
                    let ev = query("ana@x", start + (i as i64 * MS_PER_HOUR) / k as i64, &format!("r{n}"));
                    d.observe(id, PrincipalKind::User, || 0, &ev, EventTime(ev.time.0 - 15 * 60_000));
                    d.advance(EventTime(ev.time.0 - 15 * 60_000), &names, &[EventTime(t0)], &mut out);
                }
            }
        }
        d.advance(EventTime(i64::MAX - MS_PER_HOUR), &names, &[EventTime(t0)], &mut out);
        (out, d.stats)
    }

    fn office(day: i64, hour: i64) -> u64 {
        let weekend = day % 7 >= 5;
        if !weekend && (9..17).contains(&hour) { 6 + ((day * 7 + hour) % 5) as u64 } else { 0 }
    }

    #[test]
    fn a_normal_working_rhythm_raises_nothing() {
        let (alerts, stats) = run(21, office);
        assert!(alerts.is_empty(), "{alerts:#?}");
        assert!(stats.buckets_scored > 100);
    }

    #[test]
    fn a_night_burst_is_caught_and_explained() {
        let (alerts, _) = run(21, |day, hour| if day == 10 && hour == 2 { 300 } else { office(day, hour) });
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.principal, "ana@x");
        assert_eq!(a.observed, 300.0);
        assert_eq!(a.window_start, "2024-01-11T02:00:00.000Z");
        assert!(a.score >= 90 && a.severity == Severity::High, "{a:#?}");
        assert_eq!(a.evidence.len(), 10);
        assert_eq!(a.context.evidence_total, 300);
        assert!(
            a.summary
                .starts_with("User ana@x had 300 queries and commands between 02:00–03:00 UTC on Thursday 2024-01-11"),
            "{}",
            a.summary
        );
    }

    #[test]
    fn no_alert_before_the_baseline_is_old_enough() {
        let (alerts, stats) = run(5, |day, hour| if day == 1 && hour == 2 { 300 } else { office(day, hour) });
        assert!(alerts.is_empty());
        assert_eq!(stats.too_young, 1);
    }

    #[test]
    fn late_events_are_counted_not_mixed_in() {
        let mut d = CountDetector::new(built_in().unwrap().remove(0));
        let mut names = Interner::default();
        let id = names.intern("ana@x");
        let mut out = Vec::new();
        let t0 = 1_704_067_200_000;
        d.observe(id, PrincipalKind::User, || 0, &query("ana@x", t0, "a"), EventTime(t0));
        d.advance(EventTime(t0 + 2 * MS_PER_HOUR), &names, &[EventTime(t0)], &mut out);
        d.observe(id, PrincipalKind::User, || 0, &query("ana@x", t0 + 10, "b"), EventTime(t0 + 2 * MS_PER_HOUR));
        assert_eq!(d.stats.late, 1);
        assert_eq!(d.stats.buckets_scored, 1);
    }

    /// Eight users with an office rhythm from day 0, and a newcomer from
    /// day 14 whose activity per hour is `newcomer(day, hour)`.
    fn with_newcomer(newcomer: impl Fn(i64, i64) -> u64) -> (Vec<Alert>, CountDetectorStats) {
        let mut d = CountDetector::new(built_in().unwrap().remove(0));
        let mut names = Interner::default();
        let t0 = 1_704_067_200_000; // Monday
        let people: Vec<PrincipalId> = (0..9).map(|i| names.intern(&format!("u{i}@x"))).collect();
        let mut first_seen = vec![EventTime(t0); 9];
        first_seen[8] = EventTime(t0 + 14 * 24 * MS_PER_HOUR + 9 * MS_PER_HOUR);
        let mut out = Vec::new();
        let mut n = 0;
        for day in 0..17 {
            for hour in 0..24 {
                let start = t0 + (day * 24 + hour) * MS_PER_HOUR;
                for (i, id) in people.iter().enumerate() {
                    let k = if i < 8 {
                        office(day + i as i64, hour)
                    } else if day >= 14 {
                        newcomer(day, hour)
                    } else {
                        0
                    };
                    for j in 0..k {
                        n += 1;
                        let ev = query(names.name(*id), start + (j as i64 * MS_PER_HOUR) / k as i64, &format!("r{n}"));
                        d.observe(*id, PrincipalKind::User, || 0, &ev, EventTime(start));
                    }
                }
                d.advance(EventTime(start), &names, &first_seen, &mut out);
            }
        }
        d.advance(EventTime(i64::MAX - MS_PER_HOUR), &names, &first_seen, &mut out);
        (out, d.stats)
    }

    /// Two groups of seven: night-shift operators (group 1, 20 queries at
    /// 02:00 every night) and office workers (group 2); a newcomer of
    /// `group` runs 30 queries at 02:00 on its second day.
    fn night_newcomer(group: u32) -> Vec<Alert> {
        let mut d = CountDetector::new(built_in().unwrap().remove(0));
        let mut names = Interner::default();
        let t0 = 1_704_067_200_000;
        let people: Vec<PrincipalId> = (0..15).map(|i| names.intern(&format!("p{i:02}@x"))).collect();
        let mut first_seen = vec![EventTime(t0); 15];
        first_seen[14] = EventTime(t0 + 14 * 24 * MS_PER_HOUR + 9 * MS_PER_HOUR);
        let mut out = Vec::new();
        let mut n = 0;
        for day in 0..17 {
            for hour in 0..24 {
                let start = t0 + (day * 24 + hour) * MS_PER_HOUR;
                for (i, id) in people.iter().enumerate() {
                    let (g, k) = match i {
                        0..7 => (1, if hour == 2 { 20 + (day + i as i64) as u64 % 3 } else { 0 }),
                        7..14 => (2, office(day + i as i64, hour)),
                        _ => (
                            group,
                            if day == 15 && hour == 2 {
                                30
                            } else if day >= 14 {
                                office(day, hour)
                            } else {
                                0
                            },
                        ),
                    };
                    for j in 0..k {
                        n += 1;
                        let ev = query(names.name(*id), start + (j as i64 * MS_PER_HOUR) / k as i64, &format!("r{n}"));
                        d.observe(*id, PrincipalKind::User, || g, &ev, EventTime(start));
                    }
                }
                d.advance(EventTime(start), &names, &first_seen, &mut out);
            }
        }
        d.advance(EventTime(i64::MAX - MS_PER_HOUR), &names, &first_seen, &mut out);
        out
    }

    #[test]
    fn a_newcomer_is_judged_against_its_own_group() {
        // An office worker at 02:00 is unusual for office workers, though
        // not for the night shift, whose busiest does 20 and more.
        let office_newcomer = night_newcomer(2);
        assert_eq!(office_newcomer.len(), 1, "{office_newcomer:#?}");
        assert!(office_newcomer[0].summary.contains("of its group"), "{}", office_newcomer[0].summary);
        // A new night-shift operator doing what the night shift does is quiet.
        assert!(night_newcomer(1).is_empty());
    }

    #[test]
    fn a_newcomer_behaving_like_its_peers_is_quiet() {
        let (alerts, stats) = with_newcomer(|day, hour| office(day, hour) + 2);
        assert!(alerts.is_empty(), "{alerts:#?}");
        assert_eq!(stats.judged_by_peers, 0);
    }

    #[test]
    fn a_newcomer_bursting_at_night_is_judged_against_its_peers() {
        let (alerts, stats) = with_newcomer(|day, hour| if day == 15 && hour == 2 { 250 } else { office(day, hour) });
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(stats.judged_by_peers, 1);
        let a = &alerts[0];
        assert_eq!((a.principal.as_str(), a.observed), ("u8@x", 250.0));
        assert!(a.summary.contains("first seen 18 hours earlier"), "{}", a.summary);
        assert!(a.summary.contains("an hour at which none of 9 users had lately been active"), "{}", a.summary);
    }

    #[test]
    fn state_per_principal_is_small() {
        // The goal is at most 2 KiB per principal and signal.
        assert!(CountDetector::bytes_per_principal() <= 2048, "{}", CountDetector::bytes_per_principal());
    }
}
