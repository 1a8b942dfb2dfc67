//! What each receiving system is sent: the alert in OCSF, ECS, Splunk HEC,
//! Slack and PagerDuty shapes. Pure functions of the (already masked)
//! alert, so that the same alert always gives the same bytes; the README
//! documents every field ("Sinks").
//!
//! Shapes follow each system's published documentation: OCSF 1.3 Detection
//! Finding (class 2004), ECS 8 (`event.kind: alert`), Splunk HEC's
//! `/services/collector/event` envelope, Slack Block Kit, PagerDuty Events
//! API v2.

use super::config::Format;
use super::is_rule;
use super::mask::ips_in;
use crate::alert::{Alert, Severity};
use crate::event::PrincipalKind;
use crate::time::EventTime;
use serde_json::{Value, json};

/// The OCSF schema version the findings follow.
pub const OCSF_VERSION: &str = "1.3.0";

/// The alert in `format` (`Text` is written by the stdout sink itself).
pub fn encode(alert: &Alert, format: Format) -> Value {
    match format {
        Format::Ocsf => ocsf(alert),
        Format::Ecs => ecs(alert),
        Format::Alert | Format::Text => serde_json::to_value(alert).unwrap_or(Value::Null),
    }
}

/// The id a receiver deduplicates on, read back from an encoded alert.
pub fn id_of(value: &Value, format: Format) -> Option<&str> {
    match format {
        Format::Ocsf => value.pointer("/finding_info/uid"),
        Format::Ecs => value.pointer("/event/id"),
        Format::Alert | Format::Text => value.get("alert_id"),
    }
    .and_then(Value::as_str)
}

fn ms(rfc3339: &str) -> i64 {
    EventTime::parse(rfc3339).map_or(0, |t| t.0)
}

