//! Appends to the active segment and its sealing: index entries as batches are written, fsync,
//! and the index files written when it becomes inactive.

use std::io;
use std::os::unix::fs::FileExt;

use tracing::warn;

use super::{segment_path, Indexes, Segment};
use crate::log::batch::BatchHeader;
use crate::log::handles;
use crate::log::index::persist;
use crate::log::recovery::FileSync;

impl Segment {
    /// Account for a batch now stored at `pos`: update indexes, sizes, offsets and timestamps.
    pub(super) fn track(&mut self, pos: u64, h: &BatchHeader) {
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
        // Kafka's rule: index a batch once more than index.interval.bytes were written since the last entry.
        if self.bytes_since_index > self.index_interval_bytes as u64 {
            if let (Ok(rel), Ok(p), Indexes::Building { offsets, times, .. }) = (
                u32::try_from(h.base_offset - self.base_offset),
                u32::try_from(pos),
                &mut self.indexes,
            ) {
                offsets.push_offset(rel, p);
                if let Ok(trel) = u32::try_from(self.offset_of_max_timestamp - self.base_offset) {
                    times.push_time(self.max_timestamp, trel, false);
                }
            }
            self.bytes_since_index = 0;
        }
        let size = h.total_size() as u64;
        self.bytes_since_index += size;
        self.size = pos + size;
        self.next_offset = h.last_offset() + 1;
    }

    /// Write already-stamped batches at the end of the segment. On a write error (a full disk) the file
    /// is cut back and nothing else changes, so the segment stays consistent and the offsets unused.
    pub(crate) fn append(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> io::Result<()> {
        if !self.is_writable() {
            return Err(io::Error::other("appending to a sealed segment"));
        }
        let start = self.size;
        let files = self.files()?;
        if let Err(e) = files.log.write_all_at(records, start) {
            let _ = files.log.set_len(start);
            return Err(e);
        }
        if self.roll_base_ms.is_none() {
            self.roll_base_ms = Some(now_ms);
        }
        let mut pos = start;
        for h in headers {
            self.track(pos, h);
            pos += h.total_size() as u64;
        }
        self.dirty = true;
        Ok(())
    }

    /// fsync the log if anything was written since the last flush (an active index is rebuilt by
    /// recovery, so only the log must reach the disk).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.dirty {
            self.files()?.log.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Make the segment inactive: record its max timestamp as the final time index entry (so reopening finds
    /// it without a scan), fsync the log and write both index files. On error (a full disk) the segment
    /// stays writable, its indexes in memory. Sealing a sealed segment does nothing.
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        self.seal_with(FileSync::Each)
    }

    /// [`Segment::seal`], fsyncing nothing with `FileSync::Later`.
    pub(crate) fn seal_with(&mut self, sync: FileSync) -> io::Result<()> {
        let (max_ts, max_rel) = (
            self.max_timestamp,
            u32::try_from(self.offset_of_max_timestamp - self.base_offset),
        );
        let Indexes::Building { times, .. } = &mut self.indexes else {
            return Ok(());
        };
        if let (true, Ok(rel)) = (max_ts >= 0, max_rel) {
            times.push_time(max_ts, rel, true);
        }
        if sync == FileSync::Each {
            self.files()?.log.sync_all()?;
        }
        if let Indexes::Building { offsets, times } = &self.indexes {
            persist(
                &segment_path(&self.dir, self.base_offset, "index"),
                offsets.bytes(),
                sync,
            )?;
            persist(
                &segment_path(&self.dir, self.base_offset, "timeindex"),
                times.bytes(),
                sync,
            )?;
        }
        self.indexes = Indexes::Sealed;
        // The cached files lack the index maps a sealed segment reads.
        handles::evict(self.id);
        self.dirty = false;
        Ok(())
    }

    /// [`Segment::seal`] for a segment recovery rebuilt: if its indexes cannot be written (a full disk),
    /// it serves reads from the in-memory indexes and recovery rebuilds them next time.
    pub(crate) fn seal_or_keep_in_memory(&mut self) {
        if let Err(e) = self.seal() {
            warn!(segment = %self.log_path.display(), error = %e,
                "cannot write rebuilt indexes; keeping them in memory");
        }
    }
}
