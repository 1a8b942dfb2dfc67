//! Detector definitions: the TOML files under `models/`, parsed and
//! validated.
//!
//! Raw serde first (`deny_unknown_fields`), then a validated
//! [`Definition`]; every problem in a file is reported at once, naming the
//! file, the key and what is allowed. Never opens files on the hot path.

use crate::alert::{AlertContext, Severity, config_version};
use crate::event::{PrincipalKind, Signal};
use serde::Deserialize;

/// The definitions shipped in `models/`, compiled in so that the binary
/// works with no files around it.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("models/query_frequency.toml", include_str!("../../models/query_frequency.toml")),
    ("models/permission_change.toml", include_str!("../../models/permission_change.toml")),
    ("models/failed_login.toml", include_str!("../../models/failed_login.toml")),
    ("models/token_creation.toml", include_str!("../../models/token_creation.toml")),
    ("models/secret_read.toml", include_str!("../../models/secret_read.toml")),
    ("models/data_download.toml", include_str!("../../models/data_download.toml")),
    ("models/job_runtime.toml", include_str!("../../models/job_runtime.toml")),
    ("models/cost.toml", include_str!("../../models/cost.toml")),
    ("models/job_cost.toml", include_str!("../../models/job_cost.toml")),
    ("models/new_source.toml", include_str!("../../models/new_source.toml")),
    ("models/unusual_hours.toml", include_str!("../../models/unusual_hours.toml")),
    ("models/offboarded_principal.toml", include_str!("../../models/offboarded_principal.toml")),
    ("models/role_drift.toml", include_str!("../../models/role_drift.toml")),
    ("models/share_down_write.toml", include_str!("../../models/share_down_write.toml")),
    ("models/jit_overrun.toml", include_str!("../../models/jit_overrun.toml")),
    ("models/model_registry_guard.toml", include_str!("../../models/model_registry_guard.toml")),
    // The public rule catalogue (models/README.md, "Rule catalogue").
    (
        "models/rules/access_to_multiple_workspaces.toml",
        include_str!("../../models/rules/access_to_multiple_workspaces.toml"),
    ),
    ("models/rules/access_token_revoked.toml", include_str!("../../models/rules/access_token_revoked.toml")),
    ("models/rules/account_admin_assigned.toml", include_str!("../../models/rules/account_admin_assigned.toml")),
    ("models/rules/account_config_changed.toml", include_str!("../../models/rules/account_config_changed.toml")),
    ("models/rules/account_owner_changed.toml", include_str!("../../models/rules/account_owner_changed.toml")),
    ("models/rules/cluster_policy_changed.toml", include_str!("../../models/rules/cluster_policy_changed.toml")),
    ("models/rules/control_plane_downloads.toml", include_str!("../../models/rules/control_plane_downloads.toml")),
    ("models/rules/delta_sharing_ip_denied.toml", include_str!("../../models/rules/delta_sharing_ip_denied.toml")),
    (
        "models/rules/delta_sharing_recipient_without_ip_acl.toml",
        include_str!("../../models/rules/delta_sharing_recipient_without_ip_acl.toml"),
    ),
    ("models/rules/destructive_activity.toml", include_str!("../../models/rules/destructive_activity.toml")),
    ("models/rules/employee_logon.toml", include_str!("../../models/rules/employee_logon.toml")),
    (
        "models/rules/explicit_credentials_data_movement.toml",
        include_str!("../../models/rules/explicit_credentials_data_movement.toml"),
    ),
    (
        "models/rules/global_init_script_changed.toml",
        include_str!("../../models/rules/global_init_script_changed.toml"),
    ),
    ("models/rules/group_created.toml", include_str!("../../models/rules/group_created.toml")),
    ("models/rules/group_deleted.toml", include_str!("../../models/rules/group_deleted.toml")),
    ("models/rules/ip_access_denied.toml", include_str!("../../models/rules/ip_access_denied.toml")),
    ("models/rules/ip_access_list_changed.toml", include_str!("../../models/rules/ip_access_list_changed.toml")),
    ("models/rules/library_on_all_clusters.toml", include_str!("../../models/rules/library_on_all_clusters.toml")),
    ("models/rules/long_lived_token.toml", include_str!("../../models/rules/long_lived_token.toml")),
    ("models/rules/metastore_admin_granted.toml", include_str!("../../models/rules/metastore_admin_granted.toml")),
    ("models/rules/metastore_admin_group.toml", include_str!("../../models/rules/metastore_admin_group.toml")),
    ("models/rules/mfa_key_changed.toml", include_str!("../../models/rules/mfa_key_changed.toml")),
    ("models/rules/mount_point_created.toml", include_str!("../../models/rules/mount_point_created.toml")),
    ("models/rules/non_sso_login.toml", include_str!("../../models/rules/non_sso_login.toml")),
    ("models/rules/password_changed.toml", include_str!("../../models/rules/password_changed.toml")),
    (
        "models/rules/principal_removed_from_group.toml",
        include_str!("../../models/rules/principal_removed_from_group.toml"),
    ),
    (
        "models/rules/privilege_escalation_burst.toml",
        include_str!("../../models/rules/privilege_escalation_burst.toml"),
    ),
    ("models/rules/repeated_failed_logins.toml", include_str!("../../models/rules/repeated_failed_logins.toml")),
    ("models/rules/repeated_secret_access.toml", include_str!("../../models/rules/repeated_secret_access.toml")),
    ("models/rules/repeated_unauthorized_uc.toml", include_str!("../../models/rules/repeated_unauthorized_uc.toml")),
    (
        "models/rules/repeated_unauthorized_uc_data.toml",
        include_str!("../../models/rules/repeated_unauthorized_uc_data.toml"),
    ),
    ("models/rules/security_config_changed.toml", include_str!("../../models/rules/security_config_changed.toml")),
    ("models/rules/sso_config_changed.toml", include_str!("../../models/rules/sso_config_changed.toml")),
    ("models/rules/terms_of_service_changed.toml", include_str!("../../models/rules/terms_of_service_changed.toml")),
    ("models/rules/token_without_expiry.toml", include_str!("../../models/rules/token_without_expiry.toml")),
    ("models/rules/trufflehog_scan.toml", include_str!("../../models/rules/trufflehog_scan.toml")),
    ("models/rules/user_created.toml", include_str!("../../models/rules/user_created.toml")),
    ("models/rules/user_deleted.toml", include_str!("../../models/rules/user_deleted.toml")),
    ("models/rules/user_role_modified.toml", include_str!("../../models/rules/user_role_modified.toml")),
    ("models/rules/verbose_audit_disabled.toml", include_str!("../../models/rules/verbose_audit_disabled.toml")),
    ("models/rules/workspace_admin_assigned.toml", include_str!("../../models/rules/workspace_admin_assigned.toml")),
    (
        "models/rules/workspace_admin_group_join.toml",
        include_str!("../../models/rules/workspace_admin_group_join.toml"),
    ),
    ("models/rules/workspace_config_changed.toml", include_str!("../../models/rules/workspace_config_changed.toml")),
    ("models/rules/workspace_user_created.toml", include_str!("../../models/rules/workspace_user_created.toml")),
    ("models/rules/workspace_user_deleted.toml", include_str!("../../models/rules/workspace_user_deleted.toml")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    name: String,
    description: String,
    signal: String,
    model: String,
    #[serde(default = "default_key")]
    key: String,
    bucket_minutes: u32,
    #[serde(default)]
    forgetting: Option<f64>,
    #[serde(default)]
    threshold: Option<u32>,
    #[serde(default)]
    min_count: Option<u64>,
    #[serde(default)]
    min_value: Option<f64>,
    #[serde(default)]
    min_samples: Option<u32>,
    #[serde(default)]
    min_ratio: Option<f64>,
    #[serde(default)]
    min_history_hours: Option<u32>,
    severity: String,
    #[serde(default)]
    admin_severity: Option<String>,
    #[serde(default)]
    personal_data_severity: Option<String>,
    /// Where the idea of a rule comes from (a public rule pack, a paper).
    #[serde(default)]
    source: Option<String>,
    /// The events a `match` rule counts.
    #[serde(default, rename = "match")]
    matcher: Option<super::rules::RawMatch>,
    /// JIT: minutes after an expiry before a standing grant alerts; the
    /// policy's longest grant, and the securables it covers.
    #[serde(default)]
    grace_minutes: Option<u32>,
    #[serde(default)]
    max_grant_hours: Option<u32>,
    #[serde(default)]
    jit_securables: Vec<String>,
    /// Registry guard: who may promote, and which aliases mean production.
    #[serde(default)]
    release_principals: Vec<String>,
    #[serde(default)]
    production_aliases: Vec<String>,
    #[serde(default)]
    high_score: Option<u32>,
    /// Count models: what an active bucket of a principal looks like
    /// before its peers and its own history say otherwise.
    #[serde(default)]
    prior_mean: Option<f64>,
    #[serde(default)]
    prior_spread: Option<f64>,
    #[serde(default)]
    prior_dispersion: Option<f64>,
    suppress_minutes: u32,
    evidence_limit: u32,
    /// Minutes this detector waits for late events, instead of the
    /// lateness of the input shapes that feed it.
    #[serde(default)]
    lateness_minutes: Option<u32>,
    /// Value models summed per bucket (cost): hours after its bucket closed
    /// that a billing correction still re-judges it.
    #[serde(default)]
    correction_hours: Option<u32>,
    /// `high`, `medium` or `low`: how sure a finding is real (rules), or
    /// the most a model's score may claim.
    #[serde(default)]
    confidence: Option<String>,
    /// The first things to check, in order.
    #[serde(default)]
    runbook: Vec<String>,
    /// MITRE ATT&CK tactics and techniques.
    #[serde(default)]
    attack: Vec<crate::alert::triage::RawAttack>,
    /// `[[test]]` cases: read by `auditwatch test-models`, not by detection.
    #[serde(default, rename = "test")]
    _tests: Vec<toml::Value>,
}

