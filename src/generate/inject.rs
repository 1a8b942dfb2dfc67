//! The incidents: what an attacker, a leaver, a broken script or a
//! runaway job does, injected on top of the ordinary activity and listed in
//! `labels.jsonl`.
//!
//! Principals are picked across archetypes (an archetype with fewer
//! incidents so far is more likely), and times to fit them: often inside
//! the windows that make the archetype look unusual (a night shift, a
//! worked Saturday, a trip, a month-end close), otherwise in ordinary
//! working hours or in hours the principal is idle. Volume incidents are
//! sized against the principal's own activity at that hour
//! ([`World::volume`]), never against a constant alone. Sizes are drawn
//! from ranges per seed.

use super::{
    Act, BROWSERS, GROUPS, Kind, MS_PER_HOUR, MS_PER_MINUTE, SECRETS, STOLEN_CLIENTS, Sim, TABLES, World, in_hr, push,
    push_from, query, run_job,
};
use crate::generate::HardNegativeKind;
use crate::time::EventTime;
use rand::RngExt;

/// Where in the principal's week an incident hour fell, for its description.
fn whereabouts(w: &World, who: usize, start: i64) -> String {
    let inside = w.windows.iter().find(|(p, win)| *p == who && win.start <= start && start < win.end);
    match inside.map(|(_, win)| win.kind) {
        Some(HardNegativeKind::WeekendWork) => "on a weekend day it works".into(),
        Some(HardNegativeKind::NightWork) => "during its night shift".into(),
        Some(HardNegativeKind::OnCall) => "during an on-call session".into(),
        Some(HardNegativeKind::Travel) => "while travelling".into(),
        Some(HardNegativeKind::MonthEnd) => "during the month-end close".into(),
        Some(HardNegativeKind::Backfill) => "during a long backfill night".into(),
        None if w.active(who, w.hour_index(start)) => "in its usual working hours".into(),
        None => "in an hour it is normally idle".into(),
    }
}

/// The principal, named with its archetype.
fn who_is(w: &World, who: usize) -> String {
    format!("{} ({})", w.people[who].name, w.people[who].archetype.name())
}

/// Principals whose ordinary activity includes SQL.
fn runs_sql(w: &World) -> Vec<bool> {
    (0..w.people.len())
        .map(|i| {
            let p = &w.people[i];
            Kind::Query.rate(&p.rates) > 0.0 || w.jobs.iter().any(|j| j.owner == i && j.queries_per_run >= 1.0)
        })
        .collect()
}

/// A burst of SQL for one to three hours.
pub(super) fn query_burst(w: &mut World, sim: &mut Sim) {
    let sql = runs_sql(w);
    let hours = w.rng.random_range(1..=3);
    let placed = w.place(hours, |w| {
        let who = w.pick(|i, _| sql[i])?;
        Some((who, w.incident_hour(who, hours)))
    });
    let Some((who, start)) = placed else { return };
    let warehouse = if w.people[who].human { 3 } else { 9 };
    let place = whereabouts(w, who, start);
    let mut sizes = Vec::new();
    for h in 0..hours {
        let (n, usual) = w.volume(who, Kind::Query, w.hour_index(start) + h, (30.0, 60.0));
        for _ in 0..n {
            let t = start + h * MS_PER_HOUR + w.rng.random_range(0..MS_PER_HOUR);
            query(w, sim, who, t, warehouse);
        }
        sizes.push((n, usual));
    }
    let (n, usual) = sizes[0];
    let d = format!(
        "{} ran {n} SQL queries in the first hour ({} h in all) {place}, against its usual {usual:.1} an hour then",
        who_is(w, who),
        hours
    );
    w.label(who, "query_frequency", start, start + hours * MS_PER_HOUR, d);
}

/// An incident that is a burst of one action within an hour.
struct Burst {
    signal: &'static str,
    kind: Kind,
    /// Fewest events, drawn from this range.
    floor: (f64, f64),
    /// Service principals may be picked too.
    services: bool,
    what: &'static str,
}

