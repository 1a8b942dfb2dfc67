//! Decoding throughput on generated delivered-format audit lines.
//!
//! Input: the delivered audit log files of a generated workspace (seed 1,
//! 14 days, 60 principals; about 50,000 lines), concatenated: realistic key order, sizes and
//! escaping, not a single line repeated. Measured in the same run:
//! - `serde_json_value`: parsing into `serde_json::Value`, the reference an
//!   analyst's script would use;
//! - `auditwatch_decode`: the production path (`decode_json` into a reused
//!   `Event` slot: UTF-8 check, one borrowed parse, normalization);
//! - `raw_record_*`: the borrowed parse alone with serde_json, sonic-rs and
//!   simd-json, to justify the choice of JSON crate.
//!
//! Throughput is reported per element (events/s) and per byte (MB/s).

use auditwatch::decode::raw::RawRecord;
use auditwatch::event::Event;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn generated_lines() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = auditwatch::generate::GenerateConfig { days: 14, principals: 60, seed: 1, ..Default::default() };
    auditwatch::generate::generate(&cfg, dir.path()).expect("generate");
    let files = auditwatch::source::files::discover(&[dir.path().join("logs/audit-logs")]).expect("files");
    let mut lines = Vec::new();
    for f in files {
        let text = std::fs::read(&f).expect("read");
        lines.extend(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    lines.truncate(100_000);
    lines
}

fn bench(c: &mut Criterion) {
    let lines = generated_lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    eprintln!("decode bench: {} lines, {:.0} bytes/line on average", lines.len(), bytes as f64 / lines.len() as f64);
    let mut g = c.benchmark_group("decode_delivered");
    g.sample_size(10);
    for (name, unit) in
        [("events", Throughput::Elements(lines.len() as u64)), ("bytes", Throughput::Bytes(bytes as u64))]
    {
        g.throughput(unit);
        g.bench_function(format!("serde_json_value/{name}"), |b| {
            b.iter(|| {
                for l in &lines {
                    black_box(serde_json::from_slice::<serde_json::Value>(l).ok());
                }
            })
        });
        g.bench_function(format!("auditwatch_decode/{name}"), |b| {
            let mut ev = Event::default();
            b.iter(|| {
                for l in &lines {
                    black_box(auditwatch::decode::decode_json(l, &mut ev).ok());
                }
            })
        });
    }
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("raw_record_serde_json/events", |b| {
        b.iter(|| {
            for l in &lines {
                let text = std::str::from_utf8(l).unwrap_or("");
                black_box(serde_json::from_str::<RawRecord<'_>>(text).is_ok());
            }
        })
    });
    g.bench_function("raw_record_sonic_rs/events", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(sonic_rs::from_slice::<RawRecord<'_>>(l).is_ok());
            }
        })
    });
    g.bench_function("raw_record_simd_json/events", |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            for l in &lines {
                buf.clear();
                buf.extend_from_slice(l);
                black_box(simd_json::serde::from_slice::<RawRecord<'_>>(&mut buf).is_ok());
            }
        })
    });
    // Lazy access: locate only the fields the audit decode reads (the
    // delivered shape's keys), leaving every value as raw text. This is the
    // most a lazy reader could save on these records before any
    // unescaping or normalization.
    let tree = {
        let mut t = sonic_rs::PointerTree::new();
        for key in [
            "timestamp",
            "serviceName",
            "actionName",
            "workspaceId",
            "requestId",
            "sourceIPAddress",
            "userAgent",
            "auditLevel",
            "requestParams",
        ] {
            t.add_path(&[key]);
        }
        t.add_path(&["userIdentity", "email"]);
        t.add_path(&["response", "statusCode"]);
        t.add_path(&["response", "errorMessage"]);
        t
    };
    g.bench_function("lazy_sonic_rs_get_many/events", |b| {
        b.iter(|| {
            for l in &lines {
                if let Ok(found) = sonic_rs::get_many(l.as_slice(), &tree) {
                    black_box(found.iter().flatten().map(|v| v.as_raw_str().len()).sum::<usize>());
                }
            }
        })
    });
    g.bench_function("lazy_sonic_rs_object_iter/events", |b| {
        b.iter(|| {
            for l in &lines {
                let mut n = 0usize;
                for (key, value) in sonic_rs::to_object_iter(l.as_slice()).flatten() {
                    n += key.len() + value.as_raw_str().len();
                }
                black_box(n);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
