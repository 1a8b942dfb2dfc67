//! The count detector: counts one signal per principal and bucket, and
//! scores each closed bucket against the principal's seasonal baseline.
//!
//! Per principal it keeps the baseline, first-seen time, suppression state
//! and at most the buckets the watermark has not yet closed. Open buckets
//! (with their evidence strings) are recycled through a pool so that the
//! steady state does not allocate. Buckets in which a principal did nothing are folded into its
//! baseline as zeros when it next closes a bucket (bounded by
//! [`MAX_ZERO_FILL`]).

use super::definition::Definition;
use super::evidence::Evidence;
use crate::alert::{Alert, AlertContext, SCHEMA_VERSION, Severity, alert_id};
use crate::baseline::count::{Prediction, SLOTS, SeasonalCounts, slot_of};
use crate::baseline::score_of;
use crate::event::{Event, PrincipalKind};
use crate::state::{Interner, PrincipalId};
use crate::time::{EventTime, MS_PER_HOUR};
use std::collections::BTreeMap;

/// The most empty buckets folded into a baseline at once: four weeks of
/// hours. Past that the forgetting factor has erased the older history
/// anyway, so the rest is skipped.
pub const MAX_ZERO_FILL: i64 = 24 * 28;

/// A bucket not yet closed.
#[derive(Debug, Default)]
struct OpenBucket {
    start: i64,
    count: u64,
    /// The smallest workspace id seen in the bucket (a principal active in
    /// two workspaces in one hour is reported under one, whatever the
    /// arrival order).
    workspace: u64,
    evidence: Evidence,
}

/// The previous bucket's count and prediction, for the shift check.
#[derive(Debug, Clone, Copy)]
struct Previous {
    start: i64,
    count: u64,
    prediction: Prediction,
}

#[derive(Debug)]
struct PrincipalState {
    kind: PrincipalKind,
    previous: Option<Previous>,
    /// Start of the last bucket folded into the baseline.
    last_closed: Option<i64>,
    suppressed_until: i64,
    baseline: SeasonalCounts,
    open: Vec<OpenBucket>,
}

/// Peer statistics: discounted mean count per slot over principals of one kind.
#[derive(Debug, Clone)]
struct Peers {
    sum: [f64; SLOTS],
    n: [f64; SLOTS],
}

impl Default for Peers {
    fn default() -> Self {
        Peers { sum: [0.0; SLOTS], n: [0.0; SLOTS] }
    }
}

/// Outcome counters of a detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountDetectorStats {
    pub late: u64,
    pub buckets_scored: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub too_young: u64,
    /// Alerts withheld because the bucket and the one before it together were not anomalous.
    pub shifted: u64,
}

