//! Every public sample event in ../shared/samples/databricks must decode;
//! the fixtures without a time must be quarantined as `missing_time`. How
//! many events each file holds is counted in the same run by a reader
//! that is not ours (Python's `json`), so that an event the decoder skips
//! or splits cannot go unnoticed.

use auditwatch::decode::{QuarantineReason, decode_json};
use auditwatch::event::{Event, Shape};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Per file of `files`: how many JSON documents it holds, and how many of
/// them carry a `timestamp`, as Python's `json` module reads the whole
/// text (documents one after another, whatever the line breaks).
fn reference_counts(files: &[PathBuf]) -> BTreeMap<String, (u64, u64)> {
    const SCRIPT: &str = r#"
import json, os, sys
decoder = json.JSONDecoder()
for path in sys.argv[1:]:
    text = open(path, encoding="utf-8").read()
    at, documents, timed = 0, 0, 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        value, at = decoder.raw_decode(text, at)
        documents += 1
        timed += isinstance(value, dict) and value.get("timestamp") is not None
    print(os.path.basename(path), documents, timed, sep="\t")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to count the sample events independently: {e}"));
    assert!(out.status.success(), "python3 could not read the samples: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .collect()
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

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

    let reference = reference_counts(&files);
    let mut by_shape: BTreeMap<Shape, u64> = BTreeMap::new();
    let mut untimed = 0;
    let mut failures = Vec::new();
    let mut ev = Event::default();
    for file in &files {
        let name = file_name(file);
        let (documents, timed) = reference[&name];
        assert!(documents > 0, "{name}: the reference reader found no event");
        // The file's name says whether its events carry a time; the
        // reference reader agrees, or the expectations below mean nothing.
        let want_timed = if name.contains("untimed") { 0 } else { documents };
        assert_eq!(timed, want_timed, "{name}: {timed} of {documents} events carry a timestamp");
        let text = std::fs::read_to_string(file).unwrap();
        let (mut accepted, mut missing_time, mut records) = (0, 0, 0);
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            records += 1;
            let result = decode_json(line.as_bytes(), &mut ev);
            if name.contains("untimed") {
                match result {
                    Err(QuarantineReason::MissingTime) => missing_time += 1,
                    other => failures.push(format!("{name}:{}: expected missing_time, got {other:?}", i + 1)),
                }
                continue;
            }
            match result {
                Ok(shape) => {
                    accepted += 1;
                    *by_shape.entry(shape).or_default() += 1;
                    assert!(!ev.service.is_empty() && !ev.action.is_empty(), "{name}:{}", i + 1);
                }
                Err(reason) => failures.push(format!("{name}:{}: {reason}: {line}", i + 1)),
            }
        }
        // One record a line, as many as the reference reader finds; every
        // timed one accepted, every untimed one quarantined as missing_time.
        if (records, accepted, missing_time) != (documents, timed, documents - timed) {
            failures.push(format!(
                "{name}: the reference reader finds {documents} events, {timed} with a time; \
                 read {records} records, accepted {accepted}, quarantined {missing_time} as missing_time"
            ));
        }
        untimed += missing_time;
    }
    println!("sample events by shape:");
    for (shape, n) in &by_shape {
        println!("  {:<24} {n}", shape.name());
    }
    println!("  quarantined missing_time {untimed}");
    assert!(failures.is_empty(), "{} problems with the sample events:\n{}", failures.len(), failures.join("\n"));
    // Every sample is the delivered audit-log shape (PROVENANCE.md).
    let timed: u64 = reference.values().map(|(_, t)| t).sum();
    let documents: u64 = reference.values().map(|(d, _)| d).sum();
    assert_eq!(by_shape, BTreeMap::from([(Shape::AuditDelivery, timed)]));
    assert_eq!(untimed, documents - timed);
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
