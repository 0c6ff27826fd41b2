//! Opening a segment: a sealed one trusted if its indexes and tail check out, the active one after
//! a clean shutdown, and otherwise recovery, which validates every batch and rebuilds the indexes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use tracing::warn;

use super::scan::HeaderScan;
use super::{segment_path, Indexes, Segment};
use crate::log::batch::{framed_size, validate_stored, BatchHeader};
use crate::log::error::LogError;
use crate::log::index::{
    read_entries, IndexBuf, OffsetEntries, TimeEntries, OFFSET_ENTRY, TIME_ENTRY,
};

/// Recovery reads (and CRC-checks) the log in chunks of this size.
const RECOVERY_CHUNK: usize = 1 << 20;

/// A sealed segment that passed the open checks, with its offset and time index entries as read.
type TrustedSegment = (Segment, Vec<u8>, Vec<u8>);

impl Segment {
    /// Open a sealed (non-active) segment, trusting its indexes only if they pass sanity checks and the batches
    /// after the last offset-index entry frame exactly to the end of the file. Otherwise fall back to
    /// [`Segment::recover`]. Returns the segment and whether the log file was truncated.
    pub(crate) fn open_sealed(
        dir: &Path,
        base_offset: i64,
        index_bytes: u32,
        interval: u32,
    ) -> Result<(Segment, bool), LogError> {
        match Self::try_open_sealed(dir, base_offset, interval)? {
            Some((seg, ..)) => Ok((seg, false)),
            None => {
                warn!(segment = %segment_path(dir, base_offset, "log").display(), "index missing or damaged, rebuilding");
                let (mut seg, truncated) = Self::recover(dir, base_offset, index_bytes, interval)?;
                if !truncated {
                    seg.seal_or_keep_in_memory();
                }
                Ok((seg, truncated))
            }
        }
    }

