//! Replay in event-time order whatever order the input is in: an external
//! sort of decoded events.
//!
//! Replay knows its whole input, so a file in any row order (a `SELECT *`
//! export, a delivered file rewritten out of order) must give the alerts
//! of the same rows sorted. [`Sorter`] takes every decoded event, encodes
//! it compactly ([`encode`]: fixed fields, then length-prefixed strings),
//! and hands the events back in one canonical order: by event time, then
//! by the encoding's bytes. Two inputs holding the same records in any
//! order therefore replay identically, ties included.
//!
//! **Bounds.** Encoded events are held in memory up to `memory_bytes`
//! (plus 16 bytes of index per event); past that each batch is sorted and
//! written to a run file in the spill directory, and the runs are merged
//! at the end, reading 64 KiB per run at a time. The disk used is about
//! the encoded size of the input's events (typically 40–60% of its JSON),
//! removed when the replay ends. Written by hand rather than with a crate:
//! the sort key is the event's own encoding, and the available external
//! sort crates serialize through serde, which allocates every string of
//! every event on the way back.

use crate::event::{Event, PrincipalKind, RunPhase, Shape, Signals};
use crate::time::EventTime;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Default memory for encoded events before spilling: 1 GiB.
pub const DEFAULT_MEMORY_BYTES: usize = 1 << 30;

/// Offset of the event time in an encoding (after the shape byte).
const TIME_AT: usize = 1;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends the encoding of `ev` to `out`.
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    out.push(ev.shape.map_or(u8::MAX, |s| s.index() as u8));
    out.extend_from_slice(&ev.time.0.to_le_bytes());
    out.extend_from_slice(&ev.workspace.to_le_bytes());
    out.extend_from_slice(&ev.start.0.to_le_bytes());
    out.extend_from_slice(&ev.end.0.to_le_bytes());
    out.extend_from_slice(&ev.amount.to_bits().to_le_bytes());
    out.extend_from_slice(&ev.signals.bits().to_le_bytes());
    out.extend_from_slice(&ev.status.map_or(u32::MAX, u32::from).to_le_bytes());
    out.push(match ev.principal_kind {
        PrincipalKind::User => 0,
        PrincipalKind::ServicePrincipal => 1,
        PrincipalKind::System => 2,
        PrincipalKind::Unknown => 3,
    });
    out.push(match ev.run_phase {
        RunPhase::None => 0,
        RunPhase::Start => 1,
        RunPhase::End => 2,
        RunPhase::Complete => 3,
    });
    out.push(u8::from(ev.correction) | u8::from(ev.unknown_service) << 1 | ev.audit_level.index() << 2);
    for s in strings(ev) {
        put_str(out, s);
    }
    out.extend_from_slice(&(ev.params.len() as u32).to_le_bytes());
    for (k, v) in &ev.params {
        put_str(out, k);
        put_str(out, v);
    }
}

fn strings(ev: &Event) -> [&String; 21] {
    [
        &ev.principal,
        &ev.run_as,
        &ev.service,
        &ev.action,
        &ev.source_ip,
        &ev.user_agent,
        &ev.securable,
        &ev.target,
        &ev.group,
        &ev.changes,
        &ev.endpoint,
        &ev.role,
        &ev.source_table,
        &ev.id,
        &ev.job_id,
        &ev.run_id,
        &ev.run_result,
        &ev.sku,
        &ev.error_message,
        &ev.path,
        &ev.auth_method,
    ]
}

fn strings_mut(ev: &mut Event) -> [&mut String; 21] {
    [
        &mut ev.principal,
        &mut ev.run_as,
        &mut ev.service,
        &mut ev.action,
        &mut ev.source_ip,
        &mut ev.user_agent,
        &mut ev.securable,
        &mut ev.target,
        &mut ev.group,
        &mut ev.changes,
        &mut ev.endpoint,
        &mut ev.role,
        &mut ev.source_table,
        &mut ev.id,
        &mut ev.job_id,
        &mut ev.run_id,
        &mut ev.run_result,
        &mut ev.sku,
        &mut ev.error_message,
        &mut ev.path,
        &mut ev.auth_method,
    ]
}

/// Reads an encoding back into `ev`, reusing its strings' capacity.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn str(&mut self, dst: &mut String) -> Option<()> {
        let n = self.u32()? as usize;
        dst.clear();
        dst.push_str(std::str::from_utf8(self.take(n)?).ok()?);
        Some(())
    }
}

