//! The value detector: scores values (a job run's runtime, a principal's
//! hourly cost) against a seasonal baseline per key ([`SeasonalValues`]).
//!
//! Observations wait until the watermark passes the time they close at (a
//! run's end, a cost bucket's end) and are then scored in (close time,
//! key) order, so the alerts do not depend on arrival order within the
//! allowed lateness. Late observations follow the same rule as counts:
//! counted as late, never mixed in. Each key keeps its baseline and its
//! suppression state: runs by hour of the day, forgetting per run; hourly
//! values by hour of the day and of the week, forgetting per day.

use super::definition::{Definition, Key};
use super::evidence::Evidence;
use super::{Fed, round2};
use crate::alert::{Alert, SCHEMA_VERSION, Severity, alert_id};
use crate::baseline::score_of;
use crate::baseline::value::{Forgetting, SeasonalValues, ValuePrediction};
use crate::event::{PrincipalKind, Signal};
use crate::time::{EventTime, MS_PER_HOUR};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// One value to score (or, for cost, being summed over its bucket).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    principal: String,
    kind: PrincipalKind,
    /// The job, for per-job keys.
    job: String,
    window_start: i64,
    window_end: i64,
    /// The value in millionths, summed as integers: a float sum would
    /// depend on the order the parts arrived in.
    micros: i64,
    /// Whether every part of the value was priced (cost) — else DBUs.
    priced: bool,
    /// The smallest workspace id among the parts.
    workspace: u64,
    evidence: Evidence,
}

impl Pending {
    fn value(&self) -> f64 {
        self.micros as f64 / 1e6
    }
}

/// The baseline of one key. Per-job keys (a job's runs, a job's billed
/// hours) learn hours of the day only: a job runs on its schedule, and
/// there is one such baseline per job (about 560 bytes, inline). A
/// principal's hourly cost has a weekly rhythm too (about 1.9 KB, boxed).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Baseline {
    Daily(SeasonalValues<0>),
    Weekly(Box<SeasonalValues<168>>),
}

impl Baseline {
    /// Samples behind it, and its prediction at `at` (none before any value).
    fn predict(&self, at: EventTime) -> (f64, Option<ValuePrediction>) {
        match self {
            Baseline::Daily(b) => (b.samples(), b.predict(at)),
            Baseline::Weekly(b) => (b.samples(), b.predict(at)),
        }
    }

    fn update(&mut self, at: EventTime, value: f64, forgetting: Forgetting) {
        match self {
            Baseline::Daily(b) => b.update(at, value, forgetting),
            Baseline::Weekly(b) => b.update(at, value, forgetting),
        }
    }
}

/// The score and p-value of `value` when it is unusual enough to alert
/// against `prediction` (before the history and suppression checks). The
/// cheap checks come first: the p-value is the costly part.
fn fires(def: &Definition, samples: f64, value: f64, prediction: &ValuePrediction) -> Option<(u8, f64)> {
    let could_fire =
        samples >= def.min_samples as f64 && value >= def.min_value && value >= def.min_ratio * prediction.expected;
    if !could_fire {
        return None;
    }
    let p_value = prediction.p_value(value);
    let s = score_of(p_value);
    (s >= def.threshold).then_some((s, p_value))
}

/// The definition's severity, at least high from its `high_score`.
fn severity_of(def: &Definition, score: u8) -> Severity {
    if score >= def.high_score { def.severity.max(Severity::High) } else { def.severity }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct KeyState {
    baseline: Baseline,
    suppressed_until: i64,
    /// Summed keys (cost): the buckets closed within the correction
    /// horizon, oldest first, so a late `RETRACTION`/`RESTATEMENT` row
    /// can re-judge its hour. Empty for runs.
    recent: Vec<Closed>,
}

/// A closed bucket of a summed key, open to billing corrections (24 bytes).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Closed {
    window_start: i64,
    micros: i64,
    /// Whether its latest verdict is an alert.
    alerted: bool,
    /// Verdict changes so far; each raised its own alert.
    revision: u16,
}

