//! Match rules: detections that are facts about single events (a setting
//! turned off, a token without expiry, a sign-in from a denied address),
//! counted per principal in a window, the way public Databricks rule packs
//! state them. A definition with `model = "match"` says which events (a
//! `[match]` table) and how many of them in `bucket_minutes` alert
//! (`min_count`).
//!
//! ```toml
//! [match]
//! services = ["workspace"]                       # any of; empty: any service
//! actions = ["workspaceConfEdit"]                # any of; empty: any action
//! outcome = "success"                            # success | failure | any (default)
//! params = { workspaceConfKeys = ["enableVerboseAuditLogs"], workspaceConfValues = ["false"] }
//! params_at_least = { lifetimeSeconds = 7776000 } # a number at least this
//! params_empty = ["ipAccessList"]                # absent, empty, [] or {}
//! params_present = ["owner"]                     # present and not empty
//! user_agent_contains = ["trufflehog"]           # case-insensitive
//! key = "actor"                                  # or "target": whom the count is kept for
//! distinct = "workspace"                         # count distinct workspaces, not events
//! ```
//!
//! Parameter values compare case-insensitively. Like every detector, a
//! rule judges a bucket once the watermark has passed it, so its alerts do
//! not depend on arrival order; the alert is a fact (score 100, p-value 0).

use super::buckets::{Bucket, Wheel, open_start};
use super::definition::{Definition, severity_named};
use super::evidence::Evidence;
use super::{Fact, Fed};
use crate::alert::{Alert, Severity};
use crate::event::{AuditLevel, Event, PrincipalKind};
use crate::state::{Interner, PrincipalId};
use crate::time::EventTime;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A `[match]` table as written, and each of its `[[match.any]]` and
/// `[[match.severity]]` tables (which take the condition keys only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    action_prefixes: Vec<String>,
    #[serde(default)]
    action_not_prefixes: Vec<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    status: Vec<u16>,
    #[serde(default)]
    audit_level: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    params_not: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    params_contains: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    params_not_contains: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    params_at_least: BTreeMap<String, f64>,
    #[serde(default)]
    params_hours_after: BTreeMap<String, f64>,
    #[serde(default)]
    params_empty: Vec<String>,
    #[serde(default)]
    params_present: Vec<String>,
    #[serde(default)]
    user_agent_contains: Vec<String>,
    #[serde(default)]
    user_agent_not_contains: Vec<String>,
    #[serde(default)]
    error_contains: Vec<String>,
    // Keys of the `[match]` table itself.
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    distinct: Option<String>,
    #[serde(default)]
    noise: Option<String>,
    #[serde(default)]
    system_actors: Option<String>,
    #[serde(default)]
    refused_severity: Option<String>,
    #[serde(default)]
    any: Vec<RawMatch>,
    /// In `[match]`: the `[[match.severity]]` steps; in a step: its severity.
    #[serde(default)]
    severity: Option<SeverityKey>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SeverityKey {
    Name(String),
    Steps(Vec<RawMatch>),
}

/// Which outcomes match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Success,
    Failure,
    Any,
}

/// A request parameter a condition reads: `a|b|c` is the first of those
/// that is present and not empty. Names are resolved when the definition
/// is read, not per event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParamKey(Vec<ParamName>);

/// One parameter name, spelt either way Databricks spells it
/// (`authenticationMethod` in delivered logs, `authentication_method` in
/// some exports): case and underscores are ignored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum ParamName {
    /// Decoded into a field of every audit event: the index in [`TYPED_PARAMS`].
    Typed(usize),
    /// Looked up among the kept parameters; lowercase, without `_`.
    Kept(String),
}

/// `name` lowercase, without `_`.
fn normalized(name: &str) -> impl Iterator<Item = u8> + Clone + '_ {
    name.bytes().filter(|b| *b != b'_').map(|b| b.to_ascii_lowercase())
}

