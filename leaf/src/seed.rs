//! The seed gate. A replica added to a shard starts empty; if it reported SERVING at once,
//! roots would send it queries and return its empty answers as the shard's. With the gate, a
//! replica whose data directory has never seen an import through to its end reports
//! NOT_SERVING (and so is left out of the roots' DNS and never chosen) until an explicit
//! `Commit` arrives — the indexer sends one to every replica at the end of each import. The
//! gate's state is a marker file in the data directory, so a replica that restarts with its
//! data is ready as soon as it has replayed its log, and one that lost its volume waits again.

use std::io;
use std::path::{Path, PathBuf};

use tokio::sync::watch;

/// Whether this replica's data has been through a whole import.
pub struct SeedGate {
    marker: PathBuf,
    seeded: watch::Sender<bool>,
}

impl SeedGate {
    /// The gate of the replica whose data lives in `data_dir`.
    pub fn open(data_dir: &Path) -> Self {
        let marker = data_dir.join("SEEDED");
        let (seeded, _) = watch::channel(marker.exists());
        Self { marker, seeded }
    }

    /// Whether an import has been through to its end on this replica.
    pub fn is_seeded(&self) -> bool {
        *self.seeded.borrow()
    }

    /// Resolves once the replica is seeded.
    pub async fn wait(&self) {
        let mut seeded = self.seeded.subscribe();
        let _ = seeded.wait_for(|s| *s).await;
    }

    /// Records that an import reached its end: writes the marker durably, then opens the gate.
    pub fn mark(&self) -> io::Result<()> {
        if self.is_seeded() {
            return Ok(());
        }
        std::fs::File::create(&self.marker)?.sync_all()?;
        if let Some(dir) = self.marker.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.seeded.send_replace(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_mark_opens_the_gate_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let gate = SeedGate::open(dir.path());
        assert!(!gate.is_seeded());
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), gate.wait());
        assert!(waiting.await.is_err(), "an unseeded gate stays shut");
        gate.mark().unwrap();
        assert!(gate.is_seeded());
        gate.wait().await;
        assert!(
            SeedGate::open(dir.path()).is_seeded(),
            "the mark is on disk"
        );
    }
}
