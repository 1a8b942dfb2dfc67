//! auditwatch: a streaming anomaly detector for Databricks audit and billing
//! logs.
//!
//! # Layout
//!
//! Data flows one way, and the modules are named after the stages:
//!
//! - [`source`]: where records come from (files and directories, plain,
//!   gzip or Parquet) and in what order.
//! - [`decode`]: bytes or Parquet rows to a normalized [`event::Event`];
//!   recognises the shape per record and quarantines what it cannot read.
//! - [`signal`]: which signals an event feeds, and job runs rebuilt from
//!   start/end events.
//! - [`baseline`]: per-principal statistical models of each signal.
//! - [`detect`]: event-time buckets closed by a watermark, scored against
//!   the baselines by detectors.
//! - [`access`]: who may do what, built from grants, groups, admin roles
//!   and removals in the stream.
//! - [`alert`]: the alert schema, deterministic ids and the alert policy.
//! - [`sink`]: where alerts and quarantined records are written: files,
//!   and the fan-out to SIEMs, chat and paging with a durable spool.
//! - [`state`]: interning of principal names and the per-principal table.
//! - [`telemetry`]: counters every stage reports into, the run summary, the
//!   Prometheus metrics and their HTTP endpoints.
//! - [`pipeline`]: wires the stages; replay and the demo share it.
//! - [`generate`]: synthetic Databricks activity: behaviour archetypes,
//!   labelled incidents and labelled hard negatives.
//! - [`eval`]: precision, recall and time to detect on generated data, per
//!   signal and archetype, and the alerts on hard negatives.
//! - [`score_series`]: the same models on any exported metric series (CSV).
//! - [`event`] and [`time`]: the typed vocabulary all stages share.
//!
//! # Example
//!
//! Decoding one delivered audit event into the reusable [`event::Event`] slot:
//!
//! ```
//! use auditwatch::decode::decode_json;
//! use auditwatch::event::{Event, PrincipalKind, Shape, Signal};
//!
//! let line = br#"{"timestamp":1704103200000,"serviceName":"databrickssql","actionName":"commandSubmit",
//!   "userIdentity":{"email":"Ana@Example.com"},"requestId":"r-1","requestParams":{"warehouseId":"wh-1"}}"#;
//! let mut ev = Event::default();
//! assert_eq!(decode_json(line, &mut ev), Ok(Shape::AuditDelivery));
//! assert_eq!((ev.principal.as_str(), ev.principal_kind), ("ana@example.com", PrincipalKind::User));
//! assert!(ev.signals.contains(Signal::QueryFrequency));
//! assert_eq!(ev.time.to_string(), "2024-01-01T10:00:00.000Z");
//! ```

pub mod access;
pub mod alert;
pub mod baseline;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod eval;
pub mod event;
pub mod generate;
pub mod live;
pub mod pipeline;
pub mod score_series;
pub mod signal;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod time;
