//! Evaluation: replays generated data sets and compares the alerts with
//! their labels, hard negatives and principals' archetypes.
//!
//! Only alerts of severity medium and above count as alerts: they are
//! what a security team is asked to look at. Low and info alerts (an hour
//! of unusual timing at ordinary volume, a rule-catalogue fact such as a
//! user deleted) are *findings*, counted apart: how many, how many point at
//! incidents, how many at hard negatives. They count neither in precision
//! nor in recall, so that a detector cannot buy recall with findings no one
//! reads; the recall they would add, and precision over every alert
//! whatever its severity, are printed beside for honesty.
//!
//! An incident is detected when an alert names its principal and its
//! signal (the detector's name or the signal it scores) in a window that
//! overlaps the incident's. An alert is true when it points at an incident:
//! same principal, overlapping window, whichever signal showed it (an extra
//! job run at night shows in runtime and in query frequency alike).
//! Precision is true alerts over alerts; recall is detected incidents over
//! incidents; time to detect is from the incident's start to when its
//! first matching alert could be emitted (window end plus the allowed
//! lateness, in event time). Signals without a detector count as missed.
//!
//! Per archetype, an incident belongs to the archetype of its principal,
//! and so does an alert. An alert that points at no incident but at a hard
//! negative (ordinary work that looks unusual: `hard_negatives.jsonl`) is
//! counted by severity, whatever its severity: a high one on weekend or
//! night work at ordinary volume is the failure this report exists to show.

use crate::alert::{Alert, Severity};
use crate::generate::{
    GenerateConfig, HARD_NEGATIVES, HardNegative, LABELS, LOGS_DIR, Label, PRINCIPALS, PrincipalRecord, generate,
    read_hard_negatives, read_labels, read_principals,
};
use crate::pipeline::{PipelineConfig, ReplayOptions, replay};
use crate::time::EventTime;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Figures of one group (a signal, an archetype, a seed, or everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub incidents: u64,
    /// Incidents matched by an alert of severity medium or above.
    pub detected: u64,
    /// Alerts of severity medium and above.
    pub alerts: u64,
    pub true_alerts: u64,
    /// `None` when there were no alerts.
    pub precision: Option<f64>,
    /// `None` when there were no incidents.
    pub recall: Option<f64>,
    /// Minutes from incident start to the first matching alert, median and worst.
    pub ttd_median_minutes: Option<f64>,
    pub ttd_max_minutes: Option<f64>,
    #[serde(skip)]
    ttd: Vec<f64>,
}

impl Figures {
    fn finish(&mut self) {
        self.precision = (self.alerts > 0).then(|| self.true_alerts as f64 / self.alerts as f64);
        self.recall = (self.incidents > 0).then(|| self.detected as f64 / self.incidents as f64);
        self.ttd.sort_by(f64::total_cmp);
        self.ttd_median_minutes = self.ttd.get(self.ttd.len() / 2).copied();
        self.ttd_max_minutes = self.ttd.last().copied();
    }

    fn add(&mut self, o: &Figures) {
        self.incidents += o.incidents;
        self.detected += o.detected;
        self.alerts += o.alerts;
        self.true_alerts += o.true_alerts;
        self.ttd.extend_from_slice(&o.ttd);
    }
}

/// Alerts that point at hard negatives (and at no incident).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HardNegativeFigures {
    /// Hard-negative windows in the data, by kind.
    pub windows: BTreeMap<String, u64>,
    /// Alerts pointing at a hard-negative window and at no incident, by
    /// severity (every severity, low and info included).
    pub alerts_by_severity: BTreeMap<String, u64>,
    /// The same by kind of window, then severity. An alert pointing at
    /// windows of two kinds counts under both.
    pub alerts_by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    /// Alerts of severity high or critical among them: the figure that
    /// should be 0.
    pub high_severity_alerts: u64,
}

/// Low and info alerts, counted apart from the alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Findings {
    pub total: u64,
    /// Pointing at an incident (same principal, overlapping window).
    pub on_incidents: u64,
    /// Pointing at a hard negative and at no incident.
    pub on_hard_negatives: u64,
}

