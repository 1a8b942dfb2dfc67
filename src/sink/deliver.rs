//! Delivery to remote sinks: the durable spool, the delivery thread with
//! its retries, and the dead-letter file.
//!
//! An accepted alert is first written to its sink's spool (a `queue-file`
//! FIFO on disk), and leaves it only once the receiver acknowledged it or it
//! was written to the dead-letter file: an alert is delivered or kept,
//! never dropped, and a restart delivers what the spool still holds.
//!
//! One thread per sink takes up to `batch_max` alerts from the head of the
//! spool, sends them, and classifies the answer:
//! - 2xx: delivered (Elastic answers per item: 409 means it is already
//!   there, and counts as delivered);
//! - connection errors, timeouts, 408, 429 and 5xx: sent again after an
//!   exponential backoff with jitter, or after `Retry-After` when the
//!   receiver asks for longer; retried until it works;
//! - any other 4xx: not retried; the alert goes to the dead-letter file with
//!   the response. When a batch is refused as a whole, its alerts are sent
//!   one by one so that only the bad one is dead-lettered.
//!
//! Secrets never reach a log line, a metric or the dead-letter file: errors
//! are logged by kind, and stored responses have secret values scrubbed.

use super::config::{Format, SinkConfig, SinkKind};
use super::metrics::ForSink;
use super::{SinkError, format, mask};
use crate::alert::Alert;
use hmac::{Hmac, KeyInit, Mac};
use prometheus::IntGauge;
use queue_file::QueueFile;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// The longest `Retry-After` honoured; a longer one is read as this.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);
/// The most of a response kept in the dead-letter file.
const RESPONSE_KEEP: usize = 4096;

/// What the spool holds per alert: when it was accepted, and the alert.
#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope {
    accepted_ms: u64,
    alert: Alert,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A sink's durable FIFO of accepted, undelivered alerts.
pub struct Spool {
    path: PathBuf,
    /// Held (an exclusive advisory lock on `spool.lock`) while open:
    /// queue-file assumes one writer, so a second process on the same
    /// spool (a `deliver` while `run` is up) is refused.
    _lock: File,
    inner: Mutex<SpoolInner>,
    changed: Condvar,
}

struct SpoolInner {
    queue: QueueFile,
    stop: bool,
}

