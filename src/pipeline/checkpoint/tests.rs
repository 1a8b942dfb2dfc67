use super::*;
use crate::alert::Alert;
use crate::detect::definition::built_in;
use crate::event::Event;
use crate::generate::{ACCESS_SNAPSHOT, GenerateConfig, generate};
use std::sync::OnceLock;

/// A generated data set as events in delivery order (prices first), and
/// the access snapshot it comes with.
struct Data {
    events: Vec<Event>,
    snapshot: Vec<crate::access::SnapshotFact>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = GenerateConfig { days: 9, principals: 30, seed: 21, ..Default::default() };
        generate(&cfg, dir.path()).unwrap();
        let mut files = Vec::new();
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() { walk(&p, out) } else { out.push(p) }
            }
        }
        walk(&dir.path().join("logs"), &mut files);
        let mut events = Vec::new();
        let mut ev = Event::default();
        for f in files {
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                crate::decode::decode_json(line.as_bytes(), &mut ev).unwrap();
                events.push(ev.clone());
            }
        }
        // Prices first, then event time (ties by id): a delivery order.
        events.sort_by(|a, b| {
            let price = |e: &Event| e.shape != Some(crate::event::Shape::ListPrice);
            (price(a), a.time, &a.id).cmp(&(price(b), b.time, &b.id))
        });
        let text = std::fs::read_to_string(dir.path().join(ACCESS_SNAPSHOT)).unwrap();
        let snapshot = crate::access::parse_snapshot("snapshot", &text).unwrap();
        Data { events, snapshot }
    })
}

fn config() -> PipelineConfig {
    let mut c = PipelineConfig::new(built_in().unwrap());
    c.access_snapshot = data().snapshot.clone();
    c
}

fn lines(alerts: &[Alert]) -> Vec<String> {
    alerts.iter().map(|a| serde_json::to_string(a).unwrap()).collect()
}

fn feed(p: &mut Pipeline, events: &[Event], out: &mut Vec<Alert>) {
    for e in events {
        let _ = p.event(e, out);
    }
}

#[test]
fn a_restored_pipeline_raises_exactly_what_an_uninterrupted_one_does() {
    let events = &data().events;
    let mut whole = Pipeline::new(config());
    let mut want = Vec::new();
    feed(&mut whole, events, &mut want);
    whole.finish(&mut want);
    assert!(want.len() > 10, "the data set raises alerts: {}", want.len());

    for cut in [events.len() / 7, events.len() / 2, events.len() * 5 / 6] {
        let mut first = Pipeline::new(config());
        let mut got = Vec::new();
        feed(&mut first, &events[..cut], &mut got);
        let bytes = first.checkpoint();
        drop(first);
        // Twice through bytes: hash maps may iterate in another order after
        // a restore, so the bytes may differ, but never their length.
        let again = Pipeline::restore(config(), &bytes).unwrap().checkpoint();
        assert_eq!(again.len(), bytes.len(), "cut {cut}");
        let mut second = Pipeline::restore(config(), &again).unwrap();
        feed(&mut second, &events[cut..], &mut got);
        second.finish(&mut got);
        assert_eq!(lines(&got), lines(&want), "cut at event {cut} of {}", events.len());
    }
}

#[test]
fn other_definitions_or_damaged_bytes_are_refused_without_panicking() {
    let events = &data().events;
    let mut p = Pipeline::new(config());
    feed(&mut p, &events[..2000], &mut Vec::new());
    let bytes = p.checkpoint();

    let mut changed = config();
    changed.definitions.pop();
    let e = Pipeline::restore(changed, &bytes).err().unwrap();
    assert!(matches!(e, CheckpointError::DefinitionsChanged { .. }), "{e}");
    assert!(e.to_string().contains("other detector definitions"));

    for cut in (0..bytes.len()).step_by(97) {
        assert!(Pipeline::restore(config(), &bytes[..cut]).is_err(), "cut {cut}");
    }
    for at in (0..bytes.len()).step_by(89) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x04;
        assert!(Pipeline::restore(config(), &flipped).is_err(), "flip at {at}");
    }
}

#[test]
fn a_payload_that_passes_the_checksum_but_not_the_format_is_an_error() {
    // Build a well-formed envelope around garbage: the checksum holds, the
    // payload does not decode.
    let c = config();
    let payload = vec![0xffu8; 64];
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&fingerprint(&c));
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum[..SUM]);
    assert!(matches!(Pipeline::restore(c, &out), Err(CheckpointError::Payload(_))));
}
