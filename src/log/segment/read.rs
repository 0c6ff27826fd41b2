//! Reads of a segment: locating an offset or a timestamp through the indexes, header walks, and
//! whole batches copied out for fetches.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use bytes::BytesMut;

use super::scan::HeaderScan;
use super::Segment;
use crate::log::batch::{framed_size, BatchHeader};
use crate::log::error::LogError;
use crate::log::handles::SegmentFiles;
use crate::log::txn;

impl Segment {
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
