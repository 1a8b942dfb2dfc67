//! `score-series`: scores any exported metric series (a timestamp and a
//! value per row) with the same models the detectors use, so an analyst can
//! ask "was this hour unusual?" of a cost or query series, and the models
//! can be run on public anomaly benchmarks.
//!
//! Counts (every value a non-negative integer) go through the seasonal
//! negative binomial model ([`SeasonalCounts`], with global priors: a
//! series has no peers); other values through the seasonal Student-t
//! model ([`SeasonalValues`], hours of the day and of the week). Scoring is online
//! and predictive: each row is scored against what the model had learnt
//! from the rows before it, then learnt; a score once written is never
//! revised. Rows are scored in time order (the file is sorted first, ties
//! kept in file order) and written in that order.

use crate::baseline::count::{CountPrior, SeasonalCounts};
use crate::baseline::score_of;
use crate::baseline::value::{Forgetting, SeasonalValues};
use crate::time::{EventTime, MS_PER_HOUR};
use std::path::{Path, PathBuf};

/// Which model scores the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesModel {
    /// Counts: the seasonal negative binomial model.
    Count,
    /// Any values: the seasonal Student-t model.
    Value,
}

impl SeriesModel {
    pub fn name(self) -> &'static str {
        match self {
            SeriesModel::Count => "count",
            SeriesModel::Value => "value",
        }
    }
}

/// How to read and score a series.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Column names; `None`: `timestamp` and `value`, or else the first two columns.
    pub time_column: Option<String>,
    pub value_column: Option<String>,
    /// `None`: counts when every value is written as a non-negative integer
    /// (`46`, not `46.0`), values otherwise.
    pub model: Option<SeriesModel>,
    /// Weight the past keeps per day of event time (`None`: 0.95).
    pub forgetting_per_day: Option<f64>,
    /// Score both tails: 2·min(P(X ≥ x), P(X ≤ x)) (a drop matters too).
    pub two_sided: bool,
    /// Add `expected,low,high` columns.
    pub explain: bool,
    /// Rows within this long of the first row are learnt but not scored
    /// (with nothing learnt yet, everything is a surprise).
    pub warmup_ms: i64,
}

impl Default for ScoreOptions {
    /// What `auditwatch score-series` does with no flags.
    fn default() -> Self {
        ScoreOptions {
            time_column: None,
            value_column: None,
            model: None,
            forgetting_per_day: None,
            two_sided: false,
            explain: false,
            warmup_ms: 24 * MS_PER_HOUR,
        }
    }
}

/// What was read and scored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreReport {
    pub model: SeriesModel,
    pub rows: u64,
    pub scored: u64,
    /// Rows written with an empty score, by reason, with the first few line numbers.
    pub skipped: Vec<(&'static str, u64, Vec<u64>)>,
    /// The median gap between rows, which scales the forgetting.
    pub cadence_ms: i64,
    /// The highest score and the line it is on.
    pub top: Option<(u8, u64)>,
}

/// Why a series could not be scored at all (bad rows never stop it).
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: no column `{column}`; the header has: {header}")]
    NoColumn { path: PathBuf, column: String, header: String },
    #[error("{path}: needs a header and at least two columns")]
    TooFewColumns { path: PathBuf },
    #[error("forgetting must be in (0, 1], got {0}")]
    Forgetting(f64),
}

/// A CSV error on `path`.
fn csv_err(path: &Path) -> impl Fn(csv::Error) -> ScoreError + '_ {
    move |source| ScoreError::Csv { path: path.to_owned(), source }
}

/// One row as read.
struct Row {
    line: u64,
    time_text: String,
    value_text: String,
    time: Option<EventTime>,
    value: Option<f64>,
}

const BAD_TIME: &str = "unparsable timestamp";
const BAD_VALUE: &str = "unparsable or missing value";
const NOT_A_COUNT: &str = "not a non-negative integer (the count model counts)";
const WARMING_UP: &str = "warm-up (learnt, not scored)";

