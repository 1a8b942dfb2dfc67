//! State per principal and signal, and allocations per event on the hot
//! path, measured with a counting global allocator (exact heap bytes, not
//! RSS, which moves with the allocator's whims).
//!
//! P users each do, every hour, one query, one permission change, one
//! secret read and one download, from a fixed network and browser, so each
//! holds state in eight detectors (four counts, first-seen source, unusual
//! hours, and the offboarded and role-drift rules). The pipeline runs
//! `HOURS` hours; the live heap after the last bucket closed, minus the
//! heap before, divided by P × 8, is the state per principal·signal
//! (one detector's baseline of one principal; names, first-seen times and
//! every table included).
//! Allocations are counted over the second half, when every principal and
//! bucket already exists: the steady state.
//!
//! `cargo bench --bench state` runs 200,000 principals; `cargo test
//! --benches` runs 2,000 to check that it works.

use auditwatch::detect::definition::built_in;
use auditwatch::event::{Event, PrincipalKind, Shape, Signal, Signals};
use auditwatch::pipeline::{Pipeline, PipelineConfig};
use auditwatch::time::{EventTime, MS_PER_HOUR};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The system allocator, counting live bytes and allocations.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const HOURS: i64 = 8;
const SIGNALS: [Signal; 4] =
    [Signal::QueryFrequency, Signal::PermissionChange, Signal::SecretRead, Signal::DataDownload];

fn main() {
    let principals: u64 = if std::env::args().any(|a| a == "--bench") { 200_000 } else { 2_000 };
    let t0 = 1_704_067_200_000i64 + 9 * MS_PER_HOUR; // a Monday, 09:00
    let before = LIVE.load(Relaxed);
    let mut pipeline = Pipeline::new(PipelineConfig::new(built_in().expect("built-in definitions")));
    let mut ev = Event::default();
    let mut out = Vec::new();
    let mut events = 0u64;
    let mut steady = (0u64, 0u64); // (events, allocations) in the second half
    let mut seq = 0u64;
    let started = std::time::Instant::now();
    for hour in 0..HOURS {
        let allocs_before = ALLOCS.load(Relaxed);
        let mut hour_events = 0;
        for p in 0..principals {
            for (k, signal) in SIGNALS.iter().enumerate() {
                ev.clear();
                ev.shape = Some(Shape::AuditDelivery);
                // Spread over the hour, in time order across principals.
                ev.time =
                    EventTime(t0 + hour * MS_PER_HOUR + ((p * 4 + k as u64) * 3_599_000 / (principals * 4)) as i64);
                let _ = write!(ev.principal, "user{p}@acme.example");
                ev.principal_kind = PrincipalKind::User;
                ev.workspace = 1;
                let _ = write!(ev.source_ip, "10.{}.{}.7", p % 250, p / 250 % 250);
                ev.user_agent.push_str("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0");
                seq += 1;
                let _ = write!(ev.id, "req-{seq}");
                ev.signals = Signals::EMPTY.with(*signal).with(Signal::Source).with(Signal::Activity);
                pipeline.event(&ev, &mut out).expect("no duplicates");
                out.clear();
                hour_events += 1;
            }
        }
        events += hour_events;
        if hour >= HOURS / 2 {
            steady.0 += hour_events;
            steady.1 += ALLOCS.load(Relaxed) - allocs_before;
        }
    }
    pipeline.finish(&mut out);
    let elapsed = started.elapsed().as_secs_f64();
    drop(ev);
    out = Vec::new();
    let live = LIVE.load(Relaxed) - before;
    // Four counts, first-seen source, unusual hours, and the two access
    // rules that keep a bucket per principal (offboarded, role drift).
    let signals = SIGNALS.len() as u64 + 4;
    println!(
        "state bench: {principals} principals x {signals} signals, {HOURS} hours, {events} events in {elapsed:.1} s"
    );
    println!(
        "  live heap after the last bucket closed: {:.1} MiB; {:.0} bytes per principal, {:.0} bytes per principal·signal (goal ≤ 2048)",
        live as f64 / 1048576.0,
        live as f64 / principals as f64,
        live as f64 / (principals * signals) as f64
    );
    println!(
        "  steady state (hours {}–{HOURS}): {:.3} allocations per event ({} over {} events)",
        HOURS / 2 + 1,
        steady.1 as f64 / steady.0 as f64,
        steady.1,
        steady.0
    );
    assert!(out.is_empty());
    drop(pipeline);
}
