//! Unit tests of the log store (real v2 batches built by hand, temp directories).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;

use super::*;

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A valid uncompressed v2 batch of `n` records (timestamps base_ts .. base_ts+n-1), each with `value_len` bytes.
pub(super) fn batch_ts(n: i32, base_ts: i64, value_len: usize) -> Vec<u8> {
    let mut records = Vec::new();
    for i in 0..n {
        let mut body = vec![0u8]; // attributes
        varint(&mut body, i as i64); // timestamp delta
        varint(&mut body, i as i64); // offset delta
        varint(&mut body, -1); // null key
        varint(&mut body, value_len as i64);
        body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, value_len));
        varint(&mut body, 0); // headers
        varint(&mut records, body.len() as i64);
        records.extend(body);
    }
    let mut b = Vec::with_capacity(61 + records.len());
    b.extend(0i64.to_be_bytes());
    b.extend((49 + records.len() as i32).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.push(2);
    b.extend([0u8; 4]);
    b.extend(0i16.to_be_bytes());
    b.extend((n - 1).to_be_bytes());
    b.extend(base_ts.to_be_bytes());
    b.extend((base_ts + n as i64 - 1).to_be_bytes());
    b.extend((-1i64).to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(n.to_be_bytes());
    b.extend(records);
    fix_crc(&mut b);
    b
}

pub(super) fn batch(n: i32) -> Vec<u8> {
    batch_ts(n, 1_000, 10)
}

pub(super) fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn append(log: &mut PartitionLog, batches: &[Vec<u8>], now: i64) -> AppendInfo {
    let blob: Vec<u8> = batches.concat();
    let headers = validate_batches(&blob, u32::MAX).unwrap();
    log.append(BytesMut::from(&blob[..]), &headers, 7, now)
        .unwrap()
}

/// Headers of the whole batches in a fetch response (validating each, CRC included).
fn batches_in(bytes: &[u8]) -> Vec<BatchHeader> {
    if bytes.is_empty() {
        return Vec::new();
    }
    validate_batches(bytes, u32::MAX).unwrap()
}

fn small_config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

pub(super) fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

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

/// Many batches of varying sizes with a small index interval; every offset must find its batch.
fn check_all_offsets(log: &PartitionLog, expected: &[(i64, i64)]) {
    for &(base, last) in expected {
        for o in base..=last {
            let hs = batches_in(&log.read(o, 1, true).unwrap().bytes);
            assert_eq!(hs.len(), 1, "offset {o}");
            assert_eq!(
                (hs[0].base_offset, hs[0].last_offset()),
                (base, last),
                "offset {o}"
            );
        }
    }
}

fn fill_varied(log: &mut PartitionLog, batches: usize) -> Vec<(i64, i64)> {
    let mut expected = Vec::new();
    for i in 0..batches {
        let n = (i % 4) as i32 + 1;
        let a = append(log, &[batch_ts(n, 1_000 + 10 * i as i64, 5 + i % 30)], 0);
        expected.push((a.base_offset, a.last_offset));
    }
    expected
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
    assert!(!dir.path().join(".clean-shutdown").exists());
    check_all_offsets(&log, &expected);
    // Keep appending into the reopened active segment, then crash and recover.
    let mut expected = expected;
    expected.extend(fill_varied(&mut log, 150));
    check_all_offsets(&log, &expected);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
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
fn validate_batches_rejects_bad_input() {
    let max = 1_000_000;
    let good = batch(3);
    assert_eq!(validate_batches(&good, max).unwrap().len(), 1);
    assert_eq!(
        validate_batches(&[good.clone(), batch(1)].concat(), max)
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        validate_batches(&[], max),
        Err(BatchError::InvalidRecord(_))
    ));

    let mut bad = good.clone();
    bad[70] ^= 1;
    assert!(matches!(
        validate_batches(&bad, max),
        Err(BatchError::Corrupt(_))
    ));

    let mut bad = good.clone();
    bad[16] = 1;
    assert!(matches!(
        validate_batches(&bad, max),
        Err(BatchError::UnsupportedMagic(1))
    ));

    assert!(matches!(
        validate_batches(&good[..good.len() - 1], max),
        Err(BatchError::Corrupt(_))
    ));
    assert!(matches!(
        validate_batches(&[good.clone(), good[..30].to_vec()].concat(), max),
        Err(BatchError::Corrupt(_))
    ));
    assert!(matches!(
        validate_batches(&good[..5], max),
        Err(BatchError::Corrupt(_))
    ));

    let mut bad = good.clone();
    bad[57..61].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut bad);
    assert!(matches!(
        validate_batches(&bad, max),
        Err(BatchError::InvalidRecord(_))
    ));

    let mut bad = good.clone();
    bad[57..61].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut bad);
    assert!(matches!(
        validate_batches(&bad, max),
        Err(BatchError::InvalidRecord(_))
    ));

    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&(-20i32).to_be_bytes());
    assert!(matches!(
        validate_batches(&bad, max),
        Err(BatchError::Corrupt(_))
    ));

    let big = batch_ts(10, 0, 200);
    assert!(matches!(
        validate_batches(&big, 1000),
        Err(BatchError::TooLarge { size, max: 1000 }) if size == big.len()
    ));

    let h = BatchHeader::parse(&good).unwrap();
    assert_eq!(
        (h.total_size(), h.last_offset(), h.records_count),
        (good.len(), 2, 3)
    );
    assert_eq!(
        (
            h.compression(),
            h.timestamp_type(),
            h.is_transactional(),
            h.is_control()
        ),
        (0, TimestampType::CreateTime, false, false)
    );
    assert!(BatchHeader::parse(&good[..60]).is_err());
}

