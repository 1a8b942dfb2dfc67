use super::*;
use crate::decode::decode_json;
use crate::event::{PrincipalKind, Shape};
use crate::time::EventTime;
use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    BooleanArray, Date32Array, DictionaryArray, ListArray, NullArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_schema::{Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;
use serde_json::json;
use std::path::PathBuf;

const T0_US: i64 = 1_704_110_400_000_000; // 2024-01-01T12:00:00Z
const T0_MS: i64 = T0_US / 1000;

fn utf8(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// `TIMESTAMP` as Databricks writes it: microseconds, zone "UTC".
fn ts(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC"))
}

/// `DECIMAL(38,18)`, as `usage_quantity` and prices are typed.
fn dec(values: &[Option<i128>]) -> ArrayRef {
    Arc::new(Decimal128Array::from(values.to_vec()).with_precision_and_scale(38, 18).unwrap())
}

fn structure(children: Vec<(&str, ArrayRef)>) -> ArrayRef {
    structure_with_nulls(children, None)
}

fn structure_with_nulls(children: Vec<(&str, ArrayRef)>, valid: Option<Vec<bool>>) -> ArrayRef {
    let fields: Fields = children.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    let arrays = children.into_iter().map(|(_, a)| a).collect();
    Arc::new(StructArray::try_new(fields, arrays, valid.map(Into::into)).unwrap())
}

/// `MAP<STRING,STRING>`, as `request_params` is typed; `None` is a null map.
/// One map value: its entries, or `None` for a null map.
type MapRow<'a> = Option<Vec<(&'a str, Option<&'a str>)>>;

fn string_map(rows: &[MapRow<'_>]) -> ArrayRef {
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for row in rows {
        match row {
            Some(entries) => {
                for (k, v) in entries {
                    b.keys().append_value(k);
                    b.values().append_option(*v);
                }
                b.append(true).unwrap();
            }
            None => b.append(false).unwrap(),
        }
    }
    Arc::new(b.finish())
}

fn write_with(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>, props: Option<WriterProperties>) -> PathBuf {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let path = dir.join(name);
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, props).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

fn write(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> PathBuf {
    write_with(dir, name, columns, None)
}

/// Every row of a file: the event, or the reason and the quarantine text.
fn read_all(path: &Path) -> Vec<Result<Event, (QuarantineReason, String)>> {
    let mut rows = ParquetRows::open(path, path.display().to_string()).unwrap();
    let (mut ev, mut raw, mut out) = (Event::default(), Vec::new(), Vec::new());
    let mut last = 0;
    while let Some(r) = rows.next_record(&mut ev, &mut raw) {
        // 1-based row numbers; a skipped row group skips its numbers.
        let at = rows.position().record;
        assert!(at > last && (at != 1 || out.is_empty()), "{at} after {last}");
        last = at;
        out.push(match r {
            Record::Event(shape) => {
                assert_eq!(ev.shape, Some(shape));
                Ok(ev.clone())
            }
            Record::Quarantined(q) => Err((q, String::from_utf8(raw.clone()).unwrap())),
        });
    }
    out
}

/// The columns of a `system.access.audit` row, in Databricks' types.
fn audit_columns(n: usize) -> Vec<(&'static str, ArrayRef)> {
    let repeat = |v: &'static str| utf8(&vec![Some(v); n]);
    vec![
        ("account_id", repeat("acc")),
        ("workspace_id", repeat("42")),
        ("event_time", ts(&(0..n as i64).map(|i| Some(T0_US + i * 1_000_000)).collect::<Vec<_>>())),
        ("event_date", Arc::new(Date32Array::from(vec![Some(19723); n]))),
        ("service_name", repeat("unityCatalog")),
        ("action_name", repeat("getTable")),
        ("user_identity", structure(vec![("email", repeat("Ana@X.com")), ("subject_name", utf8(&vec![None; n]))])),
        ("request_params", string_map(&vec![Some(vec![("full_name_arg", Some("main.sales.orders"))]); n])),
        ("event_id", utf8(&(0..n).map(|i| Some(&*format!("e-{i}").leak())).collect::<Vec<_>>())),
    ]
}

#[test]
fn system_access_audit_rows() {
    let dir = tempfile::tempdir().unwrap();
    let params = string_map(&[
        Some(vec![("full_name_arg", Some("main.sales.orders")), ("ignored", Some("x")), ("name", None)]),
        Some(vec![]),
        None,
    ]);
    let path = write(
        dir.path(),
        "audit.parquet",
        vec![
            ("account_id", utf8(&[Some("acc"); 3])),
            ("workspace_id", utf8(&[Some("42"), Some("42"), None])),
            ("event_time", ts(&[Some(T0_US), None, Some(T0_US + 1)])),
            ("service_name", utf8(&[Some("unityCatalog"); 3])),
            ("action_name", utf8(&[Some("getTable"); 3])),
            ("source_ip_address", utf8(&[Some("10.0.0.1"), None, None])),
            (
                "user_identity",
                structure(vec![
                    ("email", utf8(&[Some(" Ana@X.com "), Some("ana@x.com"), None])),
                    ("subject_name", utf8(&[None, None, Some("6F1C2A3B-1234-4ABC-9DEF-0123456789AB")])),
                ]),
            ),
            ("request_params", params),
            (
                "response",
                structure(vec![
                    ("status_code", Arc::new(Int32Array::from(vec![Some(200), Some(200), Some(403)])) as ArrayRef),
                    ("error_message", utf8(&[None, None, Some("denied")])),
                    ("result", utf8(&[None, None, None])),
                ]),
            ),
            (
                "identity_metadata",
                structure_with_nulls(
                    vec![
                        ("run_by", utf8(&[None, None, None])),
                        ("run_as", utf8(&[Some("svc@x.com"), None, None])),
                        ("acting_as", utf8(&[None, None, None])),
                    ],
                    Some(vec![true, true, false]),
                ),
            ),
            ("event_id", utf8(&[Some("e-1"), Some("e-untimed"), Some("e-3")])),
            ("request_id", utf8(&[Some("r-1"), Some("r-2"), Some("r-3")])),
        ],
    );
    let rows = read_all(&path);
    assert_eq!(rows.len(), 3);
    let ev = rows[0].as_ref().unwrap();
    assert_eq!(ev.shape, Some(Shape::SystemAudit));
    assert_eq!(ev.time, EventTime(T0_MS));
    assert_eq!((ev.principal.as_str(), ev.principal_kind), ("ana@x.com", PrincipalKind::User));
    assert_eq!(ev.run_as, "svc@x.com");
    assert_eq!(ev.securable, "main.sales.orders");
    assert_eq!(ev.status, Some(200));
    assert_eq!(ev.workspace, 42);
    assert_eq!(ev.id, "e-1");
    assert_eq!(ev.source_ip, "10.0.0.1");

    let (reason, raw) = rows[1].as_ref().unwrap_err();
    assert_eq!(*reason, QuarantineReason::MissingTime);
    assert!(raw.contains(r#""event_id":"e-untimed""#), "{raw}");

    // No email: the subject name; a null identity_metadata is absent.
    let ev = rows[2].as_ref().unwrap();
    assert_eq!(ev.principal, "6f1c2a3b-1234-4abc-9def-0123456789ab");
    assert_eq!(ev.principal_kind, PrincipalKind::ServicePrincipal);
    assert_eq!((ev.run_as.as_str(), ev.securable.as_str(), ev.status, ev.workspace), ("", "", Some(403), 0));
    assert!(ev.failed());
}

#[test]
fn billing_usage_list_prices_and_timeline_rows() {
    let dir = tempfile::tempdir().unwrap();
    let usage = write(
        dir.path(),
        "usage.parquet",
        vec![
            ("record_id", utf8(&[Some("u1"), Some("u2")])),
            ("workspace_id", utf8(&[Some("42"), Some("42")])),
            ("sku_name", utf8(&[Some("PREMIUM_JOBS_COMPUTE"), Some("PREMIUM_SQL_PRO_COMPUTE")])),
            ("usage_start_time", ts(&[Some(T0_US), Some(T0_US)])),
            ("usage_end_time", ts(&[Some(T0_US + 3_600_000_000), Some(T0_US + 3_600_000_000)])),
            ("usage_unit", utf8(&[Some("DBU"), Some("DBU")])),
            ("usage_quantity", dec(&[Some(3_500_000_000_000_000_000), Some(123_456_789_012_345_678)])),
            (
                "usage_metadata",
                structure(vec![
                    ("cluster_id", utf8(&[None, None])),
                    ("job_id", utf8(&[Some("77"), None])),
                    ("warehouse_id", utf8(&[None, Some("wh-1")])),
                    ("job_run_id", utf8(&[Some("9"), None])),
                ]),
            ),
            (
                "identity_metadata",
                structure(vec![
                    ("run_as", utf8(&[Some("6F1C2A3B-1234-4ABC-9DEF-0123456789AB"), None])),
                    ("owned_by", utf8(&[None, Some("Owner@X.com")])),
                    ("created_by", utf8(&[None, None])),
                ]),
            ),
        ],
    );
    let rows = read_all(&usage);
    let ev = rows[0].as_ref().unwrap();
    assert_eq!(ev.shape, Some(Shape::BillingUsage));
    assert_eq!((ev.sku.as_str(), ev.amount), ("PREMIUM_JOBS_COMPUTE", 3.5));
    assert_eq!((ev.job_id.as_str(), ev.run_id.as_str(), ev.securable.as_str()), ("77", "9", "77"));
    assert_eq!((ev.time, ev.start), (EventTime(T0_MS + 3_600_000), EventTime(T0_MS)));
    assert_eq!(ev.principal, "6f1c2a3b-1234-4abc-9def-0123456789ab");
    assert_eq!(ev.principal_kind, PrincipalKind::ServicePrincipal);
    assert_eq!(ev.id, "u1");
    let ev = rows[1].as_ref().unwrap();
    // The decimal's nearest double, as parsing its text gives.
    assert_eq!(ev.amount, "0.123456789012345678".parse::<f64>().unwrap());
    assert_eq!((ev.principal.as_str(), ev.securable.as_str()), ("owner@x.com", "wh-1"));

    let promo = structure(vec![("default", dec(&[Some(1), Some(1), Some(1)]))]);
    let prices = write(
        dir.path(),
        "prices.parquet",
        vec![
            ("price_start_time", ts(&[Some(T0_US), Some(T0_US), Some(T0_US)])),
            ("price_end_time", ts(&[None, Some(T0_US + 86_400_000_000), None])),
            ("sku_name", utf8(&[Some("PREMIUM_JOBS_COMPUTE"); 3])),
            ("currency_code", utf8(&[Some("USD"); 3])),
            (
                "pricing",
                structure_with_nulls(
                    vec![
                        ("default", dec(&[Some(150_000_000_000_000_000), Some(220_000_000_000_000_000), None])),
                        ("promotional", promo.clone()),
                        ("effective_list", promo),
                    ],
                    Some(vec![true, true, false]),
                ),
            ),
        ],
    );
    let rows = read_all(&prices);
    let ev = rows[0].as_ref().unwrap();
    assert_eq!(ev.shape, Some(Shape::ListPrice));
    assert_eq!((ev.amount, ev.sku.as_str()), (0.15, "PREMIUM_JOBS_COMPUTE"));
    assert_eq!((ev.start, ev.end), (EventTime(T0_MS), EventTime(0)));
    assert_eq!(rows[1].as_ref().unwrap().end, EventTime(T0_MS + 86_400_000));
    assert_eq!(rows[2].as_ref().unwrap_err().0, QuarantineReason::MissingField);

    // `pricing.default` as a string, as some exports write it.
    let prices = write(
        dir.path(),
        "prices_text.parquet",
        vec![
            ("price_start_time", ts(&[Some(T0_US)])),
            ("sku_name", utf8(&[Some("PREMIUM_JOBS_COMPUTE")])),
            ("pricing", structure(vec![("default", utf8(&[Some("0.15")]))])),
        ],
    );
    assert_eq!(read_all(&prices)[0].as_ref().unwrap().amount, 0.15);

    let timeline = write(
        dir.path(),
        "timeline.parquet",
        vec![
            ("workspace_id", utf8(&[Some("42"), Some("42")])),
            ("job_id", utf8(&[Some("77"), Some("77")])),
            ("run_id", utf8(&[Some("9"), Some("9")])),
            ("period_start_time", ts(&[Some(T0_US), Some(T0_US + 3_600_000_000)])),
            ("period_end_time", ts(&[Some(T0_US + 3_600_000_000), Some(T0_US + 5_400_000_000)])),
            ("result_state", utf8(&[None, Some("SUCCEEDED")])),
            ("compute_ids", Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)]); 2]))),
        ],
    );
    let rows = read_all(&timeline);
    let (first, last) = (rows[0].as_ref().unwrap(), rows[1].as_ref().unwrap());
    assert_eq!(last.shape, Some(Shape::JobRunTimeline));
    assert_eq!((last.job_id.as_str(), last.run_id.as_str(), last.run_result.as_str()), ("77", "9", "SUCCEEDED"));
    assert_eq!(last.end.0 - last.start.0, 1_800_000);
    assert_eq!((first.run_phase, last.run_phase), (crate::event::RunPhase::Start, crate::event::RunPhase::Complete));
}

