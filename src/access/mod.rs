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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum AdminRole {
    /// Account admin.
    Account,
    /// Workspace admin of this workspace (0 when the event did not say).
    Workspace(u64),
}

/// One change to access, as read from one event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Change {
    JoinGroup {
        principal: String,
        group: String,
    },
    LeaveGroup {
        principal: String,
        group: String,
    },
    GrantAdmin {
        principal: String,
        role: AdminRole,
    },
    RevokeAdmin {
        principal: String,
        role: AdminRole,
    },
    Grant {
        securable: String,
        grantee: String,
        privilege: String,
    },
    Revoke {
        securable: String,
        grantee: String,
        privilege: String,
    },
    Owner {
        securable: String,
        owner: String,
    },
    Remove {
        principal: String,
    },
    Restore {
        principal: String,
    },
    /// A personal access token revoked, named by the identifier the revoke
    /// carries (`tokenId`, or `tokenHash` in other exports).
    RevokeToken {
        token: String,
    },
}

/// Whether `securable` is `parent` or lies below it (`main.hr` covers
/// `main.hr.people`, not `main.hrx`).
pub fn under(securable: &str, parent: &str) -> bool {
    securable == parent || (securable.starts_with(parent) && securable.as_bytes().get(parent.len()) == Some(&b'.'))
}

/// The entries of `map` for `securable` and what lies below it, in key
/// order, without allocating. Keys sharing the text prefix are contiguous;
/// among them, `main.hr.people-old` is not below `main.hr.people`.
fn below<'a, V>(map: &'a BTreeMap<String, V>, securable: &'a str) -> impl Iterator<Item = (&'a String, &'a V)> {
    use std::ops::Bound;
    map.range::<str, _>((Bound::Included(securable), Bound::Unbounded))
        .take_while(move |(s, _)| s.starts_with(securable))
        .filter(move |(s, _)| under(s, securable))
}

/// Whether a tag marks personal data: one containing `pii` or `personal`
/// (`pii_email`, `personal_data`), or `phi`, `gdpr`, `sensitive`.
pub fn is_personal(tag: &str) -> bool {
    tag.contains("pii") || tag.contains("personal") || matches!(tag, "phi" | "gdpr" | "sensitive")
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
        "revokeDbToken" => {
            if let Some(token) = token_of(ev) {
                out.push(Change::RevokeToken { token: token.to_owned() });
            }
        }
        "create" | "createUser" | "createServicePrincipal" | "activateUser" | "activate"
            if !ev.target.is_empty() && !ev.endpoint.contains("group") =>
        {
            out.push(Change::Restore { principal: target() });
        }
        _ => {}
    }
}

/// The token an event names: `tokenId` (token logins, revokes) or
/// `tokenHash` (revokes and creations in other exports). Which of the two a
/// workspace writes differs between sources, and nothing public says the two
/// are the same value; use after revoke is matched on equal values only, so
/// a mismatch silences the rule instead of raising false alerts.
pub fn token_of(ev: &Event) -> Option<&str> {
    ["tokenId", "tokenHash"].into_iter().filter_map(|k| ev.param(k)).find(|v| !v.is_empty())
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessStats {
    pub changes: u64,
    /// Changes whose time the model had already passed when they arrived.
    pub late: u64,
}

/// Who may do what, as of the time the model has been advanced to.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
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
    /// From snapshots: tags per securable (`table` or `table.column`), and
    /// column masks with the principals or groups that see values unmasked.
    tags: BTreeMap<String, BTreeSet<String>>,
    masks: BTreeMap<String, BTreeSet<String>>,
    scratch: Vec<Change>,
    pub stats: AccessStats,
}

impl AccessModel {
    pub fn new() -> Self {
        AccessModel { applied_to: i64::MIN, ..Default::default() }
    }

    /// Takes the access changes `ev` makes; applied once the model is
    /// advanced past its time. The changes stay readable in
    /// [`AccessModel::last_changes`] for the detectors that also need them,
    /// so an event is read once.
    pub fn observe(&mut self, ev: &Event) {
        let mut changes = std::mem::take(&mut self.scratch);
        changes_of(ev, &mut changes);
        for c in &changes {
            self.stats.changes += 1;
            if ev.time.0 < self.applied_to {
                self.stats.late += 1;
                self.apply(ev.time.0, c.clone());
            } else {
                *self.pending.entry((ev.time.0, c.clone())).or_default() += 1;
            }
        }
        self.scratch = changes;
    }

