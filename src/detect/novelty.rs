//! The first-seen source detector: a principal acting from a network and
//! with a client it has never used, where it is settled in its ways.
//!
//! Per principal and bucket it collects the distinct networks and clients
//! its actions named (see `baseline::novelty` for how they are
//! normalized). When the bucket closes, each is checked against the values
//! the principal was seen with before; the bucket's tail probability is
//! the product of the chances of a new network and of a new client in an
//! active bucket of this principal. A new network alone (travel, a new
//! provider) or a new client alone (a new SDK from the office) stays below
//! any sensible threshold for a settled principal; both at once, the shape
//! of a stolen token used from elsewhere, does not. Seen values are
//! updated when a bucket closes, in time order, so the outcome does not
//! depend on arrival order within the allowed lateness.

use super::Fed;
use super::buckets::{Bucket, Table, Wheel, existing, first_seen_of, open_start, state_of};
use super::definition::Definition;
use super::evidence::Evidence;
use crate::alert::{Alert, SCHEMA_VERSION, Severity, alert_id};
use crate::baseline::novelty::{NewValueRate, SeenValues, client_of, hash_value, network_of};
use crate::baseline::score_of;
use crate::event::{Event, PrincipalKind};
use crate::state::{Interner, PrincipalId};
use crate::time::{EventTime, MS_PER_HOUR};

/// Networks and clients remembered per principal.
pub const NETWORKS: usize = 32;
pub const CLIENTS: usize = 16;
/// Distinct values of one kind kept per open bucket (the smallest hashes,
/// so which ones does not depend on arrival order); more are counted.
const PER_BUCKET: usize = 8;

/// One distinct value seen in an open bucket.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Value {
    hash: u32,
    /// The normalized value, and the smallest raw one seen as it (what
    /// the summary shows; the smallest, so that arrival order cannot pick).
    normalized: String,
    raw: String,
    events: u64,
    evidence: Evidence,
}

/// The distinct values of one kind in an open bucket.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Values {
    items: Vec<Value>,
    live: usize,
    /// Distinct values beyond [`PER_BUCKET`] (approximate: each is
    /// counted once per event that could not be kept).
    dropped: u64,
}

impl Values {
    fn clear(&mut self) {
        self.live = 0;
        self.dropped = 0;
    }

    /// Counts `ev` under the value already shown as `raw`, if there is one:
    /// the usual case (one network, one browser), which then needs no
    /// normalizing. A raw value normalizes to one value only, so this
    /// changes nothing but the cost.
    fn offer_known(&mut self, raw: &str, ev: &Event, limit: usize) -> bool {
        match self.items[..self.live].iter_mut().find(|v| v.raw == raw) {
            Some(v) => {
                v.events += 1;
                v.evidence.offer(ev.time.0, &ev.id, limit);
                true
            }
            None => false,
        }
    }

    fn offer(&mut self, normalized: &str, raw: &str, ev: &Event, limit: usize) {
        let hash = hash_value(normalized);
        let live = &mut self.items[..self.live];
        if let Some(v) = live.iter_mut().find(|v| v.hash == hash && v.normalized == normalized) {
            v.events += 1;
            v.evidence.offer(ev.time.0, &ev.id, limit);
            if raw < v.raw.as_str() {
                v.raw.clear();
                v.raw.push_str(raw);
            }
            return;
        }
        if self.live == PER_BUCKET {
            // Keep the smallest hashes: replace the largest if this one is smaller.
            let (i, largest) =
                live.iter().enumerate().max_by_key(|(_, v)| v.hash).map(|(i, v)| (i, v.hash)).expect("full");
            self.dropped += 1;
            if hash >= largest {
                return;
            }
            self.items.swap(i, self.live - 1);
            self.live -= 1;
        }
        if self.live == self.items.len() {
            // One at a time: a principal's hour usually names one network
            // and one client, and a doubling Vec would keep room for four.
            self.items.reserve_exact(1);
            self.items.push(Value::default());
        }
        let v = &mut self.items[self.live];
        self.live += 1;
        v.hash = hash;
        v.normalized.clear();
        v.normalized.push_str(normalized);
        v.raw.clear();
        v.raw.push_str(raw);
        v.events = 1;
        v.evidence.clear();
        v.evidence.offer(ev.time.0, &ev.id, limit);
    }

    fn live(&self) -> &[Value] {
        &self.items[..self.live]
    }
}

/// A principal's open hour (fields set by `Bucket::reset` when opened).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct OpenBucket {
    start: i64,
    /// The smallest workspace id seen in the bucket.
    workspace: u64,
    events: u64,
    networks: Values,
    clients: Values,
}

impl Bucket for OpenBucket {
    fn start(&self) -> i64 {
        self.start
    }

