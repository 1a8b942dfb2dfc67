//! Parquet inputs: exports of the system tables `system.access.audit`,
//! `system.billing.usage`, `system.billing.list_prices` and
//! `system.lakeflow.job_run_timeline`, read with `parquet`'s Arrow reader.
//!
//! Owns turning Arrow columns into the [`RawRecord`] every input format
//! shares, so that a Parquet row goes through exactly the normalization a
//! JSON line does ([`normalize`]). Only the top-level columns normalization
//! reads are decoded (a projection by name); the file is read one batch at
//! a time, so memory is bounded by a batch, not by the file. Columns are
//! recognised and downcast once per batch; per row, strings are borrowed
//! from the Arrow buffers and nothing is allocated unless the row is
//! quarantined.
//!
//! Column types, as Databricks (Spark) and pyarrow write them: strings
//! (also as binary or dictionary-encoded), booleans, integers, floats,
//! decimals (as floats), dates and timestamps of any unit and time zone (as
//! epoch milliseconds), structs, and `MAP<STRING, _>` (`request_params`);
//! a nested column may be either a struct or a map. An absent column and a
//! null value both read as absent.
//!
//! It must never panic on file content and never guess: a file whose footer
//! cannot be read is an error for the caller; a value of a type it cannot
//! read quarantines that row as `bad_parquet`, naming the column; a row
//! group that cannot be decoded is one `bad_parquet` record, and reading
//! goes on with the next row group, which the footer still locates. The
//! `parquet` crate itself panics on some damaged files (its assertions on
//! offsets and lengths; the fuzz tests here find them), so its calls run
//! under `catch_unwind` and such a panic counts as unreadable data.

use super::files::SourceError;
use super::{Position, Record, RecordStream};
use crate::decode::raw::{
    Loose, Obj, RawIdentity, RawIdentityMetadata, RawParams, RawPricing, RawRecord, RawResponse, RawUsageMetadata, Text,
};
use crate::decode::{QuarantineReason, normalize};
use crate::event::Event;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Decimal32Array, Decimal64Array,
    Decimal128Array, Decimal256Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeBinaryArray, LargeStringArray, MapArray, RecordBatch, StringArray, StringViewArray, StructArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array, make_array,
};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use std::borrow::Cow;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

/// The top-level columns normalization reads: the snake_case fields of
/// [`RawRecord`]. No other column is ever decoded.
pub const COLUMNS: [&str; 33] = [
    "event_time",
    "audit_level",
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
    "record_type",
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
    "source_table_full_name",
    "target_table_full_name",
    "created_by",
    "entity_type",
    "statement_id",
];

/// Rows decoded per Arrow batch: large enough that per-batch work (column
/// lookup, downcasts) vanishes per row, small enough to bound memory.
const BATCH_ROWS: usize = 8192;

// Keys of each nested column, mapped to a slot of the `Raw*` struct it
// fills: every serde name and alias of that struct (a test checks that
// these tables and the serde derives agree). A struct column is matched by
// child name once per batch, a map column by key per entry.
const IDENTITY: &[(&str, usize)] = &[("email", 0), ("subject_name", 1), ("subjectName", 1)];
const IDENTITY_METADATA: &[(&str, usize)] =
    &[("run_as", 0), ("run_by", 1), ("acting_as", 2), ("owned_by", 3), ("created_by", 4)];
const RESPONSE: &[(&str, usize)] = &[("status_code", 0), ("statusCode", 0), ("error_message", 1), ("errorMessage", 1)];
const PARAMS: &[(&str, usize)] = &[
    ("full_name_arg", 0),
    ("securable_full_name", 1),
    ("name", 2),
    ("path", 3),
    ("notebook_id", 4),
    ("notebookId", 4),
    ("warehouse_id", 5),
    ("warehouseId", 5),
    ("cluster_id", 6),
    ("clusterId", 6),
    ("scope", 7),
    ("key", 8),
    ("mount_point", 9),
    ("mountPoint", 9),
    ("target_user_name", 10),
    ("targetUserName", 10),
    ("principal", 11),
    ("user", 12),
    ("target_group_name", 13),
    ("targetGroupName", 13),
    ("job_id", 14),
    ("jobId", 14),
    ("run_id", 15),
    ("runId", 15),
    ("job_terminal_state", 16),
    ("jobTerminalState", 16),
    ("changes", 17),
    ("endpoint", 18),
    ("role", 19),
    ("owner", 20),
    ("recipient_name", 21),
    ("recipientName", 21),
    ("authentication_method", 22),
    ("authenticationMethod", 22),
];
const USAGE_METADATA: &[(&str, usize)] = &[
    ("job_id", 0),
    ("job_run_id", 1),
    ("cluster_id", 2),
    ("warehouse_id", 3),
    ("notebook_id", 4),
    ("dlt_pipeline_id", 5),
    ("endpoint_name", 6),
];
const PRICING: &[(&str, usize)] = &[("default", 0)];

