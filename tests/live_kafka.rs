//! Live mode end to end, against a real Kafka-protocol broker (tansu, started
//! by `deploy/kafka.sh`) and a third-party producer (Python confluent-kafka,
//! `tests/kafka/produce.py`). `scripts/test.sh` installs both.
//!
//! Every test uses topics and groups of its own (the broker keeps its data
//! between runs); the broker-restart test uses a broker of its own.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const PORT: u16 = 19092;
const RESTART_PORT: u16 = 19093;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kafka(port: u16, args: &[&str]) -> String {
    let out = Command::new(repo().join("deploy/kafka.sh"))
        .args(args)
        .env("KAFKA_PORT", port.to_string())
        .env("KAFKA_DATA_DIR", repo().join(format!("target/kafka-test-{port}")))
        .stderr(Stdio::inherit())
        .output()
        .expect("deploy/kafka.sh runs");
    assert!(out.status.success(), "deploy/kafka.sh {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The shared broker, started once per test binary.
fn broker() -> &'static str {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| kafka(PORT, &["start"]))
}

/// A name no earlier run used (the broker keeps topics and offsets).
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

fn topic(port: u16, partitions: u32) -> String {
    let name = unique("t");
    kafka(port, &["topic", &name, &partitions.to_string()]);
    name
}

fn aw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_auditwatch"))
}

fn generate(out: &Path, seed: u64, days: u32, principals: u32) -> PathBuf {
    let status = aw()
        .args(["generate", "--seed", &seed.to_string(), "--days", &days.to_string()])
        .args(["--principals", &principals.to_string(), "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    out.join("logs")
}

/// Alerts of `replay` over `paths`, as sorted JSON lines.
fn replay(paths: &[&Path], dir: &Path) -> Vec<String> {
    let out = dir.join(format!("{}.jsonl", unique("replay")));
    let status = aw()
        .arg("replay")
        .args(paths)
        .arg("--no-progress")
        .arg("--alerts-out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    alerts(&out)
}

/// The alerts of `all` whose window had closed when the records of
/// `sent` (a JSON-lines file or a folder of them) ended: live mode judges a bucket once the watermark
/// (the newest event time less the 15 minutes of lateness) passes its end,
/// and a stream that stops keeps its last buckets open, in the checkpoint,
/// until later records arrive. Replay closes them at the end of its input.
fn closed_by(all: Vec<String>, sent: &Path) -> Vec<String> {
    let mut ev = auditwatch::event::Event::default();
    let files = if sent.is_dir() { walk(sent) } else { vec![sent.to_path_buf()] };
    let newest = files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| auditwatch::decode::decode_json(l.as_bytes(), &mut ev).ok().map(|_| ev.time.0))
        .max()
        .unwrap();
    // Audit detectors wait 15 minutes; cost detectors wait a day for
    // billing rows (the default lateness of system.billing.usage).
    let audit = auditwatch::time::EventTime(newest - 15 * 60_000).to_string();
    let billing = auditwatch::time::EventTime(newest - 24 * 3_600_000).to_string();
    all.into_iter()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let cost = matches!(v["detector"].as_str(), Some("cost" | "job_cost"));
            v["window_end"].as_str().unwrap() <= if cost { billing.as_str() } else { audit.as_str() }
        })
        .collect()
}

fn alerts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn alert_ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["alert_id"].as_str().unwrap().to_owned())
        .collect()
}

fn produce(bootstrap: &str, topic: &str, paths: &[&Path], extra: &[&str]) -> u64 {
    let out = Command::new("python3")
        .arg(repo().join("tests/kafka/produce.py"))
        .args(["--bootstrap", bootstrap, "--topic", topic])
        .args(extra)
        .args(paths)
        .stderr(Stdio::inherit())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "produce.py failed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `auditwatch run` with the test's usual flags plus `extra`.
fn run(bootstrap: &str, group: &str, state: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = aw();
    c.args(["run", "--brokers", bootstrap, "--group", group, "--checkpoint-seconds", "1"])
        .arg("--state-dir")
        .arg(state)
        .arg("--alerts-out")
        .arg(out)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs to completion (`--exit-when-idle`) and returns stderr.
fn run_to_end(mut c: Command) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "auditwatch run failed:\n{err}");
    err
}

/// A running `auditwatch run`, killed if the test fails before it ends.
struct Live(Option<Child>);