    fn reset(&mut self, start: i64) {
        self.start = start;
        self.workspace = u64::MAX;
        self.events = 0;
        self.networks.clear();
        self.clients.clear();
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PrincipalState {
    kind: PrincipalKind,
    last_closed: Option<i64>,
    suppressed_until: i64,
    networks: SeenValues<NETWORKS>,
    clients: SeenValues<CLIENTS>,
    network_rate: NewValueRate,
    client_rate: NewValueRate,
    open: Vec<OpenBucket>,
}

/// Outcome counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoveltyDetectorStats {
    pub late: u64,
    pub buckets_scored: u64,
    pub new_networks: u64,
    pub new_clients: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub too_young: u64,
}

/// One first-seen source detector.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct NoveltyDetector {
    def: Definition,
    principals: Table<PrincipalState>,
    wheel: Wheel<OpenBucket>,
    scratch: String,
    pub stats: NoveltyDetectorStats,
}

/// The new values of one kind in a closed bucket.
struct Novel<'a> {
    values: Vec<&'a Value>,
    p: f64,
}

impl NoveltyDetector {
    pub fn new(def: Definition) -> Self {
        NoveltyDetector {
            def,
            principals: Vec::new(),
            wheel: Wheel::default(),
            scratch: String::new(),
            stats: NoveltyDetectorStats::default(),
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

    /// Notes where `ev` came from, unless its bucket is already closed.
    pub fn observe(&mut self, principal: PrincipalId, kind: PrincipalKind, ev: &Event, watermark: EventTime) -> Fed {
        let Some(start) = open_start(ev.time, self.def.bucket_ms, watermark) else {
            self.stats.late += 1;
            return Fed::Late;
        };
        let state = state_of(&mut self.principals, principal, || PrincipalState {
            kind,
            last_closed: None,
            suppressed_until: i64::MIN,
            networks: SeenValues::default(),
            clients: SeenValues::default(),
            network_rate: NewValueRate::default(),
            client_rate: NewValueRate::default(),
            open: Vec::with_capacity(2),
        });
        if state.last_closed.is_some_and(|c| start <= c) {
            self.stats.late += 1;
            return Fed::Late;
        }
        let bucket = self.wheel.open(&mut state.open, principal, start);
        bucket.events += 1;
        bucket.workspace = bucket.workspace.min(ev.workspace);
        let limit = self.def.evidence_limit;
        if let Some(ip) = ev.source_ip()
            && !bucket.networks.offer_known(ip, ev, limit)
        {
            network_of(ip, &mut self.scratch);
            bucket.networks.offer(&self.scratch, ip, ev, limit);
        }
        if let Some(ua) = ev.user_agent()
            && !bucket.clients.offer_known(ua, ev, limit)
        {
            client_of(ua, &mut self.scratch);
            if !self.scratch.is_empty() {
                bucket.clients.offer(&self.scratch, ua, ev, limit);
            }
        }
        Fed::Taken
    }

    /// Closes every bucket that ends at or before `watermark`, in (bucket,
    /// principal name) order.
    pub fn advance(&mut self, watermark: EventTime, names: &Interner, first_seen: &[EventTime], out: &mut Vec<Alert>) {
        while let Some((start, ids)) = self.wheel.next_due(watermark, self.def.bucket_ms, names) {
            for id in ids {
                let first = first_seen_of(first_seen, id, start);
                self.close(id, start, first, names, out);
            }
        }
    }

    fn close(&mut self, id: PrincipalId, start: i64, first_seen: EventTime, names: &Interner, out: &mut Vec<Alert>) {
        let def = &self.def;
        let Some(state) = existing(&mut self.principals, id) else {
            return;
        };
        let Some(bucket) = Wheel::take(&mut state.open, start) else {
            return;
        };
        self.stats.buckets_scored += 1;
        let at = (start.div_euclid(def.bucket_ms)).clamp(0, u32::MAX as i64) as u32;
        // Which values are new, and how surprising that is, before the
        // model learns them.
        let networks = novel(&bucket.networks, |h| state.networks.contains(h), &state.network_rate);
        let clients = novel(&bucket.clients, |h| state.clients.contains(h), &state.client_rate);
        let active = (state.network_rate.active(), state.client_rate.active());
        let known = (state.networks.len(), state.clients.len());
        // A bucket that names no network (or no client) says nothing about
        // it; the first values a principal is seen with are not "new" (the
        // rate is of values outside a known set).
        if !bucket.networks.live().is_empty() {
            let new = !networks.values.is_empty() && !state.networks.is_empty();
            state.network_rate.update(new, def.forgetting);
        }
        if !bucket.clients.live().is_empty() {
            let new = !clients.values.is_empty() && !state.clients.is_empty();
            state.client_rate.update(new, def.forgetting);
        }
        self.stats.new_networks += networks.values.len() as u64;
        self.stats.new_clients += clients.values.len() as u64;
        let p_value = networks.p * clients.p;
        let s = score_of(p_value);
        let end = start + def.bucket_ms;
        let age_ms = end - first_seen.0;
        let new_events: u64 = networks.values.iter().chain(&clients.values).map(|v| v.events).max().unwrap_or(0);
        let mut alert = None;
        if s >= def.threshold && new_events >= def.min_count {
            if age_ms < def.min_history_ms {
                self.stats.too_young += 1;
            } else if start < state.suppressed_until {
                self.stats.suppressed += 1;
            } else {
                state.suppressed_until = end + def.suppress_ms;
                self.stats.alerts += 1;
                let principal = names.name(id);
                let severity = if s >= def.high_score { def.severity.max(Severity::High) } else { def.severity };
                // Evidence: the earliest events that named a new value.
                let mut evidence: Vec<(i64, &str)> = Vec::new();
                for v in networks.values.iter().chain(&clients.values) {
                    evidence.extend(v.evidence.items());
                }
                evidence.sort_unstable();
                evidence.dedup();
                evidence.truncate(def.evidence_limit);
                let expected = networks.p.min(1.0) * clients.p.min(1.0);
                alert = Some(Alert {
                    schema_version: SCHEMA_VERSION,
                    alert_id: alert_id(&def.name, principal, start, &def.config_version),
                    detector: def.name.clone(),
                    principal: principal.to_owned(),
                    workspace_id: bucket.workspace.to_string(),
                    window_start: EventTime(start).to_string(),
                    window_end: EventTime(end).to_string(),
                    observed: (networks.values.len() + clients.values.len()) as f64,
                    expected: round4(expected),
                    expected_low: 0.0,
                    expected_high: 0.0,
                    score: s,
                    p_value,
                    severity,
                    summary: summary(principal, state.kind, start, &networks, &clients, known, active, age_ms),
                    evidence: evidence.into_iter().map(|(_, id)| id.to_owned()).collect(),
                    corrects: None,
                    triage: def.triage(severity, s),
                    context: def.context(
                        state.kind,
                        round4(age_ms as f64 / MS_PER_HOUR as f64),
                        round4(active.0.max(active.1)),
                        None,
                        new_events,
                    ),
                });
            }
        }
        for v in bucket.networks.live() {
            state.networks.insert(v.hash, at);
        }
        for v in bucket.clients.live() {
            state.clients.insert(v.hash, at);
        }
        state.last_closed = Some(start);
        out.extend(alert);
        self.wheel.recycle(bucket);
    }

    /// Principals with state.
    pub fn principals(&self) -> usize {
        self.principals.iter().filter(|p| p.is_some()).count()
    }

    /// Bytes of state per tracked principal, excluding open buckets.
    pub fn bytes_per_principal() -> usize {
        std::mem::size_of::<Option<Box<PrincipalState>>>() + std::mem::size_of::<PrincipalState>()
    }
}

/// The values of a closed bucket not seen before, and the chance of that.
fn novel<'a>(values: &'a Values, seen: impl Fn(u32) -> bool, rate: &NewValueRate) -> Novel<'a> {
    let values: Vec<&Value> = values.live().iter().filter(|v| !seen(v.hash)).collect();
    let p = if values.is_empty() { 1.0 } else { rate.p_new() };
    Novel { values, p }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// "1 in 1,250": a probability an on-call engineer can picture.
fn one_in(p: f64) -> String {
    let n = (1.0 / p.max(1e-12)).round() as u64;
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("1 in {grouped}")
}

#[allow(clippy::too_many_arguments)]
fn summary(
    principal: &str,
    kind: PrincipalKind,
    start: i64,
    networks: &Novel<'_>,
    clients: &Novel<'_>,
    (known_networks, known_clients): (usize, usize),
    (active_networks, active_clients): (f64, f64),
    age_ms: i64,
) -> String {
    let who = match kind {
        PrincipalKind::User => "User",
        PrincipalKind::ServicePrincipal => "Service principal",
        PrincipalKind::System => "System identity",
        PrincipalKind::Unknown => "Principal",
    };
    let t = EventTime(start);
    let when = format!("{}:00 UTC on {}", t.hour_of_day(), &t.to_string()[..10]);
    let list = |n: &Novel<'_>, what: &str| -> String {
        let mut parts: Vec<String> = n.values.iter().map(|v| format!("{} ({} events)", v.raw, v.events)).collect();
        parts.sort();
        format!("{what} {}", parts.join(", "))
    };
    let days = age_ms as f64 / (24.0 * MS_PER_HOUR as f64);
    let count = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (known_networks, known_clients) =
        (count(known_networks, "network", "networks"), count(known_clients, "client", "clients"));
    let mut s = format!("{who} {principal} acted from ");
    match (networks.values.is_empty(), clients.values.is_empty()) {
        (false, false) => {
            s += &format!(
                "a new network and with a new client in the hour from {when}: {}; {}. In {days:.0} days it used {known_networks} and {known_clients}; a new network comes in about {} of its active hours and a new client in about {}.",
                list(networks, "network"),
                list(clients, "client"),
                one_in(networks.p),
                one_in(clients.p),
            );
        }
        (false, true) => {
            s += &format!(
                "a new network in the hour from {when}: {}. In {days:.0} days and {active_networks:.0} active hours it used {known_networks}; a new one comes in about {} of its active hours.",
                list(networks, "network"),
                one_in(networks.p),
            );
        }
        _ => {
            s = format!(
                "{who} {principal} used a new client in the hour from {when}: {}. In {days:.0} days and {active_clients:.0} active hours it used {known_clients}; a new one comes in about {} of its active hours.",
                list(clients, "client"),
                one_in(clients.p),
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::definition::built_in;

    fn def() -> Definition {
        built_in().unwrap().into_iter().find(|d| d.name == "new_source").unwrap()
    }

    fn ev(ms: i64, id: &str, ip: &str, ua: &str) -> Event {
        Event {
            time: EventTime(ms),
            principal: "ana@x".into(),
            principal_kind: PrincipalKind::User,
            id: id.into(),
            source_ip: ip.into(),
            user_agent: ua.into(),
            workspace: 7,
            ..Event::default()
        }
    }

    const CHROME: &str = "Mozilla/5.0 (Macintosh) AppleWebKit/537.36 Chrome/119.0.0.0 Safari/537.36";

    /// Three weeks of office hours from one network with one browser, then
    /// `last_day` on day 21 at 10:00.
    fn run(last_day: &[(&str, &str)], roams: bool) -> (Vec<Alert>, NoveltyDetectorStats) {
        let mut d = NoveltyDetector::new(def());
        let mut names = Interner::default();
        let id = names.intern("ana@x");
        let t0 = 1_704_067_200_000; // Monday
        let mut out = Vec::new();
        let mut n = 0;
        for day in 0..22i64 {
            if day % 7 >= 5 {
                continue;
            }
            for hour in 9..17 {
                let start = t0 + (day * 24 + hour) * MS_PER_HOUR;
                let ip = if roams { format!("10.{day}.1.5") } else { "10.0.0.7".into() };
                let browser = CHROME.replace("119.0.0.0", if day > 10 { "120.0.6099.71" } else { "119.0.0.0" });
                let events: Vec<(String, String)> = if day == 21 && hour == 10 {
                    last_day.iter().map(|(ip, ua)| (ip.to_string(), ua.to_string())).collect()
                } else {
                    vec![(ip, browser); 3]
                };
                for (i, (ip, ua)) in events.iter().enumerate() {
                    n += 1;
                    d.observe(
                        id,
                        PrincipalKind::User,
                        &ev(start + i as i64 * 60_000, &format!("e{n}"), ip, ua),
                        EventTime(start),
                    );
                }
                d.advance(EventTime(start), &names, &[EventTime(t0)], &mut out);
            }
        }
        d.advance(EventTime(i64::MAX / 2), &names, &[EventTime(t0)], &mut out);
        (out, d.stats)
    }

    #[test]
    fn a_settled_user_from_a_new_network_with_a_new_client_alerts() {
        let stolen = [("185.220.101.7", "python-requests/2.31.0"); 4];
        let (alerts, _) = run(&stolen, false);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!((a.principal.as_str(), a.observed, a.evidence.len()), ("ana@x", 2.0, 4));
        assert!(a.summary.starts_with("User ana@x acted from a new network and with a new client in the hour from 10:00 UTC on 2024-01-22: network 185.220.101.7 (4 events); client python-requests/2.31.0 (4 events)."), "{}", a.summary);
        assert!(a.summary.contains("it used 1 network and 1 client;"), "{}", a.summary);
    }

    #[test]
    fn a_new_network_alone_or_a_browser_update_is_quiet() {
        let (alerts, stats) = run(&[("192.0.2.10", CHROME); 3], false);
        assert!(alerts.is_empty(), "{alerts:#?}");
        assert_eq!(stats.new_networks, 2, "the first network and the new one");
        assert_eq!(stats.new_clients, 1, "the browser update is the same client");
    }

    #[test]
    fn a_roaming_user_is_not_surprised_by_new_networks() {
        let (alerts, _) = run(&[("203.0.113.9", "python-requests/2.31.0"); 3], true);
        assert!(alerts.is_empty(), "{alerts:#?}");
    }

    #[test]
    fn state_per_principal_is_small() {
        assert!(NoveltyDetector::bytes_per_principal() <= 2048, "{}", NoveltyDetector::bytes_per_principal());
    }
}
