//! Alert fan-out against real HTTP servers on 127.0.0.1: receivers that
//! are down for a while, answer 500, 429 with Retry-After, are slow past
//! the timeout, refuse with 400; a process killed with alerts in its spool;
//! each target's request shape (Splunk HEC, Elastic bulk, Slack,
//! PagerDuty, OCSF) and the file sinks (JSON lines, Parquet read by pyarrow).

mod common;

use common::{Down, Receiver, Reply, Respond, free_port};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn auditwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditwatch"));
    c.env_remove("RUST_LOG");
    c
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    if !out.status.success() {
        panic!(
            "auditwatch failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// A small generated workspace (about 20 alerts) in `dir/data`.
fn data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    run(auditwatch().args(["generate", "--days", "10", "--principals", "25", "--seed", "5", "--out"]).arg(&data));
    data.join("logs")
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ids_of(alerts: &[Value]) -> BTreeSet<String> {
    alerts.iter().map(|a| a["alert_id"].as_str().unwrap().to_owned()).collect()
}

/// The alerts a plain replay writes: what every sink must end up with.
fn expected(dir: &Path, logs: &Path) -> Vec<Value> {
    let out = dir.join("expected.jsonl");
    run(auditwatch().arg("replay").arg(logs).arg("--alerts-out").arg(&out).arg("--no-progress"));
    let alerts = read_jsonl(&out);
    assert!(alerts.len() >= 10, "the data set should raise alerts, got {}", alerts.len());
    alerts
}

/// A temporary folder with generated logs and the alerts a plain replay raises.
fn setup() -> (tempfile::TempDir, PathBuf, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let logs = data(dir.path());
    let want = expected(dir.path(), &logs);
    (dir, logs, want)
}

/// `replay` of `logs` with the sinks of `config`, spooling under `dir/spool`.
fn replay_cmd(dir: &Path, logs: &Path, config: &Path) -> Command {
    let mut c = auditwatch();
    c.arg("replay").arg(logs).args(["--no-progress", "--config"]).arg(config).arg("--spool-dir").arg(dir.join("spool"));
    c
}

fn replay_to_sinks(dir: &Path, logs: &Path, config: &Path) -> Output {
    run(&mut replay_cmd(dir, logs, config))
}

/// The `alert_id` of each webhook request, in arrival order.
fn posted_ids(hits: &[common::Hit]) -> Vec<String> {
    hits.iter()
        .map(|h| serde_json::from_str::<Value>(&h.body).unwrap()["alert_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Alerts held in the sinks' spools, as `/metrics` on `addr` reports them.
fn spooled(addr: &str) -> Option<f64> {
    let mut response = ureq::get(&format!("http://{addr}/metrics")).call().ok()?;
    let body = response.body_mut().read_to_string().ok()?;
    body.lines()
        .filter(|l| l.starts_with("auditwatch_sink_queue_depth{"))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sinks.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_receiver_down_for_a_while_gets_every_alert_once_signed() {
    let (dir, logs, want) = setup();
    let port = free_port();
    let (down, failures) = Down::start(port);
    let mut child = auditwatch()
        .arg("replay")
        .arg(&logs)
        .args(["--no-progress", "--drain-timeout", "120", "--webhook"])
        .arg(format!("http://127.0.0.1:{port}/hook"))
        .args(["--webhook-secret-env", "AW_TEST_HMAC", "--spool-dir"])
        .arg(dir.path().join("spool"))
        .env("AW_TEST_HMAC", "k3y-for-tests")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Down (connections closed unanswered) until two deliveries have
    // failed, so the second is a retry; then up.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut failed = Vec::new();
    while failed.len() < 2 {
        match failures.recv_timeout(Duration::from_secs(1)) {
            Ok(id) => failed.push(id),
            Err(_) => {
                assert!(child.try_wait().unwrap().is_none(), "auditwatch ended before the receiver came up");
                assert!(Instant::now() < deadline, "{} deliveries failed in 120 s, not 2", failed.len());
            }
        }
    }
    drop(down);
    let rx = Receiver::start(port, Box::new(|_, _| Reply::status(204)));
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    // What failed while the receiver was down was sent again until taken.
    let accepted = posted_ids(&rx.accepted());
    for id in &failed {
        assert_eq!(accepted.iter().filter(|a| *a == id).count(), 1, "{id} failed and was not delivered once");
    }
    let hits = rx.hits();
    let mut got = BTreeSet::new();
    for h in &hits {
        assert_eq!(h.url, "/hook");
        assert_eq!(h.headers["content-type"], "application/json");
        let sig = &h.headers["x-auditwatch-signature"];
        assert_eq!(*sig, format!("sha256={}", hmac_hex("k3y-for-tests", h.body.as_bytes())), "signature verifies");
        let alert: Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(h.headers["x-auditwatch-alert-id"], alert["alert_id"].as_str().unwrap());
        got.insert(alert["alert_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, ids_of(&want), "every alert, by alert_id");
    assert_eq!(accepted.len(), want.len(), "each accepted exactly once: {accepted:?}");
    assert!(stdout.contains(&format!("{} delivered, 0 dead-lettered, 0 in the spool", want.len())), "{stdout}");
    // The secret appears nowhere in what the process printed.
    assert!(!stdout.contains("k3y-for-tests") && !String::from_utf8_lossy(&out.stderr).contains("k3y-for-tests"));
}

#[test]
fn errors_then_429_with_retry_after_are_retried_and_honoured() {
    let (dir, logs, want) = setup();
    // 500 four times, then 429 asking for 2 s, then success.
    let rx = Receiver::start(
        0,
        Box::new(|n, _| match n {
            0..=3 => Reply { body: "upstream broke".into(), ..Reply::status(500) },
            4 => Reply { headers: vec![("Retry-After", "2".into())], ..Reply::status(429) },
            _ => Reply::status(200),
        }),
    );
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nretry_initial_ms = 20\nretry_max_ms = 200\n",
            rx.url("/in")
        ),
    );
    let out = replay_to_sinks(dir.path(), &logs, &cfg);
    let hits = rx.hits();
    assert_eq!(rx.failed().len(), 5, "the receiver failed five requests");
    assert!(hits[..5].iter().all(|h| !h.accepted()) && hits[5].accepted(), "five failed attempts, then success");
    let accepted = posted_ids(&rx.accepted());
    assert_eq!(accepted.len(), want.len(), "one accepted request per alert: {accepted:?}");
    let resent: Value = serde_json::from_str(&hits[5].body).unwrap();
    assert_eq!(
        resent["alert_id"],
        serde_json::from_str::<Value>(&hits[0].body).unwrap()["alert_id"],
        "the same alert is sent again"
    );
    // Retry-After: 2 is honoured although the backoff is at most 200 ms.
    assert!(hits[5].at - hits[4].at >= Duration::from_millis(1900), "waited {:?}", hits[5].at - hits[4].at);
    let got: BTreeSet<String> = accepted.into_iter().collect();
    assert_eq!(got, ids_of(&want), "every alert accepted, the failed one included");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 dead-lettered, 0 in the spool"));
}

#[test]
fn a_receiver_slower_than_the_timeout_still_gets_everything() {
    let (dir, logs, want) = setup();
    // The first two requests take 3 s (past the 1 s timeout): the sender
    // gives up on them and sends again; the receiver saw them anyway.
    let rx = Receiver::start(
        0,
        Box::new(|n, _| {
            if n < 2 { Reply { delay: Duration::from_secs(3), ..Reply::status(200) } } else { Reply::status(200) }
        }),
    );
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nname = \"slow\"\ntype = \"webhook\"\nurl = \"{}\"\ntimeout_seconds = 1\nretry_initial_ms = 50\n",
            rx.url("/slow")
        ),
    );
    replay_to_sinks(dir.path(), &logs, &cfg);
    let got = posted_ids(&rx.hits());
    let distinct: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(distinct, ids_of(&want), "every alert, deduplicated by alert_id");
    assert!(got.len() > want.len(), "the timed-out requests were sent again");
}

#[test]
fn a_400_goes_to_the_dead_letter_file_with_the_response() {
    let (dir, logs, want) = setup();
    let refused: BTreeSet<String> = ids_of(&want).into_iter().step_by(3).collect();
    let refused_rx = refused.clone();
    let rx = Receiver::start(
        0,
        Box::new(move |_, hit| {
            let id = serde_json::from_str::<Value>(&hit.body).unwrap()["alert_id"].as_str().unwrap().to_owned();
            if refused_rx.contains(&id) {
                Reply { body: r#"{"error":"field summary too long"}"#.into(), ..Reply::status(400) }
            } else {
                Reply::status(200)
            }
        }),
    );
    let cfg =
        config(dir.path(), &format!("[[sink]]\nname = \"picky\"\ntype = \"webhook\"\nurl = \"{}\"\n", rx.url("/p")));
    let spool = dir.path().join("spool");
    let out = replay_to_sinks(dir.path(), &logs, &cfg);
    assert_eq!(rx.hits().len(), want.len(), "a 400 is not retried");
    let dead = read_jsonl(&spool.join("picky/dead-letter.jsonl"));
    let dead_ids: BTreeSet<String> = dead.iter().map(|d| d["alert_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(dead_ids, refused);
    for d in &dead {
        assert_eq!(d["status"], 400);
        assert_eq!(d["reason"], "http_4xx");
        assert!(d["response"].as_str().unwrap().contains("field summary too long"));
        assert_eq!(d["alert"]["alert_id"], d["alert_id"], "the whole alert is kept");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "{} delivered, {} dead-lettered, 0 in the spool",
            want.len() - refused.len(),
            refused.len()
        )),
        "{stdout}"
    );
}

#[test]
fn killed_with_alerts_in_the_spool_then_delivered_after_restart() {
    let (dir, logs, want) = setup();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let spool = dir.path().join("spool");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = auditwatch()
        .arg("replay")
        .arg(&logs)
        .args(["--no-progress", "--drain-timeout", "600", "--webhook", &url, "--spool-dir"])
        .arg(&spool)
        .args(["--serve", &addr])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once every alert is in the spool, as the process reports it;
    // with the receiver dead, nothing leaves it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while spooled(&addr) != Some(want.len() as f64) {
        assert!(child.try_wait().unwrap().is_none(), "auditwatch ended before it was killed");
        assert!(Instant::now() < deadline, "the spool never held every alert: {:?}", spooled(&addr));
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();

    let rx = Receiver::start(port, Box::new(|_, _| Reply::status(200)));
    let out =
        run(auditwatch().args(["deliver", "--webhook", &url, "--drain-timeout", "60", "--spool-dir"]).arg(&spool));
    let got = posted_ids(&rx.hits());
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), ids_of(&want), "every spooled alert is delivered");
    assert_eq!(got.len(), want.len(), "exactly once");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 in the spool"));

    // A drain timeout with the receiver down exits 75 and keeps the alerts.
    drop(rx);
    let status = auditwatch()
        .arg("replay")
        .arg(&logs)
        .args(["--no-progress", "--drain-timeout", "0.5", "--webhook", &url, "--spool-dir"])
        .arg(&spool)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(75));
}

#[test]
fn each_target_gets_its_documented_shape() {
    let (dir, logs, want) = setup();
    let ok = |status: u16| -> Box<Respond> { Box::new(move |_, _| Reply::status(status)) };
    // The first answer takes 2 s, so that the alerts raised meanwhile wait
    // in the spool and go out in batches.
    let splunk = Receiver::start(
        0,
        Box::new(|n, _| Reply {
            body: r#"{"text":"Success","code":0}"#.into(),
            delay: Duration::from_secs(if n == 0 { 2 } else { 0 }),
            ..Reply::status(200)
        }),
    );
    // Elastic answers per item: the first alert it sees is throttled (429,
    // sent again), the second is already there (409, counts as delivered).
    let seen = Mutex::new(Vec::<String>::new());
    let elastic = Receiver::start(
        0,
        Box::new(move |_, hit| {
            let mut seen = seen.lock().unwrap();
            let items: Vec<Value> = hit
                .body
                .lines()
                .step_by(2)
                .map(|l| {
                    let id = serde_json::from_str::<Value>(l).unwrap()["create"]["_id"].as_str().unwrap().to_owned();
                    let first_time = !seen.contains(&id);
                    if first_time {
                        seen.push(id);
                    }
                    let status = match (first_time, seen.len()) {
                        (true, 1) => 429,
                        (true, 2) => 409,
                        _ => 201,
                    };
                    serde_json::json!({"create": {"status": status}})
                })
                .collect();
            Reply { body: serde_json::json!({"errors": true, "items": items}).to_string(), ..Reply::status(200) }
        }),
    );
    let slack = Receiver::start(0, Box::new(|_, _| Reply { body: "ok".into(), ..Reply::status(200) }));
    let pagerduty = Receiver::start(0, ok(202));
    let ocsf = Receiver::start(0, ok(200));
    let cfg = config(
        dir.path(),
        &format!(
            r#"
[[sink]]
name = "splunk"
type = "splunk_hec"
url = "{}"
token_env = "AW_HEC"
index = "security"
batch_max = 8
[[sink]]
name = "elastic"
type = "elastic"
url = "{}"
api_key_env = "AW_ES"
index = "dbx-alerts"
retry_initial_ms = 20
[[sink]]
name = "slack"
type = "slack"
url_env = "AW_SLACK"
mask = ["emails", "ips"]
[[sink]]
name = "pagerduty"
type = "pagerduty"
url = "{}"
routing_key_file = "{}"
min_severity = "info"
[[sink]]
name = "lake"
type = "webhook"
url = "{}"
format = "ocsf"
[[sink]]
name = "findings"
type = "file"
path = "{}"
format = "ocsf"
[[sink]]
name = "table"
type = "file"
path = "{}"
[[sink]]
name = "high-only"
type = "file"
path = "{}"
min_severity = "high"
"#,
            splunk.url(""),
            elastic.url(""),
            pagerduty.url("/v2/enqueue"),
            dir.path().join("pd.key").display(),
            ocsf.url("/ocsf"),
            dir.path().join("findings.jsonl").display(),
            dir.path().join("alerts.parquet").display(),
            dir.path().join("high.jsonl").display(),
        ),
    );
    std::fs::write(dir.path().join("pd.key"), "pd-routing-key\n").unwrap();
    let out = run(replay_cmd(dir.path(), &logs, &cfg)
        .env("AW_HEC", "hec-token")
        .env("AW_ES", "es-key")
        .env("AW_SLACK", slack.url("/services/T000/B000/XXXX")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = ids_of(&want);
    let by_id: BTreeMap<String, &Value> =
        want.iter().map(|a| (a["alert_id"].as_str().unwrap().to_owned(), a)).collect();

    // Splunk HEC: token auth, the event endpoint, batched events with time/host/source/sourcetype.
    let hits = splunk.hits();
    assert!(hits.len() < want.len(), "batched: {} requests for {} alerts", hits.len(), want.len());
    let mut got = BTreeSet::new();
    for h in &hits {
        assert_eq!(h.url, "/services/collector/event");
        assert_eq!(h.headers["authorization"], "Splunk hec-token");
        let events: Vec<Value> = serde_json::Deserializer::from_str(&h.body).into_iter().map(Result::unwrap).collect();
        assert!(events.len() <= 8);
        for e in events {
            assert!(e["time"].as_f64().unwrap() > 1.0e9, "epoch seconds");
            assert_eq!(e["source"], "auditwatch");
            assert_eq!(e["sourcetype"], "auditwatch:alert");
            assert_eq!(e["index"], "security");
            assert!(e["host"].as_str().is_some_and(|h| !h.is_empty()));
            let id = e["event"]["alert_id"].as_str().unwrap().to_owned();
            assert_eq!(e["event"]["summary"], by_id[&id]["summary"]);
            got.insert(id);
        }
    }
    assert_eq!(got, all);

    // Elastic: _bulk, ndjson, create by alert_id, ECS documents; the 429 item is sent again.
    let hits = elastic.hits();
    let mut got = BTreeSet::new();
    for h in &hits {
        assert_eq!(h.url, "/_bulk");
        assert_eq!(h.headers["content-type"], "application/x-ndjson");
        assert_eq!(h.headers["authorization"], "ApiKey es-key");
        let lines: Vec<Value> = h.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        for pair in lines.chunks(2) {
            let id = pair[0]["create"]["_id"].as_str().unwrap().to_owned();
            assert_eq!(pair[0]["create"]["_index"], "dbx-alerts");
            assert_eq!(pair[1]["event"]["kind"], "alert");
            assert_eq!(pair[1]["event"]["id"], id.as_str());
            assert_eq!(pair[1]["rule"]["name"], by_id[&id]["detector"]);
            assert_eq!(pair[1]["user"]["name"], by_id[&id]["principal"]);
            got.insert(id);
        }
    }
    assert_eq!(got, all);
    let sent: Vec<String> = hits
        .iter()
        .flat_map(|h| {
            h.body
                .lines()
                .step_by(2)
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["create"]["_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(sent.len(), want.len() + 1, "only the throttled item is sent twice");
    assert_eq!(sent.iter().filter(|id| **id == sent[0]).count(), 2, "the throttled item is sent again");
    assert!(
        stdout.contains(&format!(
            "sink elastic (elastic): {0} accepted, 0 filtered out, {0} delivered, 0 dead-lettered",
            want.len()
        )),
        "{stdout}"
    );

    // Slack: one readable message per alert, with emails and IPs masked.
    let hits = slack.hits();
    assert_eq!(hits.len(), want.len());
    for h in &hits {
        assert_eq!(h.url, "/services/T000/B000/XXXX");
        let m: Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(m["blocks"][0]["type"], "header");
        assert!(m["text"].as_str().unwrap().contains(']'));
        for a in &want {
            let p = a["principal"].as_str().unwrap();
            if p.contains('@') {
                assert!(!h.body.contains(p), "{p} must not reach Slack");
            }
        }
    }

    // PagerDuty: routing key from a file, dedup_key = alert_id, trigger.
    let hits = pagerduty.hits();
    let mut got = BTreeSet::new();
    for h in &hits {
        assert_eq!(h.url, "/v2/enqueue");
        let e: Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(e["routing_key"], "pd-routing-key");
        assert_eq!(e["event_action"], "trigger");
        assert!(["critical", "error", "warning", "info"].contains(&e["payload"]["severity"].as_str().unwrap()));
        got.insert(e["dedup_key"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, all);

    // OCSF over a webhook and to a file: Detection Findings.
    for finding in ocsf
        .hits()
        .iter()
        .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
        .chain(read_jsonl(&dir.path().join("findings.jsonl")))
    {
        assert_eq!(finding["class_uid"], 2004);
        assert_eq!(finding["type_uid"], 200401);
        assert!(all.contains(finding["finding_info"]["uid"].as_str().unwrap()));
    }
    assert_eq!(read_jsonl(&dir.path().join("findings.jsonl")).len(), want.len());

    // The severity filter.
    let high = read_jsonl(&dir.path().join("high.jsonl"));
    let want_high = want.iter().filter(|a| matches!(a["severity"].as_str(), Some("high" | "critical"))).count();
    assert_eq!(high.len(), want_high);
    assert!(
        stdout.contains(&format!(
            "sink high-only (file): {} accepted, {} filtered out",
            want_high,
            want.len() - want_high
        )),
        "{stdout}"
    );

    // Parquet read back by a third-party reader.
    if Command::new("python3").args(["-c", "import pyarrow"]).status().is_ok_and(|s| s.success()) {
        let script = format!(
            "import pyarrow.parquet as pq; t = pq.read_table('{}'); print(t.num_rows, sorted(t.column('alert_id').to_pylist())[0])",
            dir.path().join("alerts.parquet").display()
        );
        let out = Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), format!("{} {}", want.len(), all.iter().next().unwrap()));
    } else {
        assert!(std::env::var_os("AUDITWATCH_REQUIRE_PYARROW").is_none(), "pyarrow is required");
    }
    // No secret is printed.
    for secret in ["hec-token", "es-key", "pd-routing-key", "XXXX"] {
        assert!(!stdout.contains(secret) && !String::from_utf8_lossy(&out.stderr).contains(secret), "{secret} leaked");
    }
}
