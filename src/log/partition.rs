//! `PartitionLog`: the ordered segments of one partition; appends, reads, timestamp lookups and flushing.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::batch::{framed_size, stamp, BatchHeader};
use super::config::{FlushPolicy, LogConfig, TimestampType};
use super::error::{BatchError, LogError};
use super::leader_epoch::LeaderEpochCache;
use super::producer_state::{AppendCheck, CompletedTxn, ProducerStateManager};
use super::records::{record_metas, RecordMeta};
use super::recovery::FileSync;
use super::segment::Segment;
use super::txn::{AbortedTxn, TxnMarker};

/// How far a stored batch may be decompressed when a single record must be found in it
/// (ListOffsets by timestamp); beyond this the answer falls back to the batch's first offset.
const MAX_INSPECTED_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Who writes a batch, as Kafka's `AppendOrigin` tells the producer-state checks: a client's
/// producer batches are checked for sequence and epoch, a coordinator's (written for a producer,
/// such as a transactional offset commit) for the epoch only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

/// Result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's append time when the log uses LogAppendTime, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The batches were a producer's retry of batches already in the log: nothing was written and the
    /// offsets are those of the original append.
    pub duplicate: bool,
}

/// Result of a read: whole raw batches plus the log bounds at the time of the read.
#[derive(Clone, Debug)]
pub struct FetchSlice {
    pub bytes: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// The log of one partition: a directory of segments, the last one active.
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Sorted by base offset, never empty; the last one is active (writable).
    pub(super) segments: Vec<Segment>,
    pub(super) log_start_offset: i64,
    pub(super) last_flush_ms: i64,
    /// Idempotent-producer state as of the log end offset; checked and updated under the same `&mut self`
    /// as the append, so no other append can slip between the sequence check and the write.
    pub(super) producers: ProducerStateManager,
    /// The clean-shutdown marker is still on disk: nothing has changed the last segment since the
    /// clean close that wrote it, so closing again has nothing to do.
    pub(super) clean_marker: bool,
    /// First offset of every leader epoch in the log (`leader-epoch-checkpoint`).
    pub(super) epochs: LeaderEpochCache,
    /// Transactions ended by a marker the high watermark may not have reached yet (Kafka's
    /// `unreplicatedTxns`): they hold the LSO until it does, or a leader change could still undo them.
    pub(super) completed_txns: Vec<CompletedTxn>,
}

