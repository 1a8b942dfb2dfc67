//! Detection quality on the default generated scenario, over several seeds:
//! recall ≥ 0.9 and precision ≥ 0.8, with hard negatives in the data
//! (weekly reporting spikes, late joiners, a holiday, a growing team,
//! heavy nightly batches, roaming users, browser updates, SQL connectors
//! used from the office).

use auditwatch::detect::definition::built_in;
use auditwatch::generate::{GenerateConfig, generate};
use auditwatch::pipeline::PipelineConfig;

#[test]
fn recall_and_precision_over_seeds() {
    let (mut incidents, mut detected, mut alerts, mut true_alerts) = (0, 0, 0, 0);
    let mut report = String::new();
    for seed in 1..=4 {
        let dir = tempfile::tempdir().unwrap();
        generate(&GenerateConfig { days: 21, principals: 60, seed, ..Default::default() }, dir.path()).unwrap();
        let e = auditwatch::eval::run(dir.path(), PipelineConfig::new(built_in().unwrap())).unwrap();
        incidents += e.overall.incidents;
        detected += e.overall.detected;
        alerts += e.overall.alerts;
        true_alerts += e.overall.true_alerts;
        report.push_str(&format!("seed {seed}\n{}", e.render()));
        // Every signal the generator injects has a detector.
        assert!(
            e.by_signal
                .iter()
                .filter(|(_, f)| f.incidents > 0)
                .all(|(s, _)| auditwatch::detect::definition::BUILT_IN.iter().any(|(f, _)| f.contains(s.as_str()))),
            "{report}"
        );
    }
    let recall = detected as f64 / incidents as f64;
    let precision = true_alerts as f64 / alerts as f64;
    println!(
        "{report}\nrecall {recall:.3} ({detected}/{incidents}), precision {precision:.3} ({true_alerts}/{alerts})"
    );
    assert!(incidents >= 48, "{report}");
    assert!(recall >= 0.9, "recall {recall:.3}\n{report}");
    assert!(precision >= 0.8, "precision {precision:.3}\n{report}");
}
