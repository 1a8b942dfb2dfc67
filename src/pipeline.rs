//! The pipeline: every stage after the source, wired in one direction.
//!
//! [`Pipeline`] takes decoded events in (roughly) event-time order and
//! returns alerts; it is the same object whatever the source, so replay is
//! not a second code path. [`replay`] drives it from files with a progress
//! bar and writes the outputs.

use crate::access::AccessModel;
use crate::alert::Alert;
use crate::decode::QuarantineReason;
use crate::decode::dedup::Dedup;
use crate::decode::keep::KeepParams;
use crate::detect::allowlist::Allowlist;
use crate::detect::definition::Definition;
use crate::detect::detector::{Detectors, END_OF_INPUT, Pending, Seen, intern_seen};
use crate::detect::{Clock, Lateness, Offers};
use crate::event::{Event, Shape, Signal, set_principal};
use crate::signal::job_runs::JobRun;
use crate::signal::job_runs::JobRuns;
use crate::signal::pricing::PriceBook;
use crate::sink::{AlertFile, FanOut, QuarantineFile, SinkError};
use crate::source::batched::Batched;
use crate::source::chunked::ChunkedLines;
use crate::source::files::{self, FileChain, SourceError};
use crate::source::merge::{Merge, Merged};
use crate::source::sort::Sorter;
use crate::source::{Position, RecordStream};
use crate::state::Interner;
use crate::telemetry::Stats;
use crate::time::{EventTime, MS_PER_DAY};
use rustc_hash::FxHashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod checkpoint;
pub use checkpoint::CheckpointError;

/// What the pipeline is told at start.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub definitions: Vec<Definition>,
    /// Allowed lateness per input shape (see `detect::Clock`).
    pub lateness: Lateness,
    /// Only alerts whose window starts at or after this are emitted.
    pub from: Option<EventTime>,
    /// Events at or after this are skipped.
    pub to: Option<EventTime>,
    /// Events this long before `from` still train the baselines.
    pub warmup_ms: i64,
    /// Only alerts about this principal (normalized like event principals).
    pub principal: Option<String>,
    /// Event time over which duplicate record ids are recognised (at
    /// least the longest lateness, so that nothing a detector would still
    /// count can be counted twice).
    pub dedup_hours: i64,
    /// Most record ids the duplicate filter holds (see `decode::dedup`).
    pub dedup_max_ids: usize,
    /// Job runs still open after this long are abandoned.
    pub max_run_hours: i64,
    /// Alerts not to emit (see `detect::allowlist`).
    pub allowlist: Allowlist,
    /// Access facts exported before the input begins (see `access`).
    pub access_snapshot: Vec<crate::access::SnapshotFact>,
}

impl PipelineConfig {
    pub fn new(definitions: Vec<Definition>) -> Self {
        PipelineConfig {
            definitions,
            lateness: Lateness::default(),
            from: None,
            to: None,
            warmup_ms: 14 * MS_PER_DAY,
            principal: None,
            dedup_hours: crate::decode::dedup::DEFAULT_WINDOW_HOURS,
            dedup_max_ids: crate::decode::dedup::DEFAULT_MAX_IDS,
            max_run_hours: 72,
            allowlist: Allowlist::default(),
            access_snapshot: Vec::new(),
        }
    }
}

/// Each principal's peer group from a snapshot: its first group by name.
fn peer_groups_of(facts: &[crate::access::SnapshotFact]) -> FxHashMap<String, u32> {
    let mut first: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for f in facts {
        if let crate::access::SnapshotFact::Member { principal, group } = f {
            let mut p = String::new();
            set_principal(&mut p, principal);
            let g = group.trim().to_ascii_lowercase();
            let e = first.entry(p).or_insert_with(|| g.clone());
            if g < *e {
                *e = g;
            }
        }
    }
    let groups: std::collections::BTreeSet<&String> = first.values().collect();
    let ids: FxHashMap<&String, u32> = groups.into_iter().zip(1u32..).collect();
    first.iter().map(|(p, g)| (p.clone(), ids[g])).collect()
}

/// Privileges listed in an alert's context, most powerful first.
const MAX_PRIVILEGES_LISTED: usize = 8;

