//! Transactions in the log: open transactions hold the first unstable offset, markers end them, aborts
//! fill the `.txnindex`, and recovery, truncation and followers rebuild the same state.

use super::*;

const SEGMENT_ENTRY: u64 = 34;

/// A transactional batch of `n` records of producer `pid` (epoch `epoch`, first sequence `seq`).
fn txn_batch(n: i32, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let mut b = batch_ts(n, crate::clock::now_ms(), 10);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    fix_crc(&mut b);
    b
}

fn plain(n: i32) -> Vec<u8> {
    batch_ts(n, crate::clock::now_ms(), 10)
}

fn marker(log: &mut PartitionLog, pid: i64, epoch: i16, commit: bool) -> i64 {
    let info = log
        .append_marker(pid, epoch, commit, 0, 7, crate::clock::now_ms())
        .unwrap();
    assert_eq!(info.base_offset, info.last_offset);
    info.base_offset
}

/// First unstable offset once everything written is replicated.
fn unstable(log: &mut PartitionLog) -> Option<i64> {
    let end = log.log_end_offset();
    log.first_unstable_offset(end)
}

fn txn_bytes(dir: &Path) -> Vec<u64> {
    files(dir, "txnindex")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect()
}

/// Two producers' transactions across three segments:
/// 0-2 plain, 3-4 pid 1, 5-6 pid 2, 7 plain, 8 COMMIT pid 1, 9 ABORT pid 2,
/// 10-11 pid 1, 12 ABORT pid 1, 13-15 pid 3 (open), 16 plain.
fn txn_log(dir: &Path, config: LogConfig) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config).unwrap();
    append(&mut log, &[plain(3)], crate::clock::now_ms());
    append(&mut log, &[txn_batch(2, 1, 0, 0)], crate::clock::now_ms());
    append(&mut log, &[txn_batch(2, 2, 0, 0)], crate::clock::now_ms());
    append(&mut log, &[plain(1)], crate::clock::now_ms());
    assert_eq!(marker(&mut log, 1, 0, true), 8);
    assert_eq!(marker(&mut log, 2, 0, false), 9);
    append(&mut log, &[txn_batch(2, 1, 0, 2)], crate::clock::now_ms());
    assert_eq!(marker(&mut log, 1, 0, false), 12);
    append(&mut log, &[txn_batch(3, 3, 0, 0)], crate::clock::now_ms());
    append(&mut log, &[plain(1)], crate::clock::now_ms());
    log
}

fn rolling() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        ..small_config()
    }
}

const ALL_ABORTED: [(i64, i64); 2] = [(2, 5), (1, 10)];

#[test]
fn open_transactions_hold_the_lso_and_markers_move_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, &[plain(3)], crate::clock::now_ms());
    assert_eq!(unstable(&mut log), None);
    append(&mut log, &[txn_batch(2, 1, 0, 0)], crate::clock::now_ms());
    append(&mut log, &[txn_batch(2, 2, 0, 0)], crate::clock::now_ms());
    // More batches of the same transaction do not move its first offset.
    append(&mut log, &[txn_batch(1, 1, 0, 2)], crate::clock::now_ms());
    assert_eq!(unstable(&mut log), Some(3));
    assert_eq!(
        log.producer_state()
            .get(2)
            .and_then(|e| e.current_txn_first_offset),
        Some(5)
    );
    let commit = marker(&mut log, 1, 0, true);
    assert_eq!(commit, 8);
    // The marker is not replicated yet: the transaction still holds the LSO.
    assert_eq!(log.first_unstable_offset(commit), Some(3));
    assert_eq!(log.first_unstable_offset(commit + 1), Some(5));
    let abort = marker(&mut log, 2, 0, false);
    assert_eq!(unstable(&mut log), None);
    assert_eq!(log.aborted_transactions(0, abort + 1), vec![(2, 5)]);
    // Kafka's bounds: marker at or after `from`, first offset below `to`.
    assert!(log.aborted_transactions(0, 5).is_empty());
    assert_eq!(log.aborted_transactions(9, 10), vec![(2, 5)]);
    assert!(log.aborted_transactions(10, 20).is_empty());
    // The markers are Kafka's control batches.
    let hs = batches_in(&log.read(commit, 1 << 20, false).unwrap().bytes);
    assert!(hs.iter().all(|h| h.is_control() && h.is_transactional()));
    let bytes = log.read(abort, 1, true).unwrap().bytes;
    assert_eq!(
        parse_marker(&bytes),
        Some(TxnMarker {
            commit: false,
            coordinator_epoch: 0
        })
    );
    assert_eq!(txn_bytes(dir.path()), vec![SEGMENT_ENTRY]);
}

