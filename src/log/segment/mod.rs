//! One log segment: the `.log` file of whole batches plus its offset and time indexes.
//!
//! A segment keeps no file open: its descriptor and index maps come from the process-wide
//! `handles` cache when it reads or writes, so idle partitions cost no descriptors.
//!
//! Split by concern: opening and recovery (`open.rs`), appends and sealing (`write.rs`), reads and
//! lookups (`read.rs`), the header walk they share (`scan.rs`), the `.txnindex` (`txn_index.rs`).

mod open;
mod read;
mod scan;
mod txn_index;
mod write;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::handles::{self, SegmentFiles};
use super::index::{map_sealed, IndexBuf, OffsetEntries, TimeEntries, OFFSET_ENTRY, TIME_ENTRY};
use super::txn::AbortedTxn;

/// `<dir>/<base offset, 20 digits>.<ext>`
pub(crate) fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Where a segment's index entries are.
enum Indexes {
    /// In memory: the active segment's, or a sealed one's that could not be written (full disk).
    Building { offsets: IndexBuf, times: IndexBuf },
    /// In `<base>.index` and `<base>.timeindex`, mapped read-only when looked up.
    Sealed,
}

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

    /// Whether batches may be appended: its indexes are still being built (not sealed).
    pub(crate) fn is_writable(&self) -> bool {
        matches!(self.indexes, Indexes::Building { .. })
    }

    /// Whether the active segment must roll because an index has no room (a sealed one never takes more).
    pub(crate) fn is_index_full(&self) -> bool {
        match &self.indexes {
            Indexes::Building { offsets, times } => offsets.is_full() || times.is_full(),
            Indexes::Sealed => true,
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
}