impl ParamName {
    fn parse(written: &str) -> ParamName {
        match TYPED_PARAMS.iter().position(|(k, _)| k.bytes().eq(normalized(written))) {
            Some(i) => ParamName::Typed(i),
            None => ParamName::Kept(String::from_utf8(normalized(written).collect()).unwrap_or_default()),
        }
    }

    fn of<'e>(&self, ev: &'e Event) -> Option<&'e str> {
        match self {
            ParamName::Typed(i) => Some((TYPED_PARAMS[*i].1)(ev)).filter(|v| !v.is_empty()),
            ParamName::Kept(name) => {
                ev.params.iter().find(|(k, _)| normalized(k).eq(name.bytes())).map(|(_, v)| v.as_str())
            }
        }
    }
}

impl ParamKey {
    fn parse(written: &str) -> ParamKey {
        ParamKey(written.split('|').map(str::trim).filter(|k| !k.is_empty()).map(ParamName::parse).collect())
    }

    fn value<'e>(&self, ev: &'e Event) -> Option<&'e str> {
        self.0.iter().filter_map(|k| k.of(ev)).find(|v| !is_empty(v))
    }

    /// The first alternative present, even if empty (for `params_empty`).
    fn present<'e>(&self, ev: &'e Event) -> Option<&'e str> {
        self.value(ev).or_else(|| self.0.iter().find_map(|k| k.of(ev)))
    }
}

/// Conditions on one event, all of which must hold (the condition keys of
/// a `[match]` table; see the module docs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conditions {
    pub services: Vec<String>,
    pub actions: Vec<String>,
    action_prefixes: Vec<String>,
    action_not_prefixes: Vec<String>,
    outcome: Outcome,
    status: Vec<u16>,
    audit_level: Option<AuditLevel>,
    /// (parameter, values lowercased).
    params: Vec<(ParamKey, Vec<String>)>,
    params_not: Vec<(ParamKey, Vec<String>)>,
    params_contains: Vec<(ParamKey, Vec<String>)>,
    params_not_contains: Vec<(ParamKey, Vec<String>)>,
    params_at_least: Vec<(ParamKey, f64)>,
    params_hours_after: Vec<(ParamKey, f64)>,
    params_empty: Vec<ParamKey>,
    params_present: Vec<ParamKey>,
    user_agent_contains: Vec<String>,
    user_agent_not_contains: Vec<String>,
    error_contains: Vec<String>,
}

fn lower(v: Vec<String>) -> Vec<String> {
    v.into_iter().map(|s| s.to_ascii_lowercase()).collect()
}

fn keyed(map: BTreeMap<String, Vec<String>>) -> Vec<(ParamKey, Vec<String>)> {
    map.into_iter().map(|(k, v)| (ParamKey::parse(&k), lower(v))).collect()
}

impl Conditions {
    /// The condition keys of `raw`; `at` names the table in problems.
    fn from_raw(raw: &RawMatch, at: &str, problems: &mut Vec<String>) -> Conditions {
        let outcome = match raw.outcome.as_deref() {
            None | Some("any") => Outcome::Any,
            Some("success") => Outcome::Success,
            Some("failure") => Outcome::Failure,
            Some(other) => {
                problems.push(format!("key `{at}.outcome`: `{other}`; allowed: success, failure, any"));
                Outcome::Any
            }
        };
        let audit_level = raw.audit_level.as_deref().and_then(|l| match AuditLevel::parse(l) {
            AuditLevel::Unknown => {
                problems.push(format!("key `{at}.audit_level`: `{l}`; allowed: ACCOUNT_LEVEL, WORKSPACE_LEVEL"));
                None
            }
            level => Some(level),
        });
        for (key, hours) in &raw.params_hours_after {
            if !(hours.is_finite() && *hours >= 0.0) {
                problems.push(format!("key `{at}.params_hours_after.{key}`: {hours}; allowed: hours ≥ 0"));
            }
        }
        Conditions {
            services: raw.services.clone(),
            actions: raw.actions.clone(),
            action_prefixes: lower(raw.action_prefixes.clone()),
            action_not_prefixes: lower(raw.action_not_prefixes.clone()),
            outcome,
            status: raw.status.clone(),
            audit_level,
            params: keyed(raw.params.clone()),
            params_not: keyed(raw.params_not.clone()),
            params_contains: keyed(raw.params_contains.clone()),
            params_not_contains: keyed(raw.params_not_contains.clone()),
            params_at_least: raw.params_at_least.iter().map(|(k, v)| (ParamKey::parse(k), *v)).collect(),
            params_hours_after: raw.params_hours_after.iter().map(|(k, v)| (ParamKey::parse(k), *v)).collect(),
            params_empty: raw.params_empty.iter().map(|k| ParamKey::parse(k)).collect(),
            params_present: raw.params_present.iter().map(|k| ParamKey::parse(k)).collect(),
            user_agent_contains: lower(raw.user_agent_contains.clone()),
            user_agent_not_contains: lower(raw.user_agent_not_contains.clone()),
            error_contains: lower(raw.error_contains.clone()),
        }
    }