    /// The changes of the event last observed.
    pub fn last_changes(&self) -> &[Change] {
        &self.scratch
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
            // Who may read what does not change; the offboarded rule keeps
            // revoked tokens itself.
            Change::RevokeToken { .. } => {}
        }
    }

    /// The groups `principal` belongs to, by name.
    pub fn groups_of(&self, principal: &str) -> Vec<String> {
        self.groups.get(principal).map(|g| g.iter().cloned().collect()).unwrap_or_default()
    }

    /// Whether `grantee` still holds `privilege` on `securable` (as granted, not inherited).
    pub fn holds(&self, securable: &str, grantee: &str, privilege: &str) -> bool {
        self.grants.get(securable).and_then(|g| g.get(grantee)).is_some_and(|p| p.contains(privilege))
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

/// One fact of an exported access snapshot (JSON lines; see the README,
/// "Access snapshots").
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SnapshotFact {
    /// `principal` is a member of `group`.
    Member { principal: String, group: String },
    /// `principal` is an account admin, or an admin of `workspace_id`.
    Admin {
        principal: String,
        role: String,
        #[serde(default)]
        workspace_id: Option<String>,
    },
    /// `principal` (a user, service principal or group) holds `privileges` on `securable`.
    Grant { securable: String, principal: String, privileges: Vec<String> },
    /// `principal` owns `securable`.
    Owner { securable: String, principal: String },
    /// `securable` (a table, or `table.column`) holds personal data.
    Tag { securable: String, tag: String },
    /// A column mask on `securable` (`table.column`): only `unmasked_for`
    /// (principals or groups) see the values.
    Mask { securable: String, unmasked_for: Vec<String> },
    /// A just-in-time grant: `principal` holds `privileges` on `securable`
    /// until `expires` (RFC 3339 or epoch), and must be revoked then.
    Jit { securable: String, principal: String, privileges: Vec<String>, expires: String },
}

/// A snapshot file that could not be read; names the line.
#[derive(Debug, thiserror::Error)]
#[error("{path}: line {line}: {message}")]
pub struct SnapshotError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// Reads an exported snapshot (JSON lines; blank lines and `#` comments
/// skipped); the first bad line stops it, named.
pub fn parse_snapshot(path: &str, text: &str) -> Result<Vec<SnapshotFact>, SnapshotError> {
    let mut facts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let err = |message: String| SnapshotError { path: path.to_owned(), line: i + 1, message };
        let fact: SnapshotFact = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        if let SnapshotFact::Admin { role, .. } = &fact
            && role != "account"
            && role != "workspace"
        {
            return Err(err(format!("admin role `{role}`; allowed: account, workspace")));
        }
        if let SnapshotFact::Jit { expires, .. } = &fact
            && EventTime::parse(expires).is_err()
        {
            return Err(err(format!(
                "expires `{expires}`: not a time (RFC 3339, YYYY-MM-DD[ HH:MM:SS] UTC, or epoch)"
            )));
        }
        facts.push(fact);
    }
    Ok(facts)
}

impl AccessModel {
    /// Applies a snapshot fact: true before the first event.
    pub fn apply_fact(&mut self, fact: SnapshotFact) {
        let who = |p: &str| {
            let mut s = String::new();
            set_principal(&mut s, p);
            s
        };
        let t = i64::MIN;
        match fact {
            SnapshotFact::Member { principal, group } => {
                self.apply(t, Change::JoinGroup { principal: who(&principal), group: normalize_group(&group) })
            }
            SnapshotFact::Admin { principal, role, workspace_id } => {
                let role = match role.as_str() {
                    "account" => AdminRole::Account,
                    _ => AdminRole::Workspace(workspace_id.as_deref().and_then(|w| w.parse().ok()).unwrap_or(0)),
                };
                self.apply(t, Change::GrantAdmin { principal: who(&principal), role });
            }
            SnapshotFact::Grant { securable, principal, privileges } => {
                for p in privileges {
                    let privilege = p.trim().to_ascii_uppercase();
                    self.apply(t, Change::Grant { securable: securable.clone(), grantee: who(&principal), privilege });
                }
            }
            SnapshotFact::Owner { securable, principal } => {
                self.apply(t, Change::Owner { securable, owner: who(&principal) })
            }
            SnapshotFact::Tag { securable, tag } => {
                self.tags.entry(securable).or_default().insert(tag.trim().to_ascii_lowercase());
            }
            SnapshotFact::Mask { securable, unmasked_for } => {
                self.masks.insert(securable, unmasked_for.iter().map(|p| who(p)).collect());
            }
            // The grant itself holds until revoked; its expiry is the JIT
            // detector's business (it reads the same facts).
            SnapshotFact::Jit { securable, principal, privileges, .. } => {
                for p in privileges {
                    let privilege = p.trim().to_ascii_uppercase();
                    self.apply(t, Change::Grant { securable: securable.clone(), grantee: who(&principal), privilege });
                }
            }
        }
    }

