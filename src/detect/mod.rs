//! Detect: event-time buckets, closed by the watermark, scored by detectors.
//!
//! Owns bucketing, the late-event rule and the decision to alert. The
//! watermark is the largest event time seen minus the allowed lateness;
//! a bucket closes when the watermark passes its end. **Late-event rule:**
//! an event whose bucket has already closed when it arrives is counted as
//! late and not added to any bucket: a closed bucket's score is never
//! rewritten. Detectors see closed buckets in time order per principal,
//! and principals of one bucket in name order, so the alerts do not depend
//! on arrival order within the allowed lateness.

pub mod access;
pub mod allowlist;
pub mod buckets;
pub mod cases;
pub mod count;
pub mod definition;
pub mod detector;
pub mod evidence;
pub mod jit;
pub mod novelty;
pub mod registry;
pub mod rules;
pub mod share_down;
pub mod value;

use crate::event::Shape;
use crate::time::EventTime;

/// Default allowed lateness of audit shapes: Databricks delivers audit
/// logs typically within 15 minutes.
pub const DEFAULT_ALLOWED_LATENESS_MS: i64 = 15 * crate::time::MS_PER_MINUTE;

/// How long each input shape's events may arrive after the newest event
/// of any shape and still be counted (see [`Clock`]). The defaults follow
/// Databricks' documented delivery: audit log delivery typically within
/// 15 minutes; `system.billing.usage` hourly aggregates typically within
/// 12 hours (24 here, so that a day's export lands in time); lakeflow and
/// lineage system tables within about an hour. List prices are reference
/// data and never late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    by_shape: [i64; Shape::ALL.len()],
}

impl Default for Lateness {
    fn default() -> Self {
        let mut by_shape = [0; Shape::ALL.len()];
        for s in Shape::ALL {
            by_shape[s.index()] = Lateness::default_of(s);
        }
        Lateness { by_shape }
    }
}

impl Lateness {
    /// The documented default of one shape, in ms.
    pub fn default_of(shape: Shape) -> i64 {
        use crate::time::{MS_PER_HOUR, MS_PER_MINUTE};
        match shape {
            Shape::AuditDelivery | Shape::SystemAudit => 15 * MS_PER_MINUTE,
            Shape::BillingUsage => 24 * MS_PER_HOUR,
            Shape::JobRunTimeline | Shape::TableLineage => MS_PER_HOUR,
            Shape::ListPrice => 0,
        }
    }

    pub fn of(&self, shape: Shape) -> i64 {
        self.by_shape[shape.index()]
    }

    pub fn set(&mut self, shape: Shape, ms: i64) {
        self.by_shape[shape.index()] = ms.max(0);
    }

    /// The longest lateness of any shape.
    pub fn max(&self) -> i64 {
        self.by_shape.iter().copied().max().unwrap_or(0)
    }

    /// Applies `NAME=MINUTES`, where NAME is a shape's name, `audit` (both
    /// audit shapes) or `billing` (usage).
    pub fn apply(&mut self, assignment: &str) -> Result<(), String> {
        let (name, minutes) = assignment
            .split_once('=')
            .ok_or_else(|| format!("`{assignment}`: expected SHAPE=MINUTES, e.g. system_billing_usage=1440"))?;
        let minutes: u32 = minutes
            .trim()
            .parse()
            .map_err(|_| format!("`{assignment}`: minutes must be 0..={}", definition::MAX_LATENESS_MINUTES))?;
        self.set_minutes(name.trim(), minutes).map_err(|e| format!("`{assignment}`: {e}"))
    }

    /// Sets the lateness of the shapes `name` stands for (as in [`Lateness::apply`]).
    pub fn set_minutes(&mut self, name: &str, minutes: u32) -> Result<(), String> {
        if minutes > definition::MAX_LATENESS_MINUTES {
            return Err(format!("minutes must be 0..={}", definition::MAX_LATENESS_MINUTES));
        }
        for s in Lateness::shapes_named(name)? {
            self.set(s, minutes as i64 * crate::time::MS_PER_MINUTE);
        }
        Ok(())
    }

    fn shapes_named(name: &str) -> Result<Vec<Shape>, String> {
        match name {
            "audit" => Ok(vec![Shape::AuditDelivery, Shape::SystemAudit]),
            "billing" => Ok(vec![Shape::BillingUsage]),
            _ => Shape::ALL.into_iter().find(|s| s.name() == name).map(|s| vec![s]).ok_or_else(|| {
                let names: Vec<&str> = Shape::ALL.iter().map(|s| s.name()).collect();
                format!("`{name}` is not a shape; allowed: audit, billing, {}", names.join(", "))
            }),
        }
    }
}

/// Whether events of `shape` reach a detector of `signal` (`share_down`:
/// whether it is a share-down rule, which also reads lineage rows).
fn feeds(shape: Shape, signal: crate::event::Signal, share_down: bool) -> bool {
    use crate::event::Signal;
    match shape {
        Shape::AuditDelivery | Shape::SystemAudit => signal != Signal::Cost,
        Shape::BillingUsage => signal == Signal::Cost,
        Shape::JobRunTimeline => signal == Signal::JobRun,
        Shape::TableLineage => share_down,
        Shape::ListPrice => false,
    }
}

/// Kinds of detector with a lateness of their own: one per signal, and
/// share-down rules.
const KINDS: usize = crate::event::Signal::ALL.len() + 1;

