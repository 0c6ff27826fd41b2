//! Reads and upkeep of a partition's log under its lock: consumer reads below the high watermark,
//! OffsetForLeaderEpoch, DeleteRecords, timestamps, flush, retention, compaction and close.

use super::Partition;
use crate::log::{CleanStats, FetchSlice, FileSync, LogError, PartitionLog};

impl Partition {
    /// OffsetForLeaderEpoch from the log's leader-epoch cache.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.lock().end_offset_for_epoch(epoch)
    }

    /// A consumer's read (Kafka's `FetchIsolation.HIGH_WATERMARK`): from `offset`, whole batches below the
    /// high watermark only. An offset between the high watermark and the log end reads nothing, without
    /// error (as Kafka's `LocalLog.read`): a new leader's high watermark may trail the old leader's
    /// for a moment, and a consumer at the old one must not be sent to reset its position.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<FetchSlice, LogError> {
        let log = self.lock();
        let hw = *self.high_watermark.borrow();
        log.read_below(offset, max_bytes, min_one, hw)
    }

    /// DeleteRecords: records below `offset` (-1: the high watermark) become unreadable and the
    /// segments wholly below it are deleted. Returns the new log start offset (the low watermark).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut log = self.lock();
        let hw = *self.high_watermark.borrow();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: log.log_start_offset(),
                end: hw,
            });
        }
        log.advance_log_start_offset(target)?;
        Ok(log.log_start_offset())
    }

    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.lock().offset_for_timestamp(ts)
    }

    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.lock().max_timestamp()
    }

    pub fn flush(&self) -> Result<(), LogError> {
        self.lock().flush()
    }

    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        self.lock().enforce_retention(now_ms)
    }

    /// One compaction pass if the log is due one. Only planning and the final swap hold the lock:
    /// appends and fetches go on while the sealed segments are cleaned.
    pub fn clean(&self, now_ms: i64) -> Result<Option<CleanStats>, LogError> {
        let plan = {
            let mut log = self.lock();
            // Transactions whose markers are replicated no longer hold the cleaner back.
            log.note_high_watermark(self.high_watermark());
            log.plan_cleaning(now_ms)
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        let cleaned = plan.run()?;
        self.lock().finish_cleaning(cleaned).map(Some)
    }

    /// Closes the log cleanly (indexes trimmed, producer snapshot and clean-shutdown marker written),
    /// so the next start skips the full recovery scan.
    pub fn close(self) -> Result<(), LogError> {
        self.into_log().close()
    }

    /// The first step of closing many logs at once (see [`PartitionLog::close_files`]).
    pub fn close_files(&self, sync: FileSync) -> Result<(), LogError> {
        self.lock().close_files(sync)
    }

    /// The last step of closing (see [`PartitionLog::mark_clean`]).
    pub fn mark_clean(self, sync: FileSync) -> Result<(), LogError> {
        self.into_log().mark_clean(sync)
    }

    fn into_log(self) -> PartitionLog {
        self.log.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&mut PartitionLog) -> T) -> T {
        f(&mut self.lock())
    }
}
