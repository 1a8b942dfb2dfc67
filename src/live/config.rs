//! The live-mode configuration file (TOML) and its defaults. Every key is
//! documented in the README ("Live mode on Kafka"); flags of `auditwatch
//! run` override the file.

use rdkafka::ClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LiveConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    kafka: KafkaSection,
    #[serde(default)]
    state: StateSection,
    #[serde(default)]
    output: OutputSection,
    #[serde(default)]
    time: TimeSection,
    /// Read by `sink::config` (the same file configures the sinks).
    #[serde(default, rename = "delivery")]
    _delivery: Option<toml::Value>,
    #[serde(default, rename = "sink")]
    _sink: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaSection {
    brokers: Option<String>,
    topics: Option<Vec<String>>,
    group: Option<String>,
    fetch_wait_max_ms: Option<u32>,
    auto_offset_reset: Option<String>,
    repartition_topic: Option<String>,
    repartition_group: Option<String>,
    changelog_topic: Option<String>,
    quarantine_topic: Option<String>,
    #[serde(default)]
    client: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateSection {
    dir: Option<PathBuf>,
    checkpoint_seconds: Option<u64>,
    checkpoint_records: Option<u64>,
}

/// `[time]`: how long each input shape may lag, and the duplicate
/// filter (flags override it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    /// Shape name (or `audit`, `billing`) → allowed lateness in minutes.
    #[serde(default)]
    pub lateness_minutes: BTreeMap<String, u32>,
    pub dedup_hours: Option<i64>,
    pub dedup_max_ids: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    alerts: Option<PathBuf>,
    quarantine: Option<PathBuf>,
    max_record_bytes: Option<usize>,
}

/// Everything `auditwatch run` needs to know about Kafka and its own state.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Bootstrap servers, `HOST:PORT,...`.
    pub brokers: String,
    /// Input topics (any mix of the input shapes).
    pub topics: Vec<String>,
    /// Consumer group of the detectors.
    pub group: String,
    /// librdkafka's `fetch.wait.max.ms`: how long the broker may hold a fetch
    /// for more data. Low (10 ms) suits local brokers that answer slowly
    /// when idle; raise it on busy clusters to save requests.
    pub fetch_wait_max_ms: u32,
    /// Where a partition without a committed offset starts: `earliest` or `latest`.
    pub auto_offset_reset: String,
    /// Re-key the input topics by principal into this topic first.
    pub repartition_topic: Option<String>,
    /// Consumer group of the re-keying stage (default: GROUP-repartition).
    pub repartition_group: Option<String>,
    /// Also publish partition checkpoints to this (compacted) topic, so
    /// that an instance on another machine can take a partition over.
    pub changelog_topic: Option<String>,
    /// Produce quarantined records to this topic (header `reason`).
    pub quarantine_topic: Option<String>,
    /// librdkafka settings passed through as they are (security.protocol,
    /// sasl.*, ssl.*, ...).
    pub client: BTreeMap<String, String>,
    pub state_dir: PathBuf,
    pub checkpoint_interval: Duration,
    pub checkpoint_records: u64,
    pub alerts_out: Option<PathBuf>,
    pub quarantine_file: Option<PathBuf>,
    pub max_record_bytes: usize,
    /// `[time]`, applied to the pipeline configuration.
    pub time: TimeSection,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            brokers: "127.0.0.1:9092".into(),
            topics: Vec::new(),
            group: "auditwatch".into(),
            fetch_wait_max_ms: 10,
            auto_offset_reset: "earliest".into(),
            repartition_topic: None,
            repartition_group: None,
            changelog_topic: None,
            quarantine_topic: None,
            client: BTreeMap::new(),
            state_dir: PathBuf::from("auditwatch-state"),
            checkpoint_interval: Duration::from_secs(10),
            checkpoint_records: 200_000,
            alerts_out: None,
            quarantine_file: None,
            max_record_bytes: crate::decode::DEFAULT_MAX_RECORD_BYTES,
            time: TimeSection::default(),
        }
    }
}

/// Settings auditwatch owns: passing them through would break its guarantees.
const OWNED: &[&str] = &["group.id", "enable.auto.commit", "enable.auto.offset.store", "bootstrap.servers"];

