use super::*;
use crate::event::PrincipalKind;

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = crate::source::files::discover(&[dir.to_path_buf()]).unwrap();
    files.sort();
    files
        .into_iter()
        .map(|f| (f.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&f).unwrap()))
        .collect()
}

fn small() -> GenerateConfig {
    GenerateConfig { days: 8, principals: 24, seed: 11, ..Default::default() }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(&small(), a.path()).unwrap();
    generate(&small(), b.path()).unwrap();
    generate(&GenerateConfig { seed: 12, ..small() }, c.path()).unwrap();
    assert_eq!(tree(a.path()), tree(b.path()));
    assert_ne!(tree(a.path()), tree(c.path()));
}

#[test]
fn every_record_decodes_and_labels_name_real_activity() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&small(), dir.path()).unwrap();
    assert!(summary.total_events > 5_000, "{summary:?}");
    let signals: Vec<&str> = summary.incidents.iter().map(|l| l.signal.as_str()).collect();
    for s in [
        "query_frequency",
        "permission_change",
        "job_runtime",
        "failed_login",
        "secret_read",
        "data_download",
        "token_creation",
    ] {
        assert!(signals.contains(&s), "no {s} incident in {signals:?}");
    }
    assert_eq!(read_labels(&dir.path().join(LABELS)).unwrap(), summary.incidents);
    assert_eq!(read_hard_negatives(&dir.path().join(HARD_NEGATIVES)).unwrap(), summary.hard_negatives);
    assert_eq!(read_principals(&dir.path().join(PRINCIPALS)).unwrap(), summary.principals);

    let mut ev = crate::event::Event::default();
    let mut seen_in_window = vec![false; summary.incidents.len()];
    let mut decoded = 0u64;
    for f in crate::source::files::discover(&[dir.path().join(LOGS_DIR)]).unwrap() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            crate::decode::decode_json(line.as_bytes(), &mut ev).unwrap_or_else(|r| panic!("{name}: {r}: {line}"));
            decoded += 1;
            for (i, l) in summary.incidents.iter().enumerate() {
                let (s, e) = (EventTime::parse(&l.start).unwrap(), EventTime::parse(&l.end).unwrap());
                let named = ev.principal == l.principal || ev.target == l.principal || ev.run_as == l.principal;
                if named && ev.time >= s && ev.time <= e {
                    seen_in_window[i] = true;
                }
            }
        }
    }
    assert_eq!(decoded, summary.total_events);
    for (l, seen) in summary.incidents.iter().zip(seen_in_window) {
        assert!(seen, "no event of {} in its window: {l:?}", l.principal);
    }
}

#[test]
fn volume_scales_with_days_and_principals() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = generate(&GenerateConfig { days: 7, principals: 20, seed: 3, ..Default::default() }, a.path()).unwrap();
    let two = generate(&GenerateConfig { days: 14, principals: 20, seed: 3, ..Default::default() }, b.path()).unwrap();
    let ratio = two.total_events as f64 / one.total_events as f64;
    assert!((1.5..2.5).contains(&ratio), "{ratio}");
}

#[test]
fn gzip_output_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = generate(&GenerateConfig { gzip: true, ..small() }, dir.path()).unwrap();
    let gz: Vec<_> = crate::source::files::discover(&[dir.path().join(LOGS_DIR).join("audit-logs")]).unwrap();
    assert!(gz.iter().all(|f| f.to_string_lossy().ends_with(".json.gz")));
    assert!(s.total_events > 0);
    assert_eq!(crate::source::files::sniff(&gz[0]).unwrap(), crate::source::files::Format::GzipJsonLines);
}

/// The default scenario's people, with their archetypes and hard negatives.
fn default_set() -> &'static (tempfile::TempDir, GenerateSummary) {
    static SET: std::sync::OnceLock<(tempfile::TempDir, GenerateSummary)> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(&GenerateConfig { seed: 5, ..Default::default() }, dir.path()).unwrap();
        (dir, summary)
    })
}

#[test]
fn every_archetype_and_hard_negative_kind_is_present() {
    let (_, s) = default_set();
    assert_eq!(s.principals.len(), 60);
    for a in Archetype::ALL {
        let p = s.principals.iter().find(|p| p.archetype == a).unwrap_or_else(|| panic!("no {a:?}"));
        let want = if a.human() { PrincipalKind::User } else { PrincipalKind::ServicePrincipal };
        assert_eq!(p.kind, want, "{p:?}");
    }
    let office = s.principals.iter().filter(|p| p.archetype == Archetype::Office).count();
    assert!((12..=30).contains(&office), "office workers are the bulk: {office}");
    for k in [
        HardNegativeKind::WeekendWork,
        HardNegativeKind::NightWork,
        HardNegativeKind::OnCall,
        HardNegativeKind::Travel,
        HardNegativeKind::MonthEnd,
        HardNegativeKind::Backfill,
    ] {
        assert!(s.hard_negatives.iter().any(|h| h.kind == k), "no {k:?} hard negative");
    }
    // A hard negative is ordinary: never inside an incident of its principal.
    for h in &s.hard_negatives {
        let (hs, he) = (EventTime::parse(&h.start).unwrap(), EventTime::parse(&h.end).unwrap());
        assert!(hs < he, "{h:?}");
        for l in s.incidents.iter().filter(|l| l.principal == h.principal) {
            let (ls, le) = (EventTime::parse(&l.start).unwrap(), EventTime::parse(&l.end).unwrap());
            assert!(le <= hs || he <= ls, "{h:?} overlaps {l:?}");
        }
    }
}

