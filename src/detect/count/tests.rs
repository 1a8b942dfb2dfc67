use super::*;
use crate::detect::definition::built_in;
use crate::event::Shape;

fn def(name: &str) -> Definition {
    built_in().unwrap().into_iter().find(|d| d.name == name).unwrap()
}

fn query(principal: &str, ms: i64, id: &str) -> Event {
    Event {
        shape: Some(Shape::AuditDelivery),
        time: EventTime(ms),
        principal: principal.into(),
        principal_kind: PrincipalKind::User,
        id: id.into(),
        ..Event::default()
    }
}

const T0: i64 = 1_704_067_200_000; // Monday 2024-01-01

/// Feeds `per_hour(day, hour)` events for each hour of `days` days to the
/// detector `name` and returns the alerts.
fn run_with(name: &str, days: i64, per_hour: impl Fn(i64, i64) -> u64) -> (Vec<Alert>, CountDetectorStats) {
    let mut d = CountDetector::new(def(name));
    let mut names = Interner::default();
    let id = names.intern("ana@x");
    let mut out = Vec::new();
    let mut n = 0;
    for day in 0..days {
        for hour in 0..24 {
            let start = T0 + (day * 24 + hour) * MS_PER_HOUR;
            let k = per_hour(day, hour);
            for i in 0..k {
                n += 1;
                let ev = query("ana@x", start + (i as i64 * MS_PER_HOUR) / k as i64, &format!("r{n}"));
                d.observe(id, PrincipalKind::User, || 0, &ev, EventTime(ev.time.0 - 15 * 60_000));
                d.advance(EventTime(ev.time.0 - 15 * 60_000), &names, &[EventTime(T0)], &mut out);
            }
        }
    }
    d.advance(EventTime(i64::MAX - MS_PER_HOUR), &names, &[EventTime(T0)], &mut out);
    (out, d.stats)
}

fn run(days: i64, per_hour: impl Fn(i64, i64) -> u64) -> (Vec<Alert>, CountDetectorStats) {
    run_with("query_frequency", days, per_hour)
}

/// An office rhythm with real day-to-day variation (busy and quiet days).
fn office(day: i64, hour: i64) -> u64 {
    let weekend = day % 7 >= 5;
    let busy = [1.0, 0.6, 1.4, 0.9, 1.2, 0.7, 1.5][(day * 3 % 7) as usize];
    if !weekend && (9..17).contains(&hour) { ((6 + (day * 7 + hour) % 5) as f64 * busy) as u64 } else { 0 }
}

#[test]
fn a_normal_working_rhythm_raises_nothing() {
    let (alerts, stats) = run(21, office);
    assert!(alerts.is_empty(), "{alerts:#?}");
    assert!(stats.buckets_scored > 100);
}

#[test]
fn a_night_burst_is_caught_and_explained() {
    let (alerts, _) = run(21, |day, hour| if day == 10 && hour == 2 { 300 } else { office(day, hour) });
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.principal, "ana@x");
    assert_eq!(a.observed, 300.0);
    assert_eq!(a.window_start, "2024-01-11T02:00:00.000Z");
    assert!(a.score >= 90 && a.severity == Severity::High, "{a:#?}");
    assert_eq!(a.evidence.len(), 10);
    assert_eq!(a.context.evidence_total, 300);
    assert!(a.p_value > 0.0 && a.p_value < 1e-9, "{}", a.p_value);
    assert!(
        a.summary.starts_with("User ana@x had 300 queries and commands between 02:00–03:00 UTC on Thursday 2024-01-11"),
        "{}",
        a.summary
    );
    assert!(a.summary.contains("judged against 10 days of its own history"), "{}", a.summary);
}