    /// Whether any condition reads a request parameter.
    /// Whether any condition reads a request parameter decode does not
    /// always keep (see [`TYPED_PARAMS`]).
    fn reads_params(&self) -> bool {
        let keys = self
            .params
            .iter()
            .map(|(k, _)| k)
            .chain(self.params_not.iter().map(|(k, _)| k))
            .chain(self.params_contains.iter().map(|(k, _)| k))
            .chain(self.params_not_contains.iter().map(|(k, _)| k))
            .chain(self.params_at_least.iter().map(|(k, _)| k))
            .chain(self.params_hours_after.iter().map(|(k, _)| k))
            .chain(&self.params_empty)
            .chain(&self.params_present);
        keys.flat_map(|k| &k.0).any(|k| matches!(k, ParamName::Kept(_)))
    }

    /// Whether every condition holds for `ev`.
    pub fn holds(&self, ev: &Event) -> bool {
        let any_of = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x.eq_ignore_ascii_case(v));
        if !any_of(&self.services, &ev.service) || !any_of(&self.actions, &ev.action) {
            return false;
        }
        if !self.action_prefixes.is_empty() && !self.action_prefixes.iter().any(|p| starts_with_ci(&ev.action, p)) {
            return false;
        }
        if self.action_not_prefixes.iter().any(|p| starts_with_ci(&ev.action, p)) {
            return false;
        }
        match self.outcome {
            Outcome::Success if ev.failed() => return false,
            Outcome::Failure if !ev.failed() => return false,
            _ => {}
        }
        if !self.status.is_empty() && !ev.status.is_some_and(|s| self.status.contains(&s)) {
            return false;
        }
        if self.audit_level.is_some_and(|l| l != ev.audit_level) {
            return false;
        }
        let has = |list: &[String], text: &str| list.iter().any(|s| contains_ignore_case(text, s));
        if !self.user_agent_contains.is_empty() && !has(&self.user_agent_contains, &ev.user_agent) {
            return false;
        }
        if has(&self.user_agent_not_contains, &ev.user_agent) {
            return false;
        }
        if !self.error_contains.is_empty() && !has(&self.error_contains, &ev.error_message) {
            return false;
        }
        let equals = |allowed: &[String], v: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(v.trim()));
        self.params.iter().all(|(k, allowed)| k.value(ev).is_some_and(|v| equals(allowed, v)))
            && self.params_not.iter().all(|(k, refused)| !k.value(ev).is_some_and(|v| equals(refused, v)))
            && self.params_contains.iter().all(|(k, parts)| k.value(ev).is_some_and(|v| has(parts, v)))
            && self.params_not_contains.iter().all(|(k, parts)| !k.value(ev).is_some_and(|v| has(parts, v)))
            && self.params_at_least.iter().all(|(k, min)| k.value(ev).and_then(number).is_some_and(|v| v >= *min))
            && self.params_hours_after.iter().all(|(k, hours)| {
                k.value(ev)
                    .and_then(number)
                    .is_some_and(|ms| ms > 0.0 && (ms - ev.time.0 as f64) / 3_600_000.0 > *hours)
            })
            && self.params_empty.iter().all(|k| k.present(ev).is_none_or(is_empty))
            && self.params_present.iter().all(|k| k.value(ev).is_some())
    }
}