/// Corrections to one closed bucket, waiting to be judged together (a
/// retraction and its restatement arrive as a pair).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Correction {
    principal: String,
    kind: PrincipalKind,
    job: String,
    workspace: u64,
    priced: bool,
    /// The value before these corrections.
    before_micros: i64,
    evidence: Evidence,
}

/// Outcome counters of a value detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValueDetectorStats {
    pub late: u64,
    /// Correction rows applied to closed buckets, and the re-judgments
    /// that changed a verdict (each an alert naming the one it corrects).
    pub corrections: u64,
    pub verdicts_changed: u64,
    pub scored: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub too_young: u64,
}

/// One value detector (job runtime, cost).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ValueDetector {
    def: Definition,
    /// (close time, key) → observation.
    pending: BTreeMap<(i64, String), Pending>,
    keys: FxHashMap<String, KeyState>,
    /// (due, key, bucket start) → corrections to a closed bucket, judged
    /// once the watermark passes `due` (a bucket after they arrived).
    corrections: BTreeMap<(i64, String, i64), Correction>,
    /// The watermark everything up to has been scored at: an observation
    /// closing at or before it is late.
    scored_to: i64,
    pub stats: ValueDetectorStats,
}

/// What an observation is about.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub principal: &'a str,
    pub kind: PrincipalKind,
    pub job: &'a str,
    /// For runs: the run itself; for cost: the usage window's start.
    pub start: EventTime,
    pub end: EventTime,
    pub value: f64,
    pub priced: bool,
    pub workspace: u64,
    pub evidence: &'a str,
    /// A billing `RETRACTION` or `RESTATEMENT` row: it may correct a
    /// bucket already judged.
    pub correction: bool,
}

/// Whether each observation is scored alone (a job run) rather than summed
/// over its bucket (an hour of cost).
fn per_run(def: &Definition) -> bool {
    def.signal == Signal::JobRun
}

fn key_of(def: &Definition, principal: &str, job: &str) -> String {
    match def.key {
        Key::Principal => principal.to_owned(),
        Key::PrincipalJob => format!("{principal}\u{1f}{job}"),
    }
}

