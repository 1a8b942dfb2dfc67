use super::*;

fn decode(line: &str) -> Result<Event, QuarantineReason> {
    let mut ev = Event::default();
    decode_json(line.as_bytes(), &mut ev).map(|_| ev)
}

#[test]
fn delivered_audit_event() {
    let ev = decode(
        r#"{"version":"2.0","timestamp":1759795200000,"workspaceId":"1234567890123456","sourceIPAddress":"203.0.113.10","userAgent":"Mozilla/5.0","userIdentity":{"email":"Analyst@Example.com"},"serviceName":"unityCatalog","actionName":"getTable","requestId":"r-1","requestParams":{"full_name_arg":"main.sales.orders","num":3},"response":{"statusCode":200,"result":"{}"}}"#,
    )
    .unwrap();
    assert_eq!(ev.shape, Some(Shape::AuditDelivery));
    assert_eq!(ev.time, EventTime(1_759_795_200_000));
    assert_eq!(ev.workspace, 1_234_567_890_123_456);
    assert_eq!(ev.principal, "analyst@example.com");
    assert_eq!(ev.principal_kind, PrincipalKind::User);
    assert_eq!(ev.securable, "main.sales.orders");
    assert_eq!(ev.source_ip, "203.0.113.10");
    assert_eq!(ev.id, "r-1");
    assert_eq!(ev.status, Some(200));
}

#[test]
fn system_access_audit_row() {
    let ev = decode(
        r#"{"account_id":"a","workspace_id":"42","event_time":"2024-01-01T12:00:00.000Z","service_name":"databrickssql","action_name":"commandSubmit","user_identity":{"email":"6f1c2a3b-1234-4abc-9def-0123456789ab"},"request_params":{"warehouseId":"wh1"},"response":{"status_code":200},"event_id":"e-1","request_id":"r-1","identity_metadata":{"run_by":"x","run_as":"6F1C2A3B-1234-4ABC-9DEF-0123456789AB","acting_as":null}}"#,
    )
    .unwrap();
    assert_eq!(ev.shape, Some(Shape::SystemAudit));
    assert_eq!(ev.time, EventTime(1_704_110_400_000));
    assert_eq!(ev.principal_kind, PrincipalKind::ServicePrincipal);
    assert_eq!(ev.run_as, "", "run_as equal to the actor is not repeated");
    assert_eq!(ev.id, "e-1", "event_id preferred over request_id");
    assert_eq!(ev.securable, "wh1");
    assert!(ev.signals.contains(crate::event::Signal::QueryFrequency));
}

#[test]
fn billing_usage_price_and_timeline_rows() {
    let usage = decode(
        r#"{"record_id":"u1","workspace_id":"42","sku_name":"PREMIUM_JOBS_COMPUTE","usage_start_time":"2024-01-01T10:00:00Z","usage_end_time":"2024-01-01T11:00:00Z","usage_quantity":"3.5","usage_metadata":{"job_id":"77","job_run_id":"9"},"identity_metadata":{"run_as":"etl@x.com"}}"#,
    )
    .unwrap();
    assert_eq!(usage.shape, Some(Shape::BillingUsage));
    assert_eq!((usage.amount, usage.principal.as_str(), usage.job_id.as_str()), (3.5, "etl@x.com", "77"));
    assert_eq!(usage.time, EventTime::parse("2024-01-01T11:00:00Z").unwrap());

    let price = decode(
        r#"{"price_start_time":"2023-01-01T00:00:00Z","price_end_time":null,"sku_name":"PREMIUM_JOBS_COMPUTE","currency_code":"USD","pricing":{"default":"0.15"}}"#,
    )
    .unwrap();
    assert_eq!(price.shape, Some(Shape::ListPrice));
    assert_eq!((price.amount, price.end), (0.15, EventTime(0)));

    let run = decode(
        r#"{"workspace_id":"42","job_id":"77","run_id":"9","period_start_time":"2024-01-01T10:00:00Z","period_end_time":"2024-01-01T10:30:00Z","result_state":"SUCCEEDED"}"#,
    )
    .unwrap();
    assert_eq!(run.shape, Some(Shape::JobRunTimeline));
    assert_eq!(run.run_phase, RunPhase::Complete);
    assert_eq!(run.end.0 - run.start.0, 30 * 60_000);
}

