//! The metrics of `auditwatch run`, in a `prometheus` registry served by
//! `telemetry::serve`. Every name is `auditwatch_*`; labels are closed sets
//! (outcome, quarantine reason, detector and severity from the
//! definitions, the assigned topic partitions): never a principal, an IP or
//! a query.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct LiveMetrics {
    pub registry: Registry,
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

impl LiveMetrics {
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
        Ok(LiveMetrics {
            records: counter_vec(
                "auditwatch_records_total",
                "Records read from Kafka, by outcome: scored, copy (broadcast reference data), skipped (below a restored checkpoint), quarantined.",
                &["outcome"],
            )?,
            quarantined: counter_vec(
                "auditwatch_quarantined_records_total",
                "Records refused, by reason.",
                &["reason"],
            )?,
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
