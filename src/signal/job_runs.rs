//! Rebuilds job runs from the events that report them.
//!
//! Audit `jobs` events report a run's start (`runStart`) and end
//! (`runSucceeded`, `runFailed`, ...) separately; `job_run_timeline` rows
//! report hourly slices of a run, the last one with its result. Both are
//! paired here by (workspace, run id) into a [`JobRun`] with its runtime.
//!
//! The pieces of a run may arrive in any order within the allowed
//! lateness (an end before its start, the last timeline slice before an
//! earlier one), so a run is handed on only once the watermark has passed
//! its end: by then every piece of it has arrived. Runs are handed on in
//! (end, workspace, run id) order. An end whose start never arrived (it
//! was before the input began) is counted as unpaired; a start never ended
//! is dropped after `max_open_hours` of event time and counted as
//! abandoned.

use crate::event::{Event, RunPhase};
use crate::time::{EventTime, MS_PER_HOUR};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// A finished run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobRun {
    pub workspace: u64,
    pub job_id: String,
    pub run_id: String,
    /// The identity the run ran as (or started it), if known.
    pub principal: String,
    pub start: EventTime,
    pub end: EventTime,
    pub result: String,
}

impl JobRun {
    pub fn runtime_seconds(&self) -> f64 {
        (self.end.0 - self.start.0).max(0) as f64 / 1000.0
    }
}

/// What has arrived of one run.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Pieces {
    /// Earliest start reported, and the principal and job of the piece
    /// that reported it.
    start: Option<EventTime>,
    start_principal: String,
    start_job: String,
    /// The end, once reported, with what the end piece said.
    end: Option<EventTime>,
    end_principal: String,
    end_job: String,
    result: String,
}

/// Pairs run starts with their ends.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct JobRuns {
    /// Runs by workspace, then run id (nested so that a lookup by a
    /// borrowed run id allocates nothing).
    runs: FxHashMap<u64, FxHashMap<Box<str>, Pieces>>,
    /// Ended runs waiting for the watermark: (end, workspace, run id).
    ended: BTreeSet<(i64, u64, Box<str>)>,
    max_open_ms: i64,
    /// Runs that never ended within the bound.
    pub abandoned: u64,
    /// Ends whose start never arrived.
    pub unpaired: u64,
}

impl JobRuns {
    pub fn new(max_open_hours: i64) -> Self {
        JobRuns {
            runs: FxHashMap::default(),
            ended: BTreeSet::new(),
            max_open_ms: max_open_hours * MS_PER_HOUR,
            abandoned: 0,
            unpaired: 0,
        }
    }

    /// Feeds one event reporting a piece of a run.
    pub fn observe(&mut self, ev: &Event) {
        if ev.run_id.is_empty() || ev.run_phase == RunPhase::None {
            return;
        }
        let runs = self.runs.entry(ev.workspace).or_default();
        let pieces = match runs.get_mut(ev.run_id.as_str()) {
            Some(p) => p,
            None => runs.entry(ev.run_id.as_str().into()).or_default(),
        };
        let principal = ev.charged_principal();
        let start = match ev.run_phase {
            RunPhase::Start => Some(if ev.start.0 != 0 { ev.start } else { ev.time }),
            RunPhase::Complete => Some(ev.start),
            RunPhase::End | RunPhase::None => None,
        };
        if let Some(start) = start {
            // The earliest start wins; on a tie, the smaller principal, so
            // that the order pieces arrive in cannot matter.
            let earlier = match pieces.start {
                None => true,
                Some(s) => start < s || (start == s && principal < pieces.start_principal.as_str()),
            };
            if earlier {
                pieces.start = Some(start);
                pieces.start_principal.clear();
                pieces.start_principal.push_str(principal);
                pieces.start_job.clone_from(&ev.job_id);
            }
        }
        if matches!(ev.run_phase, RunPhase::End | RunPhase::Complete) {
            let end = if ev.run_phase == RunPhase::Complete { ev.end } else { ev.time };
            if let Some(old) = pieces.end.replace(end) {
                // A repeated end: the later one stands.
                self.ended.remove(&(old.0, ev.workspace, Box::from(ev.run_id.as_str())));
                pieces.end = Some(old.max(end));
            }
            pieces.end_principal.clear();
            pieces.end_principal.push_str(principal);
            pieces.end_job.clone_from(&ev.job_id);
            pieces.result.clone_from(&ev.run_result);
            let end = pieces.end.unwrap_or(end);
            self.ended.insert((end.0, ev.workspace, ev.run_id.as_str().into()));
        }
    }

