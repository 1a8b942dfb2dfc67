//! Reordering events within the allowed lateness must not change any
//! alert: a generated data set is replayed as delivered, then every record
//! of every shape is shuffled into one file with each record displaced by
//! less than the allowed lateness, and the alert files must be
//! byte-identical.
//!
//! List prices stay in their own file, as they do in practice: they are
//! reference data that a deployment loads from `system.billing.list_prices`,
//! not part of the event stream.

use auditwatch::event::Event;
use proptest::prelude::*;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const LATENESS_MINUTES: i64 = 15;

fn auditwatch(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch")).args(args).output().unwrap();
    assert!(out.status.success(), "auditwatch {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The generated data set, its records with their event times, and the
/// alerts of replaying it as delivered.
struct Fixture {
    _dir: tempfile::TempDir,
    prices: PathBuf,
    records: Vec<(i64, String)>,
    alerts: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        auditwatch(&["generate", "--days", "12", "--principals", "40", "--seed", "11", "--out", data_s]);
        let alerts = dir.path().join("delivered.jsonl");
        let logs = data.join("logs");
        auditwatch(&["replay", logs.to_str().unwrap(), "--alerts-out", alerts.to_str().unwrap(), "--no-progress"]);

        let mut paths = Vec::new();
        files(&data.join("logs"), &mut paths);
        let mut prices = None;
        let mut records = Vec::new();
        let mut ev = Event::default();
        for path in paths {
            if path.components().any(|c| c.as_os_str() == "list_prices") {
                prices = Some(path);
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                auditwatch::decode::decode_json(line.as_bytes(), &mut ev).unwrap();
                records.push((ev.time.0, line.to_owned()));
            }
        }
        Fixture {
            prices: prices.expect("a list prices file"),
            records,
            alerts: std::fs::read(&alerts).unwrap(),
            _dir: dir,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn alerts_do_not_depend_on_order_within_the_allowed_lateness(seed in any::<u64>()) {
        let f = fixture();
        let alerts: Vec<serde_json::Value> =
            String::from_utf8_lossy(&f.alerts).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        prop_assert!(alerts.len() >= 5, "the data set must raise alerts for the comparison to mean anything");

        // Each record moves to its time plus a delay below the lateness:
        // it can arrive after any record up to that much later than it.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let lateness = LATENESS_MINUTES * 60_000;
        let mut shuffled: Vec<(i64, u64, i64, &str)> = f
            .records
            .iter()
            .map(|(t, line)| (t + rng.random_range(0..lateness), rng.random(), *t, line.as_str()))
            .collect();
        shuffled.sort();
        let moved = shuffled.windows(2).filter(|w| w[1].2 < w[0].2).count();
        prop_assert!(moved > f.records.len() / 10, "the shuffle must reorder a good share of records ({moved})");

        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("shuffled.jsonl");
        let mut text = String::new();
        for (_, _, _, line) in &shuffled {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&input, text).unwrap();
        let out = dir.path().join("alerts.jsonl");
        auditwatch(&[
            "replay",
            input.to_str().unwrap(),
            f.prices.to_str().unwrap(),
            "--alerts-out",
            out.to_str().unwrap(),
            "--allowed-lateness-minutes",
            &LATENESS_MINUTES.to_string(),
            "--no-progress",
        ]);
        let got = std::fs::read(&out).unwrap();
        prop_assert!(got == f.alerts, "alerts differ after reordering:\nwant:\n{}\ngot:\n{}",
            String::from_utf8_lossy(&f.alerts), String::from_utf8_lossy(&got));
    }
}