/// Scores the series in `input` and writes `timestamp,value,score` (and
/// `expected,low,high` with `explain`) to `output`.
pub fn score_series(input: &Path, output: &Path, opts: &ScoreOptions) -> Result<ScoreReport, ScoreError> {
    if let Some(f) = opts.forgetting_per_day
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(ScoreError::Forgetting(f));
    }
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(input).map_err(csv_err(input))?;
    let header = reader.headers().map_err(csv_err(input))?.clone();
    if header.len() < 2 {
        return Err(ScoreError::TooFewColumns { path: input.to_owned() });
    }
    let column = |wanted: &Option<String>, default: &str, fallback: usize| -> Result<usize, ScoreError> {
        match wanted {
            Some(name) => header.iter().position(|h| h.trim() == name).ok_or_else(|| ScoreError::NoColumn {
                path: input.to_owned(),
                column: name.clone(),
                header: header.iter().collect::<Vec<_>>().join(", "),
            }),
            None => Ok(header.iter().position(|h| h.trim().eq_ignore_ascii_case(default)).unwrap_or(fallback)),
        }
    };
    let (tc, vc) = (column(&opts.time_column, "timestamp", 0)?, column(&opts.value_column, "value", 1)?);

    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(csv_err(input))?;
        let line = record.position().map_or(i as u64 + 2, |p| p.line());
        let time_text = record.get(tc).unwrap_or("").to_owned();
        let value_text = record.get(vc).unwrap_or("").to_owned();
        let time = EventTime::parse(&time_text).ok().and_then(|t| t.checked().ok());
        let value = value_text.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        rows.push(Row { line, time_text, value_text, time, value });
    }
    // Time order; rows without a time keep their place relative to the
    // row before them.
    let mut last = i64::MIN;
    let mut keyed: Vec<(i64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if let Some(t) = r.time {
                last = t.0;
            }
            (last, i)
        })
        .collect();
    keyed.sort();

    let model = opts.model.unwrap_or_else(|| {
        // Decided on the text: "46.00" is an amount, "46" a count.
        let counts =
            rows.iter().filter(|r| r.value.is_some()).all(|r| r.value_text.trim().bytes().all(|b| b.is_ascii_digit()));
        if counts { SeriesModel::Count } else { SeriesModel::Value }
    });
    let mut times: Vec<i64> = keyed.iter().filter_map(|(_, i)| rows[*i].time.map(|t| t.0)).collect();
    times.dedup();
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let cadence_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(MS_PER_HOUR).max(1);
    // The models forget by elapsed event time, so a 5-minute series
    // forgets at the same pace in days as an hourly one.
    let per_day = opts.forgetting_per_day.unwrap_or(0.95);

    let mut writer = csv::Writer::from_path(output).map_err(csv_err(output))?;
    let mut head = vec![header[tc].trim(), header[vc].trim(), "score"];
    if opts.explain {
        head.extend(["expected", "low", "high"]);
    }
    writer.write_record(&head).map_err(csv_err(output))?;

    let mut counts = SeasonalCounts::default();
    let count_prior = CountPrior::default();
    let mut values = SeasonalValues::<168>::default();
    let mut report =
        ScoreReport { model, rows: rows.len() as u64, scored: 0, skipped: Vec::new(), cadence_ms, top: None };
    let mut skip = |reason: &'static str, line: u64| match report.skipped.iter_mut().find(|s| s.0 == reason) {
        Some(s) => {
            s.1 += 1;
            if s.2.len() < 5 {
                s.2.push(line);
            }
        }
        None => report.skipped.push((reason, 1, vec![line])),
    };
    let mut scored = 0;
    let mut top: Option<(u8, u64)> = None;
    let scored_from = times.first().map_or(i64::MIN, |t| t.saturating_add(opts.warmup_ms));
    for (_, i) in keyed {
        let r = &rows[i];
        let warming = r.time.is_some_and(|t| t.0 < scored_from);
        let mut cells = vec![r.time_text.clone(), r.value_text.clone(), String::new()];
        let explained = match (r.time, r.value) {
            (None, _) => {
                skip(BAD_TIME, r.line);
                None
            }
            (_, None) => {
                skip(BAD_VALUE, r.line);
                None
            }
            (Some(t), Some(v)) => match model {
                SeriesModel::Count if v < 0.0 || v.fract() != 0.0 => {
                    skip(NOT_A_COUNT, r.line);
                    None
                }
                SeriesModel::Count => {
                    let p = counts.predict(t, &count_prior);
                    let n = v as u64;
                    let upper = p.p_value(n);
                    let pv = if opts.two_sided { (2.0 * upper.min(p.p_value_below(n))).min(1.0) } else { upper };
                    counts.update(t, n, Some(&p), per_day);
                    let (low, high) = if opts.explain { p.interval() } else { (0.0, 0.0) };
                    Some((score_of(pv), p.expected, low, high))
                }
                SeriesModel::Value => {
                    let p = values.predict(t);
                    values.update(t, v, Forgetting::PerDay(per_day));
                    Some(match p {
                        Some(p) => {
                            let upper = p.p_value(v);
                            let pv =
                                if opts.two_sided { (2.0 * upper.min(p.p_value_below(v))).min(1.0) } else { upper };
                            let (low, high) = if opts.explain { p.interval() } else { (0.0, 0.0) };
                            (score_of(pv), p.expected, low, high)
                        }
                        // The first values fix the scale: nothing to compare them with.
                        None => (0, v, f64::NEG_INFINITY, f64::INFINITY),
                    })
                }
            },
        };
        let explained = match explained {
            Some(_) if warming => {
                skip(WARMING_UP, r.line);
                None
            }
            e => e,
        };
        if let Some((score, expected, low, high)) = explained {
            scored += 1;
            cells[2] = score.to_string();
            if opts.explain {
                cells.extend([expected, low, high].map(cell));
            }
            if top.is_none_or(|(s, _)| score > s) {
                top = Some((score, r.line));
            }
        } else if opts.explain {
            cells.extend([String::new(), String::new(), String::new()]);
        }
        writer.write_record(&cells).map_err(csv_err(output))?;
    }
    writer.flush().map_err(|e| ScoreError::Csv { path: output.to_owned(), source: e.into() })?;
    report.scored = scored;
    report.top = top;
    Ok(report)
}

