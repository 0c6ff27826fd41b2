//! Sparse offset index (relative offset -> file position) and time index (timestamp -> relative offset).
//!
//! Nothing is ever written through a memory map, so a full filesystem shows up as an I/O error at a
//! call (ENOSPC), never as SIGBUS on a page fault. An active segment's index is built in memory
//! ([`IndexBuf`]) and written to its file when the segment is sealed ([`persist`]: tmp, fsync, rename,
//! so a mapping of an older file never sees it shrink); recovery rebuilds an active index from the log,
//! so it is not written while the segment grows. A sealed index file is mapped read-only when it is
//! looked up (see `handles`), or read whole when its segment becomes active again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use super::recovery::FileSync;

pub(crate) const OFFSET_ENTRY: usize = 8;
pub(crate) const TIME_ENTRY: usize = 12;

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    i64::from_be_bytes(a)
}

/// Number of entries `0..len` with `pred` true, for `pred` true on a prefix (binary search).
fn partition_point(len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, len);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Offset index entries: 8 bytes each (relative offset u32, file position u32) of batch starts.
#[derive(Clone, Copy)]
pub(crate) struct OffsetEntries<'a>(pub(crate) &'a [u8]);

impl OffsetEntries<'_> {
    pub(crate) fn len(&self) -> usize {
        self.0.len() / OFFSET_ENTRY
    }
    pub(crate) fn get(&self, i: usize) -> (u32, u32) {
        let at = i * OFFSET_ENTRY;
        (u32_at(self.0, at), u32_at(self.0, at + 4))
    }
    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }
    /// Position of the last indexed batch whose relative base offset is <= `rel`, or 0 (segment start).
    pub(crate) fn lookup(&self, rel: u32) -> u32 {
        // Entries are strictly increasing in offset.
        partition_point(self.len(), |i| self.get(i).0 <= rel)
            .checked_sub(1)
            .map_or(0, |i| self.get(i).1)
    }
    /// Entries strictly increasing in both offset and position, positions within `log_size`.
    pub(crate) fn is_sane(&self, log_size: u64) -> bool {
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.len() {
            let (o, p) = self.get(i);
            if p as u64 >= log_size {
                return false;
            }
            match prev {
                Some((po, pp)) if o <= po || p <= pp => return false,
                // The segment start is implicit and never indexed.
                None if p == 0 => return false,
                _ => {}
            }
            prev = Some((o, p));
        }
        true
    }
}

/// Time index entries: 12 bytes each (max timestamp so far i64, relative base offset u32 of the batch
/// holding it).
#[derive(Clone, Copy)]
pub(crate) struct TimeEntries<'a>(pub(crate) &'a [u8]);

impl TimeEntries<'_> {
    pub(crate) fn len(&self) -> usize {
        self.0.len() / TIME_ENTRY
    }
    pub(crate) fn get(&self, i: usize) -> (i64, u32) {
        let at = i * TIME_ENTRY;
        (i64_at(self.0, at), u32_at(self.0, at + 8))
    }
    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }
    /// Relative offset of the last entry whose timestamp is < `ts`: every batch before it has a smaller max
    /// timestamp, so a scan for the first batch with max timestamp >= `ts` may start there. 0 if none.
    pub(crate) fn lookup_before(&self, ts: i64) -> u32 {
        partition_point(self.len(), |i| self.get(i).0 < ts)
            .checked_sub(1)
            .map_or(0, |i| self.get(i).1)
    }
    /// Timestamps strictly increasing, offsets non-decreasing and below `rel_end`.
    pub(crate) fn is_sane(&self, rel_end: u64) -> bool {
        let mut prev: Option<(i64, u32)> = None;
        for i in 0..self.len() {
            let (t, o) = self.get(i);
            if o as u64 >= rel_end {
                return false;
            }
            if let Some((pt, po)) = prev {
                if t <= pt || o < po {
                    return false;
                }
            }
            prev = Some((t, o));
        }
        true
    }
}

/// An index being built in memory, holding at most `segment.index.bytes` worth of entries (plus one
/// spare time entry, for the final one written when the segment is sealed).
pub(crate) struct IndexBuf {
    bytes: Vec<u8>,
    entry_size: usize,
    capacity: usize,
}

impl IndexBuf {
    pub(crate) fn new(entry_size: usize, max_bytes: u32) -> Self {
        Self::with_entries(Vec::new(), entry_size, max_bytes)
    }

    /// An index continuing from `bytes` (whole entries, as read back from a sealed file).
    pub(crate) fn with_entries(bytes: Vec<u8>, entry_size: usize, max_bytes: u32) -> Self {
        let entries = bytes.len() / entry_size;
        IndexBuf {
            bytes,
            entry_size,
            capacity: (max_bytes as usize / entry_size).max(1).max(entries),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn entries(&self) -> usize {
        self.bytes.len() / self.entry_size
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries() >= self.capacity
    }

    pub(crate) fn offsets(&self) -> OffsetEntries<'_> {
        OffsetEntries(&self.bytes)
    }

    pub(crate) fn times(&self) -> TimeEntries<'_> {
        TimeEntries(&self.bytes)
    }

    pub(crate) fn push_offset(&mut self, rel_offset: u32, position: u32) -> bool {
        if self.is_full() {
            return false;
        }
        self.bytes.extend_from_slice(&rel_offset.to_be_bytes());
        self.bytes.extend_from_slice(&position.to_be_bytes());
        true
    }

    /// Append if `ts` is larger than the last entry's (entries are strictly increasing in timestamp).
    /// `final_entry` may use the spare slot (the entry written when the segment is sealed).
    pub(crate) fn push_time(&mut self, ts: i64, rel_offset: u32, final_entry: bool) -> bool {
        if self.times().last().is_some_and(|(t, _)| ts <= t) {
            return false;
        }
        if self.is_full() && !(final_entry && self.entries() == self.capacity) {
            return false;
        }
        self.bytes.extend_from_slice(&ts.to_be_bytes());
        self.bytes.extend_from_slice(&rel_offset.to_be_bytes());
        true
    }
}

/// The whole index file at `path`; `None` if it is missing or not a whole number of entries.
pub(crate) fn read_entries(path: &Path, entry_size: usize) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) if bytes.len() % entry_size == 0 && bytes.len() <= u32::MAX as usize => {
            Ok(Some(bytes))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` as the index file at `path`: to a temporary file first (fsynced unless `sync` says
/// later), then renamed over it, so the old file (possibly still mapped) is never changed in place. On
/// error nothing is left.
pub(crate) fn persist(path: &Path, bytes: &[u8], sync: FileSync) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        f.write_all(bytes)?;
        if sync == FileSync::Each {
            f.sync_all()?;
        }
        fs::rename(tmp, path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(tmp);
    })
}

/// Maps a sealed index file read-only; `None` when it is empty. Sealed index files are only ever
/// replaced by rename ([`persist`]), never truncated or rewritten, so the mapping stays valid.
pub(crate) fn map_sealed(path: &Path) -> io::Result<Option<Mmap>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: read-only, of a file this broker alone writes and only replaces by rename (see above).
    unsafe { MmapOptions::new().len(len).map(&file) }.map(Some)
}
