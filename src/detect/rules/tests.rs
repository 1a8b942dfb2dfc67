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

/// (rule, service, action, params, status, user agent, how many events)
/// that must raise the rule, in the shapes the public samples show.
const POSITIVE: &[(&str, &str, &str, &str, u16, &str, i64)] = &[
    (
        "access_to_multiple_workspaces",
        "accounts",
        "login",
        r#""user":"ana@x","authenticationMethod":"SAML""#,
        200,
        CHROME,
        6,
    ),
    ("access_token_revoked", "accounts", "revokeDbToken", r#""tokenId":"dapi-abc""#, 200, CHROME, 1),
    ("account_admin_assigned", "accounts", "setAccountAdmin", r#""targetUserName":"new@x""#, 200, CHROME, 1),
    ("ip_access_denied", "accounts", "IpAccessDenied", r#""path":"/login""#, 403, CHROME, 1),
    (
        "account_config_changed",
        "accounts",
        "updateAccountSettings",
        r#""setting":"defaultWorkspaceRegion","value":"us-west-2""#,
        200,
        CHROME,
        1,
    ),
    (
        "security_config_changed",
        "workspace",
        "workspaceConfEdit",
        r#""workspaceConfKeys":"enforceMFA","workspaceConfValues":"false""#,
        200,
        CHROME,
        1,
    ),
    (
        "workspace_config_changed",
        "workspace",
        "updateWorkspaceSettings",
        r#""setting":"enableNotebookGit","value":"true""#,
        200,
        CHROME,
        1,
    ),
    ("control_plane_downloads", "sql", "downloadPreviewResults", r#""queryId":"q1""#, 200, CHROME, 21),
    (
        "explicit_credentials_data_movement",
        "unityCatalog",
        "generateTemporaryPathCredential",
        r#""url":"s3://b/p""#,
        200,
        CHROME,
        1,
    ),
    ("delta_sharing_ip_denied", "deltaSharingAccess", "getShare", r#""name":"s1""#, 403, CHROME, 1),
    (
        "delta_sharing_recipient_without_ip_acl",
        "deltaSharingControl",
        "createRecipient",
        r#""name":"partner","ipAccessList":[]"#,
        200,
        CHROME,
        1,
    ),
    ("destructive_activity", "unityCatalog", "deleteTable", r#""full_name_arg":"main.x.t""#, 200, CHROME, 50),
    ("employee_logon", "accounts", "databricksEmployeeLogin", r#""user":"support@databricks.com""#, 200, CHROME, 1),
    (
        "global_init_script_changed",
        "globalInitScripts",
        "create",
        r#""name":"collector","script_id":"s1""#,
        200,
        CHROME,
        1,
    ),
    ("group_created", "accounts", "createGroup", r#""targetGroupName":"new-team""#, 200, CHROME, 1),
    ("group_deleted", "accounts", "removeGroup", r#""targetGroupName":"old-team""#, 200, CHROME, 1),
    ("library_on_all_clusters", "clusters", "installLibraryOnAllClusters", r#""library":"pypi:evil""#, 200, CHROME, 1),
    ("long_lived_token", "accounts", "generateDbToken", r#""lifetimeSeconds":"31536000""#, 200, CHROME, 1),
    ("token_without_expiry", "accounts", "generateDbToken", r#""comment":"ci""#, 200, CHROME, 1),
    (
        "metastore_admin_granted",
        "unityCatalog",
        "updateMetastore",
        r#""metastoreId":"m1","owner":"new@x""#,
        200,
        CHROME,
        1,
    ),
    (
        "metastore_admin_group",
        "accounts",
        "addPrincipalsToGroup",
        r#""targetUserName":"u@x","targetGroupName":"unity-catalog-admins""#,
        200,
        CHROME,
        1,
    ),
    ("mfa_key_changed", "accounts", "mfaDeleteKey", r#""keyId":"k1""#, 200, CHROME, 1),
    ("mount_point_created", "dbfs", "mount", r#""mountPoint":"/mnt/data""#, 200, CHROME, 1),
    ("non_sso_login", "accounts", "login", r#""user":"ana@x","authenticationMethod":"password""#, 200, CHROME, 1),
    (
        "privilege_escalation_burst",
        "unityCatalog",
        "updatePermissions",
        r#""securable_full_name":"main.x""#,
        200,
        CHROME,
        25,
    ),
    (
        "principal_removed_from_group",
        "accounts",
        "removePrincipalFromGroup",
        r#""targetUserName":"u@x","targetGroupName":"dev""#,
        200,
        CHROME,
        1,
    ),
    ("repeated_secret_access", "secrets", "getSecret", r#""scope":"etl","key":"k""#, 200, CHROME, 10),
    (
        "repeated_failed_logins",
        "accounts",
        "login",
        r#""user":"victim@x","authenticationMethod":"password""#,
        401,
        CHROME,
        5,
    ),
    (
        "repeated_unauthorized_uc_data",
        "unityCatalog",
        "generateTemporaryTableCredential",
        r#""table_id":"t1""#,
        403,
        CHROME,
        16,
    ),
    ("repeated_unauthorized_uc", "unityCatalog", "getTable", r#""full_name_arg":"main.hr.t""#, 403, CHROME, 26),
    ("sso_config_changed", "ssoConfigBackend", "update", r#""status":"enabled""#, 200, CHROME, 1),
    ("terms_of_service_changed", "accounts", "acceptTos", r#""tos":"v2""#, 200, CHROME, 1),
    ("trufflehog_scan", "workspace", "listSecrets", r#""scope":"etl""#, 200, "TruffleHog/3.0 (Security Audit)", 1),
    ("user_created", "accounts", "createUser", r#""targetUserName":"new@x""#, 200, CHROME, 1),
    ("user_deleted", "accounts", "delete", r#""targetUserName":"old@x","endpoint":"/users""#, 200, CHROME, 1),
    ("password_changed", "accounts", "changePassword", r#""user":"ana@x""#, 200, CHROME, 1),
    (
        "user_role_modified",
        "accounts",
        "modifyUserRole",
        r#""targetUserName":"u@x","role":"workspace_user""#,
        200,
        CHROME,
        1,
    ),
    (
        "verbose_audit_disabled",
        "workspace",
        "workspaceConfEdit",
        r#""workspaceConfKeys":"enableVerboseAuditLogs","workspaceConfValues":"false""#,
        200,
        CHROME,
        1,
    ),
    ("workspace_admin_assigned", "accounts", "setAdmin", r#""targetUserName":"u@x""#, 200, CHROME, 1),
    ("workspace_user_created", "workspace", "createUser", r#""targetUserName":"new@x""#, 200, CHROME, 1),
    ("workspace_user_deleted", "workspace", "deleteUser", r#""targetUserName":"old@x""#, 200, CHROME, 1),
    ("ip_access_list_changed", "accounts", "deleteIpAccessList", r#""ipAccessListId":"l1""#, 200, CHROME, 1),
    ("account_owner_changed", "accounts", "changeAccountOwner", r#""targetUserName":"new-owner@x""#, 200, CHROME, 1),
    ("cluster_policy_changed", "clusterPolicies", "edit", r#""policy_id":"p1""#, 200, CHROME, 1),
    (
        "workspace_admin_group_join",
        "accounts",
        "addPrincipalToGroup",
        r#""targetUserName":"u@x","targetGroupName":"admins""#,
        200,
        CHROME,
        1,
    ),
];

#[test]
fn every_catalogue_rule_fires_on_its_events() {
    let rules: Vec<String> = built_in().unwrap().into_iter().filter(|d| d.matcher.is_some()).map(|d| d.name).collect();
    for rule in &rules {
        assert!(POSITIVE.iter().any(|p| p.0 == rule), "no positive case for {rule}");
    }
    for (rule, service, action, params, status, ua, n) in POSITIVE {
        let lines: Vec<String> = (0..*n).map(|i| line(i, "ana@x", service, action, params, *status, ua)).collect();
        assert!(fired(&lines).contains(&rule.to_string()), "{rule} did not fire on {}", lines[0]);
    }
}

#[test]
fn the_hard_negatives_stay_quiet() {
    let quiet = |rule: &str, lines: Vec<String>| {
        let f = fired(&lines);
        assert!(!f.contains(&rule.to_string()), "{rule} fired on {}: {f:?}", lines[0]);
    };
    // Turning verbose audit logging on, and other keys, are not turning it off.
    quiet(
        "verbose_audit_disabled",
        vec![line(
            0,
            "a@x",
            "workspace",
            "workspaceConfEdit",
            r#""workspaceConfKeys":"enableVerboseAuditLogs","workspaceConfValues":"true""#,
            200,
            CHROME,
        )],
    );
    quiet(
        "verbose_audit_disabled",
        vec![line(
            0,
            "a@x",
            "workspace",
            "workspaceConfEdit",
            r#""workspaceConfKeys":"enableVerboseAuditLogs","workspaceConfValues":"false""#,
            403,
            CHROME,
        )],
    );
    // A recipient with an IP access list.
    quiet(
        "delta_sharing_recipient_without_ip_acl",
        vec![line(
            0,
            "a@x",
            "deltaSharingControl",
            "createRecipient",
            r#""name":"p","ipAccessList":["203.0.113.0/24"]"#,
            200,
            CHROME,
        )],
    );
    // A token for 30 days.
    quiet(
        "long_lived_token",
        vec![line(0, "a@x", "accounts", "generateDbToken", r#""lifetimeSeconds":"2592000""#, 200, CHROME)],
    );
    quiet(
        "token_without_expiry",
        vec![line(0, "a@x", "accounts", "generateDbToken", r#""lifetimeSeconds":"2592000""#, 200, CHROME)],
    );
    // A refused admin grant (the attacker tried to make themselves admin).
    quiet(
        "workspace_admin_assigned",
        vec![line(0, "attacker@x", "accounts", "setAdmin", r#""targetUserName":"attacker@x""#, 403, CHROME)],
    );
    // Four failed logins are under the threshold; SSO logins are not password ones.
    quiet(
        "repeated_failed_logins",
        (0..4).map(|i| line(i, "v@x", "accounts", "login", r#""user":"v@x""#, 401, CHROME)).collect(),
    );
    quiet(
        "non_sso_login",
        vec![line(0, "a@x", "accounts", "login", r#""user":"a@x","authenticationMethod":"SAML""#, 200, CHROME)],
    );
    quiet(
        "non_sso_login",
        vec![line(0, "a@x", "accounts", "login", r#""user":"a@x","authentication_method":"SAML""#, 200, CHROME)],
    );
    let snake = fired(&[line(0, "a@x", "accounts", "login", r#""authentication_method":"PASSWORD""#, 200, CHROME)]);
    assert!(snake.contains(&"non_sso_login".to_owned()), "either spelling of the parameter: {snake:?}");
    // Joining an ordinary group is not joining the admins.
    quiet(
        "workspace_admin_group_join",
        vec![line(
            0,
            "a@x",
            "accounts",
            "addPrincipalToGroup",
            r#""targetUserName":"u@x","targetGroupName":"analysts""#,
            200,
            CHROME,
        )],
    );
}

#[test]
fn a_rule_alert_names_the_principal_the_event_and_the_idea() {
    let lines = vec![line(3, "admin@x", "accounts", "setAdmin", r#""targetUserName":"Bob@X""#, 200, CHROME)];
    let all = alerts(&lines);
    let a = all.iter().find(|a| a.detector == "workspace_admin_assigned").expect("alert");
    assert_eq!(a.principal, "bob@x", "counted for the principal who received the role");
    assert_eq!((a.score, a.p_value, a.evidence.as_slice()), (100, 0.0, ["req-3".to_owned()].as_slice()));
    assert!(
        a.summary.starts_with("Workspace admin role granted: bob@x, once between 2024-01-01T10:00:00.000Z and 2024-01-01T10:15:00.000Z. First: accounts.setAdmin (status 200) targetUserName=Bob@X from 203.0.113.7 at 2024-01-01T10:03:00.000Z."),
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
