//! Small durable-file helpers: atomic replace (tmp + fsync + rename + dir fsync) and
//! crc32c-checked records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Header of a record: payload length (u32 LE) then crc32c of the payload (u32 LE).
pub const HEADER_LEN: usize = 8;

/// Refuse absurd lengths so a corrupt header can't make us allocate gigabytes.
pub const MAX_RECORD_LEN: usize = 256 * 1024 * 1024;

/// Append `payload` as a `[len][crc][payload]` record to `buf`.
pub fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Decode the record starting at `pos`. `None` means no complete, checksum-valid record starts
/// there (a torn or corrupt tail); otherwise returns the payload and the next position.
pub fn decode_record(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let header = data.get(pos..pos.checked_add(HEADER_LEN)?)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_LEN {
        return None;
    }
    let start = pos + HEADER_LEN;
    let payload = data.get(start..start.checked_add(len)?)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    Some((payload, start + len))
}

/// fsync a directory so that a rename/creation inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Atomically replace `path` with a single crc-checked record holding `payload`. On an error
/// before the rename, `path` still holds its old content and no tmp file is left behind, so the
/// write can simply be repeated.
pub fn atomic_write(path: &Path, payload: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut buf = Vec::with_capacity(payload.len() + HEADER_LEN);
    encode_record(&mut buf, payload);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .and_then(|mut f| {
            f.write_all(&buf)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(tmp, path));
    if let Err(e) = written {
        // `path` is untouched; give back the space the partial tmp file took.
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    fsync_dir(dir)
}

/// Read a file written by [`atomic_write`]. `Ok(None)` if it does not exist; a checksum or
/// length mismatch is an `InvalidData` error (it was written atomically, so it is never torn).
pub fn read_atomic(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match decode_record(&data, 0) {
        Some((payload, end)) if end == data.len() => Ok(Some(payload.to_vec())),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is corrupt (bad length or checksum)", path.display()),
        )),
    }
}
