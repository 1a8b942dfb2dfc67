//! The built-in demo: generate a workspace with incidents, replay it,
//! print the alerts and how they line up with the injected incidents.
//! Needs no services, no network and no input files.

use crate::generate::{GenerateConfig, generate};
use crate::pipeline::{PipelineConfig, ReplayOptions, replay};
use crate::sink::render_alert;
use crate::time::EventTime;
use std::path::Path;

/// Runs the demo, printing to stdout.
pub fn run(seed: u64, days: u32, principals: u32, keep: Option<&Path>) -> anyhow::Result<()> {
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
    let covered: Vec<String> = definitions.iter().map(|d| d.signal.name().to_owned()).collect();
    let opts = ReplayOptions {
        inputs: vec![dir.join(crate::generate::LOGS_DIR)],
        alerts_out: keep.map(|d| d.join("alerts.jsonl")),
        quarantine: keep.map(|d| d.join("quarantine.jsonl")),
        max_record_bytes: crate::decode::DEFAULT_MAX_RECORD_BYTES,
        progress: true,
        parallel_decode: true,
    };
    let report = replay(&opts, PipelineConfig::new(definitions))?;
    println!("== alerts ({}) ==\n", report.alerts.len());
    for a in &report.alerts {
        println!("{}", render_alert(a));
    }
    println!("== injected incidents ==");
    for label in &summary.incidents {
        let hit = report.alerts.iter().any(|a| {
            a.principal == label.principal
                && a.context.signal == label.signal
                && overlaps(&a.window_start, &a.window_end, &label.start, &label.end)
        });
        let status = if hit {
            "DETECTED"
        } else if covered.contains(&label.signal) {
            "missed"
        } else {
            "no detector for this signal yet"
        };
        println!("  {:<8} {:<18} {:<40} {status}", label.incident, label.signal, label.principal);
    }
    println!("\n== summary ==\n{}", report.stats.render(report.seconds));
    println!("alerts written to {}", opts.alerts_out.as_deref().map(|p| p.display().to_string()).unwrap_or_default());
    if keep.is_none() {
        println!("(generated data removed; pass --keep DIR to keep it)");
    }
    Ok(())
}

fn overlaps(a_start: &str, a_end: &str, b_start: &str, b_end: &str) -> bool {
    let t = |s: &str| EventTime::parse(s).map(|t| t.0).unwrap_or(0);
    t(a_start) < t(b_end) && t(b_start) < t(a_end)
}