/// An incident no alert of severity medium or above matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Missed {
    /// The seed of the data set (`eval --seeds`), else none.
    pub seed: Option<u64>,
    pub archetype: String,
    /// Matched only by a low or info finding.
    pub found_by_finding: bool,
    #[serde(flatten)]
    pub label: Label,
}

/// An alert of severity medium or above that points at no incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalseAlert {
    pub seed: Option<u64>,
    pub detector: String,
    pub severity: Severity,
    pub principal: String,
    pub archetype: String,
    pub window_start: String,
    /// Kinds of the hard negatives it points at, if any.
    pub hard_negatives: Vec<String>,
    pub summary: String,
}

/// A seed's overall figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedFigures {
    pub seed: u64,
    #[serde(flatten)]
    pub figures: Figures,
    pub high_severity_alerts_on_hard_negatives: u64,
}

/// The outcome of one evaluation, of one data set or of several seeds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation {
    /// Days and principals of each generated data set (`eval --seeds`).
    pub days: Option<u32>,
    pub principals: Option<u32>,
    /// Each seed's figures (`eval --seeds`), in order.
    pub seeds: Vec<SeedFigures>,
    /// Over everything; counts alerts of severity medium and above.
    pub overall: Figures,
    pub by_signal: BTreeMap<String, Figures>,
    pub by_archetype: BTreeMap<String, Figures>,
    /// Principals per archetype.
    pub principals_by_archetype: BTreeMap<String, u64>,
    pub hard_negatives: HardNegativeFigures,
    /// Low and info alerts.
    pub findings: Findings,
    /// Every alert whatever its severity, and those pointing at an incident.
    pub all_alerts: u64,
    pub all_true_alerts: u64,
    pub precision_all_alerts: Option<f64>,
    /// Incidents matched by any alert, findings included.
    pub detected_any_severity: u64,
    pub recall_any_severity: Option<f64>,
    pub missed: Vec<Missed>,
    pub false_alerts: Vec<FalseAlert>,
}

/// What a generated data set says is true: its incidents, its hard
/// negatives and who is who.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub labels: Vec<Label>,
    pub hard_negatives: Vec<HardNegative>,
    pub principals: Vec<PrincipalRecord>,
}

impl Truth {
    /// Reads `labels.jsonl`, and `hard_negatives.jsonl` and
    /// `principals.jsonl` when present (data sets written before they
    /// existed have none).
    pub fn read(dir: &Path) -> anyhow::Result<Truth> {
        let optional = |name: &str| dir.join(name).exists().then(|| dir.join(name));
        Ok(Truth {
            labels: read_labels(&dir.join(LABELS))?,
            hard_negatives: optional(HARD_NEGATIVES).map(|p| read_hard_negatives(&p)).transpose()?.unwrap_or_default(),
            principals: optional(PRINCIPALS).map(|p| read_principals(&p)).transpose()?.unwrap_or_default(),
        })
    }
}

fn t(s: &str) -> i64 {
    EventTime::parse(s).map(|t| t.0).unwrap_or(0)
}

fn overlaps(a: &Alert, principal: &str, start: &str, end: &str) -> bool {
    a.principal == principal && t(&a.window_start) < t(end) && t(start) < t(&a.window_end)
}

/// The alert points at the incident: same principal, overlapping windows.
fn points_at(a: &Alert, l: &Label) -> bool {
    overlaps(a, &l.principal, &l.start, &l.end)
}

/// The alert detects the incident: it points at it through its signal.
pub fn matches(a: &Alert, l: &Label) -> bool {
    points_at(a, l) && (a.detector == l.signal || a.context.signal == l.signal)
}

/// An alert of severity low or info: a finding, not counted as an alert.
pub fn is_finding(a: &Alert) -> bool {
    a.severity <= Severity::Low
}

