//! The rule catalogue as the public Databricks rule pack means it, one
//! test per class of difference an outside review found: each runs the
//! whole program (`auditwatch replay`) over delivered audit events and
//! reads the alerts file.

use serde_json::{Value, json};
use std::process::Command;

/// Monday 2026-01-05 09:00 UTC, in epoch ms.
const T0: i64 = 1_767_603_600_000;

/// A delivered audit event; `extra` overrides or adds top-level keys.
fn event(i: i64, actor: Option<&str>, service: &str, action: &str, params: Value, status: u16, extra: Value) -> Value {
    let mut e = json!({
        "version": "2.0",
        "auditLevel": "WORKSPACE_LEVEL",
        "timestamp": T0 + i * 60_000,
        "workspaceId": "1234567890",
        "sourceIPAddress": "198.51.100.20",
        "userAgent": "Mozilla/5.0 (Macintosh) Firefox/128.0",
        "serviceName": service,
        "actionName": action,
        "requestId": format!("req-{i}"),
        "requestParams": params,
        "response": {"statusCode": status, "errorMessage": null},
    });
    if let Some(a) = actor {
        e["userIdentity"] = json!({"email": a});
    }
    if let (Some(obj), Some(more)) = (e.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    e
}

/// Replays `events` with the built-in definitions (plus `models`) and
/// returns the alerts.
fn replay_with(events: &[Value], models: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("audit.jsonl");
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&input, body).unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let mut args = vec![
        "replay".to_owned(),
        input.display().to_string(),
        "--alerts-out".into(),
        alerts.display().to_string(),
        "--no-progress".into(),
    ];
    for (i, m) in models.iter().enumerate() {
        let path = dir.path().join(format!("model{i}.toml"));
        std::fs::write(&path, m).unwrap();
        args.push("--model".into());
        args.push(path.display().to_string());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(&alerts).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn replay(events: &[Value]) -> Vec<Value> {
    replay_with(events, &[])
}

fn of<'a>(alerts: &'a [Value], detector: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["detector"] == detector).collect()
}

fn severity(alerts: &[Value], detector: &str) -> Option<String> {
    of(alerts, detector).first().map(|a| a["severity"].as_str().unwrap().to_owned())
}

const ANA: Option<&str> = Some("ana@example.com");
const NONE: Value = Value::Null;

#[test]
fn refused_attempts_alert_at_a_lower_severity() {
    let group = |status| event(0, ANA, "accounts", "removeGroup", json!({"targetGroupName": "finance"}), status, NONE);
    assert_eq!(severity(&replay(&[group(200)]), "group_deleted").as_deref(), Some("high"));
    assert_eq!(severity(&replay(&[group(403)]), "group_deleted").as_deref(), Some("low"));

    let verbose = |status| {
        event(
            0,
            ANA,
            "workspace",
            "workspaceConfEdit",
            json!({"workspaceConfKeys": "enableVerboseAuditLogs", "workspaceConfValues": "false"}),
            status,
            NONE,
        )
    };
    let done = severity(&replay(&[verbose(200)]), "verbose_audit_disabled").expect("a success alerts");
    let refused = severity(&replay(&[verbose(403)]), "verbose_audit_disabled").expect("a refused attempt alerts too");
    let rank = |s: &str| ["info", "low", "medium", "high", "critical"].iter().position(|x| *x == s).unwrap();
    assert!(rank(&refused) < rank(&done), "a refused attempt alerts lower: {refused} vs {done}");
    let alerts = replay(&[verbose(403)]);
    assert!(of(&alerts, "verbose_audit_disabled")[0]["summary"].as_str().unwrap().contains("refused"));
}

#[test]
fn service_scoping_follows_the_public_pack() {
    let revoke = |service| event(0, ANA, service, "revokeDbToken", json!({"tokenId": "tok-1"}), 200, NONE);
    assert_eq!(of(&replay(&[revoke("accounts")]), "access_token_revoked").len(), 1);
    assert!(of(&replay(&[revoke("workspace")]), "access_token_revoked").is_empty());
    let mfa = |service| event(0, ANA, service, "mfaAddKey", json!({}), 200, NONE);
    assert_eq!(of(&replay(&[mfa("accounts")]), "mfa_key_changed").len(), 1);
    assert!(of(&replay(&[mfa("workspace")]), "mfa_key_changed").is_empty());
}