#[test]
fn append_rejects_mismatched_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let b = batch(2);
    let headers = validate_batches(&b, u32::MAX).unwrap();
    assert!(log
        .append(BytesMut::from(&b[..b.len() - 1]), &headers, 0, 0)
        .is_err());
    assert!(log.append(BytesMut::from(&b[..]), &[], 0, 0).is_err());
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn log_append_time_rewrites_timestamp_with_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), cfg).unwrap();
    let info = append(&mut log, &[batch_ts(3, 5, 10), batch_ts(1, 6, 10)], 777_000);
    assert_eq!(info.log_append_time, 777_000);
    let f = log.read(0, 1 << 20, false).unwrap();
    let hs = batches_in(&f.bytes); // validates CRCs
    assert_eq!(hs.len(), 2);
    for h in &hs {
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 777_000);
        assert_eq!(h.base_timestamp, if h.base_offset == 0 { 5 } else { 6 });
    }
    assert_eq!(log.max_timestamp().unwrap(), Some((777_000, 0)));
    assert_eq!(
        log.offset_for_timestamp(700_000).unwrap(),
        Some((0, 777_000))
    );
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

#[test]
fn config_overrides_and_flush_policy() {
    let base = LogConfig::default();
    assert_eq!(base.segment_bytes, 1 << 30);
    let c = base
        .with_overrides([
            ("segment.bytes", "1048576"),
            ("retention.ms", "-1"),
            ("retention.bytes", "5000"),
            ("message.timestamp.type", "LogAppendTime"),
            ("max.message.bytes", "2000"),
            ("flush.ms", "250"),
            ("cleanup.policy", "delete"),
        ])
        .unwrap();
    assert_eq!(
        (
            c.segment_bytes,
            c.retention_ms,
            c.retention_bytes,
            c.max_message_bytes
        ),
        (1 << 20, -1, 5000, 2000)
    );
    assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(c.flush, FlushPolicy::Interval(Duration::from_millis(250)));
    for (k, v) in [
        ("segment.bytes", "x"),
        ("segment.ms", "0"),
        ("message.timestamp.type", "Foo"),
        ("retention.ms", "-2"),
    ] {
        assert!(
            matches!(base.with_overrides([(k, v)]), Err(LogError::InvalidConfig(key)) if key == k)
        );
    }
    assert_eq!("os".parse::<FlushPolicy>().unwrap(), FlushPolicy::Os);
    assert_eq!(
        "always".parse::<FlushPolicy>().unwrap(),
        FlushPolicy::Always
    );
    assert_eq!(
        "interval:1500".parse::<FlushPolicy>().unwrap(),
        FlushPolicy::Interval(Duration::from_millis(1500))
    );
    assert!("interval:".parse::<FlushPolicy>().is_err());
    assert!("sometimes".parse::<FlushPolicy>().is_err());
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

#[test]
fn uncompressed_batch_must_hold_the_records_its_header_counts() {
    let max = 1_000_000;
    let good = batch(3);
    // Header says 2 records (count and last offset delta agree, CRC right), the batch holds 3.
    let mut lying = good.clone();
    lying[23..27].copy_from_slice(&1i32.to_be_bytes());
    lying[57..61].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut lying);
    assert!(matches!(
        validate_batches(&lying, max),
        Err(BatchError::InvalidRecord(_))
    ));
    // Header says 4: one record is missing.
    let mut short = good.clone();
    short[23..27].copy_from_slice(&3i32.to_be_bytes());
    short[57..61].copy_from_slice(&4i32.to_be_bytes());
    fix_crc(&mut short);
    assert!(matches!(
        validate_batches(&short, max),
        Err(BatchError::InvalidRecord(_))
    ));
    // A record length running past the batch.
    let mut long = good.clone();
    long[61] = 0x7e; // zigzag 63: longer than what is left
    fix_crc(&mut long);
    assert!(validate_batches(&long, max).is_err());
}
