//! Parquet inputs: system-table exports (`system.access.audit`,
//! `system.billing.usage`, `system.billing.list_prices`,
//! `system.lakeflow.job_run_timeline`) read through `parquet`'s Arrow reader.
//!
//! Only the columns normalization reads are decoded (a projection by
//! name). Each row is presented to serde as a map ([`Cell`]), so the very
//! same `RawRecord` derive that reads JSON reads Parquet: one list of field
//! names and aliases, one normalization. Strings are borrowed from the
//! Arrow buffers; timestamps of any unit become epoch milliseconds;
//! decimals become floats; structs and `MAP<STRING,STRING>` (the
//! `request_params` column) become nested maps. A row that cannot be read
//! is quarantined as `bad_parquet`; a file that cannot be opened is an
//! error for the caller. Never panics on file content.

use super::files::SourceError;
use super::{Position, Record, RecordStream};
use crate::decode::raw::{Loose, RawRecord};
use crate::decode::{QuarantineReason, normalize};
use crate::event::Event;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow_array::{Array, ArrayRef, MapArray, RecordBatch, StructArray};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::Deserialize;
use serde::de::value::{Error as DeError, MapDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Top-level columns normalization reads (snake_case, as system tables
/// name them). Every other column is never decoded.
const COLUMNS: &[&str] = &[
    "event_time",
    "event_id",
    "service_name",
    "action_name",
    "request_id",
    "source_ip_address",
    "user_agent",
    "user_identity",
    "request_params",
    "identity_metadata",
    "response",
    "workspace_id",
    "record_id",
    "sku_name",
    "usage_quantity",
    "usage_start_time",
    "usage_end_time",
    "usage_metadata",
    "price_start_time",
    "price_end_time",
    "pricing",
    "job_id",
    "run_id",
    "period_start_time",
    "period_end_time",
    "result_state",
];

/// Rows decoded per Arrow batch.
const BATCH_ROWS: usize = 8192;

/// One value of one row, seen by serde.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Leaf(&'a dyn Array, usize),
    Struct(&'a StructArray, usize),
    Map(&'a MapArray, usize),
}

impl<'a> Cell<'a> {
    fn of(array: &'a dyn Array, row: usize) -> Cell<'a> {
        match array.data_type() {
            DataType::Struct(_) => match array.as_struct_opt() {
                Some(s) => Cell::Struct(s, row),
                None => Cell::Leaf(array, row),
            },
            DataType::Map(_, _) => match array.as_map_opt() {
                Some(m) => Cell::Map(m, row),
                None => Cell::Leaf(array, row),
            },
            _ => Cell::Leaf(array, row),
        }
    }

    fn is_null(&self) -> bool {
        match self {
            Cell::Leaf(a, r) => a.is_null(*r),
            Cell::Struct(a, r) => a.is_null(*r),
            Cell::Map(a, r) => a.is_null(*r),
        }
    }
}

/// A scalar cell as a [`Loose`] value, borrowing strings.
fn scalar<'a>(array: &'a dyn Array, row: usize) -> Loose<'a> {
    if array.is_null(row) {
        return Loose::Null;
    }
    let ms_per = |unit: &TimeUnit| match unit {
        TimeUnit::Second => (1000i64, 1i64),
        TimeUnit::Millisecond => (1, 1),
        TimeUnit::Microsecond => (1, 1000),
        TimeUnit::Nanosecond => (1, 1_000_000),
    };
    match array.data_type() {
        DataType::Utf8 => {
            array.as_string_opt::<i32>().map_or(Loose::Nested, |a| Loose::Str(Cow::Borrowed(a.value(row))))
        }
        DataType::LargeUtf8 => {
            array.as_string_opt::<i64>().map_or(Loose::Nested, |a| Loose::Str(Cow::Borrowed(a.value(row))))
        }
        DataType::Utf8View => {
            array.as_string_view_opt().map_or(Loose::Nested, |a| Loose::Str(Cow::Borrowed(a.value(row))))
        }
        DataType::Boolean => array.as_boolean_opt().map_or(Loose::Nested, |a| Loose::Bool(a.value(row))),
        DataType::Int8 => {
            array.as_primitive_opt::<Int8Type>().map_or(Loose::Nested, |a| Loose::Int(a.value(row).into()))
        }
        DataType::Int16 => {
            array.as_primitive_opt::<Int16Type>().map_or(Loose::Nested, |a| Loose::Int(a.value(row).into()))
        }
        DataType::Int32 => {
            array.as_primitive_opt::<Int32Type>().map_or(Loose::Nested, |a| Loose::Int(a.value(row).into()))
        }
        DataType::Int64 => array.as_primitive_opt::<Int64Type>().map_or(Loose::Nested, |a| Loose::Int(a.value(row))),
        DataType::UInt8 => {
            array.as_primitive_opt::<UInt8Type>().map_or(Loose::Nested, |a| Loose::Int(a.value(row).into()))
        }
        DataType::UInt16 => {
            array.as_primitive_opt::<UInt16Type>().map_or(Loose::Nested, |a| Loose::Int(a.value(row).into()))
        }
        DataType::UInt32 => {
            array.as_primitive_opt::<UInt32Type>().map_or(Loose::Nested, |a| Loose::Int(a.value(row).into()))
        }
        DataType::UInt64 => array.as_primitive_opt::<UInt64Type>().map_or(Loose::Nested, |a| {
            i64::try_from(a.value(row)).map(Loose::Int).unwrap_or(Loose::Float(a.value(row) as f64))
        }),
        DataType::Float32 => {
            array.as_primitive_opt::<Float32Type>().map_or(Loose::Nested, |a| Loose::Float(a.value(row).into()))
        }
        DataType::Float64 => {
            array.as_primitive_opt::<Float64Type>().map_or(Loose::Nested, |a| Loose::Float(a.value(row)))
        }
        // `usage_quantity` and prices are DECIMAL(38,18) in Databricks.
        DataType::Decimal128(_, scale) => array
            .as_primitive_opt::<arrow_array::types::Decimal128Type>()
            .map_or(Loose::Nested, |a| Loose::Float(a.value(row) as f64 / 10f64.powi((*scale).into()))),
        DataType::Date32 => array
            .as_primitive_opt::<Date32Type>()
            .map_or(Loose::Nested, |a| Loose::Int(i64::from(a.value(row)) * crate::time::MS_PER_DAY)),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive_opt::<TimestampSecondType>().map(|a| a.value(row)),
                TimeUnit::Millisecond => array.as_primitive_opt::<TimestampMillisecondType>().map(|a| a.value(row)),
                TimeUnit::Microsecond => array.as_primitive_opt::<TimestampMicrosecondType>().map(|a| a.value(row)),
                TimeUnit::Nanosecond => array.as_primitive_opt::<TimestampNanosecondType>().map(|a| a.value(row)),
            };
            let (mul, div) = ms_per(unit);
            v.map_or(Loose::Nested, |v| Loose::Int(v.saturating_mul(mul).div_euclid(div)))
        }
        _ => Loose::Nested,
    }
}

