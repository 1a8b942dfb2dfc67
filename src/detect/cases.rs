//! Test cases inside detector definitions: the `[[test]]` tables of a
//! `models/*.toml` file, and the runner behind `auditwatch test-models`.
//!
//! A case is a few events and what the definition must do with them:
//! alert (`expect = true`, optionally at a given severity or a given
//! number of times) or stay quiet. Each case runs alone through the same
//! pipeline as replay, with only its own definition loaded, so a case
//! shows exactly what a replay of those events would raise.
//!
//! ```toml
//! [[test]]
//! name = "a refused admin grant alerts lower"
//! expect = true
//! severity = "low"          # optional: the highest severity raised
//! alerts = 1                # optional: exactly this many alerts
//! start = "2026-01-05T09:00:00Z"   # optional (this is the default)
//! access = '''{"type":"member","principal":"ana@example.com","group":"admins"}'''  # optional snapshot lines
//!
//! [[test.events]]
//! repeat = 5                # optional: the event this many times (ids made unique)
//! every_minutes = 1         # optional: their spacing (default 1)
//! at_minutes = 0            # optional: minutes after `start` (default: a minute after the previous item)
//! days = 10                 # optional: the whole item on this many consecutive days
//! weekdays = true           # optional: ... skipping Saturdays and Sundays
//! json = '''{"serviceName":"accounts","actionName":"setAdmin", ...}'''
//! ```
//!
//! An event's time (`timestamp`, `event_time`, `usage_end_time`, ...) and
//! id (`requestId`, `event_id`, `record_id`) are filled in when absent.

use super::definition::{self, Definition, DefinitionError};
use crate::alert::{Alert, Severity};
use crate::event::Event;
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::time::{EventTime, MS_PER_MINUTE};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The time of a case's first event unless it says otherwise: a Monday morning.
pub const DEFAULT_START: &str = "2026-01-05T09:00:00Z";

/// Most events one case may generate (`repeat` included).
const MAX_EVENTS: usize = 200_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    expect: bool,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    alerts: Option<usize>,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    access: Option<String>,
    events: Vec<RawItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    #[serde(default)]
    json: Option<String>,
    #[serde(default)]
    event: Option<toml::Table>,
    #[serde(default)]
    repeat: Option<usize>,
    #[serde(default)]
    every_minutes: Option<f64>,
    #[serde(default)]
    at_minutes: Option<f64>,
    #[serde(default)]
    days: Option<usize>,
    #[serde(default)]
    weekdays: bool,
}

#[derive(Debug, Deserialize)]
struct CasesOnly {
    #[serde(default)]
    test: Vec<RawCase>,
}

/// One validated case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub expect: bool,
    pub severity: Option<Severity>,
    pub alerts: Option<usize>,
    pub access: Vec<crate::access::SnapshotFact>,
    /// The records, in the order given, as JSON lines.
    pub lines: Vec<String>,
}

/// A definition file and its cases.
#[derive(Debug)]
pub struct CaseFile {
    pub file: String,
    pub definition: Definition,
    pub cases: Vec<Case>,
}

