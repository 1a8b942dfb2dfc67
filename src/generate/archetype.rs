//! Who behaves how: the behaviour archetypes a principal is drawn from,
//! their parameters (drawn per seed from ranges, never constants), and the
//! plan each one makes of the period: the mean activity multiplier of every
//! UTC hour, and the windows of ordinary work that look unusual (the hard
//! negatives).
//!
//! A plan is the *mean* of the principal's activity: the simulation adds
//! the day-to-day and hour-to-hour overdispersion on top. Plans know
//! nothing about incidents and never look at a detector.

use super::MS_PER_HOUR;
use crate::time::{EventTime, MS_PER_DAY};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, LogNormal};
use serde::{Deserialize, Serialize};

/// The behaviour archetypes, as named in `principals.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Archetype {
    /// Weekdays, about 9 to 17 local time: the bulk of the people.
    Office,
    /// An ordinary weekday load on some Saturdays and/or Sundays.
    WeekendWorker,
    /// Regular evening or night shifts, some rotating between weeks.
    ShiftWorker,
    /// Office hours, plus bursty night sessions in on-call weeks.
    OnCall,
    /// A trip of several days in another time zone, on new networks.
    Traveller,
    /// Volume ramping 2–3× over the last working days of a month.
    EndOfQuarter,
    /// A weekly rhythm that varies: Monday spikes, quiet Fridays, a growing
    /// workload, a team break.
    BusinessSeasons,
    /// A service principal running scheduled jobs (hourly to daily).
    ScheduledJobs,
    /// A service principal running heavy nightly jobs that issue lots of SQL.
    NightlyBackfill,
    /// A service principal calling the SQL API around the clock, with
    /// heavy-tailed hourly volume.
    BurstyApiClient,
}

impl Archetype {
    pub const ALL: [Archetype; 10] = [
        Archetype::Office,
        Archetype::WeekendWorker,
        Archetype::ShiftWorker,
        Archetype::OnCall,
        Archetype::Traveller,
        Archetype::EndOfQuarter,
        Archetype::BusinessSeasons,
        Archetype::ScheduledJobs,
        Archetype::NightlyBackfill,
        Archetype::BurstyApiClient,
    ];

    /// The name written in `principals.jsonl` and printed by `eval`.
    pub fn name(self) -> &'static str {
        match self {
            Archetype::Office => "office",
            Archetype::WeekendWorker => "weekend_worker",
            Archetype::ShiftWorker => "shift_worker",
            Archetype::OnCall => "on_call",
            Archetype::Traveller => "traveller",
            Archetype::EndOfQuarter => "end_of_quarter",
            Archetype::BusinessSeasons => "business_seasons",
            Archetype::ScheduledJobs => "scheduled_jobs",
            Archetype::NightlyBackfill => "nightly_backfill",
            Archetype::BurstyApiClient => "bursty_api_client",
        }
    }

    /// People; the others are service principals.
    pub fn human(self) -> bool {
        !matches!(self, Archetype::ScheduledJobs | Archetype::NightlyBackfill | Archetype::BurstyApiClient)
    }
}

/// What kind of ordinary-but-unusual window a hard negative is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardNegativeKind {
    /// A weekend day worked at an ordinary weekday load.
    WeekendWork,
    /// A shift at night (any hour in 22:00–06:00 local) at ordinary volume.
    NightWork,
    /// An on-call session: a night of ordinary-to-twice-ordinary volume.
    OnCall,
    /// A working day on a trip: other hours in UTC, new networks.
    Travel,
    /// A month-end close day: 2–3× the ordinary volume, longer hours.
    MonthEnd,
    /// A nightly backfill run longer than usual (within about 1.5×).
    Backfill,
}

impl HardNegativeKind {
    pub fn name(self) -> &'static str {
        match self {
            HardNegativeKind::WeekendWork => "weekend_work",
            HardNegativeKind::NightWork => "night_work",
            HardNegativeKind::OnCall => "on_call",
            HardNegativeKind::Travel => "travel",
            HardNegativeKind::MonthEnd => "month_end",
            HardNegativeKind::Backfill => "backfill",
        }
    }
}

