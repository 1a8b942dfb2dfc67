//! Synthetic Databricks activity with labelled incidents and labelled hard
//! negatives.
//!
//! Owns a seeded simulation of an account with two workspaces, written in
//! the real shapes (audit log as delivered for workspace A,
//! `system.access.audit` rows for workspace B, `system.billing.*` and
//! `system.lakeflow.job_run_timeline` rows). Every principal is drawn from a
//! behaviour archetype with parameters drawn per seed ([`archetype`]):
//! office workers, weekend workers, shift workers, on-call responders,
//! travellers, month-end analysts and teams with business seasons; service
//! principals running scheduled jobs, nightly backfills and bursty API
//! clients. Counts are overdispersed everywhere: a per-day and a per-hour
//! multiplier (gamma, or lognormal for API clients) on top of the plan, and
//! Poisson counts given those; heavy and light users differ by 10× and more.
//!
//! Incidents are injected on top, on principals picked across archetypes
//! and at times that fit each one (a burst during a night shift, on a
//! worked Saturday, on a trip), each sized against the principal's own rate
//! at that hour (8–14× it, and well above its busiest ordinary hour), and
//! listed in `labels.jsonl`. Windows of ordinary work that look unusual
//! (weekend and night work, on-call sessions, travel days, month-end close
//! days, long backfills) are listed in `hard_negatives.jsonl`: they are not
//! incidents. Every principal and its archetype is in `principals.jsonl`.
//!
//! The same configuration always writes the same bytes: one ChaCha stream
//! per seed drives everything (ids come from a stream derived from the
//! seed), and only ordered collections are iterated. The people (names,
//! archetypes, rates, parameters) are drawn before anything that depends
//! on the number of days, so a longer period has the same people. The data
//! is synthetic: no row describes a real person or workspace. Never reads
//! the wall clock, and never looks at a detector: it must not flatter them.

mod archetype;
mod inject;
mod write;

pub use archetype::{Archetype, HardNegativeKind};

use crate::event::PrincipalKind;
use crate::time::{EventTime, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE};
use archetype::{Behaviour, Calendar, Plan, Window, lognormal_one};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, LogNormal, Poisson};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    pub days: u32,
    pub principals: u32,
    pub seed: u64,
    /// First day (midnight UTC). The default, 2024-01-15, is a Monday, and
    /// puts a month end (January 31) in the third week of a 21-day period.
    pub start: EventTime,
    /// Gzip the delivered audit log files.
    pub gzip: bool,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig { days: 21, principals: 60, seed: 1, start: EventTime(1_705_276_800_000), gzip: false }
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

/// A window of ordinary behaviour that looks unusual, as written to
/// `hard_negatives.jsonl`. Not an incident: an alert pointing at it (and at
/// no incident) is a false alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardNegative {
    pub principal: String,
    pub kind: HardNegativeKind,
    /// RFC 3339.
    pub start: String,
    pub end: String,
    pub description: String,
}

/// A principal and its archetype, as written to `principals.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalRecord {
    /// Normalized name, as alerts and labels name it.
    pub principal: String,
    /// `user` or `service_principal`.
    pub kind: PrincipalKind,
    pub archetype: Archetype,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    pub events_by_file_kind: Vec<(String, u64)>,
    pub incidents: Vec<Label>,
    pub hard_negatives: Vec<HardNegative>,
    pub principals: Vec<PrincipalRecord>,
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
/// `labels.jsonl`, `hard_negatives.jsonl`, `principals.jsonl` and
/// `README.txt` sit beside it.
pub const LOGS_DIR: &str = "logs";
/// The access snapshot beside the logs (`replay --access-snapshot`).
pub const ACCESS_SNAPSHOT: &str = "access_snapshot.jsonl";
/// The injected incidents.
pub const LABELS: &str = "labels.jsonl";
/// Windows of ordinary behaviour that look unusual.
pub const HARD_NEGATIVES: &str = "hard_negatives.jsonl";
/// Every principal with its kind and archetype.
pub const PRINCIPALS: &str = "principals.jsonl";

/// Workspace written as delivered audit logs.
pub const WORKSPACE_A: u64 = 1_234_567_890_123_456;
/// Workspace written as `system.access.audit` rows.
pub const WORKSPACE_B: u64 = 2_345_678_901_234_567;
const ACCOUNT_ID: &str = "9f1c4d2e-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

/// Mean events per hour of full activity (plan 1.0), by kind.
#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    queries: f64,
    notebook: f64,
    reads: f64,
    /// Grants (admins grant; others never do).
    grants: f64,
    downloads: f64,
    secrets: f64,
    tokens: f64,
}

/// How an hour's volume varies around the plan, on top of the day's.
#[derive(Debug, Clone, Copy)]
enum HourNoise {
    /// Mean-one gamma of this shape.
    Gamma(f64),
    /// Mean-one lognormal of this sigma: heavy-tailed (API clients).
    LogNormal(f64),
}