/// A number as Databricks writes one in a parameter (`"1735689600000"`,
/// `7776000`, `1.7e12`).
fn number(v: &str) -> Option<f64> {
    v.trim().trim_matches('"').parse::<f64>().ok().filter(|n| n.is_finite())
}

fn starts_with_ci(s: &str, prefix_lc: &str) -> bool {
    s.len() >= prefix_lc.len() && s.as_bytes()[..prefix_lc.len()].eq_ignore_ascii_case(prefix_lc.as_bytes())
}

/// A validated `[match]` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Matcher {
    /// What every matching event satisfies.
    pub when: Conditions,
    /// At least one of these holds too (when any are given).
    pub any: Vec<Conditions>,
    /// The first step that holds sets a matched event's severity.
    pub severity_steps: Vec<(Conditions, Severity)>,
    /// The severity of a refused event (status 400 or more) no step names.
    pub refused_severity: Option<Severity>,
    /// Panther's noise filter: Databricks' own runtime agents, telemetry
    /// and health paths, service principals named by application id.
    pub skip_noise: bool,
    /// Databricks' placeholders (`System-User`, ...) and events that name
    /// no actor do not count.
    pub skip_system: bool,
    /// Count under the target principal (falling back to the actor).
    pub by_target: bool,
    /// Count distinct workspaces instead of events.
    pub distinct_workspaces: bool,
}

/// User agents of Databricks' own runtime and clients (Panther's noise filter).
const NOISE_AGENTS: &[&str] = &[
    "databricks-service/driver",
    "databricks-runtime",
    "delta-sharing-sparkstructuredstreaming",
    "rawdbhttpclient",
    "mlflow-python",
    "obssdk-scala",
    "wsfs",
    "feature-store",
];
/// Request paths of telemetry and health checks.
const NOISE_PATHS: &[&str] = &["/telemetry", "/delta-commit", "/health", "/metrics", "/status"];

impl Matcher {
    /// Validates a raw table; problems are pushed with their key.
    pub fn from_raw(raw: RawMatch, problems: &mut Vec<String>) -> Matcher {
        let choice =
            |key: &str, value: &Option<String>, allowed: &[&str], problems: &mut Vec<String>| match value.as_deref() {
                None => 0,
                Some(v) => allowed.iter().position(|a| *a == v).unwrap_or_else(|| {
                    problems.push(format!("key `match.{key}`: `{v}`; allowed: {}", allowed.join(", ")));
                    0
                }),
            };
        let by_target = choice("key", &raw.key, &["actor", "target"], problems) == 1;
        let distinct_workspaces = match raw.distinct.as_deref() {
            None => false,
            Some("workspace") => true,
            Some(other) => {
                problems.push(format!("key `match.distinct`: `{other}`; allowed: workspace"));
                false
            }
        };
        let skip_noise = choice("noise", &raw.noise, &["keep", "skip"], problems) == 1;
        let skip_system = choice("system_actors", &raw.system_actors, &["count", "skip"], problems) == 1;
        let refused_severity =
            raw.refused_severity.as_deref().and_then(|s| severity_named("match.refused_severity", s, problems));
        // `services = ["*"]` says outright that every service's events count.
        let every_service = raw.services == ["*"];
        let mut raw = raw;
        if every_service {
            raw.services.clear();
        }
        let when = Conditions::from_raw(&raw, "match", problems);
        if !every_service
            && when.services.is_empty()
            && when.actions.is_empty()
            && when.action_prefixes.is_empty()
            && when.user_agent_contains.is_empty()
        {
            problems.push(
                "key `match`: name `services`, `actions`, `action_prefixes` or `user_agent_contains`; `services = [\"*\"]` for every event"
                    .into(),
            );
        }
        let inner = |table: &RawMatch, at: &str, problems: &mut Vec<String>| {
            for (key, given) in [
                ("key", table.key.is_some()),
                ("distinct", table.distinct.is_some()),
                ("noise", table.noise.is_some()),
                ("system_actors", table.system_actors.is_some()),
                ("refused_severity", table.refused_severity.is_some()),
                ("any", !table.any.is_empty()),
            ] {
                if given {
                    problems.push(format!("key `{at}.{key}` is only for the `[match]` table"));
                }
            }
            Conditions::from_raw(table, at, problems)
        };
        let any = raw
            .any
            .iter()
            .map(|t| {
                if t.severity.is_some() {
                    problems.push("key `match.any.severity`: use `[[match.severity]]`".into());
                }
                inner(t, "match.any", problems)
            })
            .collect();
        let severity_steps = match &raw.severity {
            None => Vec::new(),
            Some(SeverityKey::Name(_)) => {
                problems.push("key `match.severity`: write `[[match.severity]]` tables, each with a severity".into());
                Vec::new()
            }
            Some(SeverityKey::Steps(steps)) => steps
                .iter()
                .filter_map(|t| {
                    let conditions = inner(t, "match.severity", problems);
                    match &t.severity {
                        Some(SeverityKey::Name(n)) => {
                            severity_named("match.severity.severity", n, problems).map(|s| (conditions, s))
                        }
                        _ => {
                            problems.push("key `match.severity.severity` is required in each step".into());
                            None
                        }
                    }
                })
                .collect(),
        };
        Matcher { when, any, severity_steps, refused_severity, skip_noise, skip_system, by_target, distinct_workspaces }
    }

