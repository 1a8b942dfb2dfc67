//! Decode: input records to a normalized [`Event`], or a quarantine reason.
//!
//! Owns shape recognition (per record, from the keys present), the mapping
//! of every shape's fields onto [`Event`], and the closed set of reasons a
//! record is refused ([`QuarantineReason`]). It never panics on input, never
//! allocates per record in the steady state (the [`Event`] slot is reused),
//! and never decides what is anomalous.

pub mod catalog;
pub mod dedup;
pub mod keep;
pub mod raw;

use crate::event::{Event, PrincipalKind, RunPhase, Shape, Signal, set_principal};
use crate::time::{EventTime, TimeError};
use raw::{Loose, RawIdentity, RawParams, RawRecord, Text};
use std::fmt;

/// Largest record accepted, in bytes. Real audit events are a few KiB; a
/// line larger than this is refused rather than buffered without bound.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// Why a record was refused. A closed set: it labels a metric and names the
/// reason in the quarantine file, so it must stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuarantineReason {
    /// Longer than the configured maximum record size.
    TooLarge,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// JSON that ends before the value does.
    Truncated,
    /// Not JSON.
    MalformedJson,
    /// JSON whose top level is not an object.
    NotAnObject,
    /// A known key holding a value of the wrong type (or a duplicated key).
    WrongType,
    /// An object that matches none of the known shapes.
    UnknownShape,
    /// No event time: it cannot be placed in event time, so it is not guessed.
    MissingTime,
    /// A time that does not parse.
    BadTime,
    /// A time before 2000 or after 2100.
    TimeOutOfRange,
    /// A key the shape requires is absent (e.g. `actionName`, `sku_name`).
    MissingField,
    /// Not refused but written beside the refused records: an event whose
    /// buckets had closed in every detector that wanted it (late beyond
    /// every allowed lateness). Counted per shape, not as quarantined.
    Late,
    /// The same record id was seen before within the deduplication window.
    Duplicate,
    /// A Parquet file or row group that could not be read.
    BadParquet,
}

impl QuarantineReason {
    pub const ALL: [QuarantineReason; 14] = [
        QuarantineReason::TooLarge,
        QuarantineReason::InvalidUtf8,
        QuarantineReason::Truncated,
        QuarantineReason::MalformedJson,
        QuarantineReason::NotAnObject,
        QuarantineReason::WrongType,
        QuarantineReason::UnknownShape,
        QuarantineReason::MissingTime,
        QuarantineReason::BadTime,
        QuarantineReason::TimeOutOfRange,
        QuarantineReason::MissingField,
        QuarantineReason::Late,
        QuarantineReason::Duplicate,
        QuarantineReason::BadParquet,
    ];

    /// Stable snake_case name: metric label value and quarantine file field.
    pub fn name(self) -> &'static str {
        match self {
            QuarantineReason::TooLarge => "too_large",
            QuarantineReason::InvalidUtf8 => "invalid_utf8",
            QuarantineReason::Truncated => "truncated",
            QuarantineReason::MalformedJson => "malformed_json",
            QuarantineReason::NotAnObject => "not_an_object",
            QuarantineReason::WrongType => "wrong_type",
            QuarantineReason::UnknownShape => "unknown_shape",
            QuarantineReason::MissingTime => "missing_time",
            QuarantineReason::BadTime => "bad_time",
            QuarantineReason::TimeOutOfRange => "time_out_of_range",
            QuarantineReason::MissingField => "missing_field",
            QuarantineReason::Late => "late",
            QuarantineReason::Duplicate => "duplicate",
            QuarantineReason::BadParquet => "bad_parquet",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<TimeError> for QuarantineReason {
    fn from(e: TimeError) -> Self {
        match e {
            TimeError::Unparsable => QuarantineReason::BadTime,
            TimeError::OutOfRange => QuarantineReason::TimeOutOfRange,
        }
    }
}

/// Decodes one JSON line into `ev`, keeping every request parameter of
/// an audit event. On error `ev` holds garbage.
pub fn decode_json(line: &[u8], ev: &mut Event) -> Result<Shape, QuarantineReason> {
    decode_json_keeping(line, ev, &keep::KeepParams::everything())
}

/// [`decode_json`], keeping request parameters only for the events `keep`
/// names (what the loaded detectors read).
pub fn decode_json_keeping(line: &[u8], ev: &mut Event, keep: &keep::KeepParams) -> Result<Shape, QuarantineReason> {
    let text = std::str::from_utf8(line).map_err(|_| QuarantineReason::InvalidUtf8)?;
    // serde would read a JSON array into the struct by position: refuse
    // anything but an object up front.
    match text.trim_start().as_bytes().first() {
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => QuarantineReason::NotAnObject,
                Err(e) => classify_json_error(e),
            });
        }
        _ => {}
    }
    let raw: RawRecord<'_> = serde_json::from_str(text).map_err(classify_json_error)?;
    let shape = normalize(&raw, ev)?;
    if matches!(shape, Shape::AuditDelivery | Shape::SystemAudit) && keep.keeps(&ev.service, &ev.action) {
        all_params(text, ev);
    }
    Ok(shape)
}

