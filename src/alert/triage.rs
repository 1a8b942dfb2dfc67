//! What an alert tells the person who triages it besides the summary: the
//! MITRE ATT&CK tactics and techniques it stands for, the first things to
//! check, and a risk score that ranks alerts across detectors.
//!
//! Risk is `weight(severity) × confidence / 100`, rounded:
//!
//! | severity | weight |
//! |---|---|
//! | info | 20 |
//! | low | 40 |
//! | medium | 60 |
//! | high | 80 |
//! | critical | 100 |
//!
//! Confidence (0–100) is how sure the detector is that the finding is
//! real: for a rule, the level its definition declares (`high` 90,
//! `medium` 60, `low` 30); for a statistical model, its score (which comes
//! from the p-value), capped by the declared level when one is given. So a
//! revoked token (info, a fact) ranks 18 and a burst of failed sign-ins
//! (medium, a fact) 54, whatever their scores.

use super::Severity;
use serde::{Deserialize, Serialize};

/// The ATT&CK matrix the ids come from.
pub const ATTACK_VERSION: &str = "16";

/// Enterprise tactics, by id.
const TACTICS: &[(&str, &str)] = &[
    ("TA0043", "Reconnaissance"),
    ("TA0042", "Resource Development"),
    ("TA0001", "Initial Access"),
    ("TA0002", "Execution"),
    ("TA0003", "Persistence"),
    ("TA0004", "Privilege Escalation"),
    ("TA0005", "Defense Evasion"),
    ("TA0006", "Credential Access"),
    ("TA0007", "Discovery"),
    ("TA0008", "Lateral Movement"),
    ("TA0009", "Collection"),
    ("TA0011", "Command and Control"),
    ("TA0010", "Exfiltration"),
    ("TA0040", "Impact"),
];

/// Enterprise techniques and sub-techniques a cloud data platform's audit
/// log can show, by id. A definition may name another one by giving its
/// name too (`technique_name`).
const TECHNIQUES: &[(&str, &str)] = &[
    ("T1020", "Automated Exfiltration"),
    ("T1021", "Remote Services"),
    ("T1021.007", "Cloud Services"),
    ("T1037", "Boot or Logon Initialization Scripts"),
    ("T1048", "Exfiltration Over Alternative Protocol"),
    ("T1053", "Scheduled Task/Job"),
    ("T1059", "Command and Scripting Interpreter"),
    ("T1059.006", "Python"),
    ("T1069", "Permission Groups Discovery"),
    ("T1069.003", "Cloud Groups"),
    ("T1070", "Indicator Removal"),
    ("T1072", "Software Deployment Tools"),
    ("T1078", "Valid Accounts"),
    ("T1078.001", "Default Accounts"),
    ("T1078.004", "Cloud Accounts"),
    ("T1087", "Account Discovery"),
    ("T1087.004", "Cloud Account"),
    ("T1090", "Proxy"),
    ("T1098", "Account Manipulation"),
    ("T1098.001", "Additional Cloud Credentials"),
    ("T1098.003", "Additional Cloud Roles"),
    ("T1105", "Ingress Tool Transfer"),
    ("T1110", "Brute Force"),
    ("T1110.001", "Password Guessing"),
    ("T1110.003", "Password Spraying"),
    ("T1110.004", "Credential Stuffing"),
    ("T1119", "Automated Collection"),
    ("T1133", "External Remote Services"),
    ("T1136", "Create Account"),
    ("T1136.003", "Cloud Account"),
    ("T1190", "Exploit Public-Facing Application"),
    ("T1195", "Supply Chain Compromise"),
    ("T1195.001", "Compromise Software Dependencies and Development Tools"),
    ("T1195.002", "Compromise Software Supply Chain"),
    ("T1199", "Trusted Relationship"),
    ("T1204", "User Execution"),
    ("T1213", "Data from Information Repositories"),
    ("T1484", "Domain or Tenant Policy Modification"),
    ("T1484.002", "Trust Modification"),
    ("T1485", "Data Destruction"),
    ("T1489", "Service Stop"),
    ("T1490", "Inhibit System Recovery"),
    ("T1496", "Resource Hijacking"),
    ("T1496.001", "Compute Hijacking"),
    ("T1525", "Implant Internal Image"),
    ("T1526", "Cloud Service Discovery"),
    ("T1528", "Steal Application Access Token"),
    ("T1530", "Data from Cloud Storage"),
    ("T1531", "Account Access Removal"),
    ("T1537", "Transfer Data to Cloud Account"),
    ("T1538", "Cloud Service Dashboard"),
    ("T1546", "Event Triggered Execution"),
    ("T1548", "Abuse Elevation Control Mechanism"),
    ("T1548.005", "Temporary Elevated Cloud Access"),
    ("T1550", "Use Alternate Authentication Material"),
    ("T1550.001", "Application Access Token"),
    ("T1550.004", "Web Session Cookie"),
    ("T1552", "Unsecured Credentials"),
    ("T1552.001", "Credentials In Files"),
    ("T1552.004", "Private Keys"),
    ("T1552.005", "Cloud Instance Metadata API"),
    ("T1555", "Credentials from Password Stores"),
    ("T1555.006", "Cloud Secrets Management Stores"),
    ("T1556", "Modify Authentication Process"),
    ("T1556.006", "Multi-Factor Authentication"),
    ("T1556.007", "Hybrid Identity"),
    ("T1562", "Impair Defenses"),
    ("T1562.001", "Disable or Modify Tools"),
    ("T1562.007", "Disable or Modify Cloud Firewall"),
    ("T1562.008", "Disable or Modify Cloud Logs"),
    ("T1565", "Data Manipulation"),
    ("T1565.001", "Stored Data Manipulation"),
    ("T1567", "Exfiltration Over Web Service"),
    ("T1567.002", "Exfiltration to Cloud Storage"),
    ("T1578", "Modify Cloud Compute Infrastructure"),
    ("T1580", "Cloud Infrastructure Discovery"),
    ("T1606", "Forge Web Credentials"),
    ("T1619", "Cloud Storage Object Discovery"),
    ("T1621", "Multi-Factor Authentication Request Generation"),
    ("T1648", "Serverless Execution"),
    ("T1651", "Cloud Administration Command"),
];