/// All stages after decode.
///
/// Everything but the configuration is state, and serializes into a
/// checkpoint (see [`Pipeline::checkpoint`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Pipeline {
    #[serde(skip)]
    config: PipelineConfig,
    names: Interner,
    /// Earliest event time of each principal (indexed by `PrincipalId`),
    /// as actor or as the key of any signal.
    first_seen: Vec<EventTime>,
    dedup: Dedup,
    clock: Clock,
    prices: PriceBook,
    runs: JobRuns,
    /// Reused buffer for runs handed on by `runs`.
    #[serde(skip)]
    drained_runs: Vec<JobRun>,
    /// Every detector, and the routes events take to them.
    detectors: Detectors,
    access: AccessModel,
    /// Peer group of each principal, from the access snapshot: its first
    /// group by name (ids from 1). Snapshot groups only, so that the peers
    /// a bucket is judged against do not depend on arrival order.
    peer_groups: FxHashMap<String, u32>,
    /// Run-as principal of each (workspace, job), learned from audit `jobs`
    /// events and billing rows: `job_run_timeline` rows do not name one.
    /// Nested by workspace, so that a lookup by borrowed job id allocates nothing.
    job_owners: FxHashMap<u64, FxHashMap<Box<str>, Box<str>>>,
    pub stats: Stats,
    since_expire: u32,
}

impl Pipeline {
    pub fn new(mut config: PipelineConfig) -> Self {
        if let Some(p) = config.principal.take() {
            let mut normalized = String::new();
            set_principal(&mut normalized, &p);
            config.principal = Some(normalized);
        }
        let detectors = Detectors::new(&config.definitions, &config.access_snapshot);
        let peer_groups = peer_groups_of(&config.access_snapshot);
        let mut access = AccessModel::new();
        for fact in config.access_snapshot.drain(..) {
            access.apply_fact(fact);
        }
        Pipeline {
            detectors,
            names: Interner::default(),
            first_seen: Vec::new(),
            dedup: Dedup::new(
                config.dedup_hours.max(config.lateness.max() / crate::time::MS_PER_HOUR + 2),
                config.dedup_max_ids,
            ),
            clock: Clock::new(config.lateness),
            prices: PriceBook::default(),
            runs: JobRuns::new(config.max_run_hours),
            drained_runs: Vec::new(),
            access,
            peer_groups,
            job_owners: FxHashMap::default(),
            stats: Stats::default(),
            since_expire: 0,
            config,
        }
    }

    /// Counts a record the source refused.
    pub fn quarantined(&mut self, reason: QuarantineReason) {
        self.stats.quarantined_by_reason[reason.index()] += 1;
    }

    fn wanted(&self, ev: &Event) -> bool {
        if let Some(to) = self.config.to
            && ev.time >= to
        {
            return false;
        }
        if let Some(from) = self.config.from
            && ev.time.0 < from.0.saturating_sub(self.config.warmup_ms)
        {
            return false;
        }
        true
    }

    /// Processes one decoded event; alerts it causes are appended to `out`.
    /// Returns `Err(Duplicate)` when the event repeats an earlier record.
    pub fn event(&mut self, ev: &Event, out: &mut Vec<Alert>) -> Result<(), QuarantineReason> {
        let Some(shape) = ev.shape else { return Ok(()) };
        if shape == Shape::ListPrice {
            // Prices are reference data: they never move the watermark (a
            // price may start in the future).
            self.stats.events_by_shape[shape.index()] += 1;
            self.prices.add(&ev.sku, ev.start, ev.end, ev.amount);
            return Ok(());
        }
        if self.dedup.is_duplicate(ev) {
            self.quarantined(QuarantineReason::Duplicate);
            return Err(QuarantineReason::Duplicate);
        }
        self.stats.events_by_shape[shape.index()] += 1;
        if !self.wanted(ev) {
            self.stats.filtered += 1;
            return Ok(());
        }
        if self.clock.observe(shape, ev.time) {
            self.detectors.lateness_changed();
        }
        if ev.unknown_service {
            self.stats.unknown_service(&ev.service);
        }
        if !ev.signals.is_empty() {
            self.stats.with_signal += 1;
        }
        let before = out.len();
        let mut offers = Offers::default();
        if !ev.job_id.is_empty() && !ev.charged_principal().is_empty() {
            self.learn_job_owner(ev);
        }
        if ev.signals.contains(Signal::JobRun) {
            self.runs.observe(ev);
        }
        let price = if shape == Shape::BillingUsage { self.price_of(ev) } else { None };
        self.observe_access(ev);
        // The actor is interned once; a signal counted under it (most are)
        // reuses its id and kind.
        let actor = (!ev.principal.is_empty())
            .then(|| intern_seen(&mut self.names, &mut self.first_seen, &ev.principal, ev.time));
        let mut seen = Seen {
            clock: &self.clock,
            names: &mut self.names,
            first_seen: &mut self.first_seen,
            peer_groups: &self.peer_groups,
            access: &self.access,
            actor,
            price,
        };
        self.detectors.observe(ev, &mut seen, &mut offers);
        self.advance(false, out);
        self.keep_alerts_from(before, out);
        self.since_expire += 1;
        if self.since_expire >= 65_536 {
            self.since_expire = 0;
            self.runs.expire(ev.time);
        }
        if offers.all_late() {
            self.stats.late_by_shape[shape.index()] += 1;
            return Err(QuarantineReason::Late);
        }
        Ok(())
    }