/// A number for the CSV, to four decimals; empty when unknown.
fn cell(x: f64) -> String {
    if x.is_finite() { ((x * 10_000.0).round() / 10_000.0).to_string() } else { String::new() }
}

impl ScoreReport {
    /// The summary printed on stderr.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} rows, {} scored with the {} model (rows {} apart)",
            self.rows,
            self.scored,
            self.model.name(),
            human_ms(self.cadence_ms)
        );
        if let Some((score, line)) = self.top {
            s += &format!("; highest score {score} on line {line}");
        }
        s.push('\n');
        for (reason, n, lines) in &self.skipped {
            let lines: Vec<String> = lines.iter().map(u64::to_string).collect();
            s += &format!(
                "  {n} rows not scored: {reason} (lines {}{})\n",
                lines.join(", "),
                if *n > 5 { ", ..." } else { "" }
            );
        }
        s
    }
}

fn human_ms(ms: i64) -> String {
    match ms {
        m if m % MS_PER_HOUR == 0 => format!("{} h", m / MS_PER_HOUR),
        m if m % 60_000 == 0 => format!("{} min", m / 60_000),
        m => format!("{:.1} s", m as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    fn run(csv_text: &str, opts: &ScoreOptions) -> (ScoreReport, Vec<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
        std::fs::write(&input, csv_text).unwrap();
        let report = score_series(&input, &output, opts).unwrap();
        let out = std::fs::read_to_string(&output).unwrap();
        (report, out.lines().map(|l| l.split(',').map(str::to_owned).collect()).collect())
    }

    fn defaults() -> ScoreOptions {
        ScoreOptions::default()
    }

    /// Hourly rows for `days` days from Monday 2024-01-01, value by (day, hour).
    fn hourly(days: i64, value: impl Fn(i64, i64) -> String) -> String {
        let mut s = String::from("timestamp,value\n");
        for day in 0..days {
            for hour in 0..24 {
                let _ = writeln!(s, "2024-01-{:02} {hour:02}:00:00,{}", day + 1, value(day, hour));
            }
        }
        s
    }

    #[test]
    fn a_spike_in_a_rhythm_scores_highest_and_the_rhythm_does_not() {
        // Office hours: 20 an hour on weekdays, 1 at night; a spike of 20 at
        // 03:00 on day 15 (the usual daytime level, at the wrong hour).
        let text = hourly(21, |d, h| {
            let office = d % 7 < 5 && (9..17).contains(&h);
            if d == 15 && h == 3 {
                20
            } else if office {
                20 + (d + h) % 5
            } else {
                (d + h) % 2
            }
            .to_string()
        });
        let (report, rows) = run(&text, &defaults());
        assert_eq!(report.model, SeriesModel::Count);
        assert_eq!((report.rows, report.scored), (21 * 24, 20 * 24), "the first day warms the model up");
        assert_eq!(report.cadence_ms, MS_PER_HOUR);
        assert_eq!(rows[0], ["timestamp", "value", "score"]);
        let score = |day: i64, hour: i64| rows[1 + (day * 24 + hour) as usize][2].parse::<u8>().unwrap();
        assert!(score(15, 3) >= 60, "{}", score(15, 3));
        assert_eq!(report.top.unwrap().1, 2 + 15 * 24 + 3);
        // The same 20 at 10:00 on a weekday of the third week is ordinary.
        assert!(score(16, 10) < 10, "{}", score(16, 10));
    }

    #[test]
    fn values_use_the_value_model_and_a_drop_scores_only_when_two_sided() {
        let text = hourly(14, |d, h| {
            let base = 100.0 + (h % 4) as f64 * 3.0;
            (if d == 10 && h == 12 {
                4.0
            } else if d == 11 && h == 12 {
                2500.0
            } else {
                base
            })
            .to_string()
                + ".5"
        });
        let (report, rows) = run(&text, &defaults());
        assert_eq!(report.model, SeriesModel::Value);
        let score = |rows: &Vec<Vec<String>>, day: i64| rows[1 + (day * 24 + 12) as usize][2].parse::<u8>().unwrap();
        assert!(score(&rows, 11) >= 50, "a 25× jump: {}", score(&rows, 11));
        assert!(score(&rows, 10) < 5, "one-sided ignores a drop: {}", score(&rows, 10));
        let (_, rows) = run(&text, &ScoreOptions { two_sided: true, ..defaults() });
        assert!(score(&rows, 10) >= 40, "two-sided sees the drop: {}", score(&rows, 10));
    }

    #[test]
    fn every_time_form_is_read_and_bad_rows_are_counted_not_fatal() {
        let text = "when,n,other\n\
            2024-01-01T00:00:00Z,1,x\n\
            2024-01-01 01:00:00,2,x\n\
            1704078000,3,x\n\
            1704081600000,4,x\n\
            yesterday,5,x\n\
            2024-01-01T06:00:00Z,,x\n\
            2024-01-01T07:00:00Z,-1,x\n";
        let opts = ScoreOptions {
            time_column: Some("when".into()),
            value_column: Some("n".into()),
            warmup_ms: 0,
            ..defaults()
        };
        let (report, rows) = run(text, &opts);
        assert_eq!(report.model, SeriesModel::Value, "-1 is not a count");
        assert_eq!((report.rows, report.scored), (7, 5), "-1 is a value like any other");
        assert_eq!(rows.len(), 8, "every row is written, unscored ones with an empty score");
        assert_eq!(rows[0], ["when", "n", "score"]);
        let reasons: Vec<(&str, u64)> = report.skipped.iter().map(|(r, n, _)| (*r, *n)).collect();
        assert!(reasons.contains(&(BAD_TIME, 1)) && reasons.contains(&(BAD_VALUE, 1)), "{reasons:?}");
        assert!(report.render().contains("1 rows not scored: unparsable timestamp (lines 6)"), "{}", report.render());
    }

    #[test]
    fn a_missing_column_is_named_with_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "ts,v\n2024-01-01,1\n").unwrap();
        let opts = ScoreOptions { value_column: Some("cost".into()), ..defaults() };
        let err = score_series(&input, &dir.path().join("o.csv"), &opts).unwrap_err().to_string();
        assert!(err.contains("no column `cost`; the header has: ts, v"), "{err}");
    }
}
