//! Unit tests of the producer state snapshot files: round trips, damage, version 1 files.

use std::fs;

use super::snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION_V1};
use super::tests::{append, header};
use super::*;
use crate::log::txn::TxnMarker;

#[test]
fn snapshot_round_trips_and_rejects_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = ProducerStateManager::new();
    for i in 0..8 {
        append(&mut s, header(i % 3, 1, (i / 3) as i32, 1), i);
    }
    s.write_snapshot(dir.path(), 8).unwrap();
    assert_eq!(list_snapshots(dir.path()).unwrap(), vec![8]);
    let path = snapshot_path(dir.path(), 8);
    assert!(path.ends_with("00000000000000000008.snapshot"));
    assert_eq!(ProducerStateManager::read_snapshot(&path).unwrap(), Some(s));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(ProducerStateManager::read_snapshot(&path).unwrap(), None);
    fs::write(&path, &bytes[..10]).unwrap();
    assert_eq!(ProducerStateManager::read_snapshot(&path).unwrap(), None);
    delete_snapshots_outside(dir.path(), 9, i64::MAX).unwrap();
    assert!(list_snapshots(dir.path()).unwrap().is_empty());
}

#[test]
fn version_1_snapshots_load_and_transactions_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // A snapshot as written before transactions: producer 7, epoch 2, one batch.
    let mut body = Vec::new();
    body.extend(1u32.to_be_bytes());
    body.extend(7i64.to_be_bytes());
    body.extend(2i16.to_be_bytes());
    body.extend(1_000i64.to_be_bytes());
    body.push(1);
    for v in [0i32, 4] {
        body.extend(v.to_be_bytes());
    }
    for v in [10i64, 14, 1_000] {
        body.extend(v.to_be_bytes());
    }
    let mut file = SNAPSHOT_MAGIC.to_vec();
    file.extend(SNAPSHOT_VERSION_V1.to_be_bytes());
    file.extend(crc32c::crc32c(&body).to_be_bytes());
    file.extend(body);
    let path = snapshot_path(dir.path(), 15);
    fs::write(&path, file).unwrap();
    let s = ProducerStateManager::read_snapshot(&path).unwrap().unwrap();
    let e = s.get(7).unwrap();
    assert_eq!((e.epoch, e.last_seq(), e.coordinator_epoch), (2, 4, -1));
    assert_eq!(e.current_txn_first_offset, None);
    // Version 2 keeps an open transaction and a producer known only by its marker.
    let mut t = ProducerStateManager::new();
    let mut h = header(3, 0, 0, 2);
    h.attributes = 0x10;
    h.base_offset = 20;
    t.record_header(&h);
    let mut m = header(4, 1, -1, 1);
    m.attributes = 0x30;
    m.base_offset = 22;
    let done = t.record_marker(
        &m,
        TxnMarker {
            commit: false,
            coordinator_epoch: 9,
        },
    );
    assert_eq!((done.first_offset, done.aborted), (22, true));
    assert_eq!(t.first_unstable_offset(), Some(20));
    t.write_snapshot(dir.path(), 23).unwrap();
    let back = ProducerStateManager::read_snapshot(&snapshot_path(dir.path(), 23))
        .unwrap()
        .unwrap();
    assert_eq!(back, t);
    assert_eq!(back.get(4).map(|e| e.coordinator_epoch), Some(9));
}
