//! Partition checkpoints on a Kafka topic, so that an instance on another
//! machine can take a partition over with its state (the local file under
//! `--state-dir` only helps an instance on the same disk).
//!
//! A checkpoint is cut into chunks of at most [`CHUNK`] bytes (Kafka's
//! default message limit is 1 MB). Chunk `i` of input partition `T/P` has
//! the key `T/P/i` (so log compaction keeps the newest of each) and the
//! headers `offset` (the checkpoint's generation) and `chunks`. All chunks of
//! `T/P` go to one changelog partition, chosen from the key, and are written
//! last chunk first: a chunk 0 of generation G means every other chunk of G
//! is already there. The topic should be created with
//! `cleanup.policy=compact`.

use super::checkpoint::{PartitionCheckpoint, StoreError};
use super::config::LiveConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest chunk of a checkpoint in one message.
pub const CHUNK: usize = 512 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Changelog {
    topic: String,
    producer: BaseProducer,
    reader: BaseConsumer,
    partitions: i32,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Changelog(e.to_string())
}

impl Changelog {
    pub fn new(cfg: &LiveConfig, topic: &str) -> Result<Self, StoreError> {
        let producer: BaseProducer = cfg.producer_config().create().map_err(err)?;
        let reader: BaseConsumer = cfg.reader_config().create().map_err(err)?;
        let meta = reader.fetch_metadata(Some(topic), TIMEOUT).map_err(err)?;
        let partitions = meta.topics().first().map_or(0, |t| t.partitions().len()) as i32;
        if partitions == 0 {
            return Err(err(format!("changelog topic {topic} does not exist (create it, compacted)")));
        }
        Ok(Changelog { topic: topic.to_owned(), producer, reader, partitions })
    }

    /// The changelog partition of input partition `topic/partition`.
    fn home(&self, topic: &str, partition: i32) -> i32 {
        super::repartition::partition_of(&format!("{topic}/{partition}"), self.partitions)
    }

    /// Queues a checkpoint (sent by [`Changelog::flush`]).
    pub fn publish(&mut self, topic: &str, partition: i32, cp: &PartitionCheckpoint) -> Result<(), StoreError> {
        let encoded = cp.encoded();
        let total = encoded.len();
        let count = total.div_ceil(CHUNK);
        let n = count.to_string();
        let generation = cp.offset.to_string();
        let home = self.home(topic, partition);
        for i in (0..count).rev() {
            let chunk = encoded.range(i * CHUNK..((i + 1) * CHUNK).min(total));
            let key = format!("{topic}/{partition}/{i}");
            let headers = OwnedHeaders::new()
                .insert(Header { key: "offset", value: Some(&generation) })
                .insert(Header { key: "chunks", value: Some(&n) });
            let record = BaseRecord::to(&self.topic)
                .partition(home)
                .key(key.as_str())
                .payload(chunk.as_slice())
                .headers(headers);
            super::send_waiting(&self.producer, record).map_err(err)?;
        }
        Ok(())
    }

    /// Waits until every queued chunk is acknowledged.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.producer.flush(TIMEOUT).map_err(err)
    }

    /// The newest complete checkpoint of `topic/partition`, if any.
    pub fn latest(&mut self, topic: &str, partition: i32) -> Result<Option<PartitionCheckpoint>, StoreError> {
        let home = self.home(topic, partition);
        let (low, high) = self.reader.fetch_watermarks(&self.topic, home, TIMEOUT).map_err(err)?;
        if high <= low {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, home, Offset::Offset(low)).map_err(err)?;
        self.reader.assign(&tpl).map_err(err)?;
        let prefix = format!("{topic}/{partition}/");
        // Chunks by (generation, index). A chunk 0 completes its generation
        // (it is written last), so older generations are dropped then.
        let mut chunks: BTreeMap<(i64, usize), Vec<u8>> = BTreeMap::new();
        let mut complete: Option<(i64, usize)> = None;
        let mut position = low;
        while position < high {
            let Some(m) = self.reader.poll(TIMEOUT) else {
                return Err(err(format!("changelog {}/{home}: no message before offset {high}", self.topic)));
            };
            let m = m.map_err(err)?;
            position = m.offset() + 1;
            let Some(index) = m.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(|k| k.strip_prefix(&prefix))
            else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else { continue };
            let header = |name: &str| {
                m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == name)
                        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<i64>().ok())
                })
            };
            let (Some(generation), Some(count)) = (header("offset"), header("chunks")) else { continue };
            chunks.insert((generation, index), m.payload().unwrap_or_default().to_vec());
            if index == 0 && complete.is_none_or(|(g, _)| generation >= g) {
                complete = Some((generation, count.max(1) as usize));
                chunks.retain(|(g, _), _| *g >= generation);
            }
        }
        self.reader.unassign().map_err(err)?;
        let Some((generation, count)) = complete else { return Ok(None) };
        let mut bytes = Vec::new();
        for i in 0..count {
            match chunks.get(&(generation, i)) {
                Some(part) => bytes.extend_from_slice(part),
                None => {
                    return Err(err(format!(
                        "changelog for {topic}/{partition}: chunk {i} of generation {generation} missing"
                    )));
                }
            }
        }
        PartitionCheckpoint::decode(&format!("changelog {topic}/{partition}"), &bytes).map(Some)
    }
}
