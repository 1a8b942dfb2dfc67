//! The audit-log catalogue: which service names exist, and which signals a
//! service/action pair feeds.
//!
//! Facts come from Databricks' public audit log reference (workspace- and
//! account-level services, the security-monitoring services, and the names
//! Azure diagnostic logs use) and from the public sample events. Matching is
//! ASCII case-insensitive because Azure diagnostic logs spell some service
//! names differently (`ClusterPolicies`). This module only classifies; it
//! keeps no state.

use crate::event::{RunPhase, Signal, Signals};

/// Every service name the audit log reference documents.
const SERVICES: &[&str] = &[
    // Workspace-level services.
    "accounts",
    "aibiGenie",
    "alerts",
    "apps",
    "brickStoreHttpGateway",
    "budgetPolicyCentral",
    "cloudStorageMetadata",
    "clusterLibraries",
    "clusterPolicies",
    "clusters",
    "dashboards",
    "databrickssql",
    "dataMonitoring",
    "dataRooms",
    "dbfs",
    "deltaPipelines",
    "featureStore",
    "filesystem",
    "genie",
    "gitCredentials",
    "globalInitScripts",
    "groups",
    "iamRole",
    "ingestion",
    "instancePools",
    "jobs",
    "lakeviewConfig",
    "lineageTracking",
    "marketplaceConsumer",
    "marketplaceProvider",
    "mlflowAcledArtifact",
    "mlflowExperiment",
    "modelRegistry",
    "notebook",
    "partnerConnect",
    "predictiveOptimization",
    "remoteHistoryService",
    "repos",
    "secrets",
    "serverlessRealTimeInference",
    "sql",
    "sqlPermissions",
    "ssh",
    "unityCatalog",
    "vectorSearch",
    "webTerminal",
    "workspace",
    "workspaceFiles",
    // Account-level services.
    "accountBillableUsage",
    "accountsAccessControl",
    "accountsManager",
    "deltaSharing",
    "deltaSharingAccess",
    "deltaSharingControl",
    "logDelivery",
    "oauth2",
    "servicePrincipalCredentials",
    "ssoConfigBackend",
    "networking",
    // Security monitoring (enhanced security and compliance).
    "capsule8-alerts-dataplane",
    "clamAVScanService-dataplane",
    "clamAVScan",
    "capsule8Dataplane",
    "monit",
    "securityMonitoring",
    "syslog",
];

