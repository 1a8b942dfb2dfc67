//! Sinks: where alerts and quarantined records are written.
//!
//! Owns the file formats of outputs: alerts as JSON lines or Parquet
//! ([`AlertFile`]), quarantined records as JSON lines ([`QuarantineFile`]).
//! Writing is deterministic: the same alerts give the same bytes.
//!
//! The fan-out to SIEMs and chat lives in the submodules: `config` (the
//! `[[sink]]` tables and secrets), `format` (OCSF, ECS, Splunk HEC, Slack,
//! PagerDuty shapes), `mask` (personal data), `deliver` (spool, retries,
//! dead letters), `fanout` (one alert to every sink), `metrics`.

pub mod config;
pub mod deliver;
pub mod fanout;
pub mod format;
pub mod mask;
pub mod metrics;
pub mod parquet;

pub use fanout::{DeliveryReport, FanOut, Mode};

use crate::alert::Alert;
use crate::decode::QuarantineReason;
use crate::detect::definition::Model;
use crate::source::Position;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{0}: unsupported alerts file; allowed extensions: .jsonl, .json, .parquet")]
    Extension(PathBuf),
    #[error("spool {path}: {message}")]
    Spool { path: PathBuf, message: String },
    #[error("sink metrics: {0}")]
    Metrics(String),
}

/// An alerts output file, by extension.
pub enum AlertFile {
    Jsonl { path: PathBuf, out: BufWriter<File> },
    Parquet(Box<parquet::AlertParquet>),
}

impl AlertFile {
    /// Creates (truncates) `path`; `.parquet` writes Parquet, `.jsonl`/`.json` JSON lines.
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "parquet" => Ok(AlertFile::Parquet(Box::new(parquet::AlertParquet::create(path)?))),
            "jsonl" | "json" | "ndjson" => {
                let f = File::create(path).map_err(|source| SinkError::Io { path: path.into(), source })?;
                Ok(AlertFile::Jsonl { path: path.into(), out: BufWriter::new(f) })
            }
            _ => Err(SinkError::Extension(path.into())),
        }
    }

    pub fn write(&mut self, alert: &Alert) -> Result<(), SinkError> {
        match self {
            AlertFile::Jsonl { path, out } => serde_json::to_writer(&mut *out, alert)
                .map_err(std::io::Error::from)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|source| SinkError::Io { path: path.clone(), source }),
            AlertFile::Parquet(p) => p.write(alert),
        }
    }

    /// Flushes and closes the file.
    pub fn finish(self) -> Result<(), SinkError> {
        match self {
            AlertFile::Jsonl { path, mut out } => out.flush().map_err(|source| SinkError::Io { path, source }),
            AlertFile::Parquet(p) => p.finish(),
        }
    }
}

/// Opens a JSON-lines file for appending across restarts and returns it
/// with its complete lines. A last line cut short by a crash is not an
/// alert: it is cut off the file (its alert is raised again).
pub(crate) fn reopen_lines(path: &Path) -> Result<(File, Vec<u8>), SinkError> {
    let io = |source| SinkError::Io { path: path.into(), source };
    let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path).map_err(io)?;
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut text).map_err(io)?;
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        tracing::warn!(path = %path.display(), bytes = text.len() - complete, "alerts file ends with a partial line (a crash while writing); dropping it");
        f.set_len(complete as u64).map_err(io)?;
        text.truncate(complete);
    }
    Ok((f, text))
}

/// An append-only JSON-lines alert log that survives restarts (live mode).
///
/// Opening it reads the `alert_id` of every alert it holds, so that an
/// alert raised again after a restart (the records since the last
/// checkpoint are read twice) is not written twice. A last line cut short by
/// a crash is not an alert: it is dropped, and the alert it began is raised
/// again from the records after the checkpoint. Nothing complete is ever
/// rewritten.
pub struct AlertLog {
    path: PathBuf,
    out: BufWriter<File>,
    ids: std::collections::HashSet<String>,
    /// Alerts found in the file when it was opened.
    pub held: u64,
    /// Alerts raised again and not written (already in the file).
    pub repeated: u64,
}

