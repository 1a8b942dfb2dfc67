//! File inputs: discovery, format sniffing, and grouping into streams.
//!
//! A path may be a file or a directory. Directories are walked in sorted
//! order, as audit log delivery lays them out
//! (`workspaceId=<id>/date=<YYYY-MM-DD>/auditlogs_*.json`), skipping hidden
//! and marker files (`.crc`, `_SUCCESS`, `_committed_*`). The format is read
//! from the first bytes, not the name: gzip (`1f 8b`), Parquet (`PAR1`), or
//! JSON lines. Files are grouped into *streams*: files in the same folder
//! once date/hour partition folders are set aside form one stream, read one
//! after another in name order; different streams are merged by event time
//! (see [`super::merge`]). Never decodes content itself.

use super::RecordStream;
use super::lines::{CountingReader, JsonLines};
use super::parquet::ParquetRows;
use crate::decode::keep::KeepParams;
use crate::event::{Event, Shape};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors that stop a file from being read at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a readable Parquet file: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("no input files found under {0}")]
    Empty(String),
}

/// A file's format, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    GzipJsonLines,
    Parquet,
}

/// Reads the first bytes of `path` to tell its format.
pub fn sniff(path: &Path) -> Result<Format, SourceError> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).map_err(|source| SourceError::Io { path: path.into(), source })?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(SourceError::Io { path: path.into(), source });
            }
        }
    }
    Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
        Format::GzipJsonLines
    } else if n == 4 && &head == b"PAR1" {
        Format::Parquet
    } else {
        Format::JsonLines
    })
}

fn is_marker(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_') || name.ends_with(".crc")
}

/// All input files under `paths`, sorted, markers skipped.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| SourceError::Io { path: p.clone(), source })?;
        if meta.is_dir() {
            let before = out.len();
            walk(p, &mut out)?;
            if out.len() == before {
                return Err(SourceError::Empty(p.display().to_string()));
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let rd = std::fs::read_dir(dir).map_err(|source| SourceError::Io { path: dir.into(), source })?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if is_marker(&name) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// A partition folder that splits one stream over time: `date=...`,
/// `hour=...`, or a folder named only by digits and dashes (`2024-01-01`, `07`).
fn is_time_partition(component: &str) -> bool {
    let lower = component.to_ascii_lowercase();
    if let Some((key, _)) = lower.split_once('=') {
        return key.ends_with("date") || key == "hour" || key == "year" || key == "month" || key == "day";
    }
    !component.is_empty() && component.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// The stream a file belongs to: its folder without time partitions.
pub fn stream_key(path: &Path) -> PathBuf {
    let parent = path.parent().unwrap_or(Path::new(""));
    parent.components().filter(|c| !is_time_partition(&c.as_os_str().to_string_lossy())).collect()
}

/// The shape of a file's first decodable record, if any: files of
/// different tables in one export folder are different streams.
pub fn first_shape(path: &Path, max_record: usize) -> Option<Shape> {
    let mut s = open(path, max_record).ok()?;
    let (mut ev, mut raw) = (Event::default(), Vec::new());
    // A few refused records at the head of a file do not hide its shape.
    for _ in 0..16 {
        match s.next_record(&mut ev, &mut raw)? {
            super::Record::Event(shape) => return Some(shape),
            super::Record::Quarantined(_) => continue,
        }
    }
    None
}

/// A group of files read one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFiles {
    /// Shape of the first record of the group's first file.
    pub shape: Option<Shape>,
    pub files: Vec<PathBuf>,
}

/// Groups files into streams: same folder (time partitions set aside) and
/// same first-record shape; ordered by folder then shape, files in name order.
pub fn group_streams(files: Vec<PathBuf>, max_record: usize) -> Vec<StreamFiles> {
    let mut groups: BTreeMap<(PathBuf, Option<Shape>), Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let shape = first_shape(&f, max_record);
        groups.entry((stream_key(&f), shape)).or_default().push(f);
    }
    groups
        .into_iter()
        .map(|((_, shape), mut files)| {
            files.sort();
            StreamFiles { shape, files }
        })
        .collect()
}

/// Opens one file as a record stream, keeping every request parameter.
pub fn open(path: &Path, max_record: usize) -> Result<Box<dyn RecordStream + Send>, SourceError> {
    open_keeping(path, max_record, Arc::new(KeepParams::everything()))
}

/// Opens one file as a record stream that keeps request parameters only
/// for the events `keep` names.
pub fn open_keeping(
    path: &Path,
    max_record: usize,
    keep: Arc<KeepParams>,
) -> Result<Box<dyn RecordStream + Send>, SourceError> {
    let origin = path.display().to_string();
    let format = sniff(path)?;
    if format == Format::Parquet {
        return Ok(Box::new(ParquetRows::open(path, origin)?.keeping(keep)));
    }
    let file = File::open(path).map_err(|source| SourceError::Io { path: path.into(), source })?;
    let (counted, bytes) = CountingReader::new(file);
    let reader: Box<dyn Read + Send> = match format {
        Format::GzipJsonLines => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(counted))),
        _ => Box::new(counted),
    };
    Ok(Box::new(JsonLines::new(reader, origin, max_record, bytes).keeping(keep)))
}

