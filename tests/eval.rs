//! Detection quality on the default generated scenario over seeds 1-4
//! (21 days × 60 principals): precision ≥ 0.9 and recall ≥ 0.85 (they
//! measure 0.93 and 0.89; the misses are query bursts of 8–14× on
//! principals whose ordinary hours swing as much), no high-severity alert
//! on ordinary work that looks unusual, counting alerts of severity medium
//! and above, with archetypes and hard negatives
//! in the data (weekend, night and shift work, on-call sessions, travel,
//! month-end close, nightly backfills, bursty API clients, Monday reports,
//! late joiners, a holiday, growing workloads, roaming users, browser
//! updates, SQL connectors). These seeds are the ones the default tests
//! use; `auditwatch eval --seeds` on others judges the detectors on data
//! nobody tuned them on.

use auditwatch::detect::definition::built_in;
use auditwatch::eval::{Seeds, run_seeds};
use auditwatch::generate::GenerateConfig;
use auditwatch::pipeline::PipelineConfig;

#[test]
fn recall_and_precision_over_seeds() {
    let template = GenerateConfig { days: 21, principals: 60, ..Default::default() };
    let config = PipelineConfig::new(built_in().unwrap());
    let e = run_seeds(Seeds { first: 1, last: 4 }, &template, &config, |_, _| {}).unwrap();
    let report = e.render();
    // Every signal the generator injects has a detector.
    assert!(
        e.by_signal
            .iter()
            .filter(|(_, f)| f.incidents > 0)
            .all(|(s, _)| auditwatch::detect::definition::BUILT_IN.iter().any(|(f, _)| f.contains(s.as_str()))),
        "{report}"
    );
    let (recall, precision) = (e.overall.recall.unwrap_or(0.0), e.overall.precision.unwrap_or(0.0));
    println!("{report}");
    assert!(e.overall.incidents >= 48, "{report}");
    assert!(recall >= 0.85, "recall {recall:.3}\n{report}");
    assert!(precision >= 0.9, "precision {precision:.3}\n{report}");
    assert_eq!(e.hard_negatives.high_severity_alerts, 0, "{report}");
}