/// Scores `alerts` against `truth`; `lateness_ms` is added to time to detect.
pub fn score(alerts: &[Alert], truth: &Truth, lateness_ms: i64) -> Evaluation {
    let archetypes: BTreeMap<&str, String> =
        truth.principals.iter().map(|p| (p.principal.as_str(), p.archetype.name().to_owned())).collect();
    let archetype = |who: &str| archetypes.get(who).cloned().unwrap_or_else(|| "unknown".to_owned());
    let mut e = Evaluation::default();
    for p in &truth.principals {
        *e.principals_by_archetype.entry(p.archetype.name().to_owned()).or_default() += 1;
    }
    for h in &truth.hard_negatives {
        *e.hard_negatives.windows.entry(h.kind.name().to_owned()).or_default() += 1;
    }
    for l in &truth.labels {
        let arch = archetype(&l.principal);
        let count = |f: &mut Figures, minutes: Option<f64>| {
            f.incidents += 1;
            if let Some(m) = minutes {
                f.detected += 1;
                f.ttd.push(m);
            }
        };
        let first = alerts.iter().filter(|a| !is_finding(a) && matches(a, l)).map(|a| t(&a.window_end)).min();
        let minutes = first.map(|end| (end + lateness_ms - t(&l.start)) as f64 / 60_000.0);
        count(e.by_signal.entry(l.signal.clone()).or_default(), minutes);
        count(e.by_archetype.entry(arch.clone()).or_default(), minutes);
        count(&mut e.overall, minutes);
        let any = alerts.iter().any(|a| matches(a, l));
        e.detected_any_severity += u64::from(any);
        if first.is_none() {
            e.missed.push(Missed { seed: None, archetype: arch, found_by_finding: any, label: l.clone() });
        }
    }
    for a in alerts {
        let on_incident = truth.labels.iter().any(|l| points_at(a, l));
        let kinds: Vec<String> = truth
            .hard_negatives
            .iter()
            .filter(|h| !on_incident && overlaps(a, &h.principal, &h.start, &h.end))
            .map(|h| h.kind.name().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        e.all_alerts += 1;
        e.all_true_alerts += u64::from(on_incident);
        if !kinds.is_empty() {
            let hn = &mut e.hard_negatives;
            *hn.alerts_by_severity.entry(a.severity.name().to_owned()).or_default() += 1;
            for k in &kinds {
                *hn.alerts_by_kind.entry(k.clone()).or_default().entry(a.severity.name().to_owned()).or_default() += 1;
            }
            hn.high_severity_alerts += u64::from(a.severity >= Severity::High);
        }
        if is_finding(a) {
            e.findings.total += 1;
            e.findings.on_incidents += u64::from(on_incident);
            e.findings.on_hard_negatives += u64::from(!kinds.is_empty());
            continue;
        }
        let arch = archetype(&a.principal);
        for f in [
            e.by_signal.entry(a.context.signal.clone()).or_default(),
            e.by_archetype.entry(arch.clone()).or_default(),
            &mut e.overall,
        ] {
            f.alerts += 1;
            f.true_alerts += u64::from(on_incident);
        }
        if !on_incident {
            e.false_alerts.push(FalseAlert {
                seed: None,
                detector: a.detector.clone(),
                severity: a.severity,
                principal: a.principal.clone(),
                archetype: arch,
                window_start: a.window_start.clone(),
                hard_negatives: kinds,
                summary: a.summary.clone(),
            });
        }
    }
    e.finish();
    e
}

impl Evaluation {
    fn finish(&mut self) {
        self.overall.finish();
        self.by_signal.values_mut().for_each(Figures::finish);
        self.by_archetype.values_mut().for_each(Figures::finish);
        self.precision_all_alerts = (self.all_alerts > 0).then(|| self.all_true_alerts as f64 / self.all_alerts as f64);
        self.recall_any_severity =
            (self.overall.incidents > 0).then(|| self.detected_any_severity as f64 / self.overall.incidents as f64);
    }

    /// Adds the evaluation of one seed's data set.
    fn absorb(&mut self, seed: u64, mut o: Evaluation) {
        self.seeds.push(SeedFigures {
            seed,
            figures: o.overall.clone(),
            high_severity_alerts_on_hard_negatives: o.hard_negatives.high_severity_alerts,
        });
        self.overall.add(&o.overall);
        for (map, other) in [(&mut self.by_signal, &o.by_signal), (&mut self.by_archetype, &o.by_archetype)] {
            for (k, f) in other {
                map.entry(k.clone()).or_default().add(f);
            }
        }
        for (k, n) in &o.principals_by_archetype {
            *self.principals_by_archetype.entry(k.clone()).or_default() += n;
        }
        let (hn, other) = (&mut self.hard_negatives, &o.hard_negatives);
        for (k, n) in &other.windows {
            *hn.windows.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.alerts_by_severity {
            *hn.alerts_by_severity.entry(k.clone()).or_default() += n;
        }
        for (k, by) in &other.alerts_by_kind {
            for (s, n) in by {
                *hn.alerts_by_kind.entry(k.clone()).or_default().entry(s.clone()).or_default() += n;
            }
        }
        hn.high_severity_alerts += other.high_severity_alerts;
        self.findings.total += o.findings.total;
        self.findings.on_incidents += o.findings.on_incidents;
        self.findings.on_hard_negatives += o.findings.on_hard_negatives;
        self.all_alerts += o.all_alerts;
        self.all_true_alerts += o.all_true_alerts;
        self.detected_any_severity += o.detected_any_severity;
        o.missed.iter_mut().for_each(|m| m.seed = Some(seed));
        o.false_alerts.iter_mut().for_each(|f| f.seed = Some(seed));
        self.missed.append(&mut o.missed);
        self.false_alerts.append(&mut o.false_alerts);
        self.finish();
    }
}

/// Replays `dir/logs` with `config` and scores it against what `dir` says
/// is true (`labels.jsonl`, `hard_negatives.jsonl`, `principals.jsonl`).
pub fn run(dir: &Path, mut config: PipelineConfig) -> anyhow::Result<Evaluation> {
    let truth = Truth::read(dir)?;
    // The access snapshot the generator writes beside the logs.
    let snapshot = dir.join(crate::generate::ACCESS_SNAPSHOT);
    if snapshot.exists() {
        let text = std::fs::read_to_string(&snapshot)?;
        config.access_snapshot.extend(crate::access::parse_snapshot(&snapshot.display().to_string(), &text)?);
    }
    let lateness = config.lateness.of(crate::event::Shape::AuditDelivery);
    let opts = ReplayOptions {
        inputs: vec![dir.join(LOGS_DIR)],
        alerts_out: None,
        quarantine: None,
        max_record_bytes: crate::decode::DEFAULT_MAX_RECORD_BYTES,
        progress: false,
        threads: crate::pipeline::available_threads(),
        sort: Some(crate::pipeline::SortOptions::default()),
    };
    let report = replay(&opts, config)?;
    Ok(score(&report.alerts, &truth, lateness))
}

/// An inclusive range of seeds, written `A-B` or `A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds {
    pub first: u64,
    pub last: u64,
}

impl std::str::FromStr for Seeds {
    type Err = String;

    fn from_str(s: &str) -> Result<Seeds, String> {
        let num = |x: &str| x.trim().parse::<u64>().map_err(|_| format!("`{x}` is not a seed (a whole number)"));
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(s)?, num(s)?),
        };
        if first > last {
            return Err(format!("`{s}`: the first seed is after the last"));
        }
        Ok(Seeds { first, last })
    }
}

