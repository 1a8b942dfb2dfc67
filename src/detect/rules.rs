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
use super::definition::Definition;
use super::evidence::Evidence;
use super::{Fact, Fed};
use crate::alert::Alert;
use crate::event::{Event, PrincipalKind};
use crate::state::{Interner, PrincipalId};
use crate::time::EventTime;
use rustc_hash::FxHashMap;
use serde::Deserialize;

/// The `[match]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    params: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    params_at_least: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    params_empty: Vec<String>,
    #[serde(default)]
    params_present: Vec<String>,
    #[serde(default)]
    user_agent_contains: Vec<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    distinct: Option<String>,
}

/// Which outcomes match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Success,
    Failure,
    Any,
}

/// A validated `[match]` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Matcher {
    pub services: Vec<String>,
    pub actions: Vec<String>,
    pub outcome: Outcome,
    /// (parameter, allowed values lowercased).
    pub params: Vec<(String, Vec<String>)>,
    pub params_at_least: Vec<(String, f64)>,
    pub params_empty: Vec<String>,
    pub params_present: Vec<String>,
    pub user_agent_contains: Vec<String>,
    /// Count under the target principal (falling back to the actor).
    pub by_target: bool,
    /// Count distinct workspaces instead of events.
    pub distinct_workspaces: bool,
}

impl Matcher {
    /// Validates a raw table; problems are pushed with their key.
    pub fn from_raw(raw: RawMatch, problems: &mut Vec<String>) -> Matcher {
        let outcome = match raw.outcome.as_deref() {
            None | Some("any") => Outcome::Any,
            Some("success") => Outcome::Success,
            Some("failure") => Outcome::Failure,
            Some(other) => {
                problems.push(format!("key `match.outcome`: `{other}`; allowed: success, failure, any"));
                Outcome::Any
            }
        };
        let by_target = match raw.key.as_deref() {
            None | Some("actor") => false,
            Some("target") => true,
            Some(other) => {
                problems.push(format!("key `match.key`: `{other}`; allowed: actor, target"));
                false
            }
        };
        let distinct_workspaces = match raw.distinct.as_deref() {
            None => false,
            Some("workspace") => true,
            Some(other) => {
                problems.push(format!("key `match.distinct`: `{other}`; allowed: workspace"));
                false
            }
        };
        if raw.services.is_empty() && raw.actions.is_empty() && raw.user_agent_contains.is_empty() {
            problems.push(
                "key `match`: name `services`, `actions` or `user_agent_contains`, or it matches everything".into(),
            );
        }
        let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();
        Matcher {
            services: raw.services,
            actions: raw.actions,
            outcome,
            params: raw.params.into_iter().map(|(k, v)| (k, lower(v))).collect(),
            params_at_least: raw.params_at_least.into_iter().collect(),
            params_empty: raw.params_empty,
            params_present: raw.params_present,
            user_agent_contains: lower(raw.user_agent_contains),
            by_target,
            distinct_workspaces,
        }
    }

    /// Whether `ev` matches.
    pub fn matches(&self, ev: &Event) -> bool {
        let any_of = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        if !any_of(&self.services, &ev.service) || !any_of(&self.actions, &ev.action) {
            return false;
        }
        let failed = ev.status.is_some_and(|s| s >= 400);
        match self.outcome {
            Outcome::Success if failed => return false,
            Outcome::Failure if !failed => return false,
            _ => {}
        }
        if !self.user_agent_contains.is_empty()
            && !self.user_agent_contains.iter().any(|s| contains_ignore_case(&ev.user_agent, s))
        {
            return false;
        }
        self.params
            .iter()
            .all(|(k, allowed)| param(ev, k).is_some_and(|v| allowed.iter().any(|a| a.eq_ignore_ascii_case(v))))
            && self
                .params_at_least
                .iter()
                .all(|(k, min)| param(ev, k).and_then(|v| v.trim().parse::<f64>().ok()).is_some_and(|v| v >= *min))
            && self.params_empty.iter().all(|k| param(ev, k).is_none_or(is_empty))
            && self.params_present.iter().all(|k| param(ev, k).is_some_and(|v| !is_empty(v)))
    }
}

/// Whether `haystack` contains `needle` (lowercase ASCII), ignoring ASCII
/// case, without allocating: this runs on every event for rules that name
/// no service.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else { return true };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), h)
        .any(|at| h.get(at..at + n.len()).is_some_and(|w| w.eq_ignore_ascii_case(n)))
}

/// A request parameter by name, spelt either way Databricks spells it
/// (`authenticationMethod` in delivered logs, `authentication_method` in
/// some exports): case and underscores are ignored.
fn param<'e>(ev: &'e Event, key: &str) -> Option<&'e str> {
    let norm = |s: &'e str| s.bytes().filter(|b| *b != b'_').map(|b| b.to_ascii_lowercase());
    ev.params
        .iter()
        .find(|(k, _)| norm(k).eq(key.bytes().filter(|b| *b != b'_').map(|b| b.to_ascii_lowercase())))
        .map(|(_, v)| v.as_str())
}

/// Absent, blank, or an empty JSON array or object.
fn is_empty(v: &str) -> bool {
    matches!(v.trim(), "" | "[]" | "{}")
}

/// A principal's matches in one window (fields set by `Bucket::reset` when opened).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Matches {
    start: i64,
    count: u64,
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

    /// Whom a matching event is counted for.
    pub fn key_of<'e>(&self, ev: &'e Event) -> &'e str {
        if self.matcher.by_target && !ev.target.is_empty() { &ev.target } else { &ev.principal }
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
        bucket.workspace = bucket.workspace.min(ev.workspace);
        if let Err(at) = bucket.workspaces.binary_search(&ev.workspace) {
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
    let summary = format!(
        "{}: {principal}, {what} between {} and {}. First: {} at {}.{}",
        def.description,
        EventTime(bucket.start),
        EventTime(end),
        bucket.first.1,
        EventTime(bucket.first.0),
        def.source.as_deref().map(|s| format!(" (Rule idea: {s}.)")).unwrap_or_default(),
    );
    Fact {
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
    .alert()
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
