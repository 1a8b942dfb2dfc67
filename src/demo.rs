//! The built-in demo: generate a workspace with incidents, replay it,
//! print the alerts and how they line up with the injected incidents.
//! Needs no services, no network and no input files.

use crate::generate::{GenerateConfig, generate};
use crate::pipeline::{PipelineConfig, ReplayOptions, replay_to};
use crate::sink::FanOut;
use crate::sink::render_alert;
use std::path::Path;

/// Runs the demo, printing to stdout; alerts also go to `sinks`, which are
/// drained for up to `drain_timeout`. Returns what the sinks did.
pub fn run(
    seed: u64,
    days: u32,
    principals: u32,
    keep: Option<&Path>,
    mut sinks: FanOut,
    drain_timeout: std::time::Duration,
    metrics: Option<&mut crate::telemetry::metrics::Metrics>,
) -> anyhow::Result<crate::sink::DeliveryReport> {
    let tmp = tempfile::tempdir()?;
    let dir = keep.unwrap_or(tmp.path());
    let cfg = GenerateConfig { days, principals, seed, ..Default::default() };
    println!(
        "auditwatch demo: generating {days} days of activity for {principals} principals (seed {seed}) in {}",
        dir.display()
    );
    let summary = generate(&cfg, dir)?;
    println!("generated {} events with {} labelled incidents\n", summary.total_events, summary.incidents.len());

    let definitions = crate::detect::definition::built_in()?;
    // A label names a signal or a detector (`job_runtime` is the detector
    // of signal `job_run`).
    let covered: Vec<String> = definitions.iter().flat_map(|d| [d.signal.name().to_owned(), d.name.clone()]).collect();
    let opts = ReplayOptions {
        inputs: vec![dir.join(crate::generate::LOGS_DIR)],
        alerts_out: keep.map(|d| d.join("alerts.jsonl")),
        quarantine: keep.map(|d| d.join("quarantine.jsonl")),
        max_record_bytes: crate::decode::DEFAULT_MAX_RECORD_BYTES,
        progress: true,
        threads: crate::pipeline::available_threads(),
        sort: Some(crate::pipeline::SortOptions::default()),
    };
    let mut config = PipelineConfig::new(definitions);
    // Who may see what before the data begins: the generator's snapshot.
    let snapshot = dir.join(crate::generate::ACCESS_SNAPSHOT);
    let text = std::fs::read_to_string(&snapshot)?;
    config.access_snapshot = crate::access::parse_snapshot(&snapshot.display().to_string(), &text)?;
    let report = replay_to(&opts, config, &mut sinks, metrics)?;
    let delivery = sinks.finish(drain_timeout)?;
    println!("== alerts ({}) ==\n", report.alerts.len());
    for a in &report.alerts {
        println!("{}", render_alert(a));
    }
    println!("== injected incidents ==");
    for label in &summary.incidents {
        let hit = report.alerts.iter().any(|a| crate::eval::matches(a, label));
        let status = if hit {
            "DETECTED"
        } else if covered.contains(&label.signal) {
            "missed"
        } else {
            "no detector for this signal yet"
        };
        println!("  {:<8} {:<22} {:<40} {status}", label.incident, label.signal, label.principal);
    }
    println!("\n== summary ==\n{}", report.stats.render(report.seconds));
    match &opts.alerts_out {
        Some(path) => println!("data, alerts and quarantine kept in {} (alerts: {})", dir.display(), path.display()),
        None => println!("(generated data removed; pass --keep DIR to keep it, with the alerts as JSON lines)"),
    }
    print!("{delivery}");
    Ok(delivery)
}