    /// Access changes an event makes, for the access model and the rules
    /// that keep their own history of them.
    fn observe_access(&mut self, ev: &Event) {
        if ev.signals.contains(Signal::PermissionChange) || ev.service == "accounts" {
            self.access.observe(ev);
            self.detectors.note_changes(ev.time, self.access.last_changes(), &self.access, &self.clock);
        }
    }

    /// A record broadcast to every partition in live mode (a list price, or
    /// an event that changes access, from another partition's principal):
    /// it updates the reference data this partition's detectors consult and
    /// nothing else: no counts, no alerts, no watermark.
    pub fn reference_event(&mut self, ev: &Event) {
        match ev.shape {
            Some(Shape::ListPrice) => self.prices.add(&ev.sku, ev.start, ev.end, ev.amount),
            Some(_) => self.observe_access(ev),
            None => {}
        }
    }

    /// Closes what each detector's watermark has passed (`flush`: all of
    /// it, at the end of input).
    fn advance(&mut self, flush: bool, out: &mut Vec<Alert>) {
        let first_new = out.len();
        // Runs that ended before the watermark are complete: every piece
        // of them has arrived. They reach the runtime detectors before
        // those close anything at this watermark (the most advanced of
        // theirs, so that no run reaches one of them late).
        let runs_to = self.detectors.runs_watermark(&self.clock, flush).unwrap_or(if flush {
            END_OF_INPUT
        } else {
            self.clock.of_signal(Signal::JobRun)
        });
        let mut runs = std::mem::take(&mut self.drained_runs);
        self.runs.drain(runs_to, |run| runs.push(run));
        for run in runs.drain(..) {
            self.stats.job_runs_rebuilt += 1;
            self.job_run(run);
        }
        self.drained_runs = runs;
        let mut facts = Vec::new();
        self.detectors.advance(&self.clock, flush, &self.names, &self.first_seen, out, &mut facts);
        if out.len() > first_new || !facts.is_empty() {
            self.judge_and_enrich(out, first_new, facts);
        }
        let access_to = if flush { END_OF_INPUT } else { self.clock.of_signal(Signal::Activity) };
        self.access.advance_to(access_to);
    }

