//! Producer state wired into the partition log: duplicates, snapshots at roll, rebuild after a crash or a
//! truncation, retention and expiration.

use std::fs;
use std::path::Path;

use bytes::BytesMut;

use super::tests::{batch_ts, files, fix_crc};
use super::*;

/// A batch of `n` records of producer `pid`/`epoch` starting at sequence `seq`, timestamps from `ts`.
fn pbatch_ts(n: i32, pid: i64, epoch: i16, seq: i32, ts: i64) -> Vec<u8> {
    let mut b = batch_ts(n, ts, 10);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    fix_crc(&mut b);
    b
}

/// Batches are timestamped now: `open` expires producers by wall-clock time against batch timestamps.
fn pbatch(n: i32, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    pbatch_ts(n, pid, epoch, seq, t0())
}

/// The wall-clock time the test started at, the timestamp of its batches.
static T0_CELL: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
fn t0() -> i64 {
    *T0_CELL.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

fn try_append(log: &mut PartitionLog, batches: &[Vec<u8>]) -> Result<AppendInfo, LogError> {
    let blob: Vec<u8> = batches.concat();
    let headers = validate_batches(&blob, u32::MAX).unwrap();
    log.append(BytesMut::from(&blob[..]), &headers, 0, 2_000)
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, segment_bytes: u64) -> PartitionLog {
    PartitionLog::open(dir, config(segment_bytes)).unwrap()
}

#[test]
fn retry_is_acknowledged_with_the_original_offset_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 30);
    for (i, seq) in [0, 2, 4].into_iter().enumerate() {
        let info = try_append(&mut log, &[pbatch(2, 11, 0, seq)]).unwrap();
        assert_eq!((info.base_offset, info.duplicate), (2 * i as i64, false));
    }
    let dup = try_append(&mut log, &[pbatch(2, 11, 0, 2)]).unwrap();
    assert_eq!(
        (dup.base_offset, dup.last_offset, dup.duplicate),
        (2, 3, true)
    );
    assert_eq!(log.log_end_offset(), 6);
    assert!(matches!(
        try_append(&mut log, &[pbatch(1, 11, 0, 7)]),
        Err(LogError::Producer(ProducerError::OutOfOrderSequence(_)))
    ));
    assert_eq!(log.log_end_offset(), 6);
    // Non-idempotent batches are untouched by all this.
    assert_eq!(
        try_append(&mut log, &[pbatch(1, -1, -1, -1)])
            .unwrap()
            .base_offset,
        6
    );
}

#[test]
fn state_is_rebuilt_after_a_crash_and_after_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let size = pbatch(2, 1, 0, 0).len() as u64;
    let mut log = open(dir.path(), 3 * size);
    for i in 0..10 {
        try_append(&mut log, &[pbatch(2, 1, 0, 2 * i)]).unwrap();
        try_append(&mut log, &[pbatch(2, 2, 3, 2 * i)]).unwrap();
    }
    let before = log.producer_state().clone();
    // Rolled segments left snapshots named like their segments.
    let snapshots = files(dir.path(), "snapshot");
    assert!(snapshots.len() >= 5, "{snapshots:?}");
    let segments = files(dir.path(), "log");
    for s in &snapshots {
        assert!(segments.contains(&s.with_extension("log")), "{s:?}");
    }
    drop(log); // crash: no clean close

    let mut log = open(dir.path(), 3 * size);
    assert_eq!(log.producer_state(), &before);
    let dup = try_append(&mut log, &[pbatch(2, 2, 3, 18)]).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 38);
    log.close().unwrap();
    assert!(dir.path().join("00000000000000000040.snapshot").exists());

    // Without any snapshot the state is rebuilt from the batch headers of the whole log.
    let log = open(dir.path(), 3 * size);
    assert_eq!(log.producer_state(), &before);
    drop(log);
    for s in files(dir.path(), "snapshot") {
        fs::remove_file(s).unwrap();
    }
    let log = open(dir.path(), 3 * size);
    assert_eq!(log.producer_state(), &before);
    drop(log);

    // A damaged newest snapshot falls back to an older one plus a longer scan.
    let mut log = open(dir.path(), 3 * size);
    try_append(&mut log, &[pbatch(2, 1, 0, 20)]).unwrap();
    let after = log.producer_state().clone();
    drop(log);
    let newest = files(dir.path(), "snapshot").pop();
    if let Some(newest) = newest {
        fs::write(&newest, b"garbage").unwrap();
    }
    let log = open(dir.path(), 3 * size);
    assert_eq!(log.producer_state(), &after);
}

#[test]
fn truncation_in_recovery_drops_the_state_of_cut_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), 1 << 30);
    try_append(&mut log, &[pbatch(2, 5, 0, 0)]).unwrap();
    try_append(&mut log, &[pbatch(2, 5, 0, 2)]).unwrap();
    try_append(&mut log, &[pbatch(3, 5, 0, 4)]).unwrap();
    // A snapshot from a longer past of the log must not survive the truncation either.
    log.producer_state().write_snapshot(dir.path(), 7).unwrap();
    drop(log);
    let seg = dir.path().join("00000000000000000000.log");
    let valid = 2 * pbatch(2, 5, 0, 0).len() as u64;
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(valid + 20).unwrap();
    drop(f);

    let mut log = open(dir.path(), 1 << 30);
    assert_eq!(log.log_end_offset(), 4);
    assert!(files(dir.path(), "snapshot").is_empty());
    let entry = log.producer_state().get(5).unwrap().clone();
    assert_eq!(
        entry.batches.back().map(|b| (b.last_seq, b.last_offset)),
        Some((3, 3))
    );
    // The cut batch is not a duplicate: its retry is written again, at the offset it had.
    let info = try_append(&mut log, &[pbatch(3, 5, 0, 4)]).unwrap();
    assert_eq!((info.base_offset, info.duplicate), (4, false));
}

#[test]
fn state_outlives_deleted_segments_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let size = pbatch(1, 1, 0, 0).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 2 * size,
        retention_ms: 1_000,
        producer_id_expiration_ms: 10_000,
        ..config(0)
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    // Producer 1 writes early, producer 2 keeps writing.
    let t = t0();
    try_append(&mut log, &[pbatch_ts(1, 1, 0, 0, t - 4_000)]).unwrap();
    try_append(&mut log, &[pbatch_ts(1, 1, 0, 1, t - 4_000)]).unwrap();
    for i in 0..4 {
        try_append(&mut log, &[pbatch_ts(1, 2, 0, i, t + i as i64)]).unwrap();
    }
    assert_eq!(log.enforce_retention(t - 2_500).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 2);
    // Producer 1's only batch is gone from the log, not from the state (KIP-360).
    assert!(log.producer_state().get(1).is_some());
    assert!(!dir.path().join("00000000000000000000.snapshot").exists());
    drop(log);
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert!(log.producer_state().get(1).is_some());
    let dup = try_append(&mut log, &[pbatch_ts(1, 1, 0, 1, t - 4_000)]).unwrap();
    assert!(dup.duplicate);
    // Expired 10 s after its last batch's timestamp.
    log.enforce_retention(t + 5_999).unwrap();
    assert!(log.producer_state().get(1).is_some());
    log.enforce_retention(t + 6_000).unwrap();
    assert!(log.producer_state().get(1).is_none());
    assert!(log.producer_state().get(2).is_some());
}