fn name_in(table: &[(&str, &'static str)], id: &str) -> Option<&'static str> {
    table.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

/// One tactic and technique, as written in a definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttack {
    tactic: String,
    technique: String,
    #[serde(default)]
    technique_name: Option<String>,
}

/// One ATT&CK mapping of an alert: a tactic, a technique and, when the
/// definition names one, its sub-technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attack {
    pub tactic_id: String,
    pub tactic: String,
    pub technique_id: String,
    pub technique: String,
    /// Null when the definition names a technique, not a sub-technique.
    /// (Always written: checkpoints are positional.)
    #[serde(default)]
    pub subtechnique_id: Option<String>,
    #[serde(default)]
    pub subtechnique: Option<String>,
}

impl Attack {
    /// Validates a raw entry; problems are pushed.
    pub fn from_raw(raw: &RawAttack, problems: &mut Vec<String>) -> Option<Attack> {
        let Some(tactic) = name_in(TACTICS, &raw.tactic) else {
            let known: Vec<&str> = TACTICS.iter().map(|(i, _)| *i).collect();
            problems.push(format!("key `attack.tactic`: `{}`; allowed: {}", raw.tactic, known.join(", ")));
            return None;
        };
        let id = raw.technique.as_str();
        let well_formed = id.len() >= 5
            && id.starts_with('T')
            && id[1..5].bytes().all(|b| b.is_ascii_digit())
            && (id.len() == 5 || (id.len() == 9 && &id[5..6] == "." && id[6..].bytes().all(|b| b.is_ascii_digit())));
        if !well_formed {
            problems.push(format!("key `attack.technique`: `{id}`; allowed: an ATT&CK id such as T1098 or T1098.001"));
            return None;
        }
        let named = |id: &str| name_in(TECHNIQUES, id).map(str::to_owned);
        let given = raw.technique_name.clone();
        let (parent, sub) = match id.split_once('.') {
            Some((parent, _)) => (parent, Some(id)),
            None => (id, None),
        };
        let Some(parent_name) = named(parent).or_else(|| sub.is_none().then(|| given.clone()).flatten()) else {
            problems.push(format!(
                "key `attack.technique`: `{parent}` is not in the built-in table: give `technique_name`"
            ));
            return None;
        };
        let sub_name = match sub {
            None => None,
            Some(s) => match named(s).or(given) {
                Some(n) => Some(n),
                None => {
                    problems.push(format!(
                        "key `attack.technique`: `{s}` is not in the built-in table: give `technique_name`"
                    ));
                    return None;
                }
            },
        };
        Some(Attack {
            tactic_id: raw.tactic.clone(),
            tactic: tactic.to_owned(),
            technique_id: parent.to_owned(),
            technique: parent_name,
            subtechnique_id: sub.map(str::to_owned),
            subtechnique: sub_name,
        })
    }

    /// The page of the most specific id on attack.mitre.org.
    pub fn reference(&self) -> String {
        match &self.subtechnique_id {
            Some(s) => format!("https://attack.mitre.org/techniques/{}", s.replace('.', "/")),
            None => format!("https://attack.mitre.org/techniques/{}", self.technique_id),
        }
    }

    pub fn tactic_reference(&self) -> String {
        format!("https://attack.mitre.org/tactics/{}", self.tactic_id)
    }
}

/// How sure a definition says its findings are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn parse(s: &str) -> Option<Confidence> {
        match s {
            "low" => Some(Confidence::Low),
            "medium" => Some(Confidence::Medium),
            "high" => Some(Confidence::High),
            _ => None,
        }
    }

    /// 0–100.
    pub fn percent(self) -> u8 {
        match self {
            Confidence::Low => 30,
            Confidence::Medium => 60,
            Confidence::High => 90,
        }
    }
}

