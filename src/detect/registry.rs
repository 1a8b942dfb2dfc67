//! Model registry guard: the path a model takes to production.
//!
//! Reads the workspace Model Registry (`modelRegistry`, also seen as
//! `mlflowModelRegistry`) and Unity Catalog model events, in event-time
//! order once the watermark has passed them, and alerts when:
//! - a version is moved to Production (`transitionModelVersionStage` with
//!   `stage` Production) or given a production alias
//!   (`setRegisteredModelAlias` with an alias in `production_aliases`)
//!   without an approval of that version before it
//!   (`approveTransitionRequest`), or by someone other than the release
//!   principals (`release_principals`; with none configured, by a person
//!   rather than a service principal);
//! - a production version (or a model holding one) is deleted;
//! - a version is downloaded (`getModelVersionDownloadUri`,
//!   `getModelVersionSignedDownloadUri`, `downloadArtifact`) by a principal
//!   with no grant on the model, when the access model knows the model's
//!   grants at all.
//!
//! The audit parameters `name`, `version`, `stage` and `alias` are read as
//! the Model Registry API names them; no public sample shows them, so the
//! names are documented as unconfirmed.

use super::Fact;
use super::buckets::take_due;
use super::definition::Definition;
use crate::access::AccessModel;
use crate::alert::Alert;
use crate::event::{Event, PrincipalKind};
use crate::time::EventTime;
use std::collections::{BTreeMap, BTreeSet};

/// What a registry event says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Act {
    Promote { alias: Option<String> },
    Approve,
    Delete { whole_model: bool },
    Download,
}

/// A registry event waiting for the watermark.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RegistryEvent {
    pub time: i64,
    pub id: String,
    pub principal: String,
    pub kind: PrincipalKind,
    pub workspace: u64,
    pub model: String,
    pub version: String,
    pub act: Act,
}

/// Outcome counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistryStats {
    pub events: u64,
    pub promotions: u64,
    pub alerts: u64,
}

/// The registry guard.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RegistryGuard {
    def: Definition,
    pending: BTreeMap<(i64, String, u64), RegistryEvent>,
    seq: u64,
    /// (model, version) → time of its approval.
    approved: BTreeMap<(String, String), i64>,
    /// Model → its versions in production.
    production: BTreeMap<String, BTreeSet<String>>,
    pub stats: RegistryStats,
}

const SERVICES: &[&str] = &["modelRegistry", "mlflowModelRegistry", "unityCatalog"];

/// How long an approval stays good for a promotion.
const APPROVAL_MS: i64 = 30 * 24 * crate::time::MS_PER_HOUR;