impl LiveConfig {
    /// Reads a configuration file over the defaults (call `validate` once
    /// flags are applied).
    pub fn load(path: &Path) -> Result<Self, LiveConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| LiveConfigError::Io { path: path.into(), source })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, LiveConfigError> {
        let file: File =
            toml::from_str(text).map_err(|e| LiveConfigError::Parse { path: path.into(), message: e.to_string() })?;
        let mut c = LiveConfig::default();
        let k = file.kafka;
        if let Some(v) = k.brokers {
            c.brokers = v;
        }
        if let Some(v) = k.topics {
            c.topics = v;
        }
        if let Some(v) = k.group {
            c.group = v;
        }
        if let Some(v) = k.fetch_wait_max_ms {
            c.fetch_wait_max_ms = v;
        }
        if let Some(v) = k.auto_offset_reset {
            c.auto_offset_reset = v;
        }
        c.repartition_topic = k.repartition_topic;
        c.repartition_group = k.repartition_group;
        c.changelog_topic = k.changelog_topic;
        c.quarantine_topic = k.quarantine_topic;
        for (key, value) in k.client {
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            c.client.insert(key, text);
        }
        if let Some(v) = file.state.dir {
            c.state_dir = v;
        }
        if let Some(v) = file.state.checkpoint_seconds {
            c.checkpoint_interval = Duration::from_secs(v);
        }
        if let Some(v) = file.state.checkpoint_records {
            c.checkpoint_records = v;
        }
        c.alerts_out = file.output.alerts;
        c.quarantine_file = file.output.quarantine;
        if let Some(v) = file.output.max_record_bytes {
            c.max_record_bytes = v;
        }
        c.time = file.time;
        // Validated once flags are applied (`validate`): a file may leave
        // the topics to the command line.
        Ok(c)
    }

    /// Checks what flags and file together say.
    pub fn validate(&self) -> Result<(), LiveConfigError> {
        if self.topics.is_empty() {
            return Err(LiveConfigError::Invalid("no input topic: give --topic or kafka.topics".into()));
        }
        if !matches!(self.auto_offset_reset.as_str(), "earliest" | "latest") {
            return Err(LiveConfigError::Invalid(format!(
                "kafka.auto_offset_reset must be earliest or latest, not {:?}",
                self.auto_offset_reset
            )));
        }
        if let Some(key) = self.client.keys().find(|k| OWNED.contains(&k.as_str())) {
            return Err(LiveConfigError::Invalid(format!(
                "kafka.client.{key:?} is set by auditwatch itself (use kafka.brokers / kafka.group)"
            )));
        }
        if self.checkpoint_records == 0 {
            return Err(LiveConfigError::Invalid("state.checkpoint_records must be at least 1".into()));
        }
        Ok(())
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }

    /// A consumer of `group` with manual offset management.
    pub fn client_config(&self, group: &str) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", &self.auto_offset_reset)
            .set("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string());
        c
    }

    /// A producer (quarantine topic, repartition topic, changelog).
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("linger.ms", "5").set("enable.idempotence", "false");
        c
    }

    /// A consumer outside any group, for reading the changelog.
    pub fn reader_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", format!("{}-changelog-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", self.fetch_wait_max_ms.to_string());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_overrides_defaults_and_owned_settings_are_refused() {
        let text = r#"
[kafka]
brokers = "k1:9092,k2:9092"
topics = ["audit", "billing"]
group = "aw"
[kafka.client]
"security.protocol" = "SASL_SSL"
"socket.keepalive.enable" = true
[state]
dir = "/var/lib/aw"
checkpoint_seconds = 30
[output]
alerts = "/var/lib/aw/alerts.jsonl"
[delivery]
drain_timeout_seconds = 5
[[sink]]
name = "console"
type = "stdout"
"#;
        // The sink sections of the same file are left to `sink::config`.
        let c = LiveConfig::parse(Path::new("aw.toml"), text).unwrap();
        let sinks = crate::sink::config::DeliveryConfig::parse(Path::new("aw.toml"), text, &[], &Default::default());
        assert_eq!(sinks.unwrap().sinks.len(), 1);
        assert_eq!(c.brokers, "k1:9092,k2:9092");
        assert_eq!(c.topics, ["audit", "billing"]);
        assert_eq!(c.client["security.protocol"], "SASL_SSL");
        assert_eq!(c.client["socket.keepalive.enable"], "true");
        assert_eq!(c.checkpoint_interval, Duration::from_secs(30));
        assert_eq!(c.checkpoint_records, 200_000);
        let bad = text.replace("\"security.protocol\"", "\"enable.auto.commit\"");
        let e = LiveConfig::parse(Path::new("aw.toml"), &bad).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("set by auditwatch itself"), "{e}");
        let e = LiveConfig::parse(Path::new("aw.toml"), "").unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("no input topic"), "{e}");
        let typo = text.replace("[state]", "[state]\ncheckpoint_secs = 3");
        let e = LiveConfig::parse(Path::new("aw.toml"), &typo).unwrap_err().to_string();
        assert!(e.contains("checkpoint_secs"), "{e}");
    }
}