#[test]
fn every_column_type_spark_and_pyarrow_write() {
    let dir = tempfile::tempdir().unwrap();
    let t0_s = T0_US / 1_000_000;
    // The same instant in every unit, with and without a zone.
    let times: Vec<(&str, ArrayRef)> = vec![
        ("s", Arc::new(TimestampSecondArray::from(vec![t0_s]))),
        ("ms", Arc::new(TimestampMillisecondArray::from(vec![T0_MS]).with_timezone("+02:00"))),
        ("us", Arc::new(TimestampMicrosecondArray::from(vec![T0_US]))),
        ("ns", Arc::new(TimestampNanosecondArray::from(vec![T0_US * 1000]).with_timezone("UTC"))),
        ("date", Arc::new(Date32Array::from(vec![19723]))), // 2024-01-01
        ("int", Arc::new(Int64Array::from(vec![T0_MS]))),
        ("text", utf8(&[Some("2024-01-01T12:00:00Z")])),
    ];
    for (unit, time) in times {
        let path = write(
            dir.path(),
            &format!("{unit}.parquet"),
            vec![
                ("event_time", time),
                ("service_name", Arc::new(LargeStringArray::from(vec!["accounts"]))),
                ("action_name", Arc::new(StringViewArray::from(vec!["login"]))),
                ("user_identity", structure(vec![("email", Arc::new(BinaryArray::from(vec![b"a@x.com".as_ref()])))])),
                ("workspace_id", Arc::new(UInt64Array::from(vec![42]))),
            ],
        );
        let ev = read_all(&path).remove(0).unwrap();
        let want = if unit == "date" { 1_704_067_200_000 } else { T0_MS };
        assert_eq!(ev.time, EventTime(want), "{unit}");
        assert_eq!((ev.service.as_str(), ev.action.as_str(), ev.principal.as_str()), ("accounts", "login", "a@x.com"));
        assert_eq!(ev.workspace, 42);
    }

    // Dictionary-encoded strings (pyarrow writes categoricals so), a
    // `Null`-typed column (pyarrow's type for an all-None column), and
    // `request_params` as a struct rather than a map.
    let dict: DictionaryArray<Int32Type> =
        vec![Some("databrickssql"), None, Some("databrickssql")].into_iter().collect();
    let path = write(
        dir.path(),
        "dict.parquet",
        vec![
            ("event_time", ts(&[Some(T0_US); 3])),
            ("service_name", Arc::new(dict)),
            ("action_name", utf8(&[Some("commandSubmit"); 3])),
            ("source_ip_address", Arc::new(NullArray::new(3))),
            ("request_params", structure(vec![("warehouseId", utf8(&[Some("wh-1"), None, None]))])),
            ("response", structure(vec![("status_code", Arc::new(BooleanArray::from(vec![true, true, true])))])),
        ],
    );
    let rows = read_all(&path);
    let ev = rows[0].as_ref().unwrap();
    assert_eq!((ev.service.as_str(), ev.securable.as_str(), ev.source_ip.as_str()), ("databrickssql", "wh-1", ""));
    assert_eq!(ev.status, None, "a boolean is no status code, as in JSON");
    assert_eq!(rows[1].as_ref().unwrap_err().0, QuarantineReason::MissingField);
    assert!(rows[2].is_ok());
}

