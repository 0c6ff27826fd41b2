//! Tests of log compaction: what stays, what goes, what the rewritten batches look like to a decoder,
//! and what a crash in the middle of a pass leaves.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

use super::tests::files;
use super::*;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A producer's batch: (producer id, epoch, base sequence).
type Producer = Option<(i64, i16, i32)>;

/// One batch of `(key, value)` records (`None`: null), timestamps from `base_ts`.
fn keyed(
    records: &[(Option<&str>, Option<&str>)],
    base_ts: i64,
    compression: Compression,
    producer: Producer,
) -> Vec<u8> {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            // A base sequence of -1 for producers without an id.
            sequence: if seq < 0 {
                i as i32 - 1
            } else {
                seq + i as i32
            },
            ..plain_record(
                i as i64,
                base_ts + i as i64,
                k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            )
        })
        .collect();
    encode_batch(&records, compression).unwrap().to_vec()
}

fn config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

fn append(log: &mut PartitionLog, batch: Vec<u8>) {
    let headers = validate_batches(&batch, u32::MAX).unwrap();
    log.append(BytesMut::from(&batch[..]), &headers, 0, 1_000)
        .unwrap();
}

/// Every record the log serves, as (offset, key, value), decoded by kafka-protocol's decoder.
fn contents(log: &PartitionLog) -> Vec<(i64, Option<String>, Option<String>)> {
    let bytes = log
        .read(log.log_start_offset(), usize::MAX >> 1, true)
        .unwrap()
        .bytes;
    let mut buf = bytes.clone();
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap());
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
        for r in set.records {
            out.push((r.offset, text(&r.key), text(&r.value)));
        }
    }
    out
}

/// One whole pass as the broker runs it.
fn clean(log: &mut PartitionLog, now_ms: i64) -> Option<CleanStats> {
    let plan = log.plan_cleaning(now_ms)?;
    Some(log.finish_cleaning(plan.run().unwrap()).unwrap())
}

fn s(v: &str) -> Option<&str> {
    Some(v)
}

#[test]
fn the_latest_record_of_each_key_stays_at_its_offset_with_every_codec() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), config()).unwrap();
        let first = [(s("k1"), s("a")), (s("k2"), s("a")), (s("k3"), s("a"))];
        append(&mut log, keyed(&first, 1_000, codec, None));
        let second = keyed(&[(s("k1"), s("b"))], 2_000, codec, None);
        append(&mut log, second.clone());
        append(
            &mut log,
            keyed(&[(s("k2"), s("b")), (s("k4"), s("a"))], 3_000, codec, None),
        );
        log.roll().unwrap();
        // The active segment is never cleaned: k1 there does not remove k1 at offset 3.
        append(&mut log, keyed(&[(s("k1"), s("c"))], 4_000, codec, None));

        let stats = clean(&mut log, 10_000).expect("a pass is due");
        assert_eq!((stats.segments, stats.records_removed), (1, 2), "{codec:?}");
        assert!(stats.bytes_after < stats.bytes_before);
        let expected = vec![
            (2, Some("k3".into()), Some("a".into())),
            (3, Some("k1".into()), Some("b".into())),
            (4, Some("k2".into()), Some("b".into())),
            (5, Some("k4".into()), Some("a".into())),
            (6, Some("k1".into()), Some("c".into())),
        ];
        assert_eq!(contents(&log), expected, "{codec:?}");
        // Offsets 0 and 1 are gone; a fetch from them starts at the rebuilt batch, whose last offset
        // is still 2, and a batch whose records all stayed is byte for byte the one appended.
        let from_zero = log.read(0, usize::MAX >> 1, true).unwrap().bytes;
        let headers = batches_of(&from_zero);
        assert_eq!(
            (
                headers[0].base_offset,
                headers[0].last_offset(),
                headers[0].records_count
            ),
            (0, 2, 1)
        );
        let at_three = log.read(3, second.len(), true).unwrap().bytes;
        assert_eq!(
            &at_three[12..],
            &second[12..],
            "{codec:?}: kept batch unchanged"
        );
        assert_eq!(log.log_end_offset(), 7);

        // The rewritten segment survives a restart without a clean close (full recovery scan).
        drop(log);
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        assert_eq!(contents(&log), expected, "{codec:?} after reopening");
    }
}

