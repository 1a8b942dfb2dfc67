//! Share-down write: personal data read unmasked by one principal and
//! written where others may read it without the right to see it.
//!
//! Input: `system.access.table_lineage` rows (a principal read a source
//! table and wrote a target). A flow is judged against the access model as
//! of its time, once the watermark has passed it (so arrival order does
//! not matter):
//! - the source holds personal data (a tag on it or on one of its columns
//!   from the definition's list, e.g. `pii`);
//! - the writer may see it unmasked (the masks exempt it, or there are no
//!   masks and it may read the source);
//! - someone may read the target who may not see the source unmasked: the
//!   newly exposed.
//!
//! Writing masked values where more privileged principals read them
//! (sharing up) exposes nothing and raises nothing.

use super::Fact;
use super::buckets::take_due;
use super::definition::Definition;
use crate::access::{AccessModel, is_personal};
use crate::alert::Alert;
use crate::event::{Event, PrincipalKind};
use crate::time::EventTime;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// A data flow waiting for the watermark.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Flow {
    pub time: i64,
    pub principal: String,
    pub kind: PrincipalKind,
    pub source: String,
    pub target: String,
    pub workspace: u64,
    pub id: String,
    /// Inferred from the audit log (a read, then a write within the
    /// window) rather than reported by lineage.
    pub inferred: bool,
}

/// How long after reading a table a principal's write counts as writing
/// what it read, when only the audit log says so (no lineage row).
pub const READ_WRITE_WINDOW_MS: i64 = crate::time::MS_PER_HOUR;

/// Outcome counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShareDownStats {
    pub flows: u64,
    pub personal: u64,
    /// Personal data written by a principal that saw it masked.
    pub shared_up: u64,
    pub alerts: u64,
}

/// The share-down detector.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ShareDown {
    def: Definition,
    /// (time, id, target, source) → flow.
    pending: BTreeMap<(i64, String, String, String), Flow>,
    /// Audit-only pairing: per principal, recent table reads and writes
    /// (time, table, event id), kept for the window plus the lateness.
    reads: FxHashMap<String, Vec<(i64, String, String)>>,
    writes: FxHashMap<String, Vec<(i64, String, String)>>,
    pub stats: ShareDownStats,
}