impl AlertLog {
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let (f, text) = reopen_lines(path)?;
        #[derive(serde::Deserialize)]
        struct Id {
            alert_id: String,
        }
        let mut ids = std::collections::HashSet::new();
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Id>(line) {
                Ok(id) => {
                    ids.insert(id.alert_id);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "a line of the alerts file is not an alert; kept as it is")
                }
            }
        }
        let held = ids.len() as u64;
        Ok(AlertLog { path: path.into(), out: BufWriter::new(f), ids, held, repeated: 0 })
    }

    /// Appends `alert` unless an alert with its id is already held; returns
    /// whether it was written.
    pub fn write(&mut self, alert: &Alert) -> Result<bool, SinkError> {
        if self.ids.contains(&alert.alert_id) {
            self.repeated += 1;
            return Ok(false);
        }
        serde_json::to_writer(&mut self.out, alert)
            .map_err(std::io::Error::from)
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(|source| SinkError::Io { path: self.path.clone(), source })?;
        self.ids.insert(alert.alert_id.clone());
        Ok(true)
    }

    /// Flushes and forces the alerts written so far to disk: after this
    /// they survive a crash.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        let io = |source| SinkError::Io { path: self.path.clone(), source };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_data().map_err(io)
    }
}

/// The quarantine file: one JSON object per refused record, with the
/// reason, where it came from, and the record itself (as text when it is
/// UTF-8, else hex, so nothing is lost).
pub struct QuarantineFile {
    path: PathBuf,
    out: BufWriter<File>,
}

/// The largest part of a refused record written to the quarantine file.
pub const QUARANTINE_RAW_LIMIT: usize = 64 * 1024;

impl QuarantineFile {
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let f = File::create(path).map_err(|source| SinkError::Io { path: path.into(), source })?;
        Ok(QuarantineFile { path: path.into(), out: BufWriter::new(f) })
    }

    /// Opens `path` for appending (live mode: a restart adds to it).
    pub fn append(path: &Path) -> Result<Self, SinkError> {
        let io = |source| SinkError::Io { path: path.into(), source };
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        Ok(QuarantineFile { path: path.into(), out: BufWriter::new(f) })
    }

    /// Flushes and forces what was written to disk.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        let io = |source| SinkError::Io { path: self.path.clone(), source };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_data().map_err(io)
    }

    pub fn write(&mut self, reason: QuarantineReason, position: &Position, raw: &[u8]) -> Result<(), SinkError> {
        let cut = &raw[..raw.len().min(QUARANTINE_RAW_LIMIT)];
        let record = match std::str::from_utf8(cut) {
            Ok(text) => {
                serde_json::json!({"reason": reason.name(), "origin": &*position.origin, "record": position.record, "raw": text, "truncated": cut.len() < raw.len()})
            }
            Err(_) => {
                serde_json::json!({"reason": reason.name(), "origin": &*position.origin, "record": position.record, "raw_hex": hex::encode(cut), "truncated": cut.len() < raw.len()})
            }
        };
        serde_json::to_writer(&mut self.out, &record)
            .map_err(std::io::Error::from)
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(|source| SinkError::Io { path: self.path.clone(), source })
    }

    pub fn finish(mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io { path: self.path, source })
    }
}

/// Whether the alert comes from a rule (no baseline, no expected value)
/// rather than a statistical model: the one answer every sink renders by.
pub fn is_rule(a: &Alert) -> bool {
    Model::named(&a.context.model).is_some_and(Model::is_rule)
}

/// Renders an alert for a terminal: severity, summary and the evidence.
pub fn render_alert(a: &Alert) -> String {
    let peer = a.context.peer_value.map(|p| format!(", peers of its kind {p:.1}")).unwrap_or_default();
    let figures = if is_rule(a) {
        format!("a rule, not a baseline: {} observed", a.observed)
    } else if a.context.model == "new_value" {
        format!("new values {} (chance of that {:.1e})", a.observed, a.expected)
    } else {
        format!(
            "observed {} vs expected {:.1} (95% {:.0}–{:.0}){peer}",
            a.observed, a.expected, a.expected_low, a.expected_high
        )
    };
    format!(
        "[{}] {} score {} (p={:.1e})  {}\n    {}\n    {figures}; baseline {:.0} h, {:.1} samples\n    evidence ({} of {}): {}\n    alert_id {}\n",
        a.severity.name().to_uppercase(),
        a.detector,
        a.score,
        a.p_value,
        a.window_start,
        a.summary,
        a.context.baseline_age_hours,
        a.context.baseline_samples,
        a.evidence.len(),
        a.context.evidence_total,
        a.evidence.join(", "),
        a.alert_id,
    )
}
