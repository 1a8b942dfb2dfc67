//! Every detector behind one interface, and the set of them a pipeline runs.
//!
//! [`Detector`] is an enum over the detector kinds: each variant keeps its
//! own state and methods (in its own module), and this file says, once,
//! how the pipeline speaks to any of them: what events it observes, how it
//! closes buckets, what facts it leaves for the access model to judge, and
//! its counters. Enum dispatch rather than trait objects, because the state
//! serializes into a checkpoint as it is, and because the match compiles to
//! a jump per call on the hot path.
//!
//! [`Detectors`] holds them in the order they close buckets in (that order
//! is the order of alerts at one watermark, so it is part of the output),
//! and routes each event only to the detectors whose input it is: match
//! rules by service and action, the others by shape, signals and whether
//! the event names an actor. It also knows when the earliest of them has
//! something to close, so that the pipeline asks none of them after an
//! event that closes nothing (most events).
//!
//! Adding a detector kind: a module with its state and a `Model`, a variant
//! here with its arms, and a `Model` name in `definition`.

use super::access::{AccessRule, Rule};
use super::count::CountDetector;
use super::definition::{Definition, Model};
use super::jit::{Jit, TemporaryGrant};
use super::novelty::NoveltyDetector;
use super::registry::{RegistryEvent, RegistryGuard};
use super::rules::MatchRule;
use super::share_down::{Flow, ShareDown};
use super::value::{Observation, ValueDetector};
use super::{Clock, Fed, Offers};
use crate::access::{AccessModel, Change, SnapshotFact};
use crate::alert::Alert;
use crate::event::{Event, PrincipalKind, Shape, Signal};
use crate::signal::job_runs::JobRun;
use crate::signal::key_of;
use crate::state::{Interner, PrincipalId};
use crate::time::EventTime;
use rustc_hash::FxHashMap;

/// One detector, of any kind.
///
/// Variants differ in size, but a pipeline holds a few dozen detectors,
/// built once: boxing them would only add an indirection to every call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Detector {
    /// Seasonal counts and unusual hours (`detect::count`).
    Count(CountDetector),
    /// New networks and clients (`detect::novelty`).
    Novelty(NoveltyDetector),
    /// Offboarded principals and role drift (`detect::access`).
    Access(AccessRule),
    /// `[match]` rules (`detect::rules`).
    Match(MatchRule),
    /// Personal data shared down (`detect::share_down`).
    ShareDown(ShareDown),
    /// Temporary grants (`detect::jit`).
    Jit(Jit),
    /// Runtimes and cost (`detect::value`).
    Value(ValueDetector),
    /// The model registry's path to production (`detect::registry`).
    Registry(RegistryGuard),
}

/// A fact a detector left for the access model to judge as of its time.
#[derive(Debug)]
pub enum Pending {
    Flow(Flow),
    Deadline(TemporaryGrant),
    Registry(RegistryEvent),
}

/// The counters every kind may keep, summed into `telemetry::Stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Offers refused because their bucket had closed.
    pub late: u64,
    pub buckets_scored: u64,
    pub corrections: u64,
    pub verdicts_changed: u64,
}

/// What a detector may read, and intern into, while it observes an event.
pub struct Seen<'a> {
    pub clock: &'a Clock,
    pub names: &'a mut Interner,
    /// Earliest event time of each principal, by id.
    pub first_seen: &'a mut Vec<EventTime>,
    /// Peer group of each principal (from the access snapshot).
    pub peer_groups: &'a FxHashMap<String, u32>,
    pub access: &'a AccessModel,
    /// The event's actor, interned (`None` when it names none).
    pub actor: Option<PrincipalId>,
    /// A billing row's list price (`None`: unpriced, or not a billing row).
    pub price: Option<f64>,
}

impl Seen<'_> {
    /// The id and kind of `key`, one of the event's fields: the actor's
    /// when it is the actor.
    fn principal(&mut self, key: &str, ev: &Event) -> (PrincipalId, PrincipalKind) {
        match self.actor {
            Some(id) if std::ptr::eq(key, ev.principal.as_str()) => (id, ev.principal_kind),
            _ => (intern_seen(self.names, self.first_seen, key, ev.time), PrincipalKind::classify(key)),
        }
    }
}

