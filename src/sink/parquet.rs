//! Alerts as Parquet, for analysts who load replay results into DuckDB,
//! pandas or Spark. One row per alert; nested fields (`evidence`,
//! `context`) are flattened into columns a SQL engine reads directly:
//! `evidence` is a list of strings, `context.*` become `context_*`.

use super::SinkError;
use crate::alert::Alert;
use arrow_array::builder::{Float64Builder, ListBuilder, StringBuilder, UInt8Builder, UInt32Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows buffered before a record batch is written.
const BATCH_ROWS: usize = 4096;

pub struct AlertParquet {
    path: PathBuf,
    writer: ArrowWriter<File>,
    schema: Arc<Schema>,
    pending: Vec<Alert>,
}

fn schema() -> Arc<Schema> {
    let s = |name: &str| Field::new(name, DataType::Utf8, false);
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("schema_version", DataType::UInt32, false),
        s("alert_id"),
        s("detector"),
        s("principal"),
        s("workspace_id"),
        s("window_start"),
        s("window_end"),
        f("observed"),
        f("expected"),
        f("expected_low"),
        f("expected_high"),
        Field::new("score", DataType::UInt8, false),
        f("p_value"),
        s("severity"),
        s("summary"),
        Field::new("evidence", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        s("context_principal_kind"),
        Field::new("context_groups", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        Field::new("context_privileges", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        s("context_signal"),
        s("context_model"),
        f("context_baseline_age_hours"),
        f("context_baseline_samples"),
        Field::new("context_peer_value", DataType::Float64, true),
        Field::new("context_evidence_total", DataType::UInt64, false),
        s("context_config_version"),
        Field::new("risk_score", DataType::UInt8, false),
        Field::new("confidence", DataType::UInt8, false),
        Field::new("attack_tactics", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        Field::new("attack_techniques", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        Field::new("runbook", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
    ]))
}

impl AlertParquet {
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let file = File::create(path).map_err(|source| SinkError::Io { path: path.into(), source })?;
        let schema = schema();
        let writer = ArrowWriter::try_new(file, schema.clone(), None)
            .map_err(|e| SinkError::Parquet { path: path.into(), message: e.to_string() })?;
        Ok(AlertParquet { path: path.into(), writer, schema, pending: Vec::new() })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.pending.push(alert.clone());
        if self.pending.len() >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), SinkError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let strings = |get: &dyn Fn(&Alert) -> &str| -> ArrayRef {
            let mut b = StringBuilder::new();
            rows.iter().for_each(|a| b.append_value(get(a)));
            Arc::new(b.finish())
        };
        let floats = |get: &dyn Fn(&Alert) -> f64| -> ArrayRef {
            let mut b = Float64Builder::new();
            rows.iter().for_each(|a| b.append_value(get(a)));
            Arc::new(b.finish())
        };
        let lists = |get: &dyn Fn(&Alert) -> &[String]| -> ArrayRef {
            let mut b = ListBuilder::new(StringBuilder::new());
            for a in &rows {
                get(a).iter().for_each(|e| b.values().append_value(e));
                b.append(true);
            }
            Arc::new(b.finish())
        };
        let mut version = UInt32Builder::new();
        let mut score = UInt8Builder::new();
        let mut peer = Float64Builder::new();
        let mut total = UInt64Builder::new();
        let (mut risk, mut confidence) = (UInt8Builder::new(), UInt8Builder::new());
        let mut tactics = ListBuilder::new(StringBuilder::new());
        let mut techniques = ListBuilder::new(StringBuilder::new());
        for a in &rows {
            risk.append_value(a.triage.risk_score);
            confidence.append_value(a.triage.confidence);
            for t in &a.triage.attack {
                tactics.values().append_value(&t.tactic_id);
                techniques.values().append_value(t.subtechnique_id.as_deref().unwrap_or(&t.technique_id));
            }
            tactics.append(true);
            techniques.append(true);
        }
        for a in &rows {
            version.append_value(a.schema_version);
            score.append_value(a.score);
            peer.append_option(a.context.peer_value);
            total.append_value(a.context.evidence_total);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(version.finish()),
            strings(&|a| &a.alert_id),
            strings(&|a| &a.detector),
            strings(&|a| &a.principal),
            strings(&|a| &a.workspace_id),
            strings(&|a| &a.window_start),
            strings(&|a| &a.window_end),
            floats(&|a| a.observed),
            floats(&|a| a.expected),
            floats(&|a| a.expected_low),
            floats(&|a| a.expected_high),
            Arc::new(score.finish()),
            floats(&|a| a.p_value),
            strings(&|a| a.severity.name()),
            strings(&|a| &a.summary),
            lists(&|a| &a.evidence),
            strings(&|a| a.context.principal_kind.name()),
            lists(&|a| &a.context.groups),
            lists(&|a| &a.context.privileges),
            strings(&|a| &a.context.signal),
            strings(&|a| &a.context.model),
            floats(&|a| a.context.baseline_age_hours),
            floats(&|a| a.context.baseline_samples),
            Arc::new(peer.finish()),
            Arc::new(total.finish()),
            strings(&|a| &a.context.config_version),
            Arc::new(risk.finish()),
            Arc::new(confidence.finish()),
            Arc::new(tactics.finish()),
            Arc::new(techniques.finish()),
            lists(&|a| &a.triage.runbook),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| SinkError::Parquet { path: self.path.clone(), message: e.to_string() })?;
        self.writer.write(&batch).map_err(|e| SinkError::Parquet { path: self.path.clone(), message: e.to_string() })
    }

    pub fn finish(mut self) -> Result<(), SinkError> {
        self.flush_batch()?;
        self.writer.close().map(|_| ()).map_err(|e| SinkError::Parquet { path: self.path, message: e.to_string() })
    }
}
