//! Per-sink delivery metrics. The `sink` label is a sink's configured name
//! (a closed set from the config file); `reason` is a closed set of failure
//! kinds. Never an alert id, a principal, a URL or a response text.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Why a request failed, as a metric label.
pub const FAILURE_REASONS: &[&str] = &["connect", "timeout", "io", "http_429", "http_5xx", "http_4xx", "item_rejected"];

#[derive(Clone)]
pub struct SinkMetrics {
    pub accepted: IntCounterVec,
    pub filtered: IntCounterVec,
    pub repeated: IntCounterVec,
    pub delivered: IntCounterVec,
    pub retries: IntCounterVec,
    pub failed: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    pub delivery_seconds: HistogramVec,
}

/// One sink's handles, resolved once.
#[derive(Clone)]
pub struct ForSink {
    pub accepted: IntCounter,
    pub filtered: IntCounter,
    pub repeated: IntCounter,
    pub delivered: IntCounter,
    pub retries: IntCounter,
    failed: IntCounterVec,
    name: String,
    pub dead_lettered: IntCounter,
    pub queue_depth: IntGauge,
    pub delivery_seconds: Histogram,
}

impl ForSink {
    pub fn failed(&self, reason: &'static str) {
        self.failed.with_label_values(&[self.name.as_str(), reason]).inc();
    }
}

impl SinkMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "auditwatch_sink_queue_depth",
                "Alerts accepted by a sink and not yet delivered or dead-lettered (its spool).",
            ),
            &["sink"],
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        let delivery_seconds = HistogramVec::new(
            HistogramOpts::new(
                "auditwatch_sink_delivery_seconds",
                "From an alert accepted by a sink to its delivery (retries and time in the spool included).",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0]),
            &["sink"],
        )?;
        registry.register(Box::new(delivery_seconds.clone()))?;
        Ok(SinkMetrics {
            accepted: counter(
                "auditwatch_sink_alerts_accepted_total",
                "Alerts a sink accepted (after its filter).",
                &["sink"],
            )?,
            filtered: counter(
                "auditwatch_sink_alerts_filtered_total",
                "Alerts a sink's filter (minimum severity, detectors) left out.",
                &["sink"],
            )?,
            repeated: counter(
                "auditwatch_sink_alerts_repeated_total",
                "Alerts raised again after a restart that the sink had already accepted (not sent twice).",
                &["sink"],
            )?,
            delivered: counter(
                "auditwatch_sink_alerts_delivered_total",
                "Alerts the receiver acknowledged.",
                &["sink"],
            )?,
            retries: counter(
                "auditwatch_sink_retries_total",
                "Requests sent again after a retryable failure.",
                &["sink"],
            )?,
            failed: counter(
                "auditwatch_sink_requests_failed_total",
                "Failed requests by reason: connect, timeout, io, http_429, http_5xx, http_4xx (not retried), item_rejected (a bulk item refused).",
                &["sink", "reason"],
            )?,
            dead_lettered: counter(
                "auditwatch_sink_alerts_dead_lettered_total",
                "Alerts the receiver refused for good (4xx), written to the sink's dead-letter file.",
                &["sink"],
            )?,
            queue_depth,
            delivery_seconds,
        })
    }

    pub fn for_sink(&self, name: &str) -> ForSink {
        let l = [name];
        // Failure series exist from the start, so dashboards show 0, not "no data".
        for r in FAILURE_REASONS {
            self.failed.with_label_values(&[name, r]);
        }
        ForSink {
            accepted: self.accepted.with_label_values(&l),
            filtered: self.filtered.with_label_values(&l),
            repeated: self.repeated.with_label_values(&l),
            delivered: self.delivered.with_label_values(&l),
            retries: self.retries.with_label_values(&l),
            failed: self.failed.clone(),
            name: name.to_owned(),
            dead_lettered: self.dead_lettered.with_label_values(&l),
            queue_depth: self.queue_depth.with_label_values(&l),
            delivery_seconds: self.delivery_seconds.with_label_values(&l),
        }
    }
}
