//! Allowlist: alerts a team has decided not to see, for a while, with a
//! name and a reason attached.
//!
//! An entry names a detector (or `*` for all of them) and a principal, who
//! owns the decision, why, and until when. It is a filter after detection:
//! baselines learn from everything, so when the entry expires the
//! principal is judged exactly as if the entry had never existed. Expiry is
//! compared with the alert's window start, in event time, so a replay of
//! last month drops the same alerts the live process dropped then. Every
//! dropped alert is counted under its entry.
//!
//! ```toml
//! [[allow]]
//! detector = "query_frequency"          # or "*" for every detector
//! principal = "etl-backfill@acme.example"
//! owner = "data-platform@acme.example"
//! reason = "Backfill of the 2023 orders, ticket DP-1234"
//! expires = "2024-02-01"                # RFC 3339, YYYY-MM-DD[ HH:MM:SS] (UTC) or epoch
//! ```

use crate::alert::Alert;
use crate::event::set_principal;
use crate::time::EventTime;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    allow: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    detector: String,
    principal: String,
    owner: String,
    reason: String,
    expires: String,
}

/// One validated entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `None` matches every detector.
    pub detector: Option<String>,
    /// Normalized like event principals.
    pub principal: String,
    pub owner: String,
    pub reason: String,
    pub expires: EventTime,
    /// Alerts this entry dropped.
    pub dropped: u64,
}

/// Everything wrong with an allowlist file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {}", problems.join("; "))]
pub struct AllowlistError {
    pub file: String,
    pub problems: Vec<String>,
}

/// The entries in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allowlist {
    pub entries: Vec<Entry>,
}

impl Allowlist {
    /// Parses and validates one allowlist file's text; `detectors` are the
    /// detector names in use (an entry naming another is refused, so a typo
    /// cannot silently allow nothing).
    pub fn parse(file: &str, text: &str, detectors: &[&str]) -> Result<Allowlist, AllowlistError> {
        let fail = |problems: Vec<String>| AllowlistError { file: file.to_owned(), problems };
        let raw: RawFile = toml::from_str(text).map_err(|e| fail(vec![e.message().to_owned()]))?;
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        for (i, e) in raw.allow.into_iter().enumerate() {
            let at = format!("allow[{i}]");
            let detector = match e.detector.as_str() {
                "*" => None,
                d if detectors.contains(&d) => Some(d.to_owned()),
                d => {
                    problems.push(format!("{at}.detector: `{d}`; allowed: *, {}", detectors.join(", ")));
                    None
                }
            };
            let mut principal = String::new();
            set_principal(&mut principal, &e.principal);
            if principal.is_empty() {
                problems.push(format!("{at}.principal: empty; allowed: an email or service principal application id"));
            }
            for (key, v) in [("owner", &e.owner), ("reason", &e.reason)] {
                if v.trim().is_empty() {
                    problems.push(format!("{at}.{key}: empty; every entry says who decided it and why"));
                }
            }
            let expires = match EventTime::parse(&e.expires) {
                Ok(t) => t,
                Err(err) => {
                    problems.push(format!(
                        "{at}.expires: `{}` ({err}); allowed: RFC 3339, YYYY-MM-DD[ HH:MM:SS] UTC, epoch s or ms",
                        e.expires
                    ));
                    EventTime(0)
                }
            };
            entries.push(Entry {
                detector,
                principal,
                owner: e.owner.trim().to_owned(),
                reason: e.reason.trim().to_owned(),
                expires,
                dropped: 0,
            });
        }
        if problems.is_empty() { Ok(Allowlist { entries }) } else { Err(fail(problems)) }
    }

    /// Whether an entry in force covers `alert`; counts it under the first
    /// such entry.
    pub fn drops(&mut self, alert: &Alert) -> bool {
        let Ok(start) = EventTime::parse(&alert.window_start) else { return false };
        let hit = self.entries.iter_mut().find(|e| {
            e.principal == alert.principal
                && e.detector.as_deref().is_none_or(|d| d == alert.detector)
                && start < e.expires
        });
        match hit {
            Some(e) => {
                e.dropped += 1;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertContext, Severity};
    use crate::event::PrincipalKind;

    const FILE: &str = r#"
[[allow]]
detector = "query_frequency"
principal = "ETL@Acme.example"
owner = "data-platform@acme.example"
reason = "Backfill, DP-1234"
expires = "2024-02-01"

[[allow]]
detector = "*"
principal = "pentest@acme.example"
owner = "security@acme.example"
reason = "Red team exercise"
expires = "2024-01-10T18:00:00Z"
"#;

    fn alert(detector: &str, principal: &str, start: &str) -> Alert {
        Alert {
            schema_version: 1,
            alert_id: String::new(),
            detector: detector.into(),
            principal: principal.into(),
            workspace_id: String::new(),
            window_start: start.into(),
            window_end: start.into(),
            observed: 0.0,
            expected: 0.0,
            expected_low: 0.0,
            expected_high: 0.0,
            score: 0,
            p_value: 1.0,
            severity: Severity::Medium,
            summary: String::new(),
            evidence: Vec::new(),
            corrects: None,
            triage: Default::default(),
            context: AlertContext {
                principal_kind: PrincipalKind::User,
                groups: Vec::new(),
                privileges: Vec::new(),
                signal: String::new(),
                model: String::new(),
                baseline_age_hours: 0.0,
                baseline_samples: 0.0,
                peer_value: None,
                evidence_total: 0,
                config_version: String::new(),
            },
        }
    }

    #[test]
    fn entries_drop_matching_alerts_until_they_expire() {
        let mut a = Allowlist::parse("allow.toml", FILE, &["query_frequency", "cost"]).unwrap();
        assert!(a.drops(&alert("query_frequency", "etl@acme.example", "2024-01-31T23:00:00.000Z")));
        assert!(!a.drops(&alert("query_frequency", "etl@acme.example", "2024-02-01T00:00:00.000Z")), "expired");
        assert!(!a.drops(&alert("cost", "etl@acme.example", "2024-01-05T00:00:00.000Z")), "other detector");
        assert!(a.drops(&alert("cost", "pentest@acme.example", "2024-01-10T17:00:00.000Z")));
        assert!(!a.drops(&alert("cost", "pentest@acme.example", "2024-01-10T18:00:00.000Z")));
        assert_eq!(a.entries.iter().map(|e| e.dropped).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn every_problem_is_named() {
        let text = FILE
            .replace("detector = \"query_frequency\"", "detector = \"query_freq\"")
            .replace("reason = \"Red team exercise\"", "reason = \" \"")
            .replace("expires = \"2024-02-01\"", "expires = \"soon\"");
        let err = Allowlist::parse("allow.toml", &text, &["query_frequency"]).unwrap_err().to_string();
        assert!(err.starts_with("allow.toml: "), "{err}");
        assert!(err.contains("allow[0].detector: `query_freq`; allowed: *, query_frequency"), "{err}");
        assert!(err.contains("allow[0].expires: `soon`"), "{err}");
        assert!(err.contains("allow[1].reason: empty"), "{err}");
        let missing = FILE.replace("owner = \"security@acme.example\"\n", "");
        let err = Allowlist::parse("allow.toml", &missing, &["query_frequency"]).unwrap_err().to_string();
        assert!(err.contains("owner"), "{err}");
    }
}
