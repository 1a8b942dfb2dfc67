//! `auditwatch score-series` as a user runs it: a CSV in, a CSV out, the
//! injected anomaly on top and a summary on stderr.

use std::fmt::Write;
use std::process::Command;

#[test]
fn scores_an_exported_cost_series_and_puts_the_spike_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("cost.csv"), dir.path().join("scored.csv"));
    // Hourly cost in dollars, with a daily rhythm, for three weeks; one hour
    // at twelve times its usual level; epoch-millisecond timestamps.
    let mut csv = String::from("hour_start,usd,team\n");
    let t0 = 1_704_067_200_000i64;
    for h in 0..21 * 24i64 {
        let hour = h % 24;
        let usual = if (8..20).contains(&hour) { 40.0 } else { 6.0 } + (h % 7) as f64;
        let usd = if h == 17 * 24 + 14 { usual * 12.0 } else { usual };
        let _ = writeln!(csv, "{},{usd:.2},data", t0 + h * 3_600_000);
    }
    csv.push_str("not a time,3.0,data\n");
    std::fs::write(&input, csv).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_auditwatch"))
        .args(["score-series", "--input", input.to_str().unwrap(), "--out", output.to_str().unwrap()])
        .args(["--time-column", "hour_start", "--value-column", "usd", "--explain"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("scored with the value model"), "{stderr}");
    assert!(stderr.contains("1 rows not scored: unparsable timestamp"), "{stderr}");

    let text = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["hour_start", "usd", "score", "expected", "low", "high"]);
    assert_eq!(rows.len(), 1 + 21 * 24 + 1, "every input row is written");
    let scored: Vec<(u8, &Vec<&str>)> =
        rows[1..].iter().filter_map(|r| r[2].parse::<u8>().ok().map(|s| (s, r))).collect();
    let (top, row) = scored.iter().max_by_key(|(s, _)| *s).unwrap();
    assert_eq!(row[0], (t0 + (17 * 24 + 14) * 3_600_000).to_string(), "the spike scores highest");
    assert!(*top >= 60, "{top}");
    let high: f64 = row[5].parse().unwrap();
    assert!(high < 200.0, "the interval says what was expected: {row:?}");
    let quiet = scored.iter().filter(|(s, _)| *s >= 30).count();
    assert!(quiet <= 3, "the daily rhythm itself is not anomalous: {quiet} rows score ≥ 30");
}