    /// Who may read `table` (principals and groups, as granted): SELECT
    /// (EXECUTE for models), or ALL PRIVILEGES on it, its schema or its catalog, and the
    /// owners of each. (USE CATALOG and USE SCHEMA are assumed where SELECT
    /// is granted: a grant nobody can use is still a grant to review.)
    pub fn readers_of(&self, table: &str) -> BTreeSet<String> {
        let mut parents = vec![table.to_owned()];
        let mut t = table;
        while let Some((parent, _)) = t.rsplit_once('.') {
            parents.push(parent.to_owned());
            t = parent;
        }
        let mut readers = BTreeSet::new();
        for s in &parents {
            for (grantee, privileges) in self.grants.get(s).into_iter().flatten() {
                if privileges
                    .iter()
                    .any(|p| matches!(p.as_str(), "SELECT" | "EXECUTE" | "ALL PRIVILEGES" | "ALL_PRIVILEGES"))
                {
                    readers.insert(grantee.clone());
                }
            }
            if let Some(owner) = self.owners.get(s) {
                readers.insert(owner.clone());
            }
        }
        readers
    }

    /// Whether `who` (a principal or a group) is in `allowed`, itself or
    /// through one of its groups.
    pub fn covered_by(&self, who: &str, allowed: &BTreeSet<String>) -> bool {
        allowed.contains(who) || self.groups.get(who).is_some_and(|g| g.iter().any(|g| allowed.contains(g)))
    }

    /// Who may see `table`'s personal data unmasked: when its personal
    /// columns are masked, those every mask exempts; otherwise
    /// everyone who may read it.
    pub fn unmasked_readers_of(&self, table: &str) -> BTreeSet<String> {
        let masks = self.masks_of(table);
        if masks.is_empty() {
            return self.readers_of(table);
        }
        // Exempt from every mask: a reader must see all masked columns.
        let mut sets = masks.into_iter().map(|(_, who)| who.into_iter().collect::<BTreeSet<String>>());
        let first = sets.next().unwrap_or_default();
        sets.fold(first, |acc, s| acc.intersection(&s).cloned().collect())
    }

    /// The tables holding personal data (a personal tag on the table or one
    /// of its columns) that `principal` may read, itself or through a group.
    pub fn personal_tables_readable_by(&self, principal: &str) -> Vec<String> {
        let mut tables: BTreeSet<String> = BTreeSet::new();
        for (securable, tags) in &self.tags {
            if tags.iter().any(|t| is_personal(t)) {
                // catalog.schema.table[.column]
                let table: Vec<&str> = securable.splitn(4, '.').take(3).collect();
                tables.insert(table.join("."));
            }
        }
        tables.into_iter().filter(|t| self.covered_by(principal, &self.readers_of(t))).collect()
    }

    /// The tags on `securable` itself.
    pub fn tags_on(&self, securable: &str) -> Vec<String> {
        self.tags.get(securable).map(|t| t.iter().cloned().collect()).unwrap_or_default()
    }

    /// The tags on `securable` and on its columns (`securable.column`).
    pub fn tags_of(&self, securable: &str) -> Vec<String> {
        let tags: BTreeSet<&String> = below(&self.tags, securable).flat_map(|(_, t)| t).collect();
        tags.into_iter().cloned().collect()
    }

    /// Whether `securable` or one of its columns is tagged as personal
    /// data. Asked of every table read: it allocates nothing.
    pub fn holds_personal_data(&self, securable: &str) -> bool {
        below(&self.tags, securable).any(|(_, t)| t.iter().any(|t| is_personal(t)))
    }

    /// The masked columns of `table`, with who sees them unmasked.
    pub fn masks_of(&self, table: &str) -> Vec<(String, Vec<String>)> {
        below(&self.masks, table)
            .filter(|(s, _)| *s != table)
            .map(|(s, who)| (s.clone(), who.iter().cloned().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
