//! Sparse offset index (relative offset -> file position) and time index (timestamp -> relative offset), memory-mapped.
//!
//! An active index file is preallocated to its maximum size and mapped; sealing trims it to the entries written.
//! Files left preallocated by a crash fail the sanity checks (zero padding is not increasing) and get rebuilt.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

/// A memory-mapped array of fixed-size entries.
struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: Option<MmapMut>,
    entries: usize,
    capacity: usize,
    entry_size: usize,
}

fn map(file: &File, len: usize) -> io::Result<Option<MmapMut>> {
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: index files are private to this broker's data directory; nothing else is expected to
    // truncate or rewrite them while mapped (the same assumption Kafka makes).
    unsafe { MmapOptions::new().len(len).map_mut(file) }.map(Some)
}

impl IndexFile {
    /// Create (or truncate) a writable index preallocated for `max_bytes` worth of entries (at least one),
    /// plus one spare slot so the final time index entry written when sealing always fits.
    fn create(path: &Path, entry_size: usize, max_bytes: u32) -> io::Result<Self> {
        let capacity = (max_bytes as usize / entry_size).max(1);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let len = (capacity + 1) * entry_size;
        file.set_len(len as u64)?;
        let mmap = map(&file, len)?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            mmap,
            entries: 0,
            capacity,
            entry_size,
        })
    }

    /// Open an existing sealed index; `Ok(None)` if its size is not a whole number of entries.
    fn open_sealed(path: &Path, entry_size: usize) -> io::Result<Option<Self>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len % entry_size as u64 != 0 || len > u32::MAX as u64 {
            return Ok(None);
        }
        let len = len as usize;
        let mmap = map(&file, len)?;
        let entries = len / entry_size;
        Ok(Some(IndexFile {
            path: path.to_path_buf(),
            file,
            mmap,
            entries,
            capacity: entries,
            entry_size,
        }))
    }

    fn entry(&self, i: usize) -> &[u8] {
        let at = i * self.entry_size;
        self.mmap
            .as_ref()
            .and_then(|m| m.get(at..at + self.entry_size))
            .unwrap_or(&[])
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    fn push(&mut self, bytes: &[u8], use_spare: bool) -> bool {
        if self.is_full() && !(use_spare && self.entries == self.capacity) {
            return false;
        }
        let at = self.entries * self.entry_size;
        match self
            .mmap
            .as_mut()
            .and_then(|m| m.get_mut(at..at + bytes.len()))
        {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.entries += 1;
                true
            }
            None => false,
        }
    }

    fn flush(&self) -> io::Result<()> {
        match &self.mmap {
            Some(m) => m.flush(),
            None => Ok(()),
        }
    }

    /// Flush and trim the file to the written entries; the index becomes read-only in practice.
    fn seal(&mut self) -> io::Result<()> {
        self.flush()?;
        let len = self.entries * self.entry_size;
        self.mmap = None;
        self.file.set_len(len as u64)?;
        self.file.sync_all()?;
        self.mmap = map(&self.file, len)?;
        self.capacity = self.entries;
        Ok(())
    }

    /// Turn a sealed index back into a writable, preallocated one keeping its entries.
    fn make_writable(&mut self, max_bytes: u32) -> io::Result<()> {
        let capacity = (max_bytes as usize / self.entry_size)
            .max(1)
            .max(self.entries);
        let len = (capacity + 1) * self.entry_size;
        self.mmap = None;
        self.file.set_len(len as u64)?;
        self.mmap = map(&self.file, len)?;
        self.capacity = capacity;
        Ok(())
    }

    fn delete(self) -> io::Result<()> {
        let path = self.path.clone();
        drop(self);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

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

/// Offset index: 8-byte entries (relative offset u32, file position u32) of batch starts.
pub(crate) struct OffsetIndex(IndexFile);

pub(crate) const OFFSET_ENTRY: usize = 8;
pub(crate) const TIME_ENTRY: usize = 12;

impl OffsetIndex {
    pub(crate) fn create(path: &Path, max_bytes: u32) -> io::Result<Self> {
        IndexFile::create(path, OFFSET_ENTRY, max_bytes).map(OffsetIndex)
    }
    pub(crate) fn open_sealed(path: &Path) -> io::Result<Option<Self>> {
        Ok(IndexFile::open_sealed(path, OFFSET_ENTRY)?.map(OffsetIndex))
    }
    pub(crate) fn len(&self) -> usize {
        self.0.entries
    }
    pub(crate) fn get(&self, i: usize) -> (u32, u32) {
        let e = self.0.entry(i);
        (u32_at(e, 0), u32_at(e, 4))
    }
    pub(crate) fn last(&self) -> Option<(u32, u32)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }
    pub(crate) fn is_full(&self) -> bool {
        self.0.is_full()
    }
    pub(crate) fn push(&mut self, rel_offset: u32, position: u32) -> bool {
        let mut b = [0u8; OFFSET_ENTRY];
        b[..4].copy_from_slice(&rel_offset.to_be_bytes());
        b[4..].copy_from_slice(&position.to_be_bytes());
        self.0.push(&b, false)
    }
    /// Position of the last indexed batch whose relative base offset is <= `rel`, or 0 (segment start).
    pub(crate) fn lookup(&self, rel: u32) -> u32 {
        // partition_point: number of entries with offset <= rel (entries are strictly increasing).
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid).0 <= rel {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map_or(0, |i| self.get(i).1)
    }
    /// Entries strictly increasing in both offset and position, positions within `log_size`.
    pub(crate) fn is_sane(&self, log_size: u64) -> bool {
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..self.len() {
            let (o, p) = self.get(i);
            if p as u64 >= log_size {
                return false;
            }
            if let Some((po, pp)) = prev {
                if o <= po || p <= pp {
                    return false;
                }
            } else if p == 0 {
                // The segment start is implicit and never indexed.
                return false;
            }
            prev = Some((o, p));
        }
        true
    }
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        self.0.seal()
    }
    pub(crate) fn make_writable(&mut self, max_bytes: u32) -> io::Result<()> {
        self.0.make_writable(max_bytes)
    }
    pub(crate) fn delete(self) -> io::Result<()> {
        self.0.delete()
    }
}