const BURSTS: [Burst; 3] = [
    Burst {
        signal: "token_creation",
        kind: Kind::Token,
        floor: (5.0, 9.0),
        services: false,
        what: "personal access tokens with a one-year lifetime",
    },
    Burst { signal: "secret_read", kind: Kind::Secret, floor: (40.0, 80.0), services: true, what: "secret reads" },
    Burst {
        signal: "data_download",
        kind: Kind::Download,
        floor: (20.0, 40.0),
        services: false,
        what: "downloads and exports of query results",
    },
];

fn burst_act(w: &mut World, kind: Kind) -> Act {
    match kind {
        Kind::Token => Act::Token { lifetime_days: 365 },
        Kind::Secret => {
            let (scope, key) = SECRETS[w.rng.random_range(0..SECRETS.len())];
            Act::Secret { scope, key }
        }
        _ => Act::Download,
    }
}

/// Every incident kind, on principals across archetypes.
pub(super) fn all(w: &mut World, sim: &mut Sim) {
    let n_principals = w.cfg.principals as usize;
    for _ in 0..(n_principals / 15).max(2) {
        query_burst(w, sim);
    }
    // A burst of grants by someone who never grants.
    let placed = w.place(1, |w| {
        let who = w.pick(|_, p| p.human && p.rates.grants == 0.0)?;
        Some((who, w.incident_hour(who, 1)))
    });
    if let Some((who, start)) = placed {
        let (n, _) = w.volume(who, Kind::Grant, w.hour_index(start), (15.0, 35.0));
        for _ in 0..n {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            let table = TABLES[w.rng.random_range(0..TABLES.len())];
            let grantee = w.rng.random_range(0..w.people.len());
            if w.rng.random_bool(0.3) {
                let group = GROUPS[w.rng.random_range(0..GROUPS.len())];
                push(w, sim, who, t, Act::GroupAdd { member: grantee, group });
            } else {
                push(w, sim, who, t, Act::Grant { table, grantee });
            }
        }
        let d = format!(
            "{} made {n} grants and group changes in one hour {}; they normally make none",
            who_is(w, who),
            whereabouts(w, who, start)
        );
        w.label(who, "permission_change", start, start + MS_PER_HOUR, d);
    }
    job_runtime(w, sim);
    cost(w, sim);
    // Password spraying against one user from outside, at the attacker's hours.
    let spray = w.place(1, |w| {
        let who = w.pick(|_, p| p.human)?;
        let day = w.incident_day();
        Some((who, w.day_start(day) + w.rng.random_range(0..24) * MS_PER_HOUR))
    });
    if let Some((who, start)) = spray {
        let (n, _) = w.volume(who, Kind::FailedLogin, w.hour_index(start), (25.0, 60.0));
        for _ in 0..n {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            push(w, sim, who, t, Act::Login { method: "login", failed: true, user: who });
        }
        let d = format!("{n} failed logins against {} in one hour", who_is(w, who));
        w.label(who, "failed_login", start, start + MS_PER_HOUR, d);
    }
    for burst in &BURSTS {
        for _ in 0..(n_principals / 40).max(1) {
            let placed = w.place(1, |w| {
                let who = w.pick(|_, p| p.human || burst.services)?;
                Some((who, w.incident_hour(who, 1)))
            });
            let Some((who, start)) = placed else { continue };
            let (n, usual) = w.volume(who, burst.kind, w.hour_index(start), burst.floor);
            for _ in 0..n {
                let t = start + w.rng.random_range(0..MS_PER_HOUR);
                let act = burst_act(w, burst.kind);
                push(w, sim, who, t, act);
            }
            let d = format!(
                "{} made {n} {} in one hour {}, against its usual {usual:.2} an hour",
                who_is(w, who),
                burst.what,
                whereabouts(w, who, start)
            );
            w.label(who, burst.signal, start, start + MS_PER_HOUR, d);
        }
    }
    token_theft(w, sim);
    offboarded(w, sim);
    role_drift(w, sim);
    newcomer_takeover(w, sim);
    share_down(w);
}

/// Owners of jobs that `ok` accepts.
fn job_owners(w: &World, ok: impl Fn(&super::Job) -> bool) -> Vec<bool> {
    (0..w.people.len()).map(|i| w.jobs.iter().any(|j| j.owner == i && ok(j))).collect()
}