/// Hours a closed cost hour stays open to `RETRACTION`/`RESTATEMENT`
/// rows, beyond the billing lateness.
pub const DEFAULT_CORRECTION_HOURS: u32 = 48;

/// Longest lateness a detector or an input shape may be given: buckets
/// wait this long in memory.
pub const MAX_LATENESS_MINUTES: u32 = 7 * 24 * 60;

fn default_key() -> String {
    "principal".into()
}

/// The statistical model a definition names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Model {
    /// How many events an active bucket has (see `baseline::count`).
    SeasonalCounts,
    /// Values (runtimes, cost), Student-t tail (see `baseline::value`).
    SeasonalValues,
    /// Whether a principal is active at an hour it rarely works (see
    /// `baseline::activity`).
    UnusualHours,
    /// Values never seen before for a principal (see `baseline::novelty`).
    NewValue,
    /// Rule: any action by a principal after it was removed or deactivated.
    Offboarded,
    /// Rule: a service principal signing in like a person, or a person's
    /// identity running automation around the clock.
    RoleDrift,
    /// Rule: events matching a `[match]` table, counted per principal.
    Match,
    /// Rule: personal data written where people read it who may not see it unmasked.
    ShareDown,
    /// Rule: temporary grants used after, or outliving, their expiry.
    Jit,
    /// Rule: the path a model takes to production.
    RegistryGuard,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::SeasonalCounts => "seasonal_negative_binomial",
            Model::SeasonalValues => "seasonal_student_t",
            Model::UnusualHours => "hour_novelty",
            Model::NewValue => "new_value",
            Model::Offboarded => "offboarded",
            Model::RoleDrift => "role_drift",
            Model::Match => "match",
            Model::ShareDown => "share_down",
            Model::Jit => "jit",
            Model::RegistryGuard => "registry_guard",
        }
    }

    /// The model a definition's `model` key (or an alert's
    /// `context.model`) names. The earlier names are accepted, so that
    /// definitions written for them keep working (the models behind them
    /// were replaced).
    pub fn named(name: &str) -> Option<Model> {
        Some(match name {
            "seasonal_negative_binomial" | "seasonal_gamma_poisson" => Model::SeasonalCounts,
            "seasonal_student_t" | "log_student_t" => Model::SeasonalValues,
            "hour_novelty" => Model::UnusualHours,
            "new_value" => Model::NewValue,
            "offboarded" => Model::Offboarded,
            "role_drift" => Model::RoleDrift,
            "match" => Model::Match,
            "share_down" => Model::ShareDown,
            "jit" => Model::Jit,
            "registry_guard" => Model::RegistryGuard,
            _ => return None,
        })
    }

    /// Every model, in the order the parser lists them.
    pub const ALL: [Model; 10] = [
        Model::SeasonalCounts,
        Model::SeasonalValues,
        Model::UnusualHours,
        Model::NewValue,
        Model::Offboarded,
        Model::RoleDrift,
        Model::Match,
        Model::ShareDown,
        Model::Jit,
        Model::RegistryGuard,
    ];

    /// Whether the model is a rule (no baseline, no score threshold).
    pub fn is_rule(self) -> bool {
        matches!(
            self,
            Model::Offboarded | Model::RoleDrift | Model::Match | Model::ShareDown | Model::Jit | Model::RegistryGuard
        )
    }
}