/// The archetype's parameters, drawn once per principal from the ranges
/// documented in the README. Hours are local; days of the week 0 = Monday.
#[derive(Debug, Clone)]
pub(super) enum Behaviour {
    Office,
    WeekendWorker {
        saturday: bool,
        sunday: bool,
        /// Chance a chosen weekend day is worked (1 = every weekend).
        chance: f64,
        /// Local weekend hours [start, end).
        hours: (i64, i64),
        /// A weekday taken off in exchange.
        weekday_off: Option<u32>,
    },
    ShiftWorker {
        /// Shift start hour in even and odd weeks (equal unless rotating).
        starts: [i64; 2],
        length: i64,
        /// Two days off each week.
        off: [u32; 2],
    },
    OnCall {
        /// On call one week in `period`, the weeks where (week + offset) % period == 0.
        period: i64,
        offset: i64,
        /// Chance of being paged on a night of an on-call week.
        chance: f64,
        /// Highest session volume, as a multiple of an ordinary working hour (1–2).
        volume: f64,
    },
    Traveller {
        /// Hours the destination is ahead of home.
        shift: i64,
        /// Length of the trip in days.
        length: i64,
    },
    EndOfQuarter {
        /// Working days the month-end close lasts.
        ramp_days: usize,
        /// Volume on the last day, as a multiple of an ordinary day.
        peak: f64,
        /// Extra hours worked on the last day.
        late: i64,
    },
    BusinessSeasons {
        /// Monday morning volume multiple (the weekly report), if any.
        monday: Option<f64>,
        /// Friday volume multiple (and an early end), if any.
        friday: Option<f64>,
        /// Workload grows linearly to (1 + growth) over the period.
        growth: f64,
        /// Week-to-week variation (lognormal sigma).
        weekly_sigma: f64,
        /// Length of a team break in weekdays (0: none).
        break_days: i64,
    },
    ScheduledJobs,
    NightlyBackfill {
        /// Chance a night's run is longer than usual.
        long_chance: f64,
        /// How much longer at most (1.2–1.5).
        long_factor: f64,
    },
    BurstyApiClient {
        /// Sigma of the lognormal multiplier of each hour (0.8–1.2).
        sigma: f64,
        /// Weekday daytime (UTC 08–18) volume multiple.
        daytime: f64,
    },
}

impl Behaviour {
    /// Draws the parameters of `archetype`. Uses no calendar: the same seed
    /// gives the same people whatever the number of days.
    pub(super) fn draw(archetype: Archetype, rng: &mut ChaCha8Rng) -> Behaviour {
        match archetype {
            Archetype::Office => Behaviour::Office,
            Archetype::WeekendWorker => {
                let which = rng.random_range(0..3);
                let start = rng.random_range(8..=12);
                Behaviour::WeekendWorker {
                    saturday: which != 1,
                    sunday: which != 0,
                    chance: if rng.random_bool(0.4) { 1.0 } else { rng.random_range(0.3..0.7) },
                    hours: (start, start + rng.random_range(5..=9)),
                    weekday_off: rng.random_bool(0.5).then(|| [0, 4][rng.random_range(0..2)]),
                }
            }
            Archetype::ShiftWorker => {
                let late = if rng.random_bool(0.5) { rng.random_range(14..=17) } else { rng.random_range(20..=23) };
                let starts = if rng.random_bool(0.4) { [rng.random_range(6..=8), late] } else { [late, late] };
                let first_off = rng.random_range(0..7u32);
                Behaviour::ShiftWorker {
                    starts,
                    length: rng.random_range(8..=10),
                    off: [first_off, (first_off + 1) % 7],
                }
            }
            Archetype::OnCall => {
                let period = rng.random_range(2..=3);
                Behaviour::OnCall {
                    period,
                    offset: rng.random_range(0..period),
                    chance: rng.random_range(0.3..0.7),
                    volume: rng.random_range(1.3..2.0),
                }
            }
            Archetype::Traveller => {
                let shift = rng.random_range(5..=9) * if rng.random_bool(0.5) { 1 } else { -1 };
                Behaviour::Traveller { shift, length: rng.random_range(3..=6) }
            }
            Archetype::EndOfQuarter => Behaviour::EndOfQuarter {
                ramp_days: rng.random_range(3..=5),
                peak: rng.random_range(2.0..3.0),
                late: rng.random_range(0..=3),
            },
            Archetype::BusinessSeasons => {
                // Each part of the rhythm with a chance; at least one.
                let mut parts =
                    [rng.random_bool(0.6), rng.random_bool(0.6), rng.random_bool(0.6), rng.random_bool(0.5)];
                if !parts.iter().any(|&b| b) {
                    parts[rng.random_range(0..4)] = true;
                }
                Behaviour::BusinessSeasons {
                    monday: parts[0].then(|| rng.random_range(1.5..3.0)),
                    friday: parts[1].then(|| rng.random_range(0.3..0.7)),
                    growth: if parts[2] { rng.random_range(0.3..1.0) } else { 0.0 },
                    weekly_sigma: rng.random_range(0.1..0.3),
                    break_days: if parts[3] { rng.random_range(1..=3) } else { 0 },
                }
            }
            Archetype::ScheduledJobs => Behaviour::ScheduledJobs,
            Archetype::NightlyBackfill => Behaviour::NightlyBackfill {
                long_chance: rng.random_range(0.15..0.3),
                long_factor: rng.random_range(1.2..1.5),
            },
            Archetype::BurstyApiClient => {
                Behaviour::BurstyApiClient { sigma: rng.random_range(0.8..1.2), daytime: rng.random_range(1.0..2.0) }
            }
        }
    }
}