impl std::fmt::Display for Seeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last { write!(f, "{}", self.first) } else { write!(f, "{}-{}", self.first, self.last) }
    }
}

/// Generates a data set for each seed of `seeds` (with the days and
/// principals of `template`) into a temporary directory, evaluates it with
/// `config`, and adds the figures up. `progress` hears of each seed done.
pub fn run_seeds(
    seeds: Seeds,
    template: &GenerateConfig,
    config: &PipelineConfig,
    mut progress: impl FnMut(u64, &Evaluation),
) -> anyhow::Result<Evaluation> {
    let mut all = Evaluation { days: Some(template.days), principals: Some(template.principals), ..Default::default() };
    for seed in seeds.first..=seeds.last {
        let dir = tempfile::tempdir()?;
        generate(&GenerateConfig { seed, ..template.clone() }, dir.path())?;
        let e = run(dir.path(), config.clone())?;
        progress(seed, &e);
        all.absorb(seed, e);
    }
    Ok(all)
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.2}"))
}

fn minutes(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.0}"))
}

fn counts(map: &BTreeMap<String, u64>, order: &[&str]) -> String {
    let mut parts: Vec<String> =
        order.iter().filter_map(|k| map.get(*k).map(|n| format!("{k} {n}"))).collect::<Vec<_>>();
    parts.extend(map.iter().filter(|(k, _)| !order.contains(&k.as_str())).map(|(k, n)| format!("{k} {n}")));
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

impl Evaluation {
    /// A report for humans.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let (Some(first), Some(last)) = (self.seeds.first(), self.seeds.last()) {
            let _ = writeln!(
                s,
                "seeds {}-{}: {} days × {} principals each, generated and evaluated one by one\n",
                first.seed,
                last.seed,
                self.days.unwrap_or(0),
                self.principals.unwrap_or(0)
            );
            let _ = writeln!(
                s,
                "{:<20} {:>9} {:>8} {:>7} {:>6} {:>9} {:>7} {:>11}",
                "seed", "incidents", "detected", "alerts", "true", "precision", "recall", "high_on_hn"
            );
            for sf in &self.seeds {
                let f = &sf.figures;
                let _ = writeln!(
                    s,
                    "{:<20} {:>9} {:>8} {:>7} {:>6} {:>9} {:>7} {:>11}",
                    sf.seed,
                    f.incidents,
                    f.detected,
                    f.alerts,
                    f.true_alerts,
                    ratio(f.precision),
                    ratio(f.recall),
                    sf.high_severity_alerts_on_hard_negatives
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "{:<20} {:>9} {:>8} {:>7} {:>6} {:>9} {:>7} {:>10} {:>8}",
            "signal", "incidents", "detected", "alerts", "true", "precision", "recall", "ttd_median", "ttd_max"
        );
        let row = |s: &mut String, name: &str, f: &Figures| {
            let _ = writeln!(
                s,
                "{name:<20} {:>9} {:>8} {:>7} {:>6} {:>9} {:>7} {:>10} {:>8}",
                f.incidents,
                f.detected,
                f.alerts,
                f.true_alerts,
                ratio(f.precision),
                ratio(f.recall),
                minutes(f.ttd_median_minutes),
                minutes(f.ttd_max_minutes)
            );
        };
        for (name, f) in &self.by_signal {
            row(&mut s, name, f);
        }
        row(&mut s, "all", &self.overall);
        let _ = writeln!(
            s,
            "(alerts: severity medium and above; time to detect in minutes of event time, from incident start to alert emission)\n"
        );
        let _ = writeln!(
            s,
            "{:<20} {:>10} {:>9} {:>8} {:>7} {:>6} {:>9} {:>7}",
            "archetype", "principals", "incidents", "detected", "alerts", "true", "precision", "recall"
        );
        let mut names: Vec<&String> = self.principals_by_archetype.keys().chain(self.by_archetype.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let f = self.by_archetype.get(name).cloned().unwrap_or_default();
            let _ = writeln!(
                s,
                "{name:<20} {:>10} {:>9} {:>8} {:>7} {:>6} {:>9} {:>7}",
                self.principals_by_archetype.get(name).copied().unwrap_or(0),
                f.incidents,
                f.detected,
                f.alerts,
                f.true_alerts,
                ratio(f.precision),
                ratio(f.recall)
            );
        }
        let hn = &self.hard_negatives;
        let _ = writeln!(s, "\nhard negatives (ordinary work that looks unusual; not incidents):");
        let _ = writeln!(s, "  windows: {}", counts(&hn.windows, &[]));
        let _ = writeln!(
            s,
            "  alerts pointing at them and at no incident, by severity: {}",
            counts(&hn.alerts_by_severity, &SEVERITIES)
        );
        for (kind, by) in &hn.alerts_by_kind {
            let _ = writeln!(s, "    {kind:<14} {}", counts(by, &SEVERITIES));
        }
        let _ = writeln!(s, "high-severity alerts on hard negatives: {}", hn.high_severity_alerts);
        let f = &self.findings;
        let _ = writeln!(
            s,
            "low/info findings, not counted in precision or recall: {} ({} point at incidents, {} at hard negatives)",
            f.total, f.on_incidents, f.on_hard_negatives
        );
        let _ = writeln!(
            s,
            "precision over all alerts, any severity: {} ({}/{})",
            ratio(self.precision_all_alerts),
            self.all_true_alerts,
            self.all_alerts
        );
        let _ = writeln!(
            s,
            "recall counting low/info findings too: {} ({}/{})",
            ratio(self.recall_any_severity),
            self.detected_any_severity,
            self.overall.incidents
        );
        let seed = |x: Option<u64>| x.map(|n| format!("seed {n} ")).unwrap_or_default();
        for m in &self.missed {
            let l = &m.label;
            let how = if m.found_by_finding { " (found by a low/info finding only)" } else { "" };
            let _ = writeln!(
                s,
                "missed  {}{} {} {} [{}] {}{how}: {}",
                seed(m.seed),
                l.incident,
                l.signal,
                l.principal,
                m.archetype,
                l.start,
                l.description
            );
        }
        for a in &self.false_alerts {
            let hn = if a.hard_negatives.is_empty() {
                String::new()
            } else {
                format!(" on hard negative {}", a.hard_negatives.join("+"))
            };
            let _ = writeln!(
                s,
                "false   {}{} {} {} [{}] {}{hn}: {}",
                seed(a.seed),
                a.severity.name(),
                a.detector,
                a.principal,
                a.archetype,
                a.window_start,
                a.summary
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertContext;
    use crate::event::PrincipalKind;
    use crate::generate::{Archetype, HardNegativeKind};

    fn alert(principal: &str, signal: &str, start: &str, end: &str) -> Alert {
        Alert {
            schema_version: 1,
            alert_id: String::new(),
            detector: signal.into(),
            principal: principal.into(),
            workspace_id: "0".into(),
            window_start: start.into(),
            window_end: end.into(),
            observed: 0.0,
            expected: 0.0,
            expected_low: 0.0,
            expected_high: 0.0,
            score: 100,
            p_value: 0.0,
            severity: Severity::High,
            summary: String::new(),
            evidence: vec![],
            corrects: None,
            triage: Default::default(),
            context: AlertContext {
                principal_kind: PrincipalKind::User,
                groups: vec![],
                privileges: vec![],
                signal: signal.into(),
                model: String::new(),
                baseline_age_hours: 0.0,
                baseline_samples: 0.0,
                peer_value: None,
                evidence_total: 0,
                config_version: String::new(),
            },
        }
    }

    fn label(principal: &str, signal: &str, start: &str, end: &str) -> Label {
        Label {
            incident: "inc".into(),
            principal: principal.into(),
            signal: signal.into(),
            start: start.into(),
            end: end.into(),
            description: String::new(),
            workspace_id: 0,
        }
    }

    fn truth(labels: Vec<Label>) -> Truth {
        let principals = [("a@x", Archetype::ShiftWorker), ("b@x", Archetype::Office)]
            .iter()
            .map(|(p, a)| PrincipalRecord { principal: (*p).into(), kind: PrincipalKind::User, archetype: *a })
            .collect();
        let hard_negatives = vec![HardNegative {
            principal: "a@x".into(),
            kind: HardNegativeKind::NightWork,
            start: "2024-01-07T00:00:00Z".into(),
            end: "2024-01-07T08:00:00Z".into(),
            description: String::new(),
        }];
        Truth { labels, hard_negatives, principals }
    }

    #[test]
    fn precision_recall_and_time_to_detect() {
        let labels = vec![
            label("a@x", "query_frequency", "2024-01-05T02:00:00Z", "2024-01-05T04:00:00Z"),
            label("b@x", "secret_read", "2024-01-06T10:00:00Z", "2024-01-06T11:00:00Z"),
        ];
        let alerts = [
            alert("a@x", "query_frequency", "2024-01-05T03:00:00Z", "2024-01-05T04:00:00Z"),
            alert("a@x", "query_frequency", "2024-01-05T02:00:00Z", "2024-01-05T03:00:00Z"),
            alert("a@x", "query_frequency", "2024-01-07T02:00:00Z", "2024-01-07T03:00:00Z"),
            alert("b@x", "query_frequency", "2024-01-06T10:00:00Z", "2024-01-06T11:00:00Z"),
        ];
        let e = score(&alerts, &truth(labels), 15 * 60_000);
        // The query alert on b@x points at b's incident (another signal):
        // true, but it does not detect it.
        assert_eq!((e.overall.incidents, e.overall.detected, e.overall.alerts, e.overall.true_alerts), (2, 1, 4, 3));
        assert_eq!(e.overall.precision, Some(0.75));
        assert_eq!(e.overall.recall, Some(0.5));
        assert_eq!(e.by_signal["query_frequency"].ttd_median_minutes, Some(75.0));
        assert_eq!(e.missed.len(), 1);
        assert_eq!(e.false_alerts.len(), 1);
        assert_eq!(e.by_signal["secret_read"].recall, Some(0.0));
        // Per archetype: a@x is a shift worker, b@x an office worker.
        let shift = &e.by_archetype["shift_worker"];
        assert_eq!((shift.incidents, shift.detected, shift.alerts, shift.true_alerts), (1, 1, 3, 2));
        let office = &e.by_archetype["office"];
        assert_eq!((office.incidents, office.detected, office.alerts, office.true_alerts), (1, 0, 1, 1));
        // The false alert falls in a@x's night shift: a high one on a hard negative.
        assert_eq!(e.hard_negatives.high_severity_alerts, 1);
        assert_eq!(e.hard_negatives.alerts_by_kind["night_work"]["high"], 1);
        assert_eq!(e.false_alerts[0].hard_negatives, ["night_work"]);
        assert!(e.render().contains("high-severity alerts on hard negatives: 1"), "{}", e.render());
    }

    #[test]
    fn low_and_info_alerts_are_findings_apart() {
        let labels = vec![label("b@x", "secret_read", "2024-01-06T10:00:00Z", "2024-01-06T11:00:00Z")];
        let mut finding = alert("b@x", "secret_read", "2024-01-06T10:00:00Z", "2024-01-06T11:00:00Z");
        finding.severity = Severity::Low;
        let mut night = alert("a@x", "query_frequency", "2024-01-07T02:00:00Z", "2024-01-07T03:00:00Z");
        night.severity = Severity::Info;
        let e = score(&[finding, night], &truth(labels), 0);
        assert_eq!((e.overall.alerts, e.overall.detected, e.overall.precision), (0, 0, None));
        assert_eq!(e.findings, Findings { total: 2, on_incidents: 1, on_hard_negatives: 1 });
        assert_eq!((e.detected_any_severity, e.recall_any_severity), (1, Some(1.0)));
        assert_eq!((e.all_alerts, e.all_true_alerts, e.precision_all_alerts), (2, 1, Some(0.5)));
        assert!(e.missed[0].found_by_finding);
        assert_eq!(e.hard_negatives.alerts_by_severity["info"], 1);
        assert_eq!(e.hard_negatives.high_severity_alerts, 0);
    }

    #[test]
    fn seeds_parse_and_add_up() {
        assert_eq!("3-7".parse::<Seeds>(), Ok(Seeds { first: 3, last: 7 }));
        assert_eq!("5".parse::<Seeds>(), Ok(Seeds { first: 5, last: 5 }));
        assert!("7-3".parse::<Seeds>().is_err());
        assert!("a-b".parse::<Seeds>().is_err());
        let labels = vec![label("a@x", "query_frequency", "2024-01-05T02:00:00Z", "2024-01-05T04:00:00Z")];
        let alerts = [alert("a@x", "query_frequency", "2024-01-05T03:00:00Z", "2024-01-05T04:00:00Z")];
        let one = score(&alerts, &truth(labels.clone()), 0);
        let none = score(&[], &truth(labels), 0);
        let mut all = Evaluation::default();
        all.absorb(1, one);
        all.absorb(2, none);
        assert_eq!((all.overall.incidents, all.overall.detected, all.overall.recall), (2, 1, Some(0.5)));
        assert_eq!(all.principals_by_archetype["office"], 2);
        assert_eq!(all.missed[0].seed, Some(2));
        assert_eq!(all.seeds.iter().map(|s| s.figures.detected).collect::<Vec<_>>(), [1, 0]);
    }
}