    /// A sealed segment whose index files are sane and whose tail frames exactly, with the entries of
    /// both indexes as read; `None` when anything does not add up.
    fn try_open_sealed(
        dir: &Path,
        base_offset: i64,
        interval: u32,
    ) -> Result<Option<TrustedSegment>, LogError> {
        let log = OpenOptions::new()
            .read(true)
            .open(segment_path(dir, base_offset, "log"))?;
        let size = log.metadata()?.len();
        let (Some(offset_bytes), Some(time_bytes)) = (
            read_entries(&segment_path(dir, base_offset, "index"), OFFSET_ENTRY)?,
            read_entries(&segment_path(dir, base_offset, "timeindex"), TIME_ENTRY)?,
        ) else {
            return Ok(None);
        };
        let (offsets, times) = (OffsetEntries(&offset_bytes), TimeEntries(&time_bytes));
        if !offsets.is_sane(size) {
            return Ok(None);
        }
        // Walk the tail after the last index entry to find the end offset; it must frame exactly.
        let (start_rel, start_pos) = offsets.last().map_or((None, 0), |(o, p)| (Some(o), p));
        let mut scan = HeaderScan::new(&log, start_pos as u64, size);
        let mut next_offset = base_offset;
        let (mut max_ts, mut max_off) = times
            .last()
            .map_or((-1, -1), |(t, o)| (t, base_offset + o as i64));
        let mut first = true;
        loop {
            let h = match scan.next() {
                Ok(Some((_, h))) => h,
                Ok(None) => break,
                Err(LogError::Io(e)) => return Err(e.into()),
                Err(_) => return Ok(None),
            };
            let expected_ok = match (first, start_rel) {
                (true, Some(rel)) => h.base_offset == base_offset + rel as i64,
                _ => h.base_offset >= next_offset.max(base_offset),
            };
            if !expected_ok {
                return Ok(None);
            }
            first = false;
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_off = h.base_offset;
            }
            next_offset = h.last_offset() + 1;
        }
        if !times.is_sane((next_offset - base_offset) as u64) {
            return Ok(None);
        }
        let mut seg = Segment::building(dir, base_offset, 0, interval);
        seg.size = size;
        seg.next_offset = next_offset;
        seg.indexes = Indexes::Sealed;
        seg.max_timestamp = max_ts;
        seg.offset_of_max_timestamp = max_off;
        seg.dirty = false;
        Ok(Some((seg, offset_bytes, time_bytes)))
    }

    /// Open the last segment after a clean shutdown: trust its indexes like a sealed segment's (the header-only
    /// tail scan still catches a torn tail) and take their entries back into memory to go on appending;
    /// `None` (and a log line) when anything is suspicious, for the caller to recover it.
    pub(crate) fn open_clean_active(
        dir: &Path,
        base_offset: i64,
        index_bytes: u32,
        interval: u32,
    ) -> Result<Option<Segment>, LogError> {
        if let Some((mut seg, offset_bytes, time_bytes)) =
            Self::try_open_sealed(dir, base_offset, interval)?
        {
            let mut first = [0u8; BatchHeader::SIZE];
            let roll_base = if seg.size == 0 {
                Some(None)
            } else {
                File::open(&seg.log_path)?.read_exact_at(&mut first, 0)?;
                BatchHeader::parse(&first)
                    .ok()
                    .map(|h| Some(h.max_timestamp))
            };
            if let Some(roll_base) = roll_base {
                let offsets = IndexBuf::with_entries(offset_bytes, OFFSET_ENTRY, index_bytes);
                // Same accounting as `track`: bytes from the last indexed batch (or the start) to the end.
                seg.bytes_since_index =
                    seg.size - offsets.offsets().last().map_or(0, |(_, p)| p as u64);
                seg.indexes = Indexes::Building {
                    offsets,
                    times: IndexBuf::with_entries(time_bytes, TIME_ENTRY, index_bytes),
                };
                seg.roll_base_ms = roll_base;
                return Ok(Some(seg));
            }
        }
        warn!(segment = %segment_path(dir, base_offset, "log").display(), "active segment failed checks after clean shutdown, recovering");
        Ok(None)
    }

    /// Scan the whole segment batch by batch with full validation (CRC included), truncate at the first invalid
    /// batch and rebuild both indexes in memory. The result is writable. Returns whether it truncated.
    pub(crate) fn recover(
        dir: &Path,
        base_offset: i64,
        index_bytes: u32,
        interval: u32,
    ) -> Result<(Segment, bool), LogError> {
        let mut seg = Segment::building(dir, base_offset, index_bytes, interval);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&seg.log_path)?;
        let file_size = log.metadata()?.len();
        let mut buf = Vec::new();
        let mut buf_start = 0u64;
        let reason = loop {
            let pos = seg.size;
            if pos >= file_size {
                break None;
            }
            let avail = file_size - pos;
            // Make sure the buffer holds at least the 12-byte frame at `pos`, then the whole batch.
            let in_buf = |buf: &Vec<u8>, start: u64, len: u64| {
                pos >= start && pos + len <= start + buf.len() as u64
            };
            if !in_buf(&buf, buf_start, 12.min(avail)) {
                buf.resize(avail.min(RECOVERY_CHUNK as u64) as usize, 0);
                log.read_exact_at(&mut buf, pos)?;
                buf_start = pos;
            }
            let at = (pos - buf_start) as usize;
            let Some(size) = framed_size(&buf[at..]) else {
                break Some(format!("partial batch frame at position {pos}"));
            };
            if size < BatchHeader::SIZE as i64 || size as u64 > avail {
                break Some(format!(
                    "batch at position {pos} claims {size} bytes, {avail} left in file"
                ));
            }
            if !in_buf(&buf, buf_start, size as u64) {
                buf.resize(
                    (size as usize).max(avail.min(RECOVERY_CHUNK as u64) as usize),
                    0,
                );
                log.read_exact_at(&mut buf, pos)?;
                buf_start = pos;
            }
            let at = (pos - buf_start) as usize;
            let h = match validate_stored(&buf[at..at + size as usize]) {
                Ok(h) => h,
                Err(e) => break Some(format!("invalid batch at position {pos}: {e}")),
            };
            if h.base_offset < seg.next_offset || h.last_offset() - base_offset > i32::MAX as i64 {
                break Some(format!(
                    "batch at position {pos} has out-of-order offset {}",
                    h.base_offset
                ));
            }
            if pos == 0 {
                seg.roll_base_ms = Some(h.max_timestamp);
            }
            seg.track(pos, &h);
        };
        let truncated = reason.is_some();
        if let Some(reason) = reason {
            warn!(segment = %seg.log_path.display(), valid_bytes = seg.size, file_bytes = file_size, %reason,
                "truncating log segment at last valid batch");
            log.set_len(seg.size)?;
            log.sync_all()?;
        }
        Ok((seg, truncated))
    }
}
