//! Synthetic Databricks activity with labelled incidents.
//!
//! Owns a seeded simulation of an account with two workspaces: people with
//! time zones, working hours and a weekly rhythm, service principals running
//! scheduled jobs, SQL warehouses, grants, logins, tokens, secrets and
//! billing usage priced by list prices, written in the real shapes (audit
//! log as delivered for workspace A, `system.access.audit` rows for
//! workspace B, `system.billing.*` and `system.lakeflow.job_run_timeline`
//! rows). Incidents are injected on top and listed in `labels.jsonl`; hard
//! negatives (weekly spikes, new principals, a holiday, a growing team,
//! heavy nightly batches) are left unlabelled on purpose.
//!
//! The same configuration always writes the same bytes: one ChaCha stream
//! drives everything, and only ordered collections are iterated. The data
//! is synthetic: no row describes a real person or workspace. Never reads
//! the wall clock.

mod write;

use crate::time::{EventTime, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    pub days: u32,
    pub principals: u32,
    pub seed: u64,
    /// First day (midnight UTC). The default, 2024-01-01, is a Monday.
    pub start: EventTime,
    /// Gzip the delivered audit log files.
    pub gzip: bool,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig { days: 14, principals: 50, seed: 1, start: EventTime(1_704_067_200_000), gzip: false }
    }
}

/// One injected incident, as written to `labels.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub incident: String,
    /// Normalized principal: lowercase email or service principal application id.
    pub principal: String,
    /// The signal the incident shows in (see `event::Signal::name`).
    pub signal: String,
    /// RFC 3339.
    pub start: String,
    pub end: String,
    pub description: String,
    pub workspace_id: u64,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    pub events_by_file_kind: Vec<(String, u64)>,
    pub incidents: Vec<Label>,
    pub total_events: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: line {line}: {message}")]
    Labels { path: PathBuf, line: usize, message: String },
    #[error("nothing to generate: days and principals must be at least 1")]
    Empty,
}

/// Folder under the output directory that holds the logs (what to replay);
/// `labels.jsonl` and `README.txt` sit beside it.
pub const LOGS_DIR: &str = "logs";
/// The access snapshot beside the logs (`replay --access-snapshot`).
pub const ACCESS_SNAPSHOT: &str = "access_snapshot.jsonl";

/// Workspace written as delivered audit logs.
pub const WORKSPACE_A: u64 = 1_234_567_890_123_456;
/// Workspace written as `system.access.audit` rows.
pub const WORKSPACE_B: u64 = 2_345_678_901_234_567;
const ACCOUNT_ID: &str = "9f1c4d2e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

/// Who a principal is and how it behaves.
#[derive(Debug, Clone)]
struct Principal {
    name: String,
    human: bool,
    workspace: u64,
    /// Hours added to UTC to get local time.
    tz: i64,
    /// Local working hours [start, end).
    work: (i64, i64),
    /// Mean SQL queries per working hour.
    queries: f64,
    /// Mean notebook commands per working hour.
    notebook: f64,
    /// Mean table reads per working hour.
    reads: f64,
    /// Grants per working hour (admins grant; others almost never).
    grants: f64,
    downloads: f64,
    /// Day index from which the principal exists.
    first_day: i64,
    /// Runs a reporting burst every Monday 09:00 local.
    monday_report: bool,
    /// Activity grows linearly to (1 + growth) over the period.
    growth: f64,
    ips: Vec<String>,
    agent: &'static str,
    /// The same client after an update (version numbers only), used from
    /// `upgrade_day` on: a hard negative for the first-seen source detector.
    agent_next: &'static str,
    upgrade_day: i64,
    /// Works from a different network every day (mobile, hotels): new
    /// networks are normal for this principal.
    roams: bool,
    /// From this day on, some of the principal's queries come through a
    /// SQL connector from its usual network: a new client alone.
    connector_from: Option<i64>,
    /// Uses serverless notebooks (billed to the user).
    serverless: bool,
}

#[derive(Debug, Clone)]
struct Job {
    id: u64,
    owner: usize,
    workspace: u64,
    /// Runs every `every_hours` hours at minute `minute`.
    every_hours: i64,
    minute: i64,
    runtime_s: f64,
    dbu_per_hour: f64,
    /// Queries issued during each run (dashboard refreshes, batch SQL).
    queries_per_run: u32,
}

/// What happened; rendered per shape by `write`.
#[derive(Debug, Clone)]
enum Act {
    Query {
        warehouse: u32,
        command: u64,
    },
    QueryFinish {
        warehouse: u32,
        command: u64,
    },
    Notebook {
        notebook: u64,
        command: u64,
    },
    ReadTable {
        table: &'static str,
    },
    Login {
        method: &'static str,
        failed: bool,
        user: usize,
    },
    Token {
        lifetime_days: u32,
    },
    Secret {
        scope: &'static str,
        key: &'static str,
    },
    Grant {
        table: &'static str,
        grantee: usize,
    },
    GroupAdd {
        member: usize,
        group: &'static str,
    },
    Download,
    /// An account admin removes a user (SCIM delete).
    RemoveUser {
        user: usize,
    },
    /// A user revokes one of their personal access tokens.
    RevokeToken {
        token: u64,
    },
    /// A request authenticated with a personal access token.
    TokenLogin {
        token: u64,
        failed: bool,
    },
    ClusterStart {
        cluster: u32,
    },
    RunStart {
        job: u64,
        run: u64,
    },
    RunEnd {
        job: u64,
        run: u64,
        failed: bool,
    },
}

#[derive(Debug, Clone)]
struct Rec {
    time: i64,
    /// Sort key: event time plus delivery disorder.
    order: i64,
    who: usize,
    /// Index into `World::sources`: the (source IP, user agent) it came from.
    source: u32,
    act: Act,
}