impl Live {
    fn spawn(mut c: Command) -> Live {
        Live(Some(c.spawn().unwrap()))
    }
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
    fn signal(&mut self, name: &str) {
        let _ = Command::new("kill").arg(format!("-{name}")).arg(self.child().id().to_string()).status();
    }
    /// Waits for the exit; returns whether it succeeded, and stderr.
    fn finish(mut self) -> (bool, String) {
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until the instance has checkpointed a partition under `state`:
/// it holds partitions and has read records.
fn wait_for_checkpoint(state: &Path, live: &mut Live) {
    let child = live.child();
    let start = Instant::now();
    let has_checkpoint = || walk(state).iter().any(|p| p.extension().is_some_and(|e| e == "ckpt"));
    while !has_checkpoint() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("auditwatch run exited early ({status}):\n{err}");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint after 2 minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn assert_same(got: &[String], want: &[String]) {
    let ids = alert_ids(got);
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "duplicate alert_id");
    if got != want {
        let g: BTreeSet<&String> = got.iter().collect();
        let w: BTreeSet<&String> = want.iter().collect();
        panic!(
            "alerts differ: {} extra, {} missing\nextra: {:#?}\nmissing: {:#?}",
            g.difference(&w).count(),
            w.difference(&g).count(),
            g.difference(&w).take(3).collect::<Vec<_>>(),
            w.difference(&g).take(3).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_topic_raises_what_replay_raises_for_the_same_events() {
    let bootstrap = broker();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 3, 10, 30);
    let samples = repo().join("../shared/samples/databricks");
    let want = closed_by(replay(&[&logs], dir.path()), &logs);
    assert!(want.len() > 10, "the data set raises alerts: {}", want.len());
    let t = topic(PORT, 1);
    let produced = produce(bootstrap, &t, &[&logs], &[]);
    let out = dir.path().join("alerts.jsonl");
    let err = run_to_end(run(
        bootstrap,
        &unique("g"),
        &dir.path().join("state"),
        &out,
        &["--topic", &t, "--exit-when-idle", "3"],
    ));
    assert_same(&alerts(&out), &want);
    assert!(err.contains(&format!("records: {produced} ")), "{produced} produced\n{err}");

    // The public samples, a bag of records from 2009 to 2025 in several
    // files: compared with a replay of the records in the order produced.
    if samples.exists() {
        let t = topic(PORT, 1);
        let sent = dir.path().join("samples-sent.jsonl");
        produce(bootstrap, &t, &[&samples], &["--dump", sent.to_str().unwrap()]);
        let want = closed_by(replay(&[&sent], dir.path()), &sent);
        let out = dir.path().join("samples.jsonl");
        run_to_end(run(
            bootstrap,
            &unique("g"),
            &dir.path().join("state2"),
            &out,
            &["--topic", &t, "--exit-when-idle", "3"],
        ));
        assert_same(&alerts(&out), &want);
    }
}

#[test]
fn a_process_killed_mid_stream_loses_and_repeats_no_alert() {
    let bootstrap = broker();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 5, 10, 30);
    let want = closed_by(replay(&[&logs], dir.path()), &logs);
    let t = topic(PORT, 1);
    let (group, state, out) = (unique("g"), dir.path().join("state"), dir.path().join("alerts.jsonl"));
    // The first half, then the second half at a pace that lets the kill land mid-stream.
    produce(bootstrap, &t, &[&logs], &["--limit", "12000"]);
    // The killed member holds the partition until its session times out:
    // 6 s rather than librdkafka's 45 s.
    let config = dir.path().join("aw.toml");
    // File sinks too: OCSF findings appended as JSON lines, and Parquet
    // rolled at each checkpoint; across the kill neither holds an alert twice.
    let (findings, table) = (dir.path().join("findings.jsonl"), dir.path().join("table/alerts.parquet"));
    std::fs::create_dir_all(table.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[kafka.client]\n\"session.timeout.ms\" = 6000\n[[sink]]\nname = \"lake\"\ntype = \"file\"\npath = \"{}\"\nformat = \"ocsf\"\n[[sink]]\nname = \"table\"\ntype = \"file\"\npath = \"{}\"\n",
            findings.display(),
            table.display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    // A webhook that fails (503) while the first process runs: its alerts
    // wait in the spool when it is killed, and the restart delivers them.
    let up = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(Mutex::new(Vec::<String>::new()));
    let receiver = common::Receiver::start(0, {
        let (up, delivered) = (Arc::clone(&up), Arc::clone(&delivered));
        Box::new(move |_, hit| {
            if !up.load(Ordering::SeqCst) {
                return common::Reply::status(503);
            }
            let alert: serde_json::Value = serde_json::from_str(&hit.body).unwrap();
            delivered.lock().unwrap().push(alert["alert_id"].as_str().unwrap().to_owned());
            common::Reply::status(200)
        })
    });
    let hook = receiver.url("/hook");
    let mut first =
        Live::spawn(run(bootstrap, &group, &state, &out, &["--config", c, "--topic", &t, "--webhook", &hook]));
    wait_for_checkpoint(&state, &mut first);
    let producer = std::thread::spawn({
        let (bootstrap, t, logs) = (bootstrap.to_owned(), t.clone(), logs.clone());
        move || produce(&bootstrap, &t, &[&logs], &["--skip", "12000", "--rate", "8000"])
    });
    std::thread::sleep(Duration::from_millis(1500));
    first.signal("KILL");
    first.finish();

    // Restart once the dead member's session has expired: tansu 0.6 hands a
    // partition to a member that joins while a dead one is still in the
    // group, and does not rebalance when that session later expires.
    std::thread::sleep(Duration::from_secs(8));
    let before = alerts(&out).len();
    producer.join().unwrap();
    // (How many alerts the first process spooled depends on where the kill
    // lands; whatever it spooled must arrive once, as must the rest.)
    up.store(true, Ordering::SeqCst);
    let err = run_to_end(run(
        bootstrap,
        &group,
        &state,
        &out,
        &["--config", c, "--topic", &t, "--exit-when-idle", "3", "--webhook", &hook, "--drain-timeout", "60"],
    ));
    assert!(err.contains("partitions_restored: 1"), "the restart restored the checkpoint:\n{err}");
    let got = alerts(&out);
    assert!(got.len() > before, "the restart raised the rest ({before} before)");
    assert_same(&got, &want);
    // The webhook got every alert of the log exactly once: the ones spooled
    // before the kill, then the rest; none raised again was spooled twice.
    let mut delivered = delivered.lock().unwrap().clone();
    delivered.sort();
    let mut logged = alert_ids(&got);
    logged.sort();
    assert_eq!(delivered, logged);
    // The OCSF file holds each finding once.
    let mut uids: Vec<String> = std::fs::read_to_string(&findings)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["finding_info"]["uid"].as_str().unwrap().to_owned()
        })
        .collect();
    uids.sort();
    assert_eq!(uids, logged);
    // The finished Parquet parts (pyarrow reads them) hold each alert once;
    // a part cut short by the kill stays `.partial` and is not one of them.
    let parts: Vec<String> = walk(table.parent().unwrap())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(!parts.is_empty());
    let script = "import sys, pyarrow.parquet as pq\nfor p in sys.argv[1:]:\n    for i in pq.read_table(p).column('alert_id').to_pylist(): print(i)";
    let out = Command::new("python3").args(["-c", script]).args(&parts).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut in_parquet: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    in_parquet.sort();
    assert_eq!(in_parquet, logged);
}

#[test]
fn two_instances_split_the_partitions_and_one_takes_over_from_the_other() {
    let bootstrap = broker();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 7, 10, 30);
    let changelog = topic(PORT, 2);

    // One instance on the whole data set, re-keyed into 4 partitions.
    let (input, rekeyed) = (topic(PORT, 1), topic(PORT, 4));
    produce(bootstrap, &input, &[&logs], &[]);
    let one = dir.path().join("one.jsonl");
    let rk = ["--topic", &input, "--repartition-topic", &rekeyed, "--exit-when-idle", "10"];
    let single = run_to_end(run(bootstrap, &unique("g"), &dir.path().join("s1"), &one, &rk));
    let want = alerts(&one);
    assert!(want.len() > 10, "{} alerts\n{single}", want.len());

    // Two instances with separate disks (state moves through the changelog).
    let (input, rekeyed) = (topic(PORT, 1), topic(PORT, 4));
    let group = unique("g");
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let args = ["--topic", &input, "--repartition-topic", &rekeyed, "--changelog-topic", &changelog];
    let (sa, sb) = (dir.path().join("sa"), dir.path().join("sb"));
    // A joins first, then B (one at a time: tansu 0.6's group coordinator
    // copes badly with members joining at the same instant); then the
    // first half of the records arrives and both read some.
    let mut a = Live::spawn(run(bootstrap, &group, &sa, &a_out, &args));
    std::thread::sleep(Duration::from_secs(3));
    let mut b = Live::spawn(run(bootstrap, &group, &sb, &b_out, &args));
    std::thread::sleep(Duration::from_secs(6));
    produce(bootstrap, &input, &[&logs], &["--limit", "12000"]);
    wait_for_checkpoint(&sa, &mut a);
    wait_for_checkpoint(&sb, &mut b);
    // B stops (SIGTERM: drain, checkpoint, commit); A takes its partitions over.
    b.signal("TERM");
    let (ok, b_err) = b.finish();
    assert!(ok, "{b_err}");
    produce(bootstrap, &input, &[&logs], &["--skip", "12000"]);
    // A works through the rest (tens of thousands of records in a debug
    // build): stop it once every alert the single instance raised is out,
    // or after two minutes, whatever the machine's speed.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while alerts(&a_out).len() + alerts(&b_out).len() < want.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    a.signal("TERM");
    let (ok, a_err) = a.finish();
    assert!(ok, "{a_err}");
    assert!(!a_err.contains("partitions_restored: 0"), "A restored B's partitions from the changelog:\n{a_err}");
    let mut got = alerts(&a_out);
    got.extend(alerts(&b_out));
    got.sort();
    assert_same(&got, &want);
}

#[test]
fn consumption_resumes_without_loss_after_a_broker_restart() {
    let bootstrap = kafka(RESTART_PORT, &["start"]);
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 9, 10, 30);
    let want = closed_by(replay(&[&logs], dir.path()), &logs);
    let t = topic(RESTART_PORT, 1);
    let out = dir.path().join("alerts.jsonl");
    produce(&bootstrap, &t, &[&logs], &["--limit", "12000"]);
    let state = dir.path().join("state");
    let mut live = Live::spawn(run(&bootstrap, &unique("g"), &state, &out, &["--topic", &t, "--exit-when-idle", "20"]));
    wait_for_checkpoint(&state, &mut live);
    kafka(RESTART_PORT, &["restart"]);
    produce(&bootstrap, &t, &[&logs], &["--skip", "12000"]);
    let (ok, err) = live.finish();
    assert!(ok, "{err}");
    assert_same(&alerts(&out), &want);
}

