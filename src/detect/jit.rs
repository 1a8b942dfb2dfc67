//! Just-in-time access overrun: a grant meant to be temporary that is used
//! after it expired, or that outlives its expiry without a revoke.
//!
//! Where expiries come from: `jit` facts of an access snapshot (the grants
//! a JIT tool handed out, with their expiry), and the definition's policy
//! (`max_grant_hours` for grants on securables under `jit_securables`, as
//! the audit log shows them granted). At the expiry plus `grace_minutes`,
//! once the watermark has passed it, the access model as of that time
//! says whether the grant is still there: if so, it outlived its expiry.
//! Any successful action of the grantee on the securable (or below it)
//! after the expiry, while the grant stands, is a use after expiry, counted
//! per principal and hour like the other rules.

use super::buckets::{Bucket, Wheel, open_start, take_due};
use super::definition::Definition;
use super::evidence::Evidence;
use super::{Fact, Fed};
use crate::access::{AccessModel, Change, SnapshotFact, under};
use crate::alert::Alert;
use crate::event::{Event, PrincipalKind, set_principal};
use crate::state::{Interner, PrincipalId};
use crate::time::EventTime;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// One temporary grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TemporaryGrant {
    pub expires: i64,
    pub grantee: String,
    pub securable: String,
    pub privilege: String,
    /// Where the expiry comes from: "JIT snapshot" or "policy: N h".
    pub origin: String,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Uses {
    start: i64,
    evidence: Evidence,
    /// The grant used, as text for the summary (smallest, for determinism).
    grant: String,
}

impl Bucket for Uses {
    fn start(&self) -> i64 {
        self.start
    }

    fn reset(&mut self, start: i64) {
        self.start = start;
        self.evidence.clear();
        self.grant.clear();
    }
}

/// Outcome counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JitStats {
    pub grants: u64,
    pub revoked_in_time: u64,
    pub outlived: u64,
    pub uses_after_expiry: u64,
    pub late: u64,
}

/// The JIT detector.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Jit {
    def: Definition,
    /// Temporary grants by grantee, for the use check.
    by_grantee: FxHashMap<String, Vec<TemporaryGrant>>,
    /// Expiry checks waiting for the watermark: (expiry + grace, grant).
    deadlines: BTreeMap<(i64, TemporaryGrant), ()>,
    uses: FxHashMap<PrincipalId, (PrincipalKind, i64, Vec<Uses>)>,
    wheel: Wheel<Uses>,
    pub stats: JitStats,
}