/// What went wrong reading a file's cases.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("{file}: {message}")]
    Case { file: String, message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Reads a definition file's text and its cases.
pub fn parse(file: &str, text: &str) -> Result<CaseFile, CaseError> {
    let definition = definition::parse(file, text)?;
    let fail = |message: String| CaseError::Case { file: file.to_owned(), message };
    let raw: CasesOnly = toml::from_str(text).map_err(|e| fail(e.message().to_owned()))?;
    let mut cases = Vec::new();
    for (n, c) in raw.test.into_iter().enumerate() {
        let at = format!("test {} (`{}`)", n + 1, c.name);
        cases.push(case(c, n).map_err(|m| fail(format!("{at}: {m}")))?);
    }
    Ok(CaseFile { file: file.to_owned(), definition, cases })
}

fn case(c: RawCase, n: usize) -> Result<Case, String> {
    let mut problems = Vec::new();
    let severity = c.severity.as_deref().and_then(|s| definition::severity_named("severity", s, &mut problems));
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let start = EventTime::parse(c.start.as_deref().unwrap_or(DEFAULT_START))
        .map_err(|_| format!("key `start`: `{}` is not a time", c.start.as_deref().unwrap_or_default()))?;
    let access = match &c.access {
        None => Vec::new(),
        Some(text) => crate::access::parse_snapshot("access", text).map_err(|e| e.to_string())?,
    };
    if c.events.is_empty() {
        return Err("key `events`: give at least one event".into());
    }
    let mut lines = Vec::new();
    let mut next_ms = start.0;
    for (i, item) in c.events.into_iter().enumerate() {
        let template = match (&item.json, &item.event) {
            (Some(text), None) => {
                serde_json::from_str::<Value>(text).map_err(|e| format!("event {}: `json`: {e}", i + 1))?
            }
            (None, Some(table)) => serde_json::to_value(table).map_err(|e| format!("event {}: {e}", i + 1))?,
            _ => return Err(format!("event {}: give exactly one of `json` and `event`", i + 1)),
        };
        let Value::Object(template) = template else {
            return Err(format!("event {}: an event is a JSON object", i + 1));
        };
        let repeat = item.repeat.unwrap_or(1);
        let every = item.every_minutes.unwrap_or(1.0);
        let days = item.days.unwrap_or(1);
        if repeat == 0 || days == 0 || lines.len() + repeat * days > MAX_EVENTS || !(every.is_finite() && every >= 0.0)
        {
            return Err(format!(
                "event {}: `repeat` and `days` at least 1, at most {MAX_EVENTS} events in all, `every_minutes` ≥ 0",
                i + 1
            ));
        }
        let first = match item.at_minutes {
            Some(m) if m.is_finite() => start.0 + (m * MS_PER_MINUTE as f64) as i64,
            Some(_) => return Err(format!("event {}: `at_minutes` is not a number", i + 1)),
            None => next_ms,
        };
        let unique = repeat * days > 1;
        for d in 0..days {
            let day_start = first + d as i64 * crate::time::MS_PER_DAY;
            // 1970-01-01 was a Thursday: days 2 and 3 of a week counted
            // from it are Saturday and Sunday.
            if item.weekdays && matches!(day_start.div_euclid(crate::time::MS_PER_DAY).rem_euclid(7), 2 | 3) {
                continue;
            }
            for r in 0..repeat {
                let t = day_start + (r as f64 * every * MS_PER_MINUTE as f64) as i64;
                let id = format!("case{}-e{}-d{}-{}", n + 1, i + 1, d + 1, r + 1);
                let mut ev = template.clone();
                fill(&mut ev, t, &id, unique);
                lines.push(Value::Object(ev).to_string());
                next_ms = next_ms.max(t + MS_PER_MINUTE);
            }
        }
    }
    Ok(Case { name: c.name, expect: c.expect, severity, alerts: c.alerts, access, lines })
}

/// Fills in the time and id an event leaves out, by its shape's keys.
/// With `unique`, an id the event gives gets a suffix per repeat.
fn fill(ev: &mut Map<String, Value>, t: i64, id: &str, unique: bool) {
    let rfc = EventTime(t).to_string();
    let has = |ev: &Map<String, Value>, k: &str| ev.get(k).is_some_and(|v| !v.is_null());
    let set_id = |ev: &mut Map<String, Value>, key: &str| match ev.get(key).and_then(Value::as_str) {
        Some(given) if unique => {
            let v = format!("{given}-{id}");
            ev.insert(key.into(), Value::String(v));
        }
        Some(_) => {}
        None => {
            ev.insert(key.into(), Value::String(id.to_owned()));
        }
    };
    if ["serviceName", "actionName", "userIdentity", "timestamp"].iter().any(|k| ev.contains_key(*k)) {
        if !has(ev, "timestamp") {
            ev.insert("timestamp".into(), Value::from(t));
        }
        set_id(ev, "requestId");
    } else if ev.contains_key("usage_quantity") {
        if !has(ev, "usage_end_time") {
            ev.insert("usage_end_time".into(), Value::String(rfc.clone()));
        }
        if !has(ev, "usage_start_time") {
            ev.insert("usage_start_time".into(), Value::String(EventTime(t - 60 * MS_PER_MINUTE).to_string()));
        }
        set_id(ev, "record_id");
    } else if ev.contains_key("pricing") {
        if !has(ev, "price_start_time") {
            ev.insert("price_start_time".into(), Value::String(rfc));
        }
    } else if ev.contains_key("run_id") && !ev.contains_key("service_name") {
        if !has(ev, "period_end_time") {
            ev.insert("period_end_time".into(), Value::String(rfc.clone()));
        }
        if !has(ev, "period_start_time") {
            ev.insert("period_start_time".into(), Value::String(rfc));
        }
    } else {
        // system.access.audit rows and lineage rows.
        if !has(ev, "event_time") {
            ev.insert("event_time".into(), Value::String(rfc));
        }
        let key = if ev.contains_key("source_table_full_name") || ev.contains_key("target_table_full_name") {
            "record_id"
        } else {
            "event_id"
        };
        set_id(ev, key);
    }
}

/// What a case raised, and whether that is what it expects.
#[derive(Debug)]
pub struct Verdict {
    pub alerts: Vec<Alert>,
    /// Why it failed; `None` when it passed.
    pub failure: Option<String>,
}

/// Runs one case with only `def` loaded, in event-time order, like replay.
pub fn run(def: &Definition, case: &Case) -> Verdict {
    let mut config = PipelineConfig::new(vec![def.clone()]);
    config.access_snapshot = case.access.clone();
    let mut pipeline = Pipeline::new(config);
    // Decoded as replay decodes with this definition loaded: only the
    // parameters it (and the built-in detectors) read are kept.
    let keep = crate::decode::keep::KeepParams::for_definitions(std::slice::from_ref(def));
    let mut records: Vec<(i64, usize, Event)> = Vec::with_capacity(case.lines.len());
    let mut refused = Vec::new();
    for (i, line) in case.lines.iter().enumerate() {
        let mut ev = Event::default();
        match crate::decode::decode_json_keeping(line.as_bytes(), &mut ev, &keep) {
            Ok(_) => records.push((ev.time.0, i, ev)),
            Err(reason) => refused.push(format!("event {} refused: {reason}", i + 1)),
        }
    }
    records.sort_by_key(|(t, i, _)| (*t, *i));
    let mut out = Vec::new();
    for (_, _, ev) in &records {
        let _ = pipeline.event(ev, &mut out);
    }
    pipeline.finish(&mut out);
    out.retain(|a| a.detector == def.name);
    let failure = if !refused.is_empty() { Some(refused.join("; ")) } else { judge(case, &out) };
    Verdict { alerts: out, failure }
}

fn judge(case: &Case, alerts: &[Alert]) -> Option<String> {
    if !case.expect {
        return (!alerts.is_empty()).then(|| format!("expected no alert, got {}", alerts.len()));
    }
    if alerts.is_empty() {
        return Some("expected an alert, got none".into());
    }
    if let Some(n) = case.alerts
        && alerts.len() != n
    {
        return Some(format!("expected {n} alerts, got {}", alerts.len()));
    }
    let highest = alerts.iter().map(|a| a.severity).max()?;
    match case.severity {
        Some(s) if s != highest => Some(format!("expected severity {}, got {}", s.name(), highest.name())),
        _ => None,
    }
}

/// Definition files under `paths` (files, or directories walked for
/// `*.toml`), in name order; none given: the built-in ones.
pub fn load(paths: &[PathBuf]) -> Result<Vec<CaseFile>, CaseError> {
    if paths.is_empty() {
        return definition::BUILT_IN.iter().map(|(file, text)| parse(file, text)).collect();
    }
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    files.sort();
    files.dedup();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|source| CaseError::Io { path: f.clone(), source })?;
            parse(&f.display().to_string(), &text)
        })
        .collect()
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), CaseError> {
    let io = |source| CaseError::Io { path: path.into(), source };
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(io)? {
            collect(&entry.map_err(io)?.path(), out)?;
        }
    } else if path.extension().is_some_and(|e| e == "toml") || !path.exists() {
        out.push(path.into());
    }
    Ok(())
}

