//! Any bytes given to the JSON decoder give an event or a quarantine
//! reason, never a panic.
#![no_main]

use auditwatch::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut ev = Event::default();
    let _ = auditwatch::decode::decode_json(data, &mut ev);
});