#[test]
fn aborted_index_lists_exactly_the_aborted_ranges_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = txn_log(dir.path(), rolling());
    assert!(files(dir.path(), "log").len() >= 3, "the log rolled");
    assert_eq!(unstable(&mut log), Some(13));
    assert_eq!(log.aborted_transactions(0, 17), ALL_ABORTED.to_vec());
    assert_eq!(log.aborted_transactions(10, 17), vec![(1, 10)]);
    assert_eq!(log.aborted_transactions(0, 8), vec![(2, 5)]);
    assert!(log.aborted_transactions(13, 17).is_empty());
    // One file per segment, two entries in all.
    let sizes = txn_bytes(dir.path());
    assert_eq!(sizes.len(), files(dir.path(), "log").len());
    assert_eq!(sizes.iter().sum::<u64>(), 2 * SEGMENT_ENTRY);
    // Commit of the open one: nothing unstable, the index unchanged.
    marker(&mut log, 3, 0, true);
    assert_eq!(unstable(&mut log), None);
    assert_eq!(log.aborted_transactions(0, 100), ALL_ABORTED.to_vec());
}

#[test]
fn recovery_rebuilds_lost_indexes_and_torn_tails() {
    let dir = tempfile::tempdir().unwrap();
    let log = txn_log(dir.path(), rolling());
    log.close().unwrap();
    // Clean reopen: the snapshot carries the open transaction.
    let mut log = PartitionLog::open(dir.path(), rolling()).unwrap();
    assert_eq!(unstable(&mut log), Some(13));
    assert_eq!(log.aborted_transactions(0, 100), ALL_ABORTED.to_vec());
    drop(log);
    // Every .txnindex lost: rebuilt from the batches.
    for p in files(dir.path(), "txnindex") {
        fs::remove_file(p).unwrap();
    }
    let mut log = PartitionLog::open(dir.path(), rolling()).unwrap();
    assert_eq!(unstable(&mut log), Some(13));
    assert_eq!(log.aborted_transactions(0, 100), ALL_ABORTED.to_vec());
    assert_eq!(txn_bytes(dir.path()).iter().sum::<u64>(), 2 * SEGMENT_ENTRY);
    // A second abort of producer 3 in the last segment, then a crash with a torn tail.
    marker(&mut log, 3, 0, false);
    let end = log.log_end_offset();
    drop(log);
    let last = files(dir.path(), "log").pop().unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(&last).unwrap();
    std::io::Write::write_all(&mut f, &txn_batch(2, 4, 0, 0)[..40]).unwrap();
    drop(f);
    let mut log = PartitionLog::open(dir.path(), rolling()).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(unstable(&mut log), None);
    let mut all = ALL_ABORTED.to_vec();
    all.push((3, 13));
    assert_eq!(log.aborted_transactions(0, 100), all);
    assert_eq!(txn_bytes(dir.path()).iter().sum::<u64>(), 3 * SEGMENT_ENTRY);
}

