//! Every public sample event in ../shared/samples/databricks must decode;
//! the fixtures without a time must be quarantined as `missing_time`.

use auditwatch::decode::{QuarantineReason, decode_json};
use auditwatch::event::{Event, Shape};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/samples/databricks")
}

#[test]
fn every_sample_event_decodes() {
    let dir = samples_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected the sample files in {}", dir.display());

    let mut by_shape: BTreeMap<Shape, u64> = BTreeMap::new();
    let mut untimed = 0;
    let mut failures = Vec::new();
    let mut ev = Event::default();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let result = decode_json(line.as_bytes(), &mut ev);
            if name.contains("untimed") {
                match result {
                    Err(QuarantineReason::MissingTime) => untimed += 1,
                    other => failures.push(format!("{name}:{}: expected missing_time, got {other:?}", i + 1)),
                }
                continue;
            }
            match result {
                Ok(shape) => {
                    *by_shape.entry(shape).or_default() += 1;
                    assert!(!ev.service.is_empty() && !ev.action.is_empty(), "{name}:{}", i + 1);
                }
                Err(reason) => failures.push(format!("{name}:{}: {reason}: {line}", i + 1)),
            }
        }
    }
    println!("sample events by shape:");
    for (shape, n) in &by_shape {
        println!("  {:<24} {n}", shape.name());
    }
    println!("  quarantined missing_time {untimed}");
    assert!(failures.is_empty(), "{} sample events did not decode:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(by_shape.get(&Shape::AuditDelivery), Some(&141));
    assert_eq!(untimed, 27);
}

#[test]
fn sample_principals_are_classified() {
    use auditwatch::event::PrincipalKind;
    let text = std::fs::read_to_string(samples_dir().join("azure-sentinel-audit-delivery.jsonl")).unwrap();
    let mut ev = Event::default();
    let mut kinds = Vec::new();
    for line in text.lines() {
        decode_json(line.as_bytes(), &mut ev).unwrap();
        kinds.push((ev.principal.clone(), ev.principal_kind));
    }
    assert!(kinds.contains(&("analyst@example.com".into(), PrincipalKind::User)));
    // The failed login is attributed to the user it targeted.
    assert!(kinds.contains(&("unknown@example.com".into(), PrincipalKind::User)));
}
