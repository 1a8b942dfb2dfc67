//! Rules that need no baseline, only the facts of access: a principal
//! acting after it was removed, and a principal acting out of its role.
//!
//! Both bucket a principal's actions by the hour like the count detectors
//! (so a bucket is judged once every action in it has arrived, and the
//! outcome does not depend on arrival order) and alert on facts, not
//! probabilities: their alerts carry score 100 and p-value 0.

use super::buckets::{Bucket, Table, Wheel, existing, open_start, state_of};
use super::definition::Definition;
use super::evidence::Evidence;
use super::{Fact, Fed};
use crate::access::Change;
use crate::alert::Alert;
use crate::event::{Event, PrincipalKind};
use crate::state::{Interner, PrincipalId};
use crate::time::{EventTime, MS_PER_HOUR};
use rustc_hash::FxHashMap;

/// The hour of a principal's actions (fields set by `Bucket::reset` when opened).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Actions {
    start: i64,
    count: u64,
    workspace: u64,
    /// The latest actions (kept by negated time): those after a removal
    /// are the later ones.
    latest: Evidence,
    /// Interactive sign-ins and token-driven automation (role drift).
    interactive: Evidence,
    automation: Evidence,
    /// Offboarded: the tokens this hour's actions named, each with its
    /// latest use (time, event id); at most `evidence_limit` tokens.
    tokens: Vec<(Box<str>, i64, Box<str>)>,
}

impl Bucket for Actions {
    fn start(&self) -> i64 {
        self.start
    }

    fn reset(&mut self, start: i64) {
        self.start = start;
        self.count = 0;
        self.workspace = u64::MAX;
        self.latest.clear();
        self.interactive.clear();
        self.automation.clear();
        self.tokens.clear();
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct PrincipalState {
    kind: PrincipalKind,
    suppressed_until: i64,
    /// Role drift: bit i set when the hour i hours before `last_hour` saw
    /// automation.
    automation_hours: u32,
    last_hour: Option<i64>,
    open: Vec<Actions>,
}

/// Outcome counters of an access rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessRuleStats {
    pub late: u64,
    pub buckets_scored: u64,
    pub alerts: u64,
    pub suppressed: u64,
}

/// Which rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rule {
    Offboarded,
    RoleDrift,
}

/// One access rule.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct AccessRule {
    def: Definition,
    rule: Rule,
    principals: Table<PrincipalState>,
    wheel: Wheel<Actions>,
    /// Offboarded: removals and restorations per principal, in time order.
    status: FxHashMap<String, Vec<(i64, bool)>>,
    /// Offboarded: revoked tokens and the earliest time each was revoked.
    revoked_tokens: FxHashMap<String, i64>,
    pub stats: AccessRuleStats,
}

/// A browser's user agent (every major browser starts so).
fn is_browser(user_agent: &str) -> bool {
    user_agent.starts_with("Mozilla/")
}

/// A sign-in a person makes: a login that is not a token exchange, or any
/// login from a browser.
fn is_interactive_login(ev: &Event) -> bool {
    let action = ev.action.as_str();
    crate::decode::catalog::is_login(action)
        && (!action.to_ascii_lowercase().contains("token") || is_browser(&ev.user_agent))
}

/// Automation: a token login, or any action from a client that is not a browser.
fn is_automation(ev: &Event) -> bool {
    ev.action == "tokenLogin" || (!ev.user_agent.is_empty() && !is_browser(&ev.user_agent))
}

