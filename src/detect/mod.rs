//! Detect: event-time buckets, closed by the watermark, scored by detectors.
//!
//! Owns bucketing, the late-event rule and the decision to alert. The
//! watermark is the largest event time seen minus the allowed lateness;
//! a bucket closes when the watermark passes its end. **Late-event rule:**
//! an event whose bucket has already closed when it arrives is counted as
//! late and not added to any bucket: a closed bucket's score is never
//! rewritten. Detectors see closed buckets in time order per principal,
//! and principals of one bucket in name order, so the alerts do not depend
//! on arrival order within the allowed lateness.

pub mod access;
pub mod allowlist;
pub mod buckets;
pub mod count;
pub mod definition;
pub mod evidence;
pub mod jit;
pub mod novelty;
pub mod registry;
pub mod rules;
pub mod share_down;
pub mod value;

use crate::time::EventTime;

/// Default allowed lateness: Databricks may deliver audit events up to
/// about 15 minutes late.
pub const DEFAULT_ALLOWED_LATENESS_MS: i64 = 15 * crate::time::MS_PER_MINUTE;

/// The event-time watermark.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    max_seen: Option<EventTime>,
    lateness_ms: i64,
}

impl Watermark {
    pub fn new(lateness_ms: i64) -> Self {
        Watermark { max_seen: None, lateness_ms }
    }

    pub fn observe(&mut self, t: EventTime) {
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
    }

    /// Everything before this time is complete.
    pub fn current(&self) -> EventTime {
        self.max_seen.map_or(EventTime(i64::MIN), |m| EventTime(m.0 - self.lateness_ms))
    }
}

/// A figure for an alert, to two decimals.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A rule's finding: a fact, not a probability, so its alert has score 100,
/// p-value 0 and nothing expected. One constructor for every rule, so the
/// alerts of all rules read alike.
pub struct Fact<'a> {
    pub def: &'a definition::Definition,
    pub principal: &'a str,
    pub kind: crate::event::PrincipalKind,
    pub workspace: u64,
    pub start: i64,
    pub end: i64,
    /// The figure the summary counts (actions, hours, principals exposed).
    pub observed: u64,
    /// Events behind the alert (evidence lists at most `evidence_limit`).
    pub evidence_total: u64,
    pub summary: String,
    pub evidence: Vec<String>,
}

impl Fact<'_> {
    pub fn alert(self) -> crate::alert::Alert {
        use crate::alert::{Alert, SCHEMA_VERSION, alert_id};
        let def = self.def;
        Alert {
            schema_version: SCHEMA_VERSION,
            alert_id: alert_id(&def.name, self.principal, self.start, &def.config_version),
            detector: def.name.clone(),
            principal: self.principal.to_owned(),
            workspace_id: self.workspace.to_string(),
            window_start: EventTime(self.start).to_string(),
            window_end: EventTime(self.end).to_string(),
            observed: self.observed as f64,
            expected: 0.0,
            expected_low: 0.0,
            expected_high: 0.0,
            score: 100,
            p_value: 0.0,
            severity: def.severity,
            summary: self.summary,
            evidence: self.evidence,
            context: def.context(self.kind, 0.0, 0.0, None, self.evidence_total),
        }
    }
}
