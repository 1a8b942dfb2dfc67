//! The normalized [`Event`]: what every stage after decode sees.
//!
//! Owns the typed vocabulary of the pipeline (shape, principal and its kind,
//! signals). An `Event` is a reusable slot: decoders overwrite its fields in
//! place (`clear` + `push_str`) so that steady-state decoding allocates
//! nothing. Nothing here parses input or keeps state across events.

use crate::time::EventTime;
use std::fmt;

/// The input shape a record was recognised as. Detected per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// Audit log as delivered by audit log delivery (camelCase, epoch-ms `timestamp`).
    AuditDelivery,
    /// A `system.access.audit` row (snake_case, `event_time`).
    SystemAudit,
    /// A `system.billing.usage` row.
    BillingUsage,
    /// A `system.billing.list_prices` row.
    ListPrice,
    /// A `system.lakeflow.job_run_timeline` row.
    JobRunTimeline,
    /// A `system.access.table_lineage` row: data read from a source table
    /// and written to a target by a principal.
    TableLineage,
}

impl Shape {
    pub const ALL: [Shape; 6] = [
        Shape::AuditDelivery,
        Shape::SystemAudit,
        Shape::BillingUsage,
        Shape::ListPrice,
        Shape::JobRunTimeline,
        Shape::TableLineage,
    ];

    /// Stable snake_case name used in summaries, metrics labels and files.
    pub fn name(self) -> &'static str {
        match self {
            Shape::AuditDelivery => "audit_delivery",
            Shape::SystemAudit => "system_access_audit",
            Shape::BillingUsage => "system_billing_usage",
            Shape::ListPrice => "system_billing_list_prices",
            Shape::JobRunTimeline => "system_lakeflow_job_run_timeline",
            Shape::TableLineage => "system_access_table_lineage",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of identity a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person, named by email.
    User,
    /// A service principal, named by its application id (a UUID).
    ServicePrincipal,
    /// Databricks itself (`System-User`, internal services).
    System,
    /// No principal could be read from the record.
    #[default]
    Unknown,
}

impl PrincipalKind {
    pub fn name(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ServicePrincipal => "service_principal",
            PrincipalKind::System => "system",
            PrincipalKind::Unknown => "unknown",
        }
    }

    /// Classifies an already-normalized principal name. The same rule for
    /// every shape: an email is a user, a UUID is a service principal's
    /// application id, Databricks' own placeholders are the system.
    pub fn classify(name: &str) -> PrincipalKind {
        if name.is_empty() {
            PrincipalKind::Unknown
        } else if is_system_name(name) {
            PrincipalKind::System
        } else if name.contains('@') {
            PrincipalKind::User
        } else if is_uuid(name) {
            PrincipalKind::ServicePrincipal
        } else {
            // Service principals created with a display name sometimes appear
            // by name in `run_as`; anything that is not an email, a UUID or a
            // system placeholder is treated as a service principal.
            PrincipalKind::ServicePrincipal
        }
    }
}

/// Names Databricks writes for its own actions (compared lowercase).
fn is_system_name(name: &str) -> bool {
    matches!(name, "system-user" | "system" | "unknown" | "databricks" | "unity catalog" | "system user")
        || name.starts_with("system-")
}

/// True for the canonical 8-4-4-4-12 hex form.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A signal: one measurable aspect of a principal's behaviour. Closed set;
/// detectors name signals by [`Signal::name`] in `models/*.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// SQL warehouse, notebook and statement execution events.
    QueryFrequency,
    /// Grants, ownership, ACL changes, group membership, admin role changes.
    PermissionChange,
    /// A job run started or ended (runtime comes from pairing them).
    JobRun,
    /// Billing usage (DBUs, priced when a list price is known).
    Cost,
    /// A login that failed.
    FailedLogin,
    /// A personal access token or OAuth secret was created.
    TokenCreation,
    /// A secret was read.
    SecretRead,
    /// Query results, notebooks or files downloaded or exported.
    DataDownload,
    /// An action by a user or service principal that names the network
    /// address or client it came from (source IP, user agent): the input of
    /// the first-seen source detector. Failed logins are left out (they
    /// have their own signal).
    Source,
    /// Any audited action by a named principal (the input of the access
    /// detectors: offboarded principals, role drift).
    Activity,
}