/// OCSF `severity_id`: 1 Informational … 5 Critical.
fn severity_id(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn ocsf_severity(s: Severity) -> &'static str {
    match s {
        Severity::Info => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// OCSF `risk_level_id` of a risk score: 0 Info … 4 Critical, in bands of 20.
fn risk_level(risk: u8) -> (u8, &'static str) {
    match risk {
        0..=19 => (0, "Info"),
        20..=39 => (1, "Low"),
        40..=59 => (2, "Medium"),
        60..=79 => (3, "High"),
        _ => (4, "Critical"),
    }
}

/// OCSF `confidence_id`: 1 Low, 2 Medium, 3 High.
fn confidence_level(confidence: u8) -> (u8, &'static str) {
    match confidence {
        0..=49 => (1, "Low"),
        50..=79 => (2, "Medium"),
        _ => (3, "High"),
    }
}

/// OCSF `finding_info.attacks`: one MITRE ATT&CK object per mapping.
fn ocsf_attacks(alert: &Alert) -> Vec<Value> {
    alert
        .triage
        .attack
        .iter()
        .map(|a| {
            let mut o = json!({
                "version": crate::alert::triage::ATTACK_VERSION,
                "tactic": {"uid": a.tactic_id, "name": a.tactic},
                "technique": {"uid": a.technique_id, "name": a.technique},
            });
            if let (Some(id), Some(name)) = (&a.subtechnique_id, &a.subtechnique) {
                o["sub_technique"] = json!({"uid": id, "name": name});
            }
            o
        })
        .collect()
}

/// ECS `threat.*`: the ATT&CK tactics and techniques, each list in the
/// order the definition gives them, without repeats.
fn ecs_threat(alert: &Alert) -> Option<Value> {
    let attack = &alert.triage.attack;
    if attack.is_empty() {
        return None;
    }
    fn unique<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
        let mut out = Vec::new();
        for i in items {
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }
    let tactics = unique(attack.iter().map(|a| (a.tactic_id.clone(), a.tactic.clone(), a.tactic_reference())));
    let techniques = unique(attack.iter().map(|a| {
        (a.technique_id.clone(), a.technique.clone(), format!("https://attack.mitre.org/techniques/{}", a.technique_id))
    }));
    let subs = unique(
        attack.iter().filter_map(|a| Some((a.subtechnique_id.clone()?, a.subtechnique.clone()?, a.reference()))),
    );
    let ids = |v: &[(String, String, String)]| v.iter().map(|t| t.0.clone()).collect::<Vec<_>>();
    let names = |v: &[(String, String, String)]| v.iter().map(|t| t.1.clone()).collect::<Vec<_>>();
    let refs = |v: &[(String, String, String)]| v.iter().map(|t| t.2.clone()).collect::<Vec<_>>();
    let mut technique = json!({"id": ids(&techniques), "name": names(&techniques), "reference": refs(&techniques)});
    if !subs.is_empty() {
        technique["subtechnique"] = json!({"id": ids(&subs), "name": names(&subs), "reference": refs(&subs)});
    }
    Some(json!({
        "framework": "MITRE ATT&CK",
        "tactic": {"id": ids(&tactics), "name": names(&tactics), "reference": refs(&tactics)},
        "technique": technique,
    }))
}

/// The figures a reader needs besides the summary.
fn figures(alert: &Alert) -> Value {
    json!({
        "observed": alert.observed,
        "expected": alert.expected,
        "expected_low": alert.expected_low,
        "expected_high": alert.expected_high,
        "p_value": alert.p_value,
        "score": alert.score,
        "confidence": alert.triage.confidence,
        "risk_score": alert.triage.risk_score,
        "runbook": alert.triage.runbook,
        "signal": alert.context.signal,
        "model": alert.context.model,
        "baseline_age_hours": alert.context.baseline_age_hours,
        "baseline_samples": alert.context.baseline_samples,
        "peer_value": alert.context.peer_value,
        "evidence_total": alert.context.evidence_total,
        "workspace_id": alert.workspace_id,
        "config_version": alert.context.config_version,
        "schema_version": alert.schema_version,
    })
}

/// OCSF Detection Finding (class 2004, activity Create).
pub fn ocsf(alert: &Alert) -> Value {
    let start = ms(&alert.window_start);
    let end = ms(&alert.window_end);
    let user_type = match alert.context.principal_kind {
        PrincipalKind::User => json!({"type_id": 1, "type": "User"}),
        PrincipalKind::ServicePrincipal => json!({"type_id": 99, "type": "Service Principal"}),
        PrincipalKind::System => json!({"type_id": 3, "type": "System"}),
        PrincipalKind::Unknown => json!({"type_id": 0, "type": "Unknown"}),
    };
    let mut user = json!({
        "name": alert.principal,
        "groups": alert.context.groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>(),
    });
    if let (Some(obj), Some(t)) = (user.as_object_mut(), user_type.as_object()) {
        obj.extend(t.clone());
        if alert.context.principal_kind == PrincipalKind::User && alert.principal.contains('@') {
            obj.insert("email_addr".into(), json!(alert.principal));
        }
        if alert.context.principal_kind == PrincipalKind::ServicePrincipal {
            obj.insert("uid".into(), json!(alert.principal));
        }
    }
    let mut evidence = json!({"actor": {"user": user}});
    if let Some(ip) = ips_in(&alert.summary).first() {
        evidence["src_endpoint"] = json!({"ip": ip.to_string()});
    }
    let (type_id, type_name) = if is_rule(alert) { (1, "Rule") } else { (3, "Statistical") };
    let mut finding = json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "time": end,
        "start_time": start,
        "end_time": end,
        "severity_id": severity_id(alert.severity),
        "severity": ocsf_severity(alert.severity),
        "status_id": 1,
        "status": "New",
        "is_alert": true,
        "message": alert.summary,
        "risk_score": alert.triage.risk_score,
        "risk_level_id": risk_level(alert.triage.risk_score).0,
        "risk_level": risk_level(alert.triage.risk_score).1,
        "confidence_score": alert.triage.confidence,
        "confidence_id": confidence_level(alert.triage.confidence).0,
        "confidence": confidence_level(alert.triage.confidence).1,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "auditwatch", "vendor_name": "auditwatch", "version": env!("CARGO_PKG_VERSION")},
            "log_name": "databricks-audit",
            "uid": alert.alert_id,
        },
        "finding_info": {
            "uid": alert.alert_id,
            "title": format!("{} on {}", alert.detector, alert.principal),
            "desc": alert.summary,
            "types": [alert.context.signal],
            "first_seen_time": start,
            "last_seen_time": end,
            "analytic": {
                "uid": alert.detector,
                "name": alert.detector,
                "type_id": type_id,
                "type": type_name,
                "version": alert.context.config_version,
            },
            "related_events": alert.evidence.iter().map(|id| json!({"uid": id})).collect::<Vec<_>>(),
            "related_events_count": alert.context.evidence_total,
            "data_sources": ["Databricks audit logs"],
            "attacks": ocsf_attacks(alert),
        },
        "evidences": [evidence],
        "cloud": {"provider": "Databricks", "account": {"uid": alert.workspace_id}},
        "unmapped": figures(alert),
    });
    if !alert.triage.runbook.is_empty() {
        finding["remediation"] = json!({"desc": runbook_lines(alert)});
    }
    finding
}

