//! Telemetry: the counters every stage reports into, and the run summary.
//!
//! Counters are plain integers indexed by closed enums (shape, quarantine
//! reason), so counting costs an add on the hot path and labels stay
//! bounded: never a principal, an IP or an error text. `serve` exposes a
//! Prometheus registry over HTTP (live mode's metrics: `live::metrics`).

pub mod metrics;
pub mod process;
pub mod serve;

use crate::decode::QuarantineReason;
use crate::event::Shape;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Counts of one run.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Records decoded, by shape (index: [`Shape::index`]).
    pub events_by_shape: [u64; Shape::ALL.len()],
    /// Records refused, by reason (index: [`QuarantineReason::index`]).
    pub quarantined_by_reason: [u64; QuarantineReason::ALL.len()],
    /// Events outside `--from`/`--to` or not for `--principal`.
    pub filtered: u64,
    /// Events late beyond every bound: each detector that wanted one had
    /// closed its bucket already. By shape (index: [`Shape::index`]).
    pub late_by_shape: [u64; Shape::ALL.len()],
    /// Offers of an event to a detector it reached too late (an event late
    /// for two detectors counts twice; late for only some is not lost).
    pub late_offers: u64,
    /// Audit events of services the catalogue does not know, decoded and
    /// scored by the service-independent detectors; the first
    /// [`UNKNOWN_SERVICES_LISTED`] names with their counts, the rest under
    /// `(other)`.
    pub unknown_service_events: u64,
    pub unknown_services: BTreeMap<String, u64>,
    /// Billing correction rows applied to hours already judged, and the
    /// re-judgments that changed a verdict.
    pub corrections: u64,
    pub verdicts_changed: u64,
    /// Record ids the duplicate filter holds, and ids it forgot before
    /// their window ended because it was full.
    pub dedup_ids: u64,
    pub dedup_evicted: u64,
    /// Events that fed at least one signal.
    pub with_signal: u64,
    /// Job runs rebuilt (start and end paired, or a timeline row with a result).
    pub job_runs_rebuilt: u64,
    /// Finished runs whose run-as principal was not known (a
    /// `job_run_timeline` run before any event naming its job's owner).
    pub runs_without_principal: u64,
    /// Run ends whose start never arrived (it was before the input began).
    pub runs_unpaired: u64,
    /// Run starts never ended within `max_run_hours`.
    pub runs_abandoned: u64,
    /// Billing rows priced with a list price / left as DBUs only.
    pub usage_priced: u64,
    pub usage_unpriced: u64,
    /// Buckets closed and scored.
    pub buckets_scored: u64,
    /// Alerts raised, by detector.
    pub alerts_by_detector: BTreeMap<String, u64>,
    /// Alerts dropped by each allowlist entry (its description, count).
    pub allowlisted: Vec<(String, u64)>,
    /// Input bytes read.
    pub bytes: u64,
    /// Principals tracked.
    pub principals: u64,
}

/// Distinct unknown service names counted by name (the names come from
/// the input: a flood of made-up names must not grow the summary).
pub const UNKNOWN_SERVICES_LISTED: usize = 32;

impl Stats {
    /// Events late beyond every bound, over all shapes.
    pub fn late(&self) -> u64 {
        self.late_by_shape.iter().sum()
    }

    /// Counts an event of a service not in the catalogue.
    pub fn unknown_service(&mut self, service: &str) {
        self.unknown_service_events += 1;
        if let Some(n) = self.unknown_services.get_mut(service) {
            *n += 1;
        } else if self.unknown_services.len() < UNKNOWN_SERVICES_LISTED {
            self.unknown_services.insert(service.to_owned(), 1);
        } else {
            *self.unknown_services.entry("(other)".to_owned()).or_default() += 1;
        }
    }

    pub fn events(&self) -> u64 {
        self.events_by_shape.iter().sum()
    }

    pub fn quarantined(&self) -> u64 {
        self.quarantined_by_reason.iter().sum()
    }

    pub fn alerts(&self) -> u64 {
        self.alerts_by_detector.values().sum()
    }

    /// The human summary printed at the end of a run.
    pub fn render(&self, seconds: f64) -> String {
        let mut s = String::new();
        let records = self.events() + self.quarantined();
        let _ = writeln!(
            s,
            "records  {records} in {seconds:.2}s ({:.0} records/s, {:.1} MB/s)",
            records as f64 / seconds.max(1e-9),
            self.bytes as f64 / 1e6 / seconds.max(1e-9)
        );
        let _ = writeln!(s, "events by shape");
        for shape in Shape::ALL {
            let n = self.events_by_shape[shape.index()];
            if n > 0 {
                let _ = writeln!(s, "  {:<36} {n}", shape.name());
            }
        }
        let _ = writeln!(s, "quarantined by reason ({} total)", self.quarantined());
        for reason in QuarantineReason::ALL {
            let n = self.quarantined_by_reason[reason.index()];
            if n > 0 {
                let _ = writeln!(s, "  {:<36} {n}", reason.name());
            }
        }
        let _ = writeln!(
            s,
            "signals  events with a signal {}, late {}, filtered {}, principals {}",
            self.with_signal,
            self.late(),
            self.filtered,
            self.principals
        );
        if self.late() > 0 {
            let by: Vec<String> = Shape::ALL
                .iter()
                .filter(|sh| self.late_by_shape[sh.index()] > 0)
                .map(|sh| format!("{} {}", sh.name(), self.late_by_shape[sh.index()]))
                .collect();
            let _ = writeln!(s, "late     beyond every allowed lateness, by shape: {}", by.join(", "));
        }
        if self.unknown_service_events > 0 {
            let names: Vec<String> = self.unknown_services.iter().map(|(n, c)| format!("{n} {c}")).collect();
            let _ = writeln!(
                s,
                "unknown services  {} events scored by the service-independent detectors: {}",
                self.unknown_service_events,
                names.join(", ")
            );
        }
        if self.corrections > 0 {
            let _ = writeln!(
                s,
                "billing corrections  {} rows applied to hours already judged, {} verdicts changed",
                self.corrections, self.verdicts_changed
            );
        }
        let _ = writeln!(
            s,
            "         job runs rebuilt {} ({} without a known run-as principal; ends without a start {}, starts never ended {}), usage rows priced {} / DBUs only {}, buckets scored {}",
            self.job_runs_rebuilt,
            self.runs_without_principal,
            self.runs_unpaired,
            self.runs_abandoned,
            self.usage_priced,
            self.usage_unpriced,
            self.buckets_scored
        );
        let _ = writeln!(s, "alerts by detector ({} total)", self.alerts());
        for (d, n) in &self.alerts_by_detector {
            let _ = writeln!(s, "  {d:<36} {n}");
        }
        if !self.allowlisted.is_empty() {
            let total: u64 = self.allowlisted.iter().map(|(_, n)| n).sum();
            let _ = writeln!(s, "allowlisted alerts by entry ({total} total, not in the alerts above)");
            for (entry, n) in &self.allowlisted {
                let _ = writeln!(s, "  {entry:<72} {n}");
            }
        }
        s
    }
}