    /// Whether `ev` matches.
    pub fn matches(&self, ev: &Event) -> bool {
        self.when.holds(ev)
            && (self.any.is_empty() || self.any.iter().any(|c| c.holds(ev)))
            && !(self.skip_noise && is_noise(ev))
            && !(self.skip_system && (ev.principal.is_empty() || ev.principal_kind == PrincipalKind::System))
    }

    /// The severity a matched event stands for.
    pub fn severity_of(&self, ev: &Event, default: Severity) -> Severity {
        match self.severity_steps.iter().find(|(c, _)| c.holds(ev)) {
            Some((_, s)) => *s,
            None if ev.failed() => self.refused_severity.unwrap_or(default),
            None => default,
        }
    }

    /// The (services, actions, action prefixes) whose events must keep
    /// their request parameters for this table to be judged, if any.
    pub fn param_scope(&self) -> Option<(&[String], &[String], &[String])> {
        // The noise filter reads only typed parameters (the path).
        let reads = self.when.reads_params()
            || self.any.iter().any(Conditions::reads_params)
            || self.severity_steps.iter().any(|(c, _)| c.reads_params());
        // The outer scope bounds every alternative; an alternative that
        // names its own services or actions narrows it, but keeping the
        // outer scope is what makes all of them judgeable.
        reads.then_some((&self.when.services, &self.when.actions, &self.when.action_prefixes))
    }
}

/// Panther's noise filter: Databricks' own agents, telemetry paths, and
/// actors named by a service principal's application id.
fn is_noise(ev: &Event) -> bool {
    NOISE_AGENTS.iter().any(|a| contains_ignore_case(&ev.user_agent, a))
        || NOISE_PATHS.iter().any(|n| contains_ignore_case(&ev.path, n))
        || ev.principal.get(..36).is_some_and(crate::event::is_uuid)
}

/// Whether `haystack` contains `needle` (lowercase ASCII), ignoring ASCII
/// case, without allocating: this runs on every event for rules that name
/// no service.
pub(crate) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else { return true };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), h)
        .any(|at| h.get(at..at + n.len()).is_some_and(|w| w.eq_ignore_ascii_case(n)))
}

