//! The re-keying stage: when the input topics are not keyed by principal,
//! `--repartition-topic` reads them in a consumer group of its own and
//! writes every record to the partition of the repartition topic that its
//! principal hashes to; the detectors then read that topic. This is the
//! standard Kafka repartition pattern.
//!
//! Routing: an event goes to the partition of its principal (the actor of
//! an audit event, the run-as identity of a billing row, the writer of a
//! lineage row). A `job_run_timeline` row names no principal: it goes to its
//! job's owner, learned from earlier audit and billing records, else to
//! the partition of its job. Reference data every partition needs is
//! broadcast: a list price goes to every partition, and an event that
//! changes access (grants, group membership, removals, token revocations)
//! goes to its principal's partition and, marked with the header
//! [`super::COPY_HEADER`], to every other one, where it only updates the
//! access model. Undecodable records go to partition 0, whose consumer
//! quarantines them.
//!
//! Delivery: the stage commits its input offsets only after the producer
//! has flushed everything before them, so a crash repeats records rather
//! than losing them; the detectors drop the repeats by record id.

use super::config::LiveConfig;
use super::{COPY_HEADER, LiveError};
use crate::decode::decode_json;
use crate::event::{Event, Shape};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The partition of `key` among `n`: FNV-1a, stable across versions,
/// machines and client libraries (a producer outside auditwatch keying by
/// principal may use its own partitioner; only this stage's output relies
/// on this one).
pub fn partition_of(key: &str, n: i32) -> i32 {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    (h % n.max(1) as u64) as i32
}

/// Where a decoded record goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// One partition, by this key.
    Key(String),
    /// Its principal's partition, and a copy to every other.
    KeyAndCopies(String),
    /// A copy to every partition.
    Everywhere,
}

#[derive(Default)]
struct Router {
    /// Owner of each (workspace, job id).
    job_owners: FxHashMap<(u64, String), String>,
    changes: Vec<crate::access::Change>,
}

impl Router {
    fn route(&mut self, ev: &Event) -> Route {
        if ev.shape == Some(Shape::ListPrice) {
            return Route::Everywhere;
        }
        let principal = ev.charged_principal();
        if !ev.job_id.is_empty() && !principal.is_empty() {
            self.job_owners.insert((ev.workspace, ev.job_id.clone()), principal.to_owned());
        }
        let key = if !principal.is_empty() {
            principal.to_owned()
        } else if !ev.principal.is_empty() {
            ev.principal.clone()
        } else if !ev.job_id.is_empty() {
            match self.job_owners.get(&(ev.workspace, ev.job_id.clone())) {
                Some(owner) => owner.clone(),
                None => format!("job:{}:{}", ev.workspace, ev.job_id),
            }
        } else {
            ev.id.clone()
        };
        crate::access::changes_of(ev, &mut self.changes);
        if self.changes.is_empty() { Route::Key(key) } else { Route::KeyAndCopies(key) }
    }
}

/// Starts the stage on its own thread; it stops when `stop` is set.
pub fn spawn(cfg: &LiveConfig, stop: Arc<AtomicBool>) -> Result<JoinHandle<Result<(), LiveError>>, LiveError> {
    let target = cfg.repartition_topic.clone().unwrap_or_default();
    let group = cfg.repartition_group.clone().unwrap_or_else(|| format!("{}-repartition", cfg.group));
    let consumer: BaseConsumer = cfg.client_config(&group).create()?;
    let producer: BaseProducer = cfg.producer_config().create()?;
    let meta = producer.client().fetch_metadata(Some(&target), TIMEOUT)?;
    let partitions = meta.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    if partitions == 0 {
        return Err(LiveError::Config(format!("repartition topic {target} does not exist")));
    }
    let topics: Vec<String> = cfg.topics.clone();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let interval = cfg.checkpoint_interval;
    let max_record_bytes = cfg.max_record_bytes;
    tracing::info!(%group, %target, partitions, "re-keying the input topics by principal");
    std::thread::Builder::new()
        .name("repartition".into())
        .spawn(move || {
            let mut stage = Stage {
                consumer,
                producer,
                target,
                partitions,
                router: Router::default(),
                max_record_bytes,
                pending: BTreeMap::new(),
            };
            let result = stage.run(&stop, interval);
            if result.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            result
        })
        .map_err(|e| LiveError::Config(format!("cannot start the repartition thread: {e}")))
}

