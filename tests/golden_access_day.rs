//! A scripted day in a workspace: ordinary traffic with access incidents
//! mixed in, replayed end to end, compared with the alert file a reviewer
//! read and accepted (`tests/golden/access_day.jsonl`).
//!
//! The day: analysts query tables and sign in with SSO all day; an admin
//! grants a role properly and turns verbose audit logging off (and later a
//! harmless setting); a leaver is removed at 11:00 and their token reads
//! tables at 15:00; a service principal signs in from a browser; someone
//! probes Unity Catalog for data credentials; a Delta Sharing recipient is
//! created without an IP access list, another with one; hr's ana copies a
//! table with masked personal data into a schema analysts read (share-down),
//! while bob, who sees it masked, copies it too (share-up). Hard negatives
//! are in the same file: a refused admin grant, verbose logging turned back
//! on, an SSO sign-in, four failed logins (under the threshold).
//!
//! To accept a change in the alerts after reading the diff:
//! `AUDITWATCH_BLESS=1 cargo test --test golden_access_day`.

use std::fmt::Write;
use std::process::Command;

const DAY: i64 = 1_705_017_600_000; // Friday 2024-01-12 00:00 UTC
const HOUR: i64 = 3_600_000;
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
const SP: &str = "5e2c7c2a-1d3b-4c55-9a8e-0f6b1a2b3c4d";

struct Day {
    text: String,
    n: u32,
}

impl Day {
    #[allow(clippy::too_many_arguments)]
    fn ev(&mut self, ms: i64, who: &str, service: &str, action: &str, params: &str, status: u16, ip: &str, ua: &str) {
        self.n += 1;
        let _ = writeln!(
            self.text,
            r#"{{"version":"2.0","auditLevel":"WORKSPACE_LEVEL","timestamp":{ms},"orgId":1234,"workspaceId":"1234","shardName":"oregon","accountId":"acc-1","sourceIPAddress":"{ip}","userAgent":"{ua}","sessionId":null,"userIdentity":{{"email":"{who}"}},"serviceName":"{service}","actionName":"{action}","requestId":"req-{:05}","requestParams":{{{params}}},"response":{{"statusCode":{status},"errorMessage":null,"result":null}}}}"#,
            self.n
        );
    }
}

