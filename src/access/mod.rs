//! Access: a live model of who may do what, built from the audit stream.
//!
//! Group membership, admin roles, Unity Catalog grants and ownership, and
//! principal removal, as the audit log reports them, update a model of
//! which principal holds which privilege on which securable, directly or
//! through groups. Changes are applied in event-time order: an access
//! event waits until the watermark passes its time, so the model at any
//! time `t` holds exactly the changes before `t` whatever order they
//! arrived in. Alerts are enriched with the model as of their window's end
//! (see [`AccessModel::advance_to`]); a change that arrives after the model
//! has passed its time is applied at once and counted as late.
//!
//! Only successful requests change access (a missing status counts as
//! success: many delivered events carry none).

use crate::event::{Event, set_principal};
use crate::time::EventTime;
use std::collections::{BTreeMap, BTreeSet};

/// A role that grants broad rights.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminRole {
    /// Account admin.
    Account,
    /// Workspace admin of this workspace (0 when the event did not say).
    Workspace(u64),
}

/// One change to access, as read from one event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    JoinGroup { principal: String, group: String },
    LeaveGroup { principal: String, group: String },
    GrantAdmin { principal: String, role: AdminRole },
    RevokeAdmin { principal: String, role: AdminRole },
    Grant { securable: String, grantee: String, privilege: String },
    Revoke { securable: String, grantee: String, privilege: String },
    Owner { securable: String, owner: String },
    Remove { principal: String },
    Restore { principal: String },
}

/// Groups whose members are admins by membership.
const ADMIN_GROUPS: &[&str] = &["admins", "account admins", "account-admins", "workspace-admins", "metastore-admins"];

fn ok(ev: &Event) -> bool {
    ev.status.is_none_or(|s| s < 400)
}

/// The changes one event makes (most events make none). `out` is cleared first.
pub fn changes_of(ev: &Event, out: &mut Vec<Change>) {
    out.clear();
    if !ok(ev) {
        return;
    }
    let target = || ev.target.clone();
    let group = || normalize_group(&ev.group);
    let workspace = ev.workspace;
    match ev.action.as_str() {
        "addPrincipalToGroup" | "addPrincipalsToGroup" | "addUserToGroup" if !ev.target.is_empty() => {
            out.push(Change::JoinGroup { principal: target(), group: group() });
        }
        "removePrincipalFromGroup" | "removePrincipalsFromGroup" | "removeUserFromGroup" if !ev.target.is_empty() => {
            out.push(Change::LeaveGroup { principal: target(), group: group() });
        }
        "setAdmin" | "addUserToAdminGroup" if !ev.target.is_empty() => {
            out.push(Change::GrantAdmin { principal: target(), role: AdminRole::Workspace(workspace) });
        }
        "removeAdmin" | "removeUserFromAdminGroup" if !ev.target.is_empty() => {
            out.push(Change::RevokeAdmin { principal: target(), role: AdminRole::Workspace(workspace) });
        }
        "setAccountAdmin" if !ev.target.is_empty() => {
            out.push(Change::GrantAdmin { principal: target(), role: AdminRole::Account });
        }
        "removeAccountAdmin" if !ev.target.is_empty() => {
            out.push(Change::RevokeAdmin { principal: target(), role: AdminRole::Account });
        }
        "modifyUserRole" if !ev.target.is_empty() => {
            let role = ev.role.to_ascii_lowercase();
            let admin = if role.contains("account") { AdminRole::Account } else { AdminRole::Workspace(workspace) };
            out.push(if role.contains("admin") {
                Change::GrantAdmin { principal: target(), role: admin }
            } else {
                Change::RevokeAdmin { principal: target(), role: AdminRole::Workspace(workspace) }
            });
        }
        "updatePermissions" | "updateSharePermissions" if !ev.securable.is_empty() => {
            permission_changes(&ev.changes, &ev.securable, out);
        }
        "changeOwner" | "updateOwner" if !ev.securable.is_empty() && !ev.target.is_empty() => {
            out.push(Change::Owner { securable: ev.securable.clone(), owner: target() });
        }
        "delete" | "deleteUser" | "deleteServicePrincipal" | "deactivateUser" | "deactivate"
            if !ev.target.is_empty() && !ev.endpoint.contains("group") =>
        {
            out.push(Change::Remove { principal: target() });
        }
        "create" | "createUser" | "createServicePrincipal" | "activateUser" | "activate"
            if !ev.target.is_empty() && !ev.endpoint.contains("group") =>
        {
            out.push(Change::Restore { principal: target() });
        }
        _ => {}
    }
}

fn normalize_group(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// Reads Unity Catalog's `changes`: `[{"principal": "...", "add": [...],
/// "remove": [...]}]` (a JSON string in the request). Unreadable changes
/// change nothing.
fn permission_changes(changes: &str, securable: &str, out: &mut Vec<Change>) {
    #[derive(serde::Deserialize)]
    struct One {
        principal: String,
        #[serde(default)]
        add: Vec<String>,
        #[serde(default)]
        remove: Vec<String>,
    }
    let Ok(all) = serde_json::from_str::<Vec<One>>(changes) else { return };
    for c in all {
        let mut grantee = String::new();
        set_principal(&mut grantee, &c.principal);
        if grantee.is_empty() {
            continue;
        }
        for p in c.add {
            let privilege = p.trim().to_ascii_uppercase();
            out.push(Change::Grant { securable: securable.to_owned(), grantee: grantee.clone(), privilege });
        }
        for p in c.remove {
            let privilege = p.trim().to_ascii_uppercase();
            out.push(Change::Revoke { securable: securable.to_owned(), grantee: grantee.clone(), privilege });
        }
    }
}

/// Counters of the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessStats {
    pub changes: u64,
    /// Changes whose time the model had already passed when they arrived.
    pub late: u64,
}