#[test]
fn request_params_keys_in_either_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let n = 4;
    let mut columns = audit_columns(n);
    columns[4] = ("service_name", utf8(&[Some("secrets"), Some("jobs"), Some("accounts"), Some("databrickssql")]));
    columns[5] =
        ("action_name", utf8(&[Some("getSecret"), Some("runSucceeded"), Some("login"), Some("commandSubmit")]));
    columns[6] = ("user_identity", structure(vec![("email", utf8(&[Some("a@x.com"), Some("a@x.com"), None, None]))]));
    columns[7] = (
        "request_params",
        string_map(&[
            Some(vec![("scope", Some("prod")), ("key", Some("db-password"))]),
            Some(vec![("jobId", Some("77")), ("runId", Some("9")), ("jobTerminalState", Some("FAILED"))]),
            Some(vec![("user", Some("Bob@X.com"))]),
            // Both spellings of one key: the first non-null one is kept.
            Some(vec![("warehouse_id", None), ("warehouseId", Some("wh-2")), ("warehouse_id", Some("wh-3"))]),
        ]),
    );
    let rows = read_all(&write(dir.path(), "params.parquet", columns));
    let evs: Vec<&Event> = rows.iter().map(|r| r.as_ref().unwrap()).collect();
    assert_eq!(evs[0].securable, "prod/db-password");
    assert_eq!((evs[1].job_id.as_str(), evs[1].run_id.as_str(), evs[1].run_result.as_str()), ("77", "9", "FAILED"));
    assert_eq!(evs[2].principal, "bob@x.com", "an unauthenticated login names its user in the request");
    assert_eq!(evs[3].securable, "wh-2");
}

