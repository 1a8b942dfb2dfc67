use super::*;
use crate::decode::decode_json;

/// A delivered audit event, decoded.
fn ev(ms: i64, actor: &str, service: &str, action: &str, params: &str, status: u16) -> Event {
    let line = format!(
        r#"{{"timestamp":{ms},"workspaceId":"7","serviceName":"{service}","actionName":"{action}","userIdentity":{{"email":"{actor}"}},"requestId":"r{ms}","requestParams":{{{params}}},"response":{{"statusCode":{status}}}}}"#
    );
    let mut e = Event::default();
    decode_json(line.as_bytes(), &mut e).unwrap_or_else(|r| panic!("{r:?}: {line}"));
    e
}

const T: i64 = 1_704_067_200_000;

#[test]
fn group_admin_and_grant_changes_build_the_model() {
    let mut m = AccessModel::new();
    m.observe(&ev(
        T,
        "admin@x",
        "accounts",
        "addPrincipalToGroup",
        r#""targetUserName":"Ana@X","targetGroupName":"Finance""#,
        200,
    ));
    m.observe(&ev(T + 1, "admin@x", "accounts", "setAdmin", r#""targetUserName":"bob@x""#, 200));
    m.observe(&ev(
        T + 2,
        "admin@x",
        "unityCatalog",
        "updatePermissions",
        r#""securable_type":"table","securable_full_name":"main.hr.salaries","changes":"[{\"principal\":\"finance\",\"add\":[\"SELECT\"]},{\"principal\":\"bob@x\",\"add\":[\"select\",\"MODIFY\"]}]""#,
        200,
    ));
    m.observe(&ev(T + 3, "admin@x", "accounts", "setAdmin", r#""targetUserName":"eve@x""#, 403));
    m.observe(&ev(
        T + 4,
        "admin@x",
        "unityCatalog",
        "changeOwner",
        r#""securable_type":"table","securable_full_name":"main.hr.bonus","owner":"Finance""#,
        200,
    ));
    assert!(m.groups_of("ana@x").is_empty(), "nothing applies before the model is advanced");
    m.advance_to(EventTime(T + 10));
    assert_eq!(m.groups_of("ana@x"), ["finance"]);
    assert!(m.is_admin("bob@x") && !m.is_admin("eve@x"), "a refused request changes nothing");
    assert_eq!(
        m.privileges_of("ana@x", 10),
        ["owner of main.hr.bonus", "SELECT on main.hr.salaries (through finance)"],
        "ownership through a group counts"
    );
    assert_eq!(m.privileges_of("bob@x", 10), ["workspace admin of 7", "MODIFY, SELECT on main.hr.salaries"]);

    m.observe(&ev(
        T + 20,
        "admin@x",
        "accounts",
        "removePrincipalFromGroup",
        r#""principal":"ana@x","targetGroupName":"finance""#,
        200,
    ));
    m.observe(&ev(
        T + 21,
        "admin@x",
        "unityCatalog",
        "updatePermissions",
        r#""securable_full_name":"main.hr.salaries","changes":"[{\"principal\":\"bob@x\",\"remove\":[\"MODIFY\"]}]""#,
        200,
    ));
    m.observe(&ev(T + 22, "admin@x", "accounts", "removeAdmin", r#""targetUserName":"bob@x""#, 200));
    m.advance_to(EventTime(T + 30));
    assert!(m.privileges_of("ana@x", 10).is_empty());
    assert_eq!(m.privileges_of("bob@x", 10), ["SELECT on main.hr.salaries"]);
}

#[test]
fn changes_apply_in_event_time_order_whatever_the_arrival_order() {
    let join = ev(
        T,
        "admin@x",
        "accounts",
        "addPrincipalToGroup",
        r#""targetUserName":"ana@x","targetGroupName":"admins""#,
        200,
    );
    let leave = ev(
        T + 5,
        "admin@x",
        "accounts",
        "removePrincipalFromGroup",
        r#""targetUserName":"ana@x","targetGroupName":"admins""#,
        200,
    );
    for order in [[&join, &leave], [&leave, &join]] {
        let mut m = AccessModel::new();
        for e in order {
            m.observe(e);
        }
        m.advance_to(EventTime(T + 3));
        assert!(m.is_admin("ana@x"), "between the two, ana is an admin through the admins group");
        m.advance_to(EventTime(T + 6));
        assert!(!m.is_admin("ana@x"));
    }
    let mut m = AccessModel::new();
    m.advance_to(EventTime(T + 100));
    m.observe(&join);
    assert_eq!(m.stats.late, 1, "a change older than the model is applied at once and counted");
    assert!(m.is_admin("ana@x"));
}

#[test]
fn removal_and_restoration() {
    let mut m = AccessModel::new();
    m.observe(&ev(T, "admin@x", "accounts", "delete", r#""targetUserName":"leaver@x","endpoint":"/users""#, 200));
    m.observe(&ev(T + 1, "admin@x", "accounts", "delete", r#""targetGroupName":"old","endpoint":"/groups""#, 200));
    m.advance_to(EventTime(T + 2));
    assert_eq!(m.removed_at("leaver@x"), Some(EventTime(T)));
    m.observe(&ev(T + 5, "admin@x", "accounts", "createUser", r#""targetUserName":"leaver@x""#, 200));
    m.advance_to(EventTime(T + 6));
    assert_eq!(m.removed_at("leaver@x"), None);
}

#[test]
fn every_sample_event_is_read_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/databricks");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut m = AccessModel::new();
    let mut e = Event::default();
    let mut changes = 0;
    for entry in entries.flatten() {
        if entry.path().extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            if decode_json(line.as_bytes(), &mut e).is_ok() {
                m.observe(&e);
            }
        }
        changes = m.stats.changes;
    }
    m.advance_to(EventTime(i64::MAX));
    assert!(changes >= 10, "the public samples hold group, admin and removal events: {changes}");
}

const SNAPSHOT: &str = r#"# exported 2024-01-01 from information_schema and the SCIM API
{"type":"member","principal":"Ana@X","group":"HR"}
{"type":"admin","principal":"root@x","role":"account"}
{"type":"admin","principal":"ops@x","role":"workspace","workspace_id":"7"}
{"type":"grant","securable":"main.hr.salaries","principal":"hr","privileges":["select"]}
{"type":"owner","securable":"main.hr","principal":"hr-admins"}
{"type":"tag","securable":"main.hr.salaries.ssn","tag":"PII"}
{"type":"tag","securable":"main.hr.salaries","tag":"confidential"}
{"type":"mask","securable":"main.hr.salaries.ssn","unmasked_for":["hr-admins","Root@X"]}
"#;

#[test]
fn a_snapshot_seeds_the_model_before_the_first_event() {
    let facts = parse_snapshot("snap.jsonl", SNAPSHOT).unwrap();
    assert_eq!(facts.len(), 8);
    let mut m = AccessModel::new();
    for f in facts {
        m.apply_fact(f);
    }
    assert_eq!(m.groups_of("ana@x"), ["hr"]);
    assert!(m.is_admin("root@x") && m.is_admin("ops@x") && !m.is_admin("ana@x"));
    assert_eq!(m.privileges_of("ana@x", 5), ["SELECT on main.hr.salaries (through hr)"]);
    assert_eq!(m.tags_of("main.hr.salaries"), ["confidential", "pii"]);
    assert!(m.tags_of("main.hr.salaries2").is_empty());
    assert!(m.holds_personal_data("main.hr.salaries") && m.holds_personal_data("main.hr"), "a column below counts");
    assert!(!m.holds_personal_data("main.hr.salaries2") && !m.holds_personal_data("main.finance"));
    assert_eq!(
        m.masks_of("main.hr.salaries"),
        [("main.hr.salaries.ssn".to_owned(), vec!["hr-admins".to_owned(), "root@x".to_owned()])]
    );
    // Events then change it as usual.
    m.observe(&ev(
        T,
        "root@x",
        "accounts",
        "removePrincipalFromGroup",
        r#""targetUserName":"ana@x","targetGroupName":"hr""#,
        200,
    ));
    m.advance_to(EventTime(T + 1));
    assert!(m.privileges_of("ana@x", 5).is_empty());
}

#[test]
fn a_bad_snapshot_line_is_named() {
    let err = parse_snapshot("snap.jsonl", "{\"type\":\"member\",\"principal\":\"a@x\",\"group\":\"g\"}\n{\"type\":\"admin\",\"principal\":\"a@x\",\"role\":\"king\"}\n").unwrap_err();
    assert_eq!(err.to_string(), "snap.jsonl: line 2: admin role `king`; allowed: account, workspace");
    let err = parse_snapshot("snap.jsonl", "{\"type\":\"grant\",\"securable\":\"t\"}\n").unwrap_err();
    assert!(err.to_string().starts_with("snap.jsonl: line 1: missing field"), "{err}");
}

#[test]
fn who_may_read_personal_data() {
    let mut m = AccessModel::new();
    for f in parse_snapshot("snap.jsonl", SNAPSHOT).unwrap() {
        m.apply_fact(f);
    }
    assert_eq!(m.personal_tables_readable_by("ana@x"), ["main.hr.salaries"], "through hr");
    assert!(m.personal_tables_readable_by("bob@x").is_empty());
    assert!(is_personal("pii_email") && is_personal("personal_data") && !is_personal("confidential"));
}