#[derive(Debug, Clone)]
struct Usage {
    end: i64,
    start: i64,
    workspace: u64,
    sku: &'static str,
    dbus: f64,
    run_as: Option<usize>,
    job: Option<(u64, u64)>,
    warehouse: Option<u32>,
}

#[derive(Debug, Clone)]
struct RunSlice {
    job: u64,
    run: u64,
    start: i64,
    end: i64,
    result: Option<bool>,
}

const TABLES: &[&str] = &[
    "main.sales.orders",
    "main.sales.customers",
    "main.finance.ledger",
    "main.hr.salaries",
    "main.marketing.campaigns",
    "main.product.events",
    "main.support.tickets",
    "main.ml.features",
];
const GROUPS: &[&str] = &["analysts", "data-engineers", "finance", "ml-team"];
const SECRETS: &[(&str, &str)] =
    &[("etl", "warehouse-password"), ("etl", "s3-key"), ("ml", "api-token"), ("bi", "dashboard-key")];
const FIRST: &[&str] = &[
    "ana", "ben", "chloe", "dev", "elena", "farid", "grace", "hiro", "ines", "jonas", "kira", "liam", "maya", "noah",
    "olga", "pablo", "quinn", "rosa", "sam", "tara", "umar", "vera", "wei", "xena", "yusuf", "zoe",
];
const LAST: &[&str] = &[
    "silva", "meyer", "okafor", "tanaka", "rossi", "novak", "haddad", "kumar", "larsen", "moreau", "garcia", "smith",
    "cohen", "ivanova",
];
const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
];
/// [`BROWSERS`] one version later.
const BROWSERS_NEXT: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/121.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0",
];
const CONNECTOR: &str = "databricks-sql-python/3.0.1";
/// Clients and networks of the token-theft incident.
const STOLEN_CLIENTS: &[&str] = &["python-requests/2.31.0", "curl/8.4.0", "Go-http-client/1.1"];
const SDKS: &[&str] =
    &["databricks-sdk-py/0.18.0", "Databricks-Jobs/1.0", "databricks-cli/0.212.0", "dbt-databricks/1.7.3"];

/// Poisson draw; a zero or negative mean gives 0.
fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).map(|d| d.sample(rng) as u64).unwrap_or(0)
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let v: u128 = rng.random();
    let h = format!("{v:032x}");
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn rfc3339(ms: i64) -> String {
    EventTime(ms).to_string()
}