#[test]
fn truncation_below_a_marker_reopens_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = txn_log(dir.path(), rolling());
    // Cut at the second ABORT (offset 12): producer 1's second transaction is open again.
    log.truncate_to(12).unwrap();
    assert_eq!(unstable(&mut log), Some(10));
    assert_eq!(log.aborted_transactions(0, 100), vec![(2, 5)]);
    // Cut at the first ABORT (9): producer 2's transaction is open again, nothing aborted.
    log.truncate_to(9).unwrap();
    assert_eq!(unstable(&mut log), Some(5));
    assert!(log.aborted_transactions(0, 100).is_empty());
    assert_eq!(txn_bytes(dir.path()).iter().sum::<u64>(), 0);
    // And it survives a reopen.
    drop(log);
    let mut log = PartitionLog::open(dir.path(), rolling()).unwrap();
    assert_eq!(unstable(&mut log), Some(5));
    assert!(log.aborted_transactions(0, 100).is_empty());
    // Retention of every segment but the last takes their indexes along.
    let end = log.log_end_offset();
    log.advance_log_start_offset(end).unwrap();
    // The open transaction's records are gone: the LSO is the log start, not below it.
    assert_eq!(unstable(&mut log), Some(end));
    assert_eq!(
        files(dir.path(), "txnindex").len(),
        files(dir.path(), "log").len()
    );
}

#[test]
fn a_follower_builds_the_same_lso_and_aborted_list() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = txn_log(ld.path(), rolling());
    let mut follower = PartitionLog::open(fd.path(), rolling()).unwrap();
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        // Small fetches, so the copy goes batch by batch across the leader's segments.
        let fetched = leader.read(offset, 200, true).unwrap().bytes;
        let (headers, len) = validate_fetched(&fetched).unwrap();
        let info = follower
            .append_as_follower(fetched.slice(..len), &headers, 0)
            .unwrap();
        offset = info.last_offset + 1;
    }
    assert_eq!(unstable(&mut follower), unstable(&mut leader));
    assert_eq!(
        follower.aborted_transactions(0, 100),
        leader.aborted_transactions(0, 100)
    );
    // The follower takes over: its marker checks know the coordinator epoch the leader saw.
    assert!(matches!(
        follower.append_marker(1, 0, true, -1, 8, 0),
        Err(LogError::Producer(ProducerError::CoordinatorFenced(_)))
    ));
    assert!(follower.append_marker(3, 0, false, 0, 8, 0).is_ok());
    assert_eq!(unstable(&mut follower), None);
}

#[test]
fn stale_producer_and_coordinator_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, &[txn_batch(1, 5, 2, 0)], crate::clock::now_ms());
    let now = crate::clock::now_ms();
    assert!(matches!(
        log.append_marker(5, 1, true, 0, 7, now),
        Err(LogError::Producer(ProducerError::InvalidProducerEpoch(_)))
    ));
    log.append_marker(5, 2, true, 4, 7, now).unwrap();
    assert!(matches!(
        log.append_marker(5, 2, false, 3, 7, now),
        Err(LogError::Producer(ProducerError::CoordinatorFenced(_)))
    ));
    assert_eq!(log.log_end_offset(), 2);
    // A newer epoch (the coordinator fencing the producer) is accepted and becomes the producer's.
    log.append_marker(5, 3, false, 4, 7, now).unwrap();
    assert_eq!(log.producer_state().get(5).map(|e| e.epoch), Some(3));
    // A marker for a producer with no open transaction is written all the same, as in Kafka.
    let info = log.append_marker(99, 0, false, 0, 7, now).unwrap();
    assert_eq!(info.base_offset, 3);
    assert_eq!(unstable(&mut log), None);
    // Refused markers wrote nothing; the log reads back whole.
    assert_eq!(
        batches_in(&log.read(0, 1 << 20, false).unwrap().bytes).len(),
        4
    );
}

#[test]
fn compaction_stops_at_the_first_unstable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        ..rolling()
    };
    let mut log = txn_log(dir.path(), config);
    let now = crate::clock::now_ms() + 1_000;
    // Segments past offset 13 (the open transaction) are never planned.
    let planned = log.plan_cleaning(now).map(|p| p.last_planned_offset());
    assert!(planned.is_none_or(|end| end <= 13), "{planned:?}");
    marker(&mut log, 3, 0, true);
    append(&mut log, &[plain(1)], crate::clock::now_ms());
    log.roll().unwrap();
    // The marker is replicated: the transaction is stable.
    log.note_high_watermark(log.log_end_offset());
    let planned = log.plan_cleaning(now).map(|p| p.last_planned_offset());
    assert!(planned.is_some_and(|end| end > 13), "{planned:?}");
}
