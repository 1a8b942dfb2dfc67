//! Evaluation: replays a generated data set and compares the alerts with
//! its labels.
//!
//! An incident is detected when an alert names its principal and its
//! signal (the detector's name or the signal it scores) in a window that
//! overlaps the incident's. An alert is true when it points at an incident:
//! same principal, overlapping window, whichever signal showed it (an extra
//! job run at night shows in runtime and in query frequency alike).
//! Precision is true alerts over all alerts; recall is detected incidents
//! over all incidents; time to detect is from the incident's
//! start to when its first matching alert could be emitted (window end plus
//! the allowed lateness, in event time). Signals without a detector are
//! reported as such and count as missed.

use crate::alert::Alert;
use crate::generate::{LOGS_DIR, Label, read_labels};
use crate::pipeline::{PipelineConfig, ReplayOptions, replay};
use crate::time::EventTime;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// Figures of one group (a signal, or everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub incidents: u64,
    pub detected: u64,
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
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub overall: Figures,
    pub by_signal: BTreeMap<String, Figures>,
    /// Incidents no alert matched.
    pub missed: Vec<Label>,
    /// Alerts that matched no incident: (detector, principal, window start, summary).
    pub false_alerts: Vec<(String, String, String, String)>,
    /// Low and info alerts of the rule catalogue, not counted in precision (see [`is_notice`]).
    pub notices: u64,
}

fn t(s: &str) -> i64 {
    EventTime::parse(s).map(|t| t.0).unwrap_or(0)
}

/// The alert points at the incident: same principal, overlapping windows.
fn points_at(a: &Alert, l: &Label) -> bool {
    a.principal == l.principal && t(&a.window_start) < t(&l.end) && t(&l.start) < t(&a.window_end)
}

/// The alert detects the incident: it points at it through its signal.
pub fn matches(a: &Alert, l: &Label) -> bool {
    points_at(a, l) && (a.detector == l.signal || a.context.signal == l.signal)
}

/// Scores `alerts` against `labels`; `lateness_ms` is added to time to detect.
pub fn score(alerts: &[Alert], labels: &[Label], lateness_ms: i64) -> Evaluation {
    let mut by_signal: BTreeMap<String, Figures> = BTreeMap::new();
    let mut overall = Figures::default();
    let mut missed = Vec::new();
    for l in labels {
        let f = by_signal.entry(l.signal.clone()).or_default();
        f.incidents += 1;
        overall.incidents += 1;
        let first = alerts.iter().filter(|a| matches(a, l)).map(|a| t(&a.window_end)).min();
        match first {
            Some(end) => {
                let minutes = (end + lateness_ms - t(&l.start)) as f64 / 60_000.0;
                f.detected += 1;
                f.ttd.push(minutes);
                overall.detected += 1;
                overall.ttd.push(minutes);
            }
            None => missed.push(l.clone()),
        }
    }
    let mut false_alerts = Vec::new();
    let mut notices = 0;
    for a in alerts {
        if is_notice(a) {
            notices += 1;
            continue;
        }
        let f = by_signal.entry(a.context.signal.clone()).or_default();
        f.alerts += 1;
        overall.alerts += 1;
        if labels.iter().any(|l| points_at(a, l)) {
            f.true_alerts += 1;
            overall.true_alerts += 1;
        } else {
            false_alerts.push((a.detector.clone(), a.principal.clone(), a.window_start.clone(), a.summary.clone()));
        }
    }
    overall.finish();
    by_signal.values_mut().for_each(Figures::finish);
    Evaluation { overall, by_signal, missed, false_alerts, notices }
}

/// A rule-catalogue alert of low or info severity records a fact (a group
/// created, a user deleted, a token revoked): admins do these things every
/// day, and the generator does not label them. Such notices still detect
/// incidents, but they do not count in precision.
pub fn is_notice(a: &Alert) -> bool {
    a.context.model == "match" && a.severity <= crate::alert::Severity::Low
}

/// Replays `dir/logs` with `config` and scores it against `dir/labels.jsonl`.
pub fn run(dir: &Path, mut config: PipelineConfig) -> anyhow::Result<Evaluation> {
    let labels = read_labels(&dir.join("labels.jsonl"))?;
    // The access snapshot the generator writes beside the logs.
    let snapshot = dir.join(crate::generate::ACCESS_SNAPSHOT);
    if snapshot.exists() {
        let text = std::fs::read_to_string(&snapshot)?;
        config.access_snapshot.extend(crate::access::parse_snapshot(&snapshot.display().to_string(), &text)?);
    }
    let lateness = config.allowed_lateness_ms;
    let opts = ReplayOptions {
        inputs: vec![dir.join(LOGS_DIR)],
        alerts_out: None,
        quarantine: None,
        max_record_bytes: crate::decode::DEFAULT_MAX_RECORD_BYTES,
        progress: false,
        parallel_decode: true,
    };
    let report = replay(&opts, config)?;
    Ok(score(&report.alerts, &labels, lateness))
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.2}", v))
}

fn minutes(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.0}"))
}

impl Evaluation {
    /// A table for humans.
    pub fn render(&self) -> String {
        let mut s = String::new();
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
                pct(f.precision),
                pct(f.recall),
                minutes(f.ttd_median_minutes),
                minutes(f.ttd_max_minutes)
            );
        };
        for (name, f) in &self.by_signal {
            row(&mut s, name, f);
        }
        row(&mut s, "all", &self.overall);
        let _ = writeln!(s, "(time to detect in minutes of event time, from incident start to alert emission)");
        if self.notices > 0 {
            let _ = writeln!(
                s,
                "{} low/info rule-catalogue notices (facts such as a user deleted) not counted in precision",
                self.notices
            );
        }
        for l in &self.missed {
            let _ = writeln!(s, "missed  {} {} {} {}: {}", l.incident, l.signal, l.principal, l.start, l.description);
        }
        for (d, p, w, summary) in &self.false_alerts {
            let _ = writeln!(s, "false   {d} {p} {w}: {summary}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertContext, Severity};
    use crate::event::PrincipalKind;

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

    #[test]
    fn precision_recall_and_time_to_detect() {
        let labels = [
            label("a@x", "query_frequency", "2024-01-05T02:00:00Z", "2024-01-05T04:00:00Z"),
            label("b@x", "secret_read", "2024-01-06T10:00:00Z", "2024-01-06T11:00:00Z"),
        ];
        let alerts = [
            alert("a@x", "query_frequency", "2024-01-05T03:00:00Z", "2024-01-05T04:00:00Z"),
            alert("a@x", "query_frequency", "2024-01-05T02:00:00Z", "2024-01-05T03:00:00Z"),
            alert("a@x", "query_frequency", "2024-01-07T02:00:00Z", "2024-01-07T03:00:00Z"),
            alert("b@x", "query_frequency", "2024-01-06T10:00:00Z", "2024-01-06T11:00:00Z"),
        ];
        let e = score(&alerts, &labels, 15 * 60_000);
        // The query alert on b@x points at b's incident (another signal):
        // true, but it does not detect it.
        assert_eq!((e.overall.incidents, e.overall.detected, e.overall.alerts, e.overall.true_alerts), (2, 1, 4, 3));
        assert_eq!(e.overall.precision, Some(0.75));
        assert_eq!(e.overall.recall, Some(0.5));
        assert_eq!(e.by_signal["query_frequency"].ttd_median_minutes, Some(75.0));
        assert_eq!(e.missed.len(), 1);
        assert_eq!(e.false_alerts.len(), 1);
        assert_eq!(e.by_signal["secret_read"].recall, Some(0.0));
    }
}
