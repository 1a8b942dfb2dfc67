//! Live mode: `auditwatch run` consumes Kafka topics in a consumer group.
//!
//! Each assigned partition gets a [`Pipeline`] of its own, so that what a
//! partition raises depends only on the partition's records, whichever
//! instance of the group holds it. Events of one principal must therefore
//! share a partition (see the README, "Live mode on Kafka": key records by
//! principal, or let `--repartition-topic` re-key them).
//!
//! Delivery: records are read, decoded and scored on one thread; alerts go
//! to the alert log at once. A checkpoint (every `checkpoint_seconds` or
//! `checkpoint_records`, on partition revocation and on shutdown) first
//! forces the alert log and the quarantine file to disk, then writes each
//! changed partition's state with the offset it covers (atomically, under
//! `--state-dir`, and to the changelog topic when one is set), and only then
//! commits that offset to the group. After a crash the partition restarts
//! from its checkpoint: records below the checkpoint's offset are skipped,
//! the ones after it are read again and raise the same alerts with the same
//! `alert_id`, which the alert log already holds and does not write twice.
//! So no alert is lost and none is duplicated.
//!
//! Back-pressure is by construction: one thread reads, scores and writes,
//! so a slow sink slows consumption (consumer lag grows) instead of memory.

mod changelog;
mod checkpoint;
pub mod config;
mod repartition;

pub use config::{LiveConfig, LiveConfigError};