    /// Judges the facts the watermark has passed (data flows, expiry
    /// checks, registry events), and adds what the access model says of
    /// each new alert's principal, as of the end of its window: its groups,
    /// the privileges a reviewer should look at first, and a higher
    /// severity for admins when the detector asks for it. Everything due at
    /// this watermark happened after the model's time, so taking facts and
    /// alerts in time order never needs the model to go back. (Cost alerts
    /// close a day behind the audit stream: they see the model as the audit
    /// stream has advanced it.)
    fn judge_and_enrich(&mut self, out: &mut Vec<Alert>, first_new: usize, facts: Vec<(i64, usize, Pending)>) {
        enum Item {
            Alert(usize),
            Fact(usize, Pending),
            Done,
        }
        let mut items: Vec<(i64, Item)> = Vec::with_capacity(out.len() - first_new + facts.len());
        for (i, a) in out.iter().enumerate().skip(first_new) {
            items.push((EventTime::parse(&a.window_end).map_or(i64::MIN, |t| t.0), Item::Alert(i)));
        }
        items.extend(facts.into_iter().map(|(t, d, f)| (t, Item::Fact(d, f))));
        // Stable: alerts keep their order among equals, facts come in time
        // order, and in detector order at one time.
        items.sort_by_key(|(t, _)| *t);
        let mut at = 0;
        while at < items.len() {
            let (time, item) = std::mem::replace(&mut items[at], (0, Item::Done));
            at += 1;
            self.access.advance_to(EventTime(time));
            let judged = match item {
                Item::Fact(d, fact) => self.detectors.judge(d, time, &fact, &self.access),
                Item::Alert(i) => {
                    self.enrich_one(&mut out[i]);
                    None
                }
                Item::Done => None,
            };
            if let Some(alert) = judged {
                // A rule's alert ends a millisecond after its fact; it is
                // enriched as of then, in its turn.
                out.push(alert);
                let end = time + 1;
                let pos = at + items[at..].partition_point(|(t, _)| *t <= end);
                items.insert(pos, (end, Item::Alert(out.len() - 1)));
            }
        }
    }

    fn enrich_one(&self, a: &mut Alert) {
        a.context.groups = self.access.groups_of(&a.principal);
        a.context.privileges = self.access.privileges_of(&a.principal, MAX_PRIVILEGES_LISTED);
        let Some(def) = self.config.definitions.iter().find(|d| d.name == a.detector) else { return };
        if let Some(severity) = def.admin_severity
            && severity > a.severity
            && self.access.is_admin(&a.principal)
        {
            a.severity = severity;
            a.summary.push_str(" It holds admin rights, which raises the severity.");
        }
        if let Some(severity) = def.personal_data_severity
            && severity > a.severity
        {
            let tables = self.access.personal_tables_readable_by(&a.principal);
            if let Some(first) = tables.first() {
                a.severity = severity;
                a.context.privileges.insert(0, format!("reads personal data in {}", tables.join(", ")));
                a.context.privileges.truncate(MAX_PRIVILEGES_LISTED);
                a.summary.push_str(&format!(" It may read personal data ({first}), which raises the severity."));
            }
        }
        a.rescore();
    }

    fn learn_job_owner(&mut self, ev: &Event) {
        let owner = ev.charged_principal();
        let jobs = self.job_owners.entry(ev.workspace).or_default();
        if jobs.get(ev.job_id.as_str()).is_none_or(|known| **known != *owner) {
            jobs.insert(ev.job_id.as_str().into(), owner.into());
        }
    }

    /// A finished run: scored by the job-runtime detectors under its run-as
    /// principal (from the run's own events, else the job's known owner).
    fn job_run(&mut self, run: JobRun) {
        let owner = if run.principal.is_empty() {
            match self.job_owners.get(&run.workspace).and_then(|jobs| jobs.get(run.job_id.as_str())) {
                Some(o) => o.to_string(),
                None => {
                    self.stats.runs_without_principal += 1;
                    return;
                }
            }
        } else {
            run.principal.clone()
        };
        intern_seen(&mut self.names, &mut self.first_seen, &owner, run.start);
        self.detectors.observe_run(&run, &owner, &self.clock);
    }

    /// A billing row's list price, counted as priced or not; the cost
    /// detectors sum it per run-as principal and hour.
    fn price_of(&mut self, ev: &Event) -> Option<f64> {
        let start = if ev.start.0 != 0 { ev.start } else { EventTime(ev.time.0 - 1) };
        let price = self.prices.price(&ev.sku, start);
        match price {
            Some(_) => self.stats.usage_priced += 1,
            None => self.stats.usage_unpriced += 1,
        }
        price
    }