/// The period being simulated.
#[derive(Debug, Clone, Copy)]
pub(super) struct Calendar {
    /// Midnight UTC of day 0.
    pub start: i64,
    pub days: i64,
    /// The public holiday (a weekday of the second week), or -1.
    pub holiday: i64,
}

impl Calendar {
    /// Day of the week of (local) day `day`, 0 = Monday.
    pub fn dow(&self, day: i64) -> u32 {
        EventTime(self.start + day * MS_PER_DAY).day_of_week()
    }

    /// `YYYY-MM-DD` of day `day`.
    fn date(&self, day: i64) -> String {
        EventTime(self.start + day * MS_PER_DAY).to_string()[..10].to_owned()
    }

    /// UTC time of local hour `hour` (may exceed 24) of local day `day` at `tz`.
    pub fn utc(&self, day: i64, hour: i64, tz: i64) -> i64 {
        self.start + day * MS_PER_DAY + (hour - tz) * MS_PER_HOUR
    }

    fn weekday(&self, day: i64) -> bool {
        self.dow(day) < 5 && day != self.holiday
    }
}

/// A window of ordinary work that looks unusual, before it is written.
#[derive(Debug, Clone)]
pub(super) struct Window {
    pub kind: HardNegativeKind,
    pub start: i64,
    pub end: i64,
    pub description: String,
}

/// What a principal plans to do over the period.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    /// Mean activity multiplier of each UTC hour since the start (1 = an
    /// ordinary working hour of this principal).
    pub hourly: Vec<f32>,
    /// On-call sessions (UTC ms): their events come in clusters.
    pub sessions: Vec<(i64, i64)>,
    /// A trip: (start, end) in UTC ms and the networks used on it.
    pub trip: Option<(i64, i64, Vec<String>)>,
    pub windows: Vec<Window>,
}

/// Local hours of one day from its local midnight; shifts spill into the
/// next day.
type Day = [f32; 48];

impl Plan {
    fn put(&mut self, day: i64, tz: i64, local: &Day) {
        for (h, &v) in local.iter().enumerate() {
            if v <= 0.0 {
                continue;
            }
            let i = day * 24 + h as i64 - tz;
            if (0..self.hourly.len() as i64).contains(&i) {
                self.hourly[i as usize] += v;
            }
        }
    }

    fn window(&mut self, cal: &Calendar, kind: HardNegativeKind, day: i64, hours: (i64, i64), tz: i64, what: String) {
        let (start, end) = (cal.utc(day, hours.0, tz), cal.utc(day, hours.1, tz));
        let period_end = cal.start + cal.days * MS_PER_DAY;
        if start < cal.start || end > period_end {
            return;
        }
        let description = format!(
            "{what}, {} {:02}:00–{:02}:00 local (UTC{tz:+})",
            DOW[cal.dow(day + hours.0.div_euclid(24)) as usize],
            hours.0 % 24,
            hours.1 % 24
        );
        self.windows.push(Window { kind, start, end, description });
    }
}

const DOW: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// An ordinary working day: a slow first hour, a lunch dip, a short tail.
fn office_day(work: (i64, i64), level: f32, out: &mut Day) {
    for h in work.0..work.1 {
        let lunch = if h == 12 { 0.5 } else { 1.0 };
        let first = if h == work.0 { 0.6 } else { 1.0 };
        out[h as usize] += level * lunch * first;
    }
    out[work.1 as usize] += 0.15 * level;
}

/// Weekdays at the office, the holiday off, now and then a short look at
/// the weekend at a fraction of the ordinary volume.
fn office_like(cal: &Calendar, day: i64, work: (i64, i64), level: f32, out: &mut Day, rng: &mut ChaCha8Rng) {
    if cal.dow(day) < 5 {
        office_day(work, if day == cal.holiday { 0.02 } else { level }, out);
    } else if rng.random_bool(0.25) {
        out[rng.random_range(9..=15)] += rng.random_range(0.03..0.1);
    }
}