/// Interns `name` and lowers its first-seen time to `t`.
pub fn intern_seen(names: &mut Interner, first_seen: &mut Vec<EventTime>, name: &str, t: EventTime) -> PrincipalId {
    let id = names.intern(name);
    let i = id.0 as usize;
    if first_seen.len() <= i {
        crate::state::grow(first_seen, i + 1);
        first_seen.resize(i + 1, t);
    }
    first_seen[i] = first_seen[i].min(t);
    id
}

impl Detector {
    /// The detector a definition describes (`None` for a match model
    /// without a `[match]` table, which the definition parser refuses).
    pub fn build(def: Definition, snapshot: &[SnapshotFact]) -> Option<Detector> {
        Some(match def.model {
            Model::SeasonalCounts | Model::UnusualHours => Detector::Count(CountDetector::new(def)),
            Model::NewValue => Detector::Novelty(NoveltyDetector::new(def)),
            Model::Offboarded => Detector::Access(AccessRule::new(def, Rule::Offboarded)),
            Model::RoleDrift => Detector::Access(AccessRule::new(def, Rule::RoleDrift)),
            Model::Match => Detector::Match(MatchRule::new(def)?),
            Model::Jit => Detector::Jit(Jit::new(def, snapshot)),
            Model::SeasonalValues => Detector::Value(ValueDetector::new(def)),
            Model::ShareDown => Detector::ShareDown(ShareDown::new(def)),
            Model::RegistryGuard => Detector::Registry(RegistryGuard::new(def)),
        })
    }

    /// Where the kind closes in the order of alerts at one watermark.
    fn rank(&self) -> u8 {
        match self {
            Detector::Count(_) => 0,
            Detector::Novelty(_) => 1,
            Detector::Access(_) => 2,
            Detector::Match(_) => 3,
            // Share-down and registry alerts come from judging their facts,
            // which are judged in time order and, at one time, in this order.
            Detector::ShareDown(_) => 4,
            Detector::Jit(_) => 5,
            Detector::Value(_) => 6,
            Detector::Registry(_) => 7,
        }
    }

    pub fn definition(&self) -> &Definition {
        match self {
            Detector::Count(d) => d.definition(),
            Detector::Novelty(d) => d.definition(),
            Detector::Access(d) => d.definition(),
            Detector::Match(d) => d.definition(),
            Detector::Jit(d) => d.definition(),
            Detector::Value(d) => d.definition(),
            Detector::ShareDown(d) => d.definition(),
            Detector::Registry(d) => d.definition(),
        }
    }

    /// Whether events of `shape` feeding `signals` reach `observe`
    /// (`actor`: the event names one). Match rules are routed by service
    /// and action instead, and runtime detectors take job runs.
    fn observes(&self, shape: Shape, signals: crate::event::Signals, actor: bool) -> bool {
        let audit = matches!(shape, Shape::AuditDelivery | Shape::SystemAudit);
        match self {
            Detector::Count(d) => signals.contains(d.definition().signal),
            Detector::Novelty(_) => actor && signals.contains(Signal::Source),
            Detector::Access(_) | Detector::Jit(_) => actor && signals.contains(Signal::Activity),
            Detector::Value(d) => d.definition().signal == Signal::Cost && shape == Shape::BillingUsage,
            Detector::ShareDown(_) => audit || shape == Shape::TableLineage,
            Detector::Registry(_) => audit,
            Detector::Match(_) => false,
        }
    }