/// Decodes an [`encode`]d event into `ev`. `None` only for bytes this
/// module did not write.
pub fn decode(bytes: &[u8], ev: &mut Event) -> Option<()> {
    let mut c = Cursor(bytes);
    ev.shape = Shape::ALL.get(c.u8()? as usize).copied();
    ev.time = EventTime(c.u64()? as i64);
    ev.workspace = c.u64()?;
    ev.start = EventTime(c.u64()? as i64);
    ev.end = EventTime(c.u64()? as i64);
    ev.amount = f64::from_bits(c.u64()?);
    ev.signals = Signals::from_bits(c.u16()?);
    ev.status = u16::try_from(c.u32()?).ok();
    ev.principal_kind = match c.u8()? {
        0 => PrincipalKind::User,
        1 => PrincipalKind::ServicePrincipal,
        2 => PrincipalKind::System,
        _ => PrincipalKind::Unknown,
    };
    ev.run_phase = match c.u8()? {
        1 => RunPhase::Start,
        2 => RunPhase::End,
        3 => RunPhase::Complete,
        _ => RunPhase::None,
    };
    let flags = c.u8()?;
    ev.correction = flags & 1 != 0;
    ev.unknown_service = flags & 2 != 0;
    ev.audit_level = crate::event::AuditLevel::from_index(flags >> 2 & 3);
    for s in strings_mut(ev) {
        c.str(s)?;
    }
    let n = c.u32()? as usize;
    // Reuse the parameter slots already allocated.
    ev.params.truncate(n);
    while ev.params.len() < n {
        ev.params.push(Default::default());
    }
    for (k, v) in &mut ev.params {
        c.str(k)?;
        c.str(v)?;
    }
    Some(())
}

fn time_of(bytes: &[u8]) -> i64 {
    bytes.get(TIME_AT..TIME_AT + 8).and_then(|b| b.try_into().ok()).map_or(i64::MIN, i64::from_le_bytes)
}

/// The canonical order: event time, then the encoding.
fn order(a: &[u8], b: &[u8]) -> Ordering {
    time_of(a).cmp(&time_of(b)).then_with(|| a.cmp(b))
}

/// (time, offset, length) of each encoding in a buffer.
type Index = Vec<(i64, u32, u32)>;

/// Collects events, then hands them out sorted (see the module docs).
pub struct Sorter {
    memory_bytes: usize,
    dir: Option<tempfile::TempDir>,
    parent: std::path::PathBuf,
    buf: Vec<u8>,
    index: Index,
    runs: Vec<std::fs::File>,
    events: u64,
    spilled_bytes: u64,
}

impl Sorter {
    /// Spills to a fresh directory under `spill_dir` (made only if needed).
    pub fn new(memory_bytes: usize, spill_dir: &Path) -> Self {
        Sorter {
            memory_bytes: memory_bytes.clamp(1 << 16, u32::MAX as usize),
            dir: None,
            parent: spill_dir.to_owned(),
            buf: Vec::new(),
            index: Vec::new(),
            runs: Vec::new(),
            events: 0,
            spilled_bytes: 0,
        }
    }

    pub fn push(&mut self, ev: &Event) -> io::Result<()> {
        let at = self.buf.len();
        encode(ev, &mut self.buf);
        self.index.push((ev.time.0, at as u32, (self.buf.len() - at) as u32));
        self.events += 1;
        if self.buf.len() >= self.memory_bytes {
            self.spill()?;
        }
        Ok(())
    }

    fn sort_index(&mut self) {
        let buf = &self.buf;
        let slice = |&(_, at, len): &(i64, u32, u32)| &buf[at as usize..(at + len) as usize];
        self.index.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| slice(a).cmp(slice(b))));
    }

    fn spill(&mut self) -> io::Result<()> {
        self.sort_index();
        if self.dir.is_none() {
            std::fs::create_dir_all(&self.parent)?;
            self.dir = Some(tempfile::Builder::new().prefix("auditwatch-sort-").tempdir_in(&self.parent)?);
        }
        let dir = self.dir.as_ref().map(|d| d.path().to_owned()).unwrap_or_default();
        let mut file = tempfile::tempfile_in(dir)?;
        {
            let mut w = BufWriter::with_capacity(1 << 16, &mut file);
            for &(_, at, len) in &self.index {
                w.write_all(&len.to_le_bytes())?;
                w.write_all(&self.buf[at as usize..(at + len) as usize])?;
                self.spilled_bytes += 4 + len as u64;
            }
            w.flush()?;
        }
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0))?;
        self.runs.push(file);
        self.buf.clear();
        self.index.clear();
        Ok(())
    }

    /// Events taken so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The events, sorted.
    pub fn finish(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            self.sort_index();
            return Ok(Sorted {
                memory: Some((self.buf, self.index, 0)),
                runs: Vec::new(),
                heap: BinaryHeap::new(),
                _dir: None,
                spilled_bytes: 0,
                pending: None,
            });
        }
        if !self.index.is_empty() {
            self.spill()?;
        }
        let mut runs = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::with_capacity(self.runs.len());
        for file in self.runs {
            let mut run = Run { reader: BufReader::with_capacity(1 << 16, file), head: Vec::new() };
            if run.advance()? {
                heap.push(Reverse(Head(time_of(&run.head), runs.len())));
                runs.push(run);
            }
        }
        Ok(Sorted { memory: None, runs, heap, _dir: self.dir, spilled_bytes: self.spilled_bytes, pending: None })
    }
}

