//! The leader-epoch cache kept with the log (appends, reopen, retention, DeleteRecords, a lost checkpoint) and
//! truncation of the log's tail.

use super::*;
use crate::log::leader_epoch::CHECKPOINT_FILE;

fn append_at(log: &mut PartitionLog, batches: &[Vec<u8>], epoch: i32) -> AppendInfo {
    let blob: Vec<u8> = batches.concat();
    let headers = validate_batches(&blob, u32::MAX).unwrap();
    log.append(BytesMut::from(&blob[..]), &headers, epoch, 0)
        .unwrap()
}

/// An idempotent producer's batch of `n` records starting at sequence `seq`.
fn idempotent(n: i32, pid: i64, seq: i32) -> Vec<u8> {
    // Timestamps of now: older producer state would expire when the truncation reloads it.
    let mut b = batch_ts(n, crate::clock::now_ms(), 10);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    fix_crc(&mut b);
    b
}

fn epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.leader_epochs()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

#[test]
fn epochs_are_recorded_at_append_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert!(
        !dir.path().join(CHECKPOINT_FILE).exists(),
        "an empty log writes no checkpoint"
    );
    append_at(&mut log, &[batch(3)], 0);
    append_at(&mut log, &[batch(2)], 0);
    append_at(&mut log, &[batch(4)], 2);
    assert_eq!(epochs(&log), vec![(0, 0), (2, 5)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, 5));
    assert_eq!(log.end_offset_for_epoch(1), (0, 5));
    assert_eq!(log.end_offset_for_epoch(2), (2, 9));
    assert_eq!(log.end_offset_for_epoch(3), (-1, -1));
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (2, 5)]);
    drop(log); // unclean: no marker
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(epochs(&log), vec![(0, 0), (2, 5)]);
}

#[test]
fn lost_checkpoint_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 2 * size,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    for epoch in [1, 1, 3, 3, 3, 4] {
        append_at(&mut log, &[batch(1)], epoch);
    }
    assert_eq!(epochs(&log), vec![(1, 0), (3, 2), (4, 5)]);
    log.close().unwrap();
    fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(epochs(&log), vec![(1, 0), (3, 2), (4, 5)]);
    assert!(
        dir.path().join(CHECKPOINT_FILE).exists(),
        "rebuilt cache is persisted"
    );
    drop(log);
    // A checkpoint that is older than the log (a crash after the append, before the checkpoint): the
    // last segment's batches are scanned on an unclean open.
    let _ = fs::remove_file(dir.path().join(".clean-shutdown"));
    fs::write(dir.path().join(CHECKPOINT_FILE), "0\n2\n1 0\n3 2\n").unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(epochs(&log), vec![(1, 0), (3, 2), (4, 5)]);
}

#[test]
fn epochs_follow_retention_and_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 2 * size,
        retention_bytes: (2 * size) as i64,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    for epoch in [0, 1, 1, 2, 2] {
        append_at(&mut log, &[batch(1)], epoch);
    }
    assert_eq!(epochs(&log), vec![(0, 0), (1, 1), (2, 3)]);
    log.enforce_retention(0).unwrap();
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(epochs(&log), vec![(1, 2), (2, 3)]);
    log.advance_log_start_offset(4).unwrap();
    assert_eq!(epochs(&log), vec![(2, 4)]);
    assert_eq!(
        log.end_offset_for_epoch(1),
        (1, 4),
        "below every epoch: the first start"
    );
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(epochs(&log), vec![(2, 4)]);
}

#[test]
fn truncation_removes_the_tail_with_its_epochs_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let size = idempotent(2, 7, 0).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 3 * size,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    // 6 batches of 2 records: offsets 0-1, 2-3 (epoch 0) 4-5, 6-7, 8-9, 10-11 (epoch 5); segments of 3 batches.
    for (i, epoch) in [0, 0, 5, 5, 5, 5].into_iter().enumerate() {
        append_at(&mut log, &[idempotent(2, 7, 2 * i as i32)], epoch);
    }
    assert_eq!(files(dir.path(), "log").len(), 2);
    assert_eq!(log.log_end_offset(), 12);
    // Offset 5 sits inside the batch 4-5: that batch goes whole, and so does the second segment.
    assert_eq!(log.truncate_to(5).unwrap(), 4);
    assert_eq!(files(dir.path(), "log").len(), 1);
    assert_eq!(epochs(&log), vec![(0, 0)]);
    assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
    let entry = log.producer_state().get(7).unwrap();
    assert_eq!(
        entry.last_seq(),
        3,
        "the producer's state is that of offset 3"
    );
    // The next append continues at 4, in the cut-back (and again writable) segment, and the producer's
    // next sequence is 4.
    let a = append_at(&mut log, &[idempotent(2, 7, 4)], 6);
    assert_eq!((a.base_offset, a.last_offset), (4, 5));
    assert_eq!(epochs(&log), vec![(0, 0), (6, 4)]);
    let all = batches_in(&log.read(0, usize::MAX, false).unwrap().bytes);
    let spans: Vec<(i64, i64, i32)> = all
        .iter()
        .map(|h| (h.base_offset, h.last_offset(), h.partition_leader_epoch))
        .collect();
    assert_eq!(spans, vec![(0, 1, 0), (2, 3, 0), (4, 5, 6)]);
    drop(log); // crash
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(epochs(&log), vec![(0, 0), (6, 4)]);
    assert_eq!(log.producer_state().get(7).unwrap().last_seq(), 5);
    // Below the log start: the log restarts empty there.
    log.advance_log_start_offset(2).unwrap();
    assert_eq!(log.truncate_to(1).unwrap(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1, 1));
    assert!(epochs(&log).is_empty());
    assert_eq!(
        log.truncate_to(10).unwrap(),
        1,
        "beyond the end: nothing to do"
    );
}
