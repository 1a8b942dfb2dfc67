//! Bad input never stops a replay: each kind is counted under its reason,
//! written with that reason to the quarantine file, and the good records
//! around it are still processed.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

fn good(ms: i64, id: &str) -> String {
    format!(
        r#"{{"version":"2.0","timestamp":{ms},"workspaceId":"1","userIdentity":{{"email":"ana@example.com"}},"serviceName":"databrickssql","actionName":"commandSubmit","requestId":"{id}","requestParams":{{"warehouseId":"w"}},"response":{{"statusCode":200}}}}"#
    )
}

#[test]
fn every_kind_of_bad_input_is_counted_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mixed.json");
    let t = 1_704_067_200_000i64;
    let mut f = std::fs::File::create(&input).unwrap();
    let mut expect: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bad = |f: &mut std::fs::File, reason: &'static str, bytes: &[u8]| {
        f.write_all(bytes).unwrap();
        f.write_all(b"\n").unwrap();
        *expect.entry(reason).or_default() += 1;
    };
    writeln!(f, "{}", good(t, "r1")).unwrap();
    bad(&mut f, "truncated", &good(t, "r2").as_bytes()[..80]);
    bad(&mut f, "malformed_json", b"this is not json");
    bad(&mut f, "not_an_object", b"[1,2,3]");
    bad(&mut f, "invalid_utf8", b"{\"timestamp\":1704067200000,\"serviceName\":\"accounts\xff\xfe\"}");
    bad(
        &mut f,
        "wrong_type",
        br#"{"timestamp":1704067200000,"serviceName":"accounts","actionName":"login","userIdentity":["x"]}"#,
    );
    bad(&mut f, "missing_field", br#"{"timestamp":1704067200000,"serviceName":"accounts"}"#);
    bad(&mut f, "missing_time", br#"{"serviceName":"accounts","actionName":"login"}"#);
    bad(&mut f, "time_out_of_range", good(0, "r3").as_bytes());
    bad(&mut f, "time_out_of_range", good(32_503_680_000_000, "r4").as_bytes());
    // A service nobody has seen is data, not bad input: decoded and counted.
    writeln!(f, r#"{{"timestamp":1704067200000,"serviceName":"teleporter","actionName":"beam"}}"#).unwrap();
    bad(&mut f, "unknown_shape", br#"{"hello":"world"}"#);
    let huge = format!(
        r#"{{"timestamp":1704067200000,"serviceName":"accounts","actionName":"login","pad":"{}"}}"#,
        "x".repeat(10 << 20)
    );
    bad(&mut f, "too_large", huge.as_bytes());
    writeln!(f, "{}", good(t + 1000, "r5")).unwrap();
    // The same record delivered twice.
    bad(&mut f, "duplicate", good(t + 1000, "r5").as_bytes());
    drop(f);

    let quarantine = dir.path().join("quarantine.jsonl");
    let alerts = dir.path().join("alerts.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .args(["replay", "--no-progress"])
        .arg(&input)
        .arg("--quarantine")
        .arg(&quarantine)
        .arg("--alerts-out")
        .arg(&alerts)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&quarantine).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *got.entry(v["reason"].as_str().unwrap().to_owned()).or_default() += 1;
        assert!(v.get("raw").is_some() || v.get("raw_hex").is_some(), "{line}");
        if v["reason"] == "too_large" {
            assert!(line.len() < 4096, "a huge record is not copied whole into the quarantine file");
        }
    }
    let want: BTreeMap<String, u64> = expect.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(got, want);
    // The summary names every reason with its count, and the good events got through.
    for (reason, n) in &want {
        assert!(
            stdout.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [reason.as_str(), &n.to_string()]),
            "{reason} {n} missing from:\n{stdout}"
        );
    }
    assert!(stdout.contains("audit_delivery                       3"), "{stdout}");
    assert!(stdout.contains("unknown services  1 events") && stdout.contains("teleporter 1"), "{stdout}");
}