impl<'a> IntoDeserializer<'a, DeError> for Cell<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Cell<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            Cell::Struct(s, row) => {
                let fields = s.fields();
                let entries =
                    fields.iter().zip(s.columns()).map(move |(f, c)| (f.name().as_str(), Cell::of(c.as_ref(), row)));
                visitor.visit_map(MapDeserializer::new(entries.filter(|(_, c)| !c.is_null())))
            }
            Cell::Map(m, row) => {
                let offsets = m.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                let keys = m.keys();
                let values = m.values();
                let entries = (start..end).filter_map(move |i| {
                    let key = match scalar(keys.as_ref(), i) {
                        Loose::Str(Cow::Borrowed(k)) => k,
                        _ => return None,
                    };
                    let value = Cell::of(values.as_ref(), i);
                    (!value.is_null()).then_some((key, value))
                });
                visitor.visit_map(MapDeserializer::new(entries))
            }
            Cell::Leaf(a, row) => match scalar(a, row) {
                Loose::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
                Loose::Str(Cow::Owned(s)) => visitor.visit_string(s),
                Loose::Int(n) => visitor.visit_i64(n),
                Loose::Float(f) => visitor.visit_f64(f),
                Loose::Bool(b) => visitor.visit_bool(b),
                Loose::Null => visitor.visit_unit(),
                // Lists and other shapes: an empty sequence, ignored by `Loose`.
                Loose::Nested => visitor.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<Cell<'de>>())),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// A Parquet file read row by row.
pub struct ParquetRows {
    reader: ParquetRecordBatchReader,
    origin: Arc<str>,
    batch: Option<RecordBatch>,
    /// (column name, index in the batch) of the projected columns.
    names: Vec<&'static str>,
    row: usize,
    rows_done: u64,
    total_rows: u64,
    file_len: u64,
    failed: bool,
}

impl ParquetRows {
    /// Opens `path`, projecting the columns normalization reads.
    pub fn open(path: &Path, origin: String) -> Result<ParquetRows, SourceError> {
        let err = |message: String| SourceError::Parquet { path: path.into(), message };
        let file = File::open(path).map_err(|source| SourceError::Io { path: path.into(), source })?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(e.to_string()))?;
        let total_rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let schema = builder.schema().clone();
        let wanted: Vec<usize> =
            (0..schema.fields().len()).filter(|&i| COLUMNS.contains(&schema.field(i).name().as_str())).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
        let reader =
            builder.with_projection(mask).with_batch_size(BATCH_ROWS).build().map_err(|e| err(e.to_string()))?;
        Ok(ParquetRows {
            reader,
            origin: origin.into(),
            batch: None,
            names: Vec::new(),
            row: 0,
            rows_done: 0,
            total_rows,
            file_len,
            failed: false,
        })
    }

    fn next_batch(&mut self, raw: &mut Vec<u8>) -> Option<Option<Record>> {
        match self.reader.next()? {
            Ok(batch) => {
                self.names = batch
                    .schema()
                    .fields()
                    .iter()
                    .filter_map(|f| COLUMNS.iter().copied().find(|c| *c == f.name()))
                    .collect();
                self.batch = Some(batch);
                self.row = 0;
                Some(None)
            }
            Err(e) => {
                // A broken row group ends the file: what follows cannot be located.
                tracing::warn!(origin = %self.origin, error = %e, "unreadable Parquet data; rest of file skipped");
                self.failed = true;
                raw.clear();
                raw.extend_from_slice(format!("unreadable Parquet data after row {}: {e}", self.rows_done).as_bytes());
                Some(Some(Record::Quarantined(QuarantineReason::BadParquet)))
            }
        }
    }
}

