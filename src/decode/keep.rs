//! Which events keep their request parameters.
//!
//! Copying every request parameter costs a second parse of the record, so
//! decode does it only for the events some loaded detector reads
//! parameters of. [`KeepParams`] is built from the definitions (each
//! `[match]` table that reads a parameter adds its services and actions)
//! and from the built-in detectors' own needs ([`KeepParams::base`]). A
//! user's rule on any service therefore sees its parameters: nothing here
//! is a list of services chosen by hand.

use rustc_hash::{FxHashMap, FxHashSet};

/// The actions one service (or every service) keeps parameters for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Scope {
    /// Every action of the service.
    all: bool,
    /// Actions, lowercase.
    actions: FxHashSet<Box<str>>,
    /// Action prefixes, lowercase.
    prefixes: Vec<Box<str>>,
}

impl Scope {
    fn holds(&self, action_lc: &str) -> bool {
        self.all || self.actions.contains(action_lc) || self.prefixes.iter().any(|p| action_lc.starts_with(&**p))
    }
}

/// The (service, action) pairs whose events keep every request parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepParams {
    /// Every audit event keeps them (tests and tools that inspect events).
    everything: bool,
    /// By lowercase service name.
    services: FxHashMap<Box<str>, Scope>,
    /// Whatever the service.
    any_service: Scope,
}

/// What the built-in detectors read from parameters, beside the rules:
/// tokens (`tokenId`/`tokenHash` of token logins, creations and revokes,
/// for use after revoke), the model registry's stages, aliases, names and
/// versions (also of Unity Catalog models), and the `operation` of Unity
/// Catalog table credentials (the share-down pairing). A test in
/// `detect::registry` and `detect::share_down` decodes through this list.
const BASE_ANY_SERVICE: &[&str] =
    &["tokenLogin", "revokeDbToken", "generateDbToken", "createToken", "createOboToken", "getToken"];
const BASE_SERVICES: &[&str] = &["modelRegistry", "mlflowModelRegistry"];
const BASE_PAIRS: &[(&str, &str)] = &[
    ("unityCatalog", "getTable"),
    ("unityCatalog", "createTable"),
    ("unityCatalog", "generateTemporaryTableCredential"),
    ("unityCatalog", "setRegisteredModelAlias"),
    ("unityCatalog", "setModelVersionAlias"),
    ("unityCatalog", "transitionModelVersionStage"),
    ("unityCatalog", "deleteModelVersion"),
    ("unityCatalog", "deleteRegisteredModel"),
    ("unityCatalog", "getModelVersionDownloadUri"),
    ("unityCatalog", "getModelVersionSignedDownloadUri"),
    ("unityCatalog", "downloadArtifact"),
];

impl KeepParams {
    /// Every audit event keeps its parameters.
    pub fn everything() -> KeepParams {
        KeepParams { everything: true, ..Default::default() }
    }

    /// Only what the built-in detectors other than rules read.
    pub fn base() -> KeepParams {
        let mut k = KeepParams::default();
        k.add(&[], &BASE_ANY_SERVICE.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[]);
        k.add(&BASE_SERVICES.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[], &[]);
        for (s, a) in BASE_PAIRS {
            k.add(&[s.to_string()], &[a.to_string()], &[]);
        }
        k
    }

    /// The base, and every match rule of `defs` that reads a parameter.
    pub fn for_definitions(defs: &[crate::detect::definition::Definition]) -> KeepParams {
        let mut k = KeepParams::base();
        for m in defs.iter().filter_map(|d| d.matcher.as_ref()) {
            if let Some((services, actions, prefixes)) = m.param_scope() {
                k.add(services, actions, prefixes);
            }
        }
        k
    }

    /// Keeps parameters of `actions` (or actions starting with `prefixes`)
    /// of `services`; an empty list means any.
    pub fn add(&mut self, services: &[String], actions: &[String], prefixes: &[String]) {
        let lower = |s: &String| s.to_ascii_lowercase().into_boxed_str();
        let fill = |scope: &mut Scope| {
            if actions.is_empty() && prefixes.is_empty() {
                scope.all = true;
            }
            scope.actions.extend(actions.iter().map(lower));
            scope.prefixes.extend(prefixes.iter().map(lower));
        };
        if services.is_empty() {
            fill(&mut self.any_service);
        }
        for s in services {
            fill(self.services.entry(lower(s)).or_default());
        }
    }

    /// Whether an event of `service` and `action` keeps its parameters.
    pub fn keeps(&self, service: &str, action: &str) -> bool {
        if self.everything {
            return true;
        }
        // Names are short ASCII; lowercase them on the stack.
        let mut sbuf = [0u8; 64];
        let mut abuf = [0u8; 96];
        match (lower_into(&mut sbuf, service), lower_into(&mut abuf, action)) {
            (Some(service), Some(action)) => self.holds(service, action),
            // A name longer than any catalogued one, or not ASCII.
            _ => self.holds(&service.to_ascii_lowercase(), &action.to_ascii_lowercase()),
        }
    }

    fn holds(&self, service_lc: &str, action_lc: &str) -> bool {
        self.any_service.holds(action_lc) || self.services.get(service_lc).is_some_and(|s| s.holds(action_lc))
    }
}

/// `s` lowercased into `buf`, when it fits and is ASCII.
pub(crate) fn lower_into<'b>(buf: &'b mut [u8], s: &str) -> Option<&'b str> {
    if !s.is_ascii() {
        return None;
    }
    let out = buf.get_mut(..s.len())?;
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_add_their_scope() {
        let mut k = KeepParams::base();
        assert!(k.keeps("accounts", "tokenLogin"));
        assert!(k.keeps("modelRegistry", "anything"));
        assert!(!k.keeps("myService", "myAction"));
        k.add(&["myService".into()], &["myAction".into()], &[]);
        assert!(k.keeps("MYSERVICE", "myaction"));
        assert!(!k.keeps("myService", "otherAction"));
        k.add(&[], &[], &["drop".into()]);
        assert!(k.keeps("anyService", "dropTable"));
        assert!(KeepParams::everything().keeps("x", "y"));
    }

    #[test]
    fn long_and_non_ascii_names_are_judged_too() {
        let mut k = KeepParams::default();
        let long = "a".repeat(200);
        k.add(std::slice::from_ref(&long), &[], &[]);
        assert!(k.keeps(&long, "x"));
        assert!(!k.keeps("é", "x"));
    }
}