/// An Elastic Common Schema alert document.
pub fn ecs(alert: &Alert) -> Value {
    let ips: Vec<String> = ips_in(&alert.summary).iter().map(ToString::to_string).collect();
    let mut user = json!({"name": alert.principal});
    match alert.context.principal_kind {
        PrincipalKind::User if alert.principal.contains('@') => user["email"] = json!(alert.principal),
        PrincipalKind::ServicePrincipal => user["id"] = json!(alert.principal),
        _ => {}
    }
    let mut doc = json!({
        "@timestamp": alert.window_end,
        "message": alert.summary,
        "ecs": {"version": "8.11.0"},
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
            "module": "auditwatch",
            "dataset": "auditwatch.alert",
            "provider": "databricks",
            "id": alert.alert_id,
            "severity": severity_id(alert.severity),
            "risk_score": alert.triage.risk_score,
            "risk_score_norm": alert.triage.risk_score,
            "start": alert.window_start,
            "end": alert.window_end,
            "reason": alert.summary,
        },
        "rule": {
            "id": alert.detector,
            "name": alert.detector,
            "version": alert.context.config_version,
            "category": alert.context.signal,
            "ruleset": "auditwatch",
        },
        "user": user,
        "related": {"user": [alert.principal], "ip": ips},
        "observer": {"vendor": "auditwatch", "product": "auditwatch", "version": env!("CARGO_PKG_VERSION")},
        "labels": {"workspace_id": alert.workspace_id, "severity": alert.severity.name()},
        "auditwatch": {
            "evidence": alert.evidence,
            "principal_kind": alert.context.principal_kind,
            "groups": alert.context.groups,
            "privileges": alert.context.privileges,
            "figures": figures(alert),
        },
    });
    if let Some(ip) = ips.first() {
        doc["source"] = json!({"ip": ip});
    }
    if let Some(threat) = ecs_threat(alert) {
        doc["threat"] = threat;
    }
    if !alert.triage.runbook.is_empty() {
        doc["auditwatch"]["runbook"] = json!(alert.triage.runbook);
    }
    doc
}

/// One Splunk HEC event (`/services/collector/event`): `time` in epoch
/// seconds, the alert as `event`, and indexed `fields` to search on.
pub fn splunk_event(
    alert: &Alert,
    format: Format,
    index: Option<&str>,
    source: &str,
    sourcetype: &str,
    host: &str,
) -> Value {
    let mut e = json!({
        "time": ms(&alert.window_end) as f64 / 1000.0,
        "host": host,
        "source": source,
        "sourcetype": sourcetype,
        "event": encode(alert, format),
        "fields": {
            "detector": alert.detector,
            "severity": alert.severity.name(),
            "alert_id": alert.alert_id,
            "risk_score": alert.triage.risk_score,
            "mitre_technique_id": alert.triage.attack.iter().map(|a| a.subtechnique_id.clone().unwrap_or_else(|| a.technique_id.clone())).collect::<Vec<_>>(),
        },
    });
    if let Some(i) = index {
        e["index"] = json!(i);
    }
    e
}

