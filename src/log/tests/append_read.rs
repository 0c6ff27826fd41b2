//! Appends and reads: round trips, batches found from any offset inside them, size limits, segment rolls, index lookups, timestamps.

use super::*;

#[test]
fn append_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let a = append(&mut log, &[batch(3), batch(2)], 10);
    assert_eq!(
        (
            a.base_offset,
            a.last_offset,
            a.log_append_time,
            a.log_start_offset
        ),
        (0, 4, -1, 0)
    );
    let b = append(&mut log, &[batch(1)], 11);
    assert_eq!((b.base_offset, b.last_offset), (5, 5));
    assert_eq!(log.log_end_offset(), 6);

    let f = log.read(0, 1 << 20, false).unwrap();
    assert_eq!((f.log_start_offset, f.log_end_offset), (0, 6));
    let hs = batches_in(&f.bytes);
    let bases: Vec<i64> = hs.iter().map(|h| h.base_offset).collect();
    assert_eq!(bases, vec![0, 3, 5]);
    assert!(hs.iter().all(|h| h.partition_leader_epoch == 7));
    // Record bytes are exactly the client's.
    let orig = batch(3);
    assert_eq!(&f.bytes[16..orig.len()], &orig[16..]);
    assert!(log.read(6, 100, true).unwrap().bytes.is_empty());
}

#[test]
fn read_inside_batch_returns_containing_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, &[batch(5), batch(5)], 0);
    let hs = batches_in(&log.read(7, 1 << 20, false).unwrap().bytes);
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0].base_offset, 5);
    let hs = batches_in(&log.read(4, 1 << 20, false).unwrap().bytes);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 5]
    );
}

#[test]
fn max_bytes_and_min_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let size = batch(2).len();
    for _ in 0..4 {
        append(&mut log, &[batch(2)], 0);
    }
    assert_eq!(
        batches_in(&log.read(0, 2 * size + 10, false).unwrap().bytes).len(),
        2
    );
    assert_eq!(log.read(0, 2 * size, false).unwrap().bytes.len(), 2 * size);
    assert!(log.read(0, size - 1, false).unwrap().bytes.is_empty());
    assert_eq!(log.read(0, size - 1, true).unwrap().bytes.len(), size);
    assert_eq!(log.read(3, 0, true).unwrap().bytes.len(), size);
    assert!(log.read(3, 0, false).unwrap().bytes.is_empty());
    // Partial budget after a whole batch: only whole batches come back.
    assert_eq!(
        log.read(2, size + size / 2, true).unwrap().bytes.len(),
        size
    );
}