/// Copies every request parameter of `text` into `ev.params`: the rules
/// read parameters no typed field holds (configuration keys, token
/// lifetimes, ...). A second, narrow parse, done only for the events the
/// loaded detectors read parameters of (see [`keep::KeepParams`]), so the
/// hot path pays nothing. Strings are unescaped; numbers and booleans
/// kept as written; nested values as their JSON text; nulls skipped.
fn all_params(text: &str, ev: &mut Event) {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow, rename = "requestParams", alias = "request_params")]
        params: Option<std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue>>,
    }
    let Ok(Params { params: Some(map) }) = serde_json::from_str::<Params<'_>>(text) else { return };
    for (key, value) in map {
        let raw = value.get();
        let text = match raw.as_bytes().first() {
            Some(b'"') => match serde_json::from_str::<std::borrow::Cow<'_, str>>(raw) {
                Ok(s) => s,
                Err(_) => continue,
            },
            Some(b'n') => continue,
            _ => std::borrow::Cow::Borrowed(raw),
        };
        ev.params.push((key.into_owned(), text.into_owned()));
    }
    ev.sort_params();
}

fn classify_json_error(e: serde_json::Error) -> QuarantineReason {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => QuarantineReason::Truncated,
        Category::Syntax | Category::Io => QuarantineReason::MalformedJson,
        Category::Data => QuarantineReason::WrongType,
    }
}

/// Recognises the shape of a raw record from the keys it carries.
pub fn detect_shape(raw: &RawRecord<'_>) -> Option<Shape> {
    if (raw.source_table_full_name.is_some() || raw.target_table_full_name.is_some()) && raw.service_name.is_none() {
        // Lineage rows carry `event_time` too: recognised first.
        Some(Shape::TableLineage)
    } else if raw.timestamp.is_some() {
        Some(Shape::AuditDelivery)
    } else if raw.event_time.is_some() || raw.service_name.is_some() || raw.action_name.is_some() {
        // Without either time key, a record naming a service is an audit
        // event without a time (quarantined as such).
        Some(Shape::SystemAudit)
    } else if raw.usage_quantity.is_some() || raw.usage_end_time.is_some() {
        Some(Shape::BillingUsage)
    } else if raw.pricing.is_some() || raw.price_start_time.is_some() {
        Some(Shape::ListPrice)
    } else if raw.period_start_time.is_some() || raw.period_end_time.is_some() || raw.run_id.is_some() {
        Some(Shape::JobRunTimeline)
    } else {
        None
    }
}

/// Maps a raw record of any shape onto `ev`.
pub fn normalize(raw: &RawRecord<'_>, ev: &mut Event) -> Result<Shape, QuarantineReason> {
    ev.clear();
    let shape = detect_shape(raw).ok_or(QuarantineReason::UnknownShape)?;
    ev.shape = Some(shape);
    match shape {
        Shape::AuditDelivery | Shape::SystemAudit => normalize_audit(raw, shape, ev)?,
        Shape::BillingUsage => normalize_usage(raw, ev)?,
        Shape::ListPrice => normalize_price(raw, ev)?,
        Shape::JobRunTimeline => normalize_run_timeline(raw, ev)?,
        Shape::TableLineage => normalize_lineage(raw, ev)?,
    }
    Ok(shape)
}