#[test]
fn a_poison_record_is_quarantined_and_does_not_block_its_partition() {
    let bootstrap = broker();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 11, 10, 30);
    let want = closed_by(replay(&[&logs], dir.path()), &logs);
    let t = topic(PORT, 1);
    // Five bad records spread over the stream: not JSON, wrong types, 1970,
    // binary, 2 MiB (over the 1 MiB record limit).
    let records: usize = walk(&logs).iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).sum();
    let every = (records / 5).to_string();
    produce(bootstrap, &t, &[&logs], &["--poison-every", &every]);
    let (group, state, out) = (unique("g"), dir.path().join("state"), dir.path().join("alerts.jsonl"));
    let quarantine = dir.path().join("quarantine.jsonl");
    let q = quarantine.to_str().unwrap();
    let qt = topic(PORT, 1);
    run_to_end(run(
        bootstrap,
        &group,
        &state,
        &out,
        &["--topic", &t, "--quarantine", q, "--quarantine-topic", &qt, "--exit-when-idle", "3"],
    ));
    assert_same(&alerts(&out), &want);
    let refused = std::fs::read_to_string(&quarantine).unwrap();
    let reasons: Vec<String> = refused
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    for reason in ["malformed_json", "missing_field", "time_out_of_range", "invalid_utf8", "too_large"] {
        assert!(reasons.contains(&reason.to_owned()), "{reason} not in {reasons:?}");
    }
    // The quarantine topic holds the same records, with their reason, read
    // back with the third-party client.
    let script = format!(
        "from confluent_kafka import Consumer\n\
         c = Consumer({{'bootstrap.servers': '{bootstrap}', 'group.id': 'qcheck', 'auto.offset.reset': 'earliest'}})\n\
         c.subscribe(['{qt}'])\n\
         got = []\n\
         while len(got) < 5:\n\
         \x20   m = c.poll(30)\n\
         \x20   if m is None: break\n\
         \x20   got.append(dict(m.headers())['reason'].decode())\n\
         print(' '.join(sorted(got)))\n"
    );
    let read = Command::new("python3").arg("-c").arg(&script).output().unwrap();
    let mut from_topic: Vec<&str> = std::str::from_utf8(&read.stdout).unwrap().split_whitespace().collect();
    from_topic.sort_unstable();
    let mut sorted: Vec<&str> = reasons.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    assert_eq!(from_topic, sorted, "{}", String::from_utf8_lossy(&read.stderr));
    // Their offsets were committed like any other: a restart reads nothing again.
    let err =
        run_to_end(run(bootstrap, &group, &state, &out, &["--topic", &t, "--quarantine", q, "--exit-when-idle", "3"]));
    assert!(err.contains("records: 0"), "{err}");
    assert_eq!(std::fs::read_to_string(&quarantine).unwrap(), refused);
}

