//! The leader-epoch cache of one partition (Kafka's `LeaderEpochFileCache`): for every leader epoch the offset
//! of its first batch, persisted in `leader-epoch-checkpoint`. OffsetForLeaderEpoch answers from it, and a
//! replica that lost leadership finds from it where its log diverges from the new leader's (KIP-101, KIP-279).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use tracing::warn;

use super::recovery::sync_dir;

/// File name Kafka uses for the same content (`version`, `count`, then `epoch start_offset` per line).
pub(crate) const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const CHECKPOINT_VERSION: i32 = 0;

/// Kafka's "undefined" answers of `endOffsetFor`.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One epoch and the offset of its first batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries ordered by epoch, with start offsets that never decrease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, as Kafka's `assign`: nothing if that is the latest entry
    /// already (or a later start of it); otherwise entries that would break monotonicity (a higher or equal
    /// epoch, or a start at or after this one) are dropped first. Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        let before = self.entries.len();
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        if self.entries.len() != before {
            warn!(
                epoch,
                start_offset,
                removed = before - self.entries.len(),
                "leader epoch cache: dropping entries that are not below the new one"
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested` and the offset where the next epoch
    /// starts (the log end offset when `requested` is the latest epoch); undefined when `requested` is
    /// undefined or above every known epoch. A `requested` below every known epoch answers `requested` and the
    /// first entry's start offset.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The log was truncated to end at `end_offset`: entries starting at or after it are gone.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    /// The log now starts at `start_offset` (retention, DeleteRecords): entries starting at or below it
    /// collapse into one, the latest of them, moved to start there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        let Some(last_below) = below.checked_sub(1).map(|i| self.entries[i]) else {
            return false;
        };
        if below == 1 && last_below.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..below);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last_below.epoch,
                start_offset,
            },
        );
        true
    }

    /// Reads `dir/leader-epoch-checkpoint`: `None` when there is none or it does not parse (it is then
    /// rebuilt from the log), the entries otherwise.
    pub fn read(dir: &Path) -> Option<LeaderEpochCache> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!(file = %path.display(), error = %e, "cannot read leader epoch checkpoint; rebuilding it");
                return None;
            }
        };
        match Self::parse(&text) {
            Ok(cache) => Some(cache),
            Err(reason) => {
                warn!(file = %path.display(), %reason, "unreadable leader epoch checkpoint; rebuilding it");
                None
            }
        }
    }

    fn parse(text: &str) -> Result<LeaderEpochCache, String> {
        let mut lines = text.lines();
        let mut next = |what: &str| lines.next().ok_or_else(|| format!("missing {what}"));
        let version: i32 = next("version")?
            .trim()
            .parse()
            .map_err(|e| format!("version: {e}"))?;
        if version != CHECKPOINT_VERSION {
            return Err(format!("unknown version {version}"));
        }
        let count: usize = next("entry count")?
            .trim()
            .parse()
            .map_err(|e| format!("entry count: {e}"))?;
        let mut cache = LeaderEpochCache::default();
        for i in 0..count {
            let line = next("entry")?;
            let mut parts = line.split_whitespace();
            let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!("entry {i}: {line:?}"));
            };
            let entry = EpochEntry {
                epoch: epoch.parse().map_err(|e| format!("entry {i} epoch: {e}"))?,
                start_offset: offset
                    .parse()
                    .map_err(|e| format!("entry {i} offset: {e}"))?,
            };
            let ordered = cache
                .entries
                .last()
                .is_none_or(|l| l.epoch < entry.epoch && l.start_offset <= entry.start_offset);
            if entry.epoch < 0 || entry.start_offset < 0 || !ordered {
                return Err(format!("entry {i} out of order: {line:?}"));
            }
            cache.entries.push(entry);
        }
        Ok(cache)
    }

    /// Atomically (tmp + fsync + rename + directory fsync) writes the checkpoint.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
        sync_dir(dir)
    }

    /// Writes the checkpoint, or, if that fails (a full disk), removes the stale one so the next open
    /// rebuilds the cache from the log instead of trusting entries that are out of date.
    pub fn persist(&self, dir: &Path) {
        if let Err(e) = self.write(dir) {
            warn!(dir = %dir.display(), error = %e,
                "cannot write leader epoch checkpoint; removing it so the next start rebuilds it");
            let _ = fs::remove_file(dir.join(CHECKPOINT_FILE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(e, o) in entries {
            assert!(c.assign(e, o));
        }
        c
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_keeps_epochs_monotonic() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(
            !c.assign(2, 15),
            "a later start of the latest epoch changes nothing"
        );
        assert!(
            c.assign(2, 5),
            "an earlier start of the latest epoch replaces it"
        );
        assert_eq!(pairs(&c), vec![(0, 0), (2, 5)]);
        assert!(c.assign(1, 3), "a lower epoch drops the entries above it");
        assert_eq!(pairs(&c), vec![(0, 0), (1, 3)]);
        assert!(!c.assign(-1, 4), "undefined epochs are not recorded");
        assert_eq!(c.latest_epoch(), Some(1));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert_eq!(
            c.end_offset_for(5, 40),
            (5, 40),
            "latest epoch: log end offset"
        );
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(
            c.end_offset_for(4, 40),
            (3, 25),
            "unknown epoch: the one below it"
        );
        assert_eq!(
            c.end_offset_for(0, 40),
            (0, 0),
            "below every epoch: first start"
        );
        assert_eq!(
            c.end_offset_for(6, 40),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(
            c.end_offset_for(UNDEFINED_EPOCH, 40),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        let empty = LeaderEpochCache::default();
        assert_eq!(
            empty.end_offset_for(0, 0),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 25)]);
        assert!(c.truncate_from_end(25));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        assert!(!c.truncate_from_end(30));
        assert!(
            c.truncate_from_start(12),
            "the epoch holding the new start moves to it"
        );
        assert_eq!(pairs(&c), vec![(3, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(
            !c.truncate_from_start(5),
            "a start below the first entry changes nothing"
        );
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochCache::read(dir.path()), None);
        let c = cache(&[(0, 0), (4, 100)]);
        c.write(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n4 100\n", "Kafka's checkpoint format");
        assert_eq!(LeaderEpochCache::read(dir.path()), Some(c));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n2\n4 100\n0 0\n",
            "0\n1\nx 0\n",
        ] {
            fs::write(dir.path().join(CHECKPOINT_FILE), bad).unwrap();
            assert_eq!(LeaderEpochCache::read(dir.path()), None, "{bad:?}");
        }
    }
}
