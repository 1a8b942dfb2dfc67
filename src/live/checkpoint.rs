//! Partition checkpoints on local disk: one file per topic partition under
//! `STATE_DIR/GROUP/`, holding the offset the state covers and the
//! pipeline's own checkpoint bytes.
//!
//! File layout: the magic `AWPART01`, the offset (i64, little endian), the
//! length of the state (u64), the state, and the first 16 bytes of the
//! SHA-256 of everything before them. A file is written beside its final
//! name, forced to disk, renamed over it and the folder forced to disk, so
//! a crash leaves the old checkpoint or the new one, never a mix.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"AWPART01";
const SUM: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what}: checkpoint is damaged ({why}); move it away to start this partition afresh")]
    Damaged { what: String, why: &'static str },
    #[error("{what}: cannot restore the checkpoint: {message}")]
    Restore { what: String, message: String },
    #[error("changelog: {0}")]
    Changelog(String),
}

/// The state of one partition as of an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCheckpoint {
    /// The first offset the state does not cover.
    pub offset: i64,
    pub state: Vec<u8>,
}

impl PartitionCheckpoint {
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 16 + self.state.len() + SUM);
        for piece in self.pieces() {
            out.extend_from_slice(&piece);
        }
        out
    }

    /// The encoding, to be read a range at a time (the changelog sends a
    /// large checkpoint a message at a time, without a second copy of all
    /// of it; the checksum is computed once).
    pub fn encoded(&self) -> Encoded<'_> {
        Encoded { pieces: self.pieces() }
    }

    /// The encoding in pieces (header, state, checksum), so that a large
    /// state is written without another copy of it in memory.
    fn pieces(&self) -> [std::borrow::Cow<'_, [u8]>; 3] {
        let mut head = Vec::with_capacity(MAGIC.len() + 16);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&self.offset.to_le_bytes());
        head.extend_from_slice(&(self.state.len() as u64).to_le_bytes());
        let sum = Sha256::new().chain_update(&head).chain_update(&self.state).finalize();
        [head.into(), self.state.as_slice().into(), sum[..SUM].to_vec().into()]
    }

    pub fn decode(what: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let damaged = |why| StoreError::Damaged { what: what.to_owned(), why };
        let head = MAGIC.len() + 16;
        if bytes.len() < head + SUM || &bytes[..MAGIC.len()] != MAGIC {
            return Err(damaged("not an auditwatch partition checkpoint"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - SUM);
        if Sha256::digest(body)[..SUM] != *sum {
            return Err(damaged("checksum mismatch"));
        }
        let word = |at: usize| -> [u8; 8] { body[at..at + 8].try_into().unwrap_or([0; 8]) };
        let offset = i64::from_le_bytes(word(MAGIC.len()));
        let len = u64::from_le_bytes(word(MAGIC.len() + 8));
        if len != (body.len() - head) as u64 {
            return Err(damaged("length mismatch"));
        }
        Ok(PartitionCheckpoint { offset, state: body[head..].to_vec() })
    }
}

/// A checkpoint's encoding in pieces (header, state, checksum).
pub struct Encoded<'a> {
    pieces: [std::borrow::Cow<'a, [u8]>; 3],
}

impl Encoded<'_> {
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.len()).sum()
    }

    /// Bytes `range` of the encoding, copied.
    pub fn range(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        let mut out = Vec::with_capacity(range.len());
        let mut at = 0;
        for piece in &self.pieces {
            let (from, to) = (range.start.max(at), range.end.min(at + piece.len()));
            if from < to {
                out.extend_from_slice(&piece[from - at..to - at]);
            }
            at += piece.len();
        }
        out
    }
}

/// Checkpoint files of one consumer group.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    pub fn new(state_dir: &Path, group: &str) -> Result<Self, StoreError> {
        let dir = state_dir.join(sanitize(group));
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
        Ok(CheckpointStore { dir })
    }

    fn path(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(format!("{}-{partition}.ckpt", sanitize(topic)))
    }

    pub fn load(&self, topic: &str, partition: i32) -> Result<Option<PartitionCheckpoint>, StoreError> {
        let path = self.path(topic, partition);
        match std::fs::read(&path) {
            Ok(bytes) => PartitionCheckpoint::decode(&path.display().to_string(), &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    pub fn save(&self, topic: &str, partition: i32, cp: &PartitionCheckpoint) -> Result<(), StoreError> {
        let path = self.path(topic, partition);
        let tmp = path.with_extension("ckpt.tmp");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io { path: p, source }
        };
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        for piece in cp.pieces() {
            f.write_all(&piece).map_err(io(&tmp))?;
        }
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        Ok(())
    }
}

/// A topic or group name as a file name: anything but `[A-Za-z0-9._-]` becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "group/1").unwrap();
        assert_eq!(store.load("audit", 3).unwrap(), None);
        let cp = PartitionCheckpoint { offset: 1234, state: b"state bytes".to_vec() };
        store.save("audit", 3, &cp).unwrap();
        assert_eq!(store.load("audit", 3).unwrap(), Some(cp.clone()));
        let bytes = cp.encode();
        let encoded = cp.encoded();
        let rejoined: Vec<u8> =
            (0..bytes.len()).step_by(7).flat_map(|i| encoded.range(i..(i + 7).min(bytes.len()))).collect();
        assert_eq!(rejoined, bytes);
        assert_eq!(encoded.len(), bytes.len());
        for cut in 0..bytes.len() {
            assert!(PartitionCheckpoint::decode("t", &bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x10;
            assert!(PartitionCheckpoint::decode("t", &flipped).is_err(), "flip at {i}");
        }
    }
}