    /// Offers `ev`.
    pub fn observe(&mut self, ev: &Event, cx: &mut Seen<'_>) -> Fed {
        let wm = cx.clock.watermark(self.definition());
        match self {
            Detector::Count(d) => {
                let key = key_of(ev, d.definition().signal);
                if key.is_empty() {
                    return Fed::Ignored;
                }
                let (id, kind) = cx.principal(key, ev);
                let groups = cx.peer_groups;
                d.observe(id, kind, || groups.get(key).copied().unwrap_or(0), ev, wm)
            }
            Detector::Novelty(d) => match cx.actor {
                Some(id) => d.observe(id, ev.principal_kind, ev, wm),
                None => Fed::Ignored,
            },
            Detector::Access(d) => match cx.actor {
                Some(id) => d.observe(id, ev, wm),
                None => Fed::Ignored,
            },
            Detector::Jit(d) => match cx.actor {
                Some(id) => d.observe(id, ev, wm),
                None => Fed::Ignored,
            },
            Detector::Match(d) => {
                if !d.matches(ev) {
                    return Fed::Ignored;
                }
                let mut address = String::new();
                let key = d.key_of(ev, &mut address);
                if key.is_empty() {
                    return Fed::Ignored;
                }
                let (id, kind) = cx.principal(key, ev);
                d.observe(id, kind, ev, wm)
            }
            Detector::Value(d) => {
                let principal = ev.charged_principal();
                if principal.is_empty() {
                    return Fed::Ignored;
                }
                let start = if ev.start.0 != 0 { ev.start } else { EventTime(ev.time.0 - 1) };
                d.observe(Observation {
                    principal,
                    kind: PrincipalKind::classify(principal),
                    job: &ev.job_id,
                    start,
                    end: ev.time,
                    value: ev.amount * cx.price.unwrap_or(1.0),
                    priced: cx.price.is_some(),
                    workspace: ev.workspace,
                    evidence: &ev.id,
                    correction: ev.correction,
                })
            }
            Detector::ShareDown(d) => {
                if ev.shape == Some(Shape::TableLineage) {
                    d.observe(ev);
                } else {
                    d.observe_audit(ev, cx.access, wm);
                }
                Fed::Ignored
            }
            Detector::Registry(d) => {
                d.observe(ev);
                Fed::Ignored
            }
        }
    }

    /// Takes the access changes an event made.
    fn note_changes(&mut self, time: EventTime, changes: &[Change], access: &AccessModel) {
        match self {
            Detector::Access(d) => d.note_changes(time, changes),
            Detector::Jit(d) => d.note_changes(time, changes, access),
            _ => {}
        }
    }

    /// When it has something to close: its watermark must reach this
    /// (`i64::MAX`: nothing open).
    pub fn due_at(&self) -> i64 {
        match self {
            Detector::Count(d) => d.due_at(),
            Detector::Novelty(d) => d.due_at(),
            Detector::Access(d) => d.due_at(),
            Detector::Match(d) => d.due_at(),
            Detector::Jit(d) => d.due_at(),
            Detector::Value(d) => d.due_at(),
            Detector::ShareDown(d) => d.due_at(),
            Detector::Registry(d) => d.due_at(),
        }
    }

    /// Closes what `watermark` has passed: alerts into `out`, facts to be
    /// judged against the access model into `pending` (with their times).
    fn advance(
        &mut self,
        watermark: EventTime,
        names: &Interner,
        first_seen: &[EventTime],
        out: &mut Vec<Alert>,
        pending: &mut Vec<(i64, Pending)>,
    ) {
        match self {
            Detector::Count(d) => d.advance(watermark, names, first_seen, out),
            Detector::Novelty(d) => d.advance(watermark, names, first_seen, out),
            Detector::Access(d) => d.advance(watermark, names, out),
            Detector::Match(d) => d.advance(watermark, names, out),
            Detector::Jit(d) => {
                d.advance(watermark, names, out);
                pending.extend(d.take_due(watermark).into_iter().map(|(t, g)| (t, Pending::Deadline(g))));
            }
            Detector::Value(d) => {
                d.advance(watermark, |name| names.get(name).and_then(|id| first_seen.get(id.0 as usize)).copied(), out)
            }
            Detector::ShareDown(d) => {
                pending.extend(d.take_due(watermark).into_iter().map(|f| (f.time, Pending::Flow(f))))
            }
            Detector::Registry(d) => {
                pending.extend(d.take_due(watermark).into_iter().map(|e| (e.time, Pending::Registry(e))))
            }
        }
    }