impl ShareDown {
    pub fn new(def: Definition) -> Self {
        ShareDown {
            def,
            pending: BTreeMap::new(),
            reads: FxHashMap::default(),
            writes: FxHashMap::default(),
            stats: ShareDownStats::default(),
        }
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// The time of its earliest pending fact (`i64::MAX` with none).
    pub fn due_at(&self) -> i64 {
        self.pending.first_key_value().map_or(i64::MAX, |(k, _)| k.0)
    }

    /// Takes a lineage row that wrote a target from a source.
    pub fn observe(&mut self, ev: &Event) {
        if ev.source_table.is_empty() || ev.securable.is_empty() || ev.principal.is_empty() {
            return;
        }
        self.stats.flows += 1;
        let flow = Flow {
            time: ev.time.0,
            principal: ev.principal.clone(),
            kind: ev.principal_kind,
            source: ev.source_table.clone(),
            target: ev.securable.clone(),
            workspace: ev.workspace,
            id: ev.id.clone(),
            inferred: false,
        };
        self.add(flow);
    }

    fn add(&mut self, flow: Flow) {
        self.pending.insert((flow.time, flow.id.clone(), flow.target.clone(), flow.source.clone()), flow);
    }

    /// Pairs Unity Catalog reads and writes of one principal from the audit
    /// log when no lineage row reports the flow: a table read, then a table
    /// created or opened for writing within [`READ_WRITE_WINDOW_MS`]. Both
    /// orders of arrival pair, so the outcome does not depend on it; only
    /// reads of tables that hold personal data are kept.
    pub fn observe_audit(&mut self, ev: &Event, access: &AccessModel, watermark: EventTime) {
        if ev.service != "unityCatalog" || ev.securable.is_empty() || ev.status.is_some_and(|s| s >= 400) {
            return;
        }
        let operation = ev.param("operation").unwrap_or("");
        let read = matches!(ev.action.as_str(), "getTable" | "generateTemporaryTableCredential")
            && !operation.eq_ignore_ascii_case("READ_WRITE");
        let write = ev.action == "createTable"
            || (ev.action == "generateTemporaryTableCredential" && operation.eq_ignore_ascii_case("READ_WRITE"));
        let horizon = watermark.0.saturating_sub(READ_WRITE_WINDOW_MS);
        let flow = |source: &str, target: &str, time: i64, id: &str| Flow {
            time,
            principal: ev.principal.clone(),
            kind: ev.principal_kind,
            source: source.to_owned(),
            target: target.to_owned(),
            workspace: ev.workspace,
            id: id.to_owned(),
            inferred: true,
        };
        let mut found = Vec::new();
        if read && access.holds_personal_data(&ev.securable) {
            for (t, target, id) in self.writes.get(&ev.principal).into_iter().flatten() {
                if *t >= ev.time.0 && *t - ev.time.0 <= READ_WRITE_WINDOW_MS && *target != ev.securable {
                    found.push(flow(&ev.securable, target, *t, id));
                }
            }
            let reads = self.reads.entry(ev.principal.clone()).or_default();
            reads.retain(|r| r.0 >= horizon);
            reads.push((ev.time.0, ev.securable.clone(), ev.id.clone()));
        }
        if write {
            for (t, source, _) in self.reads.get(&ev.principal).into_iter().flatten() {
                if *t <= ev.time.0 && ev.time.0 - *t <= READ_WRITE_WINDOW_MS && *source != ev.securable {
                    found.push(flow(source, &ev.securable, ev.time.0, &ev.id));
                }
            }
            let writes = self.writes.entry(ev.principal.clone()).or_default();
            writes.retain(|w| w.0 >= horizon);
            writes.push((ev.time.0, ev.securable.clone(), ev.id.clone()));
        }
        for f in found {
            self.stats.flows += 1;
            self.add(f);
        }
    }

    /// The flows at or before `watermark`, in time order.
    pub fn take_due(&mut self, watermark: EventTime) -> Vec<Flow> {
        take_due(&mut self.pending, watermark, |k| k.0).into_iter().map(|(_, f)| f).collect()
    }

    /// Judges one flow against the model as of its time.
    pub fn judge(&mut self, flow: &Flow, access: &AccessModel) -> Option<Alert> {
        let tags: Vec<String> = access.tags_of(&flow.source).into_iter().filter(|t| is_personal(t)).collect();
        if tags.is_empty() {
            return None;
        }
        self.stats.personal += 1;
        let allowed = access.unmasked_readers_of(&flow.source);
        // Unity Catalog masks apply to admins too, unless the mask exempts them.
        if !access.covered_by(&flow.principal, &allowed) {
            // It saw masked values: writing them anywhere exposes nothing.
            self.stats.shared_up += 1;
            return None;
        }
        let exposed: Vec<String> = access
            .readers_of(&flow.target)
            .into_iter()
            .filter(|r| *r != flow.principal && !access.covered_by(r, &allowed))
            .collect();
        if exposed.is_empty() {
            return None;
        }
        self.stats.alerts += 1;
        let def = &self.def;
        let masked = !access.masks_of(&flow.source).is_empty();
        let summary = format!(
            "{} read personal data ({}) from {} {}and {} {} at {}; {} may read {} without the right to see that data unmasked: {}. Review the grants on {} or mask the columns there.",
            flow.principal,
            tags.join(", "),
            flow.source,
            if masked { "unmasked (its masks exempt it) " } else { "" },
            if flow.inferred {
                "within the hour (paired from the audit log; no lineage row) wrote"
            } else {
                "wrote it to"
            },
            flow.target,
            EventTime(flow.time),
            if exposed.len() == 1 {
                "1 principal or group".to_owned()
            } else {
                format!("{} principals or groups", exposed.len())
            },
            flow.target,
            exposed.join(", "),
            flow.target,
        );
        Some(
            Fact {
                def,
                principal: &flow.principal,
                kind: flow.kind,
                workspace: flow.workspace,
                start: flow.time,
                end: flow.time + 1,
                observed: exposed.len() as u64,
                evidence_total: 1,
                summary,
                evidence: if flow.id.is_empty() { Vec::new() } else { vec![flow.id.clone()] },
            }
            .alert(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::parse_snapshot;
    use crate::detect::definition::built_in;

    const SNAPSHOT: &str = r#"{"type":"member","principal":"ana@x","group":"hr"}
{"type":"member","principal":"bob@x","group":"analysts"}
{"type":"grant","securable":"main.hr.people","principal":"hr","privileges":["SELECT"]}
{"type":"tag","securable":"main.hr.people.email","tag":"pii"}
{"type":"mask","securable":"main.hr.people.email","unmasked_for":["hr"]}
{"type":"grant","securable":"main.hr.people","principal":"analysts","privileges":["SELECT"]}
{"type":"grant","securable":"main.shared","principal":"analysts","privileges":["SELECT"]}
{"type":"grant","securable":"main.hr.private","principal":"hr","privileges":["SELECT"]}
"#;

    fn model() -> AccessModel {
        let mut m = AccessModel::new();
        for f in parse_snapshot("s", SNAPSHOT).unwrap() {
            m.apply_fact(f);
        }
        m
    }

    fn flow(who: &str, source: &str, target: &str) -> Flow {
        Flow {
            time: 1_704_103_200_000,
            principal: who.into(),
            kind: PrincipalKind::User,
            source: source.into(),
            target: target.into(),
            workspace: 7,
            id: "lin-1".into(),
            inferred: false,
        }
    }

    fn detector() -> ShareDown {
        ShareDown::new(built_in().unwrap().into_iter().find(|d| d.name == "share_down_write").unwrap())
    }

    #[test]
    fn unmasked_personal_data_written_where_analysts_read_it_alerts() {
        let mut d = detector();
        let a = d.judge(&flow("ana@x", "main.hr.people", "main.shared.people_copy"), &model()).expect("alert");
        assert_eq!((a.principal.as_str(), a.observed), ("ana@x", 1.0));
        assert!(a.summary.contains("read personal data (pii) from main.hr.people unmasked"), "{}", a.summary);
        assert!(a.summary.contains("without the right to see that data unmasked: analysts."), "{}", a.summary);
    }

    #[test]
    fn sharing_up_and_sharing_among_the_allowed_stay_quiet() {
        let mut d = detector();
        // bob sees the email column masked: what he writes is masked.
        assert!(d.judge(&flow("bob@x", "main.hr.people", "main.shared.people_copy"), &model()).is_none());
        assert_eq!(d.stats.shared_up, 1);
        // ana writes into a table only hr reads.
        assert!(d.judge(&flow("ana@x", "main.hr.people", "main.hr.private"), &model()).is_none());
        // Tables without personal data flow freely.
        assert!(d.judge(&flow("ana@x", "main.hr.private", "main.shared.x"), &model()).is_none());
    }
}

#[cfg(test)]
mod audit_tests {
    use super::*;
    use crate::access::parse_snapshot;
    use crate::detect::definition::built_in;

    fn ev(min: i64, who: &str, action: &str, params: &str) -> Event {
        let line = format!(
            r#"{{"timestamp":{},"workspaceId":"7","serviceName":"unityCatalog","actionName":"{action}","userIdentity":{{"email":"{who}"}},"requestId":"r{min}","requestParams":{{{params}}},"response":{{"statusCode":200}}}}"#,
            1_704_103_200_000 + min * 60_000
        );
        let mut e = Event::default();
        crate::decode::decode_json_keeping(line.as_bytes(), &mut e, &crate::decode::keep::KeepParams::base()).unwrap();
        e
    }

    #[test]
    fn a_read_then_a_write_within_the_hour_is_a_flow_in_either_arrival_order() {
        let snapshot = r#"{"type":"grant","securable":"main.hr.people","principal":"ana@x","privileges":["SELECT"]}
{"type":"tag","securable":"main.hr.people","tag":"pii"}
{"type":"grant","securable":"main.shared","principal":"analysts","privileges":["SELECT"]}"#;
        let mut access = AccessModel::new();
        for f in parse_snapshot("s", snapshot).unwrap() {
            access.apply_fact(f);
        }
        let read = ev(0, "ana@x", "getTable", r#""full_name_arg":"main.hr.people""#);
        let write = ev(20, "ana@x", "createTable", r#""full_name_arg":"main.shared.copy""#);
        let late_write = ev(90, "ana@x", "createTable", r#""full_name_arg":"main.shared.other""#);
        for order in [[&read, &write, &late_write], [&write, &read, &late_write]] {
            let def = built_in().unwrap().into_iter().find(|d| d.name == "share_down_write").unwrap();
            let mut d = ShareDown::new(def);
            for e in order {
                d.observe_audit(e, &access, EventTime(1_704_103_200_000));
            }
            let flows = d.take_due(EventTime(i64::MAX));
            assert_eq!(flows.len(), 1, "the write 90 minutes later is outside the window: {flows:#?}");
            let a = d.judge(&flows[0], &access).expect("alert");
            assert!(
                a.summary
                    .contains("and within the hour (paired from the audit log; no lineage row) wrote main.shared.copy"),
                "{}",
                a.summary
            );
        }
    }
}
