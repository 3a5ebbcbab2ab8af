//! Per-shard progress, persisted after every batch (write + rename), so a
//! restarted mapping resumes after the last processed record.

use std::collections::HashMap;
use std::path::PathBuf;

use tracing::warn;

/// Per-shard progress: the last sequence number processed, and whether the
/// shard is finished.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShardCheckpoint {
    pub(crate) sequence: Option<String>,
    pub(crate) done: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Checkpoints {
    pub(crate) shards: HashMap<String, ShardCheckpoint>,
    path: Option<PathBuf>,
}

impl Checkpoints {
    pub(crate) fn load(path: Option<PathBuf>) -> Self {
        let shards = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self { shards, path }
    }

    pub(crate) fn save(&self) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("tmp");
        // Write + rename: a crash mid-write leaves the old checkpoint whole.
        let written = serde_json::to_vec(&self.shards)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            warn!(path = %path.display(), error = %e, "could not save the stream checkpoint");
        }
    }
}

/// Orders sequence numbers, which are decimal strings of varying length.
pub(crate) fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_numerically() {
        assert!(seq_cmp("900", "1000").is_lt());
        assert!(seq_cmp("1001", "1000").is_gt());
        assert!(seq_cmp("5", "5").is_eq());
    }
}
