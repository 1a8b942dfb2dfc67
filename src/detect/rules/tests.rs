use crate::alert::Alert;
use crate::decode::decode_json;
use crate::detect::definition::built_in;
use crate::event::Event;
use crate::pipeline::{Pipeline, PipelineConfig};

const T: i64 = 1_704_103_200_000; // Monday 2024-01-01 10:00 UTC

/// A delivered audit event in the shape of the public samples.
fn line(i: i64, actor: &str, service: &str, action: &str, params: &str, status: u16, ua: &str) -> String {
    format!(
        r#"{{"version":"2.0","auditLevel":"WORKSPACE_LEVEL","timestamp":{},"workspaceId":"{}","sourceIPAddress":"203.0.113.7","userAgent":"{ua}","userIdentity":{{"email":"{actor}"}},"serviceName":"{service}","actionName":"{action}","requestId":"req-{i}","requestParams":{{{params}}},"response":{{"statusCode":{status},"errorMessage":null,"result":null}}}}"#,
        T + i * 60_000,
        1000 + i % 6,
    )
}

/// Runs the built-in detectors over `lines` (in time order) and returns the alerts.
fn alerts(lines: &[String]) -> Vec<Alert> {
    let mut p = Pipeline::new(PipelineConfig::new(built_in().unwrap()));
    let mut out = Vec::new();
    let mut ev = Event::default();
    for l in lines {
        if decode_json(l.as_bytes(), &mut ev).is_ok() {
            let _ = p.event(&ev, &mut out);
        }
    }
    p.finish(&mut out);
    out
}

fn fired(lines: &[String]) -> Vec<String> {
    let mut names: Vec<String> = alerts(lines).into_iter().map(|a| a.detector).collect();
    names.sort();
    names.dedup();
    names
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0";

// What each catalogue rule raises and leaves alone, case by case, lives in
// its definition's `[[test]]` tables (`auditwatch test-models`); these
// tests cover what is common to all of them.

#[test]
fn a_rule_alert_names_the_principal_the_event_and_the_idea() {
    let lines = vec![line(3, "admin@x", "accounts", "setAdmin", r#""targetUserName":"Bob@X""#, 200, CHROME)];
    let all = alerts(&lines);
    let a = all.iter().find(|a| a.detector == "workspace_admin_assigned").expect("alert");
    assert_eq!(a.principal, "bob@x", "counted for the principal who received the role");
    assert_eq!((a.score, a.p_value, a.evidence.as_slice()), (100, 0.0, ["req-3".to_owned()].as_slice()));
    assert!(
        a.summary.starts_with("Workspace admin rights granted: bob@x, once between 2024-01-01T10:00:00.000Z and 2024-01-01T10:15:00.000Z. First: accounts.setAdmin (status 200) targetUserName=Bob@X from 203.0.113.7 at 2024-01-01T10:03:00.000Z."),
        "{}",
        a.summary
    );
    assert!(
        a.summary.ends_with("(Rule idea: Panther Databricks.Audit.WorkspaceAdminPrivilegedRoleAssignment.)"),
        "{}",
        a.summary
    );
}

/// The timed public samples (the untimed ones are quarantined: an event
/// with no time cannot be placed) raise the rules they were written for.
#[test]
fn the_public_samples_raise_their_rules() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/databricks");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut lines: Vec<(i64, String)> = Vec::new();
    let mut ev = Event::default();
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "jsonl") {
            for l in std::fs::read_to_string(e.path()).unwrap().lines() {
                if decode_json(l.as_bytes(), &mut ev).is_ok() {
                    lines.push((ev.time.0, l.to_owned()));
                }
            }
        }
    }
    lines.sort();
    let lines: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    let f = fired(&lines);
    for rule in [
        "verbose_audit_disabled",
        "delta_sharing_recipient_without_ip_acl",
        "trufflehog_scan",
        "ip_access_denied",
        "global_init_script_changed",
        "mount_point_created",
        "workspace_admin_assigned",
        "account_admin_assigned",
        "library_on_all_clusters",
        "sso_config_changed",
        "metastore_admin_granted",
    ] {
        assert!(f.contains(&rule.to_string()), "{rule} not raised by the public samples; raised: {f:?}");
    }
}