/// What a detector keeps one baseline for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Key {
    /// One per principal.
    Principal,
    /// One per principal and job: each run (job runtime), or each hour of
    /// a job's billed usage (job cost; usage of no job is not its business).
    PrincipalJob,
}

/// A validated detector definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Definition {
    pub name: String,
    pub description: String,
    pub signal: Signal,
    pub model: Model,
    pub key: Key,
    pub bucket_ms: i64,
    pub forgetting: f64,
    pub threshold: u8,
    /// Count models: fewest events in a bucket to alert; new_value: fewest
    /// events from the new network or client.
    pub min_count: u64,
    /// Value models: smallest value to alert, and fewest past samples.
    pub min_value: f64,
    pub min_samples: u32,
    pub min_ratio: f64,
    pub min_history_ms: i64,
    pub severity: Severity,
    /// Severity at least this when the principal holds admin rights.
    pub admin_severity: Option<Severity>,
    /// Severity at least this when the principal may read personal data.
    pub personal_data_severity: Option<Severity>,
    /// Where the idea comes from (rules).
    pub source: Option<String>,
    /// The events a `match` rule counts.
    pub matcher: Option<super::rules::Matcher>,
    /// JIT: grace after an expiry; policy maximum (0: none) and its securables.
    pub grace_ms: i64,
    pub max_grant_ms: i64,
    pub jit_securables: Vec<String>,
    /// Registry guard: release principals (normalized) and production aliases.
    pub release_principals: Vec<String>,
    pub production_aliases: Vec<String>,
    pub high_score: u8,
    /// Count models: the prior a principal's baseline starts from when its
    /// peers have seen little (`prior_mean`, `prior_spread`, `prior_dispersion`).
    pub count_prior: crate::baseline::count::CountPrior,
    pub suppress_ms: i64,
    pub evidence_limit: usize,
    /// Allowed lateness of this detector, when it overrides the input
    /// shapes' (see `detect::Lateness`).
    pub lateness_ms: Option<i64>,
    /// Cost: how long a closed hour stays open to billing corrections.
    pub correction_ms: i64,
    /// Declared confidence (see `alert::triage`).
    pub confidence: Option<crate::alert::Confidence>,
    pub runbook: Vec<String>,
    pub attack: Vec<crate::alert::Attack>,
    /// Hash of what the file defines (its `[[test]]` cases left out); part
    /// of every alert id.
    pub config_version: String,
}