fn scripted_day() -> String {
    let mut d = Day { text: String::new(), n: 0 };
    let analysts = ["ana@acme.example", "ben@acme.example", "chloe@acme.example", "dev@acme.example"];
    // Ordinary traffic: SSO sign-ins at 08:00, table reads and queries every
    // working hour, from the office network and a browser.
    for (i, a) in analysts.iter().enumerate() {
        d.ev(
            DAY + 8 * HOUR + i as i64 * 60_000,
            a,
            "accounts",
            "samlLogin",
            &format!(r#""user":"{a}""#),
            200,
            "10.1.0.5",
            CHROME,
        );
    }
    for h in 8..18 {
        for (i, a) in analysts.iter().enumerate() {
            for k in 0..3 {
                let t = DAY + h * HOUR + (i as i64 * 7 + k * 17) * 60_000;
                let params = r#""full_name_arg":"main.sales.orders""#;
                d.ev(t, a, "unityCatalog", "getTable", params, 200, "10.1.0.5", CHROME);
            }
        }
    }
    // The leaver worked in the morning, from the office.
    for k in 0..4 {
        let params = r#""full_name_arg":"main.hr.salaries""#;
        d.ev(
            DAY + 9 * HOUR + k * 600_000,
            "eve@acme.example",
            "unityCatalog",
            "getTable",
            params,
            200,
            "10.1.0.9",
            CHROME,
        );
    }
    // 10:05 a proper workspace admin grant; 10:06 a refused self-grant.
    d.ev(
        DAY + 10 * HOUR + 300_000,
        "admin@acme.example",
        "accounts",
        "setAdmin",
        r#""targetUserName":"ben@acme.example""#,
        200,
        "10.1.0.2",
        CHROME,
    );
    d.ev(
        DAY + 10 * HOUR + 360_000,
        "dev@acme.example",
        "accounts",
        "setAdmin",
        r#""targetUserName":"dev@acme.example""#,
        403,
        "10.1.0.5",
        CHROME,
    );
    // 10:30 verbose audit logging off; 10:50 back on; 12:00 a display name.
    let conf = |k: &str, v: &str| format!(r#""workspaceConfKeys":"{k}","workspaceConfValues":"{v}""#);
    d.ev(
        DAY + 10 * HOUR + 1_800_000,
        "admin@acme.example",
        "workspace",
        "workspaceConfEdit",
        &conf("enableVerboseAuditLogs", "false"),
        200,
        "10.1.0.2",
        CHROME,
    );
    d.ev(
        DAY + 10 * HOUR + 3_000_000,
        "admin@acme.example",
        "workspace",
        "workspaceConfEdit",
        &conf("enableVerboseAuditLogs", "true"),
        200,
        "10.1.0.2",
        CHROME,
    );
    d.ev(
        DAY + 12 * HOUR,
        "admin@acme.example",
        "workspace",
        "workspaceConfEdit",
        &conf("displayName", "Sales"),
        200,
        "10.1.0.2",
        CHROME,
    );
    // 11:00 the leaver is removed; 15:10 their token reads salaries.
    d.ev(
        DAY + 11 * HOUR,
        "admin@acme.example",
        "accounts",
        "delete",
        r#""targetUserName":"eve@acme.example","endpoint":"/users""#,
        200,
        "10.1.0.2",
        CHROME,
    );
    for k in 0..3 {
        let params = r#""full_name_arg":"main.hr.salaries""#;
        d.ev(
            DAY + 15 * HOUR + 600_000 + k * 60_000,
            "eve@acme.example",
            "unityCatalog",
            "getTable",
            params,
            200,
            "198.51.100.23",
            "python-requests/2.31.0",
        );
    }
    // 13:20 the ETL service principal signs in from a browser.
    d.ev(DAY + 13 * HOUR + 1_200_000, SP, "accounts", "tokenLogin", "", 200, "10.2.0.4", "databricks-sdk-py/0.18.0");
    d.ev(
        DAY + 13 * HOUR + 1_260_000,
        SP,
        "accounts",
        "login",
        r#""user":"5e2c7c2a-1d3b-4c55-9a8e-0f6b1a2b3c4d""#,
        200,
        "10.1.0.7",
        CHROME,
    );
    // 14:00–14:20 twenty refused requests for table credentials.
    for k in 0..20 {
        d.ev(
            DAY + 14 * HOUR + k * 60_000,
            "chloe@acme.example",
            "unityCatalog",
            "generateTemporaryTableCredential",
            r#""table_id":"t-9""#,
            403,
            "10.1.0.5",
            CHROME,
        );
    }
    // Just-in-time grants on main.finance until 12:00: chloe's is revoked at
    // 11:50 and her 13:00 read is refused; dev's stays and dev reads at 13:00.
    let revoke = r#""securable_type":"schema","securable_full_name":"main.finance","changes":"[{\"principal\":\"chloe@acme.example\",\"remove\":[\"SELECT\"]}]""#;
    d.ev(
        DAY + 11 * HOUR + 3_000_000,
        "admin@acme.example",
        "unityCatalog",
        "updatePermissions",
        revoke,
        200,
        "10.1.0.2",
        CHROME,
    );
    let ledger = r#""full_name_arg":"main.finance.ledger""#;
    d.ev(DAY + 13 * HOUR, "chloe@acme.example", "unityCatalog", "getTable", ledger, 403, "10.1.0.5", CHROME);
    d.ev(DAY + 13 * HOUR + 60_000, "dev@acme.example", "unityCatalog", "getTable", ledger, 200, "10.1.0.5", CHROME);
    // 16:00 two Delta Sharing recipients, one with an IP access list.
    d.ev(
        DAY + 16 * HOUR,
        "admin@acme.example",
        "deltaSharingControl",
        "createRecipient",
        r#""name":"partner-a""#,
        200,
        "10.1.0.2",
        CHROME,
    );
    d.ev(
        DAY + 16 * HOUR + 60_000,
        "admin@acme.example",
        "deltaSharingControl",
        "createRecipient",
        r#""name":"partner-b","ipAccessList":["203.0.113.0/24"]"#,
        200,
        "10.1.0.2",
        CHROME,
    );
    // 17:00 four failed password logins against ana: under the threshold.
    for k in 0..4 {
        d.ev(
            DAY + 17 * HOUR + k * 60_000,
            "",
            "accounts",
            "login",
            r#""user":"ana@acme.example","authenticationMethod":"password""#,
            401,
            "203.0.113.50",
            "curl/8.4.0",
        );
    }
    // Lines in event-time order, as a delivery file holds them.
    let mut lines: Vec<&str> = d.text.lines().collect();
    lines.sort_by_key(|l| {
        l.split("\"timestamp\":").nth(1).and_then(|r| r.split(',').next()).and_then(|t| t.parse::<i64>().ok())
    });
    lines.join("\n") + "\n"
}

/// What the access snapshot says before the day: hr reads people, whose
/// email column is personal and masked for everyone but hr; analysts read
/// people (masked) and the shared schema.
const SNAPSHOT: &str = r#"{"type":"member","principal":"ana@acme.example","group":"hr"}
{"type":"member","principal":"ben@acme.example","group":"analysts"}
{"type":"member","principal":"chloe@acme.example","group":"analysts"}
{"type":"grant","securable":"main.hr.people","principal":"hr","privileges":["SELECT"]}
{"type":"grant","securable":"main.hr.people","principal":"analysts","privileges":["SELECT"]}
{"type":"tag","securable":"main.hr.people.email","tag":"pii"}
{"type":"mask","securable":"main.hr.people.email","unmasked_for":["hr"]}
{"type":"grant","securable":"main.shared","principal":"analysts","privileges":["SELECT"]}
{"type":"jit","securable":"main.finance","principal":"dev@acme.example","privileges":["SELECT"],"expires":"2024-01-12T12:00:00Z"}
{"type":"jit","securable":"main.finance","principal":"chloe@acme.example","privileges":["SELECT"],"expires":"2024-01-12T12:00:00Z"}
"#;

/// `system.access.table_lineage` rows of the day.
fn lineage() -> String {
    let row = |ms: i64, who: &str, target: &str, id: &str| {
        format!(
            r#"{{"account_id":"acc-1","metastore_id":"m-1","workspace_id":"1234","entity_type":"NOTEBOOK","source_table_full_name":"main.hr.people","source_type":"TABLE","target_table_full_name":"{target}","target_type":"TABLE","created_by":"{who}","event_time":"{}","event_date":"2024-01-12","record_id":"{id}"}}"#,
            auditwatch::time::EventTime(ms)
        )
    };
    [
        row(DAY + 11 * HOUR + 1_200_000, "ana@acme.example", "main.shared.people_copy", "lin-1"),
        row(DAY + 11 * HOUR + 1_500_000, "ben@acme.example", "main.shared.people_masked", "lin-2"),
    ]
    .join("\n")
        + "\n"
}

#[test]
fn the_scripted_day_raises_exactly_the_accepted_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("auditlogs_2024-01-12.json");
    std::fs::write(&input, scripted_day()).unwrap();
    let lineage_file = dir.path().join("table_lineage.jsonl");
    std::fs::write(&lineage_file, lineage()).unwrap();
    let snapshot = dir.path().join("access.jsonl");
    std::fs::write(&snapshot, SNAPSHOT).unwrap();
    let out = dir.path().join("alerts.jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .args(["replay", input.to_str().unwrap(), lineage_file.to_str().unwrap()])
        .args(["--access-snapshot", snapshot.to_str().unwrap()])
        .args(["--alerts-out", out.to_str().unwrap(), "--no-progress"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got = std::fs::read_to_string(&out).unwrap();
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/access_day.jsonl");
    if std::env::var_os("AUDITWATCH_BLESS").is_some() {
        std::fs::write(golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(golden).unwrap_or_default();
    let names = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {} {}",
                    v["detector"].as_str().unwrap(),
                    v["principal"].as_str().unwrap(),
                    v["window_start"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert!(
        got == want,
        "alerts differ from tests/golden/access_day.jsonl\ngot:\n  {}\nwant:\n  {}\n(AUDITWATCH_BLESS=1 accepts the new file after reading it)",
        names(&got).join("\n  "),
        names(&want).join("\n  ")
    );
    // What a reviewer checked in the golden file, said here as well.
    let got = names(&got);
    for expected in [
        "verbose_audit_disabled admin@acme.example",
        "workspace_admin_assigned ben@acme.example",
        // Refused, and still what a security team wants to see (lower).
        "workspace_admin_assigned dev@acme.example",
        "offboarded_principal eve@acme.example",
        "role_drift 5e2c7c2a-1d3b-4c55-9a8e-0f6b1a2b3c4d",
        "repeated_unauthorized_uc_data chloe@acme.example",
        "delta_sharing_recipient_without_ip_acl admin@acme.example",
        "share_down_write ana@acme.example",
        "jit_overrun dev@acme.example 2024-01-12T12:30",
        "jit_overrun dev@acme.example 2024-01-12T13:00",
    ] {
        assert!(got.iter().any(|g| g.starts_with(expected)), "missing {expected}: {got:#?}");
    }
    for never in ["repeated_failed_logins", "non_sso_login", "share_down_write ben@", "jit_overrun chloe@"] {
        assert!(!got.iter().any(|g| g.starts_with(never)), "unexpected {never}: {got:#?}");
    }
}