    /// Judges a fact it left in `advance`, against the model as of `time`.
    fn judge(&mut self, time: i64, fact: &Pending, access: &AccessModel) -> Option<Alert> {
        match (self, fact) {
            (Detector::ShareDown(d), Pending::Flow(f)) => d.judge(f, access),
            (Detector::Jit(d), Pending::Deadline(g)) => d.judge(time, g, access),
            (Detector::Registry(d), Pending::Registry(e)) => d.judge(e, access),
            _ => None,
        }
    }

    pub fn counters(&self) -> Counters {
        match self {
            Detector::Count(d) => {
                Counters { late: d.stats.late, buckets_scored: d.stats.buckets_scored, ..Default::default() }
            }
            Detector::Novelty(d) => {
                Counters { late: d.stats.late, buckets_scored: d.stats.buckets_scored, ..Default::default() }
            }
            Detector::Access(d) => {
                Counters { late: d.stats.late, buckets_scored: d.stats.buckets_scored, ..Default::default() }
            }
            Detector::Match(d) => Counters { late: d.stats.late, ..Default::default() },
            Detector::Jit(d) => Counters { late: d.stats.late, ..Default::default() },
            Detector::Value(d) => Counters {
                late: d.stats.late,
                buckets_scored: d.stats.scored,
                corrections: d.stats.corrections,
                verdicts_changed: d.stats.verdicts_changed,
            },
            Detector::ShareDown(_) | Detector::Registry(_) => Counters::default(),
        }
    }

    /// Whether it scores job runs (rebuilt from their events by
    /// `signal::job_runs`) rather than events.
    fn scores_runs(&self) -> bool {
        matches!(self, Detector::Value(d) if d.definition().signal == Signal::JobRun)
    }

    /// Whether it must see every watermark, due or not: a value detector
    /// judges lateness by the watermark it last scored at.
    fn follows_every_watermark(&self) -> bool {
        matches!(self, Detector::Value(_))
    }
}

/// The rules of one service: those naming no action, and by action.
type ServiceRules = (Vec<u16>, FxHashMap<String, Vec<u16>>);

/// The match rules an event could satisfy, by service and action.
#[derive(Debug, Default)]
struct RuleIndex {
    by_service: FxHashMap<String, ServiceRules>,
    /// Rules naming no service: those naming no action, and by action.
    any_service: ServiceRules,
}

impl RuleIndex {
    fn new(detectors: &[Detector]) -> RuleIndex {
        let mut index = RuleIndex::default();
        for (i, d) in detectors.iter().enumerate() {
            let Detector::Match(r) = d else { continue };
            let Some(m) = r.definition().matcher.as_ref() else { continue };
            let m = &m.when;
            let i = i as u16;
            let add = |(service_only, by_action): &mut ServiceRules| {
                if m.actions.is_empty() {
                    service_only.push(i);
                }
                for a in &m.actions {
                    let rules = by_action.entry(a.to_ascii_lowercase()).or_default();
                    if !rules.contains(&i) {
                        rules.push(i);
                    }
                }
            };
            if m.services.is_empty() {
                add(&mut index.any_service);
            }
            for s in &m.services {
                add(index.by_service.entry(s.to_ascii_lowercase()).or_default());
            }
        }
        index
    }

    /// Rules worth checking for `ev`, each once, in rule order. Names
    /// compare ignoring ASCII case (Azure's diagnostic logs spell some
    /// services their own way).
    fn candidates<'a>(&'a self, ev: &Event) -> impl Iterator<Item = &'a u16> {
        let (mut sbuf, mut abuf) = ([0u8; 64], [0u8; 96]);
        let service = crate::decode::keep::lower_into(&mut sbuf, &ev.service);
        let action = crate::decode::keep::lower_into(&mut abuf, &ev.action);
        let of = |(only, actions): &'a ServiceRules| -> (&'a [u16], &'a [u16]) {
            (only, action.and_then(|a| actions.get(a)).map(Vec::as_slice).unwrap_or(&[]))
        };
        let (service_only, by_action) = service.and_then(|s| self.by_service.get(s)).map_or((&[][..], &[][..]), of);
        let (any_only, any_by_action) = of(&self.any_service);
        service_only.iter().chain(by_action).chain(any_only).chain(any_by_action)
    }
}