/// A mean-one lognormal multiplier.
pub(super) fn lognormal_one(sigma: f64) -> LogNormal<f64> {
    LogNormal::new(-sigma * sigma / 2.0, sigma).expect("valid lognormal")
}

/// Makes the plan of a person or an API client over `cal` (zeros for
/// job-running service principals: their jobs are their plan). `tz` and
/// `work` are the principal's home time zone and working hours.
pub(super) fn plan(behaviour: &Behaviour, tz: i64, work: (i64, i64), cal: &Calendar, rng: &mut ChaCha8Rng) -> Plan {
    let mut plan = Plan { hourly: vec![0.0; (cal.days * 24) as usize], ..Default::default() };
    match behaviour {
        Behaviour::Office => {
            for day in -1..=cal.days {
                let mut d = [0.0; 48];
                office_like(cal, day, work, 1.0, &mut d, rng);
                plan.put(day, tz, &d);
            }
        }
        Behaviour::WeekendWorker { saturday, sunday, chance, hours, weekday_off } => {
            for day in -1..=cal.days {
                let dow = cal.dow(day);
                let mut d = [0.0; 48];
                if (dow == 5 && *saturday || dow == 6 && *sunday) && rng.random_bool(*chance) {
                    office_day(*hours, 1.0, &mut d);
                    plan.window(
                        cal,
                        HardNegativeKind::WeekendWork,
                        day,
                        (hours.0, hours.1 + 1),
                        tz,
                        "weekend work at an ordinary weekday load".into(),
                    );
                } else if Some(dow) != *weekday_off {
                    office_like(cal, day, work, 1.0, &mut d, rng);
                }
                plan.put(day, tz, &d);
            }
        }
        Behaviour::ShiftWorker { starts, length, off } => {
            for day in -1..=cal.days {
                let dow = cal.dow(day);
                let mut d = [0.0; 48];
                if !off.contains(&dow) {
                    let s = starts[day.div_euclid(7).rem_euclid(2) as usize];
                    for h in s..s + length {
                        let v = if h == s {
                            0.7
                        } else if h == s + length / 2 {
                            0.6
                        } else {
                            1.0
                        };
                        d[h as usize] += v;
                    }
                    let night = (s..s + length).any(|h| h % 24 >= 22 || h % 24 < 6);
                    if night {
                        let what = if s < 20 { "an evening shift into the night" } else { "a night shift" };
                        plan.window(
                            cal,
                            HardNegativeKind::NightWork,
                            day,
                            (s, s + length),
                            tz,
                            format!("{what} at ordinary volume"),
                        );
                    } else if dow >= 5 {
                        plan.window(
                            cal,
                            HardNegativeKind::WeekendWork,
                            day,
                            (s, s + length),
                            tz,
                            "a weekend shift at ordinary volume".into(),
                        );
                    }
                }
                plan.put(day, tz, &d);
            }
        }
        Behaviour::OnCall { period, offset, chance, volume } => {
            let weights = Gamma::new(0.7, 1.0).expect("valid gamma");
            for day in -1..=cal.days {
                let mut d = [0.0; 48];
                office_like(cal, day, work, 1.0, &mut d, rng);
                if (day.div_euclid(7) + offset).rem_euclid(*period) == 0 && rng.random_bool(*chance) {
                    // Paged between 20:00 and 04:00; one to three hours,
                    // most of the work in one of them.
                    let start = rng.random_range(20..=28);
                    let len = rng.random_range(1..=3i64);
                    let level = rng.random_range(1.0..*volume);
                    let w: Vec<f64> = (0..len).map(|_| weights.sample(rng) + 0.05).collect();
                    let sum: f64 = w.iter().sum();
                    for (k, wk) in w.iter().enumerate() {
                        d[start as usize + k] += (level * wk / sum * len as f64) as f32;
                    }
                    let (s, e) = (cal.utc(day, start, tz), cal.utc(day, start + len, tz));
                    plan.sessions.push((s, e));
                    plan.window(
                        cal,
                        HardNegativeKind::OnCall,
                        day,
                        (start, start + len),
                        tz,
                        format!("an on-call session at {level:.1}× an ordinary working hour, bursty"),
                    );
                }
                plan.put(day, tz, &d);
            }
        }
        Behaviour::Traveller { shift, length } => {
            let first = rng.random_range(4.min(cal.days - 1)..(cal.days - 3).max(5)).min(cal.days - 1);
            let last = (first + length).min(cal.days);
            let away = (tz + shift + 11).rem_euclid(24) - 11;
            let ips: Vec<String> = (0..2)
                .map(|_| {
                    let a = [62, 81, 175, 203][rng.random_range(0..4)];
                    format!(
                        "{a}.{}.{}.{}",
                        rng.random_range(0..255),
                        rng.random_range(0..255),
                        rng.random_range(1..255)
                    )
                })
                .collect();
            plan.trip = Some((cal.utc(first, 0, away), cal.utc(last, 0, away), ips));
            for day in -1..=cal.days {
                let on_trip = (first..last).contains(&day);
                let zone = if on_trip { away } else { tz };
                let mut d = [0.0; 48];
                office_like(cal, day, work, 1.0, &mut d, rng);
                if on_trip && cal.weekday(day) {
                    plan.window(
                        cal,
                        HardNegativeKind::Travel,
                        day,
                        (work.0, work.1 + 1),
                        zone,
                        format!(
                            "working on a trip, {} h {} home, from new networks",
                            shift.abs(),
                            if *shift > 0 { "ahead of" } else { "behind" }
                        ),
                    );
                }
                plan.put(day, zone, &d);
            }
        }
        Behaviour::EndOfQuarter { ramp_days, peak, late } => {
            // The close: the last working days before each month end (one
            // just after the period still ramps its last days).
            let mut ramp = vec![0usize; (cal.days + 2) as usize];
            for end in 0..cal.days + 8 {
                if cal.date(end)[5..7] == cal.date(end + 1)[5..7] {
                    continue;
                }
                let close: Vec<i64> = (0..=end).rev().filter(|&d| cal.weekday(d)).take(*ramp_days).collect();
                for (k, &d) in close.iter().rev().enumerate() {
                    if let Some(r) = ramp.get_mut((d + 1) as usize) {
                        *r = k + 1;
                    }
                }
            }
            for day in -1..=cal.days {
                let k = ramp[(day + 1) as usize];
                let mut d = [0.0; 48];
                if k == 0 {
                    office_like(cal, day, work, 1.0, &mut d, rng);
                } else {
                    let f = k as f64 / *ramp_days as f64;
                    let level = 1.0 + (peak - 1.0) * f;
                    let end = work.1 + (*late as f64 * f).round() as i64;
                    office_day((work.0, end), level as f32, &mut d);
                    plan.window(
                        cal,
                        HardNegativeKind::MonthEnd,
                        day,
                        (work.0, end + 1),
                        tz,
                        format!("month-end close, day {k} of {ramp_days}, at {level:.1}× an ordinary day"),
                    );
                }
                plan.put(day, tz, &d);
            }
        }
        Behaviour::BusinessSeasons { monday, friday, growth, weekly_sigma, break_days } => {
            let weekly = lognormal_one(*weekly_sigma);
            let weeks: Vec<f64> = (0..=cal.days / 7 + 1).map(|_| weekly.sample(rng)).collect();
            let pause = (*break_days > 0 && cal.days > 9)
                .then(|| rng.random_range(7..cal.days - 2))
                .map(|s| (s, s + break_days));
            for day in -1..=cal.days {
                let dow = cal.dow(day);
                let mut d = [0.0; 48];
                let level = (1.0 + growth * day.max(0) as f64 / cal.days as f64) * weeks[(day.max(0) / 7) as usize];
                let on_break = pause.is_some_and(|(s, e)| (s..e).contains(&day));
                match (dow, monday, friday) {
                    _ if on_break && dow < 5 => office_day(work, 0.02, &mut d),
                    (0, Some(m), _) if day != cal.holiday => {
                        office_day(work, level as f32, &mut d);
                        for h in work.0..work.0 + 3 {
                            d[h as usize] *= *m as f32;
                        }
                    }
                    (4, _, Some(f)) if day != cal.holiday => {
                        office_day((work.0, work.1 - 2), (level * f) as f32, &mut d)
                    }
                    _ => office_like(cal, day, work, level as f32, &mut d, rng),
                }
                plan.put(day, tz, &d);
            }
        }
        Behaviour::BurstyApiClient { daytime, .. } => {
            for i in 0..plan.hourly.len() {
                let t = cal.start + i as i64 * MS_PER_HOUR;
                let busy = EventTime(t).day_of_week() < 5 && (8..18).contains(&EventTime(t).hour_of_day());
                plan.hourly[i] = if busy { *daytime as f32 } else { 1.0 };
            }
        }
        Behaviour::ScheduledJobs | Behaviour::NightlyBackfill { .. } => {}
    }
    plan
}