/// Request parameters decode reads into a field of every audit event (by
/// normalized name), so that rules on them (non-SSO sign-ins over every
/// login, the noise filter over every event) need no second parse of the
/// record.
const TYPED_PARAMS: &[(&str, Field)] = &[("path", |e| &e.path), ("authenticationmethod", |e| &e.auth_method)];

/// Reads one typed parameter of an event.
type Field = fn(&Event) -> &str;

/// Absent, blank, or an empty JSON array or object.
fn is_empty(v: &str) -> bool {
    matches!(v.trim(), "" | "[]" | "{}")
}

/// A principal's matches in one window (fields set by `Bucket::reset` when opened).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Matches {
    start: i64,
    count: u64,
    /// Matched events that were refused (status 400 or more).
    refused: u64,
    /// The highest severity of the matched events.
    severity: Option<Severity>,
    workspace: u64,
    workspaces: Vec<u64>,
    evidence: Evidence,
    /// What the earliest match said: `service.action k=v ...`.
    first: (i64, String),
}

impl Bucket for Matches {
    fn start(&self) -> i64 {
        self.start
    }

    fn reset(&mut self, start: i64) {
        self.start = start;
        self.count = 0;
        self.refused = 0;
        self.severity = None;
        self.workspace = u64::MAX;
        self.workspaces.clear();
        self.evidence.clear();
        self.first = (i64::MAX, String::new());
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    kind: Option<PrincipalKind>,
    suppressed_until: i64,
    open: Vec<Matches>,
}

/// Outcome counters of a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatchRuleStats {
    pub matched: u64,
    pub late: u64,
    pub alerts: u64,
    pub suppressed: u64,
}

/// One match rule.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MatchRule {
    def: Definition,
    matcher: Matcher,
    /// Only principals with matches have state: most rules match rarely.
    principals: FxHashMap<PrincipalId, State>,
    wheel: Wheel<Matches>,
    pub stats: MatchRuleStats,
}