/// Later than every bucket: the end of input closes everything up to it.
pub const END_OF_INPUT: EventTime = EventTime(i64::MAX / 2);

/// The detectors of one pipeline, and the routes events take to them.
///
/// Only the detectors are state; the routes are rebuilt from them.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Detectors {
    all: Vec<Detector>,
    #[serde(skip)]
    rules: RuleIndex,
    /// Detectors observing events of one (shape, signals, actor), in
    /// order: filled as such events first arrive (a few dozen kinds).
    #[serde(skip)]
    routes: FxHashMap<u32, Box<[u16]>>,
    /// The frontier at which the earliest detector has something to
    /// close; `i64::MIN` when unknown (after a restore, or when the
    /// lateness of some kind changed).
    #[serde(skip)]
    next_due: i64,
    /// Detectors that see every watermark (`Detector::follows_every_watermark`).
    #[serde(skip)]
    followers: Box<[u16]>,
    /// Detectors that score job runs (`Detector::scores_runs`).
    #[serde(skip)]
    runners: Box<[u16]>,
}

impl Detectors {
    /// One detector per definition, in closing order (kind, then
    /// definition order).
    pub fn new(definitions: &[Definition], snapshot: &[SnapshotFact]) -> Detectors {
        let mut all: Vec<Detector> = definitions.iter().cloned().filter_map(|d| Detector::build(d, snapshot)).collect();
        all.sort_by_key(Detector::rank);
        let mut d = Detectors { all, ..Default::default() };
        d.restored();
        d
    }