impl AccessRule {
    pub fn new(def: Definition, rule: Rule) -> Self {
        AccessRule {
            def,
            rule,
            principals: Vec::new(),
            wheel: Wheel::default(),
            status: FxHashMap::default(),
            revoked_tokens: FxHashMap::default(),
            stats: AccessRuleStats::default(),
        }
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// When its earliest open bucket ends (`i64::MAX` with none open): it
    /// has something to close once its watermark reaches this.
    pub fn due_at(&self) -> i64 {
        self.wheel.due_at(self.def.bucket_ms)
    }

    /// Notes removals and restorations (offboarded) among the access
    /// changes of an event at `time`. The history is kept in time order, so
    /// arrival order does not matter.
    pub fn note_changes(&mut self, time: EventTime, changes: &[Change]) {
        if self.rule != Rule::Offboarded {
            return;
        }
        for c in changes {
            let (principal, removed) = match c {
                Change::Remove { principal } => (principal, true),
                Change::Restore { principal } => (principal, false),
                Change::RevokeToken { token } => {
                    let at = self.revoked_tokens.entry(token.clone()).or_insert(time.0);
                    *at = (*at).min(time.0);
                    continue;
                }
                _ => continue,
            };
            let history = self.status.entry(principal.clone()).or_default();
            let at = history.partition_point(|h| *h < (time.0, removed));
            if history.get(at) != Some(&(time.0, removed)) {
                history.insert(at, (time.0, removed));
            }
        }
    }

    /// Counts an action of `principal`.
    pub fn observe(&mut self, principal: PrincipalId, ev: &Event, watermark: EventTime) -> Fed {
        let Some(start) = open_start(ev.time, self.def.bucket_ms, watermark) else {
            self.stats.late += 1;
            return Fed::Late;
        };
        let state = state_of(&mut self.principals, principal, || PrincipalState {
            kind: ev.principal_kind,
            suppressed_until: i64::MIN,
            ..Default::default()
        });
        let limit = self.def.evidence_limit;
        let bucket = self.wheel.open(&mut state.open, principal, start);
        bucket.count += 1;
        bucket.workspace = bucket.workspace.min(ev.workspace);
        match self.rule {
            Rule::Offboarded => {
                bucket.latest.offer(-ev.time.0, &ev.id, limit);
                if let Some(token) = crate::access::token_of(ev).filter(|_| ev.action != "revokeDbToken") {
                    note_token(&mut bucket.tokens, token, ev.time.0, &ev.id, limit);
                }
            }
            Rule::RoleDrift => {
                if is_interactive_login(ev) {
                    bucket.interactive.offer(ev.time.0, &ev.id, limit);
                }
                if is_automation(ev) {
                    bucket.automation.offer(ev.time.0, &ev.id, limit);
                }
            }
        }
        Fed::Taken
    }

    /// Closes every bucket that ends at or before `watermark`.
    pub fn advance(&mut self, watermark: EventTime, names: &Interner, out: &mut Vec<Alert>) {
        while let Some((start, ids)) = self.wheel.next_due(watermark, self.def.bucket_ms, names) {
            for id in ids {
                let Some(state) = existing(&mut self.principals, id) else { continue };
                let Some(bucket) = Wheel::take(&mut state.open, start) else { continue };
                self.stats.buckets_scored += 1;
                let principal = names.name(id);
                let found = match self.rule {
                    Rule::Offboarded => offboarded(&self.status, principal, &bucket)
                        .or_else(|| revoked_token_used(&self.revoked_tokens, principal, &bucket)),
                    Rule::RoleDrift => role_drift(&self.def, state, principal, &bucket),
                };
                if let Some(Found { summary, evidence, observed, total }) = found {
                    if start < state.suppressed_until {
                        self.stats.suppressed += 1;
                    } else {
                        state.suppressed_until = start + self.def.bucket_ms + self.def.suppress_ms;
                        self.stats.alerts += 1;
                        out.push(
                            Fact {
                                def: &self.def,
                                principal,
                                kind: state.kind,
                                workspace: bucket.workspace,
                                start: bucket.start,
                                end: bucket.start + self.def.bucket_ms,
                                observed,
                                evidence_total: total,
                                summary,
                                evidence,
                            }
                            .alert(),
                        );
                    }
                }
                self.wheel.recycle(bucket);
            }
        }
    }

    /// Principals with state.
    pub fn principals(&self) -> usize {
        self.principals.iter().filter(|p| p.is_some()).count()
    }
}

/// What a rule found in a bucket: the sentence, the evidence, the observed
/// figure (actions, logins or hours) and the events behind it.
struct Found {
    summary: String,
    evidence: Vec<String>,
    observed: u64,
    total: u64,
}

/// The removal in force at `t`, if any.
fn removed_at(history: &[(i64, bool)], t: i64) -> Option<i64> {
    let at = history.partition_point(|h| h.0 <= t);
    at.checked_sub(1).and_then(|i| history[i].1.then_some(history[i].0))
}

fn offboarded(status: &FxHashMap<String, Vec<(i64, bool)>>, principal: &str, bucket: &Actions) -> Option<Found> {
    let history = status.get(principal)?;
    // The latest actions, earliest first, that fall while removed.
    let mut after: Vec<(i64, &str)> =
        bucket.latest.items().map(|(neg, id)| (-neg, id)).filter(|(t, _)| removed_at(history, *t).is_some()).collect();
    after.sort_unstable();
    let (first, _) = *after.first()?;
    let removed = removed_at(history, first)?;
    let summary = format!(
        "{principal} acted at least {} times between {} and {}, after it was removed from the account at {}: its access should have ended then. Check who holds its credentials and revoke its tokens and sessions.",
        after.len(),
        EventTime(first),
        EventTime(bucket.start + MS_PER_HOUR),
        EventTime(removed)
    );
    let n = after.len() as u64;
    Some(Found { summary, evidence: after.iter().map(|(_, id)| (*id).to_owned()).collect(), observed: n, total: n })
}

/// Keeps the latest use of each token (by time, then event id, so arrival
/// order does not matter), for at most `limit` tokens: whether a token was
/// used after its revocation is whether its latest use was.
fn note_token(tokens: &mut Vec<(Box<str>, i64, Box<str>)>, token: &str, time: i64, id: &str, limit: usize) {
    if let Some(seen) = tokens.iter_mut().find(|(t, ..)| &**t == token) {
        if (time, id) > (seen.1, &*seen.2) {
            seen.1 = time;
            seen.2 = id.into();
        }
    } else if tokens.len() < limit.max(1) {
        tokens.push((token.into(), time, id.into()));
    }
}

/// A token used after it was revoked. Databricks refuses a revoked token, so
/// such a use is someone still holding it: a leaked token being tried, or a
/// script nobody told.
fn revoked_token_used(revoked: &FxHashMap<String, i64>, principal: &str, bucket: &Actions) -> Option<Found> {
    let mut used: Vec<(i64, &str, &str, i64)> = bucket
        .tokens
        .iter()
        .filter_map(|(token, t, id)| revoked.get(&**token).filter(|at| **at <= *t).map(|at| (*t, &**id, &**token, *at)))
        .collect();
    used.sort_unstable();
    let &(first, _, token, revoked_at) = used.first()?;
    let summary = format!(
        "Token {token} of {principal} was still used at {}, after it was revoked at {}{}. Databricks refuses a revoked token: someone still holds it (a leaked copy being tried, or a script nobody updated). Find where it is stored and who sent the request.",
        EventTime(first),
        EventTime(revoked_at),
        if used.len() > 1 {
            format!(", and {} other revoked tokens were used in the same hour", used.len() - 1)
        } else {
            String::new()
        }
    );
    let n = used.len() as u64;
    Some(Found { summary, evidence: used.iter().map(|u| u.1.to_owned()).collect(), observed: n, total: n })
}

fn role_drift(def: &Definition, state: &mut PrincipalState, principal: &str, bucket: &Actions) -> Option<Found> {
    // Slide the hours of automation to this bucket.
    let hour = bucket.start.div_euclid(MS_PER_HOUR);
    let shift = state.last_hour.map_or(32, |h| (hour - h).clamp(0, 32)) as u32;
    state.automation_hours = state.automation_hours.checked_shl(shift).unwrap_or(0);
    if bucket.automation.total() > 0 {
        state.automation_hours |= 1;
    }
    state.last_hour = Some(hour);
    match state.kind {
        PrincipalKind::ServicePrincipal if bucket.interactive.total() > 0 => {
            let n = bucket.interactive.total();
            Some(Found {
                summary: format!(
                    "Service principal {principal} signed in like a person ({n} interactive or browser {}) between {} and {}. Service principals authenticate with tokens or OAuth secrets; a person may be using its credentials.",
                    if n == 1 { "login" } else { "logins" },
                    EventTime(bucket.start),
                    EventTime(bucket.start + def.bucket_ms)
                ),
                evidence: bucket.interactive.ids(),
                observed: n,
                total: n,
            })
        }
        PrincipalKind::User => {
            let busy = (state.automation_hours & 0x00ff_ffff).count_ones() as u64;
            (busy >= def.min_count && bucket.automation.total() > 0).then(|| Found {
                summary: format!(
                        "User {principal} ran token-driven automation (a token login or a non-browser client) in {busy} of the 24 hours up to {}. People do not work around the clock: a script may be using a person's token, which a service principal should own.",
                    EventTime(bucket.start + def.bucket_ms)
                ),
                evidence: bucket.automation.ids(),
                observed: busy,
                total: bucket.automation.total(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