struct World {
    cfg: GenerateConfig,
    rng: ChaCha8Rng,
    people: Vec<Principal>,
    jobs: Vec<Job>,
    holiday: i64,
    labels: Vec<Label>,
    /// Incident windows per principal, so that incidents never overlap.
    busy: Vec<(usize, i64, i64)>,
    /// Distinct (source IP, user agent) pairs records came from.
    sources: Vec<(String, &'static str)>,
    source_ids: FxHashMap<(String, &'static str), u32>,
    /// Table lineage: (time, who, source table, target table).
    lineage: Vec<(i64, usize, &'static str, &'static str)>,
}

/// Who works in HR (reads salaries unmasked) and who is an analyst (reads
/// them with the ssn column masked, and the shared schema).
fn in_hr(p: &Principal) -> bool {
    p.human && p.reads > 0.0 && p.name.len().is_multiple_of(5)
}

/// The access snapshot of the generated workspace: memberships, grants,
/// the personal column of salaries and its mask.
fn access_snapshot(w: &World) -> Vec<String> {
    let mut facts = vec![
        r#"{"type":"grant","securable":"main.hr","principal":"hr","privileges":["SELECT"]}"#.to_owned(),
        r#"{"type":"grant","securable":"main.hr.salaries","principal":"analysts","privileges":["SELECT"]}"#.to_owned(),
        r#"{"type":"grant","securable":"main.shared","principal":"analysts","privileges":["SELECT"]}"#.to_owned(),
        r#"{"type":"tag","securable":"main.hr.salaries.ssn","tag":"pii"}"#.to_owned(),
        r#"{"type":"mask","securable":"main.hr.salaries.ssn","unmasked_for":["hr"]}"#.to_owned(),
    ];
    for p in w.people.iter().filter(|p| p.human) {
        let group = if in_hr(p) { "hr" } else { "analysts" };
        facts.push(format!(r#"{{"type":"member","principal":"{}","group":"{group}"}}"#, p.name));
    }
    facts
}

/// Ordinary data flows: analysts build shared tables from sales and
/// product data, HR backs salaries up inside its schema (personal data
/// staying where only HR reads it), and analysts copy salaries, which
/// they see masked, into the shared schema (sharing up): none is a share-down.
fn simulate_lineage(w: &mut World) {
    let days = w.cfg.days as i64;
    for who in 0..w.people.len() {
        let p = w.people[who].clone();
        if !p.human || p.reads <= 0.0 {
            continue;
        }
        for day in p.first_day..days {
            if (day + who as i64) % 3 != 0 {
                continue;
            }
            let t = w.day_start(day)
                + (p.work.0 + 2 - p.tz).rem_euclid(24) * MS_PER_HOUR
                + w.rng.random_range(0..MS_PER_HOUR);
            let (source, target) = if in_hr(&p) {
                ("main.hr.salaries", "main.hr.salaries_backup")
            } else if (day + who as i64) % 7 == 0 {
                ("main.hr.salaries", "main.shared.salary_bands")
            } else {
                ("main.sales.orders", "main.shared.orders_daily")
            };
            w.lineage.push((t, who, source, target));
        }
    }
}

/// A share-down: someone in HR copies salaries, ssn unmasked, into the
/// schema analysts read.
fn inject_share_down(w: &mut World) {
    let n = w.people.len();
    let from = w.rng.random_range(0..n);
    let Some(who) = (0..n).map(|k| (from + k) % n).find(|&i| in_hr(&w.people[i]) && w.people[i].first_day == 0) else {
        return;
    };
    let day = w.incident_day();
    let t = w.day_start(day) + (w.people[who].work.0 + 4 - w.people[who].tz).rem_euclid(24) * MS_PER_HOUR;
    if !w.free(who, t, t + MS_PER_HOUR) {
        return;
    }
    w.lineage.push((t, who, "main.hr.salaries", "main.shared.salaries_export"));
    let d = format!(
        "{} copied main.hr.salaries, ssn unmasked, into main.shared.salaries_export, which analysts read",
        w.people[who].name
    );
    w.label(who, "share_down_write", t, t + MS_PER_HOUR, d);
}

impl World {
    fn new(cfg: &GenerateConfig) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let n = cfg.principals as usize;
        let n_sp = (n * 15).div_ceil(100).max(1);
        let mut people = Vec::with_capacity(n);
        let activity = LogNormal::new(1.2, 0.7).expect("valid lognormal");
        let tzs = [0i64, 1, -5, -8, 5, 0, 1];
        for i in 0..n {
            let human = i >= n_sp;
            let name = if human {
                format!("{}.{}{}@acme.example", FIRST[i % FIRST.len()], LAST[(i / FIRST.len() + i * 7) % LAST.len()], i)
            } else {
                uuid(&mut rng)
            };
            let workspace = if rng.random_bool(0.3) { WORKSPACE_B } else { WORKSPACE_A };
            let ips = (0..rng.random_range(1..=3))
                .map(|_| {
                    format!("10.{}.{}.{}", rng.random_range(0..32), rng.random_range(0..255), rng.random_range(1..255))
                })
                .collect();
            let start_hour = rng.random_range(7..=10);
            let q: f64 = activity.sample(&mut rng);
            let joins_late = human && i % 10 == 3 && cfg.days > 6;
            let browser = rng.random_range(0..BROWSERS.len());
            people.push(Principal {
                name,
                human,
                workspace,
                tz: tzs[rng.random_range(0..tzs.len())],
                work: (start_hour, start_hour + rng.random_range(8..=10)),
                queries: if human { q } else { 0.0 },
                notebook: if human && rng.random_bool(0.4) { activity.sample(&mut rng) * 0.6 } else { 0.0 },
                reads: if human { 0.8 + rng.random::<f64>() } else { 0.0 },
                grants: if human && i % 9 == 0 { 0.4 } else { 0.0 },
                downloads: if human { 0.05 + 0.15 * rng.random::<f64>() } else { 0.0 },
                first_day: if joins_late { rng.random_range(3..=(cfg.days as i64 / 2).max(3)) } else { 0 },
                monday_report: human && i % 7 == 2,
                growth: if human && i % 5 == 1 { 0.6 } else { 0.0 },
                ips,
                agent: if human { BROWSERS[browser] } else { SDKS[browser % SDKS.len()] },
                agent_next: if human { BROWSERS_NEXT[browser] } else { SDKS[browser % SDKS.len()] },
                upgrade_day: rng.random_range(0..=cfg.days as i64),
                roams: human && i % 6 == 4,
                connector_from: (human && i % 8 == 5).then_some(cfg.days as i64 / 2),
                serverless: human && rng.random_bool(0.2),
            });
        }
        let mut jobs = Vec::new();
        for (owner, p) in people.iter().enumerate().filter(|(_, p)| !p.human) {
            for k in 0..rng.random_range(1..=3u32) {
                let every_hours = [1, 2, 4, 6, 24][rng.random_range(0..5)];
                jobs.push(Job {
                    id: 100 + jobs.len() as u64 * 17 + k as u64,
                    owner,
                    workspace: p.workspace,
                    every_hours,
                    minute: rng.random_range(0..60),
                    runtime_s: 120.0 + rng.random::<f64>() * if every_hours >= 6 { 3000.0 } else { 900.0 },
                    dbu_per_hour: 2.0 + rng.random::<f64>() * 10.0,
                    // Nightly batches run a lot of SQL, steadily: a hard negative.
                    queries_per_run: if every_hours == 24 { rng.random_range(50..200) } else { rng.random_range(0..6) },
                });
            }
        }
        // A public holiday: the first weekday of the second week.
        let holiday = if cfg.days >= 10 { 8 } else { -1 };
        World {
            cfg: cfg.clone(),
            rng,
            people,
            jobs,
            holiday,
            labels: Vec::new(),
            busy: Vec::new(),
            sources: Vec::new(),
            source_ids: FxHashMap::default(),
            lineage: Vec::new(),
        }
    }

    fn source(&mut self, ip: String, agent: &'static str) -> u32 {
        if let Some(&i) = self.source_ids.get(&(ip.clone(), agent)) {
            return i;
        }
        let i = self.sources.len() as u32;
        self.sources.push((ip.clone(), agent));
        self.source_ids.insert((ip, agent), i);
        i
    }

    fn day_start(&self, day: i64) -> i64 {
        self.cfg.start.0 + day * MS_PER_DAY
    }

    /// Mean activity multiplier of a human at UTC time `t`.
    fn rhythm(&self, p: &Principal, day: i64, t: i64) -> f64 {
        if day < p.first_day {
            return 0.0;
        }
        let local = t + p.tz * MS_PER_HOUR;
        let lt = EventTime(local);
        let (h, dow) = (lt.hour_of_day() as i64, lt.day_of_week());
        let local_day = (local - self.cfg.start.0).div_euclid(MS_PER_DAY);
        if dow >= 5 {
            // Weekends: an occasional short look.
            return if (10..12).contains(&h) { 0.05 } else { 0.0 };
        }
        if local_day == self.holiday {
            return 0.02;
        }
        if h < p.work.0 || h >= p.work.1 {
            return if h == p.work.1 { 0.15 } else { 0.0 };
        }
        let lunch = if h == 12 { 0.5 } else { 1.0 };
        let morning = if h == p.work.0 { 0.6 } else { 1.0 };
        let growth = 1.0 + p.growth * day as f64 / self.cfg.days.max(1) as f64;
        let monday = if p.monday_report && dow == 0 && h == 9 { 3.0 } else { 1.0 };
        lunch * morning * growth * monday
    }

    /// A principal free of incidents in [start, end).
    fn free(&self, who: usize, start: i64, end: i64) -> bool {
        !self.busy.iter().any(|(w, s, e)| *w == who && *s < end + 6 * MS_PER_HOUR && start < *e + 6 * MS_PER_HOUR)
    }

    fn label(&mut self, who: usize, signal: &str, start: i64, end: i64, description: String) {
        self.busy.push((who, start, end));
        let n = self.labels.len() + 1;
        self.labels.push(Label {
            incident: format!("inc-{n:03}"),
            principal: self.people[who].name.clone(),
            signal: signal.to_owned(),
            start: rfc3339(start),
            end: rfc3339(end),
            description,
            workspace_id: self.people[who].workspace,
        });
    }

    /// Picks a principal (human or not) with the predicate, starting at a
    /// random index so that different seeds pick different ones.
    fn pick(&mut self, human: bool, ok: impl Fn(&Principal) -> bool) -> Option<usize> {
        let n = self.people.len();
        let from = self.rng.random_range(0..n);
        (0..n)
            .map(|k| (from + k) % n)
            .find(|&i| self.people[i].human == human && self.people[i].first_day == 0 && ok(&self.people[i]))
    }

    /// Draws (principal, hour start) with `draw` until the principal is free
    /// of other incidents around that hour; gives up after a few tries.
    fn place(&mut self, mut draw: impl FnMut(&mut World) -> Option<(usize, i64)>) -> Option<(usize, i64)> {
        for _ in 0..32 {
            if let Some((who, start)) = draw(self)
                && self.free(who, start, start + MS_PER_HOUR)
            {
                return Some((who, start));
            }
        }
        None
    }

    fn incident_day(&mut self) -> i64 {
        let days = self.cfg.days as i64;
        self.rng.random_range(5.min(days - 1)..days.max(6) - 1).clamp(0, days - 1)
    }
}

/// Generates the data set into `out` (created if missing). A `logs/`
/// folder already in `out` is removed first: files left from an earlier
/// data set would be replayed with this one's labels.
pub fn generate(cfg: &GenerateConfig, out: &Path) -> Result<GenerateSummary, GenerateError> {
    if cfg.days == 0 || cfg.principals == 0 {
        return Err(GenerateError::Empty);
    }
    let logs = out.join(LOGS_DIR);
    if logs.exists() {
        std::fs::remove_dir_all(&logs).map_err(|source| GenerateError::Io { path: logs.clone(), source })?;
    }
    let mut w = World::new(cfg);
    let days = cfg.days as i64;
    let mut recs: Vec<Vec<Rec>> = vec![Vec::new(); days as usize];
    let mut usage: Vec<Usage> = Vec::new();
    let mut slices: Vec<RunSlice> = Vec::new();
    let mut ids = Counter(1);

    simulate_people(&mut w, &mut recs, &mut usage, &mut ids);
    simulate_jobs(&mut w, &mut recs, &mut usage, &mut slices, &mut ids);
    simulate_lineage(&mut w);
    if cfg.days >= 7 && cfg.principals >= 20 {
        inject(&mut w, &mut recs, &mut usage, &mut slices, &mut ids);
        inject_share_down(&mut w);
    } else {
        // Small worlds still get the one incident every test relies on.
        inject_query_burst(&mut w, &mut recs, &mut ids);
    }
    write::all(&mut w, &mut recs, &mut usage, &mut slices, out)
}

/// Monotonic ids for commands, runs and notebooks.
struct Counter(u64);

impl Counter {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn push(w: &mut World, recs: &mut [Vec<Rec>], who: usize, time: i64, act: Act) {
    let day = (time - w.cfg.start.0).div_euclid(MS_PER_DAY);
    if day < 0 || day >= recs.len() as i64 {
        return;
    }
    let p = &w.people[who];
    let (roams, upgraded, connector) =
        (p.roams, day >= p.upgrade_day, p.connector_from.is_some_and(|d| day >= d) && matches!(act, Act::Query { .. }));
    let ip = if roams {
        // A different carrier-grade NAT network every day.
        format!("100.{}.{}.{}", 64 + (day * 7 + who as i64) % 60, (day * 31 + who as i64 * 3) % 250, 1 + who % 200)
    } else {
        p.ips[w.rng.random_range(0..p.ips.len())].clone()
    };
    let agent = if connector && w.rng.random_bool(0.3) {
        CONNECTOR
    } else if upgraded {
        w.people[who].agent_next
    } else {
        w.people[who].agent
    };
    push_from(w, recs, who, time, act, ip, agent);
}

/// A record from a given network and client.
fn push_from(w: &mut World, recs: &mut [Vec<Rec>], who: usize, time: i64, act: Act, ip: String, agent: &'static str) {
    let day = (time - w.cfg.start.0).div_euclid(MS_PER_DAY);
    if day < 0 || day >= recs.len() as i64 {
        return;
    }
    // Delivery disorder: up to five minutes.
    let order = time + w.rng.random_range(0..5 * MS_PER_MINUTE);
    let source = w.source(ip, agent);
    recs[day as usize].push(Rec { time, order, who, source, act });
}

fn simulate_people(w: &mut World, recs: &mut [Vec<Rec>], usage: &mut Vec<Usage>, ids: &mut Counter) {
    let days = w.cfg.days as i64;
    for who in 0..w.people.len() {
        if !w.people[who].human {
            continue;
        }
        let p = w.people[who].clone();
        let warehouse = (who % 4) as u32 + 1;
        for day in 0..days {
            let mut active_hours = 0;
            for hour in 0..24 {
                let t0 = w.day_start(day) + hour * MS_PER_HOUR;
                let r = w.rhythm(&p, day, t0);
                if r <= 0.0 {
                    continue;
                }
                active_hours += 1;
                let at = |w: &mut World| t0 + w.rng.random_range(0..MS_PER_HOUR);
                if active_hours == 1 {
                    let t = at(w);
                    push(w, recs, who, t, Act::Login { method: "samlLogin", failed: false, user: who });
                    if w.rng.random_bool(0.01) {
                        // A mistyped password now and then.
                        push(w, recs, who, t - 30_000, Act::Login { method: "login", failed: true, user: who });
                    }
                }
                for _ in 0..poisson(&mut w.rng, p.queries * r) {
                    let t = at(w);
                    let command = ids.next();
                    push(w, recs, who, t, Act::Query { warehouse, command });
                    let done = t + w.rng.random_range(200..20_000);
                    push(w, recs, who, done, Act::QueryFinish { warehouse, command });
                }
                for _ in 0..poisson(&mut w.rng, p.notebook * r) {
                    let t = at(w);
                    let command = ids.next();
                    push(w, recs, who, t, Act::Notebook { notebook: 1000 + who as u64, command });
                }
                for _ in 0..poisson(&mut w.rng, p.reads * r) {
                    let t = at(w);
                    let table = TABLES[w.rng.random_range(0..TABLES.len())];
                    push(w, recs, who, t, Act::ReadTable { table });
                }
                for _ in 0..poisson(&mut w.rng, p.grants * r) {
                    let t = at(w);
                    let table = TABLES[w.rng.random_range(0..TABLES.len())];
                    let grantee = w.rng.random_range(0..w.people.len());
                    push(w, recs, who, t, Act::Grant { table, grantee });
                }
                for _ in 0..poisson(&mut w.rng, p.downloads * r) {
                    let t = at(w);
                    push(w, recs, who, t, Act::Download);
                }
                if w.rng.random_bool(0.002) {
                    let t = at(w);
                    push(w, recs, who, t, Act::Token { lifetime_days: 90 });
                }
                if w.rng.random_bool(0.003) {
                    let t = at(w);
                    let (scope, key) = SECRETS[w.rng.random_range(0..SECRETS.len())];
                    push(w, recs, who, t, Act::Secret { scope, key });
                }
                if p.serverless && r > 0.5 {
                    usage.push(Usage {
                        end: t0 + MS_PER_HOUR,
                        start: t0,
                        workspace: p.workspace,
                        sku: "PREMIUM_SERVERLESS_NOTEBOOKS",
                        dbus: 0.5 + w.rng.random::<f64>() * 1.5,
                        run_as: Some(who),
                        job: None,
                        warehouse: None,
                    });
                }
            }
            if active_hours > 0 && w.rng.random_bool(0.3) {
                let t = w.day_start(day) + (p.work.0 - p.tz) * MS_PER_HOUR + 10 * MS_PER_MINUTE;
                push(w, recs, who, t, Act::ClusterStart { cluster: warehouse });
            }
        }
    }
    // Shared SQL warehouses bill hourly during the working day, to no one.
    for day in 0..days {
        for hour in 6..20 {
            let t0 = w.day_start(day) + hour * MS_PER_HOUR;
            if EventTime(t0).day_of_week() >= 5 {
                continue;
            }
            for warehouse in 1..=4u32 {
                usage.push(Usage {
                    end: t0 + MS_PER_HOUR,
                    start: t0,
                    workspace: WORKSPACE_A,
                    sku: "PREMIUM_SQL_PRO_COMPUTE",
                    dbus: 4.0 + w.rng.random::<f64>() * 4.0,
                    run_as: None,
                    job: None,
                    warehouse: Some(warehouse),
                });
            }
        }
    }
}

/// Simulates every scheduled run of every job.
fn simulate_jobs(
    w: &mut World,
    recs: &mut [Vec<Rec>],
    usage: &mut Vec<Usage>,
    slices: &mut Vec<RunSlice>,
    ids: &mut Counter,
) {
    let days = w.cfg.days as i64;
    let end_all = w.day_start(days);
    for j in 0..w.jobs.len() {
        let job = w.jobs[j].clone();
        let mut t = w.cfg.start.0 + job.minute * MS_PER_MINUTE;
        while t < end_all {
            let hour_index = (t - w.cfg.start.0) / MS_PER_HOUR;
            if hour_index % job.every_hours == 0 {
                let noise = LogNormal::new(0.0, 0.15).expect("valid lognormal").sample(&mut w.rng);
                let runtime = (job.runtime_s * noise * 1000.0) as i64;
                run_job(w, recs, usage, slices, ids, &job, t, runtime, 1.0);
            }
            t += MS_PER_HOUR;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_job(
    w: &mut World,
    recs: &mut [Vec<Rec>],
    usage: &mut Vec<Usage>,
    slices: &mut Vec<RunSlice>,
    ids: &mut Counter,
    job: &Job,
    start: i64,
    runtime_ms: i64,
    dbu_factor: f64,
) {
    let run = 10_000 + ids.next();
    let end = start + runtime_ms;
    let failed = w.rng.random_bool(0.02);
    let who = job.owner;
    if job.workspace == WORKSPACE_A {
        push(w, recs, who, start, Act::RunStart { job: job.id, run });
        push(w, recs, who, end, Act::RunEnd { job: job.id, run, failed });
    } else {
        // Workspace B reports runs in job_run_timeline, one slice per hour.
        let mut s = start;
        while s < end {
            let e = (s.div_euclid(MS_PER_HOUR) + 1) * MS_PER_HOUR;
            let e = e.min(end);
            slices.push(RunSlice { job: job.id, run, start: s, end: e, result: (e == end).then_some(!failed) });
            s = e;
        }
    }
    for _ in 0..w.rng.random_range(1..=2) {
        let (scope, key) = SECRETS[w.rng.random_range(0..2)];
        push(w, recs, who, start + 5_000, Act::Secret { scope, key });
    }
    for _ in 0..job.queries_per_run {
        let t = start + w.rng.random_range(0..runtime_ms.max(1));
        let command = ids.next();
        push(w, recs, who, t, Act::Query { warehouse: 9, command });
    }
    // Billing: one row per hour the run touches.
    let mut s = start;
    while s < end {
        let hour_end = (s.div_euclid(MS_PER_HOUR) + 1) * MS_PER_HOUR;
        let e = hour_end.min(end);
        let fraction = (e - s) as f64 / MS_PER_HOUR as f64;
        usage.push(Usage {
            end: hour_end,
            start: hour_end - MS_PER_HOUR,
            workspace: job.workspace,
            sku: "PREMIUM_JOBS_COMPUTE",
            dbus: job.dbu_per_hour * fraction * dbu_factor,
            run_as: Some(who),
            job: Some((job.id, run)),
            warehouse: None,
        });
        s = e;
    }
}

fn night_hour(w: &mut World, who: usize, day: i64) -> i64 {
    // 02:00–04:00 local: the principal is normally asleep.
    let local = w.rng.random_range(2..4);
    w.day_start(day) + (local - w.people[who].tz).rem_euclid(24) * MS_PER_HOUR
}

fn inject_query_burst(w: &mut World, recs: &mut [Vec<Rec>], ids: &mut Counter) {
    let Some(who) = w.pick(true, |p| p.queries > 0.5) else {
        return;
    };
    let day = w.incident_day();
    let start = night_hour(w, who, day);
    let hours = w.rng.random_range(1..=3);
    let end = start + hours * MS_PER_HOUR;
    let per_hour = ((w.people[who].queries * w.rng.random_range(15.0..40.0)) as u64).max(60);
    for h in 0..hours {
        for _ in 0..per_hour {
            let t = start + h * MS_PER_HOUR + w.rng.random_range(0..MS_PER_HOUR);
            let command = ids.next();
            push(w, recs, who, t, Act::Query { warehouse: 3, command });
        }
    }
    let description = format!(
        "{} ran about {per_hour} SQL queries an hour for {hours} h at night local time, against a usual {:.1} an hour in working hours",
        w.people[who].name, w.people[who].queries
    );
    w.label(who, "query_frequency", start, end, description);
}

fn inject(w: &mut World, recs: &mut [Vec<Rec>], usage: &mut Vec<Usage>, slices: &mut Vec<RunSlice>, ids: &mut Counter) {
    let bursts = (w.cfg.principals as usize / 40).max(1);
    for _ in 0..bursts {
        inject_query_burst(w, recs, ids);
    }
    // A burst of grants by someone who rarely grants.
    if let Some(who) = w.pick(true, |p| p.grants == 0.0) {
        let day = w.incident_day();
        let start = w.day_start(day) + w.rng.random_range(0..24) * MS_PER_HOUR;
        let n = w.rng.random_range(20..40);
        for _ in 0..n {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            let table = TABLES[w.rng.random_range(0..TABLES.len())];
            let grantee = w.rng.random_range(0..w.people.len());
            if w.rng.random_bool(0.3) {
                let group = GROUPS[w.rng.random_range(0..GROUPS.len())];
                push(w, recs, who, t, Act::GroupAdd { member: grantee, group });
            } else {
                push(w, recs, who, t, Act::Grant { table, grantee });
            }
        }
        let d =
            format!("{} made {n} grants and group changes in one hour; they normally make none", w.people[who].name);
        w.label(who, "permission_change", start, start + MS_PER_HOUR, d);
    }
    // A job run far longer than usual.
    if !w.jobs.is_empty() {
        let j = w.rng.random_range(0..w.jobs.len());
        let job = w.jobs[j].clone();
        let day = w.incident_day();
        let start = w.day_start(day) + w.rng.random_range(0..20) * MS_PER_HOUR + 30 * MS_PER_MINUTE;
        let factor = w.rng.random_range(5.0..10.0);
        let runtime = (job.runtime_s * factor * 1000.0) as i64;
        run_job(w, recs, usage, slices, ids, &job, start, runtime, 1.0);
        let d = format!(
            "job {} ran {:.0} min, {factor:.1}× its usual {:.0} min",
            job.id,
            runtime as f64 / 60_000.0,
            job.runtime_s / 60.0
        );
        w.label(job.owner, "job_runtime", start, start + runtime, d);
    }
    // A cost spike: one job of a service principal, run each hour on a far
    // larger cluster, multiplies the principal's hourly bill.
    if let Some(j) = (0..w.jobs.len()).find(|&j| w.jobs[j].every_hours <= 2) {
        let job = w.jobs[j].clone();
        let day = w.incident_day();
        let start = w.day_start(day) + w.rng.random_range(0..18) * MS_PER_HOUR;
        let ratio = w.rng.random_range(6.0..10.0);
        // The principal's usual DBUs per hour, over all its jobs.
        let usual: f64 = w
            .jobs
            .iter()
            .filter(|o| o.owner == job.owner)
            .map(|o| o.dbu_per_hour * (o.runtime_s / 3600.0).min(1.0) / o.every_hours as f64)
            .sum();
        let per_run = job.dbu_per_hour * (job.runtime_s / 3600.0).min(1.0);
        let factor = (ratio * usual / per_run).max(ratio);
        if w.free(job.owner, start, start + 4 * MS_PER_HOUR) {
            // Runs of the usual length on a far larger cluster: the cost
            // moves, the runtime does not.
            let runtime = (job.runtime_s * 1000.0) as i64;
            for h in 0..4 {
                let at = start + h * MS_PER_HOUR + 5 * MS_PER_MINUTE;
                run_job(w, recs, usage, slices, ids, &job, at, runtime, factor);
            }
            let d = format!(
                "job {} of this service principal ran an extra run each hour for 4 hours on a cluster {factor:.0}× its usual size, about {ratio:.0}× the principal's usual hourly DBUs",
                job.id
            );
            w.label(job.owner, "cost", start, start + 4 * MS_PER_HOUR, d);
        }
    }
    // Password spraying against one user from outside.
    let spray = w.place(|w| {
        let who = w.pick(true, |_| true)?;
        let day = w.incident_day();
        Some((who, w.day_start(day) + w.rng.random_range(0..24) * MS_PER_HOUR))
    });
    if let Some((who, start)) = spray {
        let n = w.rng.random_range(30..60);
        for _ in 0..n {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            push(w, recs, who, t, Act::Login { method: "login", failed: true, user: who });
        }
        let d = format!("{n} failed logins against {} in one hour", w.people[who].name);
        w.label(who, "failed_login", start, start + MS_PER_HOUR, d);
    }
    // Tokens with long lifetimes, by someone who never makes tokens.
    let simple: [Simple; 3] = [
        (
            "token_creation",
            |_| Act::Token { lifetime_days: 365 },
            5,
            9,
            "personal access tokens with a one-year lifetime",
        ),
        (
            "secret_read",
            |w| {
                let (scope, key) = SECRETS[w.rng.random_range(0..SECRETS.len())];
                Act::Secret { scope, key }
            },
            50,
            100,
            "secret reads",
        ),
        ("data_download", |_| Act::Download, 20, 40, "downloads and exports of query results"),
    ];
    for (signal, make, lo, hi, what) in simple {
        let placed = w.place(|w| {
            let who = w.pick(true, |_| true)?;
            let day = w.incident_day();
            Some((who, w.day_start(day) + (w.people[who].work.0 + 2 - w.people[who].tz).rem_euclid(24) * MS_PER_HOUR))
        });
        let Some((who, start)) = placed else { continue };
        let n = w.rng.random_range(lo..hi);
        for _ in 0..n {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            let act = make(w);
            push(w, recs, who, t, act);
        }
        let d = format!("{} made {n} {what} in one hour", w.people[who].name);
        w.label(who, signal, start, start + MS_PER_HOUR, d);
    }
    // A stolen token used from elsewhere: a settled user's identity acts
    // from a network and with a client it has never used.
    let theft = w.place(|w| {
        let who = w.pick(true, |p| !p.roams && p.connector_from.is_none())?;
        let day = w.incident_day();
        Some((who, w.day_start(day) + w.rng.random_range(0..24) * MS_PER_HOUR))
    });
    if let Some((who, start)) = theft {
        let ip = format!("185.220.{}.{}", w.rng.random_range(100..110), w.rng.random_range(2..250));
        let agent = STOLEN_CLIENTS[w.rng.random_range(0..STOLEN_CLIENTS.len())];
        let n = w.rng.random_range(4..12);
        for k in 0..n {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            let act = if k % 4 == 3 {
                Act::Download
            } else {
                let table = TABLES[w.rng.random_range(0..TABLES.len())];
                Act::ReadTable { table }
            };
            push_from(w, recs, who, t, act, ip.clone(), agent);
        }
        let d =
            format!("{}'s token used from {ip} with {agent}: {n} reads and downloads in one hour", w.people[who].name);
        w.label(who, "source", start, start + MS_PER_HOUR, d);
    }
    // A leaver whose credentials outlive them: removed from the account,
    // the person's token keeps working the next day.
    let admin = (0..w.people.len()).find(|&i| w.people[i].human && w.people[i].grants > 0.0);
    // Someone in no other incident: their records after the removal go.
    let labelled: Vec<usize> = w.busy.iter().map(|b| b.0).collect();
    let leaver = (0..w.people.len()).map(|k| (k * 7 + 3) % w.people.len()).find(|&i| {
        let p = &w.people[i];
        p.human
            && p.first_day == 0
            && !p.roams
            && p.connector_from.is_none()
            && p.grants == 0.0
            && !labelled.contains(&i)
    });
    if let (Some(admin), Some(who)) = (admin, leaver) {
        let day = w.incident_day().min(w.cfg.days as i64 - 2);
        let removed = w.day_start(day) + (17 - w.people[admin].tz).rem_euclid(24) * MS_PER_HOUR;
        let start = removed + 20 * MS_PER_HOUR;
        if day >= 0 && w.free(who, removed, start + MS_PER_HOUR) {
            // From the removal on, the leaver's own work stops.
            for day_recs in recs.iter_mut() {
                day_recs.retain(|r| r.who != who || r.time < removed);
            }
            push(w, recs, admin, removed, Act::RemoveUser { user: who });
            let n = w.rng.random_range(3..8);
            for _ in 0..n {
                let t = start + w.rng.random_range(0..MS_PER_HOUR);
                let table = TABLES[w.rng.random_range(0..TABLES.len())];
                push_from(
                    w,
                    recs,
                    who,
                    t,
                    Act::ReadTable { table },
                    w.people[who].ips[0].clone(),
                    "python-requests/2.31.0",
                );
            }
            let d = format!(
                "{} was removed from the account, and {n} table reads came with their token 20 hours later",
                w.people[who].name
            );
            w.label(who, "offboarded_principal", start, start + MS_PER_HOUR, d);
        }
    }
    // A revoked token still being tried: a person rotates a token that a
    // script (or someone) still holds; hours later it knocks again, and
    // Databricks refuses it. The hard negative next to it: a rotation done
    // right, the old token revoked and only the new one seen afterwards.
    let labelled: Vec<usize> = w.busy.iter().map(|b| b.0).collect();
    let rotators: Vec<usize> = (0..w.people.len())
        .filter(|&i| w.people[i].human && !w.people[i].roams && !labelled.contains(&i))
        .take(2)
        .collect();
    if let [holder, careful] = rotators[..] {
        let day = w.incident_day().min(w.cfg.days as i64 - 2);
        let revoked = w.day_start(day) + (10 - w.people[holder].tz).rem_euclid(24) * MS_PER_HOUR;
        let start = revoked + w.rng.random_range(6..20) * MS_PER_HOUR;
        if day >= 0 && w.free(holder, revoked, start + MS_PER_HOUR) {
            let old = 0x5eed_0000 + holder as u64;
            let agent = "python-requests/2.31.0";
            let ip = w.people[holder].ips[0].clone();
            for h in 0..3 {
                let t = revoked - (h + 1) * MS_PER_HOUR + w.rng.random_range(0..MS_PER_HOUR);
                push_from(w, recs, holder, t, Act::TokenLogin { token: old, failed: false }, ip.clone(), agent);
            }
            push(w, recs, holder, revoked, Act::RevokeToken { token: old });
            let n = w.rng.random_range(2..6);
            for _ in 0..n {
                let t = start + w.rng.random_range(0..MS_PER_HOUR);
                push_from(w, recs, holder, t, Act::TokenLogin { token: old, failed: true }, ip.clone(), agent);
            }
            let d = format!(
                "{} revoked a token at {}, and it was tried {n} times from their own network later",
                w.people[holder].name,
                EventTime(revoked)
            );
            w.label(holder, "offboarded_principal", start, start + MS_PER_HOUR, d);
        }
        let rotated = w.day_start(day) + (11 - w.people[careful].tz).rem_euclid(24) * MS_PER_HOUR;
        let (old, new) = (0x01d0_0000 + careful as u64, 0x0e30_0000 + careful as u64);
        let ip = w.people[careful].ips[0].clone();
        for h in -3..6 {
            let t = rotated + h * MS_PER_HOUR + w.rng.random_range(0..MS_PER_HOUR);
            let token = if t < rotated { old } else { new };
            push_from(w, recs, careful, t, Act::TokenLogin { token, failed: false }, ip.clone(), "curl/8.4.0");
        }
        push(w, recs, careful, rotated, Act::RevokeToken { token: old });
    }
    // Role drift: a service principal's secret used to sign in from a browser.
    if let Some(sp) = w.pick(false, |_| true) {
        let day = w.incident_day();
        let start = w.day_start(day) + w.rng.random_range(8..18) * MS_PER_HOUR;
        if w.free(sp, start, start + MS_PER_HOUR) {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            let ip = w.people[sp].ips[0].clone();
            push_from(w, recs, sp, t, Act::Login { method: "login", failed: false, user: sp }, ip, BROWSERS[0]);
            let d = format!("service principal {} signed in from a browser", w.people[sp].name);
            w.label(sp, "role_drift", start, start + MS_PER_HOUR, d);
        }
    }
    // Role drift: a person's token driving a script around the clock.
    if let Some(who) = w.pick(true, |p| p.queries > 0.5 && !p.roams) {
        let day = w.incident_day().min(w.cfg.days as i64 - 2);
        let start = w.day_start(day);
        let end = start + 30 * MS_PER_HOUR;
        if day >= 0 && w.free(who, start, end) {
            for h in 0..30 {
                for _ in 0..w.rng.random_range(1..4) {
                    let t = start + h * MS_PER_HOUR + w.rng.random_range(0..MS_PER_HOUR);
                    let command = ids.next();
                    let ip = w.people[who].ips[0].clone();
                    push_from(w, recs, who, t, Act::Query { warehouse: 2, command }, ip, "python-requests/2.31.0");
                }
            }
            let d = format!("{}'s token ran a query script every hour for 30 hours", w.people[who].name);
            w.label(who, "role_drift", start, end, d);
        }
    }
    // A new account taken over in its first days: too new for a baseline
    // of its own, it must be judged against its peers.
    let n = w.people.len();
    let from = w.rng.random_range(0..n);
    let newcomer = (0..n).map(|k| (from + k) % n).find(|&i| {
        let p = &w.people[i];
        p.human && p.first_day > 0 && p.first_day + 1 < w.cfg.days as i64 && p.queries > 0.3
    });
    if let Some(who) = newcomer {
        let day = w.people[who].first_day + 1;
        let start = night_hour(w, who, day);
        if w.free(who, start, start + MS_PER_HOUR) {
            let per_hour = ((w.people[who].queries * w.rng.random_range(20.0..40.0)) as u64).max(80);
            for _ in 0..per_hour {
                let t = start + w.rng.random_range(0..MS_PER_HOUR);
                let command = ids.next();
                push(w, recs, who, t, Act::Query { warehouse: 3, command });
            }
            let d = format!(
                "{}, an account created the day before, ran {per_hour} SQL queries in one hour at night local time",
                w.people[who].name
            );
            w.label(who, "query_frequency", start, start + MS_PER_HOUR, d);
        }
    }
}

/// An incident that is a burst of one action: signal, how to make one
/// action, fewest and most in the hour, what to call them.
type Simple = (&'static str, fn(&mut World) -> Act, u64, u64, &'static str);

/// Reads a labels file written by [`generate`].
pub fn read_labels(path: &Path) -> Result<Vec<Label>, GenerateError> {
    let text = std::fs::read_to_string(path).map_err(|source| GenerateError::Io { path: path.into(), source })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| GenerateError::Labels {
                path: path.into(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
