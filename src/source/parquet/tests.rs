use super::*;
use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::{Decimal128Array, Int32Array, StringArray, TimestampMicrosecondArray};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;

const T0_US: i64 = 1_704_110_400_000_000; // 2024-01-01T12:00:00Z

fn utf8(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn ts(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC"))
}

fn structure(children: Vec<(&str, ArrayRef)>) -> ArrayRef {
    let pairs: Vec<(Arc<Field>, ArrayRef)> =
        children.into_iter().map(|(n, a)| (Arc::new(Field::new(n, a.data_type().clone(), true)), a)).collect();
    Arc::new(StructArray::from(pairs))
}

fn write(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> std::path::PathBuf {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let path = dir.join(name);
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

fn read_all(path: &Path) -> Vec<Result<Event, QuarantineReason>> {
    let mut rows = ParquetRows::open(path, path.display().to_string()).unwrap();
    let (mut ev, mut raw, mut out) = (Event::default(), Vec::new(), Vec::new());
    while let Some(r) = rows.next_record(&mut ev, &mut raw) {
        out.push(match r {
            Record::Event(_) => Ok(ev.clone()),
            Record::Quarantined(q) => Err(q),
        });
    }
    out
}

#[test]
fn system_access_audit_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    params.keys().append_value("full_name_arg");
    params.values().append_value("main.sales.orders");
    params.keys().append_value("ignored");
    params.values().append_value("x");
    params.append(true).unwrap();
    params.append(true).unwrap();
    let path = write(
        dir.path(),
        "audit.parquet",
        vec![
            ("account_id", utf8(&[Some("acc"), Some("acc")])),
            ("workspace_id", utf8(&[Some("42"), Some("42")])),
            ("event_time", ts(&[Some(T0_US), None])),
            ("service_name", utf8(&[Some("unityCatalog"), Some("unityCatalog")])),
            ("action_name", utf8(&[Some("getTable"), Some("getTable")])),
            (
                "user_identity",
                structure(vec![
                    ("email", utf8(&[Some("Ana@X.com"), Some("ana@x.com")])),
                    ("subject_name", utf8(&[None, None])),
                ]),
            ),
            ("request_params", Arc::new(params.finish())),
            (
                "response",
                structure(vec![
                    ("status_code", Arc::new(Int32Array::from(vec![200, 200])) as ArrayRef),
                    ("error_message", utf8(&[None, None])),
                ]),
            ),
            (
                "identity_metadata",
                structure(vec![
                    ("run_by", utf8(&[None, None])),
                    ("run_as", utf8(&[Some("svc@x.com"), None])),
                    ("acting_as", utf8(&[None, None])),
                ]),
            ),
            ("event_id", utf8(&[Some("e-1"), Some("e-2")])),
        ],
    );
    let rows = read_all(&path);
    let ev = rows[0].as_ref().unwrap();
    assert_eq!(ev.shape, Some(crate::event::Shape::SystemAudit));
    assert_eq!(ev.time, crate::time::EventTime(T0_US / 1000));
    assert_eq!(ev.principal, "ana@x.com");
    assert_eq!(ev.run_as, "svc@x.com");
    assert_eq!(ev.securable, "main.sales.orders");
    assert_eq!(ev.status, Some(200));
    assert_eq!(ev.workspace, 42);
    assert_eq!(ev.id, "e-1");
    assert_eq!(rows[1].as_ref().unwrap_err(), &QuarantineReason::MissingTime);
}

#[test]
fn billing_usage_list_prices_and_timeline_rows() {
    let dir = tempfile::tempdir().unwrap();
    let dec =
        |v: i128| -> ArrayRef { Arc::new(Decimal128Array::from(vec![v]).with_precision_and_scale(38, 18).unwrap()) };
    let usage = write(
        dir.path(),
        "usage.parquet",
        vec![
            ("record_id", utf8(&[Some("u1")])),
            ("workspace_id", utf8(&[Some("42")])),
            ("sku_name", utf8(&[Some("PREMIUM_JOBS_COMPUTE")])),
            ("usage_start_time", ts(&[Some(T0_US)])),
            ("usage_end_time", ts(&[Some(T0_US + 3_600_000_000)])),
            ("usage_quantity", dec(3_500_000_000_000_000_000)),
            ("usage_metadata", structure(vec![("job_id", utf8(&[Some("77")])), ("job_run_id", utf8(&[Some("9")]))])),
            ("identity_metadata", structure(vec![("run_as", utf8(&[Some("6F1C2A3B-1234-4ABC-9DEF-0123456789AB")]))])),
        ],
    );
    let ev = read_all(&usage).remove(0).unwrap();
    assert_eq!(ev.shape, Some(crate::event::Shape::BillingUsage));
    assert_eq!((ev.sku.as_str(), ev.amount, ev.job_id.as_str()), ("PREMIUM_JOBS_COMPUTE", 3.5, "77"));
    assert_eq!(ev.principal, "6f1c2a3b-1234-4abc-9def-0123456789ab");
    assert_eq!(ev.principal_kind, crate::event::PrincipalKind::ServicePrincipal);

    let prices = write(
        dir.path(),
        "prices.parquet",
        vec![
            ("price_start_time", ts(&[Some(T0_US)])),
            ("price_end_time", ts(&[None])),
            ("sku_name", utf8(&[Some("PREMIUM_JOBS_COMPUTE")])),
            ("currency_code", utf8(&[Some("USD")])),
            ("pricing", structure(vec![("default", dec(150_000_000_000_000_000))])),
        ],
    );
    let ev = read_all(&prices).remove(0).unwrap();
    assert_eq!(ev.shape, Some(crate::event::Shape::ListPrice));
    assert!((ev.amount - 0.15).abs() < 1e-12);
    assert_eq!(ev.end.0, 0);

    let timeline = write(
        dir.path(),
        "timeline.parquet",
        vec![
            ("workspace_id", utf8(&[Some("42")])),
            ("job_id", utf8(&[Some("77")])),
            ("run_id", utf8(&[Some("9")])),
            ("period_start_time", ts(&[Some(T0_US)])),
            ("period_end_time", ts(&[Some(T0_US + 1_800_000_000)])),
            ("result_state", utf8(&[Some("SUCCEEDED")])),
        ],
    );
    let ev = read_all(&timeline).remove(0).unwrap();
    assert_eq!(ev.shape, Some(crate::event::Shape::JobRunTimeline));
    assert_eq!(ev.end.0 - ev.start.0, 1_800_000);
    assert_eq!(ev.run_result, "SUCCEEDED");
}

#[test]
fn only_the_needed_columns_are_projected() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "wide.parquet",
        vec![
            ("event_time", ts(&[Some(T0_US)])),
            ("service_name", utf8(&[Some("accounts")])),
            ("action_name", utf8(&[Some("login")])),
            ("some_other_column", utf8(&[Some("not read")])),
        ],
    );
    let rows = ParquetRows::open(&path, "x".into()).unwrap();
    use arrow_array::RecordBatchReader;
    assert_eq!(rows.reader.schema().fields().len(), 3);
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
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
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
}