/// Event time as each detector sees it. The frontier is the newest event
/// time of any shape; a detector's watermark trails it by the longest
/// lateness of the shapes that have fed it so far (or its own
/// `lateness_minutes`). So billing rows that arrive 20 hours behind the
/// audit stream still land in open buckets, while audit detectors close
/// their buckets 15 minutes behind the frontier. A shape never seen holds
/// nothing back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Clock {
    frontier: Option<i64>,
    /// Shapes seen, as a bit set over `Shape::index`.
    seen: u8,
    #[serde(skip)]
    lateness: Lateness,
    /// Lateness by detector kind, for the shapes seen (recomputed when a
    /// shape is first seen: it is read for every detector and event).
    #[serde(skip)]
    by_kind: [i64; KINDS],
}

impl Clock {
    pub fn new(lateness: Lateness) -> Self {
        let mut c = Clock { frontier: None, seen: 0, lateness, by_kind: [0; KINDS] };
        c.recompute();
        c
    }

    /// Restores the lateness a checkpoint does not carry.
    pub fn configure(&mut self, lateness: Lateness) {
        self.lateness = lateness;
        self.recompute();
    }

    pub fn lateness(&self) -> Lateness {
        self.lateness
    }

    fn recompute(&mut self) {
        for (k, slot) in self.by_kind.iter_mut().enumerate() {
            let (signal, share_down) = match crate::event::Signal::ALL.get(k) {
                Some(s) => (*s, false),
                None => (crate::event::Signal::Activity, true),
            };
            let fed = || Shape::ALL.into_iter().filter(move |s| feeds(*s, signal, share_down));
            let seen = fed().filter(|s| self.seen & (1 << s.index()) != 0).map(|s| self.lateness.of(s)).max();
            *slot = seen.or_else(|| fed().map(|s| self.lateness.of(s)).max()).unwrap_or(0);
        }
    }

    /// Takes an event's time and shape. True when the shape is new, which
    /// may change the lateness of some detectors.
    pub fn observe(&mut self, shape: Shape, t: EventTime) -> bool {
        let bit = 1 << shape.index();
        let new = self.seen & bit == 0;
        if new {
            self.seen |= bit;
            self.recompute();
        }
        self.frontier = Some(self.frontier.map_or(t.0, |f| f.max(t.0)));
        new
    }

    /// The newest event time seen.
    pub fn frontier(&self) -> Option<EventTime> {
        self.frontier.map(EventTime)
    }

    /// The lateness `def` waits for: its own, or the longest of the shapes
    /// seen that feed it (the longest of all that could, before any is).
    pub fn lateness_of(&self, def: &definition::Definition) -> i64 {
        def.lateness_ms.unwrap_or_else(|| {
            let kind = if def.model == definition::Model::ShareDown { KINDS - 1 } else { def.signal as usize };
            self.by_kind[kind]
        })
    }

    /// Everything before this time is complete for `def`.
    pub fn watermark(&self, def: &definition::Definition) -> EventTime {
        self.at(self.lateness_of(def))
    }

    /// The watermark of detectors of `signal` that set no lateness of their own.
    pub fn of_signal(&self, signal: crate::event::Signal) -> EventTime {
        self.at(self.by_kind[signal as usize])
    }

    /// The frontier less `lateness_ms`.
    pub fn at(&self, lateness_ms: i64) -> EventTime {
        self.frontier.map_or(EventTime(i64::MIN), |f| EventTime(f.saturating_sub(lateness_ms)))
    }
}

/// What a detector did with an event it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Counted into an open bucket (or judged).
    Taken,
    /// Its bucket had closed already: counted as late, not mixed in.
    Late,
    /// Not this detector's business (no job, no grant, ...).
    Ignored,
}

/// The outcome of offering one event to every detector: an event every
/// detector that wanted it refused as late is "late beyond every bound".
#[derive(Debug, Clone, Copy, Default)]
pub struct Offers {
    taken: u32,
    late: u32,
}

impl Offers {
    pub fn note(&mut self, f: Fed) {
        match f {
            Fed::Taken => self.taken += 1,
            Fed::Late => self.late += 1,
            Fed::Ignored => {}
        }
    }

    /// Some detector wanted it, and none could take it.
    pub fn all_late(&self) -> bool {
        self.late > 0 && self.taken == 0
    }
}

/// A figure for an alert, to two decimals.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A rule's finding: a fact, not a probability, so its alert has score 100,
/// p-value 0 and nothing expected. One constructor for every rule, so the
/// alerts of all rules read alike.
pub struct Fact<'a> {
    pub def: &'a definition::Definition,
    pub principal: &'a str,
    pub kind: crate::event::PrincipalKind,
    pub workspace: u64,
    pub start: i64,
    pub end: i64,
    /// The figure the summary counts (actions, hours, principals exposed).
    pub observed: u64,
    /// Events behind the alert (evidence lists at most `evidence_limit`).
    pub evidence_total: u64,
    pub summary: String,
    pub evidence: Vec<String>,
}

impl Fact<'_> {
    pub fn alert(self) -> crate::alert::Alert {
        use crate::alert::{Alert, SCHEMA_VERSION, alert_id};
        let def = self.def;
        Alert {
            schema_version: SCHEMA_VERSION,
            alert_id: alert_id(&def.name, self.principal, self.start, &def.config_version),
            detector: def.name.clone(),
            principal: self.principal.to_owned(),
            workspace_id: self.workspace.to_string(),
            window_start: EventTime(self.start).to_string(),
            window_end: EventTime(self.end).to_string(),
            observed: self.observed as f64,
            expected: 0.0,
            expected_low: 0.0,
            expected_high: 0.0,
            score: 100,
            p_value: 0.0,
            severity: def.severity,
            summary: self.summary,
            evidence: self.evidence,
            corrects: None,
            triage: def.triage(def.severity, 100),
            context: def.context(self.kind, 0.0, 0.0, None, self.evidence_total),
        }
    }
}