    /// Hands on, in (end, workspace, run id) order, every run that ended
    /// at or before `watermark`.
    pub fn drain(&mut self, watermark: EventTime, mut f: impl FnMut(JobRun)) {
        while let Some(first) = self.ended.first() {
            if first.0 > watermark.0 {
                break;
            }
            let Some((end, workspace, run_id)) = self.ended.pop_first() else { break };
            let Some(p) = self.runs.get_mut(&workspace).and_then(|r| r.remove(&run_id)) else { continue };
            let Some(start) = p.start else {
                self.unpaired += 1;
                continue;
            };
            let pick = |a: String, b: String| if a.is_empty() { b } else { a };
            f(JobRun {
                workspace,
                job_id: pick(p.end_job, p.start_job),
                run_id: run_id.into(),
                principal: pick(p.end_principal, p.start_principal),
                start,
                end: EventTime(end),
                result: p.result,
            });
        }
    }

    /// Drops runs started more than the bound before `now` and never ended.
    pub fn expire(&mut self, now: EventTime) {
        let limit = now.0 - self.max_open_ms;
        for runs in self.runs.values_mut() {
            let before = runs.len();
            runs.retain(|_, p| p.end.is_some() || p.start.is_none_or(|s| s.0 >= limit));
            self.abandoned += (before - runs.len()) as u64;
        }
    }

    /// Runs with pieces held.
    pub fn open_runs(&self) -> usize {
        self.runs.values().map(|r| r.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(phase: RunPhase, run: &str, ms: i64) -> Event {
        Event {
            workspace: 1,
            run_id: run.into(),
            job_id: "7".into(),
            principal: "etl@x".into(),
            run_phase: phase,
            time: EventTime(ms),
            ..Event::default()
        }
    }

    fn drained(j: &mut JobRuns, watermark: i64) -> Vec<JobRun> {
        let mut out = Vec::new();
        j.drain(EventTime(watermark), |r| out.push(r));
        out
    }

    #[test]
    fn start_and_end_make_a_run_once_the_watermark_passes_the_end() {
        let mut j = JobRuns::new(48);
        j.observe(&ev(RunPhase::Start, "r1", 1_000));
        j.observe(&ev(RunPhase::End, "r1", 61_000));
        j.observe(&ev(RunPhase::End, "r2", 61_000));
        assert!(drained(&mut j, 60_000).is_empty());
        let runs = drained(&mut j, 61_000);
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!((run.runtime_seconds(), run.job_id.as_str(), run.principal.as_str()), (60.0, "7", "etl@x"));
        assert_eq!(j.unpaired, 1, "end without start");
        assert_eq!(j.open_runs(), 0);
    }

    #[test]
    fn an_end_before_its_start_still_makes_the_run() {
        let mut j = JobRuns::new(48);
        j.observe(&ev(RunPhase::End, "r1", 61_000));
        j.observe(&ev(RunPhase::Start, "r1", 1_000));
        assert_eq!(drained(&mut j, 100_000)[0].runtime_seconds(), 60.0);
    }

    #[test]
    fn timeline_slices_merge_into_one_run_in_any_order() {
        let mut a = ev(RunPhase::Start, "r1", 7_200_000);
        a.start = EventTime(3_600_000);
        let mut b = ev(RunPhase::Complete, "r1", 9_000_000);
        b.start = EventTime(7_200_000);
        b.end = EventTime(9_000_000);
        for order in [[&a, &b], [&b, &a]] {
            let mut j = JobRuns::new(48);
            for e in order {
                j.observe(e);
            }
            assert_eq!(drained(&mut j, 9_000_000)[0].runtime_seconds(), 5_400.0);
        }
    }

    #[test]
    fn abandoned_runs_are_bounded() {
        let mut j = JobRuns::new(1);
        j.observe(&ev(RunPhase::Start, "r1", 0));
        j.expire(EventTime(2 * MS_PER_HOUR));
        assert_eq!((j.open_runs(), j.abandoned), (0, 1));
    }
}
