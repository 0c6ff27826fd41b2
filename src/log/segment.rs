//! One log segment: the `.log` file of whole batches plus its offset and time indexes.
//!
//! A segment keeps no file open: its descriptor and index maps come from the process-wide
//! `handles` cache when it reads or writes, so idle partitions cost no descriptors.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use tracing::warn;

use super::batch::{framed_size, validate_stored, BatchHeader};
use super::error::LogError;
use super::handles::{self, SegmentFiles};
use super::index::{
    map_sealed, persist, read_entries, IndexBuf, OffsetEntries, TimeEntries, OFFSET_ENTRY,
    TIME_ENTRY,
};
use super::recovery::FileSync;
use super::txn::{self, AbortedTxn};

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

/// Where a segment's index entries are.
enum Indexes {
    /// In memory: the active segment's, or a sealed one's that could not be written (full disk).
    Building { offsets: IndexBuf, times: IndexBuf },
    /// In `<base>.index` and `<base>.timeindex`, mapped read-only when looked up.
    Sealed,
}

/// A sealed segment that passed the open checks, with its offset and time index entries as read.
type TrustedSegment = (Segment, Vec<u8>, Vec<u8>);

/// A segment of the partition log.
pub(crate) struct Segment {
    /// Key of this segment's open files in the `handles` cache.
    id: u64,
    pub(crate) base_offset: i64,
    dir: PathBuf,
    log_path: PathBuf,
    /// Bytes of valid batches (the file is never longer after open/recovery).
    pub(crate) size: u64,
    /// Last offset + 1, or `base_offset` when empty.
    pub(crate) next_offset: i64,
    indexes: Indexes,
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
    /// The aborted transactions whose ABORT marker is in this segment, in offset order (its
    /// `.txnindex`, kept in memory: aborts are rare).
    pub(crate) aborted: Vec<AbortedTxn>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        handles::evict(self.id);
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Segment {
    /// An empty segment of `dir` at `base_offset` with in-memory indexes.
    fn building(dir: &Path, base_offset: i64, index_bytes: u32, interval: u32) -> Segment {
        Segment {
            id: handles::next_id(),
            base_offset,
            dir: dir.to_path_buf(),
            log_path: segment_path(dir, base_offset, "log"),
            size: 0,
            next_offset: base_offset,
            indexes: Indexes::Building {
                offsets: IndexBuf::new(OFFSET_ENTRY, index_bytes),
                times: IndexBuf::new(TIME_ENTRY, index_bytes),
            },
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            bytes_since_index: 0,
            index_interval_bytes: interval,
            roll_base_ms: None,
            dirty: true,
            aborted: Vec::new(),
        }
    }

    /// Create a new empty, writable segment (truncating leftovers with the same name).
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        index_bytes: u32,
        interval: u32,
    ) -> io::Result<Segment> {
        // Index files of an earlier segment at this base would describe other data.
        remove_if_present(&segment_path(dir, base_offset, "index"))?;
        remove_if_present(&segment_path(dir, base_offset, "timeindex"))?;
        // Created empty, so a missing `.txnindex` means lost (and rebuilt), not "no aborts". Not
        // fsynced, as the new log file is not: a crash that loses it costs a rebuild scan.
        File::create(segment_path(dir, base_offset, "txnindex"))?;
        let seg = Segment::building(dir, base_offset, index_bytes, interval);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&seg.log_path)?;
        Ok(seg)
    }

    /// The segment's open files, from the cache or opened now.
    fn files(&self) -> io::Result<Arc<SegmentFiles>> {
        let sealed = matches!(self.indexes, Indexes::Sealed);
        handles::get(self.id, || {
            let log = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.log_path)?;
            let (offset_index, time_index) = if sealed {
                (
                    map_sealed(&segment_path(&self.dir, self.base_offset, "index"))?,
                    map_sealed(&segment_path(&self.dir, self.base_offset, "timeindex"))?,
                )
            } else {
                (None, None)
            };
            Ok(SegmentFiles {
                log,
                offset_index,
                time_index,
            })
        })
    }

    fn offset_entries<'a>(&'a self, files: &'a SegmentFiles) -> OffsetEntries<'a> {
        match &self.indexes {
            Indexes::Building { offsets, .. } => offsets.offsets(),
            Indexes::Sealed => OffsetEntries(files.offset_index()),
        }
    }

    fn time_entries<'a>(&'a self, files: &'a SegmentFiles) -> TimeEntries<'a> {
        match &self.indexes {
            Indexes::Building { times, .. } => times.times(),
            Indexes::Sealed => TimeEntries(files.time_index()),
        }
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

    /// Account for a batch now stored at `pos`: update indexes, sizes, offsets and timestamps.
    fn track(&mut self, pos: u64, h: &BatchHeader) {
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

    /// Whether batches may be appended: its indexes are still being built (not sealed).
    pub(crate) fn is_writable(&self) -> bool {
        matches!(self.indexes, Indexes::Building { .. })
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

    /// Whether the active segment must roll because an index has no room (a sealed one never takes more).
    pub(crate) fn is_index_full(&self) -> bool {
        match &self.indexes {
            Indexes::Building { offsets, times } => offsets.is_full() || times.is_full(),
            Indexes::Sealed => true,
        }
    }

    /// Position of the first batch whose last offset is >= `offset`, or None if there is none in this segment.
    pub(crate) fn locate(&self, offset: i64) -> Result<Option<u64>, LogError> {
        let files = self.files()?;
        self.locate_in(&files, offset)
    }

    fn locate_in(&self, files: &SegmentFiles, offset: i64) -> Result<Option<u64>, LogError> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let start = self.offset_entries(files).lookup(rel) as u64;
        let mut scan = HeaderScan::new(&files.log, start, self.size);
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
        let files = self.files()?;
        let Some(start) = self.locate_in(&files, from)? else {
            return Ok(());
        };
        let mut scan = HeaderScan::new(&files.log, start, self.size);
        while let Some((_, h)) = scan.next()? {
            f(&h);
        }
        Ok(())
    }

    /// [`Self::for_each_header`], with the end-transaction marker of each control batch (read whole:
    /// markers are small) for rebuilding producer and transaction state.
    pub(crate) fn for_each_batch_meta(
        &self,
        from: i64,
        mut f: impl FnMut(&BatchHeader, Option<txn::TxnMarker>),
    ) -> Result<(), LogError> {
        let files = self.files()?;
        let Some(start) = self.locate_in(&files, from)? else {
            return Ok(());
        };
        let mut scan = HeaderScan::new(&files.log, start, self.size);
        while let Some((pos, h)) = scan.next()? {
            let marker = if h.is_control() && h.total_size() <= txn::MAX_MARKER_BATCH {
                let mut batch = vec![0u8; h.total_size()];
                files.log.read_exact_at(&mut batch, pos)?;
                txn::parse_marker(&batch)
            } else {
                None
            };
            f(&h, marker);
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
        let files = self.files()?;
        let rel = self.time_entries(&files).lookup_before(ts);
        let start = self.offset_entries(&files).lookup(rel) as u64;
        let mut scan = HeaderScan::new(&files.log, start, self.size);
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
        let files = self.files()?;
        let log = &files.log;
        let start = out.len();
        let want = (avail.min(max as u64)) as usize;
        let mut complete = 0usize;
        if want >= BatchHeader::SIZE {
            read_exact_at_into(log, out, want, from)?;
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
            log.read_exact_at(&mut frame, from)?;
            let size = framed_size(&frame).unwrap_or(0);
            if size < BatchHeader::SIZE as i64 || size as u64 > avail {
                return Err(LogError::Corrupt(format!(
                    "bad batch length at position {from} of {}",
                    self.log_path.display()
                )));
            }
            read_exact_at_into(log, out, size as usize, from)?;
            complete = size as usize;
        }
        Ok(complete)
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

    /// When the segment file was last written.
    pub(crate) fn modified(&self) -> Option<std::time::SystemTime> {
        fs::metadata(&self.log_path).and_then(|m| m.modified()).ok()
    }

    /// Largest timestamp for time retention: the max batch timestamp, or the file's mtime if it has none.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.modified()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Remove the segment's files (log first: an orphan index is cleaned up on open). Its cached
    /// descriptor goes first, so the space is freed at once.
    pub(crate) fn delete(self) -> io::Result<()> {
        handles::evict(self.id);
        fs::remove_file(&self.log_path)?;
        remove_if_present(&segment_path(&self.dir, self.base_offset, "index"))?;
        remove_if_present(&segment_path(&self.dir, self.base_offset, "timeindex"))?;
        remove_if_present(&self.txn_index_path())?;
        Ok(())
    }

    fn txn_index_path(&self) -> PathBuf {
        segment_path(&self.dir, self.base_offset, "txnindex")
    }

    /// Loads the `.txnindex` into memory; false when it is missing or damaged (to be rebuilt).
    pub(crate) fn load_txn_index(&mut self) -> io::Result<bool> {
        match txn::read_index(&self.txn_index_path())? {
            Some(entries) => {
                self.aborted = entries;
                Ok(true)
            }
            None => {
                self.aborted.clear();
                Ok(false)
            }
        }
    }

    /// Adds an aborted transaction whose marker is in this segment, to memory and the file. The
    /// marker is already in the log, so a failed write (a full disk) does not undo it: the file
    /// goes instead, and the next open rebuilds every index from the batches.
    pub(crate) fn push_aborted(&mut self, entry: AbortedTxn, sync: FileSync) {
        self.aborted.push(entry);
        let path = self.txn_index_path();
        if let Err(error) = txn::append_index(&path, &entry, sync) {
            warn!(file = %path.display(), %error,
                "cannot write the transaction index; removing it for the next start to rebuild");
            if let Err(error) = remove_if_present(&path) {
                warn!(file = %path.display(), %error, "cannot remove the transaction index");
            }
        }
    }

    /// Writes the in-memory aborted transactions as the whole `.txnindex`.
    pub(crate) fn persist_aborted(&self) -> io::Result<()> {
        txn::write_index(&self.txn_index_path(), &self.aborted)
    }

    /// Forgets the aborted transactions whose marker is at or after `offset` (the log is cut there,
    /// or they are about to be rebuilt) and rewrites the file; `rewrite` forces the write (the
    /// file was missing or damaged).
    pub(crate) fn retain_aborted_below(&mut self, offset: i64, rewrite: bool) -> io::Result<()> {
        let before = self.aborted.len();
        self.aborted.retain(|t| t.last_offset < offset);
        if rewrite || self.aborted.len() != before {
            txn::write_index(&self.txn_index_path(), &self.aborted)?;
        }
        Ok(())
    }
}

/// Appends `len` bytes of `file` at `pos` to `out` with pread(2) straight into its spare capacity:
/// zero-filling the buffer first (as `read_exact_at` needs) was a tenth of a consumer-bound broker's
/// CPU time. On an error `out` is as it was.
fn read_exact_at_into(file: &File, out: &mut BytesMut, len: usize, pos: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let start = out.len();
    out.reserve(len);
    let mut done = 0;
    while done < len {
        let spare = out.spare_capacity_mut();
        let offset = libc::off_t::try_from(pos + done as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past off_t"))?;
        // SAFETY: `spare` is writable memory of at least `len - done` bytes (reserved above, and
        // `done` bytes of it have since become `out`'s length); pread writes at most that many.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                len - done,
                offset,
            )
        };
        match n {
            n if n > 0 => {
                // SAFETY: the kernel initialised the `n` bytes after the current length.
                unsafe { out.set_len(out.len() + n as usize) };
                done += n as usize;
            }
            0 => {
                out.truncate(start);
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