    /// Drops alerts (from index `start`) whose window begins before `from`
    /// (those windows only warm the baselines up) or that are not about
    /// `--principal`. Every principal's events still reach the detectors:
    /// a newcomer is judged against its peers, so the alerts for one
    /// principal are the ones a full replay raises for it.
    fn keep_alerts_from(&mut self, start: usize, out: &mut Vec<Alert>) {
        // Called after every event; almost always nothing was raised.
        if start == out.len() {
            return;
        }
        let from = self.config.from.map(|f| f.to_string());
        let principal = self.config.principal.as_deref();
        let mut i = start;
        while i < out.len() {
            let early = from.as_deref().is_some_and(|f| out[i].window_start.as_str() < f);
            let other = principal.is_some_and(|p| out[i].principal != p);
            if early || other || self.config.allowlist.drops(&out[i]) {
                out.remove(i);
            } else {
                i += 1;
            }
        }
        for a in &out[start..] {
            *self.stats.alerts_by_detector.entry(a.detector.clone()).or_default() += 1;
        }
    }

    /// End of input: closes every open bucket.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let before = out.len();
        self.advance(true, out);
        self.keep_alerts_from(before, out);
        self.refresh_stats();
        self.stats.allowlisted = self
            .config
            .allowlist
            .entries
            .iter()
            .map(|e| {
                let detector = e.detector.as_deref().unwrap_or("*");
                (format!("{} {detector} (owner {}, until {})", e.principal, e.owner, e.expires), e.dropped)
            })
            .collect();
        self.stats.runs_unpaired = self.runs.unpaired;
        self.stats.runs_abandoned = self.runs.abandoned;
        self.stats.principals = self.names.len() as u64;
    }

    /// Brings the counters the detectors keep (late offers, buckets
    /// scored, corrections) into `stats`. Cheap (a sum over detectors):
    /// live mode calls it every second, so the counters move while it runs.
    pub fn refresh_stats(&mut self) {
        let c = self.detectors.counters();
        let s = &mut self.stats;
        s.late_offers = c.late;
        s.buckets_scored = c.buckets_scored;
        s.corrections = c.corrections;
        s.verdicts_changed = c.verdicts_changed;
        s.dedup_ids = self.dedup.len() as u64;
        s.dedup_evicted = self.dedup.evicted();
    }

    /// The newest event time seen, and the lateness per shape.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Principals with state.
    pub fn principals(&self) -> usize {
        self.names.len()
    }

    pub fn detectors(&self) -> &Detectors {
        &self.detectors
    }
}

/// Errors that stop a replay (bad input never does).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// What `auditwatch replay` is asked to do.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub inputs: Vec<PathBuf>,
    pub alerts_out: Option<PathBuf>,
    pub quarantine: Option<PathBuf>,
    pub max_record_bytes: usize,
    pub progress: bool,
    /// Threads decoding each stream: 1 decodes on the scoring thread (see
    /// `source::chunked` and `source::batched`).
    pub threads: usize,
    /// Sort the whole input by event time first (the default), so that
    /// row order does not matter; `None` replays as delivered, the way
    /// live mode would see it.
    pub sort: Option<SortOptions>,
}

/// How replay orders its input in bounded memory (see `source::sort`).
#[derive(Debug, Clone)]
pub struct SortOptions {
    /// Encoded events held in memory before a sorted run is spilled.
    pub memory_bytes: usize,
    /// Where the runs go (a fresh directory inside, removed at the end).
    pub spill_dir: PathBuf,
}

impl Default for SortOptions {
    fn default() -> Self {
        SortOptions { memory_bytes: crate::source::sort::DEFAULT_MEMORY_BYTES, spill_dir: std::env::temp_dir() }
    }
}

/// The result of a replay.
#[derive(Debug)]
pub struct ReplayReport {
    pub stats: Stats,
    pub alerts: Vec<Alert>,
    pub seconds: f64,
    /// Input files that could not be opened at all.
    pub unreadable_files: Vec<String>,
    /// Bytes the sort spilled to disk (0 when the input fit in memory).
    pub spilled_bytes: u64,
    /// How the input was ordered, for the summary.
    pub order: &'static str,
}

/// Replays files through the pipeline. Files are grouped into streams by
/// folder and by the shape of their first record; list-price streams are
/// read first (they price everything after them), then every other
/// record, sorted by event time (see [`SortOptions`]) or merged as
/// delivered.
pub fn replay(opts: &ReplayOptions, config: PipelineConfig) -> Result<ReplayReport, ReplayError> {
    replay_to(opts, config, &mut FanOut::none(), None)
}