impl Spool {
    /// Opens (or creates) `dir/spool.qf`.
    pub fn open(dir: &Path) -> Result<Arc<Spool>, SinkError> {
        std::fs::create_dir_all(dir).map_err(|source| SinkError::Io { path: dir.into(), source })?;
        let lock_path = dir.join("spool.lock");
        let lock = File::create(&lock_path).map_err(|source| SinkError::Io { path: lock_path.clone(), source })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SinkError::Spool {
                    path: dir.into(),
                    message: "in use by another auditwatch process (spool.lock is held)".into(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(SinkError::Io { path: lock_path, source }),
        }
        let path = dir.join("spool.qf");
        let mut queue = QueueFile::open(&path).map_err(|e| spool_error(&path, e))?;
        // Appends reach the page cache at once (a killed process loses
        // nothing); `sync` forces them to disk at checkpoints and at exit.
        queue.set_sync_writes(false);
        Ok(Arc::new(Spool {
            path,
            _lock: lock,
            inner: Mutex::new(SpoolInner { queue, stop: false }),
            changed: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, SpoolInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends an alert; waits while the spool holds `max` alerts (the
    /// delivery thread makes room), warning every 30 s that it waits.
    /// `depth` is set to the new length under the spool's lock, so it
    /// follows the spool in the order the two threads change it (set
    /// after the lock, a push could overwrite a later removal's length).
    pub fn push(&self, alert: &Alert, max: usize, sink: &str, depth: &IntGauge) -> Result<usize, SinkError> {
        let entry = serde_json::to_vec(&Envelope { accepted_ms: now_ms(), alert: alert.clone() })
            .map_err(|e| SinkError::Spool { path: self.path.clone(), message: e.to_string() })?;
        let mut inner = self.lock();
        let mut waited = Instant::now();
        while inner.queue.size() >= max && !inner.stop {
            if waited.elapsed() >= Duration::from_secs(30) {
                tracing::warn!(sink, held = inner.queue.size(), "the sink's spool is full: waiting for deliveries");
                waited = Instant::now();
            }
            inner = self.changed.wait_timeout(inner, Duration::from_secs(1)).map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        inner.queue.add(&entry).map_err(|e| spool_error(&self.path, e))?;
        let len = inner.queue.size();
        depth.set(len as i64);
        drop(inner);
        self.changed.notify_all();
        Ok(len)
    }

    /// Up to `max` entries from the head, left in place; waits for one.
    /// `None` once stopped.
    fn take(&self, max: usize) -> Option<Vec<Box<[u8]>>> {
        let mut inner = self.lock();
        loop {
            if inner.stop {
                return None;
            }
            if !inner.queue.is_empty() {
                return Some(inner.queue.iter().take(max).collect());
            }
            inner = self.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Removes the first `n` entries (delivered or dead-lettered), setting
    /// `depth` under the lock as [`Spool::push`] does.
    fn remove(&self, n: usize, depth: &IntGauge) -> Result<usize, SinkError> {
        let mut inner = self.lock();
        inner.queue.remove_n(n).map_err(|e| spool_error(&self.path, e))?;
        let len = inner.queue.size();
        depth.set(len as i64);
        drop(inner);
        self.changed.notify_all();
        Ok(len)
    }

    pub fn len(&self) -> usize {
        self.lock().queue.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forces what was appended to disk.
    pub fn sync(&self) -> Result<(), SinkError> {
        self.lock().queue.sync_all().map_err(|e| spool_error(&self.path, e))
    }

    /// Wakes everyone waiting; the delivery thread ends after its current request.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.changed.notify_all();
    }

    /// Waits until the spool is empty or `deadline`; true if empty.
    pub fn wait_empty(&self, deadline: Instant) -> bool {
        let mut inner = self.lock();
        loop {
            if inner.queue.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inner = self.changed.wait_timeout(inner, deadline - now).map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    }

    /// Sleeps `d` unless stopped first; false if stopped.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut inner = self.lock();
        loop {
            if inner.stop {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            inner = self.changed.wait_timeout(inner, deadline - now).map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    }
}

fn spool_error(path: &Path, e: queue_file::Error) -> SinkError {
    SinkError::Spool { path: path.into(), message: e.to_string() }
}

/// The dead-letter file of a sink: one JSON object per refused alert.
struct DeadLetter {
    path: PathBuf,
    out: Option<File>,
}

impl DeadLetter {
    fn write(&mut self, record: &serde_json::Value) -> Result<(), SinkError> {
        let io = |source| SinkError::Io { path: self.path.clone(), source };
        if self.out.is_none() {
            self.out = Some(std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?);
        }
        let Some(out) = self.out.as_mut() else { return Ok(()) };
        let mut line = record.to_string();
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(io)?;
        out.sync_data().map_err(io)
    }
}

/// The fate of one alert of a request.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Delivered,
    Retry { reason: &'static str, after: Option<Duration> },
    Reject { reason: &'static str, status: u16, response: String },
}

/// What a response says about a request's alerts.
#[derive(Debug, PartialEq)]
enum Verdict {
    Each(Vec<Outcome>),
    /// The batch was refused as a whole: send its alerts one at a time.
    Split,
}

/// One HTTP request.
struct Request {
    url: String,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The delivery thread of one remote sink.
pub struct Worker {
    config: SinkConfig,
    spool: Arc<Spool>,
    agent: ureq::Agent,
    metrics: ForSink,
    dead: DeadLetter,
}

/// Where a sink's dead letters go.
pub fn dead_letter_path(sink_dir: &Path) -> PathBuf {
    sink_dir.join("dead-letter.jsonl")
}

impl Worker {
    pub fn new(config: SinkConfig, spool: Arc<Spool>, sink_dir: &Path, metrics: ForSink) -> Worker {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.delivery.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("auditwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Worker { config, spool, agent, metrics, dead: DeadLetter { path: dead_letter_path(sink_dir), out: None } }
    }

    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name(format!("sink-{}", self.config.name)).spawn(move || self.run())
    }

    fn run(mut self) {
        let sink = self.config.name.clone();
        while let Some(entries) = self.spool.take(self.config.delivery.batch_max) {
            match self.deliver(&entries) {
                Ok(true) => match self.spool.remove(entries.len(), &self.metrics.queue_depth) {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(sink, error = %e, "cannot remove delivered alerts from the spool; stopping this sink");
                        return;
                    }
                },
                Ok(false) => return, // stopped mid-batch: the batch stays in the spool
                Err(e) => {
                    // The dead-letter file cannot be written: keep the
                    // alerts in the spool rather than lose them.
                    tracing::error!(sink, error = %e, "cannot write the dead-letter file; stopping this sink");
                    return;
                }
            }
        }
    }

    /// Delivers (or dead-letters) every entry; false if stopped first.
    fn deliver(&mut self, entries: &[Box<[u8]>]) -> Result<bool, SinkError> {
        let mut items: Vec<(u64, Alert)> = Vec::with_capacity(entries.len());
        for raw in entries {
            match serde_json::from_slice::<Envelope>(raw) {
                Ok(e) => items.push((e.accepted_ms, e.alert)),
                Err(e) => {
                    self.metrics.dead_lettered.inc();
                    self.dead.write(&serde_json::json!({
                        "sink": self.config.name,
                        "reason": "unreadable spool entry",
                        "error": e.to_string(),
                        "entry": String::from_utf8_lossy(raw),
                    }))?;
                }
            }
        }
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut one_at_a_time = self.config.delivery.batch_max == 1;
        let mut attempt: u32 = 0;
        while !pending.is_empty() {
            let group: Vec<usize> = if one_at_a_time { pending[..1].to_vec() } else { pending.clone() };
            let alerts: Vec<Alert> = group.iter().map(|&i| mask::apply(&items[i].1, self.config.mask)).collect();
            let outcomes = match self.send(&alerts) {
                Verdict::Split => {
                    one_at_a_time = true;
                    continue;
                }
                Verdict::Each(o) => o,
            };
            let mut wait: Option<Duration> = None;
            let mut done = Vec::new();
            for (&i, outcome) in group.iter().zip(outcomes) {
                match outcome {
                    Outcome::Delivered => {
                        self.metrics.delivered.inc();
                        let took = now_ms().saturating_sub(items[i].0);
                        self.metrics.delivery_seconds.observe(took as f64 / 1000.0);
                        done.push(i);
                    }
                    Outcome::Reject { reason, status, response } => {
                        self.metrics.failed(reason);
                        self.metrics.dead_lettered.inc();
                        tracing::warn!(sink = %self.config.name, alert_id = %items[i].1.alert_id, status, "receiver refused the alert: dead-lettered");
                        self.dead.write(&serde_json::json!({
                            "sink": self.config.name,
                            "alert_id": items[i].1.alert_id,
                            "reason": reason,
                            "status": status,
                            "response": self.scrub(&response),
                            "attempts": attempt + 1,
                            "dead_lettered_at": crate::time::EventTime(now_ms() as i64).to_string(),
                            "alert": items[i].1,
                        }))?;
                        done.push(i);
                    }
                    Outcome::Retry { reason, after } => {
                        self.metrics.failed(reason);
                        wait = Some(wait.unwrap_or_default().max(after.unwrap_or_default()));
                    }
                }
            }
            pending.retain(|i| !done.contains(i));
            if let Some(after) = wait {
                let backoff = self.backoff(attempt);
                attempt = attempt.saturating_add(1);
                let pause = backoff.max(after.min(RETRY_AFTER_CAP));
                tracing::debug!(sink = %self.config.name, attempt, pause_ms = pause.as_millis() as u64, "retrying");
                if !self.spool.sleep(pause) {
                    return Ok(false);
                }
                self.metrics.retries.inc();
            }
        }
        Ok(true)
    }

    /// Exponential backoff with equal jitter: half the step fixed, half random.
    fn backoff(&self, attempt: u32) -> Duration {
        let d = &self.config.delivery;
        let step = d.retry_initial.saturating_mul(1u32 << attempt.min(20)).min(d.retry_max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// `s` with every secret value replaced.
    fn scrub(&self, s: &str) -> String {
        let mut out: String = s.chars().take(RESPONSE_KEEP).collect();
        for secret in self.config.kind.secrets() {
            if !secret.is_empty() {
                out = out.replace(secret, "[redacted]");
            }
        }
        out
    }

    fn send(&self, alerts: &[Alert]) -> Verdict {
        let req = request(&self.config, alerts);
        let mut r = self.agent.post(&req.url).header("Content-Type", req.content_type);
        for (k, v) in &req.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        match r.send(&req.body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
                let body = response.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default();
                classify(&self.config.kind, status, &body, retry_after, alerts.len())
            }
            Err(e) => {
                let reason = transport_reason(&e);
                // Logged by kind only: ureq's messages may name the URL,
                // and a Slack URL is a secret.
                tracing::debug!(sink = %self.config.name, reason, "request failed");
                match e {
                    ureq::Error::BadUri(_) | ureq::Error::InvalidProxyUrl => Verdict::Each(
                        alerts
                            .iter()
                            .map(|_| Outcome::Reject { reason, status: 0, response: "invalid URL".into() })
                            .collect(),
                    ),
                    _ => Verdict::Each(alerts.iter().map(|_| Outcome::Retry { reason, after: None }).collect()),
                }
            }
        }
    }
}

fn transport_reason(e: &ureq::Error) -> &'static str {
    match e {
        ureq::Error::Timeout(_) => "timeout",
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => "connect",
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connect",
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => "timeout",
        _ => "io",
    }
}

/// `Retry-After`: delta seconds or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// The request that carries `alerts` (already masked) to the sink.
fn request(config: &SinkConfig, alerts: &[Alert]) -> Request {
    let mut headers: Vec<(String, String)> = config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let json_lines = |values: Vec<serde_json::Value>| -> Vec<u8> {
        let mut body = Vec::new();
        for v in values {
            body.extend_from_slice(v.to_string().as_bytes());
            body.push(b'\n');
        }
        body
    };
    match &config.kind {
        SinkKind::Webhook { url, format: f, secret } => {
            let a = &alerts[0];
            let body = match f {
                Format::Alert | Format::Text => serde_json::to_vec(a).unwrap_or_default(),
                other => format::encode(a, *other).to_string().into_bytes(),
            };
            headers.push(("X-Auditwatch-Alert-Id".into(), a.alert_id.clone()));
            if let Some(key) = secret {
                headers.push(("X-Auditwatch-Signature".into(), format!("sha256={}", sign(key.expose(), &body))));
            }
            Request { url: url.expose().to_owned(), content_type: "application/json", headers, body }
        }
        SinkKind::SplunkHec { url, token, format: f, index, source, sourcetype, host } => {
            headers.push(("Authorization".into(), format!("Splunk {}", token.expose())));
            let body = json_lines(
                alerts
                    .iter()
                    .map(|a| format::splunk_event(a, *f, index.as_deref(), source, sourcetype, host))
                    .collect(),
            );
            let url = if url.ends_with("/services/collector/event") {
                url.clone()
            } else {
                format!("{url}/services/collector/event")
            };
            Request { url, content_type: "application/json", headers, body }
        }
        SinkKind::Elastic { url, index, auth } => {
            if let Some(a) = auth {
                headers.push(("Authorization".into(), a.expose().to_owned()));
            }
            let body = format::elastic_bulk(alerts, index).into_bytes();
            Request { url: format!("{url}/_bulk"), content_type: "application/x-ndjson", headers, body }
        }
        SinkKind::Slack { url } => Request {
            url: url.expose().to_owned(),
            content_type: "application/json",
            headers,
            body: format::slack_message(&alerts[0]).to_string().into_bytes(),
        },
        SinkKind::PagerDuty { url, routing_key } => Request {
            url: url.clone(),
            content_type: "application/json",
            headers,
            body: format::pagerduty_event(&alerts[0], routing_key.expose()).to_string().into_bytes(),
        },
        SinkKind::File { .. } | SinkKind::Stdout { .. } => {
            Request { url: String::new(), content_type: "", headers, body: Vec::new() }
        }
    }
}

/// HMAC-SHA256 of `body` under `key`, hex: the `X-Auditwatch-Signature`.
pub fn sign(key: &str, body: &[u8]) -> String {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What a response means for each alert of the request.
fn classify(kind: &SinkKind, status: u16, body: &str, retry_after: Option<Duration>, n: usize) -> Verdict {
    let all = |o: Outcome| Verdict::Each(vec![o; n]);
    match status {
        200..=299 => match kind {
            SinkKind::Elastic { .. } => elastic_items(body, n),
            _ => all(Outcome::Delivered),
        },
        408 => all(Outcome::Retry { reason: "timeout", after: retry_after }),
        429 => all(Outcome::Retry { reason: "http_429", after: retry_after }),
        500..=599 => all(Outcome::Retry { reason: "http_5xx", after: retry_after }),
        _ if n > 1 => Verdict::Split,
        _ => all(Outcome::Reject {
            reason: if (400..500).contains(&status) { "http_4xx" } else { "http_3xx" },
            status,
            response: body.to_owned(),
        }),
    }
}

/// Per-item outcomes of an Elasticsearch `_bulk` response.
fn elastic_items(body: &str, n: usize) -> Verdict {
    #[derive(serde::Deserialize)]
    struct Bulk {
        #[serde(default)]
        items: Vec<std::collections::BTreeMap<String, Item>>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        status: u16,
        #[serde(default)]
        error: Option<serde_json::Value>,
    }
    let Ok(bulk) = serde_json::from_str::<Bulk>(body) else {
        // Accepted but unreadable: send again; `create` by id makes a
        // second delivery a 409, not a duplicate.
        return Verdict::Each(vec![Outcome::Retry { reason: "io", after: None }; n]);
    };
    if bulk.items.len() != n {
        return Verdict::Each(vec![Outcome::Retry { reason: "io", after: None }; n]);
    }
    Verdict::Each(
        bulk.items
            .into_iter()
            .map(|item| {
                let Some(result) = item.into_values().next() else {
                    return Outcome::Retry { reason: "io", after: None };
                };
                match result.status {
                    200..=299 | 409 => Outcome::Delivered,
                    429 => Outcome::Retry { reason: "http_429", after: None },
                    500..=599 => Outcome::Retry { reason: "http_5xx", after: None },
                    status => Outcome::Reject {
                        reason: "item_rejected",
                        status,
                        response: result.error.map(|e| e.to_string()).unwrap_or_default(),
                    },
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::config::Secret;

    fn elastic() -> SinkKind {
        SinkKind::Elastic { url: "http://es".into(), index: "a".into(), auth: None }
    }

    #[test]
    fn statuses_are_classified() {
        let hook = SinkKind::Slack { url: Secret::new("http://h") };
        assert_eq!(classify(&hook, 200, "ok", None, 1), Verdict::Each(vec![Outcome::Delivered]));
        assert_eq!(
            classify(&hook, 429, "", Some(Duration::from_secs(3)), 1),
            Verdict::Each(vec![Outcome::Retry { reason: "http_429", after: Some(Duration::from_secs(3)) }])
        );
        assert_eq!(
            classify(&hook, 503, "", None, 1),
            Verdict::Each(vec![Outcome::Retry { reason: "http_5xx", after: None }])
        );
        assert_eq!(
            classify(&hook, 400, "invalid_blocks", None, 1),
            Verdict::Each(vec![Outcome::Reject { reason: "http_4xx", status: 400, response: "invalid_blocks".into() }])
        );
        // A batch refused as a whole is split to find the bad alert.
        assert_eq!(classify(&hook, 400, "", None, 3), Verdict::Split);
    }

    #[test]
    fn elastic_bulk_items_are_judged_one_by_one() {
        let body = r#"{"took":3,"errors":true,"items":[
            {"create":{"_id":"a","status":201}},
            {"create":{"_id":"b","status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"create":{"_id":"c","status":429}},
            {"create":{"_id":"d","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#;
        let Verdict::Each(o) = classify(&elastic(), 200, body, None, 4) else { panic!() };
        assert_eq!(o[0], Outcome::Delivered);
        assert_eq!(o[1], Outcome::Delivered);
        assert_eq!(o[2], Outcome::Retry { reason: "http_429", after: None });
        assert!(matches!(&o[3], Outcome::Reject { status: 400, response, .. } if response.contains("mapper_parsing")));
        // An answer that does not match the request is sent again.
        assert_eq!(
            classify(&elastic(), 200, "{}", None, 2),
            Verdict::Each(vec![Outcome::Retry { reason: "io", after: None }; 2])
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = retry_after(&later).unwrap();
        assert!(d > Duration::from_secs(110) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_spool_keeps_order_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = format::tests::sample();
        {
            let spool = Spool::open(dir.path()).unwrap();
            let depth = IntGauge::new("depth", "spool depth").unwrap();
            for id in ["a", "b", "c"] {
                a.alert_id = id.into();
                spool.push(&a, 10, "t", &depth).unwrap();
            }
            assert_eq!(depth.get(), 3);
            let head = spool.take(2).unwrap();
            assert_eq!(head.len(), 2);
            spool.remove(1, &depth).unwrap();
            assert_eq!(depth.get(), 2);
            spool.sync().unwrap();
        }
        let spool = Spool::open(dir.path()).unwrap();
        let ids: Vec<String> = spool
            .take(10)
            .unwrap()
            .iter()
            .map(|e| serde_json::from_slice::<Envelope>(e).unwrap().alert.alert_id)
            .collect();
        assert_eq!(ids, ["b", "c"]);
        spool.stop();
        assert!(spool.take(1).is_none());
        // One process per spool: a second opener is refused while this one holds it.
        let err = Spool::open(dir.path()).err().expect("the spool is locked").to_string();
        assert!(err.contains("in use by another auditwatch process"), "{err}");
        drop(spool);
        assert!(Spool::open(dir.path()).is_ok());
    }
}