impl Signal {
    pub const ALL: [Signal; 10] = [
        Signal::QueryFrequency,
        Signal::PermissionChange,
        Signal::JobRun,
        Signal::Cost,
        Signal::FailedLogin,
        Signal::TokenCreation,
        Signal::SecretRead,
        Signal::DataDownload,
        Signal::Source,
        Signal::Activity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::QueryFrequency => "query_frequency",
            Signal::PermissionChange => "permission_change",
            Signal::JobRun => "job_run",
            Signal::Cost => "cost",
            Signal::FailedLogin => "failed_login",
            Signal::TokenCreation => "token_creation",
            Signal::SecretRead => "secret_read",
            Signal::DataDownload => "data_download",
            Signal::Source => "source",
            Signal::Activity => "activity",
        }
    }

    pub fn from_name(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// The set of signals one event feeds (a bit set; an event may feed several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals(u16);

impl Signals {
    pub const EMPTY: Signals = Signals(0);

    pub fn with(self, s: Signal) -> Signals {
        Signals(self.0 | s.bit())
    }

    pub fn contains(self, s: Signal) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as bits (for compact encodings).
    pub fn bits(self) -> u16 {
        self.0
    }

    /// The set of `bits` (unknown bits are dropped).
    pub fn from_bits(bits: u16) -> Signals {
        Signals(bits & ((1 << Signal::ALL.len()) - 1))
    }

    pub fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// Which part of a job run an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunPhase {
    #[default]
    None,
    /// The run started (audit `runStart`).
    Start,
    /// The run ended (audit `runSucceeded`/`runFailed`, ...).
    End,
    /// Start and end are both known (a `job_run_timeline` row).
    Complete,
}

/// `auditLevel` of an audit event: whether it was logged for the account
/// or for a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AuditLevel {
    #[default]
    Unknown,
    Account,
    Workspace,
}

impl AuditLevel {
    /// From `ACCOUNT_LEVEL` / `WORKSPACE_LEVEL` (any case).
    pub fn parse(s: &str) -> AuditLevel {
        if s.eq_ignore_ascii_case("ACCOUNT_LEVEL") {
            AuditLevel::Account
        } else if s.eq_ignore_ascii_case("WORKSPACE_LEVEL") {
            AuditLevel::Workspace
        } else {
            AuditLevel::Unknown
        }
    }

    pub fn index(self) -> u8 {
        self as u8
    }

    pub fn from_index(i: u8) -> AuditLevel {
        match i {
            1 => AuditLevel::Account,
            2 => AuditLevel::Workspace,
            _ => AuditLevel::Unknown,
        }
    }
}

/// One normalized record. Empty strings mean "absent" (see the accessors);
/// the fields are `String`s so a decoder can reuse their capacity.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub shape: Option<Shape>,
    /// When it happened (for billing: the end of the usage window).
    pub time: EventTime,
    /// Workspace id; 0 for account-level events.
    pub workspace: u64,
    /// Who did it: lowercase email, service principal application id, or
    /// the system placeholder. For billing rows, the `run_as` identity.
    pub principal: String,
    pub principal_kind: PrincipalKind,
    /// The identity whose rights were used (`identity_metadata.run_as`), when
    /// different from the actor.
    pub run_as: String,
    pub service: String,
    pub action: String,
    pub source_ip: String,
    pub user_agent: String,
    /// What was acted on: a Unity Catalog full name, a path, a job, cluster
    /// or warehouse id, a secret scope/key.
    pub securable: String,
    /// The principal an admin, group or login action names (e.g. the user of
    /// a failed login, the target of `setAdmin`).
    pub target: String,
    /// A group an action names (`targetGroupName`).
    pub group: String,
    /// Unity Catalog permission changes as the request gives them (a JSON
    /// array of `{principal, add, remove}`), for the access model.
    pub changes: String,
    /// The SCIM endpoint of an account-level create or delete (`/users`,
    /// `/servicePrincipals`, `/groups`).
    pub endpoint: String,
    /// The role of `modifyUserRole`.
    pub role: String,
    /// Lineage: the table data was read from (`securable` is the target).
    pub source_table: String,
    /// Every request parameter, as text, for the services the rules read
    /// (empty for the rest: see `decode::keep::KeepParams`).
    pub params: Vec<(String, String)>,
    /// `requestId` / `event_id` / `record_id`: what an alert cites as evidence.
    pub id: String,
    /// HTTP-like status of the response, when given.
    pub status: Option<u16>,
    /// `response.errorMessage` of a refused request (status 400 or more).
    pub error_message: String,
    /// `requestParams.path` of an audit event, kept whatever the service.
    pub path: String,
    /// `requestParams.authenticationMethod` of an audit event, kept
    /// whatever the service.
    pub auth_method: String,
    /// `auditLevel` of an audit event.
    pub audit_level: AuditLevel,
    pub signals: Signals,
    /// Job id and run id for job events and job-run rows; job id for billing.
    pub job_id: String,
    pub run_id: String,
    pub run_phase: RunPhase,
    /// Terminal state of a run (`SUCCEEDED`, `FAILED`, ...), when known.
    pub run_result: String,
    /// Billing SKU (usage and list prices).
    pub sku: String,
    /// DBUs for usage rows; price per unit for list-price rows.
    pub amount: f64,
    /// Start of a usage window, run, or price validity.
    pub start: EventTime,
    /// End of a usage window, run, or price validity (0 = open-ended).
    pub end: EventTime,
    /// A billing row whose `record_type` is `RETRACTION` or `RESTATEMENT`:
    /// it corrects an hour billed before.
    pub correction: bool,
    /// An audit event of a service the catalogue does not know: it feeds
    /// only the detectors that need no service-specific knowledge.
    pub unknown_service: bool,
}

