//! Alert delivery, against a reference measured in the same run.
//!
//! - Encoding: each target's shape (OCSF, ECS, Splunk HEC event, Slack,
//!   PagerDuty) against `serde_json::to_vec` of the alert itself.
//! - Delivery to a local HTTP receiver (tiny_http, answering 200): the
//!   webhook sink (spool on disk, a delivery thread, one alert per request)
//!   against a bare loop of ureq POSTs of the same bodies with no spool;
//!   and the Splunk HEC sink, batched, against the same bare loop.
//!
//! `cargo bench --bench sinks`; `cargo test --benches` runs it once, small.

use auditwatch::alert::{Alert, AlertContext, Severity};
use auditwatch::event::PrincipalKind;
use auditwatch::sink::config::{DeliveryConfig, Format};
use auditwatch::sink::{FanOut, Mode, format};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn alert(i: usize) -> Alert {
    Alert {
        schema_version: 1,
        alert_id: format!("{i:032x}"),
        detector: "query_frequency".into(),
        principal: format!("user{}@example.com", i % 500),
        workspace_id: "1234567890".into(),
        window_start: "2026-03-02T10:00:00Z".into(),
        window_end: "2026-03-02T11:00:00Z".into(),
        observed: 420.0,
        expected: 12.5,
        expected_low: 3.0,
        expected_high: 25.0,
        score: 88,
        p_value: 1.5e-9,
        severity: Severity::High,
        summary: format!(
            "user{}@example.com ran 420 queries between 10:00 and 11:00 UTC from 203.0.113.{}, 34 times its usual 12.5 for a Monday at 10:00; its peers ran 10.",
            i % 500,
            i % 250
        ),
        evidence: (0..5).map(|e| format!("0f{i:08x}-{e:04x}-4a5b-8c9d-1234567890ab")).collect(),
        corrects: None,
        triage: Default::default(),
        context: AlertContext {
            principal_kind: PrincipalKind::User,
            groups: vec!["analysts".into(), "finance-readers".into()],
            privileges: vec!["SELECT on main.sales".into()],
            signal: "query_count".into(),
            model: "seasonal_gamma_poisson".into(),
            baseline_age_hours: 500.0,
            baseline_samples: 20.0,
            peer_value: Some(10.0),
            evidence_total: 420,
            config_version: "abcdef012345".into(),
        },
    }
}

/// A local receiver answering 200 to everything; counts requests and bytes.
struct Receiver {
    server: Arc<tiny_http::Server>,
    requests: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let (s, n) = (Arc::clone(&server), Arc::clone(&requests));
        let thread = std::thread::spawn(move || {
            for mut r in s.incoming_requests() {
                let mut sink = Vec::new();
                let _ = r.as_reader().read_to_end(&mut sink);
                n.fetch_add(1, Ordering::Relaxed);
                let _ = r.respond(tiny_http::Response::empty(200));
            }
        });
        Receiver { server, requests, thread: Some(thread) }
    }
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.server_addr())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Alerts per second of `f` over `alerts`, best of `rounds`.
fn rate(rounds: usize, n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    n as f64 / best
}

fn through_fanout(config_text: &str, alerts: &[Alert]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config_text).unwrap();
    let config = DeliveryConfig::load(&path, &["query_frequency"]).unwrap();
    let t = Instant::now();
    let mut fanout =
        FanOut::open(&config, &dir.path().join("spool"), Mode::Batch, &prometheus::Registry::new()).unwrap();
    for a in alerts {
        fanout.accept(a).unwrap();
    }
    let report = fanout.finish(Duration::from_secs(600)).unwrap();
    let took = t.elapsed().as_secs_f64();
    assert_eq!(report.sinks[0].delivered, alerts.len() as u64);
    alerts.len() as f64 / took
}

/// One target's encoder, as bytes on the wire.
type Encoder = dyn Fn(&Alert) -> Vec<u8>;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 20_000 } else { 200 };
    let rounds = if full { 5 } else { 1 };
    let alerts: Vec<Alert> = (0..n).map(alert).collect();

    println!("encoding {n} alerts (best of {rounds}), alerts/s and ratio to serde_json::to_vec(alert):");
    let reference = rate(rounds, n, || {
        for a in &alerts {
            black_box(serde_json::to_vec(a).unwrap());
        }
    });
    println!("  {:<28} {:>12.0}  1.00", "alert JSON (reference)", reference);
    let shapes: [(&str, &Encoder); 5] = [
        ("OCSF detection finding", &|a| format::ocsf(a).to_string().into_bytes()),
        ("ECS document", &|a| format::ecs(a).to_string().into_bytes()),
        ("Splunk HEC event", &|a| {
            format::splunk_event(a, Format::Alert, Some("sec"), "auditwatch", "auditwatch:alert", "h")
                .to_string()
                .into_bytes()
        }),
        ("Slack blocks", &|a| format::slack_message(a).to_string().into_bytes()),
        ("PagerDuty event", &|a| format::pagerduty_event(a, "key").to_string().into_bytes()),
    ];
    for (name, f) in shapes {
        let r = rate(rounds, n, || {
            for a in &alerts {
                black_box(f(a));
            }
        });
        println!("  {name:<28} {r:>12.0}  {:.2}", r / reference);
    }

    let m = if full { 5_000 } else { 100 };
    let sample = &alerts[..m];
    let rx = Receiver::start();
    let bodies: Vec<Vec<u8>> = sample.iter().map(|a| serde_json::to_vec(a).unwrap()).collect();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = rx.url("/bare");
    let bare = rate(1, m, || {
        for b in &bodies {
            let r = agent.post(&url).header("Content-Type", "application/json").send(&b[..]).unwrap();
            assert_eq!(r.status(), 200);
        }
    });
    let hook = through_fanout(
        &format!("[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n", rx.url("/hook")),
        sample,
    );
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "hec-token\n").unwrap();
    let hec = through_fanout(
        &format!(
            "[[sink]]\nname = \"hec\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken_file = \"{}\"\nbatch_max = 100\n",
            rx.url(""),
            token.path().display()
        ),
        sample,
    );
    println!("delivering {m} alerts to a local HTTP receiver, alerts/s and ratio to bare ureq POSTs (no spool):");
    println!("  {:<40} {:>10.0}  1.00", "bare ureq POST, one alert each (reference)", bare);
    println!("  {:<40} {:>10.0}  {:.2}", "webhook sink (spool, thread, retries)", hook, hook / bare);
    println!("  {:<40} {:>10.0}  {:.2}", "Splunk HEC sink, batch_max 100", hec, hec / bare);
    println!("  receiver saw {} requests", rx.requests.load(Ordering::Relaxed));
}