#[test]
fn unreadable_values_quarantine_their_row_and_name_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut columns = audit_columns(3);
    // A list where text is expected: null in the last row only.
    let lists = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)]), Some(vec![]), None]);
    columns[8] = ("event_id", Arc::new(lists));
    let rows = read_all(&write(dir.path(), "list.parquet", columns));
    let (reason, raw) = rows[0].as_ref().unwrap_err();
    assert_eq!(*reason, QuarantineReason::BadParquet);
    let line: serde_json::Value = serde_json::from_str(raw).unwrap();
    assert_eq!(line["_error"], "event_id: unsupported type List(Int32)", "{raw}");
    assert_eq!(line["service_name"], "unityCatalog", "the rest of the row is kept: {raw}");
    assert_eq!(rows[1].as_ref().unwrap_err().0, QuarantineReason::BadParquet);
    assert!(rows[2].is_ok(), "a null of an unreadable type is just absent");

    // Binary that is not text, inside a struct.
    let mut columns = audit_columns(2);
    let email: ArrayRef = Arc::new(BinaryArray::from(vec![b"\xff\xfe".as_ref(), b"a@x.com".as_ref()]));
    columns[6] = ("user_identity", structure(vec![("email", email)]));
    let rows = read_all(&write(dir.path(), "binary.parquet", columns));
    let (reason, raw) = rows[0].as_ref().unwrap_err();
    assert_eq!(*reason, QuarantineReason::BadParquet);
    assert!(raw.contains("user_identity.email: binary value is not UTF-8"), "{raw}");
    assert_eq!(rows[1].as_ref().unwrap().principal, "a@x.com");

    // A nested column that is neither struct nor map.
    let mut columns = audit_columns(1);
    columns[7] = ("request_params", utf8(&[Some("{}")]));
    let rows = read_all(&write(dir.path(), "params_text.parquet", columns));
    assert!(rows[0].as_ref().unwrap_err().1.contains("request_params: unsupported type Utf8"));
}

