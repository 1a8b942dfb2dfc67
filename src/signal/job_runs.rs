//! Rebuilds job runs from the events that report them.
//!
//! Audit `jobs` events report a run's start (`runStart`) and end
//! (`runSucceeded`, `runFailed`, ...) separately; `job_run_timeline` rows
//! report hourly slices of a run, the last one with its result. Both are
//! paired here by (workspace, run id) into a [`JobRun`] with its runtime.
//! Open runs are bounded: a start never ended is dropped after
//! `max_open_hours` of event time, and counted.

use crate::event::{Event, RunPhase};
use crate::time::{EventTime, MS_PER_HOUR};
use rustc_hash::FxHashMap;

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug)]
struct Open {
    job_id: String,
    principal: String,
    start: EventTime,
}

/// Pairs run starts with their ends.
#[derive(Debug)]
pub struct JobRuns {
    /// Open runs by workspace, then run id (nested so that a lookup by a
    /// borrowed run id allocates nothing).
    open: FxHashMap<u64, FxHashMap<Box<str>, Open>>,
    max_open_ms: i64,
    /// Runs that never ended within the bound.
    pub abandoned: u64,
}

impl JobRuns {
    pub fn new(max_open_hours: i64) -> Self {
        JobRuns { open: FxHashMap::default(), max_open_ms: max_open_hours * MS_PER_HOUR, abandoned: 0 }
    }

    /// Feeds one event; returns the run it completes, if any.
    pub fn observe(&mut self, ev: &Event) -> Option<JobRun> {
        if ev.run_id.is_empty() {
            return None;
        }
        let runs = self.open.entry(ev.workspace).or_default();
        match ev.run_phase {
            RunPhase::None => None,
            RunPhase::Start => {
                let start = if ev.start.0 != 0 { ev.start } else { ev.time };
                let principal = ev.charged_principal();
                match runs.get_mut(ev.run_id.as_str()) {
                    // A later timeline slice: keep the earliest start.
                    Some(o) => {
                        o.start = o.start.min(start);
                        if o.principal.is_empty() {
                            o.principal.push_str(principal);
                        }
                    }
                    None => {
                        runs.insert(
                            ev.run_id.as_str().into(),
                            Open { job_id: ev.job_id.clone(), principal: principal.to_owned(), start },
                        );
                    }
                }
                None
            }
            RunPhase::End | RunPhase::Complete => {
                let opened = runs.remove(ev.run_id.as_str());
                let start = match (&opened, ev.run_phase) {
                    (Some(o), RunPhase::Complete) => o.start.min(ev.start),
                    (Some(o), _) => o.start,
                    (None, RunPhase::Complete) => ev.start,
                    // An end whose start came before the input began.
                    (None, _) => return None,
                };
                let mut principal = ev.charged_principal().to_owned();
                if principal.is_empty()
                    && let Some(o) = &opened
                {
                    principal.clone_from(&o.principal);
                }
                Some(JobRun {
                    workspace: ev.workspace,
                    job_id: if ev.job_id.is_empty() {
                        opened.map(|o| o.job_id).unwrap_or_default()
                    } else {
                        ev.job_id.clone()
                    },
                    run_id: ev.run_id.clone(),
                    principal,
                    start,
                    end: if ev.run_phase == RunPhase::Complete { ev.end } else { ev.time },
                    result: ev.run_result.clone(),
                })
            }
        }
    }

    /// Drops runs started more than the bound before `now`.
    pub fn expire(&mut self, now: EventTime) {
        let limit = now.0 - self.max_open_ms;
        for runs in self.open.values_mut() {
            let before = runs.len();
            runs.retain(|_, o| o.start.0 >= limit);
            self.abandoned += (before - runs.len()) as u64;
        }
    }

    pub fn open_runs(&self) -> usize {
        self.open.values().map(|r| r.len()).sum()
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

    #[test]
    fn start_and_end_make_a_run() {
        let mut j = JobRuns::new(48);
        assert_eq!(j.observe(&ev(RunPhase::Start, "r1", 1_000)), None);
        let run = j.observe(&ev(RunPhase::End, "r1", 61_000)).unwrap();
        assert_eq!((run.runtime_seconds(), run.job_id.as_str(), run.principal.as_str()), (60.0, "7", "etl@x"));
        assert_eq!(j.observe(&ev(RunPhase::End, "r2", 61_000)), None, "end without start");
    }

    #[test]
    fn timeline_slices_merge_into_one_run() {
        let mut j = JobRuns::new(48);
        let mut a = ev(RunPhase::Start, "r1", 7_200_000);
        a.start = EventTime(3_600_000);
        assert_eq!(j.observe(&a), None);
        let mut b = ev(RunPhase::Complete, "r1", 9_000_000);
        b.start = EventTime(7_200_000);
        b.end = EventTime(9_000_000);
        assert_eq!(j.observe(&b).unwrap().runtime_seconds(), 5_400.0);
    }

    #[test]
    fn abandoned_runs_are_bounded() {
        let mut j = JobRuns::new(1);
        j.observe(&ev(RunPhase::Start, "r1", 0));
        j.expire(EventTime(2 * MS_PER_HOUR));
        assert_eq!((j.open_runs(), j.abandoned), (0, 1));
    }
}