impl MatchRule {
    /// `None` when the definition has no `[match]` table.
    pub fn new(def: Definition) -> Option<Self> {
        let matcher = def.matcher.clone()?;
        Some(MatchRule {
            def,
            matcher,
            principals: FxHashMap::default(),
            wheel: Wheel::default(),
            stats: MatchRuleStats::default(),
        })
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// Whom a matching event is counted for: the actor (or with `key =
    /// "target"` the principal the action names), falling back to the
    /// other, then to the source address, so that an event naming no user
    /// (a Delta Sharing recipient's request) still counts. Written into
    /// `buf` only for the address.
    pub fn key_of<'e>(&self, ev: &'e Event, buf: &'e mut String) -> &'e str {
        let (first, second) =
            if self.matcher.by_target { (&ev.target, &ev.principal) } else { (&ev.principal, &ev.target) };
        if !first.is_empty() {
            first
        } else if !second.is_empty() {
            second
        } else if !ev.source_ip.is_empty() {
            buf.clear();
            buf.push_str("ip:");
            buf.push_str(&ev.source_ip);
            buf
        } else {
            ""
        }
    }

    pub fn matches(&self, ev: &Event) -> bool {
        self.matcher.matches(ev)
    }

    /// Counts a matching event for `principal`.
    pub fn observe(&mut self, principal: PrincipalId, kind: PrincipalKind, ev: &Event, watermark: EventTime) -> Fed {
        self.stats.matched += 1;
        let Some(start) = open_start(ev.time, self.def.bucket_ms, watermark) else {
            self.stats.late += 1;
            return Fed::Late;
        };
        let state = self
            .principals
            .entry(principal)
            .or_insert_with(|| State { suppressed_until: i64::MIN, ..Default::default() });
        state.kind.get_or_insert(kind);
        let bucket = self.wheel.open(&mut state.open, principal, start);
        bucket.count += 1;
        bucket.refused += u64::from(ev.failed());
        let severity = self.matcher.severity_of(ev, self.def.severity);
        bucket.severity = bucket.severity.max(Some(severity));
        bucket.workspace = bucket.workspace.min(ev.workspace);
        // Account-level events (workspace 0) are in no workspace.
        if ev.workspace != 0
            && let Err(at) = bucket.workspaces.binary_search(&ev.workspace)
        {
            bucket.workspaces.insert(at, ev.workspace);
        }
        bucket.evidence.offer(ev.time.0, &ev.id, self.def.evidence_limit);
        if ev.time.0 <= bucket.first.0 {
            let d = describe(ev);
            if ev.time.0 < bucket.first.0 || d < bucket.first.1 {
                bucket.first = (ev.time.0, d);
            }
        }
        Fed::Taken
    }

    /// When this rule next has a bucket to close.
    pub fn due_at(&self) -> i64 {
        self.wheel.due_at(self.def.bucket_ms)
    }

    /// Closes every bucket that ends at or before `watermark`.
    pub fn advance(&mut self, watermark: EventTime, names: &Interner, out: &mut Vec<Alert>) {
        while let Some((start, ids)) = self.wheel.next_due(watermark, self.def.bucket_ms, names) {
            for id in ids {
                let Some(state) = self.principals.get_mut(&id) else { continue };
                let Some(bucket) = Wheel::take(&mut state.open, start) else { continue };
                let observed =
                    if self.matcher.distinct_workspaces { bucket.workspaces.len() as u64 } else { bucket.count };
                if observed >= self.def.min_count.max(1) {
                    if start < state.suppressed_until {
                        self.stats.suppressed += 1;
                    } else {
                        state.suppressed_until = start + self.def.bucket_ms + self.def.suppress_ms;
                        self.stats.alerts += 1;
                        let kind = state.kind.unwrap_or(PrincipalKind::Unknown);
                        out.push(alert(&self.def, &self.matcher, names.name(id), kind, &bucket, observed));
                    }
                }
                self.wheel.recycle(bucket);
                if state.open.is_empty() && state.suppressed_until <= start {
                    self.principals.remove(&id);
                }
            }
        }
    }
}

fn alert(
    def: &Definition,
    matcher: &Matcher,
    principal: &str,
    kind: PrincipalKind,
    bucket: &Matches,
    observed: u64,
) -> Alert {
    let end = bucket.start + def.bucket_ms;
    let what = if matcher.distinct_workspaces {
        format!("in {observed} workspaces")
    } else if observed == 1 {
        "once".to_owned()
    } else {
        format!("{observed} times")
    };
    let refused = match bucket.refused {
        0 => String::new(),
        n if n == bucket.count && n == 1 => ", refused".to_owned(),
        n if n == bucket.count => ", every one refused".to_owned(),
        n => format!(" ({n} of them refused)"),
    };
    let summary = format!(
        "{}: {principal}, {what}{refused} between {} and {}. First: {} at {}.{}",
        def.description,
        EventTime(bucket.start),
        EventTime(end),
        bucket.first.1,
        EventTime(bucket.first.0),
        def.source.as_deref().map(|s| format!(" (Rule idea: {s}.)")).unwrap_or_default(),
    );
    let mut alert = Fact {
        def,
        principal,
        kind,
        workspace: bucket.workspace,
        start: bucket.start,
        end,
        observed,
        evidence_total: bucket.count,
        summary,
        evidence: bucket.evidence.ids(),
    }
    .alert();
    alert.severity = bucket.severity.unwrap_or(def.severity);
    alert.rescore();
    alert
}

/// `service.action` with the parameters that say what happened, for the summary.
fn describe(ev: &Event) -> String {
    let mut s = format!("{}.{}", ev.service, ev.action);
    if let Some(status) = ev.status {
        s.push_str(&format!(" (status {status})"));
    }
    for (k, v) in ev.params.iter().take(4) {
        let v: String = v.chars().take(60).collect();
        s.push_str(&format!(" {k}={v}"));
    }
    if !ev.source_ip.is_empty() {
        s.push_str(&format!(" from {}", ev.source_ip));
    }
    s
}

#[cfg(test)]
mod tests;