/// Where one replay's events and alerts go.
struct ReplayRun<'a> {
    pipeline: Pipeline,
    quarantine: Option<QuarantineFile>,
    sink: Option<AlertFile>,
    sinks: &'a mut FanOut,
    metrics: Option<&'a mut crate::telemetry::metrics::Metrics>,
    alerts: Vec<Alert>,
    all_alerts: Vec<Alert>,
    records: u64,
    scored_published: u64,
    /// Alerts are kept back (not written, not sent) until the pass is
    /// known to be the last: a nearly-sorted pass may have to start over.
    hold: bool,
    /// Quarantine metrics were counted by an abandoned pass already.
    quarantine_counted: bool,
}

impl ReplayRun<'_> {
    fn event(&mut self, ev: &Event) -> Result<(), ReplayError> {
        self.records += 1;
        if let Err(reason) = self.pipeline.event(ev, &mut self.alerts)
            && let Some(q) = self.quarantine.as_mut()
        {
            let origin = if reason == QuarantineReason::Late { "late" } else { "dedup" };
            let position = Position { origin: origin.into(), record: self.records };
            q.write(reason, &position, describe(ev).as_bytes())?;
        }
        self.emit()?;
        if self.records.is_multiple_of(16_384)
            && let Some(m) = self.metrics.as_deref_mut()
        {
            publish_replay(m, &mut self.pipeline, &mut self.scored_published);
        }
        Ok(())
    }

    fn quarantined(&mut self, reason: QuarantineReason, raw: &[u8], position: &Position) -> Result<(), ReplayError> {
        self.records += 1;
        self.pipeline.quarantined(reason);
        if !self.quarantine_counted
            && let Some(m) = self.metrics.as_deref_mut()
        {
            m.quarantined.with_label_values(&[reason.name()]).inc();
            m.records.with_label_values(&["quarantined"]).inc();
        }
        if let Some(q) = self.quarantine.as_mut() {
            q.write(reason, position, raw)?;
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<(), ReplayError> {
        if self.alerts.is_empty() {
            return Ok(());
        }
        if self.hold {
            self.all_alerts.append(&mut self.alerts);
            return Ok(());
        }
        if let Some(m) = self.metrics.as_deref_mut() {
            for a in &self.alerts {
                m.alerts.with_label_values(&[&a.detector, a.severity.name()]).inc();
            }
        }
        Ok(emit(&mut self.alerts, &mut self.sink, self.sinks, &mut self.all_alerts)?)
    }
}

/// How one pass over the input orders it.
enum Ordering {
    /// As delivered, trusting that no event is more than this many ms
    /// behind the newest before it (the smallest lateness of any detector:
    /// within it, the pipeline's alerts do not depend on order). Gives up
    /// on the first event that is.
    Trusting(i64),
    /// The full external sort (with `ReplayOptions::sort`).
    Sort,
    /// As the files hold it.
    AsDelivered,
}

/// [`replay`], handing every alert to `sinks` (the caller drains them with
/// `FanOut::finish`) and counting into `metrics` (served with `--serve`).
///
/// With sorting on, a first pass trusts the input to be in event-time
/// order up to the smallest lateness of any detector. Within that bound
/// every detector gives the alerts of the sorted input (buckets close in
/// time and name order, sums are exact, evidence is chosen by time and id:
/// `tests/reorder.rs` holds the pipeline to it), so the pass scores records
/// as it reads them, in no more memory than as delivered, but holds its
/// alerts back. On the first record further behind, the pass is abandoned
/// and the input is read again through the external sort. So the alerts
/// are those of the sorted input either way; only disordered input pays for
/// the sort and a second read.
pub fn replay_to(
    opts: &ReplayOptions,
    config: PipelineConfig,
    sinks: &mut FanOut,
    mut metrics: Option<&mut crate::telemetry::metrics::Metrics>,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    if opts.sort.is_none() {
        return replay_pass(opts, config, sinks, metrics, Ordering::AsDelivered, false, started)?
            .ok_or_else(unreachable_disorder);
    }
    let tolerance = trusted_disorder_ms(&config);
    if let Some(report) =
        replay_pass(opts, config.clone(), sinks, metrics.as_deref_mut(), Ordering::Trusting(tolerance), false, started)?
    {
        return Ok(report);
    }
    tracing::info!("input is not in event-time order: reading it again through the external sort");
    replay_pass(opts, config, sinks, metrics, Ordering::Sort, true, started)?.ok_or_else(unreachable_disorder)
}

/// The disorder within which order cannot change an alert: the smallest
/// lateness any detector may be given (its own, or a shape's that can feed
/// it).
fn trusted_disorder_ms(config: &PipelineConfig) -> i64 {
    let shapes = Shape::ALL.into_iter().filter(|s| *s != Shape::ListPrice).map(|s| config.lateness.of(s));
    let own = config.definitions.iter().filter_map(|d| d.lateness_ms);
    shapes.chain(own).min().unwrap_or(0)
}

/// Only a trusting pass gives up; the others always finish.
fn unreachable_disorder() -> ReplayError {
    ReplayError::Source(SourceError::Io {
        path: "sort".into(),
        source: std::io::Error::other("a sorted pass reported disorder"),
    })
}

/// One pass over the input. `None` when a trusting pass met disorder.
fn replay_pass(
    opts: &ReplayOptions,
    config: PipelineConfig,
    sinks: &mut FanOut,
    metrics: Option<&mut crate::telemetry::metrics::Metrics>,
    ordering: Ordering,
    second: bool,
    started: Instant,
) -> Result<Option<ReplayReport>, ReplayError> {
    let files = files::discover(&opts.inputs)?;
    let total_bytes: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let groups = files::group_streams(files, opts.max_record_bytes);
    let (prices, others): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| g.shape == Some(Shape::ListPrice));

    let keep = Arc::new(KeepParams::for_definitions(&config.definitions));
    let hold = matches!(ordering, Ordering::Trusting(_));
    let mut run = ReplayRun {
        pipeline: Pipeline::new(config),
        quarantine: opts.quarantine.as_deref().map(QuarantineFile::create).transpose()?,
        sink: None,
        sinks,
        metrics,
        alerts: Vec::new(),
        all_alerts: Vec::new(),
        records: 0,
        scored_published: 0,
        hold,
        quarantine_counted: second,
    };
    if !hold {
        run.sink = opts.alerts_out.as_deref().map(AlertFile::create).transpose()?;
    }
    // A second pass shows the first one's bytes as done.
    let progress = progress_bar(opts.progress, if second { 2 * total_bytes } else { total_bytes });
    if second {
        progress.set_position(total_bytes);
    }
    let chains = |groups: Vec<files::StreamFiles>| -> Vec<Box<dyn RecordStream + Send>> {
        groups.into_iter().map(|g| open_stream(g.files, opts, &keep)).collect()
    };
    let phases = [chains(prices), chains(others)];
    let mut bytes_done = 0;
    let mut spilled_bytes = 0;
    let mut slot = Event::default();
    let spill_err = |e| SourceError::Io { path: "sort".into(), source: e };
    for (phase, streams) in phases.into_iter().enumerate() {
        let mut merge = Merge::new(streams);
        // List prices (the first phase) are few, valid from their start
        // times in any order: they are always sorted whole.
        let sorted = match ordering {
            Ordering::Sort => true,
            Ordering::Trusting(_) => phase == 0,
            Ordering::AsDelivered => false,
        };
        let mut sorter = opts.sort.as_ref().filter(|_| sorted).map(|s| Sorter::new(s.memory_bytes, &s.spill_dir));
        let trust = match ordering {
            Ordering::Trusting(ms) if phase > 0 => Some(ms),
            _ => None,
        };
        let mut newest = i64::MIN;
        let mut read: u64 = 0;
        while let Some(item) = merge.next() {
            read += 1;
            match item {
                Merged::Event(ev) => {
                    if let Some(s) = sorter.as_mut() {
                        s.push(ev).map_err(spill_err)?;
                    } else if let Some(ms) = trust {
                        if ev.time.0 < newest.saturating_sub(ms) {
                            progress.finish_and_clear();
                            return Ok(None);
                        }
                        newest = newest.max(ev.time.0);
                        run.event(ev)?;
                    } else {
                        run.event(ev)?;
                    }
                }
                Merged::Quarantined { reason, raw, position } => run.quarantined(reason, raw, &position)?,
            }
            if read.is_multiple_of(16_384) {
                progress.set_position(if second { total_bytes } else { 0 } + bytes_done + merge.bytes_read());
                progress.set_message(format!("{:.0} records/s", read as f64 / started.elapsed().as_secs_f64()));
            }
        }
        bytes_done += merge.bytes_read();
        if let Some(s) = sorter {
            progress.set_message("scoring in event-time order");
            let mut sorted = s.finish().map_err(spill_err)?;
            spilled_bytes += sorted.spilled_bytes();
            while sorted.next(&mut slot).map_err(spill_err)? {
                run.event(&slot)?;
            }
        }
    }
    let mut pipeline = run.pipeline;
    pipeline.finish(&mut run.alerts);
    run.pipeline = pipeline;
    if let Some(m) = run.metrics.as_deref_mut() {
        publish_replay(m, &mut run.pipeline, &mut run.scored_published);
    }
    run.emit()?;
    if run.hold {
        // The pass is the last: write and send what it held back.
        run.hold = false;
        run.sink = opts.alerts_out.as_deref().map(AlertFile::create).transpose()?;
        run.alerts = std::mem::take(&mut run.all_alerts);
        run.emit()?;
    }
    progress.finish_and_clear();
    if let Some(s) = run.sink {
        s.finish()?;
    }
    if let Some(q) = run.quarantine {
        q.finish()?;
    }
    let mut stats = run.pipeline.stats.clone();
    stats.bytes = bytes_done;
    Ok(Some(ReplayReport {
        stats,
        alerts: run.all_alerts,
        seconds: started.elapsed().as_secs_f64(),
        unreadable_files: Vec::new(),
        spilled_bytes,
        order: match ordering {
            Ordering::Trusting(_) => "in event-time order within the smallest lateness: scored as read, no sort needed",
            Ordering::Sort => "out of event-time order: read again and sorted in full",
            Ordering::AsDelivered => "as delivered (--as-delivered)",
        },
    }))
}