#[test]
fn incidents_spread_over_archetypes_and_keep_every_kind() {
    let (_, s) = default_set();
    let archetype = |who: &str| s.principals.iter().find(|p| p.principal == who).unwrap().archetype;
    let hit: std::collections::BTreeSet<Archetype> = s.incidents.iter().map(|l| archetype(&l.principal)).collect();
    assert!(hit.len() >= 7, "incidents on {hit:?}");
    let signals: Vec<&str> = s.incidents.iter().map(|l| l.signal.as_str()).collect();
    for k in [
        "query_frequency",
        "permission_change",
        "job_runtime",
        "cost",
        "failed_login",
        "token_creation",
        "secret_read",
        "data_download",
        "source",
        "offboarded_principal",
        "role_drift",
        "share_down_write",
    ] {
        assert!(signals.contains(&k), "no {k} incident in {signals:?}");
    }
}

/// SQL per (principal, hour index): submitted queries and notebook
/// commands, in every hour the principal did anything at all.
fn query_counts(dir: &Path) -> std::collections::BTreeMap<(String, i64), u32> {
    let mut per: std::collections::BTreeMap<(String, i64), u32> = Default::default();
    let mut ev = crate::event::Event::default();
    for f in crate::source::files::discover(&[dir.join(LOGS_DIR)]).unwrap() {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            crate::decode::decode_json(line.as_bytes(), &mut ev).unwrap();
            let n = per.entry((ev.principal.clone(), ev.time.0.div_euclid(MS_PER_HOUR))).or_default();
            *n += u32::from(ev.action == "commandSubmit" || ev.action == "runCommand");
        }
    }
    per
}

fn counts() -> &'static std::collections::BTreeMap<(String, i64), u32> {
    static COUNTS: std::sync::OnceLock<std::collections::BTreeMap<(String, i64), u32>> = std::sync::OnceLock::new();
    COUNTS.get_or_init(|| query_counts(default_set().0.path()))
}

#[test]
fn counts_are_overdispersed_and_users_differ_tenfold() {
    let (_, s) = default_set();
    let mut overdispersed = 0;
    let mut means = Vec::new();
    for p in s.principals.iter().filter(|p| p.archetype == Archetype::Office) {
        let busy: Vec<f64> = counts()
            .range((p.principal.clone(), i64::MIN)..=(p.principal.clone(), i64::MAX))
            .map(|(_, &n)| n as f64)
            .collect();
        if busy.len() < 30 {
            continue;
        }
        let mean = busy.iter().sum::<f64>() / busy.len() as f64;
        let var = busy.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (busy.len() - 1) as f64;
        // Poisson would give a variance about the mean; a rate that varies
        // by a coefficient of variation c adds c²·mean².
        overdispersed += usize::from(var - mean > 0.25 * mean * mean);
        means.push(mean);
    }
    assert!(overdispersed * 4 >= means.len() * 3, "{overdispersed} of {} overdispersed", means.len());
    means.sort_by(f64::total_cmp);
    assert!(means.last().unwrap() / means[0] >= 10.0, "heavy and light users: {means:?}");
}

#[test]
fn query_bursts_are_far_above_the_principals_busiest_ordinary_hour() {
    let (_, s) = default_set();
    for l in s.incidents.iter().filter(|l| l.signal == "query_frequency") {
        let hour = |t: &str| EventTime::parse(t).unwrap().0.div_euclid(MS_PER_HOUR);
        let mine = counts().range((l.principal.clone(), i64::MIN)..=(l.principal.clone(), i64::MAX));
        // Ordinary hours: outside every incident of the principal.
        let theirs: Vec<(i64, i64)> =
            s.incidents.iter().filter(|o| o.principal == l.principal).map(|o| (hour(&o.start), hour(&o.end))).collect();
        let busiest = mine
            .clone()
            .filter(|((_, h), _)| theirs.iter().all(|(a, b)| h < a || h > b))
            .map(|(_, &n)| n)
            .max()
            .unwrap_or(0);
        let burst = counts()[&(l.principal.clone(), hour(&l.start))];
        assert!(burst as f64 >= 1.25 * busiest as f64, "{l:?}: {burst} against a busiest ordinary hour of {busiest}");
    }
}

#[test]
fn a_longer_period_has_the_same_people() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let short = generate(&GenerateConfig { days: 14, seed: 9, ..Default::default() }, a.path()).unwrap();
    let long = generate(&GenerateConfig { days: 28, seed: 9, ..Default::default() }, b.path()).unwrap();
    assert_eq!(short.principals, long.principals);
}