/// Time index: 12-byte entries (max timestamp so far i64, relative base offset u32 of the batch holding it).
pub(crate) struct TimeIndex(IndexFile);

impl TimeIndex {
    pub(crate) fn create(path: &Path, max_bytes: u32) -> io::Result<Self> {
        IndexFile::create(path, TIME_ENTRY, max_bytes).map(TimeIndex)
    }
    pub(crate) fn open_sealed(path: &Path) -> io::Result<Option<Self>> {
        Ok(IndexFile::open_sealed(path, TIME_ENTRY)?.map(TimeIndex))
    }
    pub(crate) fn len(&self) -> usize {
        self.0.entries
    }
    pub(crate) fn get(&self, i: usize) -> (i64, u32) {
        let e = self.0.entry(i);
        (i64_at(e, 0), u32_at(e, 8))
    }
    pub(crate) fn last(&self) -> Option<(i64, u32)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }
    pub(crate) fn is_full(&self) -> bool {
        self.0.is_full()
    }
    /// Append if `ts` is larger than the last entry's (entries are strictly increasing in timestamp).
    /// `final_entry` may use the spare slot (the entry written when the segment is sealed).
    pub(crate) fn maybe_push(&mut self, ts: i64, rel_offset: u32, final_entry: bool) -> bool {
        if self.last().is_some_and(|(t, _)| ts <= t) {
            return false;
        }
        let mut b = [0u8; TIME_ENTRY];
        b[..8].copy_from_slice(&ts.to_be_bytes());
        b[8..].copy_from_slice(&rel_offset.to_be_bytes());
        self.0.push(&b, final_entry)
    }
    /// Relative offset of the last entry whose timestamp is < `ts`: every batch before it has a smaller max
    /// timestamp, so a scan for the first batch with max timestamp >= `ts` may start there. 0 if none.
    pub(crate) fn lookup_before(&self, ts: i64) -> u32 {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid).0 < ts {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map_or(0, |i| self.get(i).1)
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
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        self.0.seal()
    }
    pub(crate) fn make_writable(&mut self, max_bytes: u32) -> io::Result<()> {
        self.0.make_writable(max_bytes)
    }
    pub(crate) fn delete(self) -> io::Result<()> {
        self.0.delete()
    }
}