fn opt(s: &str) -> Option<&str> {
    if s.is_empty() { None } else { Some(s) }
}

impl Event {
    /// Resets every field, keeping string capacity.
    pub fn clear(&mut self) {
        self.shape = None;
        self.time = EventTime::default();
        self.workspace = 0;
        self.principal.clear();
        self.principal_kind = PrincipalKind::Unknown;
        self.run_as.clear();
        self.service.clear();
        self.action.clear();
        self.source_ip.clear();
        self.user_agent.clear();
        self.securable.clear();
        self.target.clear();
        self.group.clear();
        self.changes.clear();
        self.endpoint.clear();
        self.role.clear();
        self.source_table.clear();
        self.params.clear();
        self.id.clear();
        self.status = None;
        self.error_message.clear();
        self.path.clear();
        self.auth_method.clear();
        self.audit_level = AuditLevel::Unknown;
        self.signals = Signals::EMPTY;
        self.job_id.clear();
        self.run_id.clear();
        self.run_phase = RunPhase::None;
        self.run_result.clear();
        self.sku.clear();
        self.amount = 0.0;
        self.start = EventTime::default();
        self.end = EventTime::default();
        self.correction = false;
        self.unknown_service = false;
    }

    /// Puts the kept parameters in key order, one per key (the first), so
    /// that every input format gives the same list.
    pub fn sort_params(&mut self) {
        self.params.sort_by(|a, b| a.0.cmp(&b.0));
        self.params.dedup_by(|a, b| a.0 == b.0);
    }

    /// A request parameter by name, when it was kept.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn source_ip(&self) -> Option<&str> {
        opt(&self.source_ip)
    }
    pub fn user_agent(&self) -> Option<&str> {
        opt(&self.user_agent)
    }
    pub fn securable(&self) -> Option<&str> {
        opt(&self.securable)
    }
    pub fn id(&self) -> Option<&str> {
        opt(&self.id)
    }
    pub fn run_as(&self) -> Option<&str> {
        opt(&self.run_as)
    }

    /// Whether the response reports a failure (4xx/5xx).
    pub fn failed(&self) -> bool {
        matches!(self.status, Some(s) if s >= 400)
    }

    /// The identity a cost or runtime is charged to: `run_as` when known,
    /// else the actor.
    pub fn charged_principal(&self) -> &str {
        if self.run_as.is_empty() { &self.principal } else { &self.run_as }
    }
}

/// Writes `src` into `dst` as a principal name: trimmed and lowercased
/// (emails and UUIDs compare case-insensitively), without allocating when
/// `dst` has capacity.
pub fn set_principal(dst: &mut String, src: &str) {
    dst.clear();
    let src = src.trim();
    if src.bytes().any(|b| b.is_ascii_uppercase()) {
        dst.extend(src.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        dst.push_str(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_kinds() {
        assert_eq!(PrincipalKind::classify("ana@example.com"), PrincipalKind::User);
        assert_eq!(PrincipalKind::classify("6f1c2a3b-1234-4abc-9def-0123456789ab"), PrincipalKind::ServicePrincipal);
        assert_eq!(PrincipalKind::classify("system-user"), PrincipalKind::System);
        assert_eq!(PrincipalKind::classify(""), PrincipalKind::Unknown);
    }

    #[test]
    fn principal_names_are_lowercased() {
        let mut s = String::new();
        set_principal(&mut s, " Ana@Example.COM ");
        assert_eq!(s, "ana@example.com");
    }

    #[test]
    fn signal_sets() {
        let s = Signals::EMPTY.with(Signal::Cost).with(Signal::FailedLogin);
        assert!(s.contains(Signal::Cost) && !s.contains(Signal::JobRun));
        assert_eq!(s.iter().count(), 2);
        assert_eq!(Signal::from_name("secret_read"), Some(Signal::SecretRead));
    }
}
