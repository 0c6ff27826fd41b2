//! Unit tests of the producer checks: sequences, retries, epochs, expiry and truncation.

use super::*;

pub(super) fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 100,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: records - 1,
        base_timestamp: 1_000,
        max_timestamp: 1_000,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        records_count: records,
    }
}

/// Checks and, if accepted, records `h` at `offset` as the log would.
pub(super) fn append(s: &mut ProducerStateManager, mut h: BatchHeader, offset: i64) -> AppendCheck {
    let check = s.check(&[h]).unwrap();
    if check == AppendCheck::Append {
        h.base_offset = offset;
        s.record_header(&h);
    }
    check
}

#[test]
fn in_order_batches_are_accepted_and_gaps_refused() {
    let mut s = ProducerStateManager::new();
    assert_eq!(append(&mut s, header(7, 0, 0, 3), 0), AppendCheck::Append);
    assert_eq!(append(&mut s, header(7, 0, 3, 2), 3), AppendCheck::Append);
    assert!(matches!(
        s.check(&[header(7, 0, 6, 1)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    assert!(matches!(
        s.check(&[header(7, 0, 4, 1)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    assert_eq!(s.get(7).map(|e| e.last_seq()), Some(4));
}

#[test]
fn window_of_five_recognises_retries_and_forgets_older() {
    let mut s = ProducerStateManager::new();
    for i in 0..7 {
        append(&mut s, header(1, 0, i * 2, 2), i as i64 * 2);
    }
    assert_eq!(s.get(1).map(|e| e.batches.len()), Some(MAX_CACHED_BATCHES));
    // Batches 2..=6 are cached; a retry of any of them is a duplicate with its original offsets.
    for i in 2..7 {
        match s.check(&[header(1, 0, i * 2, 2)]).unwrap() {
            AppendCheck::Duplicate(b) => {
                assert_eq!(
                    (b.first_offset, b.last_offset),
                    (i as i64 * 2, i as i64 * 2 + 1)
                )
            }
            other => panic!("batch {i}: {other:?}"),
        }
    }
    // The two oldest fell out of the window: their retry is out of order, as in Kafka.
    assert!(matches!(
        s.check(&[header(1, 0, 0, 2)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    // Same first sequence but a different length is not the same batch.
    assert!(s.check(&[header(1, 0, 12, 1)]).is_err());
}

#[test]
fn several_batches_of_one_request_chain_their_sequences() {
    let mut s = ProducerStateManager::new();
    // An unknown producer may start anywhere, so give producer 3 a history first.
    append(&mut s, header(3, 0, 0, 1), 0);
    assert_eq!(
        s.check(&[header(3, 0, 1, 1), header(3, 0, 2, 2)]).unwrap(),
        AppendCheck::Append
    );
    assert!(matches!(
        s.check(&[header(3, 0, 1, 2), header(3, 0, 5, 1)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    assert!(matches!(
        s.check(&[header(3, 0, 0, 2), header(4, 0, 2, 1)]),
        Err(ProducerError::InvalidRecord(_))
    ));
    assert!(matches!(
        s.check(&[header(3, 0, 0, 2), header(3, 1, 0, 1)]),
        Err(ProducerError::InvalidRecord(_))
    ));
    assert!(matches!(
        s.check(&[header(3, 0, 0, 2), header(-1, -1, -1, 1)]),
        Err(ProducerError::InvalidRecord(_))
    ));
    // A request that retries two batches is a duplicate as a whole; half a retry is refused.
    let mut t = ProducerStateManager::new();
    append(&mut t, header(3, 0, 0, 1), 0);
    append(&mut t, header(3, 0, 1, 2), 1);
    assert!(matches!(
        t.check(&[header(3, 0, 0, 1), header(3, 0, 1, 2)]).unwrap(),
        AppendCheck::Duplicate(b) if (b.first_offset, b.last_offset) == (0, 2)
    ));
    assert!(matches!(
        t.check(&[header(3, 0, 1, 2), header(3, 0, 3, 1)]),
        Err(ProducerError::InvalidRecord(_))
    ));
    assert!(matches!(
        s.check(&[header(3, 0, -5, 1)]),
        Err(ProducerError::InvalidRecord(_))
    ));
    assert_eq!(
        s.check(&[header(-1, -1, -1, 1)]).unwrap(),
        AppendCheck::NotIdempotent
    );
}

#[test]
fn sequences_wrap_at_i32_max() {
    assert_eq!(last_sequence(i32::MAX - 1, 2), 0);
    assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
    assert_eq!(last_sequence(i32::MAX, 1), 0);
    let mut s = ProducerStateManager::new();
    // Unknown producer: any first sequence is accepted (Kafka >= 2.5).
    assert_eq!(
        append(&mut s, header(9, 0, i32::MAX - 2, 3), 0),
        AppendCheck::Append
    );
    assert_eq!(s.get(9).map(|e| e.last_seq()), Some(i32::MAX));
    assert_eq!(append(&mut s, header(9, 0, 0, 2), 3), AppendCheck::Append);
    // A batch that itself wraps.
    let mut t = ProducerStateManager::new();
    append(&mut t, header(9, 0, i32::MAX - 1, 3), 0);
    assert_eq!(t.get(9).map(|e| e.last_seq()), Some(0));
    assert_eq!(append(&mut t, header(9, 0, 1, 1), 3), AppendCheck::Append);
    assert!(matches!(
        t.check(&[header(9, 0, i32::MAX - 1, 3)]).unwrap(),
        AppendCheck::Duplicate(b) if b.first_offset == 0
    ));
}

#[test]
fn epochs_fence_and_bump() {
    let mut s = ProducerStateManager::new();
    append(&mut s, header(5, 3, 0, 1), 0);
    append(&mut s, header(5, 3, 1, 1), 1);
    assert!(matches!(
        s.check(&[header(5, 2, 2, 1)]),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
    // A retry with a stale epoch is not a duplicate either.
    assert!(matches!(
        s.check(&[header(5, 2, 1, 1)]),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
    // A new epoch must start at sequence 0, and then forgets the old epoch's batches.
    assert!(matches!(
        s.check(&[header(5, 4, 2, 1)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    assert_eq!(append(&mut s, header(5, 4, 0, 1), 2), AppendCheck::Append);
    let e = s.get(5).unwrap();
    assert_eq!((e.epoch, e.batches.len()), (4, 1));
}

#[test]
fn expiration_and_truncation() {
    let mut s = ProducerStateManager::new();
    let mut old = header(1, 0, 0, 1);
    old.max_timestamp = 1_000;
    let mut new = header(2, 0, 0, 1);
    new.max_timestamp = 5_000;
    append(&mut s, old, 0);
    append(&mut s, new, 1);
    assert_eq!(s.remove_expired(5_999, 5_000), 0);
    assert_eq!(s.remove_expired(6_000, 5_000), 1);
    assert!(s.get(1).is_none() && s.get(2).is_some());
    append(&mut s, header(2, 0, 1, 1), 2);
    s.truncate_to(2);
    assert_eq!(s.get(2).map(|e| e.batches.len()), Some(1));
    s.truncate_to(1);
    assert!(s.is_empty());
}

#[test]
fn coordinator_batches_are_checked_for_their_epoch_only() {
    let mut s = ProducerStateManager::new();
    let at = |offset: i64, epoch: i16| BatchHeader {
        base_offset: offset,
        ..header(9, epoch, 0, 2)
    };
    // Every coordinator batch starts at sequence 0: never a retry, never out of order.
    for (i, epoch) in [1, 1, 2].into_iter().enumerate() {
        assert_eq!(
            s.check_coordinator(&[at(0, epoch)]).unwrap(),
            AppendCheck::Append
        );
        s.record_header(&at(i as i64 * 2, epoch));
    }
    // A client's check would have taken the repeated sequence 0 for a retry.
    assert!(matches!(
        s.check(&[at(0, 2)]),
        Ok(AppendCheck::Duplicate(_))
    ));
    assert!(matches!(
        s.check_coordinator(&[at(0, 1)]),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
    assert_eq!(
        s.check_coordinator(&[header(-1, -1, -1, 1)]).unwrap(),
        AppendCheck::NotIdempotent
    );
}