/// The headers of the batches in fetched bytes, each checked as a stored batch (CRC included).
fn batches_of(mut bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = BatchHeader::parse(bytes).unwrap();
        let (batch, rest) = bytes.split_at(h.total_size());
        out.push(batch::validate_stored(batch).unwrap());
        bytes = rest;
    }
    out
}

#[test]
fn tombstones_stay_for_delete_retention_ms_and_keyless_records_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let batch = [(s("k1"), s("a")), (None, s("no key")), (s("k2"), s("a"))];
    append(&mut log, keyed(&batch, 1_000, Compression::None, None));
    append(
        &mut log,
        keyed(&[(s("k1"), None)], 2_000, Compression::None, None),
    );
    log.roll().unwrap();
    append(
        &mut log,
        keyed(&[(s("k3"), s("a"))], 3_000, Compression::None, None),
    );

    let now = crate::clock::now_ms();
    clean(&mut log, now).unwrap();
    assert_eq!(
        contents(&log),
        vec![
            (2, Some("k2".into()), Some("a".into())),
            (3, Some("k1".into()), None),
            (4, Some("k3".into()), Some("a".into())),
        ],
        "the tombstone replaces k1 and stays; the keyless record is dropped"
    );

    // Once delete.retention.ms has passed since the segment was last written, the tombstone goes. The
    // next pass needs dirty bytes: a roll seals another segment.
    log.set_config(LogConfig {
        delete_retention_ms: 1_000,
        ..config()
    });
    log.roll().unwrap();
    append(
        &mut log,
        keyed(&[(s("k4"), s("a"))], 5_000, Compression::None, None),
    );
    clean(&mut log, now + 60_000).unwrap();
    assert_eq!(
        contents(&log),
        vec![
            (2, Some("k2".into()), Some("a".into())),
            (4, Some("k3".into()), Some("a".into())),
            (5, Some("k4".into()), Some("a".into())),
        ]
    );
}

#[test]
fn a_producers_last_batch_stays_empty_and_keeps_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    // Recent timestamps: rebuilding producer state drops producers idle for producer.id.expiration.ms.
    let now = crate::clock::now_ms();
    let idempotent = |seq, key| {
        keyed(
            &[(s(key), s("p"))],
            now,
            Compression::Lz4,
            Some((7, 0, seq)),
        )
    };
    append(&mut log, idempotent(0, "k1"));
    append(&mut log, idempotent(1, "k2"));
    append(
        &mut log,
        keyed(
            &[(s("k1"), s("x")), (s("k2"), s("x"))],
            now,
            Compression::None,
            None,
        ),
    );
    log.roll().unwrap();
    clean(&mut log, now + 10_000).unwrap();

    // Producer 7's first batch is gone; its last one (offset 1) is kept without records.
    let bytes = log.read(0, usize::MAX >> 1, true).unwrap().bytes;
    let headers = batches_of(&bytes);
    let summary: Vec<(i64, i32, i64)> = headers
        .iter()
        .map(|h| (h.base_offset, h.records_count, h.producer_id))
        .collect();
    assert_eq!(summary, vec![(1, 0, 7), (2, 2, -1)]);
    assert_eq!(headers[0].base_sequence, 1);

    // Rebuilt from the log alone (no snapshots), the producer state still knows sequence 1.
    drop(log);
    for snapshot in files(dir.path(), "snapshot") {
        fs::remove_file(snapshot).unwrap();
    }
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    let entry = log.producer_state().get(7).expect("producer 7 rebuilt");
    assert_eq!(entry.batches.back().map(|b| b.last_seq), Some(1));
}

#[test]
fn passes_wait_for_dirty_bytes_and_the_compaction_lag() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(
        dir.path(),
        LogConfig {
            min_compaction_lag_ms: DAY_MS,
            ..config()
        },
    )
    .unwrap();
    append(
        &mut log,
        keyed(&[(s("k"), s("a"))], 1_000, Compression::None, None),
    );
    append(
        &mut log,
        keyed(&[(s("k"), s("b"))], 1_000, Compression::None, None),
    );
    log.roll().unwrap();
    assert!(
        log.plan_cleaning(1_000 + DAY_MS / 2).is_none(),
        "younger than the lag"
    );
    assert!(log.plan_cleaning(2_000 + DAY_MS).is_some());

    log.set_config(config());
    assert_eq!(clean(&mut log, 10_000).unwrap().records_removed, 1);
    assert!(
        log.plan_cleaning(10_000).is_none(),
        "nothing dirty after a pass"
    );
    log.set_config(LogConfig {
        cleanup_compact: false,
        cleanup_delete: true,
        ..config()
    });
    append(
        &mut log,
        keyed(&[(s("k"), s("c"))], 1_000, Compression::None, None),
    );
    log.roll().unwrap();
    assert!(log.plan_cleaning(10_000).is_none(), "cleanup.policy=delete");
}

