//! The fan-out: every alert the pipeline raises goes to every configured
//! sink whose filter accepts it.
//!
//! Local sinks (files, stdout) are written on the caller's thread. Remote
//! sinks get the alert in their durable spool and deliver it from their
//! own thread (`deliver`), so a slow or dead receiver never holds the
//! pipeline up until its spool is full (`queue_max`), and never costs an
//! alert. `sync` makes everything accepted so far durable: live mode calls
//! it before a checkpoint commits offsets. `finish` waits for the spools to
//! drain, up to a deadline, and reports what is left.

use super::config::{DeliveryConfig, Format, SinkConfig, SinkKind};
use super::deliver::{Spool, Worker, dead_letter_path};
use super::metrics::{ForSink, SinkMetrics};
use super::{SinkError, format, mask, parquet::AlertParquet};
use crate::alert::Alert;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long outputs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `replay`, `demo`: files are written anew; a run ends.
    Batch,
    /// `run`: files are appended to across restarts, Parquet files roll at
    /// each `sync`, and alerts raised again after a restart are not sent twice.
    Continuous,
}

/// All sinks of a run.
pub struct FanOut {
    sinks: Vec<Sink>,
}

struct Sink {
    config: SinkConfig,
    metrics: ForSink,
    out: Output,
}

enum Output {
    Remote {
        spool: Arc<Spool>,
        worker: Option<std::thread::JoinHandle<()>>,
        dir: PathBuf,
        /// Continuous mode: ids accepted since the last `sync` (file
        /// `accepted.ids` beside the spool), so a restart does not spool
        /// the alerts raised again from records after the checkpoint.
        recent: Option<RecentIds>,
    },
    Lines {
        path: PathBuf,
        format: Format,
        out: BufWriter<File>,
        /// Continuous mode: ids the file already holds.
        ids: Option<HashSet<String>>,
    },
    Parquet(Option<Box<AlertParquet>>),
    /// Continuous-mode Parquet: one file per checkpoint that has alerts,
    /// written as `.partial`, closed at `sync` and renamed to `.parquet`
    /// only at `checkpointed` (a crash in between raises its alerts again,
    /// into a new part; the stale `.partial` is removed at the next start).
    ParquetRolling {
        path: PathBuf,
        current: Option<(Box<AlertParquet>, PathBuf)>,
        closed: Vec<(PathBuf, PathBuf)>,
    },
    Stdout {
        format: Format,
    },
}

/// The ids a remote sink accepted that the state saved so far does not
/// cover: after a crash, the records that raised them are read again and
/// raise them again.
struct RecentIds {
    path: PathBuf,
    file: File,
    /// Accepted by this process since its last checkpoint.
    ids: HashSet<String>,
    /// Accepted by an earlier process after its last checkpoint: kept until
    /// each is raised again (once) or a later run drops it, however many
    /// checkpoints this process takes before its re-read reaches them.
    inherited: HashSet<String>,
}

/// What a sink did over a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkReport {
    pub name: String,
    pub kind: &'static str,
    pub accepted: u64,
    pub filtered: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Alerts still in the spool (remote sinks).
    pub remaining: u64,
    /// The spool folder (remote sinks).
    pub spool: Option<PathBuf>,
}

/// What every sink did.
#[derive(Debug, Clone, Default)]
pub struct DeliveryReport {
    pub sinks: Vec<SinkReport>,
}

impl DeliveryReport {
    /// Alerts left in spools (delivered by the next run or `auditwatch deliver`).
    pub fn remaining(&self) -> u64 {
        self.sinks.iter().map(|s| s.remaining).sum()
    }
}

impl std::fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.sinks {
            write!(f, "sink {} ({}): {} accepted, {} filtered out", s.name, s.kind, s.accepted, s.filtered)?;
            if s.spool.is_some() {
                write!(
                    f,
                    ", {} delivered, {} dead-lettered, {} in the spool",
                    s.delivered, s.dead_lettered, s.remaining
                )?;
            }
            writeln!(f)?;
            if s.remaining > 0
                && let Some(dir) = &s.spool
            {
                writeln!(
                    f,
                    "  undelivered alerts wait in {}; the next run or `auditwatch deliver` sends them",
                    dir.display()
                )?;
            }
            if s.dead_lettered > 0
                && let Some(dir) = &s.spool
            {
                writeln!(f, "  refused alerts are in {}", dead_letter_path(dir).display())?;
            }
        }
        Ok(())
    }
}