impl ValueDetector {
    pub fn new(def: Definition) -> Self {
        ValueDetector {
            def,
            pending: BTreeMap::new(),
            keys: FxHashMap::default(),
            corrections: BTreeMap::new(),
            scored_to: i64::MIN,
            stats: ValueDetectorStats::default(),
        }
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// When its earliest pending bucket or correction closes (`i64::MAX`
    /// with neither).
    pub fn due_at(&self) -> i64 {
        let pending = self.pending.first_key_value().map_or(i64::MAX, |(k, _)| k.0);
        pending.min(self.corrections.first_key_value().map_or(i64::MAX, |(k, _)| k.0))
    }

    /// Takes an observation; per-run keys score it alone, per-principal
    /// keys add it to the bucket of its start. It is late when its window
    /// closed at or before the watermark already scored (a run handed on
    /// once the watermark passed its end is not late: it is scored at
    /// that same watermark, in order).
    pub fn observe(&mut self, o: Observation<'_>) -> Fed {
        if self.def.key == Key::PrincipalJob && o.job.is_empty() {
            return Fed::Ignored;
        }
        let per_run = per_run(&self.def);
        let (window_start, window_end) = if per_run {
            (o.start.0, o.end.0)
        } else {
            let s = o.start.floor(self.def.bucket_ms).0;
            (s, s + self.def.bucket_ms)
        };
        if window_end <= self.scored_to {
            if o.correction && !per_run && self.correct(&o, window_start) {
                return Fed::Taken;
            }
            self.stats.late += 1;
            return Fed::Late;
        }
        let mut key = key_of(&self.def, o.principal, o.job);
        if per_run {
            // Each run is its own observation.
            key.push('\u{1f}');
            key.push_str(o.evidence);
        }
        let limit = self.def.evidence_limit;
        let p = self.pending.entry((window_end, key)).or_insert_with(|| Pending {
            principal: o.principal.to_owned(),
            kind: o.kind,
            job: if self.def.key == Key::PrincipalJob { o.job.to_owned() } else { String::new() },
            window_start,
            window_end,
            micros: 0,
            priced: true,
            workspace: o.workspace,
            evidence: Evidence::default(),
        });
        // Saturating: a value beyond 9·10¹² cannot be told from another one.
        p.micros = p.micros.saturating_add((o.value * 1e6).round() as i64);
        p.priced &= o.priced;
        p.workspace = p.workspace.min(o.workspace);
        p.evidence.offer(o.start.0, o.evidence, limit);
        Fed::Taken
    }

    /// Applies a correction row to the closed bucket starting at
    /// `window_start`, when that bucket is within the correction horizon
    /// of a key with a baseline. A bucket never billed before is corrected
    /// from zero.
    fn correct(&mut self, o: &Observation<'_>, window_start: i64) -> bool {
        let def = &self.def;
        if window_start + def.bucket_ms <= self.scored_to.saturating_sub(def.correction_ms) {
            return false;
        }
        let key = key_of(def, o.principal, o.job);
        let Some(state) = self.keys.get_mut(&key) else { return false };
        let at = state.recent.partition_point(|c| c.window_start < window_start);
        if state.recent.get(at).is_none_or(|c| c.window_start != window_start) {
            state.recent.insert(at, Closed { window_start, micros: 0, alerted: false, revision: 0 });
        }
        let closed = &mut state.recent[at];
        let before = closed.micros;
        closed.micros = closed.micros.saturating_add((o.value * 1e6).round() as i64);
        self.stats.corrections += 1;
        let due = self.scored_to.saturating_add(def.bucket_ms);
        let c = self.corrections.entry((due, key, window_start)).or_insert_with(|| Correction {
            principal: o.principal.to_owned(),
            kind: o.kind,
            job: if def.key == Key::PrincipalJob { o.job.to_owned() } else { String::new() },
            workspace: o.workspace,
            priced: true,
            before_micros: before,
            evidence: Evidence::default(),
        });
        c.priced &= o.priced;
        c.workspace = c.workspace.min(o.workspace);
        c.evidence.offer(o.start.0, o.evidence, def.evidence_limit);
        true
    }

    /// Scores every observation that closes at or before `watermark`.
    /// `first_seen` gives a principal's first event time by name.
    pub fn advance(
        &mut self,
        watermark: EventTime,
        first_seen: impl Fn(&str) -> Option<EventTime>,
        out: &mut Vec<Alert>,
    ) {
        self.scored_to = self.scored_to.max(watermark.0);
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > watermark.0 {
                break;
            }
            let p = entry.remove();
            let first = first_seen(&p.principal).unwrap_or(EventTime(p.window_start));
            self.score(p, first, out);
        }
        while let Some(entry) = self.corrections.first_entry() {
            if entry.key().0 > watermark.0 {
                break;
            }
            let ((_, key, window_start), c) = entry.remove_entry();
            self.rejudge(&key, window_start, c, out);
        }
    }