struct Run {
    reader: BufReader<std::fs::File>,
    head: Vec<u8>,
}

impl Run {
    /// Reads the next record into `head`; false at the end.
    fn advance(&mut self) -> io::Result<bool> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        self.head.resize(u32::from_le_bytes(len) as usize, 0);
        self.reader.read_exact(&mut self.head)?;
        Ok(true)
    }
}

/// A run's head time and index, ordered by time first: ties in time are
/// broken by comparing the heads themselves in [`Sorted::next`].
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Head(i64, usize);

/// Sorted events, handed out one at a time into a reused [`Event`].
pub struct Sorted {
    /// Everything in memory: the encodings, their sorted index, the next.
    memory: Option<(Vec<u8>, Index, usize)>,
    runs: Vec<Run>,
    heap: BinaryHeap<Reverse<Head>>,
    _dir: Option<tempfile::TempDir>,
    spilled_bytes: u64,
    /// The run handed out last, to be advanced on the next call.
    pending: Option<usize>,
}

impl Sorted {
    /// Bytes written to run files (0 when everything fit in memory).
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes
    }

    /// Decodes the next event into `ev`; `Ok(false)` at the end.
    pub fn next(&mut self, ev: &mut Event) -> io::Result<bool> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "damaged sort run");
        if let Some((buf, index, at)) = &mut self.memory {
            let Some(&(_, start, len)) = index.get(*at) else { return Ok(false) };
            *at += 1;
            return decode(&buf[start as usize..(start + len) as usize], ev).ok_or_else(bad).map(|()| true);
        }
        if let Some(i) = self.pending.take()
            && self.runs[i].advance()?
        {
            self.heap.push(Reverse(Head(time_of(&self.runs[i].head), i)));
        }
        // The earliest time; among runs whose heads share it, the smallest head.
        let Some(Reverse(Head(t, first))) = self.heap.pop() else { return Ok(false) };
        let mut best = first;
        let mut tied = Vec::new();
        while let Some(&Reverse(Head(tj, j))) = self.heap.peek() {
            if tj != t {
                break;
            }
            self.heap.pop();
            if order(&self.runs[j].head, &self.runs[best].head) == Ordering::Less {
                tied.push(best);
                best = j;
            } else {
                tied.push(j);
            }
        }
        for j in tied {
            self.heap.push(Reverse(Head(t, j)));
        }
        self.pending = Some(best);
        decode(&self.runs[best].head, ev).ok_or_else(bad).map(|()| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Signal;

    fn ev(ms: i64, id: &str) -> Event {
        Event {
            shape: Some(Shape::AuditDelivery),
            time: EventTime(ms),
            principal: "ana@x".into(),
            service: "accounts".into(),
            action: "login".into(),
            id: id.into(),
            status: Some(403),
            signals: Signals::EMPTY.with(Signal::Activity),
            params: vec![("user".into(), "ana".into())],
            correction: true,
            error_message: "denied".into(),
            audit_level: crate::event::AuditLevel::Account,
            ..Event::default()
        }
    }

    #[test]
    fn an_encoded_event_decodes_to_itself() {
        let e = ev(1_704_067_200_000, "r1");
        let mut bytes = Vec::new();
        encode(&e, &mut bytes);
        let mut back = Event::default();
        decode(&bytes, &mut back).unwrap();
        assert_eq!(format!("{back:?}"), format!("{e:?}"));
        assert!(decode(&bytes[..bytes.len() - 1], &mut back).is_none());
    }

    fn sorted(memory: usize, input: &[Event]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(memory, dir.path());
        for e in input {
            s.push(e).unwrap();
        }
        let mut out = s.finish().unwrap();
        let mut e = Event::default();
        let mut got = Vec::new();
        while out.next(&mut e).unwrap() {
            got.push(format!("{} {}", e.time.0, e.id));
        }
        got
    }

    #[test]
    fn any_order_gives_one_order_in_memory_and_spilled() {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut input: Vec<Event> =
            (0..5000).map(|i| ev(1_704_067_200_000 + (i % 97) * 1000, &format!("r{i}"))).collect();
        let want = sorted(DEFAULT_MEMORY_BYTES, &input);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..3 {
            input.shuffle(&mut rng);
            assert_eq!(sorted(DEFAULT_MEMORY_BYTES, &input), want);
            // 64 KiB of memory: about 40 runs on disk.
            assert_eq!(sorted(1 << 16, &input), want);
        }
        let times: Vec<i64> = want.iter().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
}
