//! Space on the volume that holds a directory (statvfs), for DescribeLogDirs (KIP-827).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Total and usable bytes of the file system holding `dir`, or `None` if it cannot be asked.
pub fn space(dir: &Path) -> Option<(u64, u64)> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `st` a properly sized, writable struct
    // that statvfs fills in; nothing is read from it unless the call succeeded.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    let block = st.f_frsize as u64;
    Some((
        (st.f_blocks as u64).saturating_mul(block),
        (st.f_bavail as u64).saturating_mul(block),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_volume_has_space_and_a_missing_path_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let (total, usable) = space(dir.path()).unwrap();
        assert!(total > 0 && usable <= total, "{total} {usable}");
        assert_eq!(space(&dir.path().join("missing")), None);
    }
}