#[test]
fn databricks_placeholders_do_not_count_toward_thresholds() {
    let drops = |actor| -> Vec<Value> {
        (0..60)
            .map(|i| {
                event(
                    i,
                    Some(actor),
                    "unityCatalog",
                    "deleteTable",
                    json!({"full_name_arg": format!("main.s.t{i}")}),
                    200,
                    NONE,
                )
            })
            .collect()
    };
    assert_eq!(of(&replay(&drops("ana@example.com")), "destructive_activity").len(), 1);
    assert!(of(&replay(&drops("System-User")), "destructive_activity").is_empty());
}

#[test]
fn databricks_own_traffic_is_filtered_as_noise() {
    let denied = |ua: &str, path: &str| {
        event(
            0,
            ANA,
            "accounts",
            "IpAccessDenied",
            json!({"path": path, "user": "ana@example.com"}),
            403,
            json!({"userAgent": ua}),
        )
    };
    assert_eq!(of(&replay(&[denied("Mozilla/5.0 Chrome/126.0", "/login")]), "ip_access_denied").len(), 1);
    assert!(of(&replay(&[denied("Databricks-Runtime/15.4.x-scala2.12", "/login")]), "ip_access_denied").is_empty());
    assert!(of(&replay(&[denied("Mozilla/5.0 Chrome/126.0", "/api/2.0/telemetry")]), "ip_access_denied").is_empty());
}

#[test]
fn token_lifetime_is_read_from_its_expiration_time() {
    let token = |hours: i64| {
        let expires = T0 + hours * 3_600_000;
        event(0, ANA, "accounts", "generateDbToken", json!({"tokenExpirationTime": expires.to_string()}), 200, NONE)
    };
    assert!(of(&replay(&[token(48)]), "long_lived_token").is_empty(), "two days is not long");
    assert_eq!(severity(&replay(&[token(100)]), "long_lived_token").as_deref(), Some("low"));
    assert_eq!(severity(&replay(&[token(24 * 100)]), "long_lived_token").as_deref(), Some("medium"));
    assert_eq!(severity(&replay(&[token(24 * 400)]), "long_lived_token").as_deref(), Some("high"));
}

#[test]
fn non_sso_sign_ins_include_token_logins() {
    let login = |action: &str, method: Option<&str>| {
        let params = match method {
            Some(m) => json!({"user": "ana@example.com", "authenticationMethod": m}),
            None => json!({"user": "ana@example.com"}),
        };
        event(0, ANA, "accounts", action, params, 200, NONE)
    };
    assert_eq!(of(&replay(&[login("tokenLogin", None)]), "non_sso_login").len(), 1);
    assert_eq!(of(&replay(&[login("login", Some("PASSWORD"))]), "non_sso_login").len(), 1);
    assert!(of(&replay(&[login("samlLogin", None)]), "non_sso_login").is_empty());
    assert!(of(&replay(&[login("login", Some("BROWSER_BYO_IDP_SAML"))]), "non_sso_login").is_empty());
}

#[test]
fn storage_credentials_and_connections_are_explicit_credentials() {
    for action in ["createStorageCredential", "updateStorageCredential", "createConnection", "updateConnection"] {
        let e = event(0, ANA, "unityCatalog", action, json!({"name": "s3-creds"}), 200, NONE);
        assert_eq!(of(&replay(&[e]), "explicit_credentials_data_movement").len(), 1, "{action}");
    }
}

#[test]
fn a_databricks_employee_login_is_recognised() {
    let login = |method: &str| {
        event(
            0,
            ANA,
            "accounts",
            "login",
            json!({"user": "ana@example.com", "authenticationMethod": method}),
            200,
            NONE,
        )
    };
    assert_eq!(of(&replay(&[login("GENIE_AUTH")]), "employee_logon").len(), 1);
    assert!(of(&replay(&[login("BROWSER_BYO_IDP_SAML")]), "employee_logon").is_empty());
}