fn row_record<'a>(batch: &'a RecordBatch, names: &[&'static str], row: usize) -> Result<RawRecord<'a>, DeError> {
    let entries = names
        .iter()
        .zip(batch.columns())
        .map(|(name, col): (&&'static str, &'a ArrayRef)| (*name, Cell::of(col.as_ref(), row)))
        .filter(|(_, c)| !c.is_null());
    RawRecord::deserialize(MapDeserializer::<_, DeError>::new(entries))
}

impl RecordStream for ParquetRows {
    fn next_record(&mut self, ev: &mut Event, raw: &mut Vec<u8>) -> Option<Record> {
        loop {
            if self.failed {
                return None;
            }
            let exhausted = self.batch.as_ref().is_none_or(|b| self.row >= b.num_rows());
            if exhausted {
                if let Some(quarantined) = self.next_batch(raw)? {
                    return Some(quarantined);
                }
                continue;
            }
            let batch = self.batch.as_ref()?;
            let row = self.row;
            self.row += 1;
            self.rows_done += 1;
            let outcome = match row_record(batch, &self.names, row) {
                Ok(record) => normalize(&record, ev).map_err(|reason| (reason, String::new())),
                Err(e) => Err((QuarantineReason::BadParquet, e.to_string())),
            };
            return Some(match outcome {
                Ok(shape) => Record::Event(shape),
                Err((reason, why)) => {
                    raw.clear();
                    let text = describe_row(batch, &self.names, row, &why);
                    raw.extend_from_slice(text.as_bytes());
                    Record::Quarantined(reason)
                }
            });
        }
    }

    fn position(&self) -> Position {
        Position { origin: self.origin.clone(), record: self.rows_done }
    }

    fn bytes_read(&self) -> u64 {
        if self.total_rows == 0 {
            return self.file_len;
        }
        (self.file_len as f64 * (self.rows_done as f64 / self.total_rows as f64)) as u64
    }
}

/// A refused row as JSON (its scalar columns), for the quarantine file.
fn describe_row(batch: &RecordBatch, names: &[&'static str], row: usize, why: &str) -> String {
    let mut obj = serde_json::Map::new();
    for (name, col) in names.iter().zip(batch.columns()) {
        let value = match scalar(col.as_ref(), row) {
            Loose::Str(s) => serde_json::Value::from(s.into_owned()),
            Loose::Int(n) => n.into(),
            Loose::Float(f) => f.into(),
            Loose::Bool(b) => b.into(),
            Loose::Null => serde_json::Value::Null,
            Loose::Nested => "<nested>".into(),
        };
        obj.insert((*name).to_owned(), value);
    }
    if !why.is_empty() {
        obj.insert("_error".into(), why.into());
    }
    serde_json::Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests;