struct Stage {
    consumer: BaseConsumer,
    producer: BaseProducer,
    target: String,
    partitions: i32,
    router: Router,
    max_record_bytes: usize,
    /// Next input offset per (topic, partition), committed after a flush.
    pending: BTreeMap<(String, i32), i64>,
}

impl Stage {
    fn run(&mut self, stop: &AtomicBool, interval: Duration) -> Result<(), LiveError> {
        let mut ev = Event::default();
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let payload = m.payload().unwrap_or_default();
                    if payload.len() > self.max_record_bytes {
                        // Too large to be a record, and maybe to be a message
                        // of the target topic: its head goes on, marked, to be
                        // quarantined as `too_large` downstream.
                        let cut = &payload[..payload.len().min(crate::sink::QUARANTINE_RAW_LIMIT)];
                        self.send_too_large(cut, payload.len())?;
                    } else {
                        let route = match decode_json(payload, &mut ev) {
                            Ok(_) => self.router.route(&ev),
                            Err(_) => Route::Key(String::new()),
                        };
                        self.send(payload, &route)?;
                    }
                    self.pending.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "repartition consumer error"),
                None => {}
            }
            if last.elapsed() >= interval {
                self.commit()?;
                last = Instant::now();
            }
        }
        self.commit()
    }

    fn send_too_large(&self, head: &[u8], size: usize) -> Result<(), LiveError> {
        let size = size.to_string();
        let headers = OwnedHeaders::new().insert(Header { key: super::TOO_LARGE_HEADER, value: Some(&size) });
        let record = BaseRecord::to(&self.target).partition(0).key("").payload(head).headers(headers);
        super::send_waiting(&self.producer, record)?;
        Ok(())
    }

    fn send(&self, payload: &[u8], route: &Route) -> Result<(), LiveError> {
        let (home, key) = match route {
            Route::Key(k) if k.is_empty() => (0, ""),
            Route::Key(k) | Route::KeyAndCopies(k) => (partition_of(k, self.partitions), k.as_str()),
            Route::Everywhere => (-1, ""),
        };
        for p in 0..self.partitions {
            let copy = p != home;
            if copy && matches!(route, Route::Key(_)) {
                continue;
            }
            let mut record = BaseRecord::to(&self.target).partition(p).key(key).payload(payload);
            if copy {
                record = record.headers(OwnedHeaders::new().insert(Header { key: COPY_HEADER, value: Some("1") }));
            }
            super::send_waiting(&self.producer, record)?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), LiveError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.producer.flush(TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &self.pending {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
            tracing::warn!(error = %e, "repartition offset commit failed; retried at the next flush");
            return Ok(());
        }
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Event {
        let mut e = Event::default();
        decode_json(line.as_bytes(), &mut e).unwrap();
        e
    }

    #[test]
    fn records_go_to_their_principal_and_access_changes_everywhere() {
        let mut r = Router::default();
        let read = ev(
            r#"{"timestamp":1704096000000,"workspaceId":"7","serviceName":"unityCatalog","actionName":"getTable","userIdentity":{"email":"ana@x"},"requestId":"r1","requestParams":{"full_name_arg":"main.a.b"},"response":{"statusCode":200}}"#,
        );
        assert_eq!(r.route(&read), Route::Key("ana@x".into()));
        let removal = ev(
            r#"{"timestamp":1704096000000,"workspaceId":"7","serviceName":"accounts","actionName":"delete","userIdentity":{"email":"admin@x"},"requestId":"r2","requestParams":{"targetUserName":"leaver@x","endpoint":"/users"},"response":{"statusCode":200}}"#,
        );
        assert_eq!(r.route(&removal), Route::KeyAndCopies("admin@x".into()));
        let price = ev(
            r#"{"price_start_time":"2023-01-01T00:00:00.000Z","price_end_time":null,"account_id":"a","sku_name":"X","cloud":"AWS","currency_code":"USD","usage_unit":"DBU","pricing":{"default":"0.15"}}"#,
        );
        assert_eq!(r.route(&price), Route::Everywhere);
        assert_eq!(partition_of("ana@x", 4), partition_of("ana@x", 4));
        assert!((0..4).contains(&partition_of("ana@x", 4)));
    }
}
