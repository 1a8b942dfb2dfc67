//! Any byte stream read as JSON lines (with a small record limit, so that
//! the too-large path is exercised) never panics and always terminates.
#![no_main]

use auditwatch::event::Event;
use auditwatch::source::RecordStream;
use auditwatch::source::lines::{CountingReader, JsonLines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (reader, bytes) = CountingReader::new(std::io::Cursor::new(data.to_vec()));
    let mut lines = JsonLines::new(Box::new(reader), "fuzz".into(), 256, bytes);
    let (mut ev, mut raw) = (Event::default(), Vec::new());
    while lines.next_record(&mut ev, &mut raw).is_some() {}
});