/// A text field: `Some` for a non-empty string or number.
fn text<'r>(t: &'r Text<'_>) -> Option<&'r Loose<'r>> {
    match t {
        Some(Loose::Null) | Some(Loose::Nested) | None => None,
        // Checked byte-first: almost every value starts with a non-space.
        Some(Loose::Str(s)) if s.as_bytes().first().is_none_or(|b| b.is_ascii_whitespace()) && s.trim().is_empty() => {
            None
        }
        Some(v) => Some(v),
    }
}

fn put(dst: &mut String, t: &Text<'_>) -> bool {
    match text(t) {
        Some(v) => {
            v.write_to(dst);
            true
        }
        None => false,
    }
}

fn first<'r>(candidates: &[&'r Text<'r>]) -> &'r Text<'r> {
    candidates.iter().copied().find(|t| text(t).is_some()).unwrap_or(&None)
}

/// Event time from an epoch-ms number or any textual form [`EventTime::parse`] reads.
fn time_of(t: &Text<'_>) -> Result<EventTime, QuarantineReason> {
    let v = text(t).ok_or(QuarantineReason::MissingTime)?;
    let time = match v {
        Loose::Int(ms) => EventTime(*ms),
        Loose::Float(ms) => EventTime(*ms as i64),
        Loose::Str(s) => EventTime::parse(s)?,
        _ => return Err(QuarantineReason::BadTime),
    };
    Ok(time.checked()?)
}

/// An optional time (e.g. `price_end_time: null`): absent is epoch 0.
fn optional_time(t: &Text<'_>) -> Result<EventTime, QuarantineReason> {
    match text(t) {
        None => Ok(EventTime(0)),
        Some(_) => time_of(t),
    }
}

fn workspace_of(t: &Text<'_>) -> u64 {
    text(t).and_then(|v| v.as_i64()).map(|n| n.max(0) as u64).unwrap_or(0)
}

fn set_principal_from(dst: &mut String, t: &Text<'_>) {
    if let Some(s) = text(t).and_then(|v| v.as_str()) {
        set_principal(dst, s);
    }
}

fn normalize_audit(raw: &RawRecord<'_>, shape: Shape, ev: &mut Event) -> Result<(), QuarantineReason> {
    // Both audit shapes fill the same fields; only the time key differs.
    if !put(&mut ev.service, &raw.service_name) || !put(&mut ev.action, &raw.action_name) {
        return Err(QuarantineReason::MissingField);
    }
    ev.time = time_of(if shape == Shape::AuditDelivery { &raw.timestamp } else { &raw.event_time })?;
    ev.status = raw
        .response
        .as_ref()
        .and_then(|r| text(&r.status_code))
        .and_then(|v| v.as_i64())
        .and_then(|n| u16::try_from(n).ok());
    if ev.failed()
        && let Some(r) = &raw.response
    {
        put(&mut ev.error_message, &r.error_message);
    }
    if let Some(level) = text(&raw.audit_level).and_then(|v| v.as_str()) {
        ev.audit_level = crate::event::AuditLevel::parse(level);
    }
    // A service missing from the catalogue (Databricks adds some every
    // quarter) is still data: it feeds the detectors that need no
    // service-specific knowledge (activity, source, access rules).
    ev.signals = match catalog::lookup(&ev.service, &ev.action, ev.failed()) {
        Some(signals) => signals,
        None => {
            ev.unknown_service = true;
            crate::event::Signals::EMPTY
        }
    };
    ev.workspace = workspace_of(&raw.workspace_id);
    put(&mut ev.source_ip, &raw.source_ip_address);
    put(&mut ev.user_agent, &raw.user_agent);
    // The event id is unique per event in system tables; delivered logs
    // only have the request id.
    if !put(&mut ev.id, &raw.event_id) {
        put(&mut ev.id, &raw.request_id);
    }

    let empty = RawParams::default();
    let params = raw.request_params.as_deref().unwrap_or(&empty);
    set_actor(ev, raw.user_identity.as_deref(), params);
    if let Some(meta) = &raw.identity_metadata {
        set_principal_from(&mut ev.run_as, &meta.run_as);
        if ev.run_as == ev.principal {
            ev.run_as.clear();
        }
    }
    set_params(ev, params);
    if !ev.principal.is_empty() && ev.principal_kind != PrincipalKind::System {
        ev.signals = ev.signals.with(Signal::Activity);
    }
    let names_source = !ev.source_ip.is_empty() || !ev.user_agent.is_empty();
    if names_source
        && !ev.principal.is_empty()
        && matches!(ev.principal_kind, PrincipalKind::User | PrincipalKind::ServicePrincipal)
        && !ev.signals.contains(Signal::FailedLogin)
    {
        ev.signals = ev.signals.with(Signal::Source);
    }
    Ok(())
}