/// One of the jobs of `owner` that `ok` accepts.
fn job_of(w: &mut World, owner: usize, ok: impl Fn(&super::Job) -> bool) -> Option<super::Job> {
    let jobs: Vec<usize> = (0..w.jobs.len()).filter(|&j| w.jobs[j].owner == owner && ok(&w.jobs[j])).collect();
    (!jobs.is_empty()).then(|| w.jobs[jobs[w.rng.random_range(0..jobs.len())]].clone())
}

/// A job run far longer than usual: 5–10× its usual length (a nightly
/// backfill's long nights stay within about 1.5×).
fn job_runtime(w: &mut World, sim: &mut Sim) {
    let owners = job_owners(w, |_| true);
    let placed = w.place(1, |w| {
        let owner = w.pick(|i, _| owners[i])?;
        let day = w.incident_day();
        Some((owner, w.day_start(day) + w.rng.random_range(0..20) * MS_PER_HOUR + 30 * MS_PER_MINUTE))
    });
    let Some((owner, start)) = placed else { return };
    let Some(job) = job_of(w, owner, |_| true) else { return };
    let factor = w.rng.random_range(5.0..10.0);
    let runtime = (job.runtime_s * factor * 1000.0) as i64;
    run_job(w, sim, &job, start, runtime, 1.0);
    let d = format!(
        "job {} of {} ran {:.0} min, {factor:.1}× its usual {:.0} min",
        job.id,
        who_is(w, owner),
        runtime as f64 / 60_000.0,
        job.runtime_s / 60.0
    );
    w.label(owner, "job_runtime", start, start + runtime, d);
}

/// A cost spike: a job of a service principal, run each hour for four
/// hours on a far larger cluster, multiplies the principal's hourly bill:
/// 8–14× its mean billed hour, and well above its dearest ordinary hour.
fn cost(w: &mut World, sim: &mut Sim) {
    let frequent = |j: &super::Job| j.every_hours <= 2 || j.nightly.is_some();
    let owners = job_owners(w, frequent);
    let placed = w.place(4, |w| {
        let owner = w.pick(|i, _| owners[i])?;
        let day = w.incident_day();
        Some((owner, w.day_start(day) + w.rng.random_range(0..18) * MS_PER_HOUR))
    });
    let Some((owner, start)) = placed else { return };
    let Some(job) = job_of(w, owner, frequent) else { return };
    let billed: Vec<f64> = w.dbus.range((owner, i64::MIN)..=(owner, i64::MAX)).map(|(_, &d)| d).collect();
    let mean = billed.iter().sum::<f64>() / billed.len().max(1) as f64;
    let max = billed.iter().copied().fold(0.0, f64::max);
    let ratio = w.rng.random_range(8.0..14.0);
    let target = (ratio * mean).max(w.rng.random_range(1.3..2.0) * max);
    let per_run = job.dbu_per_hour * (job.runtime_s / 3600.0).min(1.0);
    let factor = (target / per_run).max(ratio);
    // Runs of the usual length on a far larger cluster: the cost moves,
    // the runtime does not.
    let runtime = (job.runtime_s * 1000.0) as i64;
    for h in 0..4 {
        let at = start + h * MS_PER_HOUR + 5 * MS_PER_MINUTE;
        run_job(w, sim, &job, at, runtime, factor);
    }
    let d = format!(
        "job {} of {} ran an extra run each hour for 4 hours on a cluster {factor:.0}× its usual size: about {:.0} DBUs an hour against a usual {mean:.1}",
        job.id,
        who_is(w, owner),
        target
    );
    w.label(owner, "cost", start, start + 4 * MS_PER_HOUR, d);
}

/// A stolen token used from elsewhere: a settled user's identity acts from
/// a network and with a client it has never used.
fn token_theft(w: &mut World, sim: &mut Sim) {
    let theft = w.place(1, |w| {
        let who = w.pick(|_, p| p.human && !p.roams && p.connector_from.is_none())?;
        let day = w.incident_day();
        Some((who, w.day_start(day) + w.rng.random_range(0..24) * MS_PER_HOUR))
    });
    let Some((who, start)) = theft else { return };
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
        push_from(w, sim, who, t, act, ip.clone(), agent);
    }
    let d = format!("{}'s token used from {ip} with {agent}: {n} reads and downloads in one hour", who_is(w, who));
    w.label(who, "source", start, start + MS_PER_HOUR, d);
}