/// One count detector (e.g. query frequency).
#[derive(Debug)]
pub struct CountDetector {
    def: Definition,
    principals: Vec<Option<PrincipalState>>,
    /// Bucket start → principals with that bucket open.
    wheel: BTreeMap<i64, Vec<PrincipalId>>,
    peers: [Peers; 4],
    spare: Vec<OpenBucket>,
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
            wheel: BTreeMap::new(),
            peers: Default::default(),
            spare: Vec::new(),
            stats: CountDetectorStats::default(),
        }
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// Counts `ev` for `principal` (of `kind`) unless its bucket is already closed.
    pub fn observe(&mut self, principal: PrincipalId, kind: PrincipalKind, ev: &Event, watermark: EventTime) {
        let start = ev.time.floor(self.def.bucket_ms).0;
        if start + self.def.bucket_ms <= watermark.0 {
            self.stats.late += 1;
            return;
        }
        let idx = principal.0 as usize;
        if self.principals.len() <= idx {
            self.principals.resize_with(idx + 1, || None);
        }
        let state = self.principals[idx].get_or_insert_with(|| PrincipalState {
            kind,
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
        let bucket = match state.open.iter().position(|b| b.start == start) {
            Some(i) => &mut state.open[i],
            None => {
                let mut b = self.spare.pop().unwrap_or_default();
                b.start = start;
                b.count = 0;
                b.workspace = ev.workspace;
                b.evidence.clear();
                state.open.push(b);
                self.wheel.entry(start).or_default().push(principal);
                state.open.last_mut().expect("just pushed")
            }
        };
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
        while let Some(entry) = self.wheel.first_entry() {
            let start = *entry.key();
            if start + self.def.bucket_ms > watermark.0 {
                break;
            }
            let mut ids = entry.remove();
            ids.sort_by(|a, b| names.name(*a).cmp(names.name(*b)));
            ids.dedup();
            let slot = slot_of(EventTime(start));
            // Peers are read as they were before this bucket, so that the
            // order principals close in within the bucket cannot matter.
            let peers_before = self.peers.clone();
            for id in ids {
                let first = first_seen.get(id.0 as usize).copied().unwrap_or(EventTime(start)).min(EventTime(start));
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
        peers_before: &[Peers; 4],
        names: &Interner,
        out: &mut Vec<Alert>,
    ) {
        let def = &self.def;
        let Some(state) = self.principals.get_mut(id.0 as usize).and_then(|s| s.as_mut()) else {
            return;
        };
        let Some(pos) = state.open.iter().position(|b| b.start == start) else {
            return;
        };
        let bucket = state.open.swap_remove(pos);
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
            }
        }
        let prediction = state.baseline.predict(EventTime(start));
        let previous = state.previous.filter(|p| p.start == start - def.bucket_ms);
        state.previous = Some(Previous { start, count: bucket.count, prediction });
        let peer = &peers_before[kind_index(state.kind)];
        let peer_value = (peer.n[slot] > 0.0).then(|| peer.sum[slot] / peer.n[slot]);
        state.baseline.update(EventTime(start), bucket.count as f64, def.forgetting);
        state.last_closed = Some(start);
        let p = &mut self.peers[kind_index(state.kind)];
        p.sum[slot] = p.sum[slot] * def.forgetting + bucket.count as f64;
        p.n[slot] = p.n[slot] * def.forgetting + 1.0;
        self.stats.buckets_scored += 1;

        let end = start + def.bucket_ms;
        // The tail probability is only worth computing when the count is
        // large enough, absolutely and relative to the expectation, to alert.
        let could_fire = bucket.count >= def.min_count && bucket.count as f64 >= def.min_ratio * prediction.expected;
        let p_value = if could_fire { prediction.p_value(bucket.count) } else { 1.0 };
        let s = score_of(p_value);
        let mut fires = could_fire && s >= def.threshold;
        // A shift in time is not a burst: a job that ran late moves its
        // queries into the next hour, which then looks busy while the hour
        // before looks quiet. The bucket must also be anomalous together
        // with the one before it.
        if fires && let Some(prev) = previous {
            let together = prev.prediction.plus(&prediction).p_value(prev.count + bucket.count);
            if score_of(together) < def.threshold {
                fires = false;
                self.stats.shifted += 1;
            }
        }
        if fires {
            let age_ms = end - first_seen.0;
            if age_ms < def.min_history_ms {
                self.stats.too_young += 1;
            } else if start < state.suppressed_until {
                self.stats.suppressed += 1;
            } else {
                state.suppressed_until = end + def.suppress_ms;
                self.stats.alerts += 1;
                let principal = names.name(id);
                let severity = if s >= def.high_score { def.severity.max(Severity::High) } else { def.severity };
                let (low, high) = prediction.interval();
                out.push(Alert {
                    schema_version: SCHEMA_VERSION,
                    alert_id: alert_id(&def.name, principal, start, &def.config_version),
                    detector: def.name.clone(),
                    principal: principal.to_owned(),
                    workspace_id: bucket.workspace.to_string(),
                    window_start: EventTime(start).to_string(),
                    window_end: EventTime(end).to_string(),
                    observed: bucket.count as f64,
                    expected: round2(prediction.expected),
                    expected_low: low,
                    expected_high: high,
                    score: s,
                    p_value,
                    severity,
                    summary: summary(
                        def,
                        principal,
                        state.kind,
                        start,
                        end,
                        bucket.count,
                        prediction.expected,
                        (low, high),
                        age_ms,
                    ),
                    evidence: bucket.evidence.ids(),
                    context: AlertContext {
                        principal_kind: state.kind,
                        groups: Vec::new(),
                        privileges: Vec::new(),
                        signal: def.signal.name().to_owned(),
                        model: def.model.name().to_owned(),
                        baseline_age_hours: round2(age_ms as f64 / MS_PER_HOUR as f64),
                        baseline_samples: round2(prediction.samples),
                        peer_value: peer_value.map(round2),
                        evidence_total: bucket.count,
                        config_version: def.config_version.clone(),
                    },
                });
            }
        }
        self.spare.push(bucket);
    }

    /// Principals with state.
    pub fn principals(&self) -> usize {
        self.principals.iter().filter(|p| p.is_some()).count()
    }

    /// Bytes of state per tracked principal (baseline, bookkeeping and the
    /// slot in the principal table), excluding open buckets' evidence.
    pub fn bytes_per_principal() -> usize {
        std::mem::size_of::<Option<PrincipalState>>()
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
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
    };
    format!("{n} {}", if n == 1 { one } else { many })
}

#[allow(clippy::too_many_arguments)]
fn summary(
    def: &Definition,
    principal: &str,
    kind: PrincipalKind,
    start: i64,
    end: i64,
    count: u64,
    expected: f64,
    (low, high): (f64, f64),
    age_ms: i64,
) -> String {
    let t = EventTime(start);
    let day = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][t.day_of_week() as usize];
    let when = format!("{}–{} UTC on {day} {}", hhmm(start), hhmm(end), &t.to_string()[..10]);
    let ratio = count as f64 / expected.max(0.01);
    let days = age_ms as f64 / (24.0 * MS_PER_HOUR as f64);
    format!(
        "{} {principal} had {} between {when}, about {:.0}× the {:.1} expected at that hour (95% range {:.0}–{:.0}), judged against {:.0} days of its own history.",
        match kind {
            PrincipalKind::User => "User",
            PrincipalKind::ServicePrincipal => "Service principal",
            PrincipalKind::System => "System identity",
            PrincipalKind::Unknown => "Principal",
        },
        what(def, count),
        ratio,
        expected,
        low,
        high,
        days
    )
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
                    d.observe(id, PrincipalKind::User, &ev, EventTime(ev.time.0 - 15 * 60_000));
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
        d.observe(id, PrincipalKind::User, &query("ana@x", t0, "a"), EventTime(t0));
        d.advance(EventTime(t0 + 2 * MS_PER_HOUR), &names, &[EventTime(t0)], &mut out);
        d.observe(id, PrincipalKind::User, &query("ana@x", t0 + 10, "b"), EventTime(t0 + 2 * MS_PER_HOUR));
        assert_eq!(d.stats.late, 1);
        assert_eq!(d.stats.buckets_scored, 1);
    }

    #[test]
    fn state_per_principal_is_small() {
        // The goal is at most 2 KiB per principal and signal.
        assert!(CountDetector::bytes_per_principal() <= 2048, "{}", CountDetector::bytes_per_principal());
    }
}