impl Definition {
    /// The triage fields of an alert of this definition at `severity`: a
    /// rule's confidence is the declared one (high by default); a model's
    /// is its `score`, capped by the declared one.
    pub fn triage(&self, severity: Severity, score: u8) -> crate::alert::Triage {
        let declared = self.confidence.map(|c| c.percent());
        let confidence = if self.model.is_rule() {
            declared.unwrap_or(crate::alert::Confidence::High.percent())
        } else {
            score.min(declared.unwrap_or(100))
        };
        crate::alert::Triage {
            attack: self.attack.clone(),
            runbook: self.runbook.clone(),
            confidence,
            risk_score: crate::alert::triage::risk_score(severity, confidence),
        }
    }

    /// The `context` of an alert this definition raises; the access model
    /// fills in groups and privileges later. The figures are written as
    /// given (each detector rounds its own).
    pub fn context(
        &self,
        kind: PrincipalKind,
        baseline_age_hours: f64,
        baseline_samples: f64,
        peer_value: Option<f64>,
        evidence_total: u64,
    ) -> AlertContext {
        AlertContext {
            principal_kind: kind,
            groups: Vec::new(),
            privileges: Vec::new(),
            signal: self.signal.name().to_owned(),
            model: self.model.name().to_owned(),
            baseline_age_hours,
            baseline_samples,
            peer_value,
            evidence_total,
            config_version: self.config_version.clone(),
        }
    }
}