/// The files of one stream, opened one after another.
pub struct FileChain {
    files: std::vec::IntoIter<PathBuf>,
    current: Option<Box<dyn RecordStream + Send>>,
    max_record: usize,
    keep: Arc<KeepParams>,
    /// Bytes of files already finished.
    done_bytes: u64,
    /// Files that could not be opened, with why.
    pub errors: Vec<SourceError>,
}

impl FileChain {
    pub fn new(files: Vec<PathBuf>, max_record: usize) -> Self {
        FileChain {
            files: files.into_iter(),
            current: None,
            max_record,
            keep: Arc::new(KeepParams::everything()),
            done_bytes: 0,
            errors: Vec::new(),
        }
    }

    /// Keeps request parameters only for the events `keep` names.
    pub fn keeping(mut self, keep: Arc<KeepParams>) -> Self {
        self.keep = keep;
        self
    }
}

impl RecordStream for FileChain {
    fn next_record(&mut self, ev: &mut crate::event::Event, raw: &mut Vec<u8>) -> Option<super::Record> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                if let Some(r) = cur.next_record(ev, raw) {
                    return Some(r);
                }
                self.done_bytes += cur.bytes_read();
                self.current = None;
            }
            let next = self.files.next()?;
            match open_keeping(&next, self.max_record, self.keep.clone()) {
                Ok(s) => self.current = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "input file skipped");
                    self.errors.push(e);
                }
            }
        }
    }

    fn position(&self) -> super::Position {
        self.current.as_ref().map(|c| c.position()).unwrap_or_default()
    }

    fn bytes_read(&self) -> u64 {
        self.done_bytes + self.current.as_ref().map(|c| c.bytes_read()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_layout_is_one_stream_per_workspace() {
        let a = Path::new("logs/workspaceId=1/date=2024-01-01/auditlogs_a.json");
        let b = Path::new("logs/workspaceId=1/date=2024-01-02/auditlogs_b.json");
        let c = Path::new("logs/workspaceId=2/date=2024-01-01/auditlogs_c.json");
        assert_eq!(stream_key(a), stream_key(b));
        assert_ne!(stream_key(a), stream_key(c));
        // The files do not exist: their shape is unknown, and equal.
        let groups: Vec<Vec<PathBuf>> =
            group_streams(vec![c.into(), b.into(), a.into()], 1024).into_iter().map(|g| g.files).collect();
        assert_eq!(groups, vec![vec![PathBuf::from(a), PathBuf::from(b)], vec![PathBuf::from(c)]]);
    }

    #[test]
    fn sniffs_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("x.json");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, b"{}\n").unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(sniff(&gz).unwrap(), Format::GzipJsonLines);
        let plain = dir.path().join("y");
        std::fs::write(&plain, b"{}\n").unwrap();
        assert_eq!(sniff(&plain).unwrap(), Format::JsonLines);
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
        assert_eq!(discover(&[dir.path().into()]).unwrap(), vec![gz, plain]);
    }
}