impl Jit {
    pub fn new(def: Definition, snapshot: &[SnapshotFact]) -> Self {
        let mut jit = Jit {
            def,
            by_grantee: FxHashMap::default(),
            deadlines: BTreeMap::new(),
            uses: FxHashMap::default(),
            wheel: Wheel::default(),
            stats: JitStats::default(),
        };
        for fact in snapshot {
            if let SnapshotFact::Jit { securable, principal, privileges, expires } = fact {
                let Ok(expires) = EventTime::parse(expires) else { continue };
                let mut grantee = String::new();
                set_principal(&mut grantee, principal);
                for p in privileges {
                    jit.add(TemporaryGrant {
                        expires: expires.0,
                        grantee: grantee.clone(),
                        securable: securable.clone(),
                        privilege: p.trim().to_ascii_uppercase(),
                        origin: "JIT snapshot".into(),
                    });
                }
            }
        }
        jit
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// When its earliest open bucket ends or its earliest expiry check is
    /// due (`i64::MAX` with neither).
    pub fn due_at(&self) -> i64 {
        let deadline = self.deadlines.first_key_value().map_or(i64::MAX, |((t, _), ())| *t);
        self.wheel.due_at(self.def.bucket_ms).min(deadline)
    }

    fn add(&mut self, g: TemporaryGrant) {
        self.stats.grants += 1;
        let deadline = g.expires + self.def.grace_ms;
        self.by_grantee.entry(g.grantee.clone()).or_default().push(g.clone());
        self.deadlines.insert((deadline, g), ());
    }

    /// Grants the audit log shows on policy securables become temporary:
    /// those under `jit_securables` (for `max_grant_hours`), and those on a
    /// securable, or below one, that a snapshot tagged `jit_max_hours=N`.
    pub fn note_changes(&mut self, time: EventTime, changes: &[Change], access: &AccessModel) {
        for c in changes {
            let Change::Grant { securable, grantee, privilege } = c else { continue };
            let by_policy = (self.def.max_grant_ms > 0 && self.def.jit_securables.iter().any(|p| under(securable, p)))
                .then_some((self.def.max_grant_ms, "policy"));
            let Some((max_ms, why)) = by_policy.or_else(|| tagged_max(securable, access).map(|ms| (ms, "tag"))) else {
                continue;
            };
            let hours = max_ms / crate::time::MS_PER_HOUR;
            self.add(TemporaryGrant {
                expires: time.0 + max_ms,
                grantee: grantee.clone(),
                securable: securable.clone(),
                privilege: privilege.clone(),
                origin: format!("{why}: at most {hours} h"),
            });
        }
    }

    /// Counts a successful action on a securable under a temporary grant
    /// of its actor that has expired.
    pub fn observe(&mut self, id: PrincipalId, ev: &Event, watermark: EventTime) -> Fed {
        if self.by_grantee.is_empty() || ev.securable.is_empty() || ev.status.is_some_and(|s| s >= 400) {
            return Fed::Ignored;
        }
        let Some(grants) = self.by_grantee.get(&ev.principal) else { return Fed::Ignored };
        let Some(g) = grants.iter().filter(|g| g.expires <= ev.time.0 && under(&ev.securable, &g.securable)).min()
        else {
            return Fed::Ignored;
        };
        let grant = format!("{} on {} (expired {}, {})", g.privilege, g.securable, EventTime(g.expires), g.origin);
        let Some(start) = open_start(ev.time, self.def.bucket_ms, watermark) else {
            self.stats.late += 1;
            return Fed::Late;
        };
        self.stats.uses_after_expiry += 1;
        let (_, _, open) = self.uses.entry(id).or_insert((ev.principal_kind, i64::MIN, Vec::new()));
        let bucket = self.wheel.open(open, id, start);
        bucket.evidence.offer(ev.time.0, &ev.id, self.def.evidence_limit);
        if bucket.grant.is_empty() || grant < bucket.grant {
            bucket.grant = grant;
        }
        Fed::Taken
    }

    /// The expiry checks due at `watermark`, in time order.
    pub fn take_due(&mut self, watermark: EventTime) -> Vec<(i64, TemporaryGrant)> {
        take_due(&mut self.deadlines, watermark, |k| k.0).into_iter().map(|(k, ())| k).collect()
    }

    /// Judges one expiry check against the model as of its time.
    pub fn judge(&mut self, deadline: i64, g: &TemporaryGrant, access: &AccessModel) -> Option<Alert> {
        if !access.holds(&g.securable, &g.grantee, &g.privilege) {
            self.stats.revoked_in_time += 1;
            return None;
        }
        self.stats.outlived += 1;
        let summary = format!(
            "The temporary grant of {} on {} to {} expired at {} ({}) and was still in place at {}: revoke it, or record why it must stay.",
            g.privilege,
            g.securable,
            g.grantee,
            EventTime(g.expires),
            g.origin,
            EventTime(deadline)
        );
        Some(
            Fact {
                def: &self.def,
                principal: &g.grantee,
                kind: PrincipalKind::classify(&g.grantee),
                workspace: 0,
                start: deadline,
                end: deadline + 1,
                observed: 1,
                evidence_total: 1,
                summary,
                evidence: Vec::new(),
            }
            .alert(),
        )
    }

    /// Closes the use buckets the watermark has passed.
    pub fn advance(&mut self, watermark: EventTime, names: &Interner, out: &mut Vec<Alert>) {
        while let Some((start, ids)) = self.wheel.next_due(watermark, self.def.bucket_ms, names) {
            for id in ids {
                let Some((kind, suppressed_until, open)) = self.uses.get_mut(&id) else { continue };
                let Some(bucket) = Wheel::take(open, start) else { continue };
                if start >= *suppressed_until {
                    *suppressed_until = start + self.def.bucket_ms + self.def.suppress_ms;
                    let n = bucket.evidence.total();
                    let principal = names.name(id);
                    let summary = format!(
                        "{principal} used a temporary grant after it expired: {} time{} between {} and {}, under {}.",
                        n,
                        if n == 1 { "" } else { "s" },
                        EventTime(start),
                        EventTime(start + self.def.bucket_ms),
                        bucket.grant
                    );
                    let end = start + self.def.bucket_ms;
                    out.push(
                        Fact {
                            def: &self.def,
                            principal,
                            kind: *kind,
                            workspace: 0,
                            start,
                            end,
                            observed: n,
                            evidence_total: n,
                            summary,
                            evidence: bucket.evidence.ids(),
                        }
                        .alert(),
                    );
                }
                self.wheel.recycle(bucket);
            }
        }
    }
}

/// The shortest `jit_max_hours=N` tag on `securable` or its parents, in ms.
fn tagged_max(securable: &str, access: &AccessModel) -> Option<i64> {
    let mut best: Option<i64> = None;
    let mut s = securable;
    loop {
        for tag in access.tags_on(s) {
            if let Some(h) = tag.strip_prefix("jit_max_hours=").and_then(|h| h.trim().parse::<i64>().ok())
                && h > 0
            {
                let ms = h * crate::time::MS_PER_HOUR;
                best = Some(best.map_or(ms, |b| b.min(ms)));
            }
        }
        match s.rsplit_once('.') {
            Some((parent, _)) => s = parent,
            None => return best,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_json;
    use crate::detect::definition::{BUILT_IN, parse};

    #[test]
    fn a_jit_tag_makes_grants_below_it_temporary() {
        let mut access = AccessModel::new();
        for f in crate::access::parse_snapshot("s", r#"{"type":"tag","securable":"main.prod","tag":"jit_max_hours=4"}"#)
            .unwrap()
        {
            access.apply_fact(f);
        }
        let def =
            BUILT_IN.iter().find(|(f, _)| f.ends_with("jit_overrun.toml")).map(|(f, t)| parse(f, t).unwrap()).unwrap();
        let mut jit = Jit::new(def, &[]);
        let grant = grant_event(1_704_103_200_000, "add");
        access.observe(&grant);
        jit.note_changes(grant.time, access.last_changes(), &access);
        let due = jit.take_due(EventTime(i64::MAX));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.expires, 1_704_103_200_000 + 4 * 3_600_000);
        assert_eq!(due[0].1.origin, "tag: at most 4 h");
    }

    #[test]
    fn securables_cover_what_lies_below_them() {
        assert!(under("main.prod.t", "main.prod") && under("main.prod", "main.prod"));
        assert!(!under("main.prod2.t", "main.prod") && !under("main", "main.prod"));
    }

    fn grant_event(ms: i64, change: &str) -> Event {
        let line = format!(
            r#"{{"timestamp":{ms},"workspaceId":"7","serviceName":"unityCatalog","actionName":"updatePermissions","userIdentity":{{"email":"admin@x"}},"requestId":"r{ms}","requestParams":{{"securable_full_name":"main.prod.orders","changes":"[{{\"principal\":\"ana@x\",\"{change}\":[\"SELECT\"]}}]"}},"response":{{"statusCode":200}}}}"#
        );
        let mut e = Event::default();
        decode_json(line.as_bytes(), &mut e).unwrap();
        e
    }

    #[test]
    fn policy_grants_revoked_in_time_are_quiet_and_standing_ones_alert() {
        let text = BUILT_IN.iter().find(|(f, _)| f.ends_with("jit_overrun.toml")).unwrap().1;
        let def = parse("jit.toml", &text.replace("jit_securables = []", "jit_securables = [\"main.prod\"]")).unwrap();
        let t0 = 1_704_103_200_000;
        for (revoke_after_h, alerts) in [(Some(7), 0), (None, 1)] {
            let mut jit = Jit::new(def.clone(), &[]);
            let mut access = AccessModel::new();
            let mut events = vec![grant_event(t0, "add")];
            if let Some(h) = revoke_after_h {
                events.push(grant_event(t0 + h * 3_600_000, "remove"));
            }
            for e in &events {
                access.observe(e);
                jit.note_changes(e.time, access.last_changes(), &access);
            }
            let mut out = Vec::new();
            for (deadline, g) in jit.take_due(EventTime(t0 + 10 * 3_600_000)) {
                access.advance_to(EventTime(deadline));
                out.extend(jit.judge(deadline, &g, &access));
            }
            assert_eq!(out.len(), alerts, "{out:#?}");
            if alerts == 1 {
                assert!(out[0].summary.contains("(policy: at most 8 h)"), "{}", out[0].summary);
            }
        }
    }
}