#[test]
fn a_file_without_known_columns_gives_unknown_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "other.parquet", vec![("something", utf8(&[Some("x"), Some("y")]))]);
    let rows = read_all(&path);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.as_ref().unwrap_err() == &(QuarantineReason::UnknownShape, "{}".to_owned())));
}

#[test]
fn only_the_needed_columns_are_projected() {
    let dir = tempfile::tempdir().unwrap();
    let mut columns = audit_columns(1);
    columns.push(("some_other_column", utf8(&[Some("not read")])));
    let path = write(dir.path(), "wide.parquet", columns);
    let rows = ParquetRows::open(&path, "x".into()).unwrap();
    use arrow_array::RecordBatchReader;
    let schema = rows.group_reader(0).unwrap().schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["workspace_id", "event_time", "service_name", "action_name", "user_identity", "request_params", "event_id"]
    );
}

#[test]
fn many_batches_and_row_groups_in_order_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let n = BATCH_ROWS * 2 + 100;
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(5000)).build();
    let path = write_with(dir.path(), "long.parquet", audit_columns(n), Some(props));
    let file_len = std::fs::metadata(&path).unwrap().len();
    let mut rows = ParquetRows::open(&path, "long".into()).unwrap();
    assert_eq!(rows.bytes_read(), 0);
    let (mut ev, mut raw) = (Event::default(), Vec::new());
    let (mut count, mut last_bytes) = (0, 0);
    while let Some(r) = rows.next_record(&mut ev, &mut raw) {
        assert_eq!(r, Record::Event(Shape::SystemAudit));
        assert_eq!(ev.time, EventTime(T0_MS + count as i64 * 1000));
        assert_eq!(ev.id, format!("e-{count}"));
        count += 1;
        let bytes = rows.bytes_read();
        assert!(bytes >= last_bytes && bytes <= file_len);
        last_bytes = bytes;
        if count == n / 2 {
            let half = bytes as f64 / file_len as f64;
            assert!((0.3..0.7).contains(&half), "half the rows, {half} of the bytes");
        }
    }
    assert_eq!(count, n);
    assert_eq!(rows.bytes_read(), file_len);
    assert_eq!(rows.position(), Position { origin: "long".into(), record: n as u64 });
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.parquet");
    let mut bytes = b"PAR1".to_vec();
    bytes.extend((0..500u32).map(|i| (i * 31 % 251) as u8));
    bytes.extend_from_slice(b"PAR1");
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(ParquetRows::open(&path, "bad".into()), Err(SourceError::Parquet { .. })));
    std::fs::write(&path, b"PAR1").unwrap();
    assert!(matches!(ParquetRows::open(&path, "bad".into()), Err(SourceError::Parquet { .. })));
    assert!(matches!(ParquetRows::open(&dir.path().join("missing"), "x".into()), Err(SourceError::Io { .. })));
}

