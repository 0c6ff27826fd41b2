//! `PartitionLog`'s leader-epoch side: keeping the epoch cache in step with appends, recovery and the log
//! start, answering "where does epoch N end", and truncating the log's tail (a replica that diverged from the
//! new leader cuts its log back to where they agree, KIP-101/279).

use std::fs;

use tracing::{info, warn};

use super::batch::BatchHeader;
use super::error::LogError;
use super::leader_epoch::{LeaderEpochCache, CHECKPOINT_FILE};
use super::partition::PartitionLog;
use super::recovery::sync_dir;
use super::segment::{segment_path, Segment};

impl PartitionLog {
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// OffsetForLeaderEpoch for this log: the largest epoch at or below `epoch` and the offset where the next
    /// one starts (the log end offset for the latest epoch), or (-1, -1) when it is unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// This replica became leader at `epoch`: the epoch starts at the current log end offset even before its
    /// first append (Kafka's `maybeAssignEpochStartOffset` in `makeLeader`). For an empty log the entry is
    /// kept in memory only (the first append writes the same one): creating thousands of partitions then
    /// costs no checkpoint writes.
    pub fn assign_epoch_start(&mut self, epoch: i32) {
        let end = self.log_end_offset();
        if self.epochs.assign(epoch, end) && end > self.log_start_offset {
            self.epochs.persist(&self.dir);
        }
    }

    /// Records the epochs of batches just written.
    pub(super) fn note_epochs(&mut self, written: &[BatchHeader]) {
        let mut changed = false;
        for h in written {
            changed |= self.epochs.assign(h.partition_leader_epoch, h.base_offset);
        }
        if changed {
            self.epochs.persist(&self.dir);
        }
    }

    /// The log start moved (retention, DeleteRecords, recovery): epochs wholly below it collapse.
    pub(super) fn epochs_follow_log_start(&mut self) {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.persist(&self.dir);
        }
    }

    /// Loads the epoch cache at open. The checkpoint is written (fsynced) whenever an epoch first appears, so
    /// after a clean close it is complete; after a crash the last segment may hold batches written after the
    /// last checkpoint, and it is scanned. Without a checkpoint (a failed write removed it, or an older data
    /// directory) the whole log is scanned once.
    pub(super) fn load_leader_epochs(&mut self, clean: bool) -> Result<(), LogError> {
        let end = self.log_end_offset();
        let (mut cache, scan_from) = match LeaderEpochCache::read(&self.dir) {
            Some(cache) if clean => (cache, None),
            Some(cache) => {
                let last_base = self.segments.last().map_or(end, |s| s.base_offset);
                (cache, Some(last_base))
            }
            None if end == self.log_start_offset => (LeaderEpochCache::default(), None),
            None => (LeaderEpochCache::default(), Some(self.log_start_offset)),
        };
        let before = cache.clone();
        let file_missing = !self.dir.join(CHECKPOINT_FILE).exists();
        cache.truncate_from_end(end);
        if let Some(from) = scan_from {
            for seg in &self.segments {
                if seg.next_offset <= from {
                    continue;
                }
                seg.for_each_header(from, |h| {
                    // Recovery only ever extends the cache (Kafka's `LogSegment.recover`).
                    if cache
                        .latest_epoch()
                        .is_none_or(|l| h.partition_leader_epoch > l)
                    {
                        cache.assign(h.partition_leader_epoch, h.base_offset);
                    }
                })?;
            }
        }
        cache.truncate_from_start(self.log_start_offset);
        if cache != before || (file_missing && !cache.entries().is_empty()) {
            cache.persist(&self.dir);
        }
        self.epochs = cache;
        Ok(())
    }

    /// Removes every batch at or after `offset` (a batch holding `offset` goes whole, as in Kafka's
    /// `LogSegment.truncateTo`), with the producer state and epoch cache of what remains. Below the log start,
    /// the log is emptied and restarts at `offset`. Returns the new log end offset.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, LogError> {
        let end = self.log_end_offset();
        if offset >= end {
            return Ok(end);
        }
        self.leave_clean_state()?;
        let (index_bytes, interval) = (
            self.config.segment_index_bytes,
            self.config.index_interval_bytes,
        );
        if offset <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        } else {
            while self.segments.len() > 1
                && self
                    .segments
                    .last()
                    .is_some_and(|s| s.base_offset >= offset)
            {
                if let Some(seg) = self.segments.pop() {
                    seg.delete()?;
                }
            }
            let last = self.active_index();
            let seg = &self.segments[last];
            if let Some(pos) = seg.locate(offset)? {
                let base = seg.base_offset;
                // The segment is cut and becomes the writable one again: its sealed indexes (if any) describe
                // the longer file, and recovery rebuilds them in memory from what is left.
                let log_path = segment_path(&self.dir, base, "log");
                let old = self.segments.remove(last);
                drop(old);
                for ext in ["index", "timeindex"] {
                    match fs::remove_file(segment_path(&self.dir, base, ext)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                        _ => {}
                    }
                }
                let file = fs::OpenOptions::new().write(true).open(&log_path)?;
                file.set_len(pos)?;
                file.sync_all()?;
                let (mut seg, truncated) =
                    Segment::recover(&self.dir, base, index_bytes, interval)?;
                // Entries of markers cut off go in `load_producer_state` below.
                seg.load_txn_index()?;
                if truncated {
                    warn!(dir = %self.dir.display(), base_offset = base, "segment damaged below the truncation point");
                }
                self.segments.push(seg);
            }
        }
        sync_dir(&self.dir)?;
        let new_end = self.log_end_offset();
        // Producer state: the newest snapshot at or below the new end plus the batches after it (snapshots
        // beyond the end are deleted on the way).
        self.load_producer_state(crate::clock::now_ms())?;
        if self.epochs.truncate_from_end(new_end) {
            self.epochs.persist(&self.dir);
        }
        info!(dir = %self.dir.display(), requested = offset, log_end_offset = new_end, previous_end = end,
            "truncated log");
        Ok(new_end)
    }

    /// Empties the log and restarts it at `offset` (Kafka's `truncateFullyAndStartAt`): a replica whose log
    /// end is below the leader's log start, or whose whole log diverged. Returns the new log end offset.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<i64, LogError> {
        self.leave_clean_state()?;
        let (index_bytes, interval) = (
            self.config.segment_index_bytes,
            self.config.index_interval_bytes,
        );
        let previous_end = self.log_end_offset();
        for seg in self.segments.drain(..) {
            seg.delete()?;
        }
        self.segments
            .push(Segment::create(&self.dir, offset, index_bytes, interval)?);
        self.log_start_offset = offset;
        self.write_checkpoint()?;
        sync_dir(&self.dir)?;
        self.load_producer_state(crate::clock::now_ms())?;
        if !self.epochs.entries().is_empty() {
            self.epochs = LeaderEpochCache::default();
            self.epochs.persist(&self.dir);
        }
        info!(dir = %self.dir.display(), log_start_offset = offset, previous_end, "emptied log");
        Ok(offset)
    }

    fn active_index(&self) -> usize {
        self.segments.len().saturating_sub(1)
    }
}
