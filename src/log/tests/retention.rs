//! Retention by time and size, and a log start raised to the end.

use super::*;

#[test]
fn retention_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 2 * size,
        retention_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for i in 0..6 {
        append(&mut log, &[batch_ts(1, 1000 * i, 10)], 0);
    }
    // Segments: [0,1] ts<=1000, [2,3] ts<=3000, [4,5] active.
    assert_eq!(files(dir.path(), "log").len(), 3);
    assert_eq!(log.enforce_retention(2000).unwrap(), 0);
    assert_eq!(log.enforce_retention(2001).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 2);
    assert!(!dir.path().join("00000000000000000000.log").exists());
    assert!(!dir.path().join("00000000000000000000.index").exists());
    assert!(!dir.path().join("00000000000000000000.timeindex").exists());
    // The active segment is never deleted.
    assert_eq!(log.enforce_retention(1_000_000).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(files(dir.path(), "log").len(), 1);
    assert_eq!(
        batches_in(&log.read(4, 1000, false).unwrap().bytes).len(),
        2
    );
    assert!(matches!(
        log.read(3, 10, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 2 * size,
        retention_bytes: (3 * size) as i64,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for _ in 0..7 {
        append(&mut log, &[batch(1)], 0);
    }
    // 4 segments of 2,2,2,1 batches = 7 batches; keeping <= 3 batches' worth means deleting the first two.
    assert_eq!(log.enforce_retention(0).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(files(dir.path(), "log").len(), 2);
    assert_eq!(log.enforce_retention(0).unwrap(), 0);
}

#[test]
fn advance_to_end_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, &[batch(3)], 0);
    log.advance_log_start_offset(3).unwrap();
    assert!(log.read(3, 100, true).unwrap().bytes.is_empty());
    drop(log);
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
    assert_eq!(append(&mut log, &[batch(1)], 0).base_offset, 3);
    // Losing the data behind a checkpointed start offset restarts the log there.
    drop(log);
    for p in files(dir.path(), "log") {
        fs::write(p, b"").unwrap();
    }
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 3));
}