/// The weight of a severity in the risk score.
pub fn weight(s: Severity) -> u32 {
    match s {
        Severity::Info => 20,
        Severity::Low => 40,
        Severity::Medium => 60,
        Severity::High => 80,
        Severity::Critical => 100,
    }
}

/// `weight(severity) × confidence / 100`, rounded (0–100).
pub fn risk_score(severity: Severity, confidence: u8) -> u8 {
    ((weight(severity) * u32::from(confidence.min(100)) + 50) / 100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(tactic: &str, technique: &str) -> RawAttack {
        RawAttack { tactic: tactic.into(), technique: technique.into(), technique_name: None }
    }

    #[test]
    fn sub_techniques_name_their_parent() {
        let mut problems = Vec::new();
        let a = Attack::from_raw(&raw("TA0006", "T1110.003"), &mut problems).unwrap();
        assert!(problems.is_empty());
        assert_eq!((a.tactic.as_str(), a.technique.as_str()), ("Credential Access", "Brute Force"));
        assert_eq!(a.subtechnique.as_deref(), Some("Password Spraying"));
        assert_eq!(a.reference(), "https://attack.mitre.org/techniques/T1110/003");
    }

    #[test]
    fn unknown_ids_are_refused_unless_named() {
        let mut problems = Vec::new();
        assert!(Attack::from_raw(&raw("TA9999", "T1110"), &mut problems).is_none());
        assert!(Attack::from_raw(&raw("TA0006", "T9999"), &mut problems).is_none());
        assert!(Attack::from_raw(&raw("TA0006", "brute"), &mut problems).is_none());
        assert_eq!(problems.len(), 3, "{problems:?}");
        let named = RawAttack { technique_name: Some("Something New".into()), ..raw("TA0006", "T9999") };
        assert_eq!(Attack::from_raw(&named, &mut problems).unwrap().technique, "Something New");
    }

    #[test]
    fn risk_ranks_facts_by_severity() {
        let high = Confidence::High.percent();
        assert_eq!(risk_score(Severity::Info, high), 18);
        assert_eq!(risk_score(Severity::Medium, high), 54);
        assert!(risk_score(Severity::Medium, high) > risk_score(Severity::Info, 100));
        assert_eq!(risk_score(Severity::Critical, 100), 100);
        assert_eq!(risk_score(Severity::Low, 0), 0);
    }
}
