use super::*;
use crate::decode::decode_json;
use crate::detect::definition::built_in;

const T: i64 = 1_704_096_000_000; // Monday 2024-01-01 08:00 UTC

fn def(name: &str) -> Definition {
    built_in().unwrap().into_iter().find(|d| d.name == name).unwrap()
}

/// A delivered audit event, decoded.
fn ev(ms: i64, actor: &str, action: &str, params: &str, ua: &str) -> Event {
    let service = if action == "getTable" { "unityCatalog" } else { "accounts" };
    let line = format!(
        r#"{{"timestamp":{ms},"workspaceId":"7","serviceName":"{service}","actionName":"{action}","userAgent":"{ua}","sourceIPAddress":"10.0.0.1","userIdentity":{{"email":"{actor}"}},"requestId":"r{ms}","requestParams":{{{params}}},"response":{{"statusCode":200}}}}"#
    );
    let mut e = Event::default();
    decode_json(line.as_bytes(), &mut e).unwrap_or_else(|r| panic!("{r:?}: {line}"));
    e
}

/// Feeds `events` (in the given order) to `rule`, with the watermark
/// following the latest time minus 15 minutes, and returns the alerts.
fn run(rule: Rule, name: &str, events: &[Event]) -> Vec<Alert> {
    let mut d = AccessRule::new(def(name), rule);
    let mut names = Interner::default();
    let mut out = Vec::new();
    let mut max = i64::MIN;
    for e in events {
        max = max.max(e.time.0);
        let w = EventTime(max - 15 * 60_000);
        let mut changes = Vec::new();
        crate::access::changes_of(e, &mut changes);
        d.note_changes(e.time, &changes);
        let id = names.intern(&e.principal);
        d.observe(id, e, w);
        d.advance(w, &names, &mut out);
    }
    d.advance(EventTime(i64::MAX / 2), &names, &mut out);
    out
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0";

#[test]
fn actions_after_removal_alert_whatever_the_order() {
    let removal =
        ev(T + 30 * 60_000, "admin@x", "delete", r#""targetUserName":"leaver@x","endpoint":"/users""#, CHROME);
    let before = ev(T + 20 * 60_000, "leaver@x", "getTable", r#""full_name_arg":"main.hr.salaries""#, CHROME);
    let after = ev(T + 40 * 60_000, "leaver@x", "getTable", r#""full_name_arg":"main.hr.salaries""#, CHROME);
    let later = ev(T + 3 * 3_600_000, "someone@x", "getTable", r#""full_name_arg":"main.x""#, CHROME);
    // The removal arrives after the action it precedes (within the lateness).
    for order in [[&before, &removal, &after, &later], [&before, &after, &removal, &later]] {
        let events: Vec<Event> = order.iter().map(|e| (*e).clone()).collect();
        let alerts = run(Rule::Offboarded, "offboarded_principal", &events);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!((a.principal.as_str(), a.evidence.as_slice()), ("leaver@x", [after.id.clone()].as_slice()));
        assert!(
            a.summary.contains("after it was removed from the account at 2024-01-01T08:30:00.000Z"),
            "{}",
            a.summary
        );
    }
}

#[test]
fn a_restored_principal_and_actions_before_removal_are_quiet() {
    let events = [
        ev(T, "leaver@x", "getTable", r#""full_name_arg":"main.x""#, CHROME),
        ev(T + 60_000, "admin@x", "delete", r#""targetUserName":"leaver@x","endpoint":"/users""#, CHROME),
        ev(T + 120_000, "admin@x", "createUser", r#""targetUserName":"leaver@x""#, CHROME),
        ev(T + 180_000, "leaver@x", "getTable", r#""full_name_arg":"main.x""#, CHROME),
        ev(T + 5 * 3_600_000, "someone@x", "getTable", r#""full_name_arg":"main.x""#, CHROME),
    ];
    assert!(run(Rule::Offboarded, "offboarded_principal", &events).is_empty());
}

#[test]
fn a_service_principal_signing_in_from_a_browser_drifts() {
    let sp = "8b676fe0-06dc-4daf-a458-c321fc171000";
    let events = [
        ev(T, sp, "tokenLogin", "", "databricks-sdk-py/0.18.0"),
        ev(T + 60_000, sp, "login", "", CHROME),
        ev(T + 5 * 3_600_000, "someone@x", "getTable", "", CHROME),
    ];
    let alerts = run(Rule::RoleDrift, "role_drift", &events);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(
        alerts[0]
            .summary
            .starts_with(&format!("Service principal {sp} signed in like a person (1 interactive or browser login)"))
    );
    // Token logins alone are what a service principal does.
    assert!(run(Rule::RoleDrift, "role_drift", &events[..1]).is_empty());
}

#[test]
fn a_person_automating_around_the_clock_drifts_and_office_hours_do_not() {
    let script = |hours: std::ops::Range<i64>| -> Vec<Event> {
        hours.map(|h| ev(T + h * 3_600_000 + 60_000, "ana@x", "getTable", "", "python-requests/2.31.0")).collect()
    };
    let alerts = run(Rule::RoleDrift, "role_drift", &script(0..30));
    assert_eq!(alerts.len(), 1, "suppressed after the first: {alerts:#?}");
    assert!(alerts[0].summary.contains("in 20 of the 24 hours"), "{}", alerts[0].summary);
    assert!(run(Rule::RoleDrift, "role_drift", &script(0..10)).is_empty(), "a working day of scripts is fine");
}

#[test]
fn a_revoked_token_used_again_alerts_whatever_the_order() {
    let revoke = ev(T + 30 * 60_000, "dev@x", "revokeDbToken", r#""tokenId":"tok-1""#, CHROME);
    let before = ev(T + 10 * 60_000, "dev@x", "tokenLogin", r#""tokenId":"tok-1","user":"dev@x""#, "curl/8.4");
    let after = ev(T + 50 * 60_000, "dev@x", "tokenLogin", r#""tokenId":"tok-1","user":"dev@x""#, "curl/8.4");
    let other = ev(T + 55 * 60_000, "dev@x", "tokenLogin", r#""tokenId":"tok-2","user":"dev@x""#, "curl/8.4");
    let later = ev(T + 3 * 3_600_000, "someone@x", "getTable", r#""full_name_arg":"main.x""#, CHROME);
    for order in [[&before, &revoke, &after, &other, &later], [&after, &other, &before, &revoke, &later]] {
        let events: Vec<Event> = order.iter().map(|e| (*e).clone()).collect();
        let alerts = run(Rule::Offboarded, "offboarded_principal", &events);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!((a.principal.as_str(), a.evidence.as_slice()), ("dev@x", [after.id.clone()].as_slice()));
        assert!(
            a.summary.contains("Token tok-1 of dev@x was still used at 2024-01-01T08:50:00.000Z, after it was revoked at 2024-01-01T08:30:00.000Z"),
            "{}",
            a.summary
        );
    }
}

#[test]
fn a_token_rotated_on_time_does_not_alert() {
    // The old token is revoked; the new one goes on working; the old one is
    // not seen again.
    let old = ev(T + 10 * 60_000, "dev@x", "tokenLogin", r#""tokenId":"tok-old""#, "curl/8.4");
    let revoke = ev(T + 30 * 60_000, "dev@x", "revokeDbToken", r#""tokenHash":"tok-old""#, CHROME);
    let new = ev(T + 40 * 60_000, "dev@x", "tokenLogin", r#""tokenId":"tok-new""#, "curl/8.4");
    let later = ev(T + 3 * 3_600_000, "someone@x", "getTable", r#""full_name_arg":"main.x""#, CHROME);
    let alerts = run(Rule::Offboarded, "offboarded_principal", &[old, revoke, new, later]);
    assert!(alerts.is_empty(), "{alerts:#?}");
}
