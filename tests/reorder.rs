//! Order must not change any alert.
//!
//! - Replay sorts its whole input: every record of every shape shuffled in
//!   any order (within each file, or all in one file) gives the alerts of
//!   the delivered files, byte for byte.
//! - Scored as delivered (`--as-delivered`, what live mode sees), records
//!   displaced by less than the allowed lateness still give the same
//!   alerts; displaced further, they are counted late and written to the
//!   quarantine file with reason `late`, never silently lost.
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
            "--as-delivered",
            "--no-progress",
        ]);
        let got = std::fs::read(&out).unwrap();
        prop_assert!(got == f.alerts, "alerts differ after reordering:\nwant:\n{}\ngot:\n{}",
            String::from_utf8_lossy(&f.alerts), String::from_utf8_lossy(&got));
    }
}

fn write_lines(path: &Path, lines: &[&str]) {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn replay_alerts(inputs: &[&Path], extra: &[&str], dir: &Path) -> (Vec<u8>, String) {
    let out = dir.join(format!("alerts-{}.jsonl", rand::random::<u32>()));
    let mut args = vec!["replay".to_string()];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend(["--alerts-out".into(), out.to_str().unwrap().into(), "--no-progress".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = Command::new(env!("CARGO_BIN_EXE_auditwatch")).args(&args).output().unwrap();
    assert!(run.status.success(), "{args:?}: {}", String::from_utf8_lossy(&run.stderr));
    (std::fs::read(&out).unwrap(), String::from_utf8_lossy(&run.stdout).into_owned())
}

#[test]
fn every_shape_shuffled_over_the_whole_file_replays_like_the_sorted_files() {
    let f = fixture();
    let shapes: std::collections::BTreeSet<String> = f
        .records
        .iter()
        .map(|(_, l)| {
            let mut ev = Event::default();
            auditwatch::decode::decode_json(l.as_bytes(), &mut ev).unwrap();
            ev.shape.unwrap().name().to_string()
        })
        .collect();
    // Every shape the generator writes (list prices stay in their file).
    assert!(shapes.len() >= 4 && shapes.contains("system_billing_usage"), "{shapes:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20261202);
    let mut lines: Vec<&str> = f.records.iter().map(|(_, l)| l.as_str()).collect();
    use rand::seq::SliceRandom;
    lines.shuffle(&mut rng);
    let all = dir.path().join("all-shuffled.jsonl");
    write_lines(&all, &lines);
    // 4 MiB of sort memory: the input is sorted in spilled runs on disk.
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    for extra in [&[][..], &["--sort-memory-mib", "4", "--spill-dir", spill.to_str().unwrap()][..]] {
        let (got, summary) = replay_alerts(&[&all, &f.prices], extra, dir.path());
        assert!(summary.contains("order    out of event-time order: read again and sorted in full"), "{summary}");
        if !extra.is_empty() {
            assert!(summary.contains("MB spilled to disk"), "{summary}");
        }
        assert!(
            got == f.alerts,
            "shuffled replay {extra:?} differs:\nwant:\n{}\ngot:\n{}",
            String::from_utf8_lossy(&f.alerts),
            String::from_utf8_lossy(&got)
        );
    }
    assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0, "sort runs are removed");

    // Scored as delivered, the same shuffled file loses signals to lateness,
    // and every late record is counted and written with its reason.
    let q = dir.path().join("late.jsonl");
    let (as_delivered, summary) =
        replay_alerts(&[&all, &f.prices], &["--as-delivered", "--quarantine", q.to_str().unwrap()], dir.path());
    assert_ne!(as_delivered, f.alerts);
    let late = std::fs::read_to_string(&q).unwrap().lines().filter(|l| l.contains(r#""reason":"late""#)).count();
    assert!(late > f.records.len() / 4, "{late} late of {}", f.records.len());
    assert!(summary.contains("beyond every allowed lateness, by shape"), "{summary}");
}

#[test]
fn each_file_shuffled_in_place_replays_like_the_delivered_files() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let data = f._dir.path().join("data").join("logs");
    let mut paths = Vec::new();
    files(&data, &mut paths);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    use rand::seq::SliceRandom;
    let copy = dir.path().join("logs");
    for path in &paths {
        let rel = path.strip_prefix(&data).unwrap();
        let target = copy.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.shuffle(&mut rng);
        write_lines(&target, &lines);
    }
    let (got, _) = replay_alerts(&[&copy], &[], dir.path());
    assert!(got == f.alerts, "alerts differ after shuffling each file");
    // The delivered files are in order within the lateness: they never need the full sort,
    // and give what it gives.
    let (delivered, summary) = replay_alerts(&[&data], &[], dir.path());
    assert!(delivered == f.alerts);
    assert!(summary.contains("order    in event-time order within the smallest lateness"), "{summary}");
}
