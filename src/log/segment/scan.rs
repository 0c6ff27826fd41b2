//! A walk over the batch headers of a log file between two positions, read in chunks.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::log::batch::BatchHeader;
use crate::log::error::LogError;

/// Header scans read this much at a time, so walking an index interval costs one or two syscalls.
const SCAN_CHUNK: usize = 16 * 1024;

/// Walks batch headers (no CRC check) between two positions of a log file.
pub(super) struct HeaderScan<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> HeaderScan<'a> {
    pub(super) fn new(file: &'a File, pos: u64, end: u64) -> Self {
        HeaderScan {
            file,
            pos,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// Next (position, header); `Err(Corrupt)` if the framing does not add up to `end`.
    pub(super) fn next(&mut self) -> Result<Option<(u64, BatchHeader)>, LogError> {
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
