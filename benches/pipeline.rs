//! Scoring throughput against decoding, in the same run.
//!
//! Input: every record of a generated workspace (seed 1, 14 days, 60
//! principals, all five shapes), in event-time order as replay feeds them.
//! - `decode`: `decode_json` of each line into a reused `Event`, the
//!   reference;
//! - `detect`: the pipeline after decode (dedup, watermark, job runs,
//!   pricing and every built-in detector) on the decoded events, from a
//!   fresh pipeline to the end-of-input flush;
//! - `decode_and_detect`: both, one line at a time, as `replay
//!   --inline-decode` runs on one core.
//!
//! Throughput is per event; detect / decode is the ratio to report.

use auditwatch::detect::definition::built_in;
use auditwatch::event::{Event, Shape};
use auditwatch::pipeline::{Pipeline, PipelineConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// The data set's lines with their decoded events, in event-time order
/// (list prices first: they are reference data).
fn generated() -> (Vec<Vec<u8>>, Vec<Event>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = auditwatch::generate::GenerateConfig { days: 14, principals: 60, seed: 1, ..Default::default() };
    auditwatch::generate::generate(&cfg, dir.path()).expect("generate");
    let files = auditwatch::source::files::discover(&[dir.path().join("logs")]).expect("files");
    let mut rows = Vec::new();
    for f in files {
        let text = std::fs::read(&f).expect("read");
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut ev = Event::default();
            if auditwatch::decode::decode_json(line, &mut ev).is_ok() {
                let key = if ev.shape == Some(Shape::ListPrice) { i64::MIN } else { ev.time.0 };
                rows.push((key, line.to_vec(), ev));
            }
        }
    }
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|(_, line, ev)| (line, ev)).unzip()
}

fn bench(c: &mut Criterion) {
    let (lines, events) = generated();
    eprintln!("pipeline bench: {} events", events.len());
    let config = || PipelineConfig::new(built_in().expect("built-in definitions"));
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("decode", |b| {
        let mut ev = Event::default();
        b.iter(|| {
            for l in &lines {
                black_box(auditwatch::decode::decode_json(l, &mut ev).ok());
            }
        })
    });
    g.bench_function("detect", |b| {
        b.iter_batched(
            || Pipeline::new(config()),
            |mut p| {
                let mut out = Vec::new();
                for ev in &events {
                    let _ = p.event(ev, &mut out);
                }
                p.finish(&mut out);
                black_box(out.len())
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("decode_and_detect", |b| {
        b.iter_batched(
            || Pipeline::new(config()),
            |mut p| {
                let mut out = Vec::new();
                let mut ev = Event::default();
                for l in &lines {
                    if auditwatch::decode::decode_json(l, &mut ev).is_ok() {
                        let _ = p.event(&ev, &mut out);
                    }
                }
                p.finish(&mut out);
                black_box(out.len())
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
