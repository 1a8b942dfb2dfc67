//! The `[[test]]` cases inside every shipped definition pass, run the way a
//! user runs them (`auditwatch test-models`), and every definition has a
//! case that alerts and one that stays quiet.

use std::process::Command;

#[test]
fn every_shipped_definition_passes_its_own_cases() {
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .args(["test-models", "--require-cases", models])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}\n{}", String::from_utf8_lossy(&out.stderr));
    let rows = table.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(rows >= 2 * 61, "two cases or more per definition: {rows}\n{table}");
    assert!(!table.contains("FAIL"), "{table}");
}

#[test]
fn a_failing_case_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let rule = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/rules/mfa_key_changed.toml"))
        .unwrap()
        .replacen("expect = false", "expect = true", 1);
    let path = dir.path().join("wrong.toml");
    std::fs::write(&path, rule).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch")).args(["test-models"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("expected an alert, got none"));
}