/// The actor: `userIdentity.email`; for an unauthenticated login (no email,
/// or a placeholder) the user named in the request.
fn set_actor(ev: &mut Event, identity: Option<&RawIdentity<'_>>, params: &RawParams<'_>) {
    if let Some(id) = identity {
        set_principal_from(&mut ev.principal, &id.email);
        if ev.principal.is_empty() {
            set_principal_from(&mut ev.principal, &id.subject_name);
        }
    }
    let named_user = first(&[&params.user, &params.target_user_name, &params.principal]);
    set_principal_from(&mut ev.target, named_user);
    if ev.target.is_empty()
        && let Some(recipient) = text(&params.recipient_name).and_then(|v| v.as_str())
    {
        // A Delta Sharing recipient names no user: the recipient is whom
        // the request is about.
        ev.target.push_str("recipient:");
        ev.target.push_str(recipient.trim());
    }
    ev.principal_kind = PrincipalKind::classify(&ev.principal);
    // Checked last and without allocating: this runs for every audit event.
    if matches!(ev.principal_kind, PrincipalKind::Unknown | PrincipalKind::System)
        && !ev.target.is_empty()
        && crate::detect::rules::contains_ignore_case(&ev.action, "login")
    {
        ev.principal.clone_from(&ev.target);
        ev.principal_kind = PrincipalKind::classify(&ev.principal);
    }
}

fn set_params(ev: &mut Event, p: &RawParams<'_>) {
    if text(&p.scope).is_some() {
        // Secrets: scope/key names the secret.
        put(&mut ev.securable, &p.scope);
        if text(&p.key).is_some() {
            ev.securable.push('/');
            put(&mut ev.securable, &p.key);
        }
    } else {
        put(
            &mut ev.securable,
            first(&[
                &p.full_name_arg,
                &p.securable_full_name,
                &p.path,
                &p.mount_point,
                &p.notebook_id,
                &p.warehouse_id,
                &p.cluster_id,
                &p.job_id,
                &p.name,
            ]),
        );
    }
    put(&mut ev.group, &p.target_group_name);
    put(&mut ev.path, &p.path);
    put(&mut ev.auth_method, &p.authentication_method);
    put(&mut ev.changes, &p.changes);
    put(&mut ev.endpoint, &p.endpoint);
    put(&mut ev.role, &p.role);
    if ev.target.is_empty() {
        // An ownership change names its new owner as the target.
        set_principal_from(&mut ev.target, &p.owner);
    }
    if ev.service == "jobs" {
        put(&mut ev.job_id, &p.job_id);
        put(&mut ev.run_id, &p.run_id);
        ev.run_phase = catalog::run_phase(&ev.action);
        if ev.run_phase == RunPhase::End && !put(&mut ev.run_result, &p.job_terminal_state) {
            ev.run_result.push_str(catalog::run_result_of_action(&ev.action));
        }
    }
}