    /// Judges a corrected bucket again, against the baseline as it stands
    /// now (it learnt the original figure when the bucket closed; a
    /// correction does not unlearn it). A changed verdict is a new alert
    /// that names the alert it corrects; an unchanged one is only counted.
    fn rejudge(&mut self, key: &str, window_start: i64, c: Correction, out: &mut Vec<Alert>) {
        let def = &self.def;
        let Some(state) = self.keys.get_mut(key) else { return };
        let Ok(at) = state.recent.binary_search_by_key(&window_start, |c| c.window_start) else { return };
        let closed = &mut state.recent[at];
        let value = closed.micros as f64 / 1e6;
        let start = EventTime(window_start);
        let (samples, prediction) = state.baseline.predict(start);
        let Some(prediction) = prediction else { return };
        let fired = fires(def, samples, value, &prediction);
        let alerts = fired.is_some();
        if alerts == closed.alerted {
            return;
        }
        self.stats.verdicts_changed += 1;
        let subject = key_of(def, &c.principal, &c.job);
        let revision_id = |r: u16| {
            let s = if r == 0 { subject.clone() } else { format!("{subject}\u{1f}correction {r}") };
            alert_id(&def.name, &s, window_start, &def.config_version)
        };
        let corrects = (closed.revision > 0 || closed.alerted).then(|| revision_id(closed.revision));
        closed.revision += 1;
        closed.alerted = alerts;
        let window_end = window_start + def.bucket_ms;
        let p = Pending {
            principal: c.principal,
            kind: c.kind,
            job: c.job,
            window_start,
            window_end,
            micros: closed.micros,
            priced: c.priced,
            workspace: c.workspace,
            evidence: c.evidence,
        };
        let (low, high) = prediction.interval();
        let unit = |v: f64| if p.priced { format!("${v:.2}") } else { format!("{v:.1} DBU") };
        let was = format!("{} before the correction", unit(c.before_micros as f64 / 1e6));
        let p_value = fired.map_or_else(|| prediction.p_value(value), |(_, p)| p);
        let s = score_of(p_value);
        let (severity, summary) = if alerts {
            let severity = severity_of(def, s);
            let mut summary = cost_summary(&p, &prediction, (low, high), samples);
            summary.push_str(&format!(" Raised by billing corrections to an hour already judged ({was})."));
            (severity, summary)
        } else {
            let summary = format!(
                "Billing corrections restated the usage {} between {} and {} to {} ({was}), within its usual range ({}–{}): the alert {} no longer holds.",
                if p.job.is_empty() {
                    format!("of {}", p.principal)
                } else {
                    format!("of job {} run as {}", p.job, p.principal)
                },
                EventTime(window_start),
                EventTime(window_end),
                unit(value),
                unit(low),
                unit(high),
                corrects.as_deref().unwrap_or("?"),
            );
            (Severity::Info, summary)
        };
        out.push(Alert {
            schema_version: SCHEMA_VERSION,
            alert_id: revision_id(closed.revision),
            detector: def.name.clone(),
            principal: p.principal.clone(),
            workspace_id: p.workspace.to_string(),
            window_start: start.to_string(),
            window_end: EventTime(window_end).to_string(),
            observed: round2(value),
            expected: round2(prediction.expected),
            expected_low: round2(low),
            expected_high: round2(high),
            score: s,
            p_value,
            severity,
            summary,
            evidence: p.evidence.ids(),
            corrects,
            triage: def.triage(severity, s),
            context: def.context(p.kind, 0.0, round2(samples), None, p.evidence.total()),
        });
    }