fn slot_of(keys: &[(&'static str, usize)], key: &str) -> Option<usize> {
    keys.iter().find(|(k, _)| *k == key).map(|&(_, slot)| slot)
}

/// The canonical (first listed) name of a slot, for error messages.
fn slot_name(keys: &[(&'static str, usize)], slot: usize) -> &'static str {
    keys.iter().find(|&&(_, s)| s == slot).map_or("?", |&(k, _)| k)
}

fn identity([email, subject_name]: [Text<'_>; 2]) -> RawIdentity<'_> {
    RawIdentity { email, subject_name }
}

fn identity_metadata([run_as, run_by, acting_as, owned_by, created_by]: [Text<'_>; 5]) -> RawIdentityMetadata<'_> {
    RawIdentityMetadata { run_as, run_by, acting_as, owned_by, created_by }
}

fn response([status_code, error_message]: [Text<'_>; 2]) -> RawResponse<'_> {
    RawResponse { status_code, error_message }
}

fn params(
    [
        full_name_arg,
        securable_full_name,
        name,
        path,
        notebook_id,
        warehouse_id,
        cluster_id,
        scope,
        key,
        mount_point,
        target_user_name,
        principal,
        user,
        target_group_name,
        job_id,
        run_id,
        job_terminal_state,
        changes,
        endpoint,
        role,
        owner,
        recipient_name,
        authentication_method,
    ]: [Text<'_>; 23],
) -> RawParams<'_> {
    RawParams {
        full_name_arg,
        securable_full_name,
        name,
        path,
        notebook_id,
        warehouse_id,
        cluster_id,
        scope,
        key,
        mount_point,
        target_user_name,
        principal,
        user,
        target_group_name,
        job_id,
        run_id,
        job_terminal_state,
        changes,
        endpoint,
        role,
        owner,
        recipient_name,
        authentication_method,
    }
}

fn usage_metadata(
    [job_id, job_run_id, cluster_id, warehouse_id, notebook_id, dlt_pipeline_id, endpoint_name]: [Text<'_>; 7],
) -> RawUsageMetadata<'_> {
    RawUsageMetadata { job_id, job_run_id, cluster_id, warehouse_id, notebook_id, dlt_pipeline_id, endpoint_name }
}

fn pricing([default]: [Text<'_>; 1]) -> RawPricing<'_> {
    RawPricing { default }
}

/// Why one value could not be read. Borrows from the batch: building it
/// allocates nothing, only describing it does.
#[derive(Debug, Clone, Copy)]
enum Problem<'a> {
    /// A type this reader does not turn into a scalar (lists, intervals, ...).
    Type(&'a DataType),
    /// Binary that is not UTF-8 where text was expected.
    NotUtf8,
    /// Offsets or dictionary keys pointing outside their values.
    OutOfRange,
}

/// A problem, and the column (and nested field) it was found in.
#[derive(Debug, Clone, Copy)]
struct Bad<'a> {
    column: &'static str,
    field: Option<&'static str>,
    problem: Problem<'a>,
}

impl std::fmt::Display for Bad<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.column)?;
        if let Some(field) = self.field {
            write!(f, ".{field}")?;
        }
        match self.problem {
            Problem::Type(t) => write!(f, ": unsupported type {t}"),
            Problem::NotUtf8 => f.write_str(": binary value is not UTF-8"),
            Problem::OutOfRange => f.write_str(": offsets or dictionary keys out of range"),
        }
    }
}

/// One scalar column (top-level or nested), downcast once per batch. The
/// arrays are cheap clones (reference-counted buffers), so a batch's
/// columns can outlive the `RecordBatch` they came from.
enum Leaf {
    /// A column the file does not have, or of Arrow type `Null`.
    Absent,
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    Utf8View(StringViewArray),
    /// Binary holding text: old Parquet writers store strings unannotated.
    Binary(BinaryArray),
    LargeBinary(LargeBinaryArray),
    BinaryView(BinaryViewArray),
    Bool(BooleanArray),
    I8(Int8Array),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    U8(UInt8Array),
    U16(UInt16Array),
    U32(UInt32Array),
    U64(UInt64Array),
    F32(Float32Array),
    F64(Float64Array),
    Dec32(Decimal32Array, i8),
    Dec64(Decimal64Array, i8),
    Dec128(Decimal128Array, i8),
    Dec256(Decimal256Array, i8),
    Date32(Date32Array),
    /// Timestamps of every unit and `Date64`, as their raw count, with
    /// the multiplier and divisor that turn it into milliseconds.
    Millis(Int64Array, i64, i64),
    /// Dictionary-encoded values: the keys (an integer leaf) and values.
    Dict(Box<Leaf>, Box<Leaf>, usize),
    Unsupported(ArrayRef),
}

impl Leaf {
    fn of(array: &dyn Array) -> Leaf {
        Self::try_of(array).unwrap_or_else(|| Leaf::Unsupported(make_array(array.to_data())))
    }

    fn try_of(a: &dyn Array) -> Option<Leaf> {
        Some(match a.data_type() {
            DataType::Null => Leaf::Absent,
            DataType::Utf8 => Leaf::Utf8(a.as_string_opt::<i32>()?.clone()),
            DataType::LargeUtf8 => Leaf::LargeUtf8(a.as_string_opt::<i64>()?.clone()),
            DataType::Utf8View => Leaf::Utf8View(a.as_string_view_opt()?.clone()),
            DataType::Binary => Leaf::Binary(a.as_binary_opt::<i32>()?.clone()),
            DataType::LargeBinary => Leaf::LargeBinary(a.as_binary_opt::<i64>()?.clone()),
            DataType::BinaryView => Leaf::BinaryView(a.as_binary_view_opt()?.clone()),
            DataType::Boolean => Leaf::Bool(a.as_boolean_opt()?.clone()),
            DataType::Int8 => Leaf::I8(a.as_primitive_opt::<Int8Type>()?.clone()),
            DataType::Int16 => Leaf::I16(a.as_primitive_opt::<Int16Type>()?.clone()),
            DataType::Int32 => Leaf::I32(a.as_primitive_opt::<Int32Type>()?.clone()),
            DataType::Int64 => Leaf::I64(a.as_primitive_opt::<Int64Type>()?.clone()),
            DataType::UInt8 => Leaf::U8(a.as_primitive_opt::<UInt8Type>()?.clone()),
            DataType::UInt16 => Leaf::U16(a.as_primitive_opt::<UInt16Type>()?.clone()),
            DataType::UInt32 => Leaf::U32(a.as_primitive_opt::<UInt32Type>()?.clone()),
            DataType::UInt64 => Leaf::U64(a.as_primitive_opt::<UInt64Type>()?.clone()),
            DataType::Float32 => Leaf::F32(a.as_primitive_opt::<Float32Type>()?.clone()),
            DataType::Float64 => Leaf::F64(a.as_primitive_opt::<Float64Type>()?.clone()),
            DataType::Decimal32(_, s) => Leaf::Dec32(a.as_primitive_opt::<Decimal32Type>()?.clone(), *s),
            DataType::Decimal64(_, s) => Leaf::Dec64(a.as_primitive_opt::<Decimal64Type>()?.clone(), *s),
            DataType::Decimal128(_, s) => Leaf::Dec128(a.as_primitive_opt::<Decimal128Type>()?.clone(), *s),
            DataType::Decimal256(_, s) => Leaf::Dec256(a.as_primitive_opt::<Decimal256Type>()?.clone(), *s),
            DataType::Date32 => Leaf::Date32(a.as_primitive_opt::<Date32Type>()?.clone()),
            DataType::Date64 => Leaf::Millis(a.as_primitive_opt::<Date64Type>()?.reinterpret_cast(), 1, 1),
            DataType::Timestamp(unit, _) => {
                let counts = match unit {
                    TimeUnit::Second => a.as_primitive_opt::<TimestampSecondType>()?.reinterpret_cast(),
                    TimeUnit::Millisecond => a.as_primitive_opt::<TimestampMillisecondType>()?.reinterpret_cast(),
                    TimeUnit::Microsecond => a.as_primitive_opt::<TimestampMicrosecondType>()?.reinterpret_cast(),
                    TimeUnit::Nanosecond => a.as_primitive_opt::<TimestampNanosecondType>()?.reinterpret_cast(),
                };
                let (mul, div) = match unit {
                    TimeUnit::Second => (1000, 1),
                    TimeUnit::Millisecond => (1, 1),
                    TimeUnit::Microsecond => (1, 1000),
                    TimeUnit::Nanosecond => (1, 1_000_000),
                };
                Leaf::Millis(counts, mul, div)
            }
            DataType::Dictionary(_, _) => {
                let dict = a.as_any_dictionary_opt()?;
                let values = dict.values();
                Leaf::Dict(Box::new(Leaf::try_of(dict.keys())?), Box::new(Leaf::of(values.as_ref())), values.len())
            }
            _ => return None,
        })
    }

    /// The value at `row`: `None` when null. `row` must be below the
    /// array's length (the caller checks nested offsets and keys).
    fn get(&self, row: usize) -> Result<Text<'_>, Problem<'_>> {
        fn cell<'a, A: Array>(a: &'a A, row: usize, value: impl FnOnce(&'a A) -> Loose<'a>) -> Text<'a> {
            if a.is_null(row) { None } else { Some(value(a)) }
        }
        fn utf8(bytes: &[u8]) -> Result<Text<'_>, Problem<'_>> {
            std::str::from_utf8(bytes).map(|s| Some(Loose::Str(Cow::Borrowed(s)))).map_err(|_| Problem::NotUtf8)
        }
        let str = |s| Loose::Str(Cow::Borrowed(s));
        Ok(match self {
            Leaf::Absent => None,
            Leaf::Utf8(a) => cell(a, row, |a| str(a.value(row))),
            Leaf::LargeUtf8(a) => cell(a, row, |a| str(a.value(row))),
            Leaf::Utf8View(a) => cell(a, row, |a| str(a.value(row))),
            Leaf::Binary(a) => return if a.is_null(row) { Ok(None) } else { utf8(a.value(row)) },
            Leaf::LargeBinary(a) => return if a.is_null(row) { Ok(None) } else { utf8(a.value(row)) },
            Leaf::BinaryView(a) => return if a.is_null(row) { Ok(None) } else { utf8(a.value(row)) },
            Leaf::Bool(a) => cell(a, row, |a| Loose::Bool(a.value(row))),
            Leaf::I8(a) => cell(a, row, |a| Loose::Int(a.value(row).into())),
            Leaf::I16(a) => cell(a, row, |a| Loose::Int(a.value(row).into())),
            Leaf::I32(a) => cell(a, row, |a| Loose::Int(a.value(row).into())),
            Leaf::I64(a) => cell(a, row, |a| Loose::Int(a.value(row))),
            Leaf::U8(a) => cell(a, row, |a| Loose::Int(a.value(row).into())),
            Leaf::U16(a) => cell(a, row, |a| Loose::Int(a.value(row).into())),
            Leaf::U32(a) => cell(a, row, |a| Loose::Int(a.value(row).into())),
            // As serde reads a JSON number: an integer while it fits i64.
            Leaf::U64(a) => cell(a, row, |a| {
                let v = a.value(row);
                i64::try_from(v).map_or(Loose::Float(v as f64), Loose::Int)
            }),
            Leaf::F32(a) => cell(a, row, |a| Loose::Float(a.value(row).into())),
            Leaf::F64(a) => cell(a, row, |a| Loose::Float(a.value(row))),
            Leaf::Dec32(a, s) => cell(a, row, |a| Loose::Float(decimal(a.value(row).into(), *s))),
            Leaf::Dec64(a, s) => cell(a, row, |a| Loose::Float(decimal(a.value(row).into(), *s))),
            Leaf::Dec128(a, s) => cell(a, row, |a| Loose::Float(decimal(a.value(row), *s))),
            Leaf::Dec256(a, s) => {
                cell(a, row, |a| {
                    let v = a.value(row);
                    // Beyond i128 (never written by Databricks): through text.
                    Loose::Float(v.to_i128().map_or_else(
                        || format!("{v}e{}", -i32::from(*s)).parse().unwrap_or(f64::NAN),
                        |v| decimal(v, *s),
                    ))
                })
            }
            Leaf::Date32(a) => cell(a, row, |a| Loose::Int(i64::from(a.value(row)) * crate::time::MS_PER_DAY)),
            Leaf::Millis(a, mul, div) => {
                cell(a, row, |a| Loose::Int(a.value(row).saturating_mul(*mul).div_euclid(*div)))
            }
            Leaf::Dict(keys, values, len) => {
                let key = match keys.get(row)? {
                    None => return Ok(None),
                    Some(k) => k.as_i64().and_then(|k| usize::try_from(k).ok()).filter(|k| k < len),
                };
                return values.get(key.ok_or(Problem::OutOfRange)?);
            }
            Leaf::Unsupported(a) => return if a.is_null(row) { Ok(None) } else { Err(Problem::Type(a.data_type())) },
        })
    }
}

/// Powers of ten exactly representable as `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A decimal `unscaled × 10^-scale` as the `f64` nearest to it, as parsing
/// its text (the JSON path) gives.
fn decimal(unscaled: i128, scale: i8) -> f64 {
    // Both operands exact: one correctly rounded division.
    if unscaled.unsigned_abs() <= 1 << 53 && (0..=22).contains(&scale) {
        return unscaled as f64 / POW10[scale as usize];
    }
    // Otherwise the integer alone would round once before dividing: parse
    // the exact text instead, in a stack buffer (i128 needs 40 bytes).
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    let written = std::io::Write::write_fmt(&mut w, format_args!("{unscaled}e{}", -i32::from(scale)));
    let len = 64 - w.len();
    match (written, std::str::from_utf8(&buf[..len])) {
        (Ok(()), Ok(text)) => text.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// A struct or map column whose fields fill one `Raw*` struct.
enum Nested {
    Absent,
    /// The struct (for its nulls) and, per known child, its slot and leaf.
    Struct(StructArray, Vec<(usize, Leaf)>),
    /// The map (for its nulls and offsets), its keys and its values.
    Map(MapArray, Box<(Leaf, Leaf)>),
    Unsupported(ArrayRef),
}

impl Nested {
    fn of(array: &ArrayRef, keys: &[(&'static str, usize)]) -> Nested {
        match array.data_type() {
            DataType::Null => Nested::Absent,
            DataType::Struct(_) => match array.as_struct_opt() {
                // Children shorter than their struct would be a broken
                // file; refuse the column rather than index past them.
                Some(s) if s.columns().iter().all(|c| c.len() == s.len()) => {
                    let fields = s
                        .fields()
                        .iter()
                        .zip(s.columns())
                        .filter_map(|(f, c)| Some((slot_of(keys, f.name())?, Leaf::of(c.as_ref()))))
                        .collect();
                    Nested::Struct(s.clone(), fields)
                }
                _ => Nested::Unsupported(array.clone()),
            },
            DataType::Map(_, _) => match array.as_map_opt() {
                Some(m) => {
                    let entries = (Leaf::of(m.keys().as_ref()), Leaf::of(m.values().as_ref()));
                    Nested::Map(m.clone(), Box::new(entries))
                }
                None => Nested::Unsupported(array.clone()),
            },
            _ => Nested::Unsupported(array.clone()),
        }
    }

    /// Reads the fields at `row` into `slots`; `Ok(false)` when the value
    /// is absent or null. A map key that names no slot is skipped; when two
    /// keys name the same slot (`warehouseId` and `warehouse_id`), the first
    /// non-null one is kept.
    fn read<'a, const N: usize>(
        &'a self,
        row: usize,
        keys: &[(&'static str, usize)],
        slots: &mut [Text<'a>; N],
    ) -> Result<bool, (Option<&'static str>, Problem<'a>)> {
        match self {
            Nested::Absent => Ok(false),
            Nested::Struct(s, fields) => {
                if s.is_null(row) {
                    return Ok(false);
                }
                for (slot, leaf) in fields {
                    let value = leaf.get(row).map_err(|p| (Some(slot_name(keys, *slot)), p))?;
                    if let Some(dst) = slots.get_mut(*slot).filter(|d| d.is_none()) {
                        *dst = value;
                    }
                }
                Ok(true)
            }
            Nested::Map(m, key_values) => {
                let (map_keys, map_values) = &**key_values;
                if m.is_null(row) {
                    return Ok(false);
                }
                let offsets = m.value_offsets();
                let range = match (offsets.get(row), offsets.get(row + 1)) {
                    (Some(&start), Some(&end)) => usize::try_from(start).ok().zip(usize::try_from(end).ok()),
                    _ => None,
                };
                let len = m.keys().len().min(m.values().len());
                let (start, end) = range.filter(|&(s, e)| s <= e && e <= len).ok_or((None, Problem::OutOfRange))?;
                for i in start..end {
                    let Some(Loose::Str(key)) = map_keys.get(i).map_err(|p| (None, p))? else { continue };
                    let Some(slot) = slot_of(keys, &key) else { continue };
                    let value = map_values.get(i).map_err(|p| (Some(slot_name(keys, slot)), p))?;
                    if let Some(dst) = slots.get_mut(slot).filter(|d| d.is_none()) {
                        *dst = value;
                    }
                }
                Ok(true)
            }
            Nested::Unsupported(a) => {
                if a.is_null(row) {
                    Ok(false)
                } else {
                    Err((None, Problem::Type(a.data_type())))
                }
            }
        }
    }

    /// Every (key, scalar value) of a map column's `row`, as text, for
    /// `Event::params` (a struct column's fields are the typed ones only).
    fn each_entry(&self, row: usize, mut f: impl FnMut(&str, String)) {
        let Nested::Map(m, key_values) = self else { return };
        let (map_keys, map_values) = &**key_values;
        if m.is_null(row) {
            return;
        }
        let offsets = m.value_offsets();
        let (Some(&start), Some(&end)) = (offsets.get(row), offsets.get(row + 1)) else { return };
        let len = m.keys().len().min(m.values().len());
        let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else { return };
        for i in start..end.min(len) {
            let Ok(Some(Loose::Str(key))) = map_keys.get(i) else { continue };
            let value = match map_values.get(i) {
                Ok(Some(Loose::Str(v))) => v.into_owned(),
                Ok(Some(Loose::Int(n))) => n.to_string(),
                Ok(Some(Loose::Float(x))) => x.to_string(),
                Ok(Some(Loose::Bool(b))) => b.to_string(),
                _ => continue,
            };
            f(&key, value);
        }
    }
}

/// The projected columns of one batch, recognised by name and downcast.
struct Columns {
    rows: usize,
    event_time: Leaf,
    audit_level: Leaf,
    event_id: Leaf,
    service_name: Leaf,
    action_name: Leaf,
    request_id: Leaf,
    source_ip_address: Leaf,
    user_agent: Leaf,
    user_identity: Nested,
    request_params: Nested,
    identity_metadata: Nested,
    response: Nested,
    workspace_id: Leaf,
    record_id: Leaf,
    sku_name: Leaf,
    usage_quantity: Leaf,
    record_type: Leaf,
    usage_start_time: Leaf,
    usage_end_time: Leaf,
    usage_metadata: Nested,
    price_start_time: Leaf,
    price_end_time: Leaf,
    pricing: Nested,
    job_id: Leaf,
    run_id: Leaf,
    period_start_time: Leaf,
    period_end_time: Leaf,
    result_state: Leaf,
    source_table_full_name: Leaf,
    target_table_full_name: Leaf,
    created_by: Leaf,
    entity_type: Leaf,
    statement_id: Leaf,
}

impl Columns {
    fn empty() -> Columns {
        use Leaf::Absent as L;
        use Nested::Absent as N;
        Columns {
            rows: 0,
            event_time: L,
            audit_level: L,
            event_id: L,
            service_name: L,
            action_name: L,
            request_id: L,
            source_ip_address: L,
            user_agent: L,
            user_identity: N,
            request_params: N,
            identity_metadata: N,
            response: N,
            workspace_id: L,
            record_id: L,
            sku_name: L,
            usage_quantity: L,
            record_type: L,
            usage_start_time: L,
            usage_end_time: L,
            usage_metadata: N,
            price_start_time: L,
            price_end_time: L,
            pricing: N,
            job_id: L,
            run_id: L,
            period_start_time: L,
            period_end_time: L,
            result_state: L,
            source_table_full_name: L,
            target_table_full_name: L,
            created_by: L,
            entity_type: L,
            statement_id: L,
        }
    }

    fn of(batch: &RecordBatch) -> Columns {
        let mut c = Columns::empty();
        c.rows = batch.num_rows();
        for (field, a) in batch.schema_ref().fields().iter().zip(batch.columns()) {
            match field.name().as_str() {
                "event_time" => c.event_time = Leaf::of(a.as_ref()),
                "audit_level" => c.audit_level = Leaf::of(a.as_ref()),
                "event_id" => c.event_id = Leaf::of(a.as_ref()),
                "service_name" => c.service_name = Leaf::of(a.as_ref()),
                "action_name" => c.action_name = Leaf::of(a.as_ref()),
                "request_id" => c.request_id = Leaf::of(a.as_ref()),
                "source_ip_address" => c.source_ip_address = Leaf::of(a.as_ref()),
                "user_agent" => c.user_agent = Leaf::of(a.as_ref()),
                "user_identity" => c.user_identity = Nested::of(a, IDENTITY),
                "request_params" => c.request_params = Nested::of(a, PARAMS),
                "identity_metadata" => c.identity_metadata = Nested::of(a, IDENTITY_METADATA),
                "response" => c.response = Nested::of(a, RESPONSE),
                "workspace_id" => c.workspace_id = Leaf::of(a.as_ref()),
                "record_id" => c.record_id = Leaf::of(a.as_ref()),
                "sku_name" => c.sku_name = Leaf::of(a.as_ref()),
                "usage_quantity" => c.usage_quantity = Leaf::of(a.as_ref()),
                "record_type" => c.record_type = Leaf::of(a.as_ref()),
                "usage_start_time" => c.usage_start_time = Leaf::of(a.as_ref()),
                "usage_end_time" => c.usage_end_time = Leaf::of(a.as_ref()),
                "usage_metadata" => c.usage_metadata = Nested::of(a, USAGE_METADATA),
                "price_start_time" => c.price_start_time = Leaf::of(a.as_ref()),
                "price_end_time" => c.price_end_time = Leaf::of(a.as_ref()),
                "pricing" => c.pricing = Nested::of(a, PRICING),
                "job_id" => c.job_id = Leaf::of(a.as_ref()),
                "run_id" => c.run_id = Leaf::of(a.as_ref()),
                "period_start_time" => c.period_start_time = Leaf::of(a.as_ref()),
                "period_end_time" => c.period_end_time = Leaf::of(a.as_ref()),
                "result_state" => c.result_state = Leaf::of(a.as_ref()),
                "source_table_full_name" => c.source_table_full_name = Leaf::of(a.as_ref()),
                "target_table_full_name" => c.target_table_full_name = Leaf::of(a.as_ref()),
                "created_by" => c.created_by = Leaf::of(a.as_ref()),
                "entity_type" => c.entity_type = Leaf::of(a.as_ref()),
                "statement_id" => c.statement_id = Leaf::of(a.as_ref()),
                _ => {}
            }
        }
        c
    }

    /// The row `r` reads as a [`RawRecord`] borrowing from the batch. A
    /// value that cannot be read is noted in `r` and read as
    /// [`Loose::Nested`], so the rest of the row can still be shown.
    fn record<'a>(&'a self, r: &mut RowReader<'a>) -> RawRecord<'a> {
        RawRecord {
            event_time: r.leaf(&self.event_time, "event_time"),
            audit_level: r.leaf(&self.audit_level, "audit_level"),
            event_id: r.leaf(&self.event_id, "event_id"),
            service_name: r.leaf(&self.service_name, "service_name"),
            action_name: r.leaf(&self.action_name, "action_name"),
            request_id: r.leaf(&self.request_id, "request_id"),
            source_ip_address: r.leaf(&self.source_ip_address, "source_ip_address"),
            user_agent: r.leaf(&self.user_agent, "user_agent"),
            user_identity: r.nested(&self.user_identity, "user_identity", IDENTITY, identity),
            request_params: r.nested(&self.request_params, "request_params", PARAMS, params),
            identity_metadata: r.nested(
                &self.identity_metadata,
                "identity_metadata",
                IDENTITY_METADATA,
                identity_metadata,
            ),
            response: r.nested(&self.response, "response", RESPONSE, response),
            workspace_id: r.leaf(&self.workspace_id, "workspace_id"),
            record_id: r.leaf(&self.record_id, "record_id"),
            sku_name: r.leaf(&self.sku_name, "sku_name"),
            usage_quantity: r.leaf(&self.usage_quantity, "usage_quantity"),
            record_type: r.leaf(&self.record_type, "record_type"),
            usage_start_time: r.leaf(&self.usage_start_time, "usage_start_time"),
            usage_end_time: r.leaf(&self.usage_end_time, "usage_end_time"),
            usage_metadata: r.nested(&self.usage_metadata, "usage_metadata", USAGE_METADATA, usage_metadata),
            price_start_time: r.leaf(&self.price_start_time, "price_start_time"),
            price_end_time: r.leaf(&self.price_end_time, "price_end_time"),
            pricing: r.nested(&self.pricing, "pricing", PRICING, pricing),
            job_id: r.leaf(&self.job_id, "job_id"),
            run_id: r.leaf(&self.run_id, "run_id"),
            period_start_time: r.leaf(&self.period_start_time, "period_start_time"),
            period_end_time: r.leaf(&self.period_end_time, "period_end_time"),
            result_state: r.leaf(&self.result_state, "result_state"),
            source_table_full_name: r.leaf(&self.source_table_full_name, "source_table_full_name"),
            target_table_full_name: r.leaf(&self.target_table_full_name, "target_table_full_name"),
            created_by: r.leaf(&self.created_by, "created_by"),
            entity_type: r.leaf(&self.entity_type, "entity_type"),
            statement_id: r.leaf(&self.statement_id, "statement_id"),
            ..RawRecord::default()
        }
    }
}

/// Reads the values of one row, keeping the first problem met.
struct RowReader<'a> {
    row: usize,
    bad: Option<Bad<'a>>,
}

impl<'a> RowReader<'a> {
    fn note(&mut self, column: &'static str, field: Option<&'static str>, problem: Problem<'a>) {
        self.bad.get_or_insert(Bad { column, field, problem });
    }

    fn leaf(&mut self, leaf: &'a Leaf, column: &'static str) -> Text<'a> {
        leaf.get(self.row).unwrap_or_else(|problem| {
            self.note(column, None, problem);
            Some(Loose::Nested)
        })
    }

    fn nested<const N: usize, T>(
        &mut self,
        nested: &'a Nested,
        column: &'static str,
        keys: &[(&'static str, usize)],
        build: fn([Text<'a>; N]) -> T,
    ) -> Option<Obj<T>> {
        let mut slots = [const { None }; N];
        match nested.read(self.row, keys, &mut slots) {
            Ok(true) => Some(Obj(build(slots))),
            Ok(false) => None,
            Err((field, problem)) => {
                self.note(column, field, problem);
                Some(Obj(build(slots)))
            }
        }
    }
}

/// A Parquet file read row by row, one row group after another.
pub struct ParquetRows {
    file: File,
    /// The footer, read once and shared by the reader of each row group.
    metadata: ArrowReaderMetadata,
    projection: ProjectionMask,
    /// The next row group to open, and the reader of the current one.
    next_group: usize,
    reader: Option<ParquetRecordBatchReader>,
    origin: Arc<str>,
    /// The current batch's columns; its rows `next_row..` are still to come.
    columns: Columns,
    next_row: usize,
    /// Rows read or skipped so far.
    rows_done: u64,
    /// The 1-based row number of the record last returned.
    position: u64,
    /// Every row group has been read.
    finished: bool,
    progress: Progress,
    /// Which events keep their request parameters.
    keep: Arc<crate::decode::keep::KeepParams>,
}

impl ParquetRows {
    /// Keeps request parameters only for the events `keep` names.
    pub fn keeping(mut self, keep: Arc<crate::decode::keep::KeepParams>) -> Self {
        self.keep = keep;
        self
    }

    /// Opens `path`, projecting the columns normalization reads. A file
    /// whose footer or schema cannot be read is an error.
    pub fn open(path: &Path, origin: String) -> Result<ParquetRows, SourceError> {
        let err = |message: String| SourceError::Parquet { path: path.into(), message };
        let io = |source| SourceError::Io { path: path.into(), source };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        // The footer is untrusted input: a reader bug on a malformed one
        // must cost this file, not the process.
        let loaded = catch_unwind(AssertUnwindSafe(|| ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())));
        let metadata = match loaded {
            Ok(Ok(metadata)) => metadata,
            Ok(Err(e)) => return Err(err(e.to_string())),
            Err(_) => return Err(err("the Parquet reader failed on this file's footer".into())),
        };
        // Arrow's top-level fields are the Parquet schema's roots, in order.
        let fields = metadata.schema().fields().iter().enumerate();
        let roots: Vec<usize> = fields.filter(|(_, f)| COLUMNS.contains(&f.name().as_str())).map(|(i, _)| i).collect();
        let projection = ProjectionMask::roots(metadata.parquet_schema(), roots);
        let progress = Progress::new(metadata.metadata(), file_len);
        Ok(ParquetRows {
            file,
            metadata,
            projection,
            next_group: 0,
            reader: None,
            origin: origin.into(),
            columns: Columns::empty(),
            next_row: 0,
            rows_done: 0,
            position: 0,
            finished: false,
            progress,
            keep: Arc::new(crate::decode::keep::KeepParams::everything()),
        })
    }

    /// A reader of row group `group` alone, so that a batch never spans
    /// two row groups and a broken one costs only its own rows.
    fn group_reader(&self, group: usize) -> Result<ParquetRecordBatchReader, String> {
        let file = self.file.try_clone().map_err(|e| e.to_string())?;
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
            .with_projection(self.projection.clone())
            .with_row_groups(vec![group])
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| e.to_string())
    }

    /// Decodes one row of the current batch.
    fn decode(&self, row: usize, ev: &mut Event, raw: &mut Vec<u8>) -> Record {
        let mut reader = RowReader { row, bad: None };
        let record = self.columns.record(&mut reader);
        let bad = reader.bad;
        let outcome = match bad {
            Some(_) => Err(QuarantineReason::BadParquet),
            None => normalize(&record, ev),
        };
        if let Ok(crate::event::Shape::SystemAudit) = outcome
            && self.keep.keeps(&ev.service, &ev.action)
        {
            self.columns.request_params.each_entry(row, |k, v| ev.params.push((k.to_owned(), v)));
            ev.sort_params();
        }
        match outcome {
            Ok(shape) => Record::Event(shape),
            Err(reason) => {
                raw.clear();
                render(&record, bad.as_ref(), raw);
                Record::Quarantined(reason)
            }
        }
    }

    /// Loads the next batch into `columns`: `Ok(true)` when there is one,
    /// `Ok(false)` at the end of the file, `Err` when the current row group
    /// cannot be read.
    fn next_batch(&mut self) -> Result<bool, String> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                if self.next_group >= self.metadata.metadata().num_row_groups() {
                    return Ok(false);
                }
                let group = self.next_group;
                self.next_group += 1;
                let opened = catch_unwind(AssertUnwindSafe(|| self.group_reader(group)));
                self.reader = Some(opened.unwrap_or_else(|_| Err("the Parquet reader failed".into()))?);
                continue;
            };
            match catch_unwind(AssertUnwindSafe(|| reader.next())) {
                Ok(Some(Ok(batch))) => {
                    self.columns = Columns::of(&batch);
                    self.next_row = 0;
                    return Ok(true);
                }
                Ok(None) => self.reader = None,
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Err(_) => return Err("the Parquet reader failed on this data".into()),
            }
        }
    }
}

impl RecordStream for ParquetRows {
    fn next_record(&mut self, ev: &mut Event, raw: &mut Vec<u8>) -> Option<Record> {
        while self.next_row >= self.columns.rows {
            match self.next_batch() {
                Ok(true) => {}
                Ok(false) => {
                    self.finished = true;
                    self.columns = Columns::empty();
                    return None;
                }
                Err(why) => {
                    // The footer still locates the next row group: skip the
                    // rest of this one, as one quarantined record.
                    self.reader = None;
                    self.columns = Columns::empty();
                    self.position = self.rows_done + 1;
                    self.rows_done = self.rows_done.max(self.progress.rows_through(self.next_group));
                    let group = self.next_group.saturating_sub(1);
                    tracing::warn!(origin = %self.origin, row = self.position, group, error = %why, "unreadable Parquet row group skipped");
                    raw.clear();
                    let message =
                        format!("row group {group} unreadable from row {} to {}: {why}", self.position, self.rows_done);
                    render_error(&message, raw);
                    return Some(Record::Quarantined(QuarantineReason::BadParquet));
                }
            }
        }
        let row = self.next_row;
        self.next_row += 1;
        self.rows_done += 1;
        self.position = self.rows_done;
        Some(self.decode(row, ev, raw))
    }

    fn position(&self) -> Position {
        Position { origin: self.origin.clone(), record: self.position }
    }

    fn bytes_read(&self) -> u64 {
        if self.finished { self.progress.file_len } else { self.progress.at(self.rows_done) }
    }
}

/// Bytes read, estimated from rows: each row group's compressed size is
/// spread evenly over its rows, and the total scaled to the file's size.
struct Progress {
    /// Per row group: rows and compressed bytes up to and including it.
    groups: Vec<(u64, u64)>,
    file_len: u64,
}

impl Progress {
    fn new(meta: &parquet::file::metadata::ParquetMetaData, file_len: u64) -> Progress {
        let mut groups = Vec::with_capacity(meta.num_row_groups());
        let (mut rows, mut bytes) = (0u64, 0u64);
        for g in meta.row_groups() {
            rows = rows.saturating_add(u64::try_from(g.num_rows()).unwrap_or(0));
            bytes = bytes.saturating_add(u64::try_from(g.compressed_size()).unwrap_or(0));
            groups.push((rows, bytes));
        }
        Progress { groups, file_len }
    }

    /// Rows in the first `groups` row groups.
    fn rows_through(&self, groups: usize) -> u64 {
        groups.checked_sub(1).and_then(|i| self.groups.get(i)).map_or(0, |&(rows, _)| rows)
    }

    fn at(&self, rows_done: u64) -> u64 {
        let Some(&(_, total)) = self.groups.last() else { return 0 };
        let i = self.groups.partition_point(|&(end, _)| end <= rows_done);
        let (rows_before, bytes_before) = if i == 0 { (0, 0) } else { self.groups[i - 1] };
        let done = match self.groups.get(i) {
            Some(&(end, bytes)) if end > rows_before => {
                let part = (rows_done - rows_before) as f64 / (end - rows_before) as f64;
                bytes_before as f64 + part * (bytes - bytes_before) as f64
            }
            _ => total as f64,
        };
        if total == 0 { 0 } else { (done / total as f64 * self.file_len as f64) as u64 }
    }
}

/// Writes a refused row for the quarantine file: one JSON object of its
/// non-null fields, which the JSON path reads as the same record, plus
/// `_error` naming an unreadable value. Only ever on the quarantine path.
fn render(raw: &RawRecord<'_>, bad: Option<&Bad<'_>>, out: &mut Vec<u8>) {
    let mut o = JsonObject::open(out);
    o.text("event_time", &raw.event_time);
    o.text("audit_level", &raw.audit_level);
    o.text("event_id", &raw.event_id);
    o.text("service_name", &raw.service_name);
    o.text("action_name", &raw.action_name);
    o.text("request_id", &raw.request_id);
    o.text("source_ip_address", &raw.source_ip_address);
    o.text("user_agent", &raw.user_agent);
    if let Some(u) = &raw.user_identity {
        let mut n = o.object("user_identity");
        n.text("email", &u.email);
        n.text("subject_name", &u.subject_name);
        n.close();
    }
    if let Some(p) = &raw.request_params {
        let mut n = o.object("request_params");
        for (key, value) in [
            ("full_name_arg", &p.full_name_arg),
            ("securable_full_name", &p.securable_full_name),
            ("name", &p.name),
            ("path", &p.path),
            ("notebook_id", &p.notebook_id),
            ("warehouse_id", &p.warehouse_id),
            ("cluster_id", &p.cluster_id),
            ("scope", &p.scope),
            ("key", &p.key),
            ("mount_point", &p.mount_point),
            ("target_user_name", &p.target_user_name),
            ("principal", &p.principal),
            ("user", &p.user),
            ("target_group_name", &p.target_group_name),
            ("job_id", &p.job_id),
            ("run_id", &p.run_id),
            ("job_terminal_state", &p.job_terminal_state),
            ("changes", &p.changes),
            ("endpoint", &p.endpoint),
            ("role", &p.role),
            ("owner", &p.owner),
        ] {
            n.text(key, value);
        }
        n.close();
    }
    if let Some(m) = &raw.identity_metadata {
        let mut n = o.object("identity_metadata");
        n.text("run_as", &m.run_as);
        n.text("run_by", &m.run_by);
        n.text("acting_as", &m.acting_as);
        n.text("owned_by", &m.owned_by);
        n.text("created_by", &m.created_by);
        n.close();
    }
    if let Some(r) = &raw.response {
        let mut n = o.object("response");
        n.text("status_code", &r.status_code);
        n.text("error_message", &r.error_message);
        n.close();
    }
    o.text("workspace_id", &raw.workspace_id);
    o.text("record_id", &raw.record_id);
    o.text("sku_name", &raw.sku_name);
    o.text("usage_quantity", &raw.usage_quantity);
    o.text("record_type", &raw.record_type);
    o.text("usage_start_time", &raw.usage_start_time);
    o.text("usage_end_time", &raw.usage_end_time);
    if let Some(m) = &raw.usage_metadata {
        let mut n = o.object("usage_metadata");
        n.text("job_id", &m.job_id);
        n.text("job_run_id", &m.job_run_id);
        n.text("cluster_id", &m.cluster_id);
        n.text("warehouse_id", &m.warehouse_id);
        n.text("notebook_id", &m.notebook_id);
        n.text("dlt_pipeline_id", &m.dlt_pipeline_id);
        n.text("endpoint_name", &m.endpoint_name);
        n.close();
    }
    o.text("price_start_time", &raw.price_start_time);
    o.text("price_end_time", &raw.price_end_time);
    if let Some(p) = &raw.pricing {
        let mut n = o.object("pricing");
        n.text("default", &p.default);
        n.close();
    }
    o.text("job_id", &raw.job_id);
    o.text("run_id", &raw.run_id);
    o.text("period_start_time", &raw.period_start_time);
    o.text("period_end_time", &raw.period_end_time);
    o.text("result_state", &raw.result_state);
    o.text("source_table_full_name", &raw.source_table_full_name);
    o.text("target_table_full_name", &raw.target_table_full_name);
    o.text("created_by", &raw.created_by);
    o.text("entity_type", &raw.entity_type);
    o.text("statement_id", &raw.statement_id);
    if let Some(bad) = bad {
        o.key("_error");
        let _ = serde_json::to_writer(&mut *o.out, &bad.to_string());
    }
    o.close();
}

/// A quarantine line for data that could not be read at all.
fn render_error(message: &str, out: &mut Vec<u8>) {
    let mut o = JsonObject::open(out);
    o.key("_error");
    let _ = serde_json::to_writer(&mut *o.out, message);
    o.close();
}

/// A minimal JSON object writer for [`render`].
struct JsonObject<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> JsonObject<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        JsonObject { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        let _ = serde_json::to_writer(&mut *self.out, key);
        self.out.push(b':');
    }

    fn text(&mut self, key: &str, value: &Text<'_>) {
        let Some(v) = value else { return };
        self.key(key);
        let out = &mut *self.out;
        let _ = match v {
            Loose::Str(s) => serde_json::to_writer(out, s.as_ref()),
            Loose::Int(n) => serde_json::to_writer(out, n),
            // serde_json writes non-finite floats as null.
            Loose::Float(f) => serde_json::to_writer(out, f),
            Loose::Bool(b) => serde_json::to_writer(out, b),
            Loose::Null => serde_json::to_writer(out, &()),
            // An unreadable value: an empty object, read back as nested.
            Loose::Nested => {
                out.extend_from_slice(b"{}");
                Ok(())
            }
        };
    }

    fn object(&mut self, key: &str) -> JsonObject<'_> {
        self.key(key);
        JsonObject::open(self.out)
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests;