#[test]
fn offset_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append(&mut log, &[batch(4)], 0);
    assert!(matches!(
        log.read(5, 100, true),
        Err(LogError::OffsetOutOfRange {
            offset: 5,
            start: 0,
            end: 4
        })
    ));
    assert!(matches!(
        log.read(-1, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(4, 100, true).unwrap().bytes.is_empty());
    log.advance_log_start_offset(2).unwrap();
    assert!(matches!(
        log.read(1, 100, true),
        Err(LogError::OffsetOutOfRange { start: 2, .. })
    ));
    // Offset 2 is inside the first batch: the whole batch is returned.
    assert_eq!(
        batches_in(&log.read(2, 1000, true).unwrap().bytes)[0].base_offset,
        0
    );
    assert!(matches!(
        log.advance_log_start_offset(5),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn roll_on_segment_bytes_and_read_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2).len() as u64;
    let cfg = LogConfig {
        segment_bytes: 3 * size,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for i in 0..10 {
        assert_eq!(append(&mut log, &[batch(2)], 0).base_offset, 2 * i);
    }
    let logs = files(dir.path(), "log");
    assert_eq!(logs.len(), 4);
    assert!(logs[1].ends_with("00000000000000000006.log"));
    assert!(dir.path().join("00000000000000000006.index").exists());
    assert!(dir.path().join("00000000000000000006.timeindex").exists());
    let all = log.read(0, usize::MAX, false).unwrap();
    let bases: Vec<i64> = batches_in(&all.bytes)
        .iter()
        .map(|h| h.base_offset)
        .collect();
    assert_eq!(bases, (0..10).map(|i| 2 * i).collect::<Vec<_>>());
    // A read starting in the middle of a segment crossing into the next one.
    let hs = batches_in(&log.read(5, 3 * size as usize, false).unwrap().bytes);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![4, 6, 8]
    );
}

#[test]
fn roll_on_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    append(&mut log, &[batch(1)], 10_000);
    append(&mut log, &[batch(1)], 10_500);
    append(&mut log, &[batch(1)], 11_000);
    assert_eq!(files(dir.path(), "log").len(), 1);
    append(&mut log, &[batch(1)], 11_001);
    assert_eq!(files(dir.path(), "log").len(), 2);
    assert!(dir.path().join("00000000000000000003.log").exists());
    append(&mut log, &[batch(1)], 11_500);
    assert_eq!(files(dir.path(), "log").len(), 2);
}

#[test]
fn roll_when_index_full() {
    let dir = tempfile::tempdir().unwrap();
    // Index room for 2 offset entries (and 1 time entry); every batch after the first gets indexed.
    let cfg = LogConfig {
        index_interval_bytes: 0,
        segment_index_bytes: 16,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    for i in 0..6 {
        append(&mut log, &[batch_ts(1, 1000 + i, 5)], 0);
    }
    assert!(files(dir.path(), "log").len() >= 2);
    for o in 0..6 {
        assert_eq!(
            batches_in(&log.read(o, 1, true).unwrap().bytes)[0].base_offset,
            o
        );
    }
}

#[test]
fn index_lookups_across_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 10_000,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    let expected = fill_varied(&mut log, 400);
    assert!(files(dir.path(), "log").len() > 3);
    check_all_offsets(&log, &expected);
    log.close().unwrap();
    // Sealed indexes were trimmed to their entries and are non-empty.
    for idx in files(dir.path(), "index") {
        let len = fs::metadata(&idx).unwrap().len();
        assert!(len > 0 && len % 8 == 0 && len < 10_000, "{idx:?} {len}");
    }
    let mut log = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    // The marker stays while nothing changes the last segment, and goes with the first append.
    assert!(dir.path().join(".clean-shutdown").exists());
    check_all_offsets(&log, &expected);
    // Keep appending into the reopened active segment, then crash and recover.
    let mut expected = expected;
    expected.extend(fill_varied(&mut log, 150));
    assert!(!dir.path().join(".clean-shutdown").exists());
    check_all_offsets(&log, &expected);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    check_all_offsets(&log, &expected);
}

#[test]
fn timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.max_timestamp().unwrap(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    // Batches of 2 records stamped (base, base + 1), with bases 100, 50, 300, 200, 500, 400...
    let mut bases = Vec::new();
    for i in 0..20i64 {
        let ts = if i % 2 == 0 {
            100 * i + 100
        } else {
            100 * i - 50
        };
        bases.push((
            append(&mut log, &[batch_ts(2, ts, 20)], 0).base_offset,
            ts + 1,
        ));
    }
    assert!(files(dir.path(), "log").len() > 2);
    // Every record as (offset, timestamp): a batch's two records are stamped base and base + 1.
    let records: Vec<(i64, i64)> = bases
        .iter()
        .flat_map(|(o, max)| [(*o, max - 1), (o + 1, *max)])
        .collect();
    for target in [0, 50, 101, 102, 250, 301, 1234, 1900, 1901, 1902] {
        // Kafka answers with the first record (in offset order) whose timestamp is >= the target.
        let want = records.iter().find(|(_, ts)| *ts >= target).copied();
        assert_eq!(
            log.offset_for_timestamp(target).unwrap(),
            want,
            "ts {target}"
        );
    }
    assert_eq!(log.offset_for_timestamp(1_000_000).unwrap(), None);
    let best = records
        .iter()
        .max_by_key(|(o, t)| (*t, -*o))
        .map(|(o, t)| (*t, *o));
    assert_eq!(log.max_timestamp().unwrap(), best);
    // Below the log start the answer is clamped to it.
    log.advance_log_start_offset(3).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((3, 51)));
}

#[test]
fn reads_below_a_bound_stop_at_the_batch_across_it_in_any_segment() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2).len() as u64;
    // Three two-record batches per segment: offsets 0-5, 6-11, 12-13.
    let config = LogConfig {
        segment_bytes: 3 * size,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config).unwrap();
    for _ in 0..7 {
        append(&mut log, &[batch(2)], 0);
    }
    let bases = |f: FetchSlice| -> Vec<i64> {
        batches_in(&f.bytes).iter().map(|h| h.base_offset).collect()
    };
    assert_eq!(
        bases(log.read_below(0, 1 << 20, true, 4).unwrap()),
        vec![0, 2]
    );
    // A bound inside a batch leaves that batch out; one at a segment's end keeps the segment whole.
    assert_eq!(bases(log.read_below(2, 1 << 20, true, 5).unwrap()), vec![2]);
    assert_eq!(
        bases(log.read_below(0, 1 << 20, true, 6).unwrap()),
        vec![0, 2, 4]
    );
    assert_eq!(
        bases(log.read_below(4, 1 << 20, true, 10).unwrap()),
        vec![4, 6, 8]
    );
    // At the bound: nothing, even with min_one (KIP-74 never reaches past it).
    assert!(log.read_below(8, 1, true, 8).unwrap().bytes.is_empty());
    assert_eq!(bases(log.read_below(6, 1, true, 8).unwrap()), vec![6]);
    assert_eq!(
        bases(log.read_below(10, 1 << 20, true, i64::MAX).unwrap()),
        vec![10, 12]
    );
}