#[test]
fn a_broken_row_group_is_one_quarantined_record_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(100)).build();
    let path = write_with(dir.path(), "ok.parquet", audit_columns(300), Some(props));
    // Garble the first page header of every column chunk of row group 1.
    let meta = ParquetRows::open(&path, "x".into()).unwrap().metadata.metadata().clone();
    let mut bytes = std::fs::read(&path).unwrap();
    for column in meta.row_group(1).columns() {
        let (start, _) = column.byte_range();
        let start = usize::try_from(start).unwrap();
        bytes[start..start + 8].fill(0xFF);
    }
    std::fs::write(&path, &bytes).unwrap();

    let mut rows = ParquetRows::open(&path, "x".into()).unwrap();
    let (mut ev, mut raw) = (Event::default(), Vec::new());
    let mut seen = Vec::new();
    while let Some(r) = rows.next_record(&mut ev, &mut raw) {
        let at = rows.position().record;
        match r {
            Record::Event(_) => assert_eq!(ev.id, format!("e-{}", at - 1), "row {at} is the row it says"),
            Record::Quarantined(q) => {
                assert_eq!(q, QuarantineReason::BadParquet);
                let raw = String::from_utf8_lossy(&raw);
                assert!(raw.starts_with(r#"{"_error":"row group 1 unreadable from row 101 to 200: "#), "{raw}");
            }
        }
        seen.push((at, matches!(r, Record::Event(_))));
    }
    let want: Vec<(u64, bool)> =
        (1..=100).map(|i| (i, true)).chain([(101, false)]).chain((201..=300).map(|i| (i, true))).collect();
    assert_eq!(seen, want);
    assert_eq!(rows.bytes_read(), bytes.len() as u64);
}

/// The quarantine rendering of a row is a JSON line the JSON path reads as
/// the very same record: a refused Parquet row can be replayed from the
/// quarantine file, and the JSON path is a check on the Parquet one.
#[test]
fn rendered_rows_decode_as_json_to_the_same_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut columns = audit_columns(3);
    columns.push(("usage_quantity", dec(&[Some(1), None, Some(-2_500_000_000_000_000_000)])));
    columns.push(("pricing", structure(vec![("default", utf8(&[Some("quote\" and \\ and \u{1}"), None, None]))])));
    columns.push(("response", structure(vec![("status_code", Arc::new(Int32Array::from(vec![200, 500, 403])))])));
    let path = write(dir.path(), "render.parquet", columns);
    let mut rows = ParquetRows::open(&path, "x".into()).unwrap();
    assert_eq!(rows.next_batch(), Ok(true));
    for row in 0..3 {
        let mut reader = RowReader { row, bad: None };
        let record = rows.columns.record(&mut reader);
        let mut line = Vec::new();
        render(&record, None, &mut line);
        let (mut a, mut b) = (Event::default(), Event::default());
        let direct = normalize(&record, &mut a);
        let via_json = crate::decode::decode_json_keeping(&line, &mut b, &Default::default());
        assert_eq!(direct, via_json, "{}", String::from_utf8_lossy(&line));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}

/// The tables of nested keys agree with the serde derives of the `Raw*`
/// structs: the same names and aliases fill the same fields.
#[test]
fn nested_key_tables_match_the_serde_derives() {
    fn check<T, const N: usize>(keys: &[(&'static str, usize)], build: fn([Text<'static>; N]) -> T)
    where
        T: std::fmt::Debug + Default + serde::Deserialize<'static>,
    {
        for slot in 0..N {
            assert!(keys.iter().any(|&(_, s)| s == slot), "slot {slot} has no key");
        }
        for &(key, slot) in keys {
            let line: &'static str = json!({ key: "v" }).to_string().leak();
            let via_serde: T = serde_json::from_str(line).unwrap();
            let mut slots = [const { None }; N];
            slots[slot] = Some(Loose::Str(Cow::Borrowed("v")));
            assert_eq!(format!("{via_serde:?}"), format!("{:?}", build(slots)), "{key}");
        }
        // And every name serde knows is in the table.
        for name in serde_fields::<T>() {
            assert!(slot_of(keys, name).is_some(), "{name} is missing from the table");
        }
    }
    check(IDENTITY, identity);
    check(IDENTITY_METADATA, identity_metadata);
    check(RESPONSE, response);
    check(PARAMS, params);
    check(USAGE_METADATA, usage_metadata);
    check(PRICING, pricing);
}

/// Every snake_case field of `RawRecord` is projected and read.
#[test]
fn columns_match_the_raw_record() {
    let mut snake: Vec<&str> = serde_fields::<RawRecord<'static>>()
        .into_iter()
        .filter(|f| !f.chars().any(|c| c.is_ascii_uppercase()) && *f != "timestamp")
        .collect();
    let mut columns = COLUMNS.to_vec();
    snake.sort_unstable();
    columns.sort_unstable();
    assert_eq!(snake, columns);

    let arrays: Vec<(&str, ArrayRef)> = COLUMNS.iter().map(|&c| (c, utf8(&[Some("x")]))).collect();
    let schema =
        Arc::new(Schema::new(arrays.iter().map(|(n, _)| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>()));
    let batch = RecordBatch::try_new(schema, arrays.into_iter().map(|(_, a)| a).collect()).unwrap();
    let mut reader = RowReader { row: 0, bad: None };
    let columns = Columns::of(&batch);
    let record = columns.record(&mut reader);
    let mut line = Vec::new();
    render(&record, None, &mut line);
    let rendered: serde_json::Value = serde_json::from_slice(&line).unwrap();
    for c in COLUMNS {
        assert!(rendered.get(c).is_some(), "{c} was not read");
    }
}

/// The field names serde's derive lists for `T` (aliases included when the
/// derive lists them), captured from `deserialize_struct`.
fn serde_fields<T: serde::Deserialize<'static>>() -> Vec<&'static str> {
    struct Capture(std::cell::RefCell<Vec<&'static str>>);
    impl<'de> serde::Deserializer<'de> for &Capture {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.borrow_mut().extend_from_slice(fields);
            Err(serde::de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let capture = Capture(Default::default());
    let _ = T::deserialize(&capture);
    capture.0.into_inner()
}

#[test]
fn decimals_round_like_their_text() {
    let cases: [(i128, i8); 8] = [
        (0, 18),
        (3_500_000_000_000_000_000, 18),
        (123_456_789_012_345_678, 18),
        (-99_999_999_999_999_999_999_999_999_999_999_999, 18),
        (i128::MAX, 38),
        (i128::MIN, 0),
        (15, -2),
        (7, 30),
    ];
    for (v, s) in cases {
        let text: f64 = format!("{v}e{}", -i32::from(s)).parse().unwrap();
        assert_eq!(decimal(v, s), text, "{v} scale {s}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.parquet");
        let mut bytes = b"PAR1".to_vec();
        bytes.extend(body);
        bytes.extend_from_slice(b"PAR1");
        std::fs::write(&path, bytes).unwrap();
        if let Ok(mut rows) = ParquetRows::open(&path, "fuzz".into()) {
            let (mut ev, mut raw) = (Event::default(), Vec::new());
            while rows.next_record(&mut ev, &mut raw).is_some() {}
        }
    }

    /// Damage anywhere in a valid file: an error or quarantined rows, never
    /// a panic out of `open` or `next_record`, and never an endless read.
    #[test]
    fn damaged_files_never_panic(seed in any::<u64>(), hits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(7)).build();
        let path = write_with(dir.path(), "ok.parquet", audit_columns(20), Some(props));
        let mut bytes = std::fs::read(&path).unwrap();
        let len = bytes.len();
        for (at, value) in hits {
            let i = (usize::from(at) ^ seed as usize) % len;
            bytes[i] = value;
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(mut rows) = ParquetRows::open(&path, "fuzz".into()) {
            let (mut ev, mut raw) = (Event::default(), Vec::new());
            let mut n = 0;
            while rows.next_record(&mut ev, &mut raw).is_some() {
                n += 1;
                prop_assert!(n <= 1_000_000);
            }
        }
    }

    #[test]
    fn decimals_match_parsed_text(v in any::<i128>(), scale in 0i8..=38) {
        let text: f64 = format!("{v}e-{scale}").parse().unwrap();
        prop_assert_eq!(decimal(v, scale), text);
    }

    /// Random `system.access.audit` rows decode the same from Parquet as
    /// from the equivalent JSON line.
    #[test]
    fn parquet_rows_decode_like_their_json(rows in proptest::collection::vec(audit_row(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        let n = rows.len();
        let opt = |f: &dyn Fn(&AuditRow) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let params: Vec<MapRow<'_>> = rows
            .iter()
            .map(|r| r.params.as_ref().map(|p| p.iter().map(|(k, v)| (*k, v.as_deref())).collect()))
            .collect();
        let path = write(
            dir.path(),
            "audit.parquet",
            vec![
                ("event_time", ts(&rows.iter().map(|r| r.time_us).collect::<Vec<_>>())),
                ("service_name", opt(&|r| r.service.clone())),
                ("action_name", opt(&|r| r.action.clone())),
                ("workspace_id", opt(&|r| r.workspace.clone())),
                ("event_id", opt(&|r| r.event_id.clone())),
                ("request_id", opt(&|r| r.request_id.clone())),
                ("source_ip_address", opt(&|r| r.ip.clone())),
                (
                    "user_identity",
                    structure_with_nulls(
                        vec![("email", opt(&|r| r.email.clone())), ("subject_name", opt(&|r| r.subject.clone()))],
                        Some(rows.iter().map(|r| r.has_identity).collect()),
                    ),
                ),
                ("identity_metadata", structure(vec![("run_as", opt(&|r| r.run_as.clone()))])),
                (
                    "response",
                    structure(vec![("status_code", Arc::new(Int32Array::from(rows.iter().map(|r| r.status).collect::<Vec<_>>())) as ArrayRef)]),
                ),
                ("request_params", string_map(&params)),
            ],
        );
        let parquet = read_all(&path);
        prop_assert_eq!(parquet.len(), n);
        for (row, got) in rows.iter().zip(parquet) {
            let line = row.json().to_string();
            let mut ev = Event::default();
            let want = decode_json(line.as_bytes(), &mut ev).map(|_| format!("{ev:?}"));
            let got = got.map(|ev| format!("{ev:?}")).map_err(|(reason, _)| reason);
            prop_assert_eq!(got, want, "{}", line);
        }
    }
}

#[derive(Debug, Clone)]
struct AuditRow {
    time_us: Option<i64>,
    service: Option<String>,
    action: Option<String>,
    workspace: Option<String>,
    event_id: Option<String>,
    request_id: Option<String>,
    ip: Option<String>,
    has_identity: bool,
    email: Option<String>,
    subject: Option<String>,
    run_as: Option<String>,
    status: Option<i32>,
    /// At most one key per field: a JSON object with both spellings of a
    /// key is refused as a duplicate, a Parquet map keeps the first.
    params: Option<Vec<(&'static str, Option<String>)>>,
}

impl AuditRow {
    /// The same row as a JSON line; a null is an absent key, as in Parquet.
    fn json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                o.insert(k.into(), v);
            }
        };
        put("event_time", self.time_us.map(|t| json!(t.div_euclid(1000))));
        put("service_name", self.service.clone().map(Into::into));
        put("action_name", self.action.clone().map(Into::into));
        put("workspace_id", self.workspace.clone().map(Into::into));
        put("event_id", self.event_id.clone().map(Into::into));
        put("request_id", self.request_id.clone().map(Into::into));
        put("source_ip_address", self.ip.clone().map(Into::into));
        let strip = |pairs: Vec<(&str, &Option<String>)>| -> serde_json::Value {
            pairs.into_iter().filter_map(|(k, v)| Some((k.to_owned(), json!(v.as_ref()?)))).collect()
        };
        put(
            "user_identity",
            self.has_identity.then(|| strip(vec![("email", &self.email), ("subject_name", &self.subject)])),
        );
        put("identity_metadata", Some(strip(vec![("run_as", &self.run_as)])));
        put("response", Some(self.status.map_or(json!({}), |s| json!({ "status_code": s }))));
        put("request_params", self.params.as_ref().map(|p| strip(p.iter().map(|(k, v)| (*k, v)).collect())));
        serde_json::Value::Object(o)
    }
}

fn audit_row() -> impl Strategy<Value = AuditRow> {
    let text = |choices: &'static [&'static str]| {
        proptest::option::weighted(0.8, proptest::sample::select(choices).prop_map(str::to_owned))
    };
    let who = text(&["Ana@X.com", " bob@x.com", "6F1C2A3B-1234-4ABC-9DEF-0123456789AB", "System-User", "", "  "]);
    let services = text(&["accounts", "unityCatalog", "databrickssql", "secrets", "jobs", "notAService"]);
    let actions = text(&["login", "getTable", "commandSubmit", "getSecret", "runSucceeded", "runStart", "x"]);
    let keys: Vec<&'static str> = PARAMS.iter().map(|&(k, _)| k).chain(["commandText", "junk"]).collect();
    let params = proptest::option::weighted(
        0.8,
        proptest::collection::vec(
            (proptest::sample::select(keys), proptest::option::of("[a-zA-Z0-9@./ ]{0,12}")),
            0..5,
        )
        .prop_map(|entries| {
            let mut seen = Vec::new();
            entries
                .into_iter()
                .filter(|(k, _)| {
                    let slot = slot_of(PARAMS, k);
                    let fresh =
                        !seen.contains(&(slot, *k)) && (slot.is_none() || !seen.iter().any(|(s, _)| *s == slot));
                    seen.push((slot, *k));
                    fresh
                })
                .collect::<Vec<_>>()
        }),
    );
    let time =
        proptest::option::weighted(0.9, prop_oneof![9 => T0_US - 10_000_000..T0_US + 10_000_000, 1 => any::<i64>()]);
    (
        (time, services, actions, text(&["42", "0", "-1", "x", "1234567890123456"])),
        (text(&["e-1", "e-2"]), text(&["r-1"]), text(&["10.0.0.1", "::1"])),
        (any::<bool>(), who.clone(), who.clone(), who),
        (proptest::option::of(prop_oneof![Just(200), Just(403), 0..1000]), params),
    )
        .prop_map(
            |(
                (time_us, service, action, workspace),
                (event_id, request_id, ip),
                (has_identity, email, subject, run_as),
                (status, params),
            )| AuditRow {
                time_us,
                service,
                action,
                workspace,
                event_id,
                request_id,
                ip,
                has_identity,
                email,
                subject,
                run_as,
                status,
                params,
            },
        )
}
