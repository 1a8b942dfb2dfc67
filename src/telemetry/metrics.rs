//! The metrics of every long-running mode (`run`, and `replay`/`demo` with
//! `--serve`), declared in one place, in a `prometheus` registry served by
//! `telemetry::serve`. Every name is `auditwatch_*` with its unit, counters
//! end in `_total`; labels are closed sets (outcome, shape, quarantine
//! reason, detector and severity from the definitions, the assigned topic
//! partitions, sink names from the config): never a principal, an IP or a
//! query. Latencies are recorded with `hdrhistogram` and exported as
//! summaries (p50, p90, p99, p99.9), so Grafana reads quantiles directly.

use super::Stats;
use crate::decode::QuarantineReason;
use crate::event::Shape;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::{Arc, Mutex};

/// A latency distribution recorded with `hdrhistogram` (milliseconds, 1 ms
/// to a day, 3 significant digits) and exported as a Prometheus summary in
/// seconds: `{quantile="0.5"}` … `{quantile="0.999"}`, `_sum`, `_count`.
#[derive(Clone)]
pub struct HdrSummary {
    desc: Desc,
    histogram: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    sum_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl HdrSummary {
    pub fn new(name: &str, help: &str) -> Result<HdrSummary, prometheus::Error> {
        let histogram = hdrhistogram::Histogram::new_with_bounds(1, 86_400_000, 3)
            .map_err(|e| prometheus::Error::Msg(format!("{name}: {e}")))?;
        Ok(HdrSummary {
            desc: Desc::new(name.into(), help.into(), Vec::new(), Default::default())?,
            histogram: Arc::new(Mutex::new(histogram)),
            sum_ms: Arc::default(),
        })
    }

    /// Records one latency in milliseconds (clamped to the histogram's range).
    pub fn record_ms(&self, ms: u64) {
        let ms = ms.clamp(1, 86_400_000);
        if let Ok(mut h) = self.histogram.lock() {
            let _ = h.record(ms);
        }
        self.sum_ms.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// p50, p99 and max in ms, and the count (for the exit summary).
    pub fn snapshot(&self) -> Option<(u64, u64, u64, u64)> {
        let h = self.histogram.lock().ok()?;
        (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max(), h.len()))
    }
}

impl Collector for HdrSummary {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok(h) = self.histogram.lock() else { return Vec::new() };
        let mut summary = proto::Summary::default();
        summary.set_sample_count(h.len());
        summary.set_sample_sum(self.sum_ms.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0);
        let quantiles = [0.5, 0.9, 0.99, 0.999]
            .iter()
            .map(|q| {
                let mut quantile = proto::Quantile::default();
                quantile.set_quantile(*q);
                quantile.set_value(if h.is_empty() { 0.0 } else { h.value_at_quantile(*q) as f64 / 1000.0 });
                quantile
            })
            .collect();
        summary.set_quantile(quantiles);
        let mut metric = proto::Metric::default();
        metric.set_summary(summary);
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::SUMMARY);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// Events decoded, by shape.
    pub events: IntCounterVec,
    /// Events late beyond every allowed lateness, by shape.
    pub late: IntCounterVec,
    pub buckets_scored: IntCounter,
    pub unknown_service: IntCounter,
    pub corrections: IntCounter,
    pub verdicts_changed: IntCounter,
    pub dedup_ids: IntGauge,
    /// From a window's end to the wall time its bucket was judged (buckets
    /// that raised an alert).
    pub bucket_close: HdrSummary,
    /// From the producer timestamp of the record that closed a bucket to the alert written (`run`).
    pub end_to_end: HdrSummary,
    pub state_bytes: IntGauge,
    pub checkpoint_age: IntGauge,
    /// Stats already published, per pipeline (partition), to add deltas.
    published: std::collections::HashMap<String, Stats>,
    pub records: IntCounterVec,
    pub quarantined: IntCounterVec,
    pub alerts: IntCounterVec,
    pub alerts_repeated: IntCounter,
    pub checkpoints: IntCounter,
    pub commit_failures: IntCounter,
    pub last_checkpoint: IntGauge,
    pub checkpoint_bytes: IntGauge,
    pub partitions: IntGauge,
    pub lag: IntGaugeVec,
    pub principals: IntGauge,
    pub latency: Histogram,
}

impl Metrics {
    /// Adds what `stats` counted since the last call for the same `key` (a
    /// partition, or the replay) to the counters.
    pub fn publish(&mut self, key: &str, stats: &Stats) {
        let last = self.published.entry(key.to_owned()).or_default();
        for shape in Shape::ALL {
            let i = shape.index();
            let delta = stats.events_by_shape[i].saturating_sub(last.events_by_shape[i]);
            if delta > 0 {
                self.events.with_label_values(&[shape.name()]).inc_by(delta);
            }
        }
        for shape in Shape::ALL {
            let i = shape.index();
            let delta = stats.late_by_shape[i].saturating_sub(last.late_by_shape[i]);
            if delta > 0 {
                self.late.with_label_values(&[shape.name()]).inc_by(delta);
            }
        }
        self.buckets_scored.inc_by(stats.buckets_scored.saturating_sub(last.buckets_scored));
        self.unknown_service.inc_by(stats.unknown_service_events.saturating_sub(last.unknown_service_events));
        self.corrections.inc_by(stats.corrections.saturating_sub(last.corrections));
        self.verdicts_changed.inc_by(stats.verdicts_changed.saturating_sub(last.verdicts_changed));
        last.events_by_shape = stats.events_by_shape;
        last.late_by_shape = stats.late_by_shape;
        last.buckets_scored = stats.buckets_scored;
        last.unknown_service_events = stats.unknown_service_events;
        last.corrections = stats.corrections;
        last.verdicts_changed = stats.verdicts_changed;
        last.dedup_ids = stats.dedup_ids;
        self.dedup_ids.set(self.published.values().map(|s| s.dedup_ids).sum::<u64>() as i64);
    }