use crate::alert::Alert;
use crate::decode::{QuarantineReason, decode_json_keeping};
use crate::event::Event;
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::sink::{AlertLog, DeliveryReport, FanOut, QuarantineFile, SinkError};
use crate::source::Position;
use checkpoint::{CheckpointStore, PartitionCheckpoint};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The header that marks a broadcast copy of a record (see
/// [`repartition`]): it feeds the partition's reference data (prices,
/// access model) and nothing else.
pub const COPY_HEADER: &str = "auditwatch-copy";

/// The header that marks the head of a record the repartition stage found
/// too large to forward (its value: the record's size in bytes).
pub const TOO_LARGE_HEADER: &str = "auditwatch-too-large";

/// Queues `record`, serving delivery reports while the producer's local
/// queue is full (back-pressure, not an error).
fn send_waiting<'a>(
    producer: &BaseProducer,
    mut record: BaseRecord<'a, str, [u8]>,
) -> Result<(), rdkafka::error::KafkaError> {
    use rdkafka::error::KafkaError::MessageProduction;
    use rdkafka::types::RDKafkaErrorCode::QueueFull;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((MessageProduction(QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::StoreError),
    #[error("{0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// Counters of a run, printed at the end and (with issue 7) exported.
#[derive(Debug, Default, Clone)]
pub struct LiveStats {
    pub records: u64,
    pub skipped_below_checkpoint: u64,
    pub copies: u64,
    pub quarantined: u64,
    pub alerts_written: u64,
    pub alerts_repeated: u64,
    pub checkpoints: u64,
    pub commit_failures: u64,
    pub partitions_restored: u64,
    pub partitions_started_fresh: u64,
    pub partitions_revoked: u64,
    /// Seconds from the first record read to the last.
    pub busy_seconds: f64,
    /// Produce-to-alert latency: from the producer's timestamp of the
    /// record that closed a bucket (or matched a rule) to the alert being
    /// written, in milliseconds.
    pub latency_ms: Option<LatencySummary>,
    /// Peak resident memory of the process, in MiB (Linux; `None` elsewhere).
    pub max_rss_mib: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct LatencySummary {
    pub alerts: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl std::fmt::Display for LiveStats {
    /// `name: value` lines, for people and for scripts that grep them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = if self.busy_seconds > 0.0 { self.records as f64 / self.busy_seconds } else { 0.0 };
        writeln!(f, "records: {} in {:.2} s ({rate:.0} records/s)", self.records, self.busy_seconds)?;
        writeln!(f, "skipped_below_checkpoint: {}", self.skipped_below_checkpoint)?;
        writeln!(f, "copies: {}", self.copies)?;
        writeln!(f, "quarantined: {}", self.quarantined)?;
        writeln!(f, "alerts_written: {}", self.alerts_written)?;
        writeln!(f, "alerts_repeated: {}", self.alerts_repeated)?;
        writeln!(f, "checkpoints: {}", self.checkpoints)?;
        writeln!(f, "commit_failures: {}", self.commit_failures)?;
        writeln!(f, "partitions_restored: {}", self.partitions_restored)?;
        writeln!(f, "partitions_started_fresh: {}", self.partitions_started_fresh)?;
        writeln!(f, "partitions_revoked: {}", self.partitions_revoked)?;
        if let Some(l) = self.latency_ms {
            writeln!(f, "produce_to_alert_ms: p50 {} p99 {} max {} over {} alerts", l.p50, l.p99, l.max, l.alerts)?;
        }
        if let Some(m) = self.max_rss_mib {
            writeln!(f, "max_rss_mib: {m:.1}")?;
        }
        Ok(())
    }
}

/// One assigned partition.
struct Part {
    pipeline: Pipeline,
    /// The offset after the last record read (what a commit would say).
    next: i64,
    /// Records below this are covered by the restored checkpoint.
    skip_below: i64,
    /// Records read since the last checkpoint.
    dirty: bool,
    /// Size of the last checkpoint: the next one's buffer starts this big.
    last_bytes: usize,
}

/// Everything the consumer's rebalance callbacks need: the partitions and
/// the outputs they checkpoint before giving a partition up.
struct Live {
    config: PipelineConfig,
    store: CheckpointStore,
    changelog: Option<changelog::Changelog>,
    parts: BTreeMap<(String, i32), Part>,
    alerts: Option<AlertLog>,
    /// Every configured sink (SIEMs, chat, files); synced before offsets are committed.
    sinks: FanOut,
    quarantine: Option<QuarantineFile>,
    quarantine_topic: Option<(BaseProducer, String)>,
    max_record_bytes: usize,
    /// Which events keep their request parameters (what the detectors read).
    keep: crate::decode::keep::KeepParams,
    stats: LiveStats,
    /// An error raised inside a rebalance callback, reported by the loop.
    failed: Option<LiveError>,
    scratch: Event,
    raised: Vec<Alert>,
    print_alerts: bool,
    first_record: Option<Instant>,
    last_record: Option<Instant>,
    metrics: crate::telemetry::metrics::Metrics,
    /// `/readyz`: partitions assigned and their state restored.
    ready: Arc<AtomicBool>,
}

struct LiveContext {
    live: Mutex<Live>,
}

impl LiveContext {
    fn lock(&self) -> MutexGuard<'_, Live> {
        // A panic while holding the lock would already have ended the
        // process (panic = abort is not set, but nothing here catches).
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ClientContext for LiveContext {}

impl ConsumerContext for LiveContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut live = self.lock();
            let revoked: Vec<(String, i32)> =
                tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
            tracing::info!(partitions = ?revoked, "partitions revoked: checkpointing and dropping them");
            if let Err(e) = live.checkpoint(consumer, Some(&revoked)) {
                live.failed.get_or_insert(e);
            }
            for key in revoked {
                let stats = live.parts.get_mut(&key).map(|p| {
                    p.pipeline.refresh_stats();
                    p.pipeline.stats.clone()
                });
                live.metrics.forget(&format!("{}/{}", key.0, key.1), stats.as_ref());
                if live.parts.remove(&key).is_some() {
                    live.stats.partitions_revoked += 1;
                    let _ = live.metrics.lag.remove_label_values(&[&key.0, &key.1.to_string()]);
                }
            }
            live.metrics.partitions.set(live.parts.len() as i64);
            live.ready.store(!live.parts.is_empty(), Ordering::Relaxed);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut live = self.lock();
                for e in tpl.elements() {
                    if let Err(err) = live.assign(e.topic(), e.partition()) {
                        live.failed.get_or_insert(err);
                    }
                }
                tracing::info!(partitions = live.parts.len(), "partitions assigned");
                live.metrics.partitions.set(live.parts.len() as i64);
                live.ready.store(!live.parts.is_empty() && live.failed.is_none(), Ordering::Relaxed);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

impl Live {
    /// Publishes the pipelines' counts (events by shape, late events,
    /// buckets scored) to the metrics.
    /// Sets the lag gauge of every held partition: the broker's high
    /// watermark minus the next offset to read.
    fn refresh_lag(&mut self, consumer: &BaseConsumer<LiveContext>) {
        for ((topic, partition), part) in &self.parts {
            if let Ok((_, high)) = consumer.fetch_watermarks(topic.as_str(), *partition, Duration::from_millis(500))
                && high >= 0
            {
                self.metrics.lag.with_label_values(&[topic, &partition.to_string()]).set((high - part.next).max(0));
            }
        }
    }

    /// The counters and the principals tracked, as they stand now (not as
    /// of the last checkpoint: a gauge read after the last records must
    /// count their principals).
    fn publish(&mut self) {
        for ((topic, partition), part) in &mut self.parts {
            part.pipeline.refresh_stats();
            self.metrics.publish(&format!("{topic}/{partition}"), &part.pipeline.stats);
        }
        self.metrics.principals.set(self.parts.values().map(|p| p.pipeline.principals()).sum::<usize>() as i64);
    }

    /// Restores (or starts) the state of a newly assigned partition.
    fn assign(&mut self, topic: &str, partition: i32) -> Result<(), LiveError> {
        let key = (topic.to_owned(), partition);
        if self.parts.contains_key(&key) {
            return Ok(());
        }
        let mut found = self.store.load(topic, partition)?;
        if let Some(log) = self.changelog.as_mut()
            && let Some(remote) = log.latest(topic, partition)?
            && found.as_ref().is_none_or(|local| remote.offset > local.offset)
        {
            tracing::info!(topic, partition, offset = remote.offset, "state taken from the changelog topic");
            found = Some(remote);
        }
        let part = match found {
            Some(PartitionCheckpoint { offset, state }) => {
                let pipeline = Pipeline::restore(self.config.clone(), &state).map_err(|e| {
                    checkpoint::StoreError::Restore { what: format!("{topic}/{partition}"), message: e.to_string() }
                })?;
                self.stats.partitions_restored += 1;
                tracing::info!(topic, partition, offset, "partition state restored");
                Part { pipeline, next: offset, skip_below: offset, dirty: false, last_bytes: state.len() }
            }
            None => {
                self.stats.partitions_started_fresh += 1;
                tracing::info!(topic, partition, "no checkpoint for this partition: starting with empty baselines");
                Part {
                    pipeline: Pipeline::new(self.config.clone()),
                    next: 0,
                    skip_below: 0,
                    dirty: false,
                    last_bytes: 0,
                }
            }
        };
        self.parts.insert(key, part);
        Ok(())
    }

    /// Reads one record of a partition.
    fn record<M: Message>(&mut self, m: &M) -> Result<(), LiveError> {
        let key = (m.topic().to_owned(), m.partition());
        if !self.parts.contains_key(&key) {
            // A record can reach us before the assignment callback of its
            // partition only if librdkafka assigned it without one; be safe.
            self.assign(m.topic(), m.partition())?;
        }
        let Live { parts, stats, scratch, raised, keep, .. } = self;
        let Some(part) = parts.get_mut(&key) else { return Ok(()) };
        let offset = m.offset();
        if offset < part.skip_below {
            stats.skipped_below_checkpoint += 1;
            self.metrics.records.with_label_values(&["skipped"]).inc();
            return Ok(());
        }
        part.next = offset + 1;
        part.dirty = true;
        stats.records += 1;
        let now = Instant::now();
        self.first_record.get_or_insert(now);
        self.last_record = Some(now);
        let produced_ms = m.timestamp().to_millis();
        let copy = m.headers().is_some_and(|h| h.iter().any(|h| h.key == COPY_HEADER));
        self.metrics.records.with_label_values(&[if copy { "copy" } else { "scored" }]).inc();
        let payload = m.payload().unwrap_or_default();
        let mut refused: Vec<(QuarantineReason, &[u8])> = Vec::new();
        let too_large = m.headers().is_some_and(|h| h.iter().any(|h| h.key == TOO_LARGE_HEADER));
        if too_large {
            refused.push((QuarantineReason::TooLarge, payload));
        } else if payload.iter().all(u8::is_ascii_whitespace) {
            refused.push((QuarantineReason::MissingField, payload));
        }
        // A message holds one record, or several as JSON lines.
        let lines = if too_large { &[][..] } else { payload };
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            if line.len() > self.max_record_bytes {
                refused.push((QuarantineReason::TooLarge, line));
                continue;
            }
            match decode_json_keeping(line, scratch, keep) {
                Ok(_) if copy => {
                    stats.copies += 1;
                    part.pipeline.reference_event(scratch);
                }
                // A duplicate (a redelivered record) is quarantined with its
                // offset, as replay quarantines it: kept, counted, not scored.
                Ok(_) => {
                    if let Err(reason) = part.pipeline.event(scratch, raised) {
                        refused.push((reason, line));
                    }
                }
                Err(reason) => {
                    part.pipeline.quarantined(reason);
                    refused.push((reason, line));
                }
            }
        }
        if !raised.is_empty()
            && let Some(produced) = produced_ms
        {
            let now_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let latency = (now_ms - produced).clamp(1, 86_400_000) as u64;
            for a in raised.iter() {
                self.metrics.latency.observe(latency as f64 / 1000.0);
                self.metrics.end_to_end.record_ms(latency);
                if let Ok(end) = crate::time::EventTime::parse(&a.window_end) {
                    self.metrics.bucket_close.record_ms(now_ms.saturating_sub(end.0).max(0) as u64);
                }
            }
        }
        if !refused.is_empty() {
            let origin: Arc<str> = format!("kafka:{}/{}", m.topic(), m.partition()).into();
            for (reason, raw) in refused {
                self.quarantine(reason, &Position { origin: origin.clone(), record: offset as u64 }, raw)?;
            }
        }
        self.emit_raised()
    }

    /// Writes a refused record (or, reason `late`, an event too late for
    /// every detector: counted by the pipeline per shape, not here) to the
    /// quarantine file and topic.
    fn quarantine(&mut self, reason: QuarantineReason, position: &Position, raw: &[u8]) -> Result<(), LiveError> {
        if reason != QuarantineReason::Late {
            self.stats.quarantined += 1;
            self.metrics.quarantined.with_label_values(&[reason.name()]).inc();
        }
        tracing::debug!(
            reason = reason.name(),
            origin = &*position.origin,
            offset = position.record,
            "record quarantined"
        );
        if let Some(q) = self.quarantine.as_mut() {
            q.write(reason, position, raw)?;
        }
        if let Some((producer, topic)) = self.quarantine_topic.as_ref() {
            let key = format!("{}@{}", position.origin, position.record);
            // Cut like the quarantine file: a record over the broker's
            // message limit must not stop the process.
            let cut = &raw[..raw.len().min(crate::sink::QUARANTINE_RAW_LIMIT)];
            let size = raw.len().to_string();
            let headers = rdkafka::message::OwnedHeaders::new()
                .insert(rdkafka::message::Header { key: "reason", value: Some(reason.name()) })
                .insert(rdkafka::message::Header { key: "size", value: Some(&size) })
                .insert(rdkafka::message::Header {
                    key: "truncated",
                    value: Some(if cut.len() < raw.len() { "true" } else { "false" }),
                });
            send_waiting(producer, BaseRecord::to(topic).key(key.as_str()).payload(cut).headers(headers))?;
            producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    fn emit_raised(&mut self) -> Result<(), LiveError> {
        for a in self.raised.drain(..) {
            if self.print_alerts {
                println!("{}", serde_json::to_string(&a).unwrap_or_default());
            }
            self.sinks.accept(&a)?;
            match self.alerts.as_mut() {
                Some(log) => {
                    if log.write(&a)? {
                        self.stats.alerts_written += 1;
                        self.metrics.alerts.with_label_values(&[&a.detector, a.severity.name()]).inc();
                    } else {
                        self.stats.alerts_repeated += 1;
                        self.metrics.alerts_repeated.inc();
                    }
                }
                None => {
                    self.stats.alerts_written += 1;
                    self.metrics.alerts.with_label_values(&[&a.detector, a.severity.name()]).inc();
                }
            }
        }
        Ok(())
    }

    /// Makes everything read so far durable and commits it: outputs first,
    /// then partition states, then offsets. `only` limits it to some
    /// partitions (a revocation).
    fn checkpoint(
        &mut self,
        consumer: &BaseConsumer<LiveContext>,
        only: Option<&[(String, i32)]>,
    ) -> Result<(), LiveError> {
        if let Some(log) = self.alerts.as_mut() {
            log.sync()?;
        }
        self.sinks.sync()?;
        if let Some(q) = self.quarantine.as_mut() {
            q.sync()?;
        }
        if let Some((producer, _)) = self.quarantine_topic.as_ref() {
            producer.flush(Duration::from_secs(30))?;
        }
        self.refresh_lag(consumer);
        let mut offsets = TopicPartitionList::new();
        let mut written = 0;
        for ((topic, partition), part) in self.parts.iter_mut() {
            if only.is_some_and(|keys| !keys.iter().any(|(t, p)| t == topic && p == partition)) {
                continue;
            }
            if !part.dirty {
                continue;
            }
            let state = part.pipeline.checkpoint_sized(part.last_bytes + part.last_bytes / 8);
            part.last_bytes = state.len();
            written += state.len();
            let cp = PartitionCheckpoint { offset: part.next, state };
            self.store.save(topic, *partition, &cp)?;
            if let Some(log) = self.changelog.as_mut() {
                log.publish(topic, *partition, &cp)?;
            }
            part.dirty = false;
            offsets.add_partition_offset(topic, *partition, Offset::Offset(part.next))?;
        }
        if let Some(log) = self.changelog.as_mut() {
            log.flush()?;
        }
        if only.is_none() {
            // Every partition's state now covers the alerts accepted so far.
            self.sinks.checkpointed()?;
        }
        self.stats.checkpoints += 1;
        self.metrics.checkpoints.inc();
        self.metrics.checkpoint_bytes.set(written as i64);
        self.metrics.state_bytes.set(self.parts.values().map(|p| p.last_bytes).sum::<usize>() as i64);
        self.publish();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.metrics.last_checkpoint.set(now as i64);
        if offsets.count() > 0 {
            // A failed commit loses nothing: the state on disk covers the
            // records, and after a restart they are skipped by offset.
            if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
                self.stats.commit_failures += 1;
                self.metrics.commit_failures.inc();
                tracing::warn!(error = %e, "offset commit failed; the next checkpoint retries it");
            }
        }
        Ok(())
    }
}

/// What `auditwatch run` is asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub live: LiveConfig,
    /// Stop once no record has arrived for this long (backfills, tests and
    /// benchmarks); `None` runs until SIGTERM or SIGINT.
    pub exit_when_idle: Option<Duration>,
    pub print_alerts: bool,
    /// Serve /metrics, /healthz and /readyz on this address.
    pub serve: Option<String>,
    /// Sinks, spool folder and drain timeout (`spool_dir` and
    /// `drain_timeout` set by the caller).
    pub delivery: crate::sink::config::DeliveryConfig,
    /// With `serve`: keep serving this long after stopping.
    pub linger: Duration,
}

/// Consumes until SIGTERM/SIGINT (or `exit_when_idle`), then drains,
/// checkpoints and commits.
pub fn run(opts: &RunOptions, config: PipelineConfig) -> Result<(LiveStats, DeliveryReport), LiveError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(LiveError::Signal)?;
    }
    let cfg = &opts.live;
    let mut topics = cfg.topics.clone();
    let mut rekeying = None;
    if let Some(target) = &cfg.repartition_topic {
        // The re-keying stage reads the input topics; the detectors read
        // its output.
        rekeying = Some(repartition::spawn(cfg, Arc::clone(&stop))?);
        topics = vec![target.clone()];
    }
    let client = cfg.client_config(&cfg.group);
    let quarantine_topic = match &cfg.quarantine_topic {
        Some(t) => Some((cfg.producer_config().create::<BaseProducer>()?, t.clone())),
        None => None,
    };
    let metrics = crate::telemetry::metrics::Metrics::new().map_err(|e| LiveError::Config(format!("metrics: {e}")))?;
    let spool_dir = opts.delivery.spool_dir.clone().unwrap_or_else(|| cfg.state_dir.join("spool"));
    let sinks = FanOut::open(&opts.delivery, &spool_dir, crate::sink::Mode::Continuous, &metrics.registry)?;
    let keep = crate::decode::keep::KeepParams::for_definitions(&config.definitions);
    let live = Live {
        config,
        sinks,
        store: CheckpointStore::new(&cfg.state_dir, &cfg.group)?,
        changelog: cfg.changelog_topic.as_ref().map(|t| changelog::Changelog::new(cfg, t)).transpose()?,
        parts: BTreeMap::new(),
        alerts: cfg.alerts_out.as_deref().map(AlertLog::open).transpose()?,
        quarantine: cfg.quarantine_file.as_deref().map(QuarantineFile::append).transpose()?,
        quarantine_topic,
        max_record_bytes: cfg.max_record_bytes,
        keep,
        stats: LiveStats::default(),
        failed: None,
        scratch: Event::default(),
        raised: Vec::new(),
        print_alerts: opts.print_alerts,
        first_record: None,
        last_record: None,
        metrics,
        ready: Arc::new(AtomicBool::new(false)),
    };
    let _server = match &opts.serve {
        Some(addr) => Some(
            crate::telemetry::serve::Server::start(addr, live.metrics.registry.clone(), Arc::clone(&live.ready))
                .map_err(|e| LiveError::Config(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(log) = &live.alerts {
        tracing::info!(held = log.held, "alert log opened");
    }
    let consumer: BaseConsumer<LiveContext> = client.create_with_context(LiveContext { live: Mutex::new(live) })?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    tracing::info!(group = %cfg.group, topics = ?topics, "consuming");

    let mut last_checkpoint = Instant::now();
    let mut last_checkpoint_took = Duration::ZERO;
    let mut since_checkpoint: u64 = 0;
    let mut last_record = Instant::now();
    let mut last_published = Instant::now();
    let mut last_lag = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_record = Instant::now();
                since_checkpoint += 1;
                consumer.context().lock().record(&m)?;
            }
            Some(Err(e)) => {
                // Broker restarts and the like: librdkafka reconnects.
                tracing::warn!(error = %e, "consumer error");
            }
            None => {
                // Idle time counts only while partitions are assigned: after
                // a crash the group may hold them for a session timeout.
                if consumer.context().lock().parts.is_empty() {
                    last_record = Instant::now();
                }
                if opts.exit_when_idle.is_some_and(|idle| last_record.elapsed() >= idle) {
                    tracing::info!("no records for the idle limit: stopping");
                    break;
                }
            }
        }
        if let Some(e) = consumer.context().lock().failed.take() {
            return Err(e);
        }
        if last_published.elapsed() >= Duration::from_secs(1) {
            let mut live = consumer.context().lock();
            live.publish();
            if last_lag.elapsed() >= Duration::from_secs(5) {
                // Lag keeps moving between checkpoints (and while idle).
                live.refresh_lag(&consumer);
                last_lag = Instant::now();
            }
            if live.stats.checkpoints > 0 {
                live.metrics.checkpoint_age.set(last_checkpoint.elapsed().as_secs() as i64);
            }
            last_published = Instant::now();
        }
        // A checkpoint writes each changed partition's whole state, which
        // grows with its principals: never spend more than a tenth of the
        // time on it (at a million principals a checkpoint takes seconds).
        let spacing = cfg.checkpoint_interval.max(last_checkpoint_took * 9);
        if since_checkpoint > 0
            && (since_checkpoint >= cfg.checkpoint_records || last_checkpoint.elapsed() >= spacing)
            && last_checkpoint.elapsed() >= last_checkpoint_took * 9
        {
            let started = Instant::now();
            consumer.context().lock().checkpoint(&consumer, None)?;
            last_checkpoint_took = started.elapsed();
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
        }
    }
    tracing::info!("stopping: checkpointing and committing");
    consumer.context().lock().checkpoint(&consumer, None)?;
    if let Some(stage) = rekeying {
        stop.store(true, Ordering::Relaxed);
        stage.join().map_err(|_| LiveError::Config("the repartition thread panicked".into()))??;
    }
    let sinks = std::mem::replace(&mut consumer.context().lock().sinks, FanOut::none());
    let report = sinks.finish(opts.delivery.drain_timeout.unwrap_or(Duration::from_secs(30)))?;
    let live = consumer.context().lock();
    let mut stats = live.stats.clone();
    if let Some(log) = &live.alerts {
        stats.alerts_repeated = log.repeated;
    }
    if let (Some(first), Some(last)) = (live.first_record, live.last_record) {
        stats.busy_seconds = (last - first).as_secs_f64();
    }
    // The same hdrhistogram /metrics exports as a summary.
    if let Some((p50, p99, max, alerts)) = live.metrics.end_to_end.snapshot() {
        stats.latency_ms = Some(LatencySummary { alerts, p50, p99, max });
    }
    stats.max_rss_mib = crate::telemetry::process::peak_resident_bytes().map(|b| b / (1024.0 * 1024.0));
    drop(live);
    if opts.serve.is_some() && !opts.linger.is_zero() {
        consumer.context().lock().publish();
        tracing::info!(seconds = opts.linger.as_secs_f64(), "serving metrics a while longer (--linger)");
        std::thread::sleep(opts.linger);
    }
    Ok((stats, report))
}