#[test]
fn admin_groups_are_matched_by_pattern() {
    let join = |group: &str| {
        event(
            0,
            ANA,
            "accounts",
            "addPrincipalToGroup",
            json!({"targetUserName": "bo@example.com", "targetGroupName": group}),
            200,
            NONE,
        )
    };
    for group in ["Finance-Administrators", "platform-superusers", "data-owners"] {
        let alerts = replay(&[join(group)]);
        assert!(!of(&alerts, "workspace_admin_group_join").is_empty(), "{group}: {alerts:#?}");
    }
    assert!(of(&replay(&[join("analysts")]), "workspace_admin_group_join").is_empty());
}

#[test]
fn audit_level_scopes_account_rules() {
    let change = |level: &str| {
        event(
            0,
            ANA,
            "accounts",
            "updateAccountSettings",
            json!({"setting": "enableX", "value": "true"}),
            200,
            json!({"auditLevel": level}),
        )
    };
    assert_eq!(of(&replay(&[change("ACCOUNT_LEVEL")]), "account_config_changed").len(), 1);
    assert!(of(&replay(&[change("WORKSPACE_LEVEL")]), "account_config_changed").is_empty());
}

#[test]
fn delta_sharing_ip_failures_read_the_error_message() {
    let failure = |message: &str| {
        let mut e =
            event(0, None, "deltaSharingAccess", "getShare", json!({"recipient_name": "partner-co"}), 403, NONE);
        e["response"]["errorMessage"] = json!(message);
        e
    };
    assert_eq!(
        of(&replay(&[failure("Source IP address 203.0.113.5 is not in the allowlist")]), "delta_sharing_ip_denied")
            .len(),
        1
    );
    assert!(of(&replay(&[failure("User does not have SELECT on the share")]), "delta_sharing_ip_denied").is_empty());
}

#[test]
fn events_without_a_user_identity_still_count() {
    let mut e = event(0, None, "deltaSharingAccess", "getShare", json!({"recipient_name": "partner-co"}), 403, NONE);
    e["response"]["errorMessage"] = json!("request from a blocked network");
    let alerts = replay(&[e]);
    let found = of(&alerts, "delta_sharing_ip_denied");
    assert_eq!(found.len(), 1, "{alerts:#?}");
    assert_eq!(found[0]["principal"], "recipient:partner-co");
}

/// A rule of one's own on a service no built-in rule reads: its
/// parameters are kept because the definition reads them.
#[test]
fn a_rule_of_your_own_reads_parameters_on_any_service() {
    let rule = r#"
name = "my_export_rule"
description = "Exports to an outside bucket"
signal = "activity"
model = "match"
bucket_minutes = 15
min_count = 1
severity = "medium"
suppress_minutes = 60
evidence_limit = 10

[match]
services = ["vectorSearch"]
actions = ["exportIndex"]
params_contains = { destination = ["s3://outside-"] }
"#;
    let export = |dest: &str| event(0, ANA, "vectorSearch", "exportIndex", json!({"destination": dest}), 200, NONE);
    assert_eq!(of(&replay_with(&[export("s3://outside-bucket/x")], &[rule]), "my_export_rule").len(), 1);
    assert!(of(&replay_with(&[export("s3://ours/x")], &[rule]), "my_export_rule").is_empty());
}

/// Every alert says what to check first and ranks by risk, and a medium
/// rule outranks an info one.
#[test]
fn alerts_carry_attack_runbook_and_a_risk_that_ranks() {
    let events: Vec<Value> = (0..6)
        .map(|i| event(i, Some("bo@example.com"), "accounts", "login", json!({"user": "bo@example.com"}), 401, NONE))
        .chain([event(10, ANA, "accounts", "revokeDbToken", json!({"tokenId": "tok-1"}), 200, NONE)])
        .collect();
    let alerts = replay(&events);
    let failed = of(&alerts, "repeated_failed_logins");
    let revoked = of(&alerts, "access_token_revoked");
    assert!(!failed.is_empty() && !revoked.is_empty(), "{alerts:#?}");
    assert!(failed[0]["risk_score"].as_u64() > revoked[0]["risk_score"].as_u64());
    for a in &alerts {
        assert!(!a["attack"].as_array().unwrap().is_empty(), "{a}");
        assert_eq!(a["runbook"].as_array().unwrap().len(), 3, "{a}");
    }
}
