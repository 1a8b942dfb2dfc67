use super::*;

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
    assert_eq!(read_labels(&dir.path().join("labels.jsonl")).unwrap(), summary.incidents);

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
