//! Batch validation, appends of mismatched headers, LogAppendTime stamping, config overrides and flush policies.

use super::*;

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