    fn score(&mut self, p: Pending, first_seen: EventTime, out: &mut Vec<Alert>) {
        let def = &self.def;
        let state = self.keys.entry(key_of(def, &p.principal, &p.job)).or_insert_with(|| KeyState {
            baseline: match def.key {
                Key::PrincipalJob => Baseline::Daily(SeasonalValues::default()),
                Key::Principal => Baseline::Weekly(Box::default()),
            },
            suppressed_until: i64::MIN,
            recent: Vec::new(),
        });
        if !per_run(def) {
            // Kept for corrections: the closed buckets of the horizon.
            let horizon = p.window_end.saturating_sub(def.correction_ms);
            let stale = state.recent.partition_point(|c| c.window_start + def.bucket_ms <= horizon);
            state.recent.drain(..stale);
            if def.correction_ms > 0 {
                state.recent.push(Closed {
                    window_start: p.window_start,
                    micros: p.micros,
                    alerted: false,
                    revision: 0,
                });
            }
        }
        let at = EventTime(p.window_start);
        // Runs forget per run; hourly values per day of event time.
        let forgetting =
            if per_run(def) { Forgetting::PerValue(def.forgetting) } else { Forgetting::PerDay(def.forgetting) };
        let (samples, prediction) = state.baseline.predict(at);
        state.baseline.update(at, p.value(), forgetting);
        self.stats.scored += 1;
        let Some(prediction) = prediction else { return };
        let Some((s, p_value)) = fires(def, samples, p.value(), &prediction) else { return };
        let age_ms = p.window_end - first_seen.0;
        if age_ms < def.min_history_ms {
            self.stats.too_young += 1;
            return;
        }
        if p.window_start < state.suppressed_until {
            self.stats.suppressed += 1;
            return;
        }
        state.suppressed_until = p.window_end + def.suppress_ms;
        if let Some(last) = state.recent.last_mut()
            && last.window_start == p.window_start
        {
            last.alerted = true;
        }
        self.stats.alerts += 1;
        let severity = severity_of(def, s);
        let (low, high) = prediction.interval();
        let summary = if per_run(def) {
            runtime_summary(&p, &prediction, (low, high))
        } else {
            cost_summary(&p, &prediction, (low, high), samples)
        };
        // Alerts name their key in their id: per-job alerts name the job,
        // since two jobs of one principal can be unusual in the same hour,
        // or start at the same second, and each is its own alert.
        let subject = key_of(def, &p.principal, &p.job);
        out.push(Alert {
            schema_version: SCHEMA_VERSION,
            alert_id: alert_id(&def.name, &subject, p.window_start, &def.config_version),
            detector: def.name.clone(),
            principal: p.principal.clone(),
            workspace_id: p.workspace.to_string(),
            window_start: EventTime(p.window_start).to_string(),
            window_end: EventTime(p.window_end).to_string(),
            observed: round2(p.value()),
            expected: round2(prediction.expected),
            expected_low: round2(low),
            expected_high: round2(high),
            score: s,
            p_value,
            severity,
            summary,
            evidence: p.evidence.ids(),
            corrects: None,
            triage: def.triage(severity, s),
            context: def.context(
                p.kind,
                round2(age_ms as f64 / MS_PER_HOUR as f64),
                round2(samples),
                None,
                p.evidence.total(),
            ),
        });
    }

    /// Keys with a baseline.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }
}

fn duration(seconds: f64) -> String {
    if seconds >= 5400.0 { format!("{:.1} h", seconds / 3600.0) } else { format!("{:.0} min", seconds / 60.0) }
}

fn who(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::ServicePrincipal => "service principal",
        PrincipalKind::System => "system identity",
        PrincipalKind::Unknown => "principal",
    }
}

fn runtime_summary(p: &Pending, e: &ValuePrediction, (low, high): (f64, f64)) -> String {
    format!(
        "Job {} run {} as {} {} ran {} from {} to {}, {:.1}× its usual {} (95% range {}–{}), judged against {:.0} earlier runs.",
        p.job,
        p.evidence.first().unwrap_or("?"),
        who(p.kind),
        p.principal,
        duration(p.value()),
        EventTime(p.window_start),
        EventTime(p.window_end),
        p.value() / e.expected.max(1e-9),
        duration(e.expected),
        duration(low),
        duration(high),
        e.samples,
    )
}

