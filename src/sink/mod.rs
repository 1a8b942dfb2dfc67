//! Sinks: where alerts and quarantined records are written.
//!
//! Owns the file formats of outputs: alerts as JSON lines or Parquet
//! ([`AlertFile`]), quarantined records as JSON lines ([`QuarantineFile`]).
//! Writing is deterministic: the same alerts give the same bytes. Webhook
//! and SIEM sinks land with the fan-out work.

pub mod parquet;

use crate::alert::Alert;
use crate::decode::QuarantineReason;
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

/// Renders an alert for a terminal: severity, summary and the evidence.
pub fn render_alert(a: &Alert) -> String {
    let peer = a.context.peer_value.map(|p| format!(", peers of its kind {p:.1}")).unwrap_or_default();
    let figures = if matches!(a.context.model.as_str(), "offboarded" | "role_drift") {
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