/// Everything wrong with one definition file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {}", problems.join("; "))]
pub struct DefinitionError {
    pub file: String,
    pub problems: Vec<String>,
}

/// Parses and validates one definition file's text.
pub fn parse(file: &str, text: &str) -> Result<Definition, DefinitionError> {
    let fail = |problems: Vec<String>| DefinitionError { file: file.to_owned(), problems };
    let raw: RawDefinition = toml::from_str(text).map_err(|e| fail(vec![e.message().to_owned()]))?;
    let mut problems = Vec::new();
    let signal = Signal::from_name(&raw.signal);
    if signal.is_none() {
        let allowed: Vec<&str> = Signal::ALL.iter().map(|s| s.name()).collect();
        problems.push(format!("key `signal`: `{}` is not a signal; allowed: {}", raw.signal, allowed.join(", ")));
    }
    let model = Model::named(&raw.model);
    if model.is_none() {
        let allowed: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
        problems.push(format!("key `model`: `{}` is not a model; allowed: {}", raw.model, allowed.join(", ")));
    }
    let key = match raw.key.as_str() {
        "principal" => Some(Key::Principal),
        "principal_job" => Some(Key::PrincipalJob),
        other => {
            problems.push(format!("key `key`: `{other}`; allowed: principal, principal_job"));
            None
        }
    };
    // Which models go with which signals and keys, and what each needs.
    match (model, signal) {
        (Some(Model::SeasonalCounts | Model::UnusualHours), Some(Signal::Cost | Signal::JobRun)) => {
            problems.push(format!(
                "key `model`: {} counts events; signal `{}` carries values: use seasonal_student_t",
                raw.model, raw.signal
            ))
        }
        (Some(Model::SeasonalValues), Some(s)) if !matches!(s, Signal::Cost | Signal::JobRun) => {
            problems.push(format!(
                "key `model`: seasonal_student_t scores values; signal `{}` is counted: use seasonal_negative_binomial",
                raw.signal
            ))
        }
        (Some(Model::NewValue), Some(s)) if s != Signal::Source => problems.push(format!(
            "key `model`: new_value scores where actions come from; signal `{}` does not say: use signal source",
            raw.signal
        )),
        (Some(m), Some(Signal::Source)) if m != Model::NewValue => {
            problems.push("key `model`: signal source is scored by new_value".into())
        }
        (Some(m), Some(s)) if m.is_rule() && s != Signal::Activity => {
            problems.push(format!("key `signal`: the {} rule reads every action: use signal activity", m.name()))
        }
        (Some(m), Some(Signal::Activity)) if !m.is_rule() && m != Model::UnusualHours => problems.push(
            "key `model`: signal activity is read by hour_novelty and the rules (offboarded, role_drift, ...)".into(),
        ),
        _ => {}
    }
    if key == Some(Key::PrincipalJob) && !matches!(signal, Some(Signal::JobRun | Signal::Cost)) {
        problems.push("key `key`: principal_job is only for signals job_run and cost".into());
    }
    let matcher = match (model, raw.matcher) {
        (Some(Model::Match), Some(m)) => Some(super::rules::Matcher::from_raw(m, &mut problems)),
        (Some(Model::Match), None) => {
            problems.push("table `[match]` is required by model match".into());
            None
        }
        (_, Some(_)) => {
            problems.push("table `[match]` is only for model match".into());
            None
        }
        (_, None) => None,
    };
    if matches!(
        model,
        Some(Model::SeasonalCounts | Model::UnusualHours | Model::NewValue | Model::RoleDrift | Model::Match)
    ) && raw.min_count.is_none()
    {
        problems.push(format!("key `min_count` is required by {}", raw.model));
    }
    if model == Some(Model::SeasonalValues) && (raw.min_value.is_none() || raw.min_samples.is_none()) {
        problems.push("keys `min_value` and `min_samples` are required by seasonal_student_t".into());
    }
    let severity = severity_named("severity", &raw.severity, &mut problems);
    let admin_severity = raw.admin_severity.as_deref().and_then(|v| severity_named("admin_severity", v, &mut problems));
    let personal_data_severity =
        raw.personal_data_severity.as_deref().and_then(|v| severity_named("personal_data_severity", v, &mut problems));
    if !(1..=1440).contains(&raw.bucket_minutes) || 1440 % raw.bucket_minutes != 0 {
        problems.push(format!(
            "key `bucket_minutes`: {}; allowed: a divisor of 1440 (a day), e.g. 15, 60, 1440",
            raw.bucket_minutes
        ));
    }
    // Statistical models need their tuning; rules have none.
    let rule = model.is_some_and(Model::is_rule);
    if !rule {
        for (key, missing) in [
            ("forgetting", raw.forgetting.is_none()),
            ("threshold", raw.threshold.is_none()),
            ("min_ratio", raw.min_ratio.is_none()),
            ("min_history_hours", raw.min_history_hours.is_none()),
            ("high_score", raw.high_score.is_none()),
        ] {
            if missing {
                problems.push(format!("key `{key}` is required by {}", raw.model));
            }
        }
    }
    let forgetting = raw.forgetting.unwrap_or(1.0);
    let threshold = raw.threshold.unwrap_or(0);
    let high_score = raw.high_score.unwrap_or(100);
    let min_ratio = raw.min_ratio.unwrap_or(0.0);
    if !(forgetting > 0.0 && forgetting <= 1.0) {
        problems.push(format!("key `forgetting`: {forgetting}; allowed: 0 < forgetting ≤ 1"));
    }
    for (key, v) in [("threshold", threshold), ("high_score", high_score)] {
        if v > 100 {
            problems.push(format!("key `{key}`: {v}; allowed: 0..=100"));
        }
    }
    if !(min_ratio.is_finite() && min_ratio >= 0.0) {
        problems.push(format!("key `min_ratio`: {min_ratio}; allowed: a number ≥ 0"));
    }
    if let Some(m) = raw.lateness_minutes
        && m > MAX_LATENESS_MINUTES
    {
        problems.push(format!("key `lateness_minutes`: {m}; allowed: 0..={MAX_LATENESS_MINUTES} (7 days)"));
    }
    if let Some(h) = raw.correction_hours
        && h > 720
    {
        problems.push(format!("key `correction_hours`: {h}; allowed: 0..=720 (30 days)"));
    }
    if raw.name.is_empty() || !raw.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        problems.push(format!("key `name`: `{}`; allowed: lowercase letters, digits and _", raw.name));
    }
    if raw.evidence_limit > 1000 {
        problems.push(format!("key `evidence_limit`: {}; allowed: 0..=1000", raw.evidence_limit));
    }
    let default_prior = crate::baseline::count::CountPrior::default();
    let counted = matches!(model, Some(Model::SeasonalCounts));
    for (key, given) in
        [("prior_mean", raw.prior_mean), ("prior_spread", raw.prior_spread), ("prior_dispersion", raw.prior_dispersion)]
    {
        if given.is_some() && !counted {
            problems.push(format!("key `{key}` is only for model seasonal_negative_binomial"));
        }
    }
    let count_prior = crate::baseline::count::CountPrior {
        mean: raw.prior_mean.unwrap_or(default_prior.mean),
        between: raw.prior_spread.unwrap_or(default_prior.between),
        dispersion: raw.prior_dispersion.unwrap_or(default_prior.dispersion),
        kernel: default_prior.kernel,
    };
    if !(count_prior.mean.is_finite() && count_prior.mean >= 1.0) {
        problems.push(format!(
            "key `prior_mean`: {}; allowed: a number ≥ 1 (an active bucket has an event)",
            count_prior.mean
        ));
    }
    if !(count_prior.between.is_finite() && count_prior.between > 0.0 && count_prior.between <= 10.0) {
        problems.push(format!("key `prior_spread`: {}; allowed: 0 < prior_spread ≤ 10", count_prior.between));
    }
    if !(count_prior.dispersion.is_finite() && (0.0..=50.0).contains(&count_prior.dispersion)) {
        problems
            .push(format!("key `prior_dispersion`: {}; allowed: 0 ≤ prior_dispersion ≤ 50", count_prior.dispersion));
    }
    let confidence = raw.confidence.as_deref().and_then(|c| {
        let parsed = crate::alert::Confidence::parse(c);
        if parsed.is_none() {
            problems.push(format!("key `confidence`: `{c}`; allowed: high, medium, low"));
        }
        parsed
    });
    if raw.runbook.len() > 5 || raw.runbook.iter().any(|s| s.trim().is_empty() || s.len() > 300) {
        problems.push("key `runbook`: at most 5 steps, each 1 to 300 characters".into());
    }
    let attack: Vec<_> = raw.attack.iter().filter_map(|a| crate::alert::Attack::from_raw(a, &mut problems)).collect();
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(Definition {
        name: raw.name,
        description: raw.description,
        signal: signal.unwrap_or(Signal::QueryFrequency),
        model: model.unwrap_or(Model::SeasonalCounts),
        key: key.unwrap_or(Key::Principal),
        bucket_ms: raw.bucket_minutes as i64 * crate::time::MS_PER_MINUTE,
        forgetting,
        threshold: threshold as u8,
        min_count: raw.min_count.unwrap_or(0),
        min_value: raw.min_value.unwrap_or(0.0),
        min_samples: raw.min_samples.unwrap_or(0),
        min_ratio,
        min_history_ms: raw.min_history_hours.unwrap_or(0) as i64 * crate::time::MS_PER_HOUR,
        severity: severity.unwrap_or(Severity::Medium),
        admin_severity,
        personal_data_severity,
        source: raw.source,
        matcher,
        grace_ms: raw.grace_minutes.unwrap_or(0) as i64 * crate::time::MS_PER_MINUTE,
        max_grant_ms: raw.max_grant_hours.unwrap_or(0) as i64 * crate::time::MS_PER_HOUR,
        jit_securables: raw.jit_securables,
        release_principals: raw
            .release_principals
            .iter()
            .map(|p| {
                let mut s = String::new();
                crate::event::set_principal(&mut s, p);
                s
            })
            .collect(),
        production_aliases: raw.production_aliases,
        high_score: high_score as u8,
        count_prior,
        suppress_ms: raw.suppress_minutes as i64 * crate::time::MS_PER_MINUTE,
        evidence_limit: raw.evidence_limit as usize,
        lateness_ms: raw.lateness_minutes.map(|m| m as i64 * crate::time::MS_PER_MINUTE),
        correction_ms: raw.correction_hours.unwrap_or(DEFAULT_CORRECTION_HOURS) as i64 * crate::time::MS_PER_HOUR,
        confidence,
        runbook: raw.runbook,
        attack,
        config_version: config_version(&without_tests(text)),
    })
}