    /// Rebuilds what is not state (after a checkpoint is read).
    pub fn restored(&mut self) {
        self.rules = RuleIndex::new(&self.all);
        self.routes.clear();
        self.next_due = i64::MIN;
        let which =
            |f: fn(&Detector) -> bool| (0..self.all.len() as u16).filter(|i| f(&self.all[*i as usize])).collect();
        self.followers = which(Detector::follows_every_watermark);
        self.runners = which(Detector::scores_runs);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Detector> {
        self.all.iter()
    }

    /// The lateness of some kind changed (a shape was first seen): when
    /// each detector is due is worked out again at the next advance.
    pub fn lateness_changed(&mut self) {
        self.next_due = i64::MIN;
    }

    /// Notes that detector `i` may have something new to close.
    fn touched(&mut self, i: usize, clock: &Clock) {
        let d = &self.all[i];
        let due = d.due_at().saturating_add(clock.lateness_of(d.definition()));
        self.next_due = self.next_due.min(due);
    }

    /// Offers `ev` to every detector whose input it is.
    pub fn observe(&mut self, ev: &Event, cx: &mut Seen<'_>, offers: &mut Offers) {
        let Some(shape) = ev.shape else { return };
        let key = shape.index() as u32 | (ev.signals.bits() as u32) << 3 | (cx.actor.is_some() as u32) << 19;
        let (all, actor) = (&self.all, cx.actor.is_some());
        let route = self.routes.entry(key).or_insert_with(|| {
            let on = |(i, d): (usize, &Detector)| d.observes(shape, ev.signals, actor).then_some(i as u16);
            all.iter().enumerate().filter_map(on).collect()
        });
        let mut next_due = self.next_due;
        for &i in route.iter() {
            let d = &mut self.all[i as usize];
            offers.note(d.observe(ev, cx));
            next_due = next_due.min(d.due_at().saturating_add(cx.clock.lateness_of(d.definition())));
        }
        if matches!(shape, Shape::AuditDelivery | Shape::SystemAudit) {
            for &i in self.rules.candidates(ev) {
                let d = &mut self.all[i as usize];
                offers.note(d.observe(ev, cx));
                next_due = next_due.min(d.due_at().saturating_add(cx.clock.lateness_of(d.definition())));
            }
        }
        self.next_due = next_due;
    }

    /// Hands the access changes of an event to the detectors that keep
    /// their own history of them.
    pub fn note_changes(&mut self, time: EventTime, changes: &[Change], access: &AccessModel, clock: &Clock) {
        for i in 0..self.all.len() {
            if matches!(self.all[i], Detector::Access(_) | Detector::Jit(_)) {
                self.all[i].note_changes(time, changes, access);
                self.touched(i, clock);
            }
        }
    }

    /// The watermark up to which finished job runs are handed on: the most
    /// advanced of the runtime detectors' (so that no run reaches one of
    /// them late), or `None` without any.
    pub fn runs_watermark(&self, clock: &Clock, flush: bool) -> Option<EventTime> {
        self.runners.iter().map(|&i| watermark_of(clock, self.all[i as usize].definition(), flush)).max()
    }

    /// A finished run of `owner`, to the runtime detectors.
    pub fn observe_run(&mut self, run: &JobRun, owner: &str, clock: &Clock) {
        for i in 0..self.runners.len() {
            let i = self.runners[i] as usize;
            let Detector::Value(d) = &mut self.all[i] else { continue };
            d.observe(Observation {
                principal: owner,
                kind: PrincipalKind::classify(owner),
                job: &run.job_id,
                start: run.start,
                end: run.end,
                value: run.runtime_seconds(),
                priced: true,
                workspace: run.workspace,
                evidence: &run.run_id,
                correction: false,
            });
            self.touched(i, clock);
        }
    }

    /// Closes what each detector's watermark has passed (`flush`: all of
    /// it). Alerts go to `out` in closing order; facts to judge go to
    /// `pending` with their detector's index. Asks only the detectors that
    /// are due: after most events, none.
    pub fn advance(
        &mut self,
        clock: &Clock,
        flush: bool,
        names: &Interner,
        first_seen: &[EventTime],
        out: &mut Vec<Alert>,
        pending: &mut Vec<(i64, usize, Pending)>,
    ) {
        let frontier = clock.frontier().map_or(i64::MIN, |f| f.0);
        if !flush && self.next_due != i64::MIN && frontier < self.next_due {
            // Nothing is due; only the watermark moves.
            for &i in self.followers.iter() {
                let d = &mut self.all[i as usize];
                let wm = clock.watermark(d.definition());
                d.advance(wm, names, first_seen, out, &mut Vec::new());
            }
            return;
        }
        let mut next_due = i64::MAX;
        let mut facts = Vec::new();
        for (i, d) in self.all.iter_mut().enumerate() {
            let lateness = clock.lateness_of(d.definition());
            let due = d.due_at().saturating_add(lateness);
            if flush || frontier >= due || d.follows_every_watermark() {
                let wm = if flush { END_OF_INPUT } else { clock.at(lateness) };
                d.advance(wm, names, first_seen, out, &mut facts);
                pending.extend(facts.drain(..).map(|(t, f)| (t, i, f)));
                next_due = next_due.min(d.due_at().saturating_add(lateness));
            } else {
                next_due = next_due.min(due);
            }
        }
        self.next_due = next_due;
    }

    /// Judges a fact detector `i` left, against the model as of `time`.
    pub fn judge(&mut self, i: usize, time: i64, fact: &Pending, access: &AccessModel) -> Option<Alert> {
        self.all.get_mut(i)?.judge(time, fact, access)
    }

    /// The counters of every detector, summed.
    pub fn counters(&self) -> Counters {
        self.all.iter().map(Detector::counters).fold(Counters::default(), |a, c| Counters {
            late: a.late + c.late,
            buckets_scored: a.buckets_scored + c.buckets_scored,
            corrections: a.corrections + c.corrections,
            verdicts_changed: a.verdicts_changed + c.verdicts_changed,
        })
    }
}

/// The watermark `def` closes its buckets at: its clock's, or the end of
/// input when flushing.
pub fn watermark_of(clock: &Clock, def: &Definition, flush: bool) -> EventTime {
    if flush { END_OF_INPUT } else { clock.watermark(def) }
}