fn cost_summary(p: &Pending, e: &ValuePrediction, (low, high): (f64, f64), samples: f64) -> String {
    let unit = |v: f64| if p.priced { format!("${v:.2}") } else { format!("{v:.1} DBU") };
    let subject = if p.job.is_empty() {
        let w = who(p.kind);
        let mut c = w.chars();
        let w = c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default();
        format!("{w} {}", p.principal)
    } else {
        format!("Job {} run as {} {}", p.job, who(p.kind), p.principal)
    };
    format!(
        "{subject} was billed {} between {} and {} ({} usage records), {:.1}× its usual {} an hour (95% range {}–{}), judged against {:.0} billed hours.",
        unit(p.value()),
        EventTime(p.window_start),
        EventTime(p.window_end),
        p.evidence.total(),
        p.value() / e.expected.max(1e-9),
        unit(e.expected),
        unit(low),
        unit(high),
        samples,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::definition::built_in;

    fn def(name: &str) -> Definition {
        built_in().unwrap().into_iter().find(|d| d.name == name).unwrap()
    }

    #[test]
    fn a_run_five_times_longer_than_usual_alerts_once_explained() {
        let mut d = ValueDetector::new(def("job_runtime"));
        let mut out = Vec::new();
        let t0 = 1_704_067_200_000i64;
        for i in 0..30i64 {
            let start = t0 + i * 6 * MS_PER_HOUR;
            let minutes = if i == 25 { 120 } else { 20 + i % 3 };
            let run = format!("r{i}");
            d.observe(Observation {
                principal: "etl-sp",
                kind: PrincipalKind::ServicePrincipal,
                job: "42",
                start: EventTime(start),
                end: EventTime(start + minutes * 60_000),
                value: (minutes * 60) as f64,
                priced: true,
                workspace: 7,
                evidence: &run,
                correction: false,
            });
            d.advance(EventTime(start + 3 * MS_PER_HOUR), |_| Some(EventTime(t0)), &mut out);
        }
        assert_eq!(out.len(), 1, "{out:#?}");
        let a = &out[0];
        assert_eq!((a.detector.as_str(), a.principal.as_str(), a.observed), ("job_runtime", "etl-sp", 7200.0));
        assert_eq!(a.evidence, ["r25"]);
        assert!(a.summary.starts_with("Job 42 run r25 as service principal etl-sp ran 2.0 h"), "{}", a.summary);
    }

    const T0: i64 = 1_704_067_200_000;

    /// A billing row of `etl-sp` for hour `hour` after `T0`.
    fn billed(hour: i64, value: f64, id: &str, correction: bool) -> Observation<'_> {
        Observation {
            principal: "etl-sp",
            kind: PrincipalKind::ServicePrincipal,
            job: "",
            start: EventTime(T0 + hour * MS_PER_HOUR),
            end: EventTime(T0 + (hour + 1) * MS_PER_HOUR),
            value,
            priced: true,
            workspace: 7,
            evidence: id,
            correction,
        }
    }

    #[test]
    fn cost_is_summed_per_hour_and_late_rows_are_counted() {
        let mut d = ValueDetector::new(def("cost"));
        let mut out = Vec::new();
        let t0 = T0;
        let obs = |hour: i64, value: f64, id: &'static str| billed(hour, value, id, false);
        for h in 0..100 {
            let factor = if h == 90 { 8.0 } else { 1.0 };
            d.observe(obs(h, 3.0 * factor, "a"));
            d.observe(obs(h, 3.0 * factor, "b"));
            d.advance(EventTime(t0 + (h + 1) * MS_PER_HOUR), |_| Some(EventTime(t0)), &mut out);
        }
        d.observe(obs(10, 1.0, "late"));
        assert_eq!(d.stats.late, 1);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].observed, 48.0);
        assert_eq!(out[0].context.evidence_total, 2);
        assert!(out[0].summary.contains("was billed $48.00"), "{}", out[0].summary);
    }

    #[test]
    fn a_late_restatement_raises_a_new_alert_naming_the_one_it_corrects() {
        let mut d = ValueDetector::new(def("cost"));
        let mut out = Vec::new();
        let t0 = T0;
        let obs = billed;
        let at = |h: i64| EventTime(t0 + h * MS_PER_HOUR);
        for h in 0..100 {
            // Hour 90 is billed 8× its usual; hour 95 as usual.
            d.observe(obs(h, if h == 90 { 48.0 } else { 6.0 }, "orig", false));
            d.advance(at(h + 1), |_| Some(EventTime(t0)), &mut out);
        }
        assert_eq!(out.len(), 1, "{out:#?}");
        let original = out[0].alert_id.clone();
        assert!(out[0].corrects.is_none());

        // A late ORIGINAL row for a judged hour is late; a RETRACTION and
        // its RESTATEMENT are applied, and judged together a bucket later.
        assert_eq!(d.observe(obs(90, 1.0, "again", false)), Fed::Late);
        assert_eq!(d.observe(obs(90, -48.0, "retract", true)), Fed::Taken);
        assert_eq!(d.observe(obs(90, 6.0, "restate", true)), Fed::Taken);
        d.advance(at(100), |_| Some(EventTime(t0)), &mut out);
        assert_eq!(out.len(), 1, "judged only once the pair is in");
        d.advance(at(102), |_| Some(EventTime(t0)), &mut out);
        assert_eq!(out.len(), 2, "{out:#?}");
        let fix = &out[1];
        assert_eq!(fix.corrects.as_deref(), Some(original.as_str()));
        assert_ne!(fix.alert_id, original);
        assert_eq!(fix.severity, Severity::Info);
        assert_eq!(fix.observed, 6.0);
        assert_eq!(fix.evidence, ["restate", "retract"]);
        assert!(fix.summary.contains("no longer holds") && fix.summary.contains(&original), "{}", fix.summary);

        // An hour judged normal and restated 8× up alerts, naming nothing
        // (there was no alert), and a correction that keeps the verdict is
        // only counted.
        d.observe(obs(95, -6.0, "r2", true));
        d.observe(obs(95, 48.0, "s2", true));
        d.observe(obs(96, 0.5, "s3", true));
        d.advance(at(104), |_| Some(EventTime(t0)), &mut out);
        assert_eq!(out.len(), 3, "{out:#?}");
        assert!(out[2].corrects.is_none());
        assert!(out[2].summary.contains("Raised by billing corrections"), "{}", out[2].summary);
        assert_eq!(d.stats.corrections, 5);
        assert_eq!(d.stats.verdicts_changed, 2);

        // Beyond the correction horizon a correction is late.
        d.advance(at(200), |_| Some(EventTime(t0)), &mut out);
        assert_eq!(d.observe(obs(95, -48.0, "r3", true)), Fed::Late);
    }

    #[test]
    fn one_jobs_costly_hour_alerts_under_the_job_though_the_principals_bill_hides_it() {
        // A principal runs twenty jobs of about $3 an hour, and usage of no
        // job besides. Job 7 runs on a cluster ten times larger for an hour:
        // the principal's bill grows by half, the job's tenfold.
        let mut per_job = ValueDetector::new(def("job_cost"));
        let mut whole = ValueDetector::new(def("cost"));
        let (mut out, mut whole_out) = (Vec::new(), Vec::new());
        let t0 = 1_704_067_200_000i64;
        let jobs: Vec<String> = (0..20).map(|j| j.to_string()).collect();
        for h in 0..200i64 {
            let start = EventTime(t0 + h * MS_PER_HOUR);
            let parts =
                jobs.iter().map(|j| (j.as_str(), if h == 180 && j == "7" { 30.0 } else { 3.0 + (h % 3) as f64 * 0.1 }));
            for (job, value) in parts.chain([("", 5.0)]) {
                let o = Observation {
                    principal: "etl-sp",
                    kind: PrincipalKind::ServicePrincipal,
                    job,
                    start,
                    end: EventTime(start.0 + MS_PER_HOUR),
                    value,
                    priced: true,
                    workspace: 7,
                    evidence: "row",
                    correction: false,
                };
                per_job.observe(o);
                whole.observe(o);
            }
            let watermark = EventTime(t0 + (h + 1) * MS_PER_HOUR);
            per_job.advance(watermark, |_| Some(EventTime(t0)), &mut out);
            whole.advance(watermark, |_| Some(EventTime(t0)), &mut whole_out);
        }
        assert!(whole_out.is_empty(), "{whole_out:#?}");
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].observed, 30.0);
        assert!(
            out[0].summary.starts_with("Job 7 run as service principal etl-sp was billed $30.00"),
            "{}",
            out[0].summary
        );
        // One baseline per job; the usage of no job is not this detector's.
        assert_eq!(per_job.keys(), 20);
        // The id names the job: two jobs unusual in the same hour are two alerts.
        let at = t0 + 180 * MS_PER_HOUR;
        assert_eq!(out[0].alert_id, alert_id("job_cost", "etl-sp\u{1f}7", at, &out[0].context.config_version));
    }
}