#[test]
fn compact_only_logs_keep_old_segments_that_retention_would_delete() {
    let dir = tempfile::tempdir().unwrap();
    let old = LogConfig {
        retention_ms: 1,
        retention_bytes: 1,
        ..config()
    };
    let mut log = PartitionLog::open(dir.path(), old.clone()).unwrap();
    append(
        &mut log,
        keyed(&[(s("k"), s("a"))], 1_000, Compression::None, None),
    );
    log.roll().unwrap();
    append(
        &mut log,
        keyed(&[(s("j"), s("a"))], 1_000, Compression::None, None),
    );
    assert_eq!(log.enforce_retention(10 * DAY_MS).unwrap(), 0);
    log.set_config(LogConfig {
        cleanup_delete: true,
        ..old
    });
    assert_eq!(
        log.enforce_retention(10 * DAY_MS).unwrap(),
        1,
        "compact,delete"
    );
}

/// k=a and k=b in a sealed segment, j=a in the active one: a pass removes k=a (offset 0).
fn superseded(dir: &Path) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config()).unwrap();
    append(
        &mut log,
        keyed(&[(s("k"), s("a"))], 1_000, Compression::None, None),
    );
    append(
        &mut log,
        keyed(&[(s("k"), s("b"))], 1_000, Compression::None, None),
    );
    log.roll().unwrap();
    append(
        &mut log,
        keyed(&[(s("j"), s("a"))], 1_000, Compression::None, None),
    );
    log
}

/// A pass whose swap files were written but not swapped in when the broker died.
fn interrupted(dir: &Path) {
    let log = superseded(dir);
    let plan = log.plan_cleaning(10_000).unwrap();
    let _unfinished = plan.run().unwrap();
    assert_eq!(files(dir, "swap").len(), 1);
    drop(log);
}

#[test]
fn opening_a_log_finishes_an_interrupted_swap() {
    let dir = tempfile::tempdir().unwrap();
    interrupted(dir.path());
    fs::write(dir.path().join("00000000000000000002.cleaned"), b"half").unwrap();
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(files(dir.path(), "swap").is_empty());
    assert!(files(dir.path(), "cleaned").is_empty());
    assert_eq!(
        contents(&log),
        vec![
            (1, Some("k".into()), Some("b".into())),
            (2, Some("j".into()), Some("a".into())),
        ]
    );
}

#[test]
fn a_swap_whose_segment_is_gone_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    interrupted(dir.path());
    for ext in ["log", "index", "timeindex"] {
        fs::remove_file(dir.path().join(format!("00000000000000000000.{ext}"))).unwrap();
    }
    let log = PartitionLog::open(dir.path(), config()).unwrap();
    assert!(files(dir.path(), "swap").is_empty());
    assert_eq!(
        contents(&log),
        vec![(2, Some("j".into()), Some("a".into()))]
    );
}

#[test]
fn a_segment_deleted_during_the_pass_is_not_swapped_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = superseded(dir.path());
    let cleaned = log.plan_cleaning(10_000).unwrap().run().unwrap();
    log.advance_log_start_offset(2).unwrap();
    let stats = log.finish_cleaning(cleaned).unwrap();
    assert_eq!(stats.segments, 0);
    assert!(files(dir.path(), "swap").is_empty());
    assert_eq!(
        contents(&log),
        vec![(2, Some("j".into()), Some("a".into()))]
    );
}