/// Who a principal is and how it behaves.
#[derive(Debug, Clone)]
struct Principal {
    name: String,
    human: bool,
    archetype: Archetype,
    behaviour: Behaviour,
    workspace: u64,
    /// Hours added to UTC to get local time, at home.
    tz: i64,
    /// Local working hours [start, end) on an ordinary day.
    work: (i64, i64),
    rates: Rates,
    /// Shape of the mean-one gamma multiplier of each day (2–6: smaller is
    /// burstier).
    day_shape: f64,
    hour_noise: HourNoise,
    /// The plan of the period (filled once the calendar is known).
    plan: Plan,
    /// Day index from which the principal exists.
    first_day: i64,
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

impl Principal {
    /// Runs jobs rather than following a plan of its own.
    fn runs_jobs(&self) -> bool {
        matches!(self.archetype, Archetype::ScheduledJobs | Archetype::NightlyBackfill)
    }
}

#[derive(Debug, Clone)]
struct Job {
    id: u64,
    owner: usize,
    workspace: u64,
    /// Runs every `every_hours` hours from hour `offset_hours` of the
    /// period, at minute `minute`.
    every_hours: i64,
    offset_hours: i64,
    minute: i64,
    runtime_s: f64,
    dbu_per_hour: f64,
    /// Mean queries issued during each run (dashboard refreshes, batch SQL).
    queries_per_run: f64,
    /// A nightly backfill: (chance of a longer night, how much longer at most).
    nightly: Option<(f64, f64)>,
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

/// Clients of the API-client service principals.
const API_CLIENTS: &[&str] = &["databricks-sql-go/1.5.2", "databricks-sql-nodejs/1.8.1", "databricks-jdbc/2.6.36"];

/// What the simulation produced, before it is rendered.
struct Sim {
    /// Records per day of the period.
    recs: Vec<Vec<Rec>>,
    usage: Vec<Usage>,
    slices: Vec<RunSlice>,
    ids: Counter,
}

/// The kinds of activity an incident's size is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// SQL queries and notebook commands.
    Query,
    Read,
    /// Grants and group changes.
    Grant,
    Download,
    Secret,
    Token,
    FailedLogin,
}

const KINDS: usize = 7;

impl Kind {
    fn of(act: &Act) -> Option<Kind> {
        Some(match act {
            Act::Query { .. } | Act::Notebook { .. } => Kind::Query,
            Act::ReadTable { .. } => Kind::Read,
            Act::Grant { .. } | Act::GroupAdd { .. } => Kind::Grant,
            Act::Download => Kind::Download,
            Act::Secret { .. } => Kind::Secret,
            Act::Token { .. } => Kind::Token,
            Act::Login { failed: true, .. } => Kind::FailedLogin,
            _ => return None,
        })
    }