impl PartitionLog {
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// New settings apply from now on (index sizing and interval from the next segment).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Bytes of record batches in the log's segments (Kafka's `UnifiedLog.size`).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.segments
            .last()
            .map_or(self.log_start_offset, |s| s.next_offset)
    }

    pub(super) fn active(&mut self) -> Result<&mut Segment, LogError> {
        self.segments
            .last_mut()
            .ok_or_else(|| LogError::Corrupt("partition has no segment".into()))
    }

    /// Append already-validated batches (`records` is their concatenation, `headers` from `validate_batches`),
    /// assigning offsets from the log end offset by rewriting base offset and leader epoch in place (outside the
    /// CRC). With LogAppendTime, also sets the timestamp-type bit and max timestamp to `now_ms` and recomputes the
    /// CRC. Rolls first if needed; `FlushPolicy::Always` fsyncs before returning.
    ///
    /// Batches with a producer id are checked against the producer state first (sequence, epoch): a retry of a
    /// batch still cached is answered with its original offsets (`duplicate`) and not written again, a gap or a
    /// stale epoch is a `LogError::Producer`.
    pub fn append(
        &mut self,
        records: BytesMut,
        headers: &[BatchHeader],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.append_from(records, headers, leader_epoch, now_ms, AppendOrigin::Client)
    }

    /// [`Self::append`] of batches from `origin`: a coordinator's producer batches are checked for
    /// their epoch only ([`ProducerStateManager::check_coordinator`]).
    pub fn append_from(
        &mut self,
        mut records: BytesMut,
        headers: &[BatchHeader],
        leader_epoch: i32,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo, LogError> {
        if headers.is_empty() {
            return Err(BatchError::InvalidRecord("no batches to append".into()).into());
        }
        let mut total = 0usize;
        let mut count = 0i64;
        for h in headers {
            h.check_structure()?;
            total += h.total_size();
            count += h.last_offset_delta as i64 + 1;
        }
        if total != records.len() {
            return Err(BatchError::Corrupt(format!(
                "headers describe {total} bytes, records hold {}",
                records.len()
            ))
            .into());
        }
        // The headers must describe these very bytes, or the indexes would point at the wrong places.
        let mut pos = 0usize;
        for h in headers {
            if framed_size(&records[pos..]) != Some(h.total_size() as i64) {
                return Err(BatchError::Corrupt(format!(
                    "header does not match the batch at byte {pos}"
                ))
                .into());
            }
            pos += h.total_size();
        }
        let check = match origin {
            AppendOrigin::Client => self.producers.check(headers)?,
            AppendOrigin::Coordinator => self.producers.check_coordinator(headers)?,
        };
        if let AppendCheck::Duplicate(original) = check {
            // Kafka answers a duplicate with the original offsets and its timestamp as log append time.
            return Ok(AppendInfo {
                base_offset: original.first_offset,
                last_offset: original.last_offset,
                log_append_time: original.timestamp,
                log_start_offset: self.log_start_offset,
                duplicate: true,
            });
        }
        let base_offset = self.log_end_offset();
        let last_offset = base_offset + count - 1;
        self.leave_clean_state()?;
        self.maybe_roll(records.len() as u64, last_offset, now_ms)?;

        let append_time =
            (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let mut stamped = Vec::with_capacity(headers.len());
        let (mut pos, mut next) = (0usize, base_offset);
        for h in headers {
            let batch = &mut records[pos..pos + h.total_size()];
            stamp(batch, next, leader_epoch, append_time);
            let mut s = *h;
            s.base_offset = next;
            s.partition_leader_epoch = leader_epoch;
            if let Some(now) = append_time {
                s = BatchHeader::parse(batch)?;
                s.max_timestamp = now;
            }
            next = s.last_offset() + 1;
            pos += h.total_size();
            stamped.push(s);
        }
        self.active()?.append(&records, &stamped, now_ms)?;
        self.note_epochs(&stamped);
        if check == AppendCheck::Append {
            for h in &stamped {
                self.producers.record_header(h);
            }
        }
        self.maybe_flush(now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: append_time.unwrap_or(-1),
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Appends the control batch ending `producer_id`'s transaction (Kafka's `appendAsLeader` of a
    /// WriteTxnMarkers marker, `EndTransactionMarker`): COMMIT or ABORT with the coordinator's epoch,
    /// at `leader_epoch`, timestamped `now_ms`. Refused if the producer epoch is older than the
    /// producer's (INVALID_PRODUCER_EPOCH) or the coordinator epoch older than its last marker's
    /// (TRANSACTION_COORDINATOR_FENCED). A marker for a producer with no open transaction is still
    /// written, as Kafka does. An ABORT adds the transaction to the segment's aborted index.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let marker = TxnMarker {
            commit,
            coordinator_epoch,
        };
        let mut batch = super::txn::encode_marker(producer_id, producer_epoch, marker, now_ms);
        let offset = self.log_end_offset();
        self.leave_clean_state()?;
        self.maybe_roll(batch.len() as u64, offset, now_ms)?;
        let append_time =
            (self.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        stamp(&mut batch, offset, leader_epoch, append_time);
        let header = BatchHeader::parse(&batch)?;
        self.active()?.append(&batch, &[header], now_ms)?;
        self.note_epochs(&[header]);
        self.note_marker(&header, marker)?;
        self.maybe_flush(now_ms)?;
        Ok(AppendInfo {
            base_offset: offset,
            last_offset: offset,
            log_append_time: append_time.unwrap_or(-1),
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// A marker now in the log (appended or replicated): the producer's transaction ends, an abort
    /// is indexed in the marker's segment, and the transaction holds the LSO until the high
    /// watermark passes its marker.
    pub(super) fn note_marker(
        &mut self,
        header: &BatchHeader,
        marker: TxnMarker,
    ) -> Result<(), LogError> {
        let done = self.producers.record_marker(header, marker);
        if done.aborted {
            let entry = AbortedTxn {
                producer_id: done.producer_id,
                first_offset: done.first_offset,
                last_offset: done.last_offset,
                last_stable_offset: self
                    .producers
                    .first_unstable_offset()
                    .unwrap_or(done.last_offset + 1),
            };
            self.segment_holding(done.last_offset)?
                .push_aborted(entry, FileSync::Each);
        }
        self.completed_txns.push(done);
        Ok(())
    }

    /// The segment holding `offset` (the last one for offsets at or past its base).
    pub(super) fn segment_holding(&mut self, offset: i64) -> Result<&mut Segment, LogError> {
        let i = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        self.segments
            .get_mut(i)
            .ok_or_else(|| LogError::Corrupt("partition has no segment".into()))
    }

    /// The least first offset of the transactions not known to be stable: those still open, and
    /// those whose marker is at or past `high_watermark` (Kafka's `firstUnstableOffset`). The LSO is
    /// `min(this, high watermark)`; it is never below the log start. Transactions whose marker is
    /// below `high_watermark` are forgotten here: the high watermark never moves back on a leader.
    pub fn first_unstable_offset(&mut self, high_watermark: i64) -> Option<i64> {
        self.note_high_watermark(high_watermark);
        let done = self.completed_txns.iter().map(|t| t.first_offset).min();
        let first = match (self.producers.first_unstable_offset(), done) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Never below the log start (Kafka's `maybeIncrementFirstUnstableOffset`): records deleted
        // by retention or DeleteRecords cannot be waited for.
        first.map(|f| f.max(self.log_start_offset))
    }

    /// Forgets the ended transactions whose marker is below `high_watermark` (replicated: stable).
    pub fn note_high_watermark(&mut self, high_watermark: i64) {
        self.completed_txns
            .retain(|t| t.last_offset >= high_watermark);
    }

    /// Kafka's `collectAbortedTransactions`: (producer id, first offset) of the aborted transactions
    /// overlapping `[from_offset, to_offset)` (marker at or after `from_offset`, first offset below
    /// `to_offset`), in marker order, for a read_committed fetch of that range.
    pub fn aborted_transactions(&self, from_offset: i64, to_offset: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let start = self
            .segments
            .partition_point(|s| s.base_offset <= from_offset)
            .saturating_sub(1);
        for seg in &self.segments[start..] {
            let mut complete = false;
            for t in &seg.aborted {
                if t.last_offset >= from_offset && t.first_offset < to_offset {
                    out.push((t.producer_id, t.first_offset));
                }
                // Every transaction aborted later began at or after this one's LSO.
                complete |= t.last_stable_offset >= to_offset;
            }
            if complete {
                break;
            }
        }
        out
    }

    fn maybe_flush(&mut self, now_ms: i64) -> Result<(), LogError> {
        match self.config.flush {
            FlushPolicy::Always => self.flush()?,
            FlushPolicy::Interval(d)
                if now_ms.saturating_sub(self.last_flush_ms) >= d.as_millis() as i64 =>
            {
                self.flush()?;
                self.last_flush_ms = now_ms;
            }
            _ => {}
        }
        Ok(())
    }

    /// Roll when the active segment would outgrow segment.bytes, is older than segment.ms, has a full index,
    /// or the new offsets would not fit its 32-bit relative offsets.
    pub(super) fn maybe_roll(
        &mut self,
        len: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let max_bytes = self.config.segment_bytes.min(i32::MAX as u64);
        let segment_ms = self.config.segment_ms;
        let active = self.active()?;
        if !active.is_writable() {
            // Sealed by a roll that could not create the next segment (a full disk): retry it.
            return self.roll();
        }
        if active.size == 0 {
            return Ok(());
        }
        let too_big = active.size + len > max_bytes;
        let too_old = active
            .roll_base_ms
            .is_some_and(|t| now_ms.saturating_sub(t) > segment_ms);
        let offsets_overflow = last_offset - active.base_offset > i32::MAX as i64;
        if too_big || too_old || offsets_overflow || active.is_index_full() {
            self.roll()?;
        }
        Ok(())
    }

    /// Removes the clean-shutdown marker (durably) before the first change to the last segment.
    pub(super) fn leave_clean_state(&mut self) -> Result<(), LogError> {
        if self.clean_marker {
            std::fs::remove_file(self.dir.join(super::recovery::CLEAN_SHUTDOWN_FILE))?;
            super::recovery::sync_dir(&self.dir)?;
            self.clean_marker = false;
        }
        Ok(())
    }

    /// Seal the active segment and start a new one at the log end offset. If the new segment cannot be
    /// created, the sealed one stays last and the next append tries again.
    pub(super) fn roll(&mut self) -> Result<(), LogError> {
        self.leave_clean_state()?;
        let next = self.log_end_offset();
        self.active()?.seal()?;
        let seg = Segment::create(
            &self.dir,
            next,
            self.config.segment_index_bytes,
            self.config.index_interval_bytes,
        )?;
        self.segments.push(seg);
        super::recovery::sync_dir(&self.dir)?;
        // The producer state as of the new segment's base, so recovery need not rescan older segments. A
        // failure only costs a longer rebuild, not correctness.
        if let Err(e) = self.producers.write_snapshot(&self.dir, next) {
            tracing::warn!(dir = %self.dir.display(), offset = next, error = %e, "cannot write producer state snapshot");
        }
        tracing::debug!(dir = %self.dir.display(), base_offset = next, "rolled new log segment");
        Ok(())
    }

    /// Whole batches starting with the one containing `offset`, at most `max_bytes` in total unless `min_one`
    /// and the first batch alone is larger (KIP-74). Crosses segment boundaries.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<FetchSlice, LogError> {
        self.read_below(offset, max_bytes, min_one, i64::MAX)
    }

    /// [`Self::read`], but only whole batches that end below `max_offset` (a consumer's read stops at
    /// the high watermark, which is a batch boundary on the leader: a batch across it is left out).
    pub fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
        max_offset: i64,
    ) -> Result<FetchSlice, LogError> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        let mut out = BytesMut::new();
        let mut idx = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        let mut pos = None;
        while offset < end && idx < self.segments.len() {
            if let Some(p) = self.segments[idx].locate(offset)? {
                pos = Some(p);
                break;
            }
            idx += 1;
        }
        if let Some(mut pos) = pos {
            while let Some(seg) = self.segments.get(idx) {
                // Where `max_offset` cuts this segment, if it does (no lookup while it is past the
                // segment's end, as it is for every read at the log's end).
                let limit = if seg.next_offset > max_offset {
                    seg.locate(max_offset)?.unwrap_or(seg.size)
                } else {
                    seg.size
                };
                if pos >= limit {
                    break;
                }
                let room = max_bytes
                    .saturating_sub(out.len())
                    .min((limit - pos) as usize);
                let first = min_one && out.is_empty();
                let added = seg.read_into(&mut out, pos, room, first)?;
                if pos + (added as u64) < seg.size || out.len() >= max_bytes {
                    break;
                }
                idx += 1;
                pos = 0;
            }
        }
        Ok(FetchSlice {
            bytes: out.freeze(),
            log_start_offset: start,
            log_end_offset: end,
        })
    }

    /// The first record (not below the log start) whose timestamp is >= `ts`, as (offset, timestamp):
    /// the time index finds the batch, then that one batch is read record by record, as Kafka does.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        for seg in &self.segments {
            if seg.next_offset <= self.log_start_offset || seg.max_timestamp < ts {
                continue;
            }
            if let Some((batch_offset, batch_max)) =
                seg.find_timestamp(ts, self.log_start_offset)?
            {
                let exact = self.find_record(batch_offset, |r| r.timestamp >= ts)?;
                return Ok(Some(exact.unwrap_or((batch_offset, batch_max))));
            }
        }
        Ok(None)
    }

    /// (max timestamp in the log, offset of the first record having it); None if no batch has a timestamp >= 0.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<(i64, i64)> = None;
        for seg in &self.segments {
            if seg.max_timestamp >= 0 && best.is_none_or(|(t, _)| seg.max_timestamp > t) {
                best = Some((seg.max_timestamp, seg.offset_of_max_timestamp));
            }
        }
        let Some((max_ts, batch_offset)) = best else {
            return Ok(None);
        };
        let exact = self.find_record(batch_offset, |r| r.timestamp == max_ts)?;
        Ok(Some((
            max_ts,
            exact.map_or(batch_offset, |(offset, _)| offset),
        )))
    }

    /// The first record at or after the log start in the batch containing `batch_offset` that matches.
    /// A batch that cannot be read record by record (too large decompressed, damaged) yields None, and
    /// the caller answers at batch granularity instead.
    fn find_record(
        &self,
        batch_offset: i64,
        matches: impl Fn(&RecordMeta) -> bool,
    ) -> Result<Option<(i64, i64)>, LogError> {
        if batch_offset < self.log_start_offset || batch_offset >= self.log_end_offset() {
            return Ok(None);
        }
        let batch = self.read(batch_offset, 0, true)?.bytes;
        match record_metas(&batch, MAX_INSPECTED_BATCH_BYTES) {
            Ok(records) => Ok(records
                .iter()
                .find(|r| r.offset >= self.log_start_offset && matches(r))
                .map(|r| (r.offset, r.timestamp))),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), offset = batch_offset, error = %e,
                    "cannot read records of a batch; answering at batch granularity");
                Ok(None)
            }
        }
    }

    /// fsync the log and indexes of every segment written since its last flush.
    pub fn flush(&mut self) -> Result<(), LogError> {
        for seg in &mut self.segments {
            seg.flush()?;
        }
        Ok(())
    }

    /// Flush, write the active segment's indexes and mark the shutdown clean (so `open` can skip the
    /// CRC scan).
    pub fn close(mut self) -> Result<(), LogError> {
        self.close_files(FileSync::Each)?;
        self.mark_clean(FileSync::Each)
    }

    /// Closing but for the clean-shutdown marker: the active segment sealed (its indexes written) and
    /// the producer state snapshotted. With `FileSync::Later` nothing is fsynced; the caller syncs the
    /// filesystem before [`PartitionLog::mark_clean`], so the marker never reaches the disk before what
    /// it vouches for.
    pub fn close_files(&mut self, sync: FileSync) -> Result<(), LogError> {
        if self.clean_marker {
            return Ok(());
        }
        if sync == FileSync::Each {
            self.flush()?;
        }
        self.active()?.seal_with(sync)?;
        let end = self.log_end_offset();
        self.producers.write_snapshot_with(&self.dir, end, sync)?;
        Ok(())
    }

    /// Writes the clean-shutdown marker after [`PartitionLog::close_files`].
    pub fn mark_clean(self, sync: FileSync) -> Result<(), LogError> {
        if self.clean_marker {
            return Ok(());
        }
        let marker = std::fs::File::create(self.dir.join(super::recovery::CLEAN_SHUTDOWN_FILE))?;
        if sync == FileSync::Each {
            marker.sync_all()?;
            super::recovery::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}