impl RegistryGuard {
    pub fn new(def: Definition) -> Self {
        RegistryGuard {
            def,
            pending: BTreeMap::new(),
            seq: 0,
            approved: BTreeMap::new(),
            production: BTreeMap::new(),
            stats: RegistryStats::default(),
        }
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    /// The time of its earliest pending fact (`i64::MAX` with none).
    pub fn due_at(&self) -> i64 {
        self.pending.first_key_value().map_or(i64::MAX, |(k, _)| k.0)
    }

    /// Takes a registry event (others are ignored).
    pub fn observe(&mut self, ev: &Event) {
        if !SERVICES.contains(&ev.service.as_str()) || ev.status.is_some_and(|s| s >= 400) {
            return;
        }
        let param = |k: &str| ev.param(k).map(str::to_owned);
        let stage_is_production = param("stage").is_some_and(|s| s.eq_ignore_ascii_case("production"));
        let act = match ev.action.as_str() {
            "transitionModelVersionStage" if stage_is_production => Act::Promote { alias: None },
            "setRegisteredModelAlias" | "setModelVersionAlias" => {
                let alias = param("alias").unwrap_or_default();
                if !self.def.production_aliases.iter().any(|a| a.eq_ignore_ascii_case(&alias)) {
                    return;
                }
                Act::Promote { alias: Some(alias) }
            }
            "approveTransitionRequest" if stage_is_production => Act::Approve,
            "deleteModelVersion" => Act::Delete { whole_model: false },
            "deleteRegisteredModel" => Act::Delete { whole_model: true },
            "getModelVersionDownloadUri" | "getModelVersionSignedDownloadUri" | "downloadArtifact" => Act::Download,
            _ => return,
        };
        let model = param("name").or_else(|| param("full_name")).unwrap_or_else(|| ev.securable.clone());
        if model.is_empty() {
            return;
        }
        self.stats.events += 1;
        self.seq += 1;
        let e = RegistryEvent {
            time: ev.time.0,
            id: ev.id.clone(),
            principal: ev.principal.clone(),
            kind: ev.principal_kind,
            workspace: ev.workspace,
            model,
            version: param("version").unwrap_or_default(),
            act,
        };
        self.pending.insert((e.time, e.id.clone(), self.seq), e);
    }

    /// The events at or before `watermark`, in time order.
    pub fn take_due(&mut self, watermark: EventTime) -> Vec<RegistryEvent> {
        take_due(&mut self.pending, watermark, |k| k.0).into_iter().map(|(_, e)| e).collect()
    }

    /// Judges one event against what came before it and the access model.
    pub fn judge(&mut self, e: &RegistryEvent, access: &AccessModel) -> Option<Alert> {
        let key = (e.model.clone(), e.version.clone());
        let what = format!("version {} of model {}", if e.version.is_empty() { "?" } else { &e.version }, e.model);
        let problem = match &e.act {
            Act::Approve => {
                self.approved.insert(key, e.time);
                return None;
            }
            Act::Promote { alias } => {
                self.stats.promotions += 1;
                self.production.entry(e.model.clone()).or_default().insert(e.version.clone());
                let how = match alias {
                    Some(a) => format!("gave {what} the production alias `{a}`"),
                    None => format!("moved {what} to Production"),
                };
                let approved = self.approved.get(&key).is_some_and(|t| *t <= e.time && e.time - t <= APPROVAL_MS);
                let release = &self.def.release_principals;
                let by_release =
                    if release.is_empty() { e.kind != PrincipalKind::User } else { release.contains(&e.principal) };
                match (approved, by_release) {
                    (true, true) => return None,
                    (false, true) => format!("{} {how} without an approval of that version before it", e.principal),
                    (true, false) => format!("{} {how}, approved, but is not a release principal", e.principal),
                    (false, false) => {
                        format!("{} {how} without an approval, and is not a release principal", e.principal)
                    }
                }
            }
            Act::Delete { whole_model } => {
                let live = self.production.get(&e.model);
                let hit = if *whole_model {
                    live.is_some_and(|v| !v.is_empty())
                } else {
                    live.is_some_and(|v| v.contains(&e.version))
                };
                if !hit {
                    return None;
                }
                if *whole_model {
                    self.production.remove(&e.model);
                    format!("{} deleted model {}, which has a version in production", e.principal, e.model)
                } else {
                    if let Some(v) = self.production.get_mut(&e.model) {
                        v.remove(&e.version);
                    }
                    format!("{} deleted {what}, which is in production", e.principal)
                }
            }
            Act::Download => {
                let readers = access.readers_of(&e.model);
                if readers.is_empty() || access.covered_by(&e.principal, &readers) || access.is_admin(&e.principal) {
                    return None;
                }
                format!(
                    "{} downloaded {what} with no grant on the model (grants: {})",
                    e.principal,
                    readers.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        };
        self.stats.alerts += 1;
        let def = &self.def;
        Some(
            Fact {
                def,
                principal: &e.principal,
                kind: e.kind,
                workspace: e.workspace,
                start: e.time,
                end: e.time + 1,
                observed: 1,
                evidence_total: 1,
                summary: format!("{problem} at {}.", EventTime(e.time)),
                evidence: if e.id.is_empty() { Vec::new() } else { vec![e.id.clone()] },
            }
            .alert(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::definition::built_in;

    const SP: &str = "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    fn ev(min: i64, who: &str, action: &str, params: &str) -> Event {
        let line = format!(
            r#"{{"timestamp":{},"workspaceId":"7","serviceName":"modelRegistry","actionName":"{action}","userIdentity":{{"email":"{who}"}},"requestId":"r{min}","requestParams":{{{params}}},"response":{{"statusCode":200}}}}"#,
            1_704_103_200_000 + min * 60_000
        );
        let mut e = Event::default();
        crate::decode::decode_json_keeping(line.as_bytes(), &mut e, &crate::decode::keep::KeepParams::base()).unwrap();
        e
    }

    fn run(events: &[Event], release: &[&str]) -> Vec<Alert> {
        let mut def = built_in().unwrap().into_iter().find(|d| d.name == "model_registry_guard").unwrap();
        def.release_principals = release.iter().map(|s| s.to_string()).collect();
        let mut g = RegistryGuard::new(def);
        for e in events {
            g.observe(e);
        }
        let access = AccessModel::new();
        g.take_due(EventTime(i64::MAX)).iter().filter_map(|e| g.judge(e, &access)).collect()
    }

    const V3: &str = r#""name":"churn","version":"3","stage":"Production""#;

    #[test]
    fn an_approved_promotion_by_the_release_principal_is_quiet() {
        let events = [ev(0, "lead@x", "approveTransitionRequest", V3), ev(5, SP, "transitionModelVersionStage", V3)];
        assert!(run(&events, &[SP]).is_empty());
        assert!(run(&events, &[]).is_empty(), "with no list, a service principal is the release path");
    }

    #[test]
    fn unapproved_or_human_promotions_alert() {
        let a = run(&[ev(5, SP, "transitionModelVersionStage", V3)], &[SP]);
        assert_eq!(a.len(), 1);
        assert!(
            a[0].summary.contains("moved version 3 of model churn to Production without an approval"),
            "{}",
            a[0].summary
        );
        let events =
            [ev(0, "lead@x", "approveTransitionRequest", V3), ev(5, "dev@x", "transitionModelVersionStage", V3)];
        let a = run(&events, &[SP]);
        assert!(a[0].summary.contains("approved, but is not a release principal"), "{}", a[0].summary);
        let alias = run(
            &[ev(5, SP, "setRegisteredModelAlias", r#""name":"main.ml.churn","version":"4","alias":"champion""#)],
            &[SP],
        );
        assert!(alias[0].summary.contains("gave version 4 of model main.ml.churn the production alias `champion`"));
    }

    #[test]
    fn deleting_a_production_version_alerts_and_a_staging_one_does_not() {
        let events = [
            ev(0, "lead@x", "approveTransitionRequest", V3),
            ev(5, SP, "transitionModelVersionStage", V3),
            ev(9, "dev@x", "deleteModelVersion", r#""name":"churn","version":"2""#),
            ev(10, "dev@x", "deleteModelVersion", r#""name":"churn","version":"3""#),
        ];
        let a = run(&events, &[SP]);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert!(a[0].summary.contains("deleted version 3 of model churn, which is in production"));
    }
}

#[cfg(test)]
mod download_tests {
    use super::*;
    use crate::access::parse_snapshot;
    use crate::detect::definition::built_in;

    fn download(who: &str) -> Event {
        let line = format!(
            r#"{{"timestamp":1704103200000,"workspaceId":"7","serviceName":"modelRegistry","actionName":"getModelVersionDownloadUri","userIdentity":{{"email":"{who}"}},"requestId":"r-{who}","requestParams":{{"name":"churn","version":"3"}},"response":{{"statusCode":200}}}}"#
        );
        let mut e = Event::default();
        crate::decode::decode_json_keeping(line.as_bytes(), &mut e, &crate::decode::keep::KeepParams::base()).unwrap();
        e
    }

    #[test]
    fn a_download_without_a_grant_alerts() {
        let mut access = AccessModel::new();
        let snapshot = r#"{"type":"grant","securable":"churn","principal":"ml-team","privileges":["EXECUTE"]}
{"type":"member","principal":"ana@x","group":"ml-team"}"#;
        for f in parse_snapshot("s", snapshot).unwrap() {
            access.apply_fact(f);
        }
        let def = built_in().unwrap().into_iter().find(|d| d.name == "model_registry_guard").unwrap();
        let mut g = RegistryGuard::new(def);
        g.observe(&download("ana@x"));
        g.observe(&download("dev@x"));
        let alerts: Vec<Alert> = g.take_due(EventTime(i64::MAX)).iter().filter_map(|e| g.judge(e, &access)).collect();
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert!(
            alerts[0]
                .summary
                .starts_with("dev@x downloaded version 3 of model churn with no grant on the model (grants: ml-team)"),
            "{}",
            alerts[0].summary
        );
    }
}
