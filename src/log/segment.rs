//! One log segment: the `.log` file of whole batches plus its offset and time indexes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use tracing::warn;

use super::batch::{framed_size, validate_stored, BatchHeader};
use super::error::LogError;
use super::index::{OffsetIndex, TimeIndex};

/// Header scans read this much at a time, so walking an index interval costs one or two syscalls.
const SCAN_CHUNK: usize = 16 * 1024;
/// Recovery reads (and CRC-checks) the log in chunks of this size.
const RECOVERY_CHUNK: usize = 1 << 20;

/// `<dir>/<base offset, 20 digits>.<ext>`
pub(crate) fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Walks batch headers (no CRC check) between two positions of a log file.
struct HeaderScan<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> HeaderScan<'a> {
    fn new(file: &'a File, pos: u64, end: u64) -> Self {
        HeaderScan {
            file,
            pos,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Next (position, header); `Err(Corrupt)` if the framing does not add up to `end`.
    fn next(&mut self) -> Result<Option<(u64, BatchHeader)>, LogError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let hs = BatchHeader::SIZE as u64;
        if self.pos + hs > self.end {
            return Err(LogError::Corrupt(format!(
                "partial batch header at position {}",
                self.pos
            )));
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || self.pos + hs > buf_end {
            let len = (self.end - self.pos).min(SCAN_CHUNK as u64) as usize;
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, self.pos)?;
            self.buf_start = self.pos;
        }
        let at = (self.pos - self.buf_start) as usize;
        let h = BatchHeader::parse(&self.buf[at..at + BatchHeader::SIZE])?;
        h.check_structure()?;
        let size = h.total_size() as u64;
        if self.pos + size > self.end {
            return Err(LogError::Corrupt(format!(
                "batch at position {} runs past the end",
                self.pos
            )));
        }
        let pos = self.pos;
        self.pos += size;
        Ok(Some((pos, h)))
    }
}

/// A segment of the partition log.
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    log_path: PathBuf,
    log: File,
    /// Bytes of valid batches (the file is never longer after open/recovery).
    pub(crate) size: u64,
    /// Last offset + 1, or `base_offset` when empty.
    pub(crate) next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Largest batch max_timestamp, -1 when empty.
    pub(crate) max_timestamp: i64,
    /// Base offset of the (first) batch with `max_timestamp`.
    pub(crate) offset_of_max_timestamp: i64,
    bytes_since_index: u64,
    index_interval_bytes: u32,
    /// Time the segment-age roll is measured from: wall time of its first append, or after a restart the
    /// first batch's timestamp (as Kafka does).
    pub(crate) roll_base_ms: Option<i64>,
    dirty: bool,
}

