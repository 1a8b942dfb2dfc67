//! Alerts: the schema every sink writes, and deterministic alert ids.
//!
//! Owns [`Alert`] (documented field by field in the README: the schema is a
//! contract with SIEMs), its id, and severity. An alert is built once and
//! never rewritten. Nothing here decides whether to alert.

pub mod triage;

use crate::event::PrincipalKind;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
pub use triage::{Attack, Confidence};

/// Version of the alert schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// From its name (`info`, `low`, `medium`, `high`, `critical`).
    pub fn parse(name: &str) -> Option<Severity> {
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
            .into_iter()
            .find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Who the alert is about, and what a reviewer should know of the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertContext {
    pub principal_kind: PrincipalKind,
    /// Groups the principal is known to belong to (from the access model).
    pub groups: Vec<String>,
    /// Privileges the principal is known to hold (from the access model).
    pub privileges: Vec<String>,
    /// The signal the detector scores.
    pub signal: String,
    /// The model that produced the score.
    pub model: String,
    /// Hours between the principal's first event and the window's end.
    pub baseline_age_hours: f64,
    /// Discounted number of past buckets behind the expected value.
    pub baseline_samples: f64,
    /// Mean value of the same slot over principals of the same kind.
    pub peer_value: Option<f64>,
    /// Events in the window (the evidence list holds at most the first few).
    pub evidence_total: u64,
    /// Hash of the detector definition that produced the alert.
    pub config_version: String,
}

/// One alert, as written to every sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema_version: u32,
    /// Deterministic: see [`alert_id`].
    pub alert_id: String,
    pub detector: String,
    pub principal: String,
    /// Smallest workspace id among the events of the window (`"0"` for account level).
    pub workspace_id: String,
    /// RFC 3339, UTC.
    pub window_start: String,
    pub window_end: String,
    pub observed: f64,
    pub expected: f64,
    /// Central 95% predictive interval of the expected value.
    pub expected_low: f64,
    pub expected_high: f64,
    /// 0–100, from `p_value` (see `baseline::score_of`).
    pub score: u8,
    pub p_value: f64,
    pub severity: Severity,
    /// One sentence an on-call engineer understands without the docs.
    pub summary: String,
    /// Ids (`requestId`/`event_id`) of the events behind the alert.
    pub evidence: Vec<String>,
    /// The alert this one corrects: set when a billing correction
    /// (`RETRACTION`/`RESTATEMENT` rows) changed the verdict of an hour
    /// already judged. Alerts are never rewritten; the correction is a new
    /// alert that names the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrects: Option<String>,
    /// ATT&CK mapping, runbook, confidence and risk (see [`triage`]).
    #[serde(flatten)]
    pub triage: Triage,
    pub context: AlertContext,
}

/// What the person who triages an alert is told besides its summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Triage {
    /// MITRE ATT&CK tactics and techniques the detector stands for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack: Vec<Attack>,
    /// The first things to check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runbook: Vec<String>,
    /// 0–100: how sure the detector is the finding is real.
    #[serde(default)]
    pub confidence: u8,
    /// 0–100: `weight(severity) × confidence / 100` (see [`triage`]).
    #[serde(default)]
    pub risk_score: u8,
}

impl Alert {
    /// Recomputes the risk score after the severity changed.
    pub fn rescore(&mut self) {
        self.triage.risk_score = triage::risk_score(self.severity, self.triage.confidence);
    }
}

/// The alert id: the first 128 bits of SHA-256 over detector, principal,
/// window start (ms) and config version, hex. The same input always gives
/// the same id, in replay and live.
pub fn alert_id(detector: &str, principal: &str, window_start_ms: i64, config_version: &str) -> String {
    let mut h = Sha256::new();
    for part in [detector.as_bytes(), principal.as_bytes(), &window_start_ms.to_be_bytes(), config_version.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(&h.finalize()[..16])
}

/// A short hash of a definition's text: its config version.
pub fn config_version(definition_text: &str) -> String {
    hex::encode(&Sha256::digest(definition_text.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = alert_id("query_frequency", "a@x", 1000, "v1");
        assert_eq!(a, alert_id("query_frequency", "a@x", 1000, "v1"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, alert_id("query_frequency", "a@x", 1001, "v1"));
        assert_ne!(a, alert_id("query_frequency", "a@x", 1000, "v2"));
        // Length-prefixing keeps field boundaries: "ab"+"c" differs from "a"+"bc".
        assert_ne!(alert_id("ab", "c", 0, ""), alert_id("a", "bc", 0, ""));
    }
}