fn normalize_usage(raw: &RawRecord<'_>, ev: &mut Event) -> Result<(), QuarantineReason> {
    if !put(&mut ev.sku, &raw.sku_name) {
        return Err(QuarantineReason::MissingField);
    }
    ev.amount = match text(&raw.usage_quantity) {
        None => return Err(QuarantineReason::MissingField),
        Some(v) => v.as_f64().filter(|q| q.is_finite()).ok_or(QuarantineReason::WrongType)?,
    };
    ev.time = time_of(&raw.usage_end_time)?;
    ev.start = optional_time(&raw.usage_start_time)?;
    ev.correction = text(&raw.record_type)
        .and_then(|v| v.as_str())
        .is_some_and(|t| t.eq_ignore_ascii_case("RETRACTION") || t.eq_ignore_ascii_case("RESTATEMENT"));
    ev.workspace = workspace_of(&raw.workspace_id);
    put(&mut ev.id, &raw.record_id);
    if let Some(meta) = &raw.identity_metadata {
        set_principal_from(&mut ev.principal, first(&[&meta.run_as, &meta.owned_by, &meta.created_by]));
    }
    ev.principal_kind = PrincipalKind::classify(&ev.principal);
    if let Some(m) = &raw.usage_metadata {
        put(&mut ev.job_id, &m.job_id);
        put(&mut ev.run_id, &m.job_run_id);
        put(
            &mut ev.securable,
            first(&[&m.job_id, &m.warehouse_id, &m.dlt_pipeline_id, &m.endpoint_name, &m.notebook_id, &m.cluster_id]),
        );
    }
    ev.service.push_str("billing");
    ev.action.push_str("usage");
    ev.signals = crate::event::Signals::EMPTY.with(crate::event::Signal::Cost);
    Ok(())
}

fn normalize_price(raw: &RawRecord<'_>, ev: &mut Event) -> Result<(), QuarantineReason> {
    if !put(&mut ev.sku, &raw.sku_name) {
        return Err(QuarantineReason::MissingField);
    }
    let price = raw.pricing.as_ref().and_then(|p| text(&p.default)).ok_or(QuarantineReason::MissingField)?;
    ev.amount = price.as_f64().filter(|p| p.is_finite() && *p >= 0.0).ok_or(QuarantineReason::WrongType)?;
    ev.time = time_of(&raw.price_start_time)?;
    ev.start = ev.time;
    ev.end = optional_time(&raw.price_end_time)?;
    ev.service.push_str("billing");
    ev.action.push_str("listPrice");
    Ok(())
}

fn normalize_run_timeline(raw: &RawRecord<'_>, ev: &mut Event) -> Result<(), QuarantineReason> {
    if !put(&mut ev.job_id, &raw.job_id) || !put(&mut ev.run_id, &raw.run_id) {
        return Err(QuarantineReason::MissingField);
    }
    ev.time = time_of(&raw.period_end_time)?;
    ev.start = time_of(&raw.period_start_time)?;
    ev.end = ev.time;
    ev.workspace = workspace_of(&raw.workspace_id);
    // A long run is split into hourly slices; only the last has a result.
    ev.run_phase = if put(&mut ev.run_result, &raw.result_state) { RunPhase::Complete } else { RunPhase::Start };
    ev.securable.push_str(&ev.job_id);
    ev.id.push_str(&ev.run_id);
    ev.id.push('@');
    let _ = std::fmt::Write::write_fmt(&mut ev.id, format_args!("{}", ev.start.0));
    ev.service.push_str("jobs");
    ev.action.push_str("runTimeline");
    ev.signals = crate::event::Signals::EMPTY.with(crate::event::Signal::JobRun);
    Ok(())
}

fn normalize_lineage(raw: &RawRecord<'_>, ev: &mut Event) -> Result<(), QuarantineReason> {
    ev.time = time_of(&raw.event_time)?;
    put(&mut ev.source_table, &raw.source_table_full_name);
    put(&mut ev.securable, &raw.target_table_full_name);
    if ev.source_table.is_empty() && ev.securable.is_empty() {
        return Err(QuarantineReason::MissingField);
    }
    set_principal_from(&mut ev.principal, &raw.created_by);
    ev.principal_kind = PrincipalKind::classify(&ev.principal);
    ev.workspace = workspace_of(&raw.workspace_id);
    if !put(&mut ev.id, &raw.record_id) && !put(&mut ev.id, &raw.event_id) {
        put(&mut ev.id, &raw.statement_id);
    }
    ev.service.push_str("lineage");
    put(&mut ev.action, &raw.entity_type);
    Ok(())
}

#[cfg(test)]
mod tests;