    /// Forgets a pipeline's published figures (its partition was revoked;
    /// a later owner starts again from its checkpoint's figures).
    pub fn forget(&mut self, key: &str, stats: Option<&Stats>) {
        if let Some(s) = stats {
            self.publish(key, s);
        }
        self.published.remove(key);
    }

    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let build = IntGaugeVec::new(
            Opts::new("auditwatch_build_info", "Always 1; the labels say which build runs."),
            &["version"],
        )?;
        registry.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let lag = IntGaugeVec::new(
            Opts::new(
                "auditwatch_consumer_lag_records",
                "Records in an assigned partition not yet read (high watermark minus position), at the last checkpoint.",
            ),
            &["topic", "partition"],
        )?;
        registry.register(Box::new(lag.clone()))?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "auditwatch_produce_to_alert_seconds",
                "From the producer timestamp of the record that closed a bucket to the alert written.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )?;
        registry.register(Box::new(latency.clone()))?;
        let events =
            IntCounterVec::new(Opts::new("auditwatch_events_total", "Events decoded, by input shape."), &["shape"])?;
        registry.register(Box::new(events.clone()))?;
        for shape in Shape::ALL {
            events.with_label_values(&[shape.name()]);
        }
        let quarantined = IntCounterVec::new(
            Opts::new("auditwatch_quarantined_records_total", "Records refused, by reason."),
            &["reason"],
        )?;
        registry.register(Box::new(quarantined.clone()))?;
        for reason in QuarantineReason::ALL.into_iter().filter(|r| *r != QuarantineReason::Late) {
            quarantined.with_label_values(&[reason.name()]);
        }
        let late = IntCounterVec::new(
            Opts::new(
                "auditwatch_late_events_total",
                "Events late beyond every allowed lateness (each detector that wanted one had closed its bucket), by input shape; written to the quarantine file with reason `late`, never scored.",
            ),
            &["shape"],
        )?;
        registry.register(Box::new(late.clone()))?;
        for shape in Shape::ALL {
            late.with_label_values(&[shape.name()]);
        }
        let bucket_close = HdrSummary::new(
            "auditwatch_bucket_close_delay_seconds",
            "From the end of a window (event time) to the wall time its bucket was judged, for buckets that raised an alert: allowed lateness plus how late the input arrives.",
        )?;
        registry.register(Box::new(bucket_close.clone()))?;
        let end_to_end = HdrSummary::new(
            "auditwatch_end_to_end_latency_seconds",
            "From the producer timestamp of the record that closed a bucket to the alert written (hdrhistogram quantiles).",
        )?;
        registry.register(Box::new(end_to_end.clone()))?;
        registry.register(Box::new(super::process::ProcessCollector::new()?))?;
        Ok(Metrics {
            events,
            late,
            buckets_scored: counter("auditwatch_buckets_scored_total", "Buckets closed and scored.")?,
            unknown_service: counter(
                "auditwatch_unknown_service_events_total",
                "Audit events of services the catalogue does not know, scored by the service-independent detectors (activity, source, access rules).",
            )?,
            corrections: counter(
                "auditwatch_billing_corrections_total",
                "Billing RETRACTION/RESTATEMENT rows applied to hours already judged.",
            )?,
            verdicts_changed: counter(
                "auditwatch_billing_verdicts_changed_total",
                "Hours whose verdict a billing correction changed (each raised an alert naming the alert it corrects).",
            )?,
            dedup_ids: gauge("auditwatch_dedup_ids", "Record ids the duplicate filter holds, over the pipelines.")?,
            bucket_close,
            end_to_end,
            state_bytes: gauge(
                "auditwatch_state_bytes",
                "Bytes of baseline state held, as its last checkpoint measured it, over the partitions held.",
            )?,
            checkpoint_age: gauge(
                "auditwatch_checkpoint_age_seconds",
                "Seconds since the last checkpoint (0 before the first).",
            )?,
            published: Default::default(),
            records: counter_vec(
                "auditwatch_records_total",
                "Records read from Kafka, by outcome: scored, copy (broadcast reference data), skipped (below a restored checkpoint), quarantined.",
                &["outcome"],
            )?,
            quarantined,
            alerts: counter_vec(
                "auditwatch_alerts_total",
                "Alerts written, by detector and severity.",
                &["detector", "severity"],
            )?,
            alerts_repeated: counter(
                "auditwatch_alerts_repeated_total",
                "Alerts raised again after a restart and not written (the alert log already held them).",
            )?,
            checkpoints: counter(
                "auditwatch_checkpoints_total",
                "Checkpoints taken (state written, offsets committed).",
            )?,
            commit_failures: counter(
                "auditwatch_commit_failures_total",
                "Offset commits that failed (retried at the next checkpoint).",
            )?,
            last_checkpoint: gauge(
                "auditwatch_last_checkpoint_timestamp_seconds",
                "Unix time of the last checkpoint; time() minus it is the checkpoint age.",
            )?,
            checkpoint_bytes: gauge(
                "auditwatch_checkpoint_bytes",
                "Bytes of partition state written by the last checkpoint.",
            )?,
            partitions: gauge("auditwatch_partitions_assigned", "Partitions this instance holds.")?,
            lag,
            principals: gauge("auditwatch_principals_tracked", "Principals with state, over the partitions held.")?,
            latency,
            registry,
        })
    }
}