#[test]
fn weekend_and_night_work_at_ordinary_volume_raise_no_volume_alert() {
    // A weekday worker working a full ordinary day on a Saturday, and an
    // ordinary-volume night: not a burst.
    let (alerts, _) = run(28, |day, hour| match (day, hour) {
        (19, 9..17) => office(2, hour),
        (22, 1..4) => office(3, 10),
        _ => office(day, hour),
    });
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn a_night_at_ordinary_volume_is_an_unusual_hour_once() {
    let night = |day: i64, hour: i64| match (day, hour) {
        (22, 1..4) | (24, 2) => office(3, 10),
        _ => office(day, hour),
    };
    let (alerts, _) = run_with("unusual_hours", 28, night);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!((a.detector.as_str(), a.window_start.as_str()), ("unusual_hours", "2024-01-23T01:00:00.000Z"));
    assert_eq!(a.severity, Severity::Low);
    assert!(a.score < 30, "{a:#?}");
    assert!(a.summary.contains("was active between 01:00–02:00 UTC on Tuesday 2024-01-23"), "{}", a.summary);
    // A Saturday at office hours is not an unusual hour of the day.
    let (alerts, _) =
        run_with(
            "unusual_hours",
            28,
            |day, hour| if day == 19 && (9..17).contains(&hour) { 8 } else { office(day, hour) },
        );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn no_alert_in_a_principals_first_hours() {
    let (alerts, stats) = run(2, |day, hour| if day == 0 && hour == 2 { 5000 } else { office(day, hour) });
    assert!(alerts.is_empty(), "{alerts:#?}");
    assert_eq!(stats.too_young, 1);
}

#[test]
fn late_events_are_counted_not_mixed_in() {
    let mut d = CountDetector::new(def("query_frequency"));
    let mut names = Interner::default();
    let id = names.intern("ana@x");
    let mut out = Vec::new();
    d.observe(id, PrincipalKind::User, || 0, &query("ana@x", T0, "a"), EventTime(T0));
    d.advance(EventTime(T0 + 2 * MS_PER_HOUR), &names, &[EventTime(T0)], &mut out);
    d.observe(id, PrincipalKind::User, || 0, &query("ana@x", T0 + 10, "b"), EventTime(T0 + 2 * MS_PER_HOUR));
    assert_eq!(d.stats.late, 1);
    assert_eq!(d.stats.buckets_scored, 1);
}

/// Eight users with office rhythms (heavy and light ones) from day 0, and a
/// newcomer from day 14 whose activity per hour is `newcomer(day, hour)`.
fn with_newcomer(name: &str, newcomer: impl Fn(i64, i64) -> u64) -> (Vec<Alert>, CountDetectorStats) {
    let mut d = CountDetector::new(def(name));
    let mut names = Interner::default();
    let people: Vec<PrincipalId> = (0..9).map(|i| names.intern(&format!("u{i}@x"))).collect();
    let mut first_seen = vec![EventTime(T0); 9];
    first_seen[8] = EventTime(T0 + 14 * 24 * MS_PER_HOUR + 9 * MS_PER_HOUR);
    let mut out = Vec::new();
    let mut n = 0;
    for day in 0..17 {
        for hour in 0..24 {
            let start = T0 + (day * 24 + hour) * MS_PER_HOUR;
            for (i, id) in people.iter().enumerate() {
                let k = if i < 8 {
                    office(day + i as i64, hour) * [1, 3, 1, 2, 1, 5, 1, 1][i]
                } else if day >= 14 {
                    newcomer(day, hour)
                } else {
                    0
                };
                for j in 0..k {
                    n += 1;
                    let ev = query(names.name(*id), start + (j as i64 * MS_PER_HOUR) / k as i64, &format!("r{n}"));
                    d.observe(*id, PrincipalKind::User, || 0, &ev, EventTime(start));
                }
            }
            d.advance(EventTime(start), &names, &first_seen, &mut out);
        }
    }
    d.advance(EventTime(i64::MAX - MS_PER_HOUR), &names, &first_seen, &mut out);
    (out, d.stats)
}

#[test]
fn a_newcomer_behaving_like_its_peers_is_quiet() {
    for name in ["query_frequency", "unusual_hours"] {
        let (alerts, _) = with_newcomer(name, |day, hour| office(day, hour) * 2);
        assert!(alerts.is_empty(), "{name}: {alerts:#?}");
    }
}

#[test]
fn a_newcomer_bursting_at_night_is_judged_on_its_peers() {
    let (alerts, stats) =
        with_newcomer("query_frequency", |day, hour| if day == 15 && hour == 2 { 400 } else { office(day, hour) });
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(stats.judged_by_peers, 1);
    let a = &alerts[0];
    assert_eq!((a.principal.as_str(), a.observed), ("u8@x", 400.0));
    assert!(a.summary.contains("judged mostly on its peers: it was first seen 18 hours earlier"), "{}", a.summary);
    assert!(a.summary.contains("9 users average"), "{}", a.summary);
}

/// Two groups of seven: night-shift operators (group 1, around 20 queries
/// at 02:00 every night) and office workers (group 2); a newcomer of
/// `group` runs 30 queries at 02:00 on its second day.
fn night_newcomer(group: u32) -> Vec<Alert> {
    let mut d = CountDetector::new(def("unusual_hours"));
    let mut names = Interner::default();
    let people: Vec<PrincipalId> = (0..15).map(|i| names.intern(&format!("p{i:02}@x"))).collect();
    let mut first_seen = vec![EventTime(T0); 15];
    first_seen[14] = EventTime(T0 + 14 * 24 * MS_PER_HOUR + 9 * MS_PER_HOUR);
    let mut out = Vec::new();
    let mut n = 0;
    for day in 0..17 {
        for hour in 0..24 {
            let start = T0 + (day * 24 + hour) * MS_PER_HOUR;
            for (i, id) in people.iter().enumerate() {
                let (g, k) = match i {
                    0..7 => (1, if (1..5).contains(&hour) { 20 + (day + i as i64) as u64 % 3 } else { 0 }),
                    7..14 => (2, office(day + i as i64, hour)),
                    _ => (
                        group,
                        if day == 15 && hour == 2 {
                            30
                        } else if day >= 14 {
                            office(day, hour)
                        } else {
                            0
                        },
                    ),
                };
                for j in 0..k {
                    n += 1;
                    let ev = query(names.name(*id), start + (j as i64 * MS_PER_HOUR) / k as i64, &format!("r{n}"));
                    d.observe(*id, PrincipalKind::User, || g, &ev, EventTime(start));
                }
            }
            d.advance(EventTime(start), &names, &first_seen, &mut out);
        }
    }
    d.advance(EventTime(i64::MAX - MS_PER_HOUR), &names, &first_seen, &mut out);
    out
}

#[test]
fn a_newcomer_keeps_the_hours_of_its_own_group() {
    // A new night-shift operator working the night shift's hours is at no
    // unusual hour; the office group's peers would not say so (whether
    // one night of an office newcomer is enough to say it is unusual is
    // left to the rate of novelty, which needs the newcomer's own history).
    assert!(night_newcomer(1).is_empty(), "{:#?}", night_newcomer(1));
    assert!(night_newcomer(2).iter().all(|a| a.principal == "p14@x" && a.severity == Severity::Low));
}

#[test]
fn state_per_principal_is_small() {
    // The goal is at most 2 KiB per principal and signal.
    assert!(CountDetector::bytes_per_principal() <= 2048, "{}", CountDetector::bytes_per_principal());
}