/// Whether `service` is a documented audit-log service name.
pub fn is_known_service(service: &str) -> bool {
    SERVICES.iter().any(|s| s.eq_ignore_ascii_case(service))
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.len() >= needle.len()
        && haystack.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Group-membership and admin-role actions (accounts, groups, workspace).
const MEMBERSHIP_ACTIONS: &[&str] = &[
    "addPrincipalToGroup",
    "addPrincipalsToGroup",
    "removePrincipalFromGroup",
    "removePrincipalsFromGroup",
    "addUserToAdminGroup",
    "removeUserFromAdminGroup",
    "setAdmin",
    "removeAdmin",
    "setAccountAdmin",
    "removeAccountAdmin",
    "modifyUserRole",
    "changeAccountOwner",
    "updateGroup",
];

/// Statement and command execution: one event per query submitted (the
/// matching "finish" events are not counted, so a query counts once).
fn is_query(service: &str, action: &str) -> bool {
    (eq(service, "databrickssql")
        && ["commandSubmit", "executeAdhocQuery", "executeSavedQuery", "executeFastQuery"]
            .iter()
            .any(|a| eq(action, a)))
        || (eq(service, "notebook") && eq(action, "runCommand"))
        || (eq(service, "jobs") && eq(action, "runCommand"))
}

fn is_permission_change(service: &str, action: &str) -> bool {
    let reads = ["get", "list", "check", "search"];
    if reads.iter().any(|p| action.len() > p.len() && action[..p.len()].eq_ignore_ascii_case(p)) {
        return false;
    }
    MEMBERSHIP_ACTIONS.iter().any(|a| eq(action, a))
        || (eq(service, "unityCatalog") || eq(service, "sqlPermissions") || eq(service, "accountsAccessControl"))
            && (contains_ci(action, "permission")
                || contains_ci(action, "grant")
                || contains_ci(action, "revoke")
                || contains_ci(action, "owner"))
        || contains_ci(action, "acl")
            && (contains_ci(action, "change") || contains_ci(action, "update") || contains_ci(action, "set"))
        || contains_ci(action, "changeOwner")
        || contains_ci(action, "transferObjectOwnership")
        || (eq(service, "databrickssql") && eq(action, "changePermissions"))
}

/// Whether an action is a login or authentication attempt.
pub fn is_login(action: &str) -> bool {
    contains_ci(action, "login") || contains_ci(action, "authentication")
}

fn is_token_creation(action: &str) -> bool {
    ["generateDbToken", "createToken", "createOboToken", "createServicePrincipalSecret", "createPersonalAccessToken"]
        .iter()
        .any(|a| eq(action, a))
}

fn is_download(action: &str) -> bool {
    contains_ci(action, "download") || contains_ci(action, "export")
}

/// The signals an audit event feeds. `failed` is whether the response
/// reported a 4xx/5xx status.
pub fn classify(service: &str, action: &str, failed: bool) -> Signals {
    let mut s = Signals::EMPTY;
    if is_query(service, action) {
        s = s.with(Signal::QueryFrequency);
    }
    if !failed && is_permission_change(service, action) {
        s = s.with(Signal::PermissionChange);
    }
    if eq(service, "jobs") && run_phase(action) != RunPhase::None {
        s = s.with(Signal::JobRun);
    }
    if failed && is_login(action) {
        s = s.with(Signal::FailedLogin);
    }
    if !failed && is_token_creation(action) {
        s = s.with(Signal::TokenCreation);
    }
    if eq(service, "secrets") && eq(action, "getSecret") {
        s = s.with(Signal::SecretRead);
    }
    if !failed && is_download(action) {
        s = s.with(Signal::DataDownload);
    }
    s
}

/// Most distinct (service, action, failed) triples remembered per thread;
/// past this (only a flood of made-up action names gets there) triples are
/// classified without being cached.
const CACHE_LIMIT: usize = 65_536;

/// Classified triples, and a reused buffer to build the lookup key in.
type Cache = (rustc_hash::FxHashMap<Box<str>, Option<Signals>>, String);

thread_local! {
    static CACHE: std::cell::RefCell<Cache> = std::cell::RefCell::new(Default::default());
}

/// [`classify`] for a known service, `None` for an unknown one, cached per
/// thread: the linear catalogue scans run once per distinct pair, not once
/// per event.
pub fn lookup(service: &str, action: &str, failed: bool) -> Option<Signals> {
    CACHE.with(|cell| {
        let (map, key) = &mut *cell.borrow_mut();
        key.clear();
        key.push_str(service);
        key.push('\0');
        key.push_str(action);
        key.push(if failed { '1' } else { '0' });
        if let Some(hit) = map.get(key.as_str()) {
            return *hit;
        }
        let value = is_known_service(service).then(|| classify(service, action, failed));
        if map.len() < CACHE_LIMIT {
            map.insert(key.as_str().into(), value);
        }
        value
    })
}

/// Which end of a job run an audit `jobs` action reports.
pub fn run_phase(action: &str) -> RunPhase {
    if eq(action, "runStart") {
        RunPhase::Start
    } else if ["runSucceeded", "runFailed", "runCancelled", "runCanceled", "runTimedOut"].iter().any(|a| eq(action, a))
    {
        RunPhase::End
    } else {
        RunPhase::None
    }
}

/// Terminal state implied by an end action when the event does not carry
/// `jobTerminalState`.
pub fn run_result_of_action(action: &str) -> &'static str {
    if eq(action, "runSucceeded") {
        "SUCCEEDED"
    } else if eq(action, "runFailed") {
        "FAILED"
    } else if eq(action, "runTimedOut") {
        "TIMEDOUT"
    } else {
        "CANCELED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_match_case_insensitively() {
        assert!(is_known_service("unityCatalog"));
        assert!(is_known_service("ClusterPolicies"));
        assert!(!is_known_service("notARealService"));
    }

    #[test]
    fn query_events_count_once() {
        assert!(classify("databrickssql", "commandSubmit", false).contains(Signal::QueryFrequency));
        assert!(!classify("databrickssql", "commandFinish", false).contains(Signal::QueryFrequency));
        assert!(classify("notebook", "runCommand", false).contains(Signal::QueryFrequency));
    }

    #[test]
    fn permission_changes_exclude_reads() {
        assert!(classify("unityCatalog", "updatePermissions", false).contains(Signal::PermissionChange));
        assert!(classify("unityCatalog", "grant", false).contains(Signal::PermissionChange));
        assert!(classify("accounts", "addPrincipalToGroup", false).contains(Signal::PermissionChange));
        assert!(classify("clusters", "changeClusterAcl", false).contains(Signal::PermissionChange));
        assert!(!classify("unityCatalog", "getPermissions", false).contains(Signal::PermissionChange));
        assert!(!classify("unityCatalog", "grant", true).contains(Signal::PermissionChange));
    }

    #[test]
    fn logins_tokens_secrets_downloads() {
        assert!(classify("accounts", "login", true).contains(Signal::FailedLogin));
        assert!(!classify("accounts", "login", false).contains(Signal::FailedLogin));
        assert!(classify("accounts", "generateDbToken", false).contains(Signal::TokenCreation));
        assert!(classify("secrets", "getSecret", false).contains(Signal::SecretRead));
        assert!(classify("sql", "downloadPreviewResults", false).contains(Signal::DataDownload));
        assert!(classify("workspace", "workspaceExport", false).contains(Signal::DataDownload));
    }

    #[test]
    fn cached_lookup_agrees_with_classify() {
        for _ in 0..2 {
            assert_eq!(lookup("accounts", "login", true), Some(classify("accounts", "login", true)));
            assert_eq!(lookup("accounts", "login", false), Some(classify("accounts", "login", false)));
            assert_eq!(lookup("teleporter", "beam", false), None);
        }
    }

    #[test]
    fn job_run_phases() {
        assert_eq!(run_phase("runStart"), RunPhase::Start);
        assert_eq!(run_phase("runFailed"), RunPhase::End);
        assert_eq!(run_phase("runNow"), RunPhase::None);
        assert!(classify("jobs", "runSucceeded", false).contains(Signal::JobRun));
    }
}