/// The outcome of a whole run.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    /// Definitions lacking a positive or a negative case.
    pub incomplete: Vec<String>,
    pub table: String,
}

impl Report {
    pub fn ok(&self, require_cases: bool) -> bool {
        self.failed == 0 && (!require_cases || self.incomplete.is_empty())
    }
}

/// Runs every case of `files` and renders the table. `verbose` lists the
/// alerts of every case under its row.
pub fn run_all(files: &[CaseFile], verbose: bool) -> Report {
    let mut report = Report::default();
    let width = files.iter().map(|f| f.definition.name.len()).max().unwrap_or(8).max(8);
    let _ = writeln!(report.table, "{:<6} {:<width$} {:<7} {:<8} CASE", "RESULT", "DETECTOR", "EXPECT", "GOT");
    for f in files {
        let (mut positive, mut negative) = (false, false);
        for c in &f.cases {
            positive |= c.expect;
            negative |= !c.expect;
            let v = run(&f.definition, c);
            let got = match v.alerts.iter().map(|a| a.severity).max() {
                None => "quiet".to_owned(),
                Some(s) => format!("{}×{}", v.alerts.len(), s.name()),
            };
            let expect =
                if c.expect { c.severity.map_or("alert".to_owned(), |s| s.name().to_owned()) } else { "quiet".into() };
            let result = if v.failure.is_none() { "ok" } else { "FAIL" };
            let _ = writeln!(report.table, "{result:<6} {:<width$} {expect:<7} {got:<8} {}", f.definition.name, c.name);
            if let Some(why) = &v.failure {
                report.failed += 1;
                let _ = writeln!(report.table, "       {}: {why}", f.file);
            } else {
                report.passed += 1;
            }
            if verbose || v.failure.is_some() {
                for a in &v.alerts {
                    let _ = writeln!(report.table, "       · [{}] {}", a.severity.name(), a.summary);
                }
            }
        }
        if !(positive && negative) {
            let missing = match (positive, negative) {
                (false, false) => "no cases",
                (false, true) => "no case that alerts",
                _ => "no case that stays quiet",
            };
            report.incomplete.push(format!("{} ({}): {missing}", f.definition.name, f.file));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = r#"
name = "t_rule"
description = "A test rule"
signal = "activity"
model = "match"
bucket_minutes = 15
min_count = 2
severity = "medium"
suppress_minutes = 60
evidence_limit = 10

[match]
services = ["accounts"]
actions = ["setAdmin"]
refused_severity = "low"

[[test]]
name = "two grants alert"
expect = true
severity = "medium"
alerts = 1
[[test.events]]
repeat = 2
json = '{"serviceName":"accounts","actionName":"setAdmin","userIdentity":{"email":"a@example.com"},"response":{"statusCode":200}}'

[[test]]
name = "one grant is quiet"
expect = false
[[test.events]]
json = '{"serviceName":"accounts","actionName":"setAdmin","userIdentity":{"email":"a@example.com"}}'

[[test]]
name = "refused grants alert lower"
expect = true
severity = "low"
[[test.events]]
repeat = 2
[test.events.event]
serviceName = "accounts"
actionName = "setAdmin"
userIdentity = { email = "a@example.com" }
response = { statusCode = 403 }
"#;

    #[test]
    fn cases_run_against_their_definition() {
        let f = parse("t.toml", RULE).unwrap();
        assert_eq!(f.cases.len(), 3);
        let r = run_all(&[f], false);
        assert_eq!((r.passed, r.failed), (3, 0), "{}", r.table);
        assert!(r.ok(true));
    }

    #[test]
    fn a_wrong_expectation_fails_and_says_why() {
        let text = RULE
            .replace("name = \"one grant is quiet\"\nexpect = false", "name = \"one grant is quiet\"\nexpect = true");
        let r = run_all(&[parse("t.toml", &text).unwrap()], false);
        assert_eq!(r.failed, 1, "{}", r.table);
        assert!(r.table.contains("expected an alert, got none"), "{}", r.table);
        let text = RULE.replace("severity = \"low\"\n[[test.events]]", "severity = \"high\"\n[[test.events]]");
        let r = run_all(&[parse("t.toml", &text).unwrap()], false);
        assert!(r.table.contains("expected severity high, got low"), "{}", r.table);
    }

    #[test]
    fn days_repeat_an_item_and_weekdays_skip_weekends() {
        let text = format!(
            "{}\n[[test]]\nname = \"w\"\nexpect = false\n[[test.events]]\nrepeat = 2\nevery_minutes = 30\ndays = 7\nweekdays = true\njson = '{{\"serviceName\":\"a\",\"actionName\":\"b\"}}'\n",
            &RULE[..RULE.find("[[test]]").unwrap()]
        );
        let f = parse("t.toml", &text).unwrap();
        let times: Vec<i64> = f.cases[0]
            .lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["timestamp"].as_i64().unwrap())
            .collect();
        // Monday to Sunday: five weekdays, two events each, half an hour apart.
        assert_eq!(times.len(), 10);
        assert_eq!(times[1] - times[0], 30 * MS_PER_MINUTE);
        assert_eq!(times[9] - times[0], 4 * crate::time::MS_PER_DAY + 30 * MS_PER_MINUTE);
        let ids: std::collections::BTreeSet<String> = f.cases[0]
            .lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["requestId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 10);
    }

    #[test]
    fn tests_do_not_change_the_config_version() {
        let with = parse("t.toml", RULE).unwrap().definition;
        let cut = RULE.find("[[test]]").unwrap();
        let without = definition::parse("t.toml", &RULE[..cut]).unwrap();
        assert_eq!(with.config_version, without.config_version);
    }

    #[test]
    fn missing_kinds_of_case_are_reported() {
        let cut = RULE.find("[[test]]\nname = \"one grant").unwrap();
        let only_positive = &RULE[..cut];
        let r = run_all(&[parse("t.toml", only_positive).unwrap()], false);
        assert!(r.ok(false) && !r.ok(true), "{:?}", r.incomplete);
    }

    #[test]
    fn bad_cases_name_the_case() {
        let text = RULE.replace("expect = false", "expect = false\nseverity = \"loud\"");
        let err = parse("t.toml", &text).unwrap_err().to_string();
        assert!(err.contains("one grant is quiet") && err.contains("loud"), "{err}");
    }
}