/// The cores this process may use (the default of `--threads`).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Opens one stream of files: decoded inline (`threads` 1), or by
/// `threads` workers per stream for JSON lines and one for Parquet. Every
/// stream hands its records over in file order, so what is scored does
/// not depend on the number of threads.
fn open_stream(files: Vec<PathBuf>, opts: &ReplayOptions, keep: &Arc<KeepParams>) -> Box<dyn RecordStream + Send> {
    let max = opts.max_record_bytes;
    if opts.threads <= 1 {
        return Box::new(FileChain::new(files, max).keeping(keep.clone()));
    }
    let all_lines = files.iter().all(|f| files::sniff(f).is_ok_and(|fmt| fmt != files::Format::Parquet));
    if all_lines {
        match ChunkedLines::spawn(files.clone(), max, opts.threads, keep.clone()) {
            Ok(s) => return Box::new(s),
            Err(e) => tracing::warn!(error = %e, "no decode threads; one thread for this stream"),
        }
    }
    Batched::spawn(Box::new(FileChain::new(files, max).keeping(keep.clone())))
}

/// A replay's counts into the served metrics.
fn publish_replay(m: &mut crate::telemetry::metrics::Metrics, pipeline: &mut Pipeline, scored_published: &mut u64) {
    pipeline.refresh_stats();
    m.publish("replay", &pipeline.stats);
    m.principals.set(pipeline.principals() as i64);
    let scored = pipeline.stats.events();
    m.records.with_label_values(&["scored"]).inc_by(scored.saturating_sub(*scored_published));
    *scored_published = scored;
}

fn emit(
    alerts: &mut Vec<Alert>,
    sink: &mut Option<AlertFile>,
    sinks: &mut FanOut,
    all: &mut Vec<Alert>,
) -> Result<(), SinkError> {
    for a in alerts.drain(..) {
        if let Some(s) = sink.as_mut() {
            s.write(&a)?;
        }
        sinks.accept(&a)?;
        all.push(a);
    }
    Ok(())
}

/// A duplicate's identifying fields, for the quarantine file.
fn describe(ev: &Event) -> String {
    serde_json::json!({
        "shape": ev.shape.map(|s| s.name()),
        "id": ev.id,
        "time": ev.time.to_string(),
        "principal": ev.principal,
        "service": ev.service,
        "action": ev.action,
    })
    .to_string()
}

fn progress_bar(enabled: bool, total_bytes: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total_bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