#[test]
fn failed_login_principal_comes_from_the_request() {
    let ev = decode(
        r#"{"timestamp":1704067200000,"serviceName":"accounts","actionName":"login","userIdentity":{"email":""},"requestParams":{"user":"Victim@Example.com"},"response":{"statusCode":401}}"#,
    )
    .unwrap();
    assert_eq!(ev.principal, "victim@example.com");
    assert!(ev.signals.contains(crate::event::Signal::FailedLogin));
}

#[test]
fn jobs_events_rebuild_runs() {
    let ev = decode(
        r#"{"timestamp":1704067200000,"serviceName":"jobs","actionName":"runFailed","userIdentity":{"email":"etl@x.com"},"requestParams":{"jobId":"5","runId":"11"}}"#,
    )
    .unwrap();
    assert_eq!((ev.job_id.as_str(), ev.run_id.as_str(), ev.run_phase), ("5", "11", RunPhase::End));
    assert_eq!(ev.run_result, "FAILED");
}

#[test]
fn each_bad_input_has_its_reason() {
    let cases: &[(&[u8], QuarantineReason)] = &[
        (b"\xff\xfe{}", QuarantineReason::InvalidUtf8),
        (br#"{"timestamp":1704067200000,"serviceName":"acc"#, QuarantineReason::Truncated),
        (b"not json", QuarantineReason::MalformedJson),
        (b"[1,2,3]", QuarantineReason::NotAnObject),
        (
            br#"{"timestamp":1704067200000,"serviceName":"accounts","actionName":"login","userIdentity":"oops"}"#,
            QuarantineReason::WrongType,
        ),
        (br#"{"hello":"world"}"#, QuarantineReason::UnknownShape),
        (br#"{"serviceName":"accounts","actionName":"login"}"#, QuarantineReason::MissingTime),
        (br#"{"timestamp":"next tuesday","serviceName":"accounts","actionName":"login"}"#, QuarantineReason::BadTime),
        (br#"{"timestamp":0,"serviceName":"accounts","actionName":"login"}"#, QuarantineReason::TimeOutOfRange),
        (
            br#"{"timestamp":32503680000000,"serviceName":"accounts","actionName":"login"}"#,
            QuarantineReason::TimeOutOfRange,
        ),
        (br#"{"timestamp":1704067200000,"serviceName":"accounts"}"#, QuarantineReason::MissingField),
        (
            br#"{"sku_name":"X","usage_end_time":"2024-01-01T00:00:00Z","usage_quantity":"lots"}"#,
            QuarantineReason::WrongType,
        ),
    ];
    for (input, want) in cases {
        let mut ev = Event::default();
        assert_eq!(decode_json(input, &mut ev), Err(*want), "{}", String::from_utf8_lossy(input));
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let mut ev = Event::default();
        let _ = decode_json(&bytes, &mut ev);
    }

    #[test]
    fn mangled_real_events_never_panic(cut in 0usize..400, flip in 0usize..400, byte in proptest::num::u8::ANY) {
        let base = br#"{"version":"2.0","timestamp":1759795200000,"workspaceId":"1","userIdentity":{"email":"a@b.c"},"serviceName":"secrets","actionName":"getSecret","requestId":"r","requestParams":{"scope":"s","key":"k"},"response":{"statusCode":200}}"#;
        let mut bytes = base[..cut.min(base.len())].to_vec();
        if !bytes.is_empty() {
            let i = flip % bytes.len();
            bytes[i] = byte;
        }
        let mut ev = Event::default();
        let _ = decode_json(&bytes, &mut ev);
    }
}