/// Who may do what, as of the time the model has been advanced to.
#[derive(Debug, Default)]
pub struct AccessModel {
    /// Changes not yet applied, in (time, arrival-independent key) order.
    pending: BTreeMap<(i64, Change), u32>,
    /// Everything before this time has been applied.
    applied_to: i64,
    groups: BTreeMap<String, BTreeSet<String>>,
    admins: BTreeMap<String, BTreeSet<AdminRole>>,
    /// Securable → grantee → privileges.
    grants: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    owners: BTreeMap<String, String>,
    removed: BTreeMap<String, i64>,
    scratch: Vec<Change>,
    pub stats: AccessStats,
}

impl AccessModel {
    pub fn new() -> Self {
        AccessModel { applied_to: i64::MIN, ..Default::default() }
    }

    /// Takes the access changes `ev` makes; applied once the model is
    /// advanced past its time.
    pub fn observe(&mut self, ev: &Event) {
        let mut changes = std::mem::take(&mut self.scratch);
        changes_of(ev, &mut changes);
        for c in changes.drain(..) {
            self.stats.changes += 1;
            if ev.time.0 < self.applied_to {
                self.stats.late += 1;
                self.apply(ev.time.0, c);
            } else {
                *self.pending.entry((ev.time.0, c)).or_default() += 1;
            }
        }
        self.scratch = changes;
    }

    /// Applies every change before `t`, in time order.
    pub fn advance_to(&mut self, t: EventTime) {
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 >= t.0 {
                break;
            }
            let ((time, change), _) = entry.remove_entry();
            self.apply(time, change);
        }
        self.applied_to = self.applied_to.max(t.0);
    }

    fn apply(&mut self, time: i64, change: Change) {
        match change {
            Change::JoinGroup { principal, group } => {
                self.groups.entry(principal).or_default().insert(group);
            }
            Change::LeaveGroup { principal, group } => {
                if let Some(g) = self.groups.get_mut(&principal) {
                    g.remove(&group);
                }
            }
            Change::GrantAdmin { principal, role } => {
                self.admins.entry(principal).or_default().insert(role);
            }
            Change::RevokeAdmin { principal, role } => {
                if let Some(r) = self.admins.get_mut(&principal) {
                    r.remove(&role);
                }
            }
            Change::Grant { securable, grantee, privilege } => {
                self.grants.entry(securable).or_default().entry(grantee).or_default().insert(privilege);
            }
            Change::Revoke { securable, grantee, privilege } => {
                if let Some(p) = self.grants.get_mut(&securable).and_then(|g| g.get_mut(&grantee)) {
                    p.remove(&privilege);
                }
            }
            Change::Owner { securable, owner } => {
                self.owners.insert(securable, owner);
            }
            Change::Remove { principal } => {
                self.removed.insert(principal, time);
            }
            Change::Restore { principal } => {
                self.removed.remove(&principal);
            }
        }
    }

    /// The groups `principal` belongs to, by name.
    pub fn groups_of(&self, principal: &str) -> Vec<String> {
        self.groups.get(principal).map(|g| g.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether `principal` holds an admin role, directly or through an admin group.
    pub fn is_admin(&self, principal: &str) -> bool {
        self.admins.get(principal).is_some_and(|r| !r.is_empty())
            || self.groups.get(principal).is_some_and(|g| g.iter().any(|g| ADMIN_GROUPS.contains(&g.as_str())))
    }

    /// When `principal` was removed or deactivated, if it still is.
    pub fn removed_at(&self, principal: &str) -> Option<EventTime> {
        self.removed.get(principal).map(|t| EventTime(*t))
    }

    /// What a reviewer should look at first, most powerful first: admin
    /// roles, admin groups, ownerships, then grants (direct, then through
    /// groups); at most `limit` entries.
    pub fn privileges_of(&self, principal: &str, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        for role in self.admins.get(principal).into_iter().flatten() {
            out.push(match role {
                AdminRole::Account => "account admin".to_owned(),
                AdminRole::Workspace(0) => "workspace admin".to_owned(),
                AdminRole::Workspace(w) => format!("workspace admin of {w}"),
            });
        }
        let groups = self.groups.get(principal);
        for g in groups.into_iter().flatten().filter(|g| ADMIN_GROUPS.contains(&g.as_str())) {
            out.push(format!("member of admin group {g}"));
        }
        for (securable, owner) in &self.owners {
            if owner == principal || groups.is_some_and(|g| g.contains(owner)) {
                out.push(format!("owner of {securable}"));
            }
        }
        for (securable, grantees) in &self.grants {
            if let Some(p) = grantees.get(principal).filter(|p| !p.is_empty()) {
                out.push(format!("{} on {securable}", p.iter().cloned().collect::<Vec<_>>().join(", ")));
            }
        }
        for (securable, grantees) in &self.grants {
            for g in groups.into_iter().flatten() {
                if let Some(p) = grantees.get(g).filter(|p| !p.is_empty()) {
                    out.push(format!(
                        "{} on {securable} (through {g})",
                        p.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        out.truncate(limit);
        out
    }
}

#[cfg(test)]
mod tests;