#[test]
fn segments_left_empty_are_deleted_but_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    for value in ["a", "b", "c"] {
        append(
            &mut log,
            keyed(&[(s("k"), s(value))], 1_000, Compression::None, None),
        );
        log.roll().unwrap();
    }
    append(
        &mut log,
        keyed(&[(s("j"), s("a"))], 1_000, Compression::None, None),
    );
    let stats = clean(&mut log, 10_000).unwrap();
    assert_eq!((stats.segments, stats.records_removed), (2, 2));
    let logs: Vec<String> = files(dir.path(), "log")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        logs,
        [0, 2, 3].map(|b| format!("{b:020}.log")),
        "segment 1 went, the empty first one stayed"
    );
    assert_eq!(log.log_start_offset(), 0);
    let expected = vec![
        (2, Some("k".into()), Some("c".into())),
        (3, Some("j".into()), Some("a".into())),
    ];
    assert_eq!(contents(&log), expected);
    assert_eq!(
        log.read(1, 1 << 20, true).unwrap().bytes,
        log.read(2, 1 << 20, true).unwrap().bytes
    );
    drop(log);
    assert_eq!(
        contents(&PartitionLog::open(dir.path(), config()).unwrap()),
        expected
    );
}

#[test]
fn a_pass_stops_where_the_key_budget_runs_out_and_the_next_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let batch = |ks: &[String], value| {
        let records: Vec<(Option<&str>, Option<&str>)> =
            ks.iter().map(|k| (Some(k.as_str()), Some(value))).collect();
        keyed(&records, 1_000, Compression::None, None)
    };
    append(&mut log, batch(&keys[..5], "a"));
    log.roll().unwrap();
    append(&mut log, batch(&keys[..5], "b"));
    log.roll().unwrap();
    append(&mut log, batch(&keys[5..], "a"));
    log.roll().unwrap();
    append(
        &mut log,
        keyed(&[(s("x"), s("a"))], 1_000, Compression::None, None),
    );

    // Seven keys fit: the first two segments are mapped, the third only in part.
    let plan = log.plan_cleaning(10_000).unwrap().with_key_budget(7, 2);
    let stats = log.finish_cleaning(plan.run().unwrap()).unwrap();
    assert_eq!(stats.records_removed, 5);
    let values: Vec<(i64, String)> = contents(&log)
        .into_iter()
        .map(|(o, _, v)| (o, v.unwrap()))
        .collect();
    assert_eq!(values.len(), 11);
    assert!(values[..5].iter().all(|(_, v)| v == "b"));

    // The next pass starts at the third segment.
    let plan = log
        .plan_cleaning(10_000)
        .expect("the third segment is still dirty");
    let stats = log.finish_cleaning(plan.run().unwrap()).unwrap();
    assert_eq!(stats.records_removed, 0);
    assert!(log.plan_cleaning(10_000).is_none());

    // A dirty segment whose keys alone exceed the budget stays uncleaned (x, k0, k1 fit). The keys
    // that fit still remove older records of theirs before it: k0 and k1 of the second segment.
    append(&mut log, batch(&keys[..5], "c"));
    log.roll().unwrap();
    append(
        &mut log,
        keyed(&[(s("y"), s("a"))], 1_000, Compression::None, None),
    );
    let plan = log.plan_cleaning(10_000).unwrap().with_key_budget(3, 2);
    let stats = log.finish_cleaning(plan.run().unwrap()).unwrap();
    assert_eq!(stats.records_removed, 2);
    assert!(log.plan_cleaning(10_000).is_some(), "still dirty");
    assert_eq!(contents(&log).len(), 11 + 6 - 2);
}

#[test]
fn aborted_records_go_and_never_supersede_committed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), config()).unwrap();
    append(
        &mut log,
        keyed(&[(s("k"), s("committed"))], 1_000, Compression::None, None),
    );
    let mut aborted = keyed(
        &[(s("k"), s("aborted")), (s("j"), s("aborted"))],
        1_000,
        Compression::None,
        Some((7, 0, 0)),
    );
    aborted[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    super::tests::fix_crc(&mut aborted);
    append(&mut log, aborted);
    log.append_marker(7, 0, false, 0, 0, 1_000).unwrap();
    append(
        &mut log,
        keyed(&[(s("m"), s("later"))], 1_000, Compression::None, None),
    );
    log.roll().unwrap();
    log.note_high_watermark(log.log_end_offset());
    assert_eq!(log.aborted_transactions(0, 10), vec![(7, 1)]);
    clean(&mut log, 10 * DAY_MS).unwrap();
    let offsets: Vec<i64> = contents(&log).iter().map(|(o, ..)| *o).collect();
    // The committed k stays; the aborted k and j go; the marker (3) and m stay.
    assert_eq!(offsets, vec![0, 3, 4]);
    assert_eq!(contents(&log)[0].2.as_deref(), Some("committed"));
    assert_eq!(log.aborted_transactions(0, 10), vec![(7, 1)]);
}
