//! Recovery after crashes and clean closes: torn or corrupt tails truncated, indexes rebuilt, state kept across reopen.

use super::*;

fn reopen(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir, small_config()).unwrap()
}

/// Three batches written, then the log dropped without close (a crash); returns the last segment path and the
/// size of the first two batches.
fn crashed_log(dir: &Path) -> (PathBuf, u64) {
    let mut log = reopen(dir);
    append(&mut log, &[batch(2), batch(3)], 0);
    append(&mut log, &[batch(4)], 0);
    drop(log);
    (
        (dir.join("00000000000000000000.log")),
        (batch(2).len() + batch(3).len()) as u64,
    )
}

fn assert_recovered(dir: &Path, valid: u64) {
    let mut log = reopen(dir);
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(
        fs::metadata(dir.join("00000000000000000000.log"))
            .unwrap()
            .len(),
        valid
    );
    let hs = batches_in(&log.read(0, 1 << 20, false).unwrap().bytes);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(append(&mut log, &[batch(1)], 0).base_offset, 5);
    let hs = batches_in(&log.read(3, 1 << 20, false).unwrap().bytes);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![2, 5]
    );
    drop(log);
    assert_eq!(reopen(dir).log_end_offset(), 6);
}

#[test]
fn recovery_truncated_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (path, valid) = crashed_log(dir.path());
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(valid + 30).unwrap();
    drop(f);
    assert_recovered(dir.path(), valid);
}

#[test]
fn recovery_garbage_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = crashed_log(dir.path());
    let mut data = fs::read(&path).unwrap();
    let all = data.len() as u64;
    data.extend(std::iter::repeat_n(0xAB, 100));
    fs::write(&path, &data).unwrap();
    let log = reopen(dir.path());
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(fs::metadata(&path).unwrap().len(), all);
    drop(log);
    // Zero padding (a preallocated tail) is garbage too.
    let mut data = fs::read(&path).unwrap();
    data.extend([0u8; 50]);
    fs::write(&path, &data).unwrap();
    assert_eq!(reopen(dir.path()).log_end_offset(), 9);
    assert_eq!(fs::metadata(&path).unwrap().len(), all);
}

#[test]
fn recovery_bad_crc_in_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (path, valid) = crashed_log(dir.path());
    let mut data = fs::read(&path).unwrap();
    let n = data.len();
    data[n - 3] ^= 0xFF;
    fs::write(&path, &data).unwrap();
    assert_recovered(dir.path(), valid);
}

#[test]
fn corrupt_sealed_segment_truncates_and_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 2 * size,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    for _ in 0..6 {
        append(&mut log, &[batch(1)], 0);
    }
    log.close().unwrap();
    // Break the second batch of the middle segment and its index, forcing a validating rebuild.
    let p = dir.path().join("00000000000000000002.log");
    let mut data = fs::read(&p).unwrap();
    let n = data.len();
    data[n - 1] ^= 1;
    fs::write(&p, data).unwrap();
    fs::remove_file(dir.path().join("00000000000000000002.index")).unwrap();
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert!(!dir.path().join("00000000000000000004.log").exists());
    assert_eq!(append(&mut log, &[batch(1)], 0).base_offset, 3);
}

#[test]
fn damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 8_000,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let expected = fill_varied(&mut log, 300);
    let ts_answers: Vec<_> = (0..40)
        .map(|i| log.offset_for_timestamp(900 + 80 * i).unwrap())
        .collect();
    let max_ts = log.max_timestamp().unwrap();
    log.close().unwrap();
    let idx = files(dir.path(), "index");
    let tidx = files(dir.path(), "timeindex");
    assert!(idx.len() >= 4);
    fs::remove_file(&idx[0]).unwrap();
    fs::remove_file(&tidx[0]).unwrap();
    fs::write(&idx[1], vec![0x5Au8; 64]).unwrap();
    fs::write(&tidx[2], vec![0xFFu8; 25]).unwrap();
    fs::write(&idx[3], [0u8; 80]).unwrap(); // preallocated-looking zeros
    let log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    check_all_offsets(&log, &expected);
    for (i, want) in ts_answers.iter().enumerate() {
        assert_eq!(
            &log.offset_for_timestamp(900 + 80 * i as i64).unwrap(),
            want
        );
    }
    assert_eq!(log.max_timestamp().unwrap(), max_ts);
    drop(log);
    for p in idx.iter().take(4) {
        let len = fs::metadata(p).unwrap().len();
        assert!(len > 0 && len % 8 == 0, "{p:?} rebuilt to {len}");
    }
    // Orphan index files are removed.
    fs::write(dir.path().join("00000000000000099999.index"), [1u8; 8]).unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(!dir.path().join("00000000000000099999.index").exists());
    check_all_offsets(&log, &expected);
}

#[test]
fn garbage_after_clean_close_is_still_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = reopen(dir.path());
    append(&mut log, &[batch(2), batch(3)], 0);
    log.close().unwrap();
    assert!(dir.path().join(".clean-shutdown").exists());
    let path = dir.path().join("00000000000000000000.log");
    let valid = fs::metadata(&path).unwrap().len();
    let mut data = fs::read(&path).unwrap();
    data.extend(batch(1)[..40].iter());
    fs::write(&path, &data).unwrap();
    let mut log = reopen(dir.path());
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(fs::metadata(&path).unwrap().len(), valid);
    assert_eq!(append(&mut log, &[batch(1)], 0).base_offset, 5);
}

#[test]
fn reopen_after_clean_close_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 3 * size,
        flush: FlushPolicy::Always,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..8 {
        append(&mut log, &[batch_ts(2, 100 * i, 8)], 0);
    }
    log.advance_log_start_offset(7).unwrap(); // inside the second segment's batch 6..7
    assert_eq!(files(dir.path(), "log").len(), 2);
    let before = log.read(7, usize::MAX, false).unwrap().bytes;
    let max_ts = log.max_timestamp().unwrap();
    log.close().unwrap();

    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (7, 16));
    assert_eq!(log.read(7, usize::MAX, false).unwrap().bytes, before);
    assert_eq!(log.max_timestamp().unwrap(), max_ts);
    assert!(matches!(
        log.read(6, 10, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(append(&mut log, &[batch(1)], 0).base_offset, 16);
    log.flush().unwrap();
}

#[test]
fn empty_log_close_reopen() {
    let dir = tempfile::tempdir().unwrap();
    PartitionLog::open(dir.path(), LogConfig::default())
        .unwrap()
        .close()
        .unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert!(log.read(0, 100, true).unwrap().bytes.is_empty());
    assert_eq!(log.max_timestamp().unwrap(), None);
    assert_eq!(append(&mut log, &[batch(2)], 0).base_offset, 0);
    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.enforce_retention(i64::MAX).unwrap(), 0);
}