impl FanOut {
    /// No sinks.
    pub fn none() -> FanOut {
        FanOut { sinks: Vec::new() }
    }

    /// Opens every sink and starts the delivery threads; spools left by an
    /// earlier run are delivered first.
    pub fn open(
        config: &DeliveryConfig,
        spool_dir: &Path,
        mode: Mode,
        registry: &prometheus::Registry,
    ) -> Result<FanOut, SinkError> {
        let metrics = SinkMetrics::new(registry).map_err(|e| SinkError::Metrics(e.to_string()))?;
        let mut sinks = Vec::new();
        for config in &config.sinks {
            let m = metrics.for_sink(&config.name);
            let out = match &config.kind {
                SinkKind::File { path, format } => open_file(path, *format, mode)?,
                SinkKind::Stdout { format } => Output::Stdout { format: *format },
                _ => {
                    let dir = spool_dir.join(&config.name);
                    let spool = Spool::open(&dir)?;
                    m.queue_depth.set(spool.len() as i64);
                    if !spool.is_empty() {
                        tracing::info!(sink = %config.name, held = spool.len(), "delivering alerts left in the spool by an earlier run");
                    }
                    let worker = Worker::new(config.clone(), Arc::clone(&spool), &dir, m.clone())
                        .spawn()
                        .map_err(|source| SinkError::Io { path: dir.clone(), source })?;
                    let recent = match mode {
                        Mode::Continuous => Some(RecentIds::open(&dir.join("accepted.ids"))?),
                        Mode::Batch => None,
                    };
                    Output::Remote { spool, worker: Some(worker), dir, recent }
                }
            };
            sinks.push(Sink { config: config.clone(), metrics: m, out });
        }
        Ok(FanOut { sinks })
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Hands `alert` to every sink whose filter accepts it.
    pub fn accept(&mut self, alert: &Alert) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            if !sink.config.filter.accepts(alert) {
                sink.metrics.filtered.inc();
                continue;
            }
            let cfg = &sink.config;
            match &mut sink.out {
                Output::Remote { spool, recent, .. } => {
                    if recent.as_mut().is_some_and(|r| r.seen(&alert.alert_id)) {
                        sink.metrics.repeated.inc();
                        continue;
                    }
                    spool.push(alert, cfg.delivery.queue_max, &cfg.name, &sink.metrics.queue_depth)?;
                    if let Some(r) = recent {
                        r.add(&alert.alert_id)?;
                    }
                }
                Output::Lines { path, format, out, ids } => {
                    if ids.as_ref().is_some_and(|ids| ids.contains(&alert.alert_id)) {
                        sink.metrics.repeated.inc();
                        continue;
                    }
                    let masked = mask::apply(alert, cfg.mask);
                    let io = |source| SinkError::Io { path: path.clone(), source };
                    match format {
                        Format::Alert | Format::Text => {
                            serde_json::to_writer(&mut *out, &masked).map_err(std::io::Error::from).map_err(io)?
                        }
                        f => serde_json::to_writer(&mut *out, &format::encode(&masked, *f))
                            .map_err(std::io::Error::from)
                            .map_err(io)?,
                    }
                    out.write_all(b"\n").map_err(io)?;
                    if let Some(ids) = ids {
                        ids.insert(alert.alert_id.clone());
                    }
                }
                Output::Parquet(p) => {
                    if let Some(p) = p {
                        p.write(&mask::apply(alert, cfg.mask))?;
                    }
                }
                Output::ParquetRolling { path, current, closed } => {
                    if current.is_none() {
                        let stamp = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis());
                        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("alerts");
                        // Two parts in one millisecond get a sequence number.
                        let (tmp, final_path) = (0..)
                            .map(|seq: u32| {
                                let name =
                                    if seq == 0 { format!("{stem}-{stamp}") } else { format!("{stem}-{stamp}.{seq}") };
                                (
                                    path.with_file_name(format!("{name}.parquet.partial")),
                                    path.with_file_name(format!("{name}.parquet")),
                                )
                            })
                            .find(|(tmp, fin)| !tmp.exists() && !fin.exists() && !closed.iter().any(|(t, _)| t == tmp))
                            .unwrap_or_default();
                        *current = Some((Box::new(AlertParquet::create(&tmp)?), final_path));
                    }
                    if let Some((p, _)) = current {
                        p.write(&mask::apply(alert, cfg.mask))?;
                    }
                }
                Output::Stdout { format } => {
                    let masked = mask::apply(alert, cfg.mask);
                    let text = match format {
                        Format::Text => super::render_alert(&masked),
                        Format::Alert => serde_json::to_string(&masked).unwrap_or_default(),
                        f => format::encode(&masked, *f).to_string(),
                    };
                    let mut stdout = std::io::stdout().lock();
                    // A closed stdout (a pipe to `head`) must not stop detection.
                    let _ = writeln!(stdout, "{text}");
                }
            }
            sink.metrics.accepted.inc();
        }
        Ok(())
    }

    /// Puts the alerts of every remote sink's dead-letter file back into its
    /// spool (after the receiver was fixed), and renames the file
    /// `dead-letter-requeued-<unix ms>.jsonl` so that nothing is requeued
    /// twice. Returns how many alerts were requeued.
    pub fn requeue_dead_letters(&mut self) -> Result<u64, SinkError> {
        let mut n = 0;
        for sink in &mut self.sinks {
            let Output::Remote { spool, dir, .. } = &sink.out else { continue };
            let path = dead_letter_path(dir);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SinkError::Io { path, source }),
            };
            for line in text.lines() {
                let alert = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| serde_json::from_value::<Alert>(v.get("alert")?.clone()).ok());
                match alert {
                    Some(a) => {
                        spool.push(&a, usize::MAX, &sink.config.name, &sink.metrics.queue_depth)?;
                        n += 1;
                    }
                    None => {
                        tracing::warn!(sink = %sink.config.name, "a dead letter without an alert is left in the renamed file")
                    }
                }
            }
            spool.sync()?;
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let done = dir.join(format!("dead-letter-requeued-{stamp}.jsonl"));
            std::fs::rename(&path, &done).map_err(|source| SinkError::Io { path: done, source })?;
        }
        Ok(n)
    }

    /// Makes everything accepted so far durable (spools, files; closes the
    /// current Parquet part in continuous mode).
    pub fn sync(&mut self) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            match &mut sink.out {
                Output::Remote { spool, .. } => spool.sync()?,
                Output::Lines { path, out, .. } => {
                    let io = |source| SinkError::Io { path: path.clone(), source };
                    out.flush().map_err(io)?;
                    out.get_ref().sync_data().map_err(io)?;
                }
                Output::ParquetRolling { current, closed, .. } => {
                    if let Some((p, final_path)) = current.take() {
                        let tmp = p.path().to_owned();
                        p.finish()?;
                        let io = |source| SinkError::Io { path: tmp.clone(), source };
                        File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
                        closed.push((tmp, final_path));
                    }
                }
                Output::Parquet(_) | Output::Stdout { .. } => {}
            }
        }
        Ok(())
    }

    /// Live mode, once the state covering every alert accepted so far is
    /// durable: those alerts will not be raised again, so the ids kept to
    /// recognise them (`accepted.ids`) are forgotten. Before that point a
    /// crash restarts from the previous checkpoint and raises them again,
    /// and the ids keep them out of the spools a second time.
    pub fn checkpointed(&mut self) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            match &mut sink.out {
                Output::Remote { recent: Some(r), .. } => r.clear()?,
                Output::ParquetRolling { closed, .. } => {
                    for (tmp, final_path) in closed.drain(..) {
                        std::fs::rename(&tmp, &final_path)
                            .map_err(|source| SinkError::Io { path: final_path, source })?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Closes every sink: files are finished, and spools get until
    /// `drain_timeout` to empty. Whatever is left stays in the spool for the
    /// next run.
    pub fn finish(mut self, drain_timeout: Duration) -> Result<DeliveryReport, SinkError> {
        self.sync()?;
        let deadline = Instant::now() + drain_timeout;
        for sink in &self.sinks {
            if let Output::Remote { spool, .. } = &sink.out
                && !spool.wait_empty(deadline)
            {
                tracing::warn!(sink = %sink.config.name, held = spool.len(), "drain timeout: alerts stay in the spool");
            }
        }
        let mut report = DeliveryReport::default();
        for mut sink in self.sinks.drain(..) {
            let mut remaining = 0;
            let mut spool_path = None;
            match &mut sink.out {
                Output::Remote { spool, worker, dir, .. } => {
                    spool.stop();
                    if let Some(w) = worker.take() {
                        let _ = w.join();
                    }
                    spool.sync()?;
                    remaining = spool.len() as u64;
                    sink.metrics.queue_depth.set(remaining as i64);
                    spool_path = Some(dir.clone());
                }
                Output::Lines { path, out, .. } => {
                    out.flush().map_err(|source| SinkError::Io { path: path.clone(), source })?;
                }
                Output::Parquet(p) => {
                    if let Some(p) = p.take() {
                        p.finish()?;
                    }
                }
                Output::ParquetRolling { .. } | Output::Stdout { .. } => {}
            }
            report.sinks.push(SinkReport {
                name: sink.config.name.clone(),
                kind: sink.config.kind.type_name(),
                accepted: sink.metrics.accepted.get(),
                filtered: sink.metrics.filtered.get(),
                delivered: sink.metrics.delivered.get(),
                dead_lettered: sink.metrics.dead_lettered.get(),
                remaining,
                spool: spool_path,
            });
        }
        Ok(report)
    }
}

fn open_file(path: &Path, format: Format, mode: Mode) -> Result<Output, SinkError> {
    let io = |source| SinkError::Io { path: path.into(), source };
    let parquet = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    Ok(match (parquet, mode) {
        (true, Mode::Batch) => Output::Parquet(Some(Box::new(AlertParquet::create(path)?))),
        (true, Mode::Continuous) => {
            // Parts a crash left unrenamed: their alerts are raised again.
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("alerts").to_owned();
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{stem}-")) && name.ends_with(".parquet.partial") {
                    tracing::info!(file = %entry.path().display(), "removing a Parquet part a crash left unfinished");
                    std::fs::remove_file(entry.path()).map_err(io)?;
                }
            }
            Output::ParquetRolling { path: path.into(), current: None, closed: Vec::new() }
        }
        (false, Mode::Batch) => {
            Output::Lines { path: path.into(), format, out: BufWriter::new(File::create(path).map_err(io)?), ids: None }
        }
        (false, Mode::Continuous) => {
            let (f, text) = super::reopen_lines(path)?;
            let ids = text
                .split(|b| *b == b'\n')
                .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
                .filter_map(|v| format::id_of(&v, format).map(str::to_owned))
                .collect();
            Output::Lines { path: path.into(), format, out: BufWriter::new(f), ids: Some(ids) }
        }
    })
}