/// A file holding one login a month before any generated event (December
/// 2023): late for every detector once the generated records are read.
fn late_login(dir: &Path) -> PathBuf {
    let late = dir.join("late.jsonl");
    std::fs::write(
        &late,
        r#"{"timestamp":1701388800000,"serviceName":"accounts","actionName":"login","requestId":"late-1","userIdentity":{"email":"late@acme.example"},"sourceIPAddress":"10.0.0.1","response":{"statusCode":200}}"#,
    )
    .unwrap();
    late
}

/// GET `path` from `addr`: the status code and the body.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned()))
}

/// The value of the first sample of `metric` whose line contains `with`.
fn sample(body: &str, metric: &str, with: &str) -> Option<f64> {
    body.lines().filter(|l| l.starts_with(metric) && l.contains(with)).find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `auditwatch run` on `topic` serving metrics on `addr`, with a webhook
/// that refuses the first alert (400: a dead letter) and takes the rest.
fn serving_with_a_picky_webhook(
    bootstrap: &str,
    topic: &str,
    state: &Path,
    alerts: &Path,
    addr: &str,
) -> (common::Receiver, Live) {
    let receiver = common::Receiver::start(0, Box::new(|n, _| common::Reply::status(if n == 0 { 400 } else { 200 })));
    let hook = receiver.url("/hook");
    let live = Live::spawn(run(
        bootstrap,
        &unique("g"),
        state,
        alerts,
        &["--topic", topic, "--serve", addr, "--webhook", &hook],
    ));
    (receiver, live)
}

#[test]
fn metrics_health_and_readiness_are_served_while_running() {
    let bootstrap = broker();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 13, 10, 30);
    let t = topic(PORT, 1);
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let state = dir.path().join("state");
    let (receiver, mut live) = serving_with_a_picky_webhook(bootstrap, &t, &state, &dir.path().join("a.jsonl"), &addr);
    // Healthy at once; ready only once a partition is assigned.
    let start = Instant::now();
    while http_get(&addr, "/healthz").map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(30), "no /healthz");
        std::thread::sleep(Duration::from_millis(50));
    }
    while http_get(&addr, "/readyz").map(|r| r.0) != Some(200) {
        assert!(start.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut n = produce(bootstrap, &t, &[&logs], &[]);
    n += produce(bootstrap, &t, &[&late_login(dir.path())], &[]);
    wait_for_checkpoint(&state, &mut live);
    // Wait for the records to be read, a checkpoint to report them, and
    // the client's periodic statistics to have reported the lag.
    let mut body = String::new();
    while sample(&body, "auditwatch_records_total", "scored") != Some(n as f64)
        || sample(&body, "auditwatch_checkpoints_total", "") < Some(2.0)
        || !body.contains("auditwatch_consumer_lag_records{partition=\"0\"")
    {
        assert!(start.elapsed() < Duration::from_secs(120), "metrics never caught up:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
        body = http_get(&addr, "/metrics").unwrap().1;
    }
    assert_eq!(sample(&body, "auditwatch_partitions_assigned", ""), Some(1.0), "{body}");
    // The pipeline's counters move while `run` runs, not only at its end.
    while sample(&body, "auditwatch_late_events_total", "shape=\"audit_delivery\"") != Some(1.0) {
        assert!(start.elapsed() < Duration::from_secs(120), "the late record is never counted:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
        body = http_get(&addr, "/metrics").unwrap().1;
    }
    assert!(sample(&body, "auditwatch_buckets_scored_total", "").is_some_and(|v| v >= 100.0), "{body}");
    assert_eq!(sample(&body, "auditwatch_late_events_total", "shape=\"system_billing_usage\""), Some(0.0), "{body}");
    assert!(sample(&body, "auditwatch_alerts_total", "severity=").is_some_and(|v| v >= 1.0), "{body}");
    assert!(sample(&body, "auditwatch_principals_tracked", "").is_some_and(|v| v >= 30.0), "{body}");
    assert!(sample(&body, "auditwatch_last_checkpoint_timestamp_seconds", "").is_some_and(|v| v > 1.7e9), "{body}");
    assert!(body.contains("auditwatch_consumer_lag_records{partition=\"0\""), "{body}");
    assert!(body.contains("auditwatch_produce_to_alert_seconds_bucket"), "{body}");
    assert!(body.contains("auditwatch_build_info{version="), "{body}");
    assert_eq!(http_get(&addr, "/nope").map(|r| r.0), Some(404));
    // Sink metrics: every accepted alert is delivered or dead-lettered.
    let sink = |body: &str, metric: &str, with: &str| sample(body, metric, with).unwrap_or(-1.0);
    while sink(&body, "auditwatch_sink_alerts_delivered_total", "webhook-")
        + sink(&body, "auditwatch_sink_alerts_dead_lettered_total", "webhook-")
        != sink(&body, "auditwatch_sink_alerts_accepted_total", "webhook-")
    {
        assert!(start.elapsed() < Duration::from_secs(120), "the sink never caught up:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
        body = http_get(&addr, "/metrics").unwrap().1;
    }
    assert!(sink(&body, "auditwatch_sink_alerts_accepted_total", "webhook-") >= 1.0, "{body}");
    assert_eq!(sink(&body, "auditwatch_sink_alerts_dead_lettered_total", "webhook-"), 1.0, "{body}");
    assert_eq!(sink(&body, "auditwatch_sink_requests_failed_total", "reason=\"http_4xx\""), 1.0, "{body}");
    assert_eq!(sink(&body, "auditwatch_sink_requests_failed_total", "reason=\"connect\""), 0.0, "{body}");
    assert_eq!(sink(&body, "auditwatch_sink_queue_depth", "webhook-"), 0.0, "{body}");
    assert_eq!(
        sink(&body, "auditwatch_sink_delivery_seconds_count", "webhook-"),
        sink(&body, "auditwatch_sink_alerts_delivered_total", "webhook-"),
        "{body}"
    );
    assert_eq!(receiver.hits().len() as f64, sink(&body, "auditwatch_sink_alerts_accepted_total", "webhook-"));
    live.signal("TERM");
    let (ok, err) = live.finish();
    assert!(ok, "{err}");
}

/// Whether Debian's `prometheus` is installed (scripts/test.sh installs it).
fn prometheus_available() -> bool {
    let ok = Command::new("prometheus").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("AUDITWATCH_REQUIRE_PROMETHEUS").is_none(),
            "prometheus is required (AUDITWATCH_REQUIRE_PROMETHEUS is set)"
        );
        eprintln!("skipped: prometheus is not installed (scripts/test.sh installs it)");
    }
    ok
}

/// Prometheus's HTTP API: the `data` of a successful answer; `at` is the
/// evaluation time of a query (Unix seconds), else now.
fn prom_api(base: &str, path: &str, query: Option<&str>, at: Option<f64>) -> serde_json::Value {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = agent.get(&format!("{base}{path}"));
    if let Some(q) = query {
        req = req.query("query", q);
    }
    if let Some(t) = at {
        req = req.query("time", format!("{t:.3}"));
    }
    let mut resp = req.call().unwrap();
    let body: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
    body["data"].clone()
}

/// Every `expr` in a Grafana dashboard, with its variables filled in.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    ("expr", Some(e)) => out.push(e.replace("$instance", ".*").replace("$__rate_interval", "1m")),
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

#[test]
fn every_dashboard_and_rule_query_returns_data_from_a_real_prometheus() {
    if !prometheus_available() {
        return;
    }
    let bootstrap = broker();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 17, 10, 30);
    let t = topic(PORT, 2);
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (addr, prom_addr) = (free(), free());
    let state = dir.path().join("state");
    let (_receiver, mut live) = serving_with_a_picky_webhook(bootstrap, &t, &state, &dir.path().join("a.jsonl"), &addr);

    // Prometheus scrapes it every second and evaluates the shipped rules.
    let rules = repo().join("deploy/prometheus/rules.yml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: auditwatch\n    static_configs:\n      - targets: [\"{addr}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let mut prometheus = Live(Some(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    ));
    let base = format!("http://{prom_addr}");
    let scraped = |q: &str| -> Option<f64> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut resp = agent.get(&format!("{base}/api/v1/query")).query("query", q).call().ok()?;
        let body: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
        body["data"]["result"].get(0)?["value"][1].as_str()?.parse().ok()
    };
    // Scraping before the records arrive, so that rates see them come.
    let start = Instant::now();
    while scraped("up{job=\"auditwatch\"}") != Some(1.0) {
        assert!(start.elapsed() < Duration::from_secs(60), "Prometheus never scraped auditwatch");
        std::thread::sleep(Duration::from_millis(250));
    }

    let mut n = produce(bootstrap, &t, &[&logs], &[]);
    let late = produce(bootstrap, &t, &[&late_login(dir.path())], &[]);
    n += late;
    wait_for_checkpoint(&state, &mut live);
    // Everything read and scored, the late login counted late, every alert
    // delivered or dead-lettered, as Prometheus scraped it.
    let progress = || {
        [
            "sum(auditwatch_records_total{outcome=\"scored\"})",
            "sum(auditwatch_records_total)",
            "sum(auditwatch_late_events_total)",
            "sum(auditwatch_sink_queue_depth)",
            "sum(auditwatch_sink_alerts_dead_lettered_total)",
        ]
        .map(|q| (q, scraped(q)))
    };
    let done = [Some(n as f64), Some(n as f64), Some(late as f64), Some(0.0), Some(1.0)];
    while progress().map(|(_, v)| v) != done {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "Prometheus never saw the run finish; want {done:?} for {n} records produced, {late} of them late:\n{:#?}",
            progress()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every query below is evaluated at this instant, so that the rates it
    // shows cover the records just read however long the checks take.
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let at_done = |q: &str| -> Vec<(String, f64)> {
        let data = prom_api(&base, "/api/v1/query", Some(q), Some(at));
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["metric"].to_string(), r["value"][1].as_str().unwrap().parse::<f64>().unwrap()))
            .collect()
    };
    let own = http_get(&addr, "/metrics").map(|r| r.1).unwrap_or_default();
    let sum_of = |q: &str| at_done(q).iter().map(|(_, v)| v).sum::<f64>();
    assert_eq!(sum_of("auditwatch_late_events_total{shape=\"audit_delivery\"}"), late as f64, "{own}");
    assert_eq!(sum_of("auditwatch_late_events_total"), late as f64, "only the login is late:\n{own}");
    assert!(sum_of("auditwatch_buckets_scored_total") > 0.0, "no bucket scored:\n{own}");
    // The scrape agrees with what auditwatch serves.
    assert_eq!(sample(&own, "auditwatch_records_total", "scored"), Some(n as f64), "{own}");
    assert_eq!(sample(&own, "auditwatch_late_events_total", "shape=\"audit_delivery\""), Some(late as f64), "{own}");

    // Every query of every dashboard parses and returns data, and the
    // panels of what was just read (records, events, late events, buckets
    // scored) show it moving.
    let moving = [
        "auditwatch_records_total",
        "auditwatch_events_total",
        "auditwatch_late_events_total",
        "auditwatch_buckets_scored_total",
    ];
    let mut moved = BTreeSet::new();
    let mut dashboards = 0;
    for entry in std::fs::read_dir(repo().join("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut queries = Vec::new();
        dashboard_queries(&dashboard, &mut queries);
        assert!(!queries.is_empty(), "{} has no query", path.display());
        for q in queries {
            let values = at_done(&q);
            let own = http_get(&addr, "/metrics").map(|r| r.1).unwrap_or_default();
            assert!(
                values.iter().any(|(_, v)| v.is_finite()),
                "{}: `{q}` shows nothing: {values:?}\nauditwatch serves:\n{own}",
                path.display()
            );
            if let Some(metric) = moving.iter().find(|m| q.contains(&format!("{m}{{"))) {
                assert!(
                    values.iter().any(|(_, v)| *v > 0.0),
                    "{}: `{q}` stays at 0 although the records were just read: {values:?}\nauditwatch serves:\n{own}",
                    path.display()
                );
                moved.insert(*metric);
            }
        }
        dashboards += 1;
    }
    assert_eq!(dashboards, 4);
    assert_eq!(moved, BTreeSet::from(moving), "a dashboard lost the panel of one of them");

    // Every rule is loaded and evaluated without error, and the signal it
    // thresholds returns data.
    let data = prom_api(&base, "/api/v1/rules", None, None);
    let rules: Vec<&serde_json::Value> =
        data["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    assert_eq!(rules.len(), 8, "{data}");
    for rule in rules {
        let (name, expr) = (rule["name"].as_str().unwrap(), rule["query"].as_str().unwrap());
        assert_eq!(rule["health"], "ok", "{name}: {rule}");
        let signal = rule["annotations"]["signal"].as_str().unwrap_or_else(|| panic!("{name} has no signal"));
        assert!(
            expr.replace(' ', "").starts_with(&signal.replace(' ', "")),
            "{name}: `{expr}` does not threshold `{signal}`"
        );
        let result = prom_api(&base, "/api/v1/query", Some(signal), None);
        assert!(!result["result"].as_array().unwrap().is_empty(), "{name}: `{signal}` returns nothing");
    }
    // The dead-letter rule fires (once evaluated on the scrape that saw it):
    // a 400 was dead-lettered.
    let firing = || {
        let alerts = prom_api(&base, "/api/v1/alerts", None, None);
        let on =
            alerts["alerts"].as_array().unwrap().iter().any(|a| a["labels"]["alertname"] == "AuditwatchDeadLetters");
        (on, alerts)
    };
    let wait = Instant::now();
    while !firing().0 {
        assert!(wait.elapsed() < Duration::from_secs(30), "AuditwatchDeadLetters never fires: {}", firing().1);
        std::thread::sleep(Duration::from_millis(250));
    }

    prometheus.signal("TERM");
    prometheus.finish();
    live.signal("TERM");
    let (ok, err) = live.finish();
    assert!(ok, "{err}");
}

/// Billing rows produced 20 hours behind the audit stream they go with
/// (usage rows are typically available within 12 hours) still raise the
/// cost alerts replay raises; a `RETRACTION`/`RESTATEMENT` pair that
/// arrives 30 hours after its hour raises a new alert naming the one it
/// corrects, and the original is not rewritten.
#[test]
fn billing_a_day_behind_still_raises_cost_and_a_restatement_names_what_it_corrects() {
    use auditwatch::event::{Event, Shape};
    let bootstrap = broker();
    let dir = tempfile::tempdir().unwrap();
    let logs = generate(&dir.path().join("gen"), 13, 10, 30);
    let replayed = replay(&[&logs], dir.path());
    let parsed: Vec<serde_json::Value> = replayed.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let cost: Vec<&serde_json::Value> =
        parsed.iter().filter(|a| matches!(a["detector"].as_str(), Some("cost" | "job_cost"))).collect();
    let target = *cost.iter().find(|a| a["detector"] == "cost").expect("seed 13 raises a cost alert");
    let hour = |key: &str| target[key].as_str().unwrap().to_owned();
    let (principal, start, end) = (hour("principal"), hour("window_start"), hour("window_end"));
    let end_ms = auditwatch::time::EventTime::parse(&end).unwrap().0;
    let ratio = target["expected"].as_f64().unwrap() / target["observed"].as_f64().unwrap();

    // Every record, keyed by when it is produced: billing 20 h late.
    let mut keyed: Vec<(i64, String)> = Vec::new();
    let mut prices = Vec::new();
    let mut ev = Event::default();
    for f in walk(&logs) {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let Ok(shape) = auditwatch::decode::decode_json(line.as_bytes(), &mut ev) else { continue };
            match shape {
                Shape::ListPrice => prices.push(line.to_owned()),
                Shape::BillingUsage => {
                    keyed.push((ev.time.0 + 20 * 3_600_000, line.to_owned()));
                    let v: serde_json::Value = serde_json::from_str(line).unwrap();
                    if v["identity_metadata"]["run_as"] == principal.as_str() && v["usage_start_time"] == start.as_str()
                    {
                        // Databricks' correction pair: the original withdrawn, a smaller figure restated.
                        let q = v["usage_quantity"].as_f64().unwrap();
                        for (kind, quantity) in [("RETRACTION", -q), ("RESTATEMENT", q * ratio)] {
                            let mut c = v.clone();
                            c["record_type"] = kind.into();
                            c["usage_quantity"] = quantity.into();
                            c["record_id"] = format!("{}-{kind}", v["record_id"].as_str().unwrap()).into();
                            keyed.push((end_ms + 30 * 3_600_000, c.to_string()));
                        }
                    }
                }
                _ => keyed.push((ev.time.0, line.to_owned())),
            }
        }
    }
    assert!(keyed.iter().any(|(_, l)| l.contains("RESTATEMENT")));
    keyed.sort();
    let ordered = dir.path().join("ordered.jsonl");
    let lines: Vec<&str> = prices.iter().map(String::as_str).chain(keyed.iter().map(|(_, l)| l.as_str())).collect();
    std::fs::write(&ordered, lines.join("\n") + "\n").unwrap();

    let t = topic(PORT, 1);
    produce(bootstrap, &t, &[&ordered], &["--as-is"]);
    let (state, out, q) = (dir.path().join("state"), dir.path().join("live.jsonl"), dir.path().join("q.jsonl"));
    let q_s = q.to_str().unwrap();
    run_to_end(run(
        bootstrap,
        &unique("g"),
        &state,
        &out,
        &["--topic", &t, "--quarantine", q_s, "--exit-when-idle", "3"],
    ));
    let live = alerts(&out);
    let live_ids = alert_ids(&live);
    for a in &cost {
        let id = a["alert_id"].as_str().unwrap();
        assert!(live_ids.iter().any(|l| l == id), "cost alert {id} of replay is missing live:\n{live:#?}");
    }
    let fixes: Vec<serde_json::Value> = live
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a.get("corrects").is_some())
        .collect();
    let fix = fixes
        .iter()
        .find(|a| a["corrects"] == target["alert_id"])
        .unwrap_or_else(|| panic!("no correction of {}: {fixes:#?}", target["alert_id"]));
    assert_eq!(fix["detector"], "cost");
    assert_eq!(fix["severity"], "info");
    assert!(fix["summary"].as_str().unwrap().contains("no longer holds"), "{fix}");
    assert_ne!(fix["alert_id"], target["alert_id"]);
    let late_billing = std::fs::read_to_string(&q)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""reason":"late""#) && l.contains("usage_quantity"))
        .count();
    assert_eq!(late_billing, 0, "no billing row is late");
}