    fn rate(self, r: &Rates) -> f64 {
        match self {
            Kind::Query => r.queries + r.notebook,
            Kind::Read => r.reads,
            Kind::Grant => r.grants,
            Kind::Download => r.downloads,
            Kind::Secret => r.secrets,
            Kind::Token => r.tokens,
            Kind::FailedLogin => 0.0,
        }
    }
}

struct World {
    cfg: GenerateConfig,
    rng: ChaCha8Rng,
    people: Vec<Principal>,
    jobs: Vec<Job>,
    labels: Vec<Label>,
    /// Incident windows per principal, so that incidents never overlap.
    busy: Vec<(usize, i64, i64)>,
    /// Incidents so far per archetype, to spread them across archetypes.
    used: BTreeMap<Archetype, u32>,
    /// Hard-negative candidates: (principal, window).
    windows: Vec<(usize, Window)>,
    /// Principals removed from the account, and when: no hard negative after.
    removed: Vec<(usize, i64)>,
    /// Ordinary activity per (principal, hour index) by [`Kind`], before
    /// any incident: what incidents are sized against.
    counts: BTreeMap<(usize, i64), [u32; KINDS]>,
    /// Ordinary billed DBUs per (principal, hour end).
    dbus: BTreeMap<(usize, i64), f64>,
    /// Distinct (source IP, user agent) pairs records came from.
    sources: Vec<(String, &'static str)>,
    source_ids: FxHashMap<(String, &'static str), u32>,
    /// Table lineage: (time, who, source table, target table).
    lineage: Vec<(i64, usize, &'static str, &'static str)>,
}

/// Who works in HR (reads salaries unmasked) and who is an analyst (reads
/// them with the ssn column masked, and the shared schema).
fn in_hr(p: &Principal) -> bool {
    p.human && p.rates.reads > 0.0 && p.name.len().is_multiple_of(5)
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
        if !p.human {
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

/// Splits `n` slots among `kinds` by `shares` (drawn per seed) and
/// shuffles them. The first kind (office workers, scheduled jobs) takes
/// the rest and at least one slot; the others get at least one each when
/// there are enough slots.
fn deck(rng: &mut ChaCha8Rng, n: usize, kinds: &[Archetype], shares: &[f64]) -> Vec<Archetype> {
    let total: f64 = shares.iter().sum();
    let each = usize::from(n >= 2 * kinds.len());
    let mut counts: Vec<usize> = shares.iter().map(|s| ((s / total * n as f64).round() as usize).max(each)).collect();
    counts[0] = 0;
    while counts.iter().sum::<usize>() + 1 > n && counts.iter().any(|&c| c > 0) {
        let largest = (1..counts.len()).max_by_key(|&i| counts[i]).unwrap_or(0);
        counts[largest] -= 1;
    }
    counts[0] = n - counts.iter().sum::<usize>();
    let mut deck: Vec<Archetype> = kinds.iter().zip(&counts).flat_map(|(k, &c)| std::iter::repeat_n(*k, c)).collect();
    for i in (1..deck.len()).rev() {
        let j = rng.random_range(0..=i);
        deck.swap(i, j);
    }
    deck
}

impl World {
    fn new(cfg: &GenerateConfig) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let n = cfg.principals as usize;
        let n_sp = (n * 15).div_ceil(100).max(1);
        // Who is who: shares per seed, at least one of each archetype when
        // there are enough people.
        let humans = [
            Archetype::Office,
            Archetype::WeekendWorker,
            Archetype::ShiftWorker,
            Archetype::OnCall,
            Archetype::Traveller,
            Archetype::EndOfQuarter,
            Archetype::BusinessSeasons,
        ];
        let mut shares = vec![rng.random_range(0.30..0.45)];
        shares.extend((1..humans.len()).map(|_| rng.random_range(0.07..0.13)));
        let human_deck = deck(&mut rng, n - n_sp.min(n), &humans, &shares);
        let services = if n_sp >= 3 {
            vec![Archetype::ScheduledJobs, Archetype::NightlyBackfill, Archetype::BurstyApiClient]
        } else {
            vec![Archetype::ScheduledJobs, Archetype::NightlyBackfill]
        };
        let shares: Vec<f64> = services.iter().map(|_| rng.random_range(0.25..0.45)).collect();
        let sp_deck = deck(&mut rng, n_sp.min(n), &services, &shares);

        let mut people = Vec::with_capacity(n);
        let heavy = LogNormal::new(2.5f64.ln(), 1.0).expect("valid lognormal");
        let tzs = [0i64, 1, -5, -8, 5, 0, 1];
        for i in 0..n {
            let human = i >= n_sp;
            let archetype = if human { human_deck[i - n_sp] } else { sp_deck[i] };
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
            let work = (start_hour, start_hour + rng.random_range(8..=10));
            let tz = tzs[rng.random_range(0..tzs.len())];
            let browser = rng.random_range(0..BROWSERS.len());
            let rates = if human {
                Rates {
                    queries: heavy.sample(&mut rng).clamp(0.1, 60.0),
                    notebook: if rng.random_bool(0.4) { heavy.sample(&mut rng).clamp(0.1, 30.0) * 0.6 } else { 0.0 },
                    reads: LogNormal::new(0.2, 0.6).expect("valid lognormal").sample(&mut rng),
                    grants: if i % 9 == 0 { rng.random_range(0.2..0.6) } else { 0.0 },
                    downloads: rng.random_range(0.02..0.25),
                    secrets: 0.003,
                    tokens: 0.002,
                }
            } else if archetype == Archetype::BurstyApiClient {
                Rates {
                    queries: LogNormal::new(25f64.ln(), 0.8).expect("valid lognormal").sample(&mut rng),
                    reads: LogNormal::new(5f64.ln(), 0.6).expect("valid lognormal").sample(&mut rng),
                    ..Default::default()
                }
            } else {
                Rates::default()
            };
            let agent = if human {
                BROWSERS[browser]
            } else if archetype == Archetype::BurstyApiClient {
                API_CLIENTS[browser % API_CLIENTS.len()]
            } else {
                SDKS[browser % SDKS.len()]
            };
            let behaviour = Behaviour::draw(archetype, &mut rng);
            let hour_noise = match behaviour {
                Behaviour::BurstyApiClient { sigma, .. } => HourNoise::LogNormal(sigma),
                _ => HourNoise::Gamma(rng.random_range(2.0..5.0)),
            };
            people.push(Principal {
                name,
                human,
                archetype,
                behaviour,
                workspace,
                tz,
                work,
                rates,
                day_shape: rng.random_range(2.0..6.0),
                hour_noise,
                plan: Plan::default(),
                first_day: 0,
                ips,
                agent,
                agent_next: if human { BROWSERS_NEXT[browser] } else { agent },
                upgrade_day: 0,
                roams: human && i % 6 == 4 && archetype != Archetype::Traveller,
                connector_from: None,
                serverless: human && rng.random_bool(0.2),
            });
        }
        let mut jobs = Vec::new();
        for (owner, p) in people.iter().enumerate() {
            match p.archetype {
                Archetype::ScheduledJobs => {
                    for k in 0..rng.random_range(1..=3u32) {
                        let every_hours = [1, 2, 4, 6, 24][rng.random_range(0..5)];
                        jobs.push(Job {
                            id: 100 + jobs.len() as u64 * 17 + k as u64,
                            owner,
                            workspace: p.workspace,
                            every_hours,
                            offset_hours: 0,
                            minute: rng.random_range(0..60),
                            runtime_s: 120.0 + rng.random::<f64>() * if every_hours >= 6 { 3000.0 } else { 900.0 },
                            dbu_per_hour: 2.0 + rng.random::<f64>() * 10.0,
                            // Daily batches run a lot of SQL, steadily.
                            queries_per_run: if every_hours == 24 {
                                rng.random_range(50.0..200.0)
                            } else {
                                rng.random_range(0.0..6.0)
                            },
                            nightly: None,
                        });
                    }
                }
                Archetype::NightlyBackfill => {
                    let Behaviour::NightlyBackfill { long_chance, long_factor } = p.behaviour else { continue };
                    for k in 0..rng.random_range(1..=2u32) {
                        let runtime_s = rng.random_range(3600.0..4.0 * 3600.0);
                        jobs.push(Job {
                            id: 100 + jobs.len() as u64 * 17 + k as u64,
                            owner,
                            workspace: p.workspace,
                            every_hours: 24,
                            // 00:00–04:00 local.
                            offset_hours: (rng.random_range(0..=4) - p.tz).rem_euclid(24),
                            minute: rng.random_range(0..60),
                            runtime_s,
                            dbu_per_hour: rng.random_range(8.0..40.0),
                            queries_per_run: runtime_s / 3600.0 * rng.random_range(100.0..400.0),
                            nightly: Some((long_chance, long_factor)),
                        });
                    }
                }
                _ => {}
            }
        }

        // The calendar, and what depends on it.
        let days = cfg.days as i64;
        let holiday = if days >= 10 { 7 + rng.random_range(0..5) } else { -1 };
        let cal = Calendar { start: cfg.start.0, days, holiday };
        for (i, p) in people.iter_mut().enumerate() {
            let joins_late = p.human && i % 10 == 3 && days > 6;
            p.first_day = if joins_late { rng.random_range(3..=(days / 2).max(3)) } else { 0 };
            p.upgrade_day = rng.random_range(0..=days);
            p.connector_from = (p.human && i % 8 == 5).then_some(days / 2);
            p.plan = archetype::plan(&p.behaviour, p.tz, p.work, &cal, &mut rng);
            let joined = p.first_day * 24;
            p.plan.hourly.iter_mut().take(joined as usize).for_each(|v| *v = 0.0);
        }
        let joined: Vec<i64> = people.iter().map(|p| cal.start + p.first_day * MS_PER_DAY).collect();
        let windows = people
            .iter_mut()
            .enumerate()
            .flat_map(|(who, p)| std::mem::take(&mut p.plan.windows).into_iter().map(move |win| (who, win)))
            .filter(|(who, win)| win.start >= joined[*who])
            .collect();
        World {
            cfg: cfg.clone(),
            rng,
            people,
            jobs,
            labels: Vec::new(),
            busy: Vec::new(),
            used: BTreeMap::new(),
            windows,
            removed: Vec::new(),
            counts: BTreeMap::new(),
            dbus: BTreeMap::new(),
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

    fn hours(&self) -> i64 {
        self.cfg.days as i64 * 24
    }

    /// Index of the hour holding `t` since the start.
    fn hour_index(&self, t: i64) -> i64 {
        (t - self.cfg.start.0).div_euclid(MS_PER_HOUR)
    }

    /// A principal free of incidents in [start, end), with six hours to spare.
    fn free(&self, who: usize, start: i64, end: i64) -> bool {
        !self.busy.iter().any(|(w, s, e)| *w == who && *s < end + 6 * MS_PER_HOUR && start < *e + 6 * MS_PER_HOUR)
    }

    fn label(&mut self, who: usize, signal: &str, start: i64, end: i64, description: String) {
        self.busy.push((who, start, end));
        *self.used.entry(self.people[who].archetype).or_default() += 1;
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

    /// Picks a principal present from the start that `ok` accepts, from an
    /// archetype with few incidents so far: incidents spread over the
    /// archetypes, and different seeds pick different principals.
    fn pick(&mut self, ok: impl Fn(usize, &Principal) -> bool) -> Option<usize> {
        let mut groups: BTreeMap<Archetype, Vec<usize>> = BTreeMap::new();
        for (i, p) in self.people.iter().enumerate() {
            if p.first_day == 0 && ok(i, p) {
                groups.entry(p.archetype).or_default().push(i);
            }
        }
        let weights: Vec<f64> =
            groups.keys().map(|a| 1.0 / (1.0 + *self.used.get(a).unwrap_or(&0) as f64).powi(3)).collect();
        let total: f64 = weights.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        let mut chosen = groups.values().last()?;
        for (g, wt) in groups.values().zip(&weights) {
            if x < *wt {
                chosen = g;
                break;
            }
            x -= wt;
        }
        Some(chosen[self.rng.random_range(0..chosen.len())])
    }

    /// Draws (principal, start) with `draw` until the principal is free of
    /// other incidents around [start, start + `hours`); gives up after a
    /// few tries.
    fn place(&mut self, hours: i64, mut draw: impl FnMut(&mut World) -> Option<(usize, i64)>) -> Option<(usize, i64)> {
        for _ in 0..32 {
            if let Some((who, start)) = draw(self)
                && self.free(who, start, start + hours * MS_PER_HOUR)
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

    /// Whether the principal ordinarily works in hour `i`.
    fn active(&self, who: usize, i: i64) -> bool {
        let p = &self.people[who];
        if p.runs_jobs() {
            self.counts.contains_key(&(who, i))
        } else {
            p.plan.hourly.get(i as usize).is_some_and(|&v| v >= 0.3)
        }
    }

    /// Start of an hour for an incident of `hours` on `who`, after the
    /// first five days: inside one of its unusual-looking windows (what
    /// makes its archetype hard: a night shift, a worked Saturday, a trip),
    /// in an hour it ordinarily works, or in one it is ordinarily idle.
    fn incident_hour(&mut self, who: usize, hours: i64) -> i64 {
        let lo = 5.min(self.cfg.days as i64 - 1) * 24;
        let hi = (self.hours() - hours).max(lo + 1);
        let inside = |i: i64| (lo..hi).contains(&i);
        let roll = self.rng.random::<f64>();
        let windows: Vec<i64> = self
            .windows
            .iter()
            .filter(|(w, _)| *w == who)
            .flat_map(|(_, win)| (self.hour_index(win.start)..self.hour_index(win.end - 1) + 1).collect::<Vec<_>>())
            .filter(|&i| inside(i))
            .collect();
        let candidates: Vec<i64> = if roll < 0.45 && !windows.is_empty() {
            windows
        } else {
            let want_active = roll < 0.75;
            (lo..hi).filter(|&i| self.active(who, i) == want_active).collect()
        };
        let i = if candidates.is_empty() {
            self.rng.random_range(lo..hi)
        } else {
            candidates[self.rng.random_range(0..candidates.len())]
        };
        self.cfg.start.0 + i * MS_PER_HOUR
    }

    /// How many events of `kind` an incident puts in hour `i` of `who`, and
    /// the usual level it is measured against. The usual level is the
    /// principal's own: its planned rate at that hour (a month-end day, an
    /// on-call session) or its mean over the hours it works, whichever is
    /// higher. The incident is 8–14× that, at least 1.3–2× the busiest
    /// ordinary hour it ever had, and at least a few of `floor` (a tenfold
    /// of nearly nothing is still nearly nothing).
    fn volume(&mut self, who: usize, kind: Kind, i: i64, floor: (f64, f64)) -> (u64, f64) {
        let k = kind as usize;
        let (mut sum, mut active, mut max, mut same_sum, mut same_n) = (0u64, 0u64, 0u32, 0u64, 0u64);
        for (&(_, h), c) in self.counts.range((who, i64::MIN)..=(who, i64::MAX)) {
            sum += c[k] as u64;
            active += 1;
            max = max.max(c[k]);
            if h.rem_euclid(24) == i.rem_euclid(24) {
                same_sum += c[k] as u64;
                same_n += 1;
            }
        }
        let p = &self.people[who];
        let here = if p.runs_jobs() {
            same_sum as f64 / same_n.max(1) as f64
        } else {
            kind.rate(&p.rates) * p.plan.hourly.get(i as usize).copied().unwrap_or(0.0) as f64
        };
        let usual = here.max(sum as f64 / active.max(1) as f64);
        let ratio = self.rng.random_range(8.0..14.0);
        let margin = self.rng.random_range(1.3..2.0);
        let floor = self.rng.random_range(floor.0..floor.1);
        let n = (ratio * usual).max(margin * max as f64).max(floor).ceil() as u64;
        (n, usual)
    }

    /// Counts the ordinary activity incidents are sized against.
    fn count_ordinary(&mut self, sim: &Sim) {
        for r in sim.recs.iter().flatten() {
            let slot = self.counts.entry((r.who, self.hour_index(r.time))).or_default();
            if let Some(k) = Kind::of(&r.act) {
                slot[k as usize] += 1;
            }
        }
        for u in &sim.usage {
            if let Some(who) = u.run_as {
                *self.dbus.entry((who, u.end)).or_default() += u.dbus;
            }
        }
    }

    /// What a hard-negative window is called in the files: dropped when it
    /// overlaps an incident of the same principal (it is no longer
    /// ordinary) or comes after the principal's removal.
    fn hard_negatives(&self) -> Vec<HardNegative> {
        let mut out: Vec<(i64, usize, HardNegative)> = self
            .windows
            .iter()
            .filter(|(who, win)| !self.busy.iter().any(|(w, s, e)| w == who && *s < win.end && win.start < *e))
            .filter(|(who, win)| !self.removed.iter().any(|(w, t)| w == who && win.end > *t))
            .map(|(who, win)| {
                let hn = HardNegative {
                    principal: self.people[*who].name.clone(),
                    kind: win.kind,
                    start: rfc3339(win.start),
                    end: rfc3339(win.end),
                    description: format!("{}: {}", self.people[*who].name, win.description),
                };
                (win.start, *who, hn)
            })
            .collect();
        out.sort_by_key(|a| (a.0, a.1, a.2.kind));
        out.into_iter().map(|(_, _, hn)| hn).collect()
    }

    fn principal_records(&self) -> Vec<PrincipalRecord> {
        self.people
            .iter()
            .map(|p| PrincipalRecord {
                principal: p.name.clone(),
                kind: if p.human { PrincipalKind::User } else { PrincipalKind::ServicePrincipal },
                archetype: p.archetype,
            })
            .collect()
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
    let mut sim =
        Sim { recs: vec![Vec::new(); cfg.days as usize], usage: Vec::new(), slices: Vec::new(), ids: Counter(1) };
    simulate_people(&mut w, &mut sim);
    simulate_jobs(&mut w, &mut sim);
    simulate_lineage(&mut w);
    w.count_ordinary(&sim);
    if cfg.days >= 7 && cfg.principals >= 20 {
        inject::all(&mut w, &mut sim);
    } else {
        // Small worlds still get the one incident every test relies on.
        inject::query_burst(&mut w, &mut sim);
    }
    write::all(&mut w, &mut sim, out)
}

/// Monotonic ids for commands, runs and notebooks.
struct Counter(u64);

impl Counter {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// A record from the principal's usual networks and client for that day
/// (a roaming network, a trip's networks, the updated browser, the SQL
/// connector).
fn push(w: &mut World, sim: &mut Sim, who: usize, time: i64, act: Act) {
    let day = (time - w.cfg.start.0).div_euclid(MS_PER_DAY);
    if day < 0 || day >= sim.recs.len() as i64 {
        return;
    }
    let p = &w.people[who];
    let (upgraded, connector) =
        (day >= p.upgrade_day, p.connector_from.is_some_and(|d| day >= d) && matches!(act, Act::Query { .. }));
    let trip = p.plan.trip.as_ref().filter(|(s, e, _)| (*s..*e).contains(&time));
    let ip = if let Some((_, _, ips)) = trip {
        // A hotel network one day, a partner's office the next.
        ips[((day + w.rng.random_range(0..2)) % ips.len() as i64) as usize].clone()
    } else if p.roams {
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
    push_from(w, sim, who, time, act, ip, agent);
}

/// A record from a given network and client.
fn push_from(w: &mut World, sim: &mut Sim, who: usize, time: i64, act: Act, ip: String, agent: &'static str) {
    let day = (time - w.cfg.start.0).div_euclid(MS_PER_DAY);
    if day < 0 || day >= sim.recs.len() as i64 {
        return;
    }
    // Delivery disorder: up to five minutes.
    let order = time + w.rng.random_range(0..5 * MS_PER_MINUTE);
    let source = w.source(ip, agent);
    sim.recs[day as usize].push(Rec { time, order, who, source, act });
}

/// A SQL query: submitted, and finished a little later.
fn query(w: &mut World, sim: &mut Sim, who: usize, t: i64, warehouse: u32) {
    let command = sim.ids.next();
    push(w, sim, who, t, Act::Query { warehouse, command });
    let done = t + w.rng.random_range(200..20_000);
    push(w, sim, who, done, Act::QueryFinish { warehouse, command });
}

/// A time in the hour from `t0`: uniform, or in one of two clusters a few
/// minutes wide (an on-call responder's bursts).
fn moment(w: &mut World, t0: i64, clusters: Option<[i64; 2]>) -> i64 {
    match clusters {
        None => t0 + w.rng.random_range(0..MS_PER_HOUR),
        Some(c) => {
            let centre = c[w.rng.random_range(0..2)];
            (centre + w.rng.random_range(0..6 * MS_PER_MINUTE)).min(t0 + MS_PER_HOUR - 1)
        }
    }
}

/// People and API clients, hour by hour: the plan, times a day and an
/// hour multiplier, then Poisson counts per kind of activity.
fn simulate_people(w: &mut World, sim: &mut Sim) {
    let days = w.cfg.days as i64;
    for who in 0..w.people.len() {
        if w.people[who].runs_jobs() {
            continue;
        }
        let p = w.people[who].clone();
        let warehouse = if p.human { (who % 4) as u32 + 1 } else { 5 + (who % 3) as u32 };
        let day_noise = Gamma::new(p.day_shape, 1.0 / p.day_shape).expect("valid gamma");
        // Local days, so that a night shift is one day.
        let busyness: Vec<f64> = (0..days + 2).map(|_| day_noise.sample(&mut w.rng)).collect();
        let hour_gamma = match p.hour_noise {
            HourNoise::Gamma(k) => Some(Gamma::new(k, 1.0 / k).expect("valid gamma")),
            HourNoise::LogNormal(_) => None,
        };
        let hour_lognormal = match p.hour_noise {
            HourNoise::LogNormal(s) => Some(lognormal_one(s)),
            HourNoise::Gamma(_) => None,
        };
        let mut last_login_day = -1;
        for i in 0..w.hours() {
            let r = p.plan.hourly[i as usize] as f64;
            if r <= 0.0 {
                continue;
            }
            let t0 = w.cfg.start.0 + i * MS_PER_HOUR;
            let day = (i + p.tz).div_euclid(24);
            let noise = match (&hour_gamma, &hour_lognormal) {
                (Some(g), _) => g.sample(&mut w.rng),
                (_, Some(l)) => l.sample(&mut w.rng),
                _ => 1.0,
            };
            let m = r * busyness[(day + 1).clamp(0, days + 1) as usize] * noise;
            let clusters = p
                .plan
                .sessions
                .iter()
                .any(|&(s, e)| s < t0 + MS_PER_HOUR && t0 < e)
                .then(|| [t0 + w.rng.random_range(0..MS_PER_HOUR), t0 + w.rng.random_range(0..MS_PER_HOUR)]);
            let block_start = i == 0 || p.plan.hourly[i as usize - 1] <= 0.0;
            if p.human && block_start && r >= 0.3 {
                let t = moment(w, t0, clusters);
                push(w, sim, who, t, Act::Login { method: "samlLogin", failed: false, user: who });
                if w.rng.random_bool(0.01) {
                    // A mistyped password now and then.
                    push(w, sim, who, t - 30_000, Act::Login { method: "login", failed: true, user: who });
                }
                if day != last_login_day && w.rng.random_bool(0.3) {
                    push(w, sim, who, t + 10 * MS_PER_MINUTE, Act::ClusterStart { cluster: warehouse });
                }
                last_login_day = day;
            }
            for _ in 0..poisson(&mut w.rng, p.rates.queries * m) {
                let t = moment(w, t0, clusters);
                query(w, sim, who, t, warehouse);
            }
            for _ in 0..poisson(&mut w.rng, p.rates.notebook * m) {
                let t = moment(w, t0, clusters);
                let command = sim.ids.next();
                push(w, sim, who, t, Act::Notebook { notebook: 1000 + who as u64, command });
            }
            for _ in 0..poisson(&mut w.rng, p.rates.reads * m) {
                let t = moment(w, t0, clusters);
                let table = TABLES[w.rng.random_range(0..TABLES.len())];
                push(w, sim, who, t, Act::ReadTable { table });
            }
            for _ in 0..poisson(&mut w.rng, p.rates.grants * m) {
                let t = moment(w, t0, clusters);
                let table = TABLES[w.rng.random_range(0..TABLES.len())];
                let grantee = w.rng.random_range(0..w.people.len());
                push(w, sim, who, t, Act::Grant { table, grantee });
            }
            for _ in 0..poisson(&mut w.rng, p.rates.downloads * m) {
                let t = moment(w, t0, clusters);
                push(w, sim, who, t, Act::Download);
            }
            for _ in 0..poisson(&mut w.rng, p.rates.tokens * m) {
                let t = moment(w, t0, clusters);
                push(w, sim, who, t, Act::Token { lifetime_days: 90 });
            }
            for _ in 0..poisson(&mut w.rng, p.rates.secrets * m) {
                let t = moment(w, t0, clusters);
                let (scope, key) = SECRETS[w.rng.random_range(0..SECRETS.len())];
                push(w, sim, who, t, Act::Secret { scope, key });
            }
            if p.serverless && r * busyness[(day + 1).clamp(0, days + 1) as usize] > 0.5 {
                sim.usage.push(Usage {
                    end: t0 + MS_PER_HOUR,
                    start: t0,
                    workspace: p.workspace,
                    sku: "PREMIUM_SERVERLESS_NOTEBOOKS",
                    dbus: (0.5 + w.rng.random::<f64>() * 1.5) * m.min(3.0),
                    run_as: Some(who),
                    job: None,
                    warehouse: None,
                });
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
                sim.usage.push(Usage {
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

/// Simulates every scheduled run of every job. A nightly backfill runs
/// some nights longer than usual (a hard negative).
fn simulate_jobs(w: &mut World, sim: &mut Sim) {
    let end_all = w.day_start(w.cfg.days as i64);
    let usual = LogNormal::new(0.0, 0.1).expect("valid lognormal");
    let steady = LogNormal::new(0.0, 0.15).expect("valid lognormal");
    for j in 0..w.jobs.len() {
        let job = w.jobs[j].clone();
        let mut t = w.cfg.start.0 + job.minute * MS_PER_MINUTE;
        while t < end_all {
            let hour_index = (t - w.cfg.start.0) / MS_PER_HOUR;
            if (hour_index - job.offset_hours).rem_euclid(job.every_hours) == 0 {
                let factor = match job.nightly {
                    Some((chance, longest)) if w.rng.random_bool(chance) => w.rng.random_range(1.15..longest),
                    Some(_) => usual.sample(&mut w.rng),
                    None => steady.sample(&mut w.rng),
                };
                let runtime = (job.runtime_s * factor * 1000.0) as i64;
                if job.nightly.is_some() && factor >= 1.15 {
                    w.windows.push((
                        job.owner,
                        Window {
                            kind: HardNegativeKind::Backfill,
                            start: t,
                            end: t + runtime,
                            description: format!(
                                "nightly backfill job {} ran {:.0} min, {factor:.2}× its usual {:.0} min, issuing SQL all along",
                                job.id,
                                runtime as f64 / 60_000.0,
                                job.runtime_s / 60.0
                            ),
                        },
                    ));
                }
                run_job(w, sim, &job, t, runtime, 1.0);
            }
            t += MS_PER_HOUR;
        }
    }
}

/// One run of `job` from `start`, `runtime_ms` long, on a cluster
/// `dbu_factor`× its usual size: run events (or timeline slices), secret
/// reads, its SQL (more for a longer run), and billing by the hour.
fn run_job(w: &mut World, sim: &mut Sim, job: &Job, start: i64, runtime_ms: i64, dbu_factor: f64) {
    let run = 10_000 + sim.ids.next();
    let end = start + runtime_ms;
    let failed = w.rng.random_bool(0.02);
    let who = job.owner;
    if job.workspace == WORKSPACE_A {
        push(w, sim, who, start, Act::RunStart { job: job.id, run });
        push(w, sim, who, end, Act::RunEnd { job: job.id, run, failed });
    } else {
        // Workspace B reports runs in job_run_timeline, one slice per hour.
        let mut s = start;
        while s < end {
            let e = (s.div_euclid(MS_PER_HOUR) + 1) * MS_PER_HOUR;
            let e = e.min(end);
            sim.slices.push(RunSlice { job: job.id, run, start: s, end: e, result: (e == end).then_some(!failed) });
            s = e;
        }
    }
    for _ in 0..w.rng.random_range(1..=2) {
        let (scope, key) = SECRETS[w.rng.random_range(0..2)];
        push(w, sim, who, start + 5_000, Act::Secret { scope, key });
    }
    // The SQL a run issues varies from run to run (data volumes differ).
    let per_run = job.queries_per_run * runtime_ms as f64 / (job.runtime_s * 1000.0);
    let mean = per_run * Gamma::new(4.0, 0.25).expect("valid gamma").sample(&mut w.rng);
    for _ in 0..poisson(&mut w.rng, mean) {
        let t = start + w.rng.random_range(0..runtime_ms.max(1));
        query(w, sim, who, t, 9);
    }
    // Billing: one row per hour the run touches.
    let mut s = start;
    while s < end {
        let hour_end = (s.div_euclid(MS_PER_HOUR) + 1) * MS_PER_HOUR;
        let e = hour_end.min(end);
        let fraction = (e - s) as f64 / MS_PER_HOUR as f64;
        sim.usage.push(Usage {
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

/// Reads a JSON-lines file written by [`generate`].
fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, GenerateError> {
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

/// Reads a labels file written by [`generate`].
pub fn read_labels(path: &Path) -> Result<Vec<Label>, GenerateError> {
    read_jsonl(path)
}

/// Reads a hard-negatives file written by [`generate`].
pub fn read_hard_negatives(path: &Path) -> Result<Vec<HardNegative>, GenerateError> {
    read_jsonl(path)
}

/// Reads a principals file written by [`generate`].
pub fn read_principals(path: &Path) -> Result<Vec<PrincipalRecord>, GenerateError> {
    read_jsonl(path)
}

#[cfg(test)]
mod tests;