impl RecentIds {
    fn open(path: &Path) -> Result<RecentIds, SinkError> {
        let io = |source| SinkError::Io { path: path.into(), source };
        let mut file = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path).map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let inherited = text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        Ok(RecentIds { path: path.into(), file, ids: HashSet::new(), inherited })
    }

    /// Whether `id` was accepted already (an inherited id matches once).
    fn seen(&mut self, id: &str) -> bool {
        self.ids.contains(id) || self.inherited.remove(id)
    }

    fn add(&mut self, id: &str) -> Result<(), SinkError> {
        self.file
            .write_all(format!("{id}\n").as_bytes())
            .map_err(|source| SinkError::Io { path: self.path.clone(), source })?;
        self.ids.insert(id.to_owned());
        Ok(())
    }

    /// The state now covers this process's ids: the file keeps only the
    /// inherited ones not yet raised again.
    fn clear(&mut self) -> Result<(), SinkError> {
        let io = |source| SinkError::Io { path: self.path.clone(), source };
        self.file.set_len(0).map_err(io)?;
        let mut rest = String::new();
        for id in &self.inherited {
            rest.push_str(id);
            rest.push('\n');
        }
        self.file.write_all(rest.as_bytes()).map_err(io)?;
        self.ids.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::config::DeliveryConfig;

    fn alert(id: &str) -> Alert {
        let mut a = crate::sink::format::tests::sample();
        a.alert_id = id.into();
        a
    }

    fn open(dir: &Path, text: &str) -> (FanOut, prometheus::Registry) {
        let config = DeliveryConfig::parse(Path::new("t.toml"), text, &[], &Default::default()).unwrap();
        let registry = prometheus::Registry::new();
        (FanOut::open(&config, &dir.join("spool"), Mode::Continuous, &registry).unwrap(), registry)
    }

    fn parquet_ids(path: &Path) -> Vec<String> {
        let file = File::open(path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        let mut ids = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let col = batch.column_by_name("alert_id").unwrap();
            let col = col.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
            ids.extend(col.iter().map(|v| v.unwrap().to_owned()));
        }
        ids
    }

    #[test]
    fn continuous_file_sinks_hold_each_alert_once_across_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[[sink]]\nname = \"lines\"\ntype = \"file\"\npath = \"{0}/a.jsonl\"\n[[sink]]\nname = \"table\"\ntype = \"file\"\npath = \"{0}/a.parquet\"\n",
            dir.path().display()
        );
        let (mut f, _) = open(dir.path(), &text);
        f.accept(&alert("a")).unwrap();
        f.accept(&alert("b")).unwrap();
        f.sync().unwrap();
        f.checkpointed().unwrap();
        // `c` is written and its part closed, then the process dies before
        // the state covering it is saved.
        f.accept(&alert("c")).unwrap();
        f.sync().unwrap();
        drop(f);
        // The restart raises `b`? No: b is before the checkpoint. It raises `c` again, then `d`.
        let (mut f, _) = open(dir.path(), &text);
        f.accept(&alert("c")).unwrap();
        f.accept(&alert("d")).unwrap();
        f.sync().unwrap();
        f.checkpointed().unwrap();
        f.finish(Duration::ZERO).unwrap();

        let lines: Vec<String> = std::fs::read_to_string(dir.path().join("a.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Alert>(l).unwrap().alert_id)
            .collect();
        assert_eq!(lines, ["a", "b", "c", "d"]);
        let mut parts: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        parts.retain(|p| p.to_string_lossy().contains("a-"));
        assert!(parts.iter().all(|p| p.extension().is_some_and(|e| e == "parquet")), "stale part left: {parts:?}");
        let mut ids: Vec<String> = parts.iter().flat_map(|p| parquet_ids(p)).collect();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_remote_sink_remembers_accepted_ids_until_the_state_is_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens on port 9: every alert stays in the spool.
        let text = "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n";
        let (mut f, _) = open(dir.path(), text);
        f.accept(&alert("a")).unwrap();
        f.sync().unwrap();
        f.finish(Duration::ZERO).unwrap(); // a crash before the state was saved
        let (mut f, registry) = open(dir.path(), text);
        // The restarted process checkpoints before its re-read reaches `a`.
        f.sync().unwrap();
        f.checkpointed().unwrap();
        f.accept(&alert("a")).unwrap(); // raised again after the restart: not spooled twice
        let repeated = registry
            .gather()
            .iter()
            .find(|m| m.name() == "auditwatch_sink_alerts_repeated_total")
            .map(|m| m.get_metric()[0].get_counter().get_value());
        assert_eq!(repeated, Some(1.0));
        f.checkpointed().unwrap();
        f.accept(&alert("a")).unwrap(); // after a checkpoint an id is new again (a later window would differ)
        let report = f.finish(Duration::ZERO).unwrap();
        assert_eq!(report.sinks[0].remaining, 2);
    }
}