/// A leaver whose credentials outlive them, and a revoked token still
/// being tried (next to a rotation done right: a hard negative).
fn offboarded(w: &mut World, sim: &mut Sim) {
    let admin = (0..w.people.len()).find(|&i| w.people[i].human && w.people[i].rates.grants > 0.0);
    // Someone in no other incident: their records after the removal go.
    let labelled: Vec<usize> = w.busy.iter().map(|b| b.0).collect();
    let leaver = w.pick(|i, p| {
        p.human && !p.roams && p.connector_from.is_none() && p.rates.grants == 0.0 && !labelled.contains(&i)
    });
    if let (Some(admin), Some(who)) = (admin, leaver) {
        let day = w.incident_day().min(w.cfg.days as i64 - 2);
        let removed = w.day_start(day) + (17 - w.people[admin].tz).rem_euclid(24) * MS_PER_HOUR;
        let start = removed + 20 * MS_PER_HOUR;
        if day >= 0 && w.free(who, removed, start + MS_PER_HOUR) {
            // From the removal on, the leaver's own work stops.
            for day_recs in sim.recs.iter_mut() {
                day_recs.retain(|r| r.who != who || r.time < removed);
            }
            w.removed.push((who, removed));
            push(w, sim, admin, removed, Act::RemoveUser { user: who });
            let n = w.rng.random_range(3..8);
            for _ in 0..n {
                let t = start + w.rng.random_range(0..MS_PER_HOUR);
                let table = TABLES[w.rng.random_range(0..TABLES.len())];
                let ip = w.people[who].ips[0].clone();
                push_from(w, sim, who, t, Act::ReadTable { table }, ip, "python-requests/2.31.0");
            }
            let d = format!(
                "{} was removed from the account, and {n} table reads came with their token 20 hours later",
                who_is(w, who)
            );
            w.label(who, "offboarded_principal", start, start + MS_PER_HOUR, d);
        }
    }
    // A person rotates a token that a script (or someone) still holds;
    // hours later it knocks again, and Databricks refuses it.
    let labelled: Vec<usize> = w.busy.iter().map(|b| b.0).collect();
    let Some(holder) = w.pick(|i, p| p.human && !p.roams && !labelled.contains(&i)) else { return };
    let Some(careful) = w.pick(|i, p| p.human && !p.roams && !labelled.contains(&i) && i != holder) else { return };
    let day = w.incident_day().min(w.cfg.days as i64 - 2);
    let revoked = w.day_start(day) + (10 - w.people[holder].tz).rem_euclid(24) * MS_PER_HOUR;
    let start = revoked + w.rng.random_range(6..20) * MS_PER_HOUR;
    if day >= 0 && w.free(holder, revoked, start + MS_PER_HOUR) {
        let old = 0x5eed_0000 + holder as u64;
        let agent = "python-requests/2.31.0";
        let ip = w.people[holder].ips[0].clone();
        for h in 0..3 {
            let t = revoked - (h + 1) * MS_PER_HOUR + w.rng.random_range(0..MS_PER_HOUR);
            push_from(w, sim, holder, t, Act::TokenLogin { token: old, failed: false }, ip.clone(), agent);
        }
        push(w, sim, holder, revoked, Act::RevokeToken { token: old });
        let n = w.rng.random_range(2..6);
        for _ in 0..n {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            push_from(w, sim, holder, t, Act::TokenLogin { token: old, failed: true }, ip.clone(), agent);
        }
        let d = format!(
            "{} revoked a token at {}, and it was tried {n} times from their own network later",
            who_is(w, holder),
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
        push_from(w, sim, careful, t, Act::TokenLogin { token, failed: false }, ip.clone(), "curl/8.4.0");
    }
    push(w, sim, careful, rotated, Act::RevokeToken { token: old });
}

/// Role drift both ways: a service principal's secret used to sign in
/// from a browser, and a person's token driving a script around the clock.
fn role_drift(w: &mut World, sim: &mut Sim) {
    if let Some(sp) = w.pick(|_, p| !p.human) {
        let day = w.incident_day();
        let start = w.day_start(day) + w.rng.random_range(8..18) * MS_PER_HOUR;
        if w.free(sp, start, start + MS_PER_HOUR) {
            let t = start + w.rng.random_range(0..MS_PER_HOUR);
            let ip = w.people[sp].ips[0].clone();
            push_from(w, sim, sp, t, Act::Login { method: "login", failed: false, user: sp }, ip, BROWSERS[0]);
            let d = format!("service principal {} signed in from a browser", who_is(w, sp));
            w.label(sp, "role_drift", start, start + MS_PER_HOUR, d);
        }
    }
    if let Some(who) = w.pick(|_, p| p.human && p.rates.queries > 0.5 && !p.roams) {
        let day = w.incident_day().min(w.cfg.days as i64 - 2);
        let start = w.day_start(day);
        let end = start + 30 * MS_PER_HOUR;
        if day >= 0 && w.free(who, start, end) {
            for h in 0..30 {
                for _ in 0..w.rng.random_range(1..4) {
                    let t = start + h * MS_PER_HOUR + w.rng.random_range(0..MS_PER_HOUR);
                    let command = sim.ids.next();
                    let ip = w.people[who].ips[0].clone();
                    push_from(w, sim, who, t, Act::Query { warehouse: 2, command }, ip, "python-requests/2.31.0");
                }
            }
            let d = format!("{}'s token ran a query script every hour for 30 hours", who_is(w, who));
            w.label(who, "role_drift", start, end, d);
        }
    }
}

/// A new account taken over in its first days: too new for a baseline of
/// its own, it must be judged against its peers. 10–20× its own planned
/// rate, at night local time.
fn newcomer_takeover(w: &mut World, sim: &mut Sim) {
    let n = w.people.len();
    let from = w.rng.random_range(0..n);
    let newcomer = (0..n).map(|k| (from + k) % n).find(|&i| {
        let p = &w.people[i];
        p.human && p.first_day > 0 && p.first_day + 1 < w.cfg.days as i64 && p.rates.queries > 0.3
    });
    let Some(who) = newcomer else { return };
    let day = w.people[who].first_day + 1;
    // 02:00–04:00 local: the principal is normally asleep.
    let local = w.rng.random_range(2..4);
    let start = w.day_start(day) + (local - w.people[who].tz).rem_euclid(24) * MS_PER_HOUR;
    if !w.free(who, start, start + MS_PER_HOUR) {
        return;
    }
    let rate = Kind::Query.rate(&w.people[who].rates);
    let per_hour = ((rate * w.rng.random_range(10.0..20.0)) as u64).max(w.rng.random_range(60..100));
    for _ in 0..per_hour {
        let t = start + w.rng.random_range(0..MS_PER_HOUR);
        query(w, sim, who, t, 3);
    }
    let d = format!(
        "{}, an account created the day before, ran {per_hour} SQL queries in one hour at night local time",
        who_is(w, who)
    );
    w.label(who, "query_frequency", start, start + MS_PER_HOUR, d);
}

/// A share-down: someone in HR copies salaries, ssn unmasked, into the
/// schema analysts read.
fn share_down(w: &mut World) {
    let Some(who) = w.pick(|_, p| in_hr(p)) else { return };
    let day = w.incident_day();
    let t = w.day_start(day) + (w.people[who].work.0 + 4 - w.people[who].tz).rem_euclid(24) * MS_PER_HOUR;
    if !w.free(who, t, t + MS_PER_HOUR) {
        return;
    }
    w.lineage.push((t, who, "main.hr.salaries", "main.shared.salaries_export"));
    let d = format!(
        "{} copied main.hr.salaries, ssn unmasked, into main.shared.salaries_export, which analysts read",
        who_is(w, who)
    );
    w.label(who, "share_down_write", t, t + MS_PER_HOUR, d);
}
