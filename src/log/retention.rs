//! Retention (by time and size), DeleteRecords-style log start advancement, and the log start checkpoint file.

use std::fs;
use std::io::Write;
use std::path::Path;

use tracing::{info, warn};

use super::error::LogError;
use super::partition::PartitionLog;
use super::recovery::sync_dir;

/// Holds the log start offset when it lies above the first segment's base offset.
pub(crate) const CHECKPOINT_FILE: &str = "log-start-offset";

/// The checkpointed log start offset, if the file exists and parses.
pub(crate) fn read_checkpoint(dir: &Path) -> Option<i64> {
    let text = fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok()?;
    match text.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Some(v),
        _ => {
            warn!(dir = %dir.display(), "ignoring unreadable log start offset checkpoint");
            None
        }
    }
}

impl PartitionLog {
    /// Atomically (tmp + fsync + rename + dir fsync) persist the log start offset.
    pub(super) fn write_checkpoint(&mut self) -> Result<(), LogError> {
        let tmp = self.dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(format!("{}\n", self.log_start_offset).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(CHECKPOINT_FILE))?;
        sync_dir(&self.dir)?;
        self.epochs_follow_log_start();
        Ok(())
    }

    /// Delete the oldest segment (never the active one) and advance the log start offset past it.
    fn delete_oldest(&mut self) -> Result<(), LogError> {
        if self.segments.len() < 2 {
            return Ok(());
        }
        let seg = self.segments.remove(0);
        info!(dir = %self.dir.display(), base_offset = seg.base_offset, "deleting log segment");
        seg.delete()?;
        if let Some(first) = self.segments.first() {
            self.log_start_offset = self.log_start_offset.max(first.base_offset);
            // Snapshots of deleted segments go with them; the producer state itself is kept until it
            // expires (KIP-360), and the newest snapshot, at or above the active segment, carries it.
            super::producer_state::delete_snapshots_outside(
                &self.dir,
                first.base_offset,
                i64::MAX,
            )?;
        }
        Ok(())
    }

    /// Delete whole non-active segments that lie below the log start offset, and with the `delete` cleanup policy
    /// those older than retention.ms (by their largest timestamp) or beyond retention.bytes, oldest first. Returns the number of segments deleted. Also
    /// expires idempotent-producer state (`producer.id.expiration.ms`).
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let expired = self
            .producers
            .remove_expired(now_ms, self.config.producer_id_expiration_ms);
        if expired > 0 {
            info!(dir = %self.dir.display(), producers = expired, "expired idempotent producer state");
        }
        let before = (self.segments.len(), self.log_start_offset);
        while self.segments.len() > 1 && self.segments[1].base_offset <= self.log_start_offset {
            self.delete_oldest()?;
        }
        // Time and size retention are the `delete` cleanup policy; a compact-only log keeps every
        // segment and relies on the cleaner.
        let retention_ms = if self.config.cleanup_delete {
            self.config.retention_ms
        } else {
            -1
        };
        if retention_ms >= 0 {
            while self.segments.len() > 1
                && now_ms.saturating_sub(self.segments[0].largest_timestamp()) > retention_ms
            {
                self.delete_oldest()?;
            }
        }
        if self.config.cleanup_delete && self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            while self.segments.len() > 1 && excess - self.segments[0].size as i64 >= 0 {
                excess -= self.segments[0].size as i64;
                self.delete_oldest()?;
            }
        }
        let deleted = before.0 - self.segments.len();
        if self.log_start_offset != before.1 {
            self.write_checkpoint()?;
        }
        Ok(deleted)
    }

    /// Raise the log start offset to `offset` (DeleteRecords), deleting segments wholly below it.
    /// `offset` beyond the log end offset is `OffsetOutOfRange`; lower than the current start is a no-op.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<(), LogError> {
        let end = self.log_end_offset();
        if offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset;
        while self.segments.len() > 1 && self.segments[1].base_offset <= offset {
            self.delete_oldest()?;
        }
        self.write_checkpoint()
    }
}
