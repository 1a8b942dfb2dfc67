//! A pipeline's state as bytes, and back: what live mode writes per
//! partition so that a restart (or another instance) goes on exactly where
//! the checkpoint was taken.
//!
//! Layout: the magic `AWSTATE1`, the format version (u32 LE), the
//! definitions' fingerprint (32 bytes), the payload length (u64 LE), the
//! payload (postcard, a compact serde format) and the first 16 bytes of the
//! SHA-256 of everything before them. The configuration (definitions,
//! allowlist, filters, snapshot) is not state: it comes from the caller, and
//! a checkpoint taken with other detector definitions is refused, since
//! baselines of one definition mean nothing to another.

use super::{Pipeline, PipelineConfig};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"AWSTATE1";
/// Bump when the state's layout changes.
pub const FORMAT_VERSION: u32 = 4;
const SUM: usize = 16;
const HEAD: usize = 8 + 4 + 32 + 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("not a pipeline checkpoint (bad magic or too short)")]
    NotACheckpoint,
    #[error("checkpoint checksum mismatch: the bytes are damaged")]
    Damaged,
    #[error("checkpoint format {found}, this build reads format {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error(
        "the checkpoint was taken with other detector definitions (fingerprint {found}, now {now}); restore it with the definitions it was taken with, or start this partition afresh"
    )]
    DefinitionsChanged { found: String, now: String },
    #[error("checkpoint payload does not decode: {0}")]
    Payload(String),
}

/// A fingerprint of the detector definitions: their names and config
/// versions, in name order.
pub fn fingerprint(config: &PipelineConfig) -> [u8; 32] {
    let mut defs: Vec<(&str, &str)> =
        config.definitions.iter().map(|d| (d.name.as_str(), d.config_version.as_str())).collect();
    defs.sort_unstable();
    let mut h = Sha256::new();
    for (name, version) in defs {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(version.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

impl Pipeline {
    /// Serializes every piece of detection state: baselines, open buckets
    /// and their evidence, principals and first-seen times, the duplicate
    /// window, the watermark, prices, job runs in flight and job owners, the
    /// access model, peer groups and the counters.
    pub fn checkpoint(&self) -> Vec<u8> {
        self.checkpoint_sized(0)
    }

    /// [`Pipeline::checkpoint`] into a buffer of `capacity` bytes to begin
    /// with (the size of the previous checkpoint is a good guess): a large
    /// state is serialized straight into its final buffer, never copied and
    /// rarely reallocated, which keeps the memory peak of a checkpoint near
    /// the size of the checkpoint itself.
    pub fn checkpoint_sized(&self, capacity: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(capacity.max(HEAD + SUM));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&fingerprint(&self.config));
        out.extend_from_slice(&0u64.to_le_bytes());
        // Writing owned, in-memory state into a Vec cannot fail.
        if let Err(e) = postcard::to_io(self, &mut out) {
            tracing::error!(error = %e, "checkpoint serialization failed");
            out.truncate(HEAD);
        }
        let len = (out.len() - HEAD) as u64;
        out[44..52].copy_from_slice(&len.to_le_bytes());
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum[..SUM]);
        out
    }

    /// A pipeline for `config` whose state is the checkpoint's.
    pub fn restore(config: PipelineConfig, bytes: &[u8]) -> Result<Pipeline, CheckpointError> {
        if bytes.len() < HEAD + SUM || &bytes[..8] != MAGIC {
            return Err(CheckpointError::NotACheckpoint);
        }
        let (body, sum) = bytes.split_at(bytes.len() - SUM);
        if Sha256::digest(body)[..SUM] != *sum {
            return Err(CheckpointError::Damaged);
        }
        let version = u32::from_le_bytes(body[8..12].try_into().map_err(|_| CheckpointError::NotACheckpoint)?);
        if version != FORMAT_VERSION {
            return Err(CheckpointError::Version { found: version });
        }
        let now = fingerprint(&config);
        if body[12..44] != now {
            return Err(CheckpointError::DefinitionsChanged {
                found: hex::encode(&body[12..20]),
                now: hex::encode(&now[..8]),
            });
        }
        let len = u64::from_le_bytes(body[44..52].try_into().map_err(|_| CheckpointError::NotACheckpoint)?);
        if len != (body.len() - HEAD) as u64 {
            return Err(CheckpointError::Damaged);
        }
        let mut p: Pipeline =
            postcard::from_bytes(&body[HEAD..]).map_err(|e| CheckpointError::Payload(e.to_string()))?;
        p.detectors.restored();
        // Lateness is configuration: the restarted process may wait longer.
        p.clock.configure(config.lateness);
        p.config = config;
        // The access snapshot was applied when the state began; it is in the
        // restored access model and peer groups already.
        p.config.access_snapshot.clear();
        Ok(p)
    }
}

#[cfg(test)]
mod tests;