/// The Elasticsearch `_bulk` body: a `create` by `alert_id` per alert (a
/// second delivery answers 409, which counts as delivered).
pub fn elastic_bulk(alerts: &[Alert], index: &str) -> String {
    let mut body = String::new();
    for a in alerts {
        body.push_str(&json!({"create": {"_index": index, "_id": a.alert_id}}).to_string());
        body.push('\n');
        body.push_str(&ecs(a).to_string());
        body.push('\n');
    }
    body
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` characters (Block Kit limits are in characters).
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A Slack message (Block Kit): a header, the explanation, the figures,
/// and the alert id and evidence in a context line.
pub fn slack_message(alert: &Alert) -> Value {
    let marker = match alert.severity {
        Severity::Critical => ":red_circle:",
        Severity::High => ":large_orange_circle:",
        Severity::Medium => ":large_yellow_circle:",
        Severity::Low | Severity::Info => ":white_circle:",
    };
    let figures = if is_rule(alert) {
        format!("{} (a rule, not a baseline)", alert.observed)
    } else {
        format!(
            "{} vs expected {:.1} (95% {:.0}–{:.0})",
            alert.observed, alert.expected, alert.expected_low, alert.expected_high
        )
    };
    let more = alert.context.evidence_total.saturating_sub(alert.evidence.len() as u64);
    let evidence = if alert.evidence.is_empty() {
        "none kept".to_owned()
    } else if more > 0 {
        format!("{} (+{more} more)", alert.evidence.join(", "))
    } else {
        alert.evidence.join(", ")
    };
    let field = |title: &str, value: &str| json!({"type": "mrkdwn", "text": cut(&format!("*{title}*\n{}", slack_escape(value)), 2000)});
    json!({
        "text": cut(&format!("[{}] {}: {}", alert.severity.name().to_uppercase(), alert.detector, alert.summary), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut(&format!("{} {} · {}", alert.severity.name().to_uppercase(), alert.detector, alert.principal), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{marker} {}", cut(&slack_escape(&alert.summary), 2900))}},
            {"type": "section", "fields": [
                field("Principal", &alert.principal),
                field("Risk", &format!("{} (confidence {}, score {}, p={:.1e})", alert.triage.risk_score, alert.triage.confidence, alert.score, alert.p_value)),
                field("Window (UTC)", &format!("{} → {}", alert.window_start, alert.window_end)),
                field("Observed", &figures),
                field("Workspace", &alert.workspace_id),
                field("Baseline", &format!("{:.0} h, {:.1} samples", alert.context.baseline_age_hours, alert.context.baseline_samples)),
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text": cut(&format!("*First checks*\n{}", slack_escape(&runbook_lines(alert))), 2900)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&format!("alert_id `{}` · ATT&CK: {} · evidence: {}", alert.alert_id, slack_escape(&attack_line(alert)), slack_escape(&evidence)), 2000)}]},
        ],
    })
}

/// The runbook as numbered lines (`none given` without one).
fn runbook_lines(alert: &Alert) -> String {
    if alert.triage.runbook.is_empty() {
        return "none given".into();
    }
    alert.triage.runbook.iter().enumerate().map(|(i, s)| format!("{}. {s}", i + 1)).collect::<Vec<_>>().join("\n")
}

/// `T1110.003 Password Spraying (Credential Access), ...`.
fn attack_line(alert: &Alert) -> String {
    if alert.triage.attack.is_empty() {
        return "none".into();
    }
    alert
        .triage
        .attack
        .iter()
        .map(|a| match (&a.subtechnique_id, &a.subtechnique) {
            (Some(id), Some(name)) => format!("{id} {name} ({})", a.tactic),
            _ => format!("{} {} ({})", a.technique_id, a.technique, a.tactic),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// PagerDuty Events API v2 `trigger`, deduplicated on `alert_id`.
pub fn pagerduty_event(alert: &Alert, routing_key: &str) -> Value {
    let severity = match alert.severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    };
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.alert_id,
        "client": "auditwatch",
        "payload": {
            "summary": cut(&alert.summary, 1024),
            "source": format!("databricks-workspace-{}", alert.workspace_id),
            "severity": severity,
            "timestamp": alert.window_end,
            "component": alert.principal,
            "group": alert.detector,
            "class": alert.context.signal,
            "custom_details": {
                "principal": alert.principal,
                "principal_kind": alert.context.principal_kind,
                "window_start": alert.window_start,
                "window_end": alert.window_end,
                "evidence": alert.evidence,
                "groups": alert.context.groups,
                "privileges": alert.context.privileges,
                "risk_score": alert.triage.risk_score,
                "attack": attack_line(alert),
                "runbook": alert.triage.runbook,
                "figures": figures(alert),
            },
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::AlertContext;

    pub(crate) fn sample() -> Alert {
        Alert {
            schema_version: 1,
            alert_id: "0123456789abcdef0123456789abcdef".into(),
            detector: "query_frequency".into(),
            principal: "ana@example.com".into(),
            workspace_id: "1234".into(),
            window_start: "2026-03-02T10:00:00Z".into(),
            window_end: "2026-03-02T11:00:00Z".into(),
            observed: 420.0,
            expected: 12.5,
            expected_low: 3.0,
            expected_high: 25.0,
            score: 88,
            p_value: 1.5e-9,
            severity: Severity::High,
            summary: "ana@example.com ran 420 queries from 203.0.113.9 <script> & more".into(),
            evidence: vec!["e1".into(), "e2".into()],
            corrects: None,
            triage: crate::alert::Triage {
                attack: vec![crate::alert::Attack {
                    tactic_id: "TA0010".into(),
                    tactic: "Exfiltration".into(),
                    technique_id: "T1567".into(),
                    technique: "Exfiltration Over Web Service".into(),
                    subtechnique_id: Some("T1567.002".into()),
                    subtechnique: Some("Exfiltration to Cloud Storage".into()),
                }],
                runbook: vec!["Ask the owner.".into(), "Check the tables.".into(), "Look for <exports>.".into()],
                confidence: 88,
                risk_score: 53,
            },
            context: AlertContext {
                principal_kind: PrincipalKind::User,
                groups: vec!["analysts".into()],
                privileges: vec!["SELECT on main.sales".into()],
                signal: "query_count".into(),
                model: "seasonal_gamma_poisson".into(),
                baseline_age_hours: 500.0,
                baseline_samples: 20.0,
                peer_value: Some(10.0),
                evidence_total: 420,
                config_version: "abcdef012345".into(),
            },
        }
    }

    /// Every rule model renders as a rule in the text and Slack views (no
    /// expected value of 0 with an interval of 0–0), every statistical
    /// model with its expectation.
    #[test]
    fn rules_render_as_rules_and_models_with_their_expectation() {
        use crate::detect::definition::Model;
        for model in Model::ALL {
            let mut a = sample();
            a.context.model = model.name().into();
            assert_eq!(Model::named(model.name()), Some(model));
            let text = crate::sink::render_alert(&a);
            let slack = slack_message(&a).to_string();
            if model.is_rule() {
                assert!(text.contains("a rule, not a baseline") && !text.contains("expected"), "{model:?}: {text}");
                assert!(slack.contains("a rule, not a baseline"), "{model:?}: {slack}");
            } else if model != Model::NewValue {
                assert!(text.contains("vs expected 12.5"), "{model:?}: {text}");
            }
        }
    }

    #[test]
    fn ocsf_detection_finding_has_the_required_attributes() {
        let f = ocsf(&sample());
        // Base event and finding: required attributes of OCSF 1.3 class 2004.
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["category_uid"], 2);
        assert_eq!(f["activity_id"], 1);
        assert_eq!(f["type_uid"], 2004 * 100 + 1);
        assert_eq!(f["severity_id"], 4);
        assert_eq!(f["time"], 1_772_449_200_000i64);
        assert_eq!(f["metadata"]["version"], OCSF_VERSION);
        assert_eq!(f["metadata"]["product"]["vendor_name"], "auditwatch");
        assert_eq!(f["finding_info"]["uid"], "0123456789abcdef0123456789abcdef");
        assert_eq!(f["finding_info"]["analytic"]["type_id"], 3);
        assert_eq!(f["finding_info"]["related_events"][1]["uid"], "e2");
        assert_eq!(f["evidences"][0]["actor"]["user"]["email_addr"], "ana@example.com");
        assert_eq!(f["evidences"][0]["actor"]["user"]["type_id"], 1);
        assert_eq!(f["evidences"][0]["src_endpoint"]["ip"], "203.0.113.9");
        assert_eq!(f["unmapped"]["observed"], 420.0);
        assert_eq!((f["risk_score"].as_u64(), f["risk_level_id"].as_u64()), (Some(53), Some(2)));
        assert_eq!((f["confidence_score"].as_u64(), f["confidence_id"].as_u64()), (Some(88), Some(3)));
        let attack = &f["finding_info"]["attacks"][0];
        assert_eq!(attack["tactic"]["uid"], "TA0010");
        assert_eq!(attack["technique"]["name"], "Exfiltration Over Web Service");
        assert_eq!(attack["sub_technique"]["uid"], "T1567.002");
        assert!(f["remediation"]["desc"].as_str().unwrap().starts_with("1. Ask the owner."));
        assert_eq!(id_of(&f, Format::Ocsf), Some("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn ecs_alert_document_fields() {
        let d = ecs(&sample());
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(d["event"]["risk_score"], 53);
        assert_eq!(d["threat"]["framework"], "MITRE ATT&CK");
        assert_eq!(d["threat"]["tactic"]["id"][0], "TA0010");
        assert_eq!(d["threat"]["technique"]["id"][0], "T1567");
        assert_eq!(d["threat"]["technique"]["subtechnique"]["id"][0], "T1567.002");
        assert_eq!(
            d["threat"]["technique"]["subtechnique"]["reference"][0],
            "https://attack.mitre.org/techniques/T1567/002"
        );
        assert_eq!(d["auditwatch"]["runbook"][0], "Ask the owner.");
        assert_eq!(d["rule"]["name"], "query_frequency");
        assert_eq!(d["user"]["email"], "ana@example.com");
        assert_eq!(d["source"]["ip"], "203.0.113.9");
        assert_eq!(d["related"]["ip"][0], "203.0.113.9");
        assert_eq!(d["@timestamp"], "2026-03-02T11:00:00Z");
        let bulk = elastic_bulk(&[sample()], "alerts");
        let lines: Vec<Value> = bulk.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["create"]["_id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(lines[0]["create"]["_index"], "alerts");
    }

    #[test]
    fn splunk_envelope() {
        let e = splunk_event(&sample(), Format::Alert, Some("security"), "auditwatch", "auditwatch:alert", "h1");
        assert_eq!(e["time"], 1_772_449_200.0);
        assert_eq!(e["index"], "security");
        assert_eq!(e["sourcetype"], "auditwatch:alert");
        assert_eq!(e["host"], "h1");
        assert_eq!(e["event"]["alert_id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(e["fields"]["severity"], "high");
        let no_index = splunk_event(&sample(), Format::Ocsf, None, "s", "t", "h");
        assert!(no_index.get("index").is_none());
        assert_eq!(no_index["event"]["class_uid"], 2004);
    }

    #[test]
    fn slack_blocks_are_escaped_and_within_limits() {
        let mut a = sample();
        a.principal = "x".repeat(400);
        let m = slack_message(&a);
        let header = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.chars().count() <= 150);
        let body = m["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(body.contains("&lt;script&gt; &amp; more"), "{body}");
        let checks = m["blocks"][3]["text"]["text"].as_str().unwrap();
        assert!(checks.contains("1. Ask the owner.") && checks.contains("&lt;exports&gt;"), "{checks}");
        let context = m["blocks"][4]["elements"][0]["text"].as_str().unwrap();
        assert!(context.contains("(+418 more)") && context.contains("T1567.002"), "{context}");
        assert_eq!(m["blocks"][2]["fields"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn pagerduty_dedups_on_the_alert_id() {
        let e = pagerduty_event(&sample(), "rk");
        assert_eq!(e["event_action"], "trigger");
        assert_eq!(e["dedup_key"], "0123456789abcdef0123456789abcdef");
        assert_eq!(e["payload"]["severity"], "error");
        assert_eq!(e["payload"]["source"], "databricks-workspace-1234");
        assert!(e["payload"]["summary"].as_str().unwrap().len() <= 1024);
    }
}