/// The severity `name` given for `key`, or a problem naming what is allowed.
pub(crate) fn severity_named(key: &str, name: &str, problems: &mut Vec<String>) -> Option<Severity> {
    let s = Severity::parse(name);
    if s.is_none() {
        problems.push(format!("key `{key}`: `{name}`; allowed: info, low, medium, high, critical"));
    }
    s
}

/// The text a definition's version is computed from: the file without its
/// `[[test]]` cases, so that adding a case changes no alert id. The cases
/// are the last tables of a file by convention; anything after the first
/// `[[test]]` header that is not a test table is kept.
fn without_tests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_test = false;
    for line in text.lines() {
        let header = line.trim_start();
        if header.starts_with('[') {
            in_test = header.starts_with("[[test]]") || header.starts_with("[[test.") || header.starts_with("[test.");
        }
        if !in_test {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The built-in definitions.
pub fn built_in() -> Result<Vec<Definition>, DefinitionError> {
    BUILT_IN.iter().map(|(file, text)| parse(file, text)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_models_is_built_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
        let mut files = Vec::new();
        for sub in ["", "rules"] {
            for e in std::fs::read_dir(format!("{dir}/{sub}")).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".toml") {
                    files.push(if sub.is_empty() { format!("models/{name}") } else { format!("models/{sub}/{name}") });
                }
            }
        }
        files.sort();
        let mut built: Vec<String> = BUILT_IN.iter().map(|(f, _)| (*f).to_owned()).collect();
        built.sort();
        assert_eq!(files, built);
        let names: std::collections::BTreeSet<String> = built_in().unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(names.len(), BUILT_IN.len(), "detector names are unique");
    }

    #[test]
    fn every_shipped_definition_says_what_to_check_and_its_attack_mapping() {
        for d in built_in().unwrap() {
            assert!(!d.attack.is_empty(), "{}: no ATT&CK mapping", d.name);
            assert_eq!(d.runbook.len(), 3, "{}: the runbook gives the first three things to check", d.name);
        }
    }

    #[test]
    fn built_in_definitions_are_valid() {
        let defs = built_in().unwrap();
        assert_eq!(defs[0].name, "query_frequency");
        assert_eq!(defs[0].bucket_ms, 3_600_000);
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        assert!(names.contains(&"job_runtime") && names.contains(&"cost"), "{names:?}");
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let text = BUILT_IN[0]
            .1
            .replace("signal = \"query_frequency\"", "signal = \"vibes\"")
            .replace("forgetting = 0.95", "forgetting = 7.0");
        let err = parse("models/x.toml", &text).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        let msg = err.to_string();
        assert!(msg.starts_with("models/x.toml: "), "{msg}");
        assert!(msg.contains("key `signal`: `vibes`") && msg.contains("allowed: query_frequency"), "{msg}");
        assert!(msg.contains("key `forgetting`"), "{msg}");
    }

    #[test]
    fn models_must_fit_their_signal() {
        let text = BUILT_IN[0].1.replace("signal = \"query_frequency\"", "signal = \"cost\"");
        let err = parse("models/x.toml", &text).unwrap_err();
        assert!(err.to_string().contains("use seasonal_student_t"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = format!("threshhold = 3\n{}", BUILT_IN[0].1);
        let err = parse("models/x.toml", &text).unwrap_err();
        assert!(err.to_string().contains("threshhold"), "{err}");
    }
}
