//! One partition replica hosted here: its log behind a lock, and a watch of its high watermark
//! that long-polling fetches wait on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::BytesMut;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use super::replica::ReplicaError;
use crate::log::{
    AppendInfo, BatchHeader, CleanStats, FetchSlice, FileSync, FlushPolicy, LogError, PartitionLog,
};

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub leader_epoch: i32,
    log: Mutex<PartitionLog>,
    high_watermark: watch::Sender<i64>,
    /// The last append failed for want of storage: logged once, then again when appends resume.
    storage_failing: AtomicBool,
}

impl Partition {
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        log: PartitionLog,
    ) -> Self {
        let hw = log.log_end_offset();
        Partition {
            topic,
            topic_id,
            index,
            leader_epoch,
            log: Mutex::new(log),
            high_watermark: watch::Sender::new(hw),
            storage_failing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PartitionLog> {
        // A panic while holding the lock cannot leave the log half-written in memory (appends are
        // applied to files first), so a poisoned lock is still usable.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends validated batches and publishes the new high watermark. On a single node the high
    /// watermark is the log end offset once the append (and its fsync, if the policy asks) is done.
    pub fn append(
        &self,
        records: BytesMut,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut log = self.lock();
        let result = if log.config().flush == FlushPolicy::Always {
            tokio::task::block_in_place(|| log.append(records, headers, self.leader_epoch, now_ms))
        } else {
            log.append(records, headers, self.leader_epoch, now_ms)
        };
        self.note_storage(&result);
        let info = result?;
        self.high_watermark.send_replace(log.log_end_offset());
        Ok(info)
    }

    /// One log line when appends start failing for storage reasons (a full disk: every retry of every
    /// producer would fail the same way) and one when they succeed again.
    fn note_storage(&self, result: &Result<AppendInfo, LogError>) {
        match result {
            Err(e @ (LogError::Io(_) | LogError::Corrupt(_))) => {
                if !self.storage_failing.swap(true, Ordering::Relaxed) {
                    warn!(topic = %self.topic, partition = self.index, error = %e,
                        "appends failing (KAFKA_STORAGE_ERROR until they succeed again)");
                }
            }
            Ok(_) => {
                if self.storage_failing.swap(false, Ordering::Relaxed) {
                    info!(topic = %self.topic, partition = self.index, "appends succeed again");
                }
            }
            Err(_) => {}
        }
    }

    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<FetchSlice, LogError> {
        let log = self.lock();
        let hw = *self.high_watermark.borrow();
        if offset > hw {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: log.log_start_offset(),
                end: hw,
            });
        }
        log.read(offset, max_bytes, min_one)
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

    /// KIP-320: a client's `current_leader_epoch` must be ours; -1 means it does not know one.
    /// Older is FENCED_LEADER_EPOCH (its metadata is stale), newer UNKNOWN_LEADER_EPOCH (ours is).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), ReplicaError> {
        let current = self.leader_epoch;
        match requested {
            r if r < 0 || r == current => Ok(()),
            r if r < current => Err(ReplicaError::FencedLeaderEpoch { requested, current }),
            _ => Err(ReplicaError::UnknownLeaderEpoch { requested, current }),
        }
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
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
        let Some(plan) = self.lock().plan_cleaning(now_ms) else {
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