impl Segment {
    /// Create a new empty, writable segment (truncating leftovers with the same name).
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        index_bytes: u32,
        interval: u32,
    ) -> io::Result<Segment> {
        let log_path = segment_path(dir, base_offset, "log");
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        Ok(Segment {
            base_offset,
            log_path,
            log,
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::create(
                &segment_path(dir, base_offset, "index"),
                index_bytes,
            )?,
            time_index: TimeIndex::create(
                &segment_path(dir, base_offset, "timeindex"),
                index_bytes,
            )?,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            bytes_since_index: 0,
            index_interval_bytes: interval,
            roll_base_ms: None,
            dirty: true,
        })
    }

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
            Some(seg) => Ok((seg, false)),
            None => {
                warn!(segment = %segment_path(dir, base_offset, "log").display(), "index missing or damaged, rebuilding");
                let (mut seg, truncated) = Self::recover(dir, base_offset, index_bytes, interval)?;
                if !truncated {
                    seg.seal()?;
                }
                Ok((seg, truncated))
            }
        }
    }

    fn try_open_sealed(
        dir: &Path,
        base_offset: i64,
        interval: u32,
    ) -> Result<Option<Segment>, LogError> {
        let log_path = segment_path(dir, base_offset, "log");
        let log = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let size = log.metadata()?.len();
        let open = |ext: &str| -> io::Result<Option<PathBuf>> {
            let p = segment_path(dir, base_offset, ext);
            Ok(p.exists().then_some(p))
        };
        let (Some(oi_path), Some(ti_path)) = (open("index")?, open("timeindex")?) else {
            return Ok(None);
        };
        let (Some(offset_index), Some(time_index)) = (
            OffsetIndex::open_sealed(&oi_path)?,
            TimeIndex::open_sealed(&ti_path)?,
        ) else {
            return Ok(None);
        };
        if !offset_index.is_sane(size) {
            return Ok(None);
        }
        // Walk the tail after the last index entry to find the end offset; it must frame exactly.
        let (start_rel, start_pos) = offset_index.last().map_or((None, 0), |(o, p)| (Some(o), p));
        let mut scan = HeaderScan::new(&log, start_pos as u64, size);
        let mut next_offset = base_offset;
        let (mut max_ts, mut max_off) = time_index
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
        if !time_index.is_sane((next_offset - base_offset) as u64) {
            return Ok(None);
        }
        Ok(Some(Segment {
            base_offset,
            log_path,
            log,
            size,
            next_offset,
            offset_index,
            time_index,
            max_timestamp: max_ts,
            offset_of_max_timestamp: max_off,
            bytes_since_index: 0,
            index_interval_bytes: interval,
            roll_base_ms: None,
            dirty: false,
        }))
    }

    /// Open the last segment after a clean shutdown: trust its indexes like a sealed segment's (the header-only
    /// tail scan still catches a torn tail) and make them writable again; anything suspicious -> full recovery.
    pub(crate) fn open_clean_active(
        dir: &Path,
        base_offset: i64,
        index_bytes: u32,
        interval: u32,
    ) -> Result<(Segment, bool), LogError> {
        if let Some(mut seg) = Self::try_open_sealed(dir, base_offset, interval)? {
            let mut first = [0u8; BatchHeader::SIZE];
            let roll_base = if seg.size == 0 {
                Some(None)
            } else {
                seg.log.read_exact_at(&mut first, 0)?;
                BatchHeader::parse(&first)
                    .ok()
                    .map(|h| Some(h.max_timestamp))
            };
            if let Some(roll_base) = roll_base {
                seg.offset_index.make_writable(index_bytes)?;
                seg.time_index.make_writable(index_bytes)?;
                seg.roll_base_ms = roll_base;
                // Same accounting as `track`: bytes from the last indexed batch (or the start) to the end.
                seg.bytes_since_index =
                    seg.size - seg.offset_index.last().map_or(0, |(_, p)| p as u64);
                return Ok((seg, false));
            }
        }
        warn!(segment = %segment_path(dir, base_offset, "log").display(), "active segment failed checks after clean shutdown, recovering");
        Self::recover(dir, base_offset, index_bytes, interval)
    }

    /// Scan the whole segment batch by batch with full validation (CRC included), truncate at the first invalid
    /// batch and rebuild both indexes. The result is writable (indexes preallocated). Returns whether it truncated.
    pub(crate) fn recover(
        dir: &Path,
        base_offset: i64,
        index_bytes: u32,
        interval: u32,
    ) -> Result<(Segment, bool), LogError> {
        let log_path = segment_path(dir, base_offset, "log");
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)?;
        let file_size = log.metadata()?.len();
        let mut seg = Segment {
            base_offset,
            log_path,
            log,
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::create(
                &segment_path(dir, base_offset, "index"),
                index_bytes,
            )?,
            time_index: TimeIndex::create(
                &segment_path(dir, base_offset, "timeindex"),
                index_bytes,
            )?,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            bytes_since_index: 0,
            index_interval_bytes: interval,
            roll_base_ms: None,
            dirty: true,
        };
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
                seg.log.read_exact_at(&mut buf, pos)?;
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
                seg.log.read_exact_at(&mut buf, pos)?;
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
            seg.log.set_len(seg.size)?;
            seg.log.sync_all()?;
        }
        Ok((seg, truncated))
    }

    /// Account for a batch now stored at `pos`: update indexes, sizes, offsets and timestamps.
    fn track(&mut self, pos: u64, h: &BatchHeader) {
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
        // Kafka's rule: index a batch once more than index.interval.bytes were written since the last entry.
        if self.bytes_since_index > self.index_interval_bytes as u64 {
            if let (Ok(rel), Ok(p)) = (
                u32::try_from(h.base_offset - self.base_offset),
                u32::try_from(pos),
            ) {
                self.offset_index.push(rel, p);
                if let Ok(trel) = u32::try_from(self.offset_of_max_timestamp - self.base_offset) {
                    self.time_index.maybe_push(self.max_timestamp, trel, false);
                }
            }
            self.bytes_since_index = 0;
        }
        let size = h.total_size() as u64;
        self.bytes_since_index += size;
        self.size = pos + size;
        self.next_offset = h.last_offset() + 1;
    }

    /// Write already-stamped batches at the end of the segment. On a write error the file is cut back so the
    /// segment stays consistent.
    pub(crate) fn append(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> io::Result<()> {
        let start = self.size;
        if let Err(e) = self.log.write_all_at(records, start) {
            let _ = self.log.set_len(start);
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

    pub(crate) fn is_index_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Position of the first batch whose last offset is >= `offset`, or None if there is none in this segment.
    pub(crate) fn locate(&self, offset: i64) -> Result<Option<u64>, LogError> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let mut scan = HeaderScan::new(&self.log, self.offset_index.lookup(rel) as u64, self.size);
        while let Some((pos, h)) = scan.next()? {
            if h.last_offset() >= offset {
                return Ok(Some(pos));
            }
        }
        Ok(None)
    }

    /// Calls `f` with the header of every batch ending at or after `from`, in order (headers only, no CRC).
    pub(crate) fn for_each_header(
        &self,
        from: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<(), LogError> {
        let Some(start) = self.locate(from)? else {
            return Ok(());
        };
        let mut scan = HeaderScan::new(&self.log, start, self.size);
        while let Some((_, h)) = scan.next()? {
            f(&h);
        }
        Ok(())
    }

    /// First batch (ending at or after `min_offset`) whose max timestamp is >= `ts`:
    /// (max(base offset, min_offset), its max timestamp).
    pub(crate) fn find_timestamp(
        &self,
        ts: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let rel = self.time_index.lookup_before(ts);
        let mut scan = HeaderScan::new(&self.log, self.offset_index.lookup(rel) as u64, self.size);
        while let Some((_, h)) = scan.next()? {
            if h.last_offset() >= min_offset && h.max_timestamp >= ts {
                return Ok(Some((h.base_offset.max(min_offset), h.max_timestamp)));
            }
        }
        Ok(None)
    }

    /// Append whole batches starting at `from` to `out`, at most `max` bytes, or the first batch whatever its
    /// size if `min_one` (KIP-74). Returns the number of bytes added.
    pub(crate) fn read_into(
        &self,
        out: &mut BytesMut,
        from: u64,
        max: usize,
        min_one: bool,
    ) -> Result<usize, LogError> {
        let avail = self.size.saturating_sub(from);
        if avail == 0 {
            return Ok(0);
        }
        let start = out.len();
        let want = (avail.min(max as u64)) as usize;
        let mut complete = 0usize;
        if want >= BatchHeader::SIZE {
            out.resize(start + want, 0);
            self.log.read_exact_at(&mut out[start..], from)?;
            // Keep only whole batches.
            while let Some(size) = framed_size(&out[start + complete..]) {
                if size < BatchHeader::SIZE as i64 || size as usize > want - complete {
                    break;
                }
                complete += size as usize;
            }
            out.truncate(start + complete);
        }
        if complete == 0 && min_one {
            let mut frame = [0u8; 12];
            self.log.read_exact_at(&mut frame, from)?;
            let size = framed_size(&frame).unwrap_or(0);
            if size < BatchHeader::SIZE as i64 || size as u64 > avail {
                return Err(LogError::Corrupt(format!(
                    "bad batch length at position {from} of {}",
                    self.log_path.display()
                )));
            }
            out.resize(start + size as usize, 0);
            self.log.read_exact_at(&mut out[start..], from)?;
            complete = size as usize;
        }
        Ok(complete)
    }

    /// fsync the log and indexes if anything was written since the last flush.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.dirty {
            self.log.sync_data()?;
            self.offset_index.flush()?;
            self.time_index.flush()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Make the segment inactive: record its max timestamp as the final time index entry (so reopening finds
    /// it without a scan), trim the indexes and fsync everything.
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            if let Ok(rel) = u32::try_from(self.offset_of_max_timestamp - self.base_offset) {
                self.time_index.maybe_push(self.max_timestamp, rel, true);
            }
        }
        self.log.sync_all()?;
        self.offset_index.seal()?;
        self.time_index.seal()?;
        self.dirty = false;
        Ok(())
    }

    /// When the segment file was last written.
    pub(crate) fn modified(&self) -> Option<std::time::SystemTime> {
        self.log.metadata().and_then(|m| m.modified()).ok()
    }

    /// Largest timestamp for time retention: the max batch timestamp, or the file's mtime if it has none.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Remove the segment's files (log first: an orphan index is cleaned up on open).
    pub(crate) fn delete(self) -> io::Result<()> {
        let Segment {
            log_path,
            log,
            offset_index,
            time_index,
            ..
        } = self;
        drop(log);
        std::fs::remove_file(&log_path)?;
        offset_index.delete()?;
        time_index.delete()?;
        Ok(())
    }
}
