//! Parquet written by a third-party writer (pyarrow, with Databricks'
//! column types) is read through the same pipeline as JSON.

use std::path::Path;
use std::process::Command;

fn pyarrow_available() -> bool {
    let ok = Command::new("python3").args(["-c", "import pyarrow"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("AUDITWATCH_REQUIRE_PYARROW").is_none(),
            "pyarrow is required (AUDITWATCH_REQUIRE_PYARROW is set)"
        );
        eprintln!("skipped: pyarrow is not installed (scripts/test.sh installs it)");
    }
    ok
}

/// Writes the four tables as Parquet into `dir`, and as JSON lines into
/// `json_dir` when given.
fn make_with_json(dir: &Path, json_dir: Option<&Path>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make_parquet.py");
    let out = Command::new("python3").arg(script).arg(dir).args(json_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn make(dir: &Path) {
    make_with_json(dir, None);
}

const TABLES: [&str; 4] = ["access_audit", "billing_usage", "list_prices", "job_run_timeline"];

/// Every record of one file: the event's fields, or the quarantine reason.
fn decode_file(path: &Path) -> Vec<Result<String, auditwatch::decode::QuarantineReason>> {
    use auditwatch::event::Event;
    use auditwatch::source::{Record, files};
    let mut s = files::open(path, 1 << 20).unwrap();
    let (mut ev, mut raw, mut out) = (Event::default(), Vec::new(), Vec::new());
    while let Some(r) = s.next_record(&mut ev, &mut raw) {
        out.push(match r {
            Record::Event(_) => Ok(format!("{ev:?}")),
            Record::Quarantined(q) => Err(q),
        });
    }
    out
}

#[test]
fn pyarrow_system_tables_decode() {
    if !pyarrow_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make(dir.path());
    use auditwatch::event::{Event, Shape};
    use auditwatch::source::{Record, files};
    let mut counts = std::collections::BTreeMap::new();
    let (mut ev, mut raw) = (Event::default(), Vec::new());
    let mut quarantined = Vec::new();
    for name in TABLES {
        let path = dir.path().join(format!("{name}.parquet"));
        assert_eq!(files::sniff(&path).unwrap(), files::Format::Parquet);
        let mut s = files::open(&path, 1 << 20).unwrap();
        while let Some(r) = s.next_record(&mut ev, &mut raw) {
            match r {
                Record::Event(shape) => {
                    *counts.entry(shape).or_insert(0) += 1;
                    if ev.action == "updatePermissions" {
                        assert_eq!(ev.securable, "main.hr.salaries");
                        assert_eq!(ev.principal, "ana.silva@acme.example");
                    }
                    if shape == Shape::BillingUsage {
                        assert_eq!(ev.amount, 2.5);
                        assert_eq!(ev.principal, "6f1c2a3b-1234-4abc-9def-0123456789ab");
                    }
                }
                Record::Quarantined(q) => quarantined.push((q, String::from_utf8_lossy(&raw).into_owned())),
            }
        }
    }
    assert_eq!(counts.get(&Shape::SystemAudit), Some(&41));
    assert_eq!(counts.get(&Shape::BillingUsage), Some(&6));
    assert_eq!(counts.get(&Shape::ListPrice), Some(&1));
    assert_eq!(counts.get(&Shape::JobRunTimeline), Some(&2));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].0, auditwatch::decode::QuarantineReason::MissingTime);
    assert!(quarantined[0].1.contains("e-untimed"), "{}", quarantined[0].1);
}

/// The same rows written by pyarrow as Parquet and by Python as JSON lines
/// decode to the same events: one normalization for both inputs.
#[test]
fn pyarrow_parquet_decodes_like_the_same_rows_as_json() {
    if !pyarrow_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (parquet, json) = (dir.path().join("parquet"), dir.path().join("json"));
    make_with_json(&parquet, Some(&json));
    for name in TABLES {
        let from_parquet = decode_file(&parquet.join(format!("{name}.parquet")));
        let from_json = decode_file(&json.join(format!("{name}.jsonl")));
        assert!(!from_parquet.is_empty());
        assert_eq!(from_parquet.len(), from_json.len(), "{name}");
        for (row, (p, j)) in from_parquet.iter().zip(&from_json).enumerate() {
            assert_eq!(p, j, "{name} row {}", row + 1);
        }
    }
}

#[test]
fn replay_reads_a_parquet_export_folder() {
    if !pyarrow_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make(&dir.path().join("export"));
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .args(["replay", "--no-progress"])
        .arg(dir.path().join("export"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "system_access_audit                  41",
        "system_billing_usage                 6",
        "missing_time                         1",
    ] {
        assert!(stdout.contains(line), "{line} not in\n{stdout}");
    }
    assert!(stdout.contains("usage rows priced 6 / DBUs only 0"), "{stdout}");
    assert!(stdout.contains("job runs rebuilt 1"), "{stdout}");
}
